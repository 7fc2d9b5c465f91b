"""Stage 5 (headroom): thermal rate, zone rate, headroom, footroom and the transformer share.

Per zone and time step:

- thermal rate = thermal_factor * supply-cable rating [A] * LV busbar voltage on the zone's
  phase [p.u.] * V_LL [kV] / sqrt(3), in kVA per phase;
- rate = min(thermal rate, voltage limit), a NaN voltage limit meaning no voltage limit;
- headroom = rate - Pflow (spare import), footroom = rate + Pflow (spare export);
- binding constraint: ``b"c"`` cable (thermal; also on a tie), ``b"v"`` voltage limit,
  ``b"t"`` transformer.

Transformer share (DESIGN stage 5, corrected from the study): transformer headroom
H = rating - s_tx, with s_tx the transformer's signed total apparent power (+ import), so export
adds to it. The zones *with customers* may not promise more import than the transformer has:

- where the sum of their positive headrooms exceeds max(H, 0), every positive headroom is
  lowered by one common amount L, none below 0, until the sum equals max(H, 0)
  (water-filling: h -> max(h - L, 0); zones already at or below 0 are not touched);
- where H < 0, every zone with customers then also takes an equal share H / n_zones, so every
  zone's headroom is negative while the transformer is overloaded.

Zones lowered by either rule are flagged ``b"t"``. Zones without customers host nothing: they
neither count nor take a share (their headroom is reported unreduced). Footroom is not reduced
by the transformer (the method applies it to import only). Steps with NaN headroom
(non-converged: voltage collapse) stay NaN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from agileflex_hpc.errors import InputDataError

logger = logging.getLogger(__name__)

__all__ = [
    "BINDING_CABLE",
    "BINDING_TRANSFORMER",
    "BINDING_VOLTAGE",
    "Headroom",
    "compute_headroom",
    "thermal_rate_kva",
    "transformer_share",
]

BINDING_CABLE = b"c"
BINDING_VOLTAGE = b"v"
BINDING_TRANSFORMER = b"t"


@dataclass(frozen=True)
class Headroom:
    """Headroom and footroom of every zone.

    Attributes
    ----------
    rate_kva : ndarray of float64, shape (time, zone)
        min(thermal rate, voltage limit). [kVA]
    headroom_kva : ndarray of float64, shape (time, zone)
        rate - Pflow, less the transformer share where it binds. [kVA]
    footroom_kva : ndarray of float64, shape (time, zone)
        rate + Pflow. [kVA]
    binding : ndarray of ``S1``, shape (time, zone)
        Binding constraint: ``b"c"`` cable, ``b"v"`` voltage, ``b"t"`` transformer.
    tx_headroom_kva : ndarray of float64, shape (time,)
        Transformer rating - signed transformer import. [kVA]
    tx_excess_kva : ndarray of float64, shape (time,)
        Headroom the transformer share took off the zones in total (0 where the
        transformer does not bind). [kVA]
    """

    rate_kva: NDArray[np.float64]
    headroom_kva: NDArray[np.float64]
    footroom_kva: NDArray[np.float64]
    binding: NDArray[np.bytes_]
    tx_headroom_kva: NDArray[np.float64]
    tx_excess_kva: NDArray[np.float64]


def thermal_rate_kva(
    supply_rating_a: ArrayLike,
    busbar_v_pu: ArrayLike,
    zone_phase: ArrayLike,
    *,
    thermal_factor: float = 0.9,
    v_ll_kv: float = 0.416,
) -> NDArray[np.float64]:
    """Thermal rate of each zone's supply cable on its phase.

    Parameters
    ----------
    supply_rating_a : array_like, shape (zone,)
        Rating of the zone's supply cable. [A]
    busbar_v_pu : array_like, shape (time, phase)
        LV busbar voltage magnitude per phase (phase axis length 3). [p.u.]
    zone_phase : array_like of int, shape (zone,)
        Phase of each zone, in {1, 2, 3}.
    thermal_factor : float, default 0.9
        Share of the rating that may be used. [-]
    v_ll_kv : float, default 0.416
        Nominal line-to-line voltage of the LV busbar. [kV]

    Returns
    -------
    ndarray of float64, shape (time, zone)
        thermal_factor * rating * V_busbar * v_ll_kv / sqrt(3). [kVA per phase]
    """
    rating = np.asarray(supply_rating_a, dtype=np.float64)
    v = np.asarray(busbar_v_pu, dtype=np.float64)
    phase = np.asarray(zone_phase, dtype=np.int64)
    if rating.ndim != 1 or phase.shape != rating.shape:
        raise InputDataError(
            f"supply_rating_a {rating.shape} and zone_phase {phase.shape} must be (zone,)"
        )
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputDataError(f"busbar_v_pu must have shape (time, 3), got {v.shape}")
    if not np.all((phase >= 1) & (phase <= 3)):
        raise InputDataError(f"zone_phase must be in {{1, 2, 3}}, got {np.unique(phase)}")
    return thermal_factor * rating[None, :] * v[:, phase - 1] * v_ll_kv / np.sqrt(3.0)


def compute_headroom(
    pflow_kva: ArrayLike,
    thermal_kva: ArrayLike,
    voltage_limit_kva: ArrayLike,
    *,
    s_tx_kva: ArrayLike,
    tx_rating_kva: float,
    has_customers: ArrayLike | None = None,
) -> Headroom:
    """Headroom, footroom and binding constraint of every zone (stage 5).

    Parameters
    ----------
    pflow_kva : array_like, shape (time, zone)
        Supply-cable flow on the zone's phase, + = import into the feeder. [kVA]
    thermal_kva : array_like, shape (time, zone)
        Thermal rate, e.g. from :func:`thermal_rate_kva`. [kVA]
    voltage_limit_kva : array_like, shape (zone,)
        Voltage-constrained flow limit from stage 4; NaN = no voltage limit. [kVA]
    s_tx_kva : array_like, shape (time,)
        Transformer total apparent power, signed, + = import from the 11 kV grid. [kVA]
    tx_rating_kva : float
        Transformer rating. [kVA]
    has_customers : array_like of bool, shape (zone,), optional
        Zones that take part in the transformer share. Default: every zone.

    Returns
    -------
    Headroom

    Notes
    -----
    See the module docstring for the transformer share and the treatment of zones without
    customers.
    """
    p, thermal, vlim, s_tx, share = _check_headroom_inputs(
        pflow_kva, thermal_kva, voltage_limit_kva, s_tx_kva, has_customers
    )
    if not float(tx_rating_kva) > 0:
        raise InputDataError(f"tx_rating_kva must be a positive number, got {tx_rating_kva}")
    voltage_binds = vlim[None, :] < thermal  # NaN limit -> False -> cable
    rate = np.where(voltage_binds, vlim[None, :], thermal)
    binding = np.where(voltage_binds, BINDING_VOLTAGE, BINDING_CABLE).astype("S1")
    headroom = rate - p
    tx_headroom = float(tx_rating_kva) - s_tx
    excess = _share_transformer_excess(headroom, binding, tx_headroom, share)
    return Headroom(
        rate_kva=rate,
        headroom_kva=headroom,
        footroom_kva=rate + p,
        binding=binding,
        tx_headroom_kva=tx_headroom,
        tx_excess_kva=excess,
    )


def _share_transformer_excess(
    headroom: np.ndarray, binding: np.ndarray, tx_headroom: np.ndarray, share: np.ndarray
) -> np.ndarray:
    """Apply the transformer share of the module docstring to ``headroom``, in place.

    Returns the headroom taken off the sharing zones in total at each step, shape (time,)
    [kVA] (0 where the transformer does not bind).
    """
    if not share.any():
        return np.zeros_like(tx_headroom)
    h = headroom[:, share]
    ok = np.isfinite(h).all(axis=1) & np.isfinite(tx_headroom)
    new = h.copy()
    new[ok] = transformer_share(h[ok], tx_headroom[ok])
    taken = np.where(ok, np.nansum(h - new, axis=1), 0.0)
    headroom[:, share] = new
    cut = ok[:, None] & (new < h)
    binding[:, share] = np.where(cut, BINDING_TRANSFORMER, binding[:, share])
    logger.debug("transformer binds at %d of %d steps", int((taken > 0).sum()), taken.size)
    return taken


def transformer_share(headroom_kva: ArrayLike, tx_headroom_kva: ArrayLike) -> NDArray[np.float64]:
    """Zone headrooms that fit the transformer, by water-filling (see the module docstring).

    Parameters
    ----------
    headroom_kva : array_like, shape (time, zone)
        Headroom of the zones with customers before the transformer share; finite. [kVA]
    tx_headroom_kva : array_like, shape (time,)
        Transformer rating - import; finite. [kVA]

    Returns
    -------
    ndarray of float64, shape (time, zone)
        Headroom after the share: the positive parts sum to at most max(H, 0) at each step,
        and every zone is negative where H < 0. [kVA]
    """
    h = np.asarray(headroom_kva, dtype=np.float64)
    cap = np.asarray(tx_headroom_kva, dtype=np.float64)
    if h.ndim != 2 or cap.shape != (h.shape[0],):
        raise InputDataError(f"headroom_kva {h.shape} must be (time, zone) and "
                             f"tx_headroom_kva {cap.shape} (time,)")
    if h.shape[1] == 0:
        return h.copy()
    level = _water_level(np.clip(h, 0.0, None), np.clip(cap, 0.0, None))
    out = np.where(h > 0, np.clip(h - level[:, None], 0.0, None), h)
    return out + np.clip(cap, None, 0.0)[:, None] / h.shape[1]


def _water_level(pos: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Per step, the common cut L >= 0 with sum(max(pos - L, 0)) = min(cap, sum(pos)).

    ``pos`` (time, zone) >= 0 and ``cap`` (time,) >= 0. For values sorted in descending order
    u_1 >= u_2 >= ..., L = max_k (u_1 + ... + u_k - cap) / k (the simplex-projection
    threshold), and 0 where the values already fit.
    """
    u = -np.sort(-pos, axis=1)
    k = np.arange(1, u.shape[1] + 1)
    level = ((np.cumsum(u, axis=1) - cap[:, None]) / k).max(axis=1)
    return np.clip(level, 0.0, None)


