"""Stage 6 (hosting): daily headroom profiles, EVs hosted and heat-pump case per zone.

- :func:`daily_profiles` folds a (time, zone) series into (day, step of day, zone). The time axis
  must start at the first step of a day (midnight, in the series' own time zone) and hold whole
  days, so step-of-day ``s`` is the time of day ``s * step``.
- :func:`quantile_profile` takes, at each step of the day, the q-quantile over the days
  (``np.quantile``, method ``"linear"``: for n days, the value at sorted position q * (n - 1),
  linearly interpolated). A NaN (a non-converged step: voltage collapse) ranks as -inf, so a
  time of day that collapses on more days than the quantile's share is -inf (no headroom).
- :func:`daily_energy_kwh` turns a daily profile into the energy EVs can take:
  (sum of positive parts * efficiency + sum of negative parts / efficiency) * step hours. Positive
  headroom charges batteries with losses; negative headroom must be supplied by V2G discharge,
  which costs the battery more than the grid receives.
- :func:`evs_estimate` = floor(energy / kWh per EV per day), clipped to [0, customers]: the
  starting point of stage 7's search, not the answer (stage 7 hosts the EVs it confirms).
- :func:`assign_hp_case` picks per zone the penetration case with the most heat pumps that the
  zone can host (see its docstring for the rules, the V2G exception and the "no HP" code).
- :func:`final_customers` builds the final customers table from each zone's assigned case.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from agileflex_hpc.errors import ConfigError, InputDataError

logger = logging.getLogger(__name__)

__all__ = [
    "NO_CASE",
    "HpAssignment",
    "assign_hp_case",
    "daily_energy_kwh",
    "daily_profiles",
    "evs_estimate",
    "final_customers",
    "quantile_profile",
]

NO_CASE = -1
"""Default case index of zones where no case is allowed (no heat pumps)."""


@dataclass(frozen=True)
class HpAssignment:
    """Heat-pump case assigned to every zone.

    Attributes
    ----------
    case_index : ndarray of int64, shape (zone,)
        Index into the case axis; ``none_case`` (default :data:`NO_CASE` = -1) where no case
        is allowed.
    v2g : ndarray of bool, shape (zone,)
        True where the assigned case's quantile profile has negative parts and the case is
        allowed only because its daily energy exceeds ``v2g_energy_kwh`` (the zone relies on V2G).
    rule : ndarray of str (``<U8``), shape (zone,)
        ``"all_ok"`` no case negative (top case); ``"best_ok"`` most HPs among non-negative
        cases; ``"v2g"`` V2G exception; ``"none"`` no case allowed.
    """

    case_index: NDArray[np.int64]
    v2g: NDArray[np.bool_]
    rule: NDArray[np.str_]


def daily_profiles(x: ArrayLike, steps_per_day: int) -> np.ndarray:
    """Fold a time series into days.

    Parameters
    ----------
    x : array_like, shape (time, zone) (or (time, ...))
        Series starting at midnight, whole days long.
    steps_per_day : int
        Time steps per day, e.g. 144 for 10-minute steps.

    Returns
    -------
    ndarray, shape (day, step, zone)
        ``out[d, s] == x[d * steps_per_day + s]`` (a view where possible).

    Raises
    ------
    ConfigError
        If ``steps_per_day`` is not a positive integer.
    InputDataError
        If the time axis is empty or not a whole number of days.
    """
    arr = np.asarray(x)
    if int(steps_per_day) != steps_per_day or steps_per_day <= 0:
        raise ConfigError(f"steps_per_day must be a positive integer, got {steps_per_day}")
    n_time = arr.shape[0] if arr.ndim else 0
    if n_time == 0 or n_time % steps_per_day:
        raise InputDataError(
            f"time axis has {n_time} steps, not a whole number (>= 1) of days of "
            f"{steps_per_day} steps; trim it to a multiple of {steps_per_day} starting at midnight"
        )
    return arr.reshape(n_time // steps_per_day, int(steps_per_day), *arr.shape[1:])


def quantile_profile(daily: ArrayLike, *, q: float = 0.02) -> NDArray[np.float64]:
    """Quantile over days at each time of day.

    Parameters
    ----------
    daily : array_like, shape (day, step, zone)
        Daily profiles from :func:`daily_profiles`.
    q : float, default 0.02
        Quantile in [0, 1]; ``np.quantile`` with method ``"linear"``. [-]

    Returns
    -------
    ndarray, shape (step, zone)
        -inf where the quantile falls on (or interpolates towards) a collapsed day: NaN
        values rank as -inf.
    """
    arr = np.asarray(daily, dtype=np.float64)
    if not 0.0 <= q <= 1.0:
        raise ConfigError(f"quantile q must be in [0, 1], got {q}")
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise InputDataError(f"daily must have shape (day >= 1, step, ...), got {arr.shape}")
    arr = np.where(np.isnan(arr), -np.inf, arr)
    with np.errstate(invalid="ignore"):  # -inf + inf in the interpolation: -inf below
        out = np.quantile(arr, q, axis=0, method="linear")
    return np.where(np.isnan(out), -np.inf, out)


def pooled_quantile_profile(series: Sequence[ArrayLike], steps_per_day: int, *,
                            q: float = 0.02) -> NDArray[np.float64]:
    """Quantile at each time of day over the days of several series pooled (Monte Carlo
    samples of one case): ``quantile_profile`` of their :func:`daily_profiles` stacked.

    Parameters
    ----------
    series : sequence of array_like, each shape (time, zone)
        One series per sample, whole days from midnight. [kVA]
    steps_per_day : int
        Steps per day.
    q : float
        Quantile in [0, 1]. [-]

    Returns
    -------
    ndarray, shape (step, zone)
        The q-quantile of the days x samples values at each step (a single series: exactly
        :func:`quantile_profile`).
    """
    if not len(series):
        raise InputDataError("pooled_quantile_profile needs at least one series")
    days = np.concatenate([daily_profiles(x, steps_per_day) for x in series])
    return quantile_profile(days, q=q)


def daily_energy_kwh(
    profile: ArrayLike, *, step_hours: float, efficiency: float = 0.98
) -> NDArray[np.float64]:
    """Daily EV energy a headroom profile allows.

    Parameters
    ----------
    profile : array_like, shape (step, zone) (or (..., step, zone))
        Daily headroom profile, e.g. from :func:`quantile_profile`. [kW ~ kVA]
    step_hours : float
        Length of one step, e.g. 1/6 for 10 minutes. [h]
    efficiency : float, default 0.98
        Charge and discharge efficiency. [-]

    Returns
    -------
    ndarray, shape (zone,) (or (..., zone))
        (sum of positive parts * efficiency + sum of negative parts / efficiency)
        * step_hours. [kWh]
    """
    arr = np.asarray(profile, dtype=np.float64)
    if arr.ndim < 2:
        raise InputDataError(f"profile must have shape (..., step, zone), got {arr.shape}")
    if not step_hours > 0 or not 0 < efficiency <= 1:
        raise ConfigError(
            f"step_hours must be > 0 and efficiency in (0, 1], got {step_hours}, {efficiency}"
        )
    positive = np.clip(arr, 0.0, None).sum(axis=-2)
    negative = np.clip(arr, None, 0.0).sum(axis=-2)
    return (positive * efficiency + negative / efficiency) * step_hours


def evs_estimate(
    energy_kwh: ArrayLike, customers: ArrayLike, *, kwh_per_ev: float = 14.2
) -> NDArray[np.int64]:
    """Estimated number of EVs each zone can host (the start of stage 7's search).

    Parameters
    ----------
    energy_kwh : array_like, shape (zone,)
        Daily EV energy of each zone, from :func:`daily_energy_kwh`. [kWh]
    customers : array_like of int, shape (zone,)
        Customers of each zone (at most one EV each). [-]
    kwh_per_ev : float, default 14.2
        Energy one EV needs per day. [kWh]

    Returns
    -------
    ndarray of int64, shape (zone,)
        floor(energy / kwh_per_ev) clipped to [0, customers]; 0 where the energy is NaN.
    """
    energy = np.asarray(energy_kwh, dtype=np.float64)
    cust = np.asarray(customers)
    if energy.shape != cust.shape:
        raise InputDataError(f"energy_kwh {energy.shape} and customers {cust.shape} must match")
    if np.any(cust < 0):
        raise InputDataError("customers must be >= 0")
    if not kwh_per_ev > 0:
        raise ConfigError(f"kwh_per_ev must be > 0, got {kwh_per_ev}")
    finite = np.isfinite(energy)
    if not finite.all():
        logger.warning("%d zones with non-finite daily energy host 0 EVs", int((~finite).sum()))
    n_ev = np.floor(np.where(finite, energy, 0.0) / kwh_per_ev)
    return np.clip(n_ev, 0, cust).astype(np.int64)


def assign_hp_case(
    case_hp_pct: ArrayLike,
    quantile_profiles: ArrayLike,
    daily_energy: ArrayLike,
    *,
    v2g_energy_kwh: float = 120.0,
    none_case: int = NO_CASE,
) -> HpAssignment:
    """Pick per zone the case with the most heat pumps the zone can host.

    A case is allowed for a zone if its quantile headroom profile has no negative part
    (all steps >= 0; NaN counts as negative), or, failing that, if its daily energy exceeds
    (strictly) ``v2g_energy_kwh`` (the zone then relies on V2G). Of the allowed cases, the one
    with the most HPs is assigned; so with no negative case that is the top case, and with
    every case negative and none above the energy threshold no case is assigned
    (``none_case``: no heat pumps; pass the index of the 0 % HP case to get a usable index).
    Ties in HP % go to a non-negative case before a V2G one, then to the first in case order.

    Parameters
    ----------
    case_hp_pct : array_like, shape (case,)
        Heat-pump penetration of each case. [%]
    quantile_profiles : array_like, shape (case, step, zone)
        Quantile headroom profile of each case. [kVA]
    daily_energy : array_like, shape (case, zone)
        Daily energy of each case's quantile profile. [kWh]
    v2g_energy_kwh : float, default 120
        Daily energy above which a case with negative parts is still allowed. [kWh]
    none_case : int, default -1
        Case index reported for zones where no case is allowed.

    Returns
    -------
    HpAssignment
    """
    hp, prof, energy = _check_hp_inputs(case_hp_pct, quantile_profiles, daily_energy)
    nonneg = np.all(prof >= 0, axis=1)  # (case, zone)
    allowed = nonneg | (energy > v2g_energy_kwh)
    score = np.where(allowed, hp[:, None], -np.inf)
    top = allowed & (score == score.max(axis=0))
    top_ok = top & nonneg
    best = np.where(top_ok.any(axis=0), np.argmax(top_ok, axis=0), np.argmax(top, axis=0))
    any_allowed = allowed.any(axis=0)
    v2g = any_allowed & ~nonneg[best, np.arange(best.size)]
    rule = np.select(
        [~any_allowed, v2g, nonneg.all(axis=0)], ["none", "v2g", "all_ok"], default="best_ok"
    ).astype("<U8")
    logger.debug("HP cases: %d zones V2G, %d zones none", int(v2g.sum()),
                 int((~any_allowed).sum()))
    return HpAssignment(
        case_index=np.where(any_allowed, best, none_case).astype(np.int64), v2g=v2g, rule=rule
    )


def _check_hp_inputs(
    case_hp_pct: ArrayLike, quantile_profiles: ArrayLike, daily_energy: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the inputs of :func:`assign_hp_case` as float64 arrays, checked."""
    hp = np.asarray(case_hp_pct, dtype=np.float64)
    prof = np.asarray(quantile_profiles, dtype=np.float64)
    energy = np.asarray(daily_energy, dtype=np.float64)
    if hp.ndim != 1 or hp.size == 0 or not np.all(np.isfinite(hp)):
        raise InputDataError(f"case_hp_pct must be a finite (case,) array, got {hp.shape}")
    if prof.ndim != 3 or prof.shape[0] != hp.size:
        raise InputDataError(f"quantile_profiles must be ({hp.size}, step, zone), got {prof.shape}")
    if energy.shape != (hp.size, prof.shape[2]):
        raise InputDataError(
            f"daily_energy must have shape ({hp.size}, {prof.shape[2]}), got {energy.shape}"
        )
    return hp, prof, energy


def final_customers(
    customers_by_case: Mapping[str, pd.DataFrame], zone_case: Mapping[Hashable, str]
) -> pd.DataFrame:
    """Final customers table: each customer's row from its zone's assigned case.

    Parameters
    ----------
    customers_by_case : mapping of case name -> DataFrame
        Customers table of each case (one row per customer load), with a ``zone`` column and
        the case's HP / PV columns (e.g. has-HP, PV kWp). Every table must list the same
        customers in the same order (checked on the ``zone`` column).
    zone_case : mapping of zone id -> case name
        Assigned case of every zone present in the tables (map "no HPs" zones to the 0 % HP
        case before calling).

    Returns
    -------
    DataFrame
        One row per customer, in the tables' order, taken from the assigned case's table, with
        an ``assigned_case`` column. The index is the case tables' index.

    Raises
    ------
    InputDataError
        No tables, a table without ``zone`` or listing other customers, a zone without an
        assigned case, or an assigned case that has no table.
    """
    ref = _check_customer_tables(customers_by_case)
    missing = sorted({str(z) for z in ref["zone"] if z not in zone_case})
    if missing:
        raise InputDataError(f"zone_case has no case for zones {missing}")
    assigned = np.array([zone_case[z] for z in ref["zone"]], dtype=object)
    unknown = sorted({str(c) for c in assigned} - set(customers_by_case))
    if unknown:
        raise InputDataError(
            f"assigned cases {unknown} have no customers table; valid: {list(customers_by_case)}"
        )
    if len(ref) == 0:
        return ref.assign(assigned_case=pd.Series(dtype=object))
    parts = []
    for case, table in customers_by_case.items():
        rows = np.flatnonzero(assigned == case)
        if rows.size:
            parts.append(table.iloc[rows].assign(assigned_case=case, _row=rows))
    out = pd.concat(parts).sort_values("_row", kind="stable")
    return out.drop(columns="_row")


def _check_customer_tables(customers_by_case: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Check that the case tables list the same customers; return the first one."""
    if not customers_by_case:
        raise InputDataError("customers_by_case is empty")
    ref_name, ref = next(iter(customers_by_case.items()))
    for name, table in customers_by_case.items():
        if "zone" not in table.columns:
            raise InputDataError(f"customers table of case {name!r} has no 'zone' column")
        same = len(table) == len(ref) and np.array_equal(
            table["zone"].to_numpy(), ref["zone"].to_numpy()
        )
        if not same:
            raise InputDataError(
                f"customers table of case {name!r} does not list the same customers "
                f"(zone column) as case {ref_name!r}"
            )
    return ref
