"""Stage 4 (limits): a voltage-constrained flow limit per zone.

For each zone, all cases' (Pflow, Vmin) points at converged steps are pooled and a straight
line ``Vmin = m * Pflow + c`` is fitted by least squares. The rules, applied in this order:

1. ``fit``: limit = (V_lim - c) / m, the flow at which the fitted line reaches V_lim.
2. ``fallback``: if no point has Vmin < V_lim, the extrapolation is not trusted in full:
   limit = max(fallback_factor * limit, max Pflow).
3. ``observed``: then, if any point with Pflow < limit has Vmin < V_lim, the fit is
   contradicted by the data: limit = the smallest Pflow among all points with Vmin <= V_lim.

Degenerate cases (documented decisions)
---------------------------------------
- No point at all: limit NaN (no voltage limit), rule ``no_data``.
- No usable fit: fewer than 2 points, all Pflow equal (no slope can be fitted; slope and
  intercept NaN), or a fitted slope >= 0 (voltage not falling with flow; slope and intercept
  are still reported). The fitted limit is then treated as unbounded for rule 3 and as absent
  for rule 2, which gives:

  * some point has Vmin < V_lim: limit = the smallest Pflow among points with
    Vmin <= V_lim, rule ``nofit_observed``;
  * otherwise: limit = max Pflow (the largest flow seen to be safe), rule ``nofit_max``.

  A fitted slope so flat that the fitted limit overflows to +-inf is treated the same way.
- Zone without customers: no limit (NaN), rule ``no_customers`` (wrapper only).

The reported ``share_below`` is the share of points with Vmin < V_lim among the points with
Pflow <= the final limit (a flow equal to the limit is permitted, so it counts). By
construction it is 0 except for points sitting exactly at an ``observed`` limit; it is NaN
where no point lies at or under the limit (e.g. a limit below every observed flow).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from agileflex_hpc.errors import InputDataError

logger = logging.getLogger(__name__)

__all__ = ["RULES", "VoltageLimit", "VoltageLimits", "fit_voltage_limit", "fit_voltage_limits"]

RULES = ("fit", "fallback", "observed", "nofit_observed", "nofit_max", "no_data", "no_customers")
"""Every rule code that :func:`fit_voltage_limit` and :func:`fit_voltage_limits` report."""


@dataclass(frozen=True)
class VoltageLimit:
    """Voltage-constrained flow limit of one zone.

    Attributes
    ----------
    slope_pu_per_kva : float
        Fitted slope m of Vmin = m * Pflow + c; NaN if no fit was possible. [p.u./kVA]
    intercept_pu : float
        Fitted intercept c; NaN if no fit was possible. [p.u.]
    limit_kva : float
        Flow limit on the supply cable's phase; NaN = no voltage limit. [kVA]
    rule : str
        Which rule set the limit, one of :data:`RULES`.
    share_below : float
        Share of points with Vmin < V_lim among points with Pflow <= limit. [-]
    n_points : int
        Number of (Pflow, Vmin) points used. [-]
    """

    slope_pu_per_kva: float
    intercept_pu: float
    limit_kva: float
    rule: str
    share_below: float
    n_points: int


@dataclass(frozen=True)
class VoltageLimits:
    """Voltage-constrained flow limits of every zone; fields as in :class:`VoltageLimit`.

    Attributes
    ----------
    slope_pu_per_kva, intercept_pu, limit_kva, share_below : ndarray of float64, shape (zone,)
    rule : ndarray of str (``<U16``), shape (zone,)
    n_points : ndarray of int64, shape (zone,)
    """

    slope_pu_per_kva: NDArray[np.float64]
    intercept_pu: NDArray[np.float64]
    limit_kva: NDArray[np.float64]
    rule: NDArray[np.str_]
    share_below: NDArray[np.float64]
    n_points: NDArray[np.int64]


def fit_voltage_limit(
    pflow_kva: ArrayLike,
    vmin_pu: ArrayLike,
    *,
    v_lim: float = 0.94,
    fallback_factor: float = 0.6,
) -> VoltageLimit:
    """Fit the voltage-constrained flow limit of one zone (stage 4).

    Parameters
    ----------
    pflow_kva : array_like, shape (point,)
        Supply-cable flow of the zone at every converged step of every case. [kVA]
    vmin_pu : array_like, shape (point,)
        Minimum zone voltage at the same points. [p.u.]
    v_lim : float, default 0.94
        Lowest acceptable voltage. [p.u.]
    fallback_factor : float, default 0.6
        Share of the extrapolated limit used when no point is below ``v_lim``. [-]

    Returns
    -------
    VoltageLimit

    Raises
    ------
    InputDataError
        If the arrays are not 1-D of the same length or hold NaN or inf (mask non-converged
        steps first).

    Notes
    -----
    See the module docstring for the rules and the degenerate cases.
    """
    p, v = _check_points(pflow_kva, vmin_pu)
    if p.size == 0:
        return VoltageLimit(np.nan, np.nan, np.nan, "no_data", np.nan, 0)
    m, c = _least_squares(p, v)
    limit, rule = _apply_rules(p, v, m, c, v_lim=v_lim, fallback_factor=fallback_factor)
    at_or_under = p <= limit
    share = float(np.mean(v[at_or_under] < v_lim)) if at_or_under.any() else np.nan
    return VoltageLimit(m, c, float(limit), rule, share, int(p.size))


def fit_voltage_limits(
    pflow_kva: ArrayLike,
    vmin_pu: ArrayLike,
    has_customers: ArrayLike,
    *,
    valid: ArrayLike | None = None,
    v_lim: float = 0.94,
    fallback_factor: float = 0.6,
) -> VoltageLimits:
    """Fit the voltage-constrained flow limit of every zone.

    Parameters
    ----------
    pflow_kva : array_like, shape (point, zone)
        Supply-cable flow, all cases' steps stacked along the first axis
        (e.g. ``pflow.reshape(-1, n_zone)`` of a (case, time, zone) array). [kVA]
    vmin_pu : array_like, shape (point, zone)
        Minimum zone voltage at the same points. [p.u.]
    has_customers : array_like of bool, shape (zone,)
        False for zones without customers: they get no limit (NaN, rule ``no_customers``).
    valid : array_like of bool, shape (point,), optional
        Points to use, e.g. the stacked ``converged`` flags. Default: all points.
    v_lim, fallback_factor : float
        As in :func:`fit_voltage_limit`.

    Returns
    -------
    VoltageLimits
        One entry per zone.

    Notes
    -----
    Per zone, points where Pflow or Vmin is not finite are dropped as well (a zone whose
    feeder has no bus on its phase has NaN Vmin throughout; it gets rule ``no_data`` if it
    has customers). ``n_points`` reports how many points each zone kept.
    """
    p, v, has, ok = _check_zone_points(pflow_kva, vmin_pu, has_customers, valid)
    keep = ok[:, None] & np.isfinite(p) & np.isfinite(v)
    fits = []
    for z in range(p.shape[1]):
        if not has[z]:
            fits.append(VoltageLimit(np.nan, np.nan, np.nan, "no_customers", np.nan, 0))
            continue
        fits.append(
            fit_voltage_limit(
                p[keep[:, z], z], v[keep[:, z], z], v_lim=v_lim, fallback_factor=fallback_factor
            )
        )
    rules, counts = np.unique([f.rule for f in fits], return_counts=True)
    logger.debug("voltage limits: %s", dict(zip(rules.tolist(), counts.tolist())))
    return VoltageLimits(
        slope_pu_per_kva=np.array([f.slope_pu_per_kva for f in fits], dtype=np.float64),
        intercept_pu=np.array([f.intercept_pu for f in fits], dtype=np.float64),
        limit_kva=np.array([f.limit_kva for f in fits], dtype=np.float64),
        rule=np.array([f.rule for f in fits], dtype="<U16"),
        share_below=np.array([f.share_below for f in fits], dtype=np.float64),
        n_points=np.array([f.n_points for f in fits], dtype=np.int64),
    )


def _least_squares(p: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of v on p; (nan, nan) if fewer than 2 distinct p."""
    if p.size < 2 or np.ptp(p) == 0:
        return np.nan, np.nan
    dp = p - p.mean()
    slope = float(dp @ (v - v.mean()) / (dp @ dp))
    return slope, float(v.mean() - slope * p.mean())