def _check_headroom_inputs(
    pflow_kva: ArrayLike,
    thermal_kva: ArrayLike,
    voltage_limit_kva: ArrayLike,
    s_tx_kva: ArrayLike,
    has_customers: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the inputs of :func:`compute_headroom` as float64/bool arrays, checked."""
    p = np.asarray(pflow_kva, dtype=np.float64)
    thermal = np.asarray(thermal_kva, dtype=np.float64)
    vlim = np.asarray(voltage_limit_kva, dtype=np.float64)
    s_tx = np.asarray(s_tx_kva, dtype=np.float64)
    if p.ndim != 2 or thermal.shape != p.shape:
        raise InputDataError(f"pflow_kva {p.shape} and thermal_kva {thermal.shape} must match")
    n_time, n_zone = p.shape
    if vlim.shape != (n_zone,):
        raise InputDataError(f"voltage_limit_kva must have shape ({n_zone},), got {vlim.shape}")
    if s_tx.shape != (n_time,):
        raise InputDataError(f"s_tx_kva must have shape ({n_time},), got {s_tx.shape}")
    share = (
        np.ones(n_zone, dtype=bool) if has_customers is None
        else np.asarray(has_customers, dtype=bool)
    )
    if share.shape != (n_zone,):
        raise InputDataError(f"has_customers must have shape ({n_zone},), got {share.shape}")
    return p, thermal, vlim, s_tx, share