def _apply_rules(
    p: np.ndarray, v: np.ndarray, m: float, c: float, *, v_lim: float, fallback_factor: float
) -> tuple[float, str]:
    """Apply the fit / fallback / observed rules (see module docstring); return (limit, rule)."""
    with np.errstate(divide="ignore", over="ignore"):
        fitted = np.float64(v_lim - c) / m if m < 0 else np.nan  # m NaN -> False -> NaN
    usable = bool(np.isfinite(fitted))
    below = v < v_lim
    if not below.any():
        if usable:
            return max(fallback_factor * fitted, float(p.max())), "fallback"
        return float(p.max()), "nofit_max"
    limit = fitted if usable else np.inf
    if np.any(below & (p < limit)):
        return float(p[v <= v_lim].min()), "observed" if usable else "nofit_observed"
    return float(limit), "fit"


def _check_points(pflow_kva: ArrayLike, vmin_pu: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return one zone's points as float64 1-D arrays after checking them."""
    p = np.asarray(pflow_kva, dtype=np.float64)
    v = np.asarray(vmin_pu, dtype=np.float64)
    if p.ndim != 1 or p.shape != v.shape:
        raise InputDataError(
            f"pflow_kva {p.shape} and vmin_pu {v.shape} must be 1-D of the same length"
        )
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(v))):
        raise InputDataError("pflow_kva and vmin_pu must be finite (mask non-converged steps)")
    return p, v


def _check_zone_points(
    pflow_kva: ArrayLike, vmin_pu: ArrayLike, has_customers: ArrayLike, valid: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the (point, zone) arrays, the customer flags and the point mask, checked."""
    p = np.asarray(pflow_kva, dtype=np.float64)
    v = np.asarray(vmin_pu, dtype=np.float64)
    has = np.asarray(has_customers, dtype=bool)
    if p.ndim != 2 or p.shape != v.shape:
        raise InputDataError(f"pflow_kva {p.shape} and vmin_pu {v.shape} must be (point, zone)")
    if has.shape != (p.shape[1],):
        raise InputDataError(f"has_customers must have shape ({p.shape[1]},), got {has.shape}")
    ok = np.ones(p.shape[0], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if ok.shape != (p.shape[0],):
        raise InputDataError(f"valid must have shape ({p.shape[0]},), got {ok.shape}")
    return p, v, has, ok
