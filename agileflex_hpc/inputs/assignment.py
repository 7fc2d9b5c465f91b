"""Customers table per (network, case) and their demand and PV series.

Every random choice here is a hash of (seed, network, what is drawn, load name), so it does
not depend on the order of the loads table, on other customers, nor on how work is split
across ranks. The HP and PV assignments are nested across cases: one random ranking per
network for HP and one for PV, independent of the case; a case with ``n_hp`` heat pumps gives
them to the ``n_hp`` first customers of the HP ranking (likewise PV), so the customers with an
HP at 25 % are among those at 50 %. A customer's group, profile id and PV size do not depend
on the case.

A **sample** ``s > 0`` (``[cases] samples``) is another draw of all of it: ``s`` joins every
random key, so the group, profile, HP and PV rankings and PV sizes are redrawn, independent of
sample 0 and of each other (still nested across the cases of one sample). Sample 0 keeps the
keys of a run without samples, hence its bytes. Weather is not redrawn: every sample lives
through the same winter.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from agileflex_hpc.config import parse_case
from agileflex_hpc.errors import ConfigError, InputDataError
from agileflex_hpc.inputs import loaders, profiles

__all__ = ["parse_case", "assign_customers", "build_profiles", "DEFAULT_GROUP_SHARES",
           "PV_KWP_SIZES"]

logger = logging.getLogger(__name__)

_LOAD_COLUMNS = ("load", "bus", "phase", "feeder", "zone")
#: Shares of the customer groups, roughly the UK Acorn population (Adversity = Financially
#: Stretched + Urban Adversity, Comfortable = Comfortable Communities, Affluent = Affluent
#: Achievers + Rising Prosperity).
DEFAULT_GROUP_SHARES: dict[str, float] = {"Adversity": 0.40, "Comfortable": 0.28,
                                          "Affluent": 0.32}
#: Rooftop PV sizes drawn uniformly (UK domestic systems, G98 limit about 3.68 kW). [kWp]
PV_KWP_SIZES: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)


def assign_customers(loads: pd.DataFrame, *, network: str, case: str, seed: int,
                     group_shares: dict[str, float] | None = None,
                     sample: int = 0) -> pd.DataFrame:
    """Customers table of one (network, case): group, profile id, heat pump and PV size.

    Parameters
    ----------
    loads : DataFrame, shape (customer, 5+)
        Columns ``load`` (unique name), ``bus``, ``phase``, ``feeder``, ``zone``.
    network : str
        Network name (part of every random key).
    case : str
        Case name ``XXPVYYHP``.
    seed : int
        Study seed (>= 0).
    group_shares : dict, optional
        Share of each group (default :data:`DEFAULT_GROUP_SHARES`).
    sample : int
        Monte Carlo sample (>= 0); 0 is the draw of a run without samples.

    Returns
    -------
    DataFrame, shape (customer, 9+)
        A copy of ``loads`` (same order and index) plus ``group`` (str), ``profile_id``
        (int64 >= 0, seeds the customer's series), ``has_hp`` (bool) and ``pv_kwp``
        (float, 0 or 1-4 [kWp]). ``round(pct / 100 * n)`` customers (halves up) get each.
    """
    pv_pct, hp_pct = parse_case(case)
    names = _check_loads(loads)
    shares = dict(group_shares or DEFAULT_GROUP_SHARES)
    bad = sorted(set(shares) - set(profiles.GROUPS))
    if bad or not shares or min(shares.values()) < 0 or sum(shares.values()) <= 0:
        raise ConfigError(f"group_shares {shares}: keys must be among {list(profiles.GROUPS)}, "
                          "values >= 0 with a positive sum")
    if sample < 0:
        raise ConfigError(f"sample {sample}: must be >= 0")

    def drawn(what: str) -> str:  # the random key of one draw in this sample
        return what if sample == 0 else f"{what}\x1fsample {int(sample)}"

    out = loads.copy()
    out["group"] = _draw_groups(_uniforms(seed, network, drawn("group"), names), shares)
    out["profile_id"] = _hash_ints(seed, network, drawn("profile"), names)
    out["has_hp"] = _first_ranked(_uniforms(seed, network, drawn("hp"), names), names, hp_pct)
    has_pv = _first_ranked(_uniforms(seed, network, drawn("pv"), names), names, pv_pct)
    sizes = np.asarray(PV_KWP_SIZES)
    kwp = sizes[(_uniforms(seed, network, drawn("pv_kwp"), names) * len(sizes)).astype(int)]
    out["pv_kwp"] = np.where(has_pv, kwp, 0.0)
    logger.debug("%s %s: %d customers, %d HP, %d PV", network, case, len(out),
                 int(out["has_hp"].sum()), int(has_pv.sum()))
    return out


def _check_loads(loads: pd.DataFrame) -> list[str]:
    missing = [c for c in _LOAD_COLUMNS if c not in loads.columns]
    if missing:
        raise InputDataError(f"loads table lacks column(s) {missing}; has {list(loads.columns)}")
    names = [str(n) for n in loads["load"]]
    dup = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) < len(names) else []
    if dup:
        raise InputDataError(f"loads table: duplicated load name(s) {dup[:10]}")
    return names


def _digest(seed: int, network: str, what: str, key: str) -> int:
    text = f"{int(seed)}\x1f{network}\x1f{what}\x1f{key}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _uniforms(seed: int, network: str, what: str, keys: Sequence[str]) -> np.ndarray:
    """One uniform in [0, 1) per key, from a stable hash, shape (key,)."""
    return np.array([(_digest(seed, network, what, k) >> 11) / 2.0**53 for k in keys])


def _hash_ints(seed: int, network: str, what: str, keys: Sequence[str]) -> np.ndarray:
    """One non-negative 62-bit integer per key, shape (key,)."""
    return np.array([_digest(seed, network, what, k) >> 2 for k in keys], dtype=np.int64)


def _draw_groups(u: np.ndarray, shares: dict[str, float]) -> np.ndarray:
    groups = [g for g in profiles.GROUPS if shares.get(g, 0) > 0]
    edges = np.cumsum([shares[g] for g in groups]) / sum(shares[g] for g in groups)
    return np.asarray(groups, dtype=object)[np.minimum(np.searchsorted(edges, u, side="right"),
                                                       len(groups) - 1)]


def _first_ranked(u: np.ndarray, names: Sequence[str], pct: int) -> np.ndarray:
    """Mask of the ``round(pct/100 * n)`` customers first in the ranking by ``u``."""
    n_pick = (2 * pct * len(u) + 100) // 200  # round half up, exact in integers
    order = np.lexsort((np.asarray(names, dtype=object).astype(str), u))
    mask = np.zeros(len(u), dtype=bool)
    mask[order[:n_pick]] = True
    return mask


def build_profiles(customers: pd.DataFrame, times: pd.DatetimeIndex, *, network: str,
                   seed: int, source: Literal["synthetic", "enwl", "lcl"] = "synthetic",
                   path: str | os.PathLike | None = None,
                   hp_path: str | os.PathLike | None = None,
                   pv_path: str | os.PathLike | None = None,
                   latitude: float = 53.5, longitude: float = -2.2) -> dict[str, np.ndarray]:
    """Demand and PV series of the customers of one (network, case).

    Parameters
    ----------
    customers : DataFrame, shape (customer, ...)
        Output of :func:`assign_customers` (``group``, ``profile_id``, ``has_hp``, ``pv_kwp``).
    times : DatetimeIndex, shape (time,)
        Regular step starts (see :mod:`agileflex_hpc.inputs.profiles`).
    network, seed
        Network name and study seed.
    source : {"synthetic", "enwl", "lcl"}
        Smart-meter demand: synthetic per group; ``enwl``: the ENWL winter load profiles
        (``path``: their folder or CSV); ``lcl``: a Low Carbon London CSV (``path``). Real
        profiles are pooled: customer -> column ``profile_id % n_profiles`` (groups unused).
    hp_path, pv_path : path, optional
        ENWL heat-pump / PV profile CSVs replacing the synthetic HP / PV (PV columns are
        scaled to 1 kWp by their maximum, then by the customer's kWp).
    latitude, longitude : float
        Site of the synthetic PV. [deg]

    Returns
    -------
    dict
        ``demand_kw``: float32 (time, customer), smart-meter + heat-pump demand [kW];
        ``pv_kw``: float32 (time, customer), PV output [kW].
    """
    for col in ("group", "profile_id", "has_hp", "pv_kwp"):
        if col not in customers.columns:
            raise InputDataError(f"customers table lacks column {col!r}; run assign_customers")
    ids = customers["profile_id"].to_numpy(np.int64)
    demand = _smart_meter(customers, times, ids, network=network, seed=seed, source=source,
                          path=path)
    hp_idx = np.flatnonzero(customers["has_hp"].to_numpy(bool))
    if hp_idx.size:
        demand[:, hp_idx] += _heat_pumps(times, ids[hp_idx], network=network, seed=seed,
                                         hp_path=hp_path)
    kwp = customers["pv_kwp"].to_numpy(float)
    pv = np.zeros((len(times), len(customers)), dtype=np.float32)
    pv_idx = np.flatnonzero(kwp > 0)
    if pv_idx.size:
        pv[:, pv_idx] = _pv(times, kwp[pv_idx], ids[pv_idx], network=network, seed=seed,
                            pv_path=pv_path, latitude=latitude, longitude=longitude)
    return {"demand_kw": demand.astype(np.float32), "pv_kw": pv}


def _smart_meter(customers: pd.DataFrame, times: pd.DatetimeIndex, ids: np.ndarray, *,
                 network: str, seed: int, source: str,
                 path: str | os.PathLike | None) -> np.ndarray:
    if source == "synthetic":
        return profiles.smart_meter_demand(times, list(customers["group"]), ids,
                                           network=network, seed=seed)
    if path is None:
        raise ConfigError(f"profiles.path: required when profiles.source = {source!r}")
    step, rows = _time_rows(times)
    if source == "enwl":
        csv_path = Path(path) / "Winter_Load_Profiles.csv" if Path(path).is_dir() else Path(path)
        table = loaders.load_enwl_profiles(csv_path, step_minutes=step, days=1)[rows]
    elif source == "lcl":
        days = (times[-1].normalize() - times[0].normalize()).days + 1
        lcl = loaders.load_lcl_csv(path, start=times[0], days=days, step_minutes=step)
        table = lcl.reindex(times).to_numpy()
    else:
        raise ConfigError(f"profiles.source: {source!r} is not one of synthetic, enwl, lcl")
    return table[:, ids % table.shape[1]].astype(np.float32)


def _time_rows(times: pd.DatetimeIndex) -> tuple[int, np.ndarray]:
    """(step [min], row of each time in a one-day table at that step)."""
    if len(times) < 2:
        raise InputDataError("times: need at least 2 steps to infer the step")
    step = int((times[1] - times[0]) / pd.Timedelta(minutes=1))
    minutes = ((times - times.normalize()) // pd.Timedelta(minutes=1)).to_numpy()
    if step < 1 or 1440 % step or (minutes % step).any():
        raise InputDataError(f"times: steps of {step} min from midnight are needed for real "
                             "profiles")
    return step, minutes // step


def _heat_pumps(times: pd.DatetimeIndex, ids: np.ndarray, *, network: str, seed: int,
                hp_path: str | os.PathLike | None) -> np.ndarray:
    if hp_path is None:
        return profiles.heat_pump_demand(times, ids, network=network, seed=seed)
    step, rows = _time_rows(times)
    table = loaders.load_enwl_profiles(hp_path, step_minutes=step, days=1)[rows]
    return table[:, (ids >> 20) % table.shape[1]]


def _pv(times: pd.DatetimeIndex, kwp: np.ndarray, ids: np.ndarray, *, network: str, seed: int,
        pv_path: str | os.PathLike | None, latitude: float, longitude: float) -> np.ndarray:
    if pv_path is None:
        return profiles.pv_output(times, kwp, ids, network=network, seed=seed,
                                  latitude=latitude, longitude=longitude)
    step, rows = _time_rows(times)
    table = loaders.load_enwl_profiles(pv_path, step_minutes=step, days=1)
    peak = table.max(axis=0)
    if (peak <= 0).any():
        zero = [int(c) for c in np.flatnonzero(peak <= 0) + 1]
        raise InputDataError(f"{pv_path}: PV column(s) {zero} are all zero; cannot scale them "
                             "to 1 kWp")
    _check_pv_daylight(pv_path, table / peak, times, rows, step, latitude=latitude,
                       longitude=longitude)
    cols = (ids >> 40) % table.shape[1]
    return (table[rows][:, cols] / peak[cols] * kwp).astype(np.float32)


#: largest share of a PV table's energy allowed at steps in full darkness [-]
PV_DARK_SHARE = 0.02


def _check_pv_daylight(path: str | os.PathLike, shape: np.ndarray, times: pd.DatetimeIndex,
                       rows: np.ndarray, step: int, *, latitude: float, longitude: float) -> None:
    """Refuse a PV table that produces while the sun is down (a summer table for a winter
    study: the ENWL one yields from 03:40 to 20:40, which in December would cover the evening
    peak): more than :data:`PV_DARK_SHARE` of its energy over the study's steps falls at steps
    whose start and end both have the sun below the horizon.

    ``shape``: the table scaled to 1 per column (rows: time of day at ``step`` minutes).
    """
    minutes = ((times - times.normalize()) // pd.Timedelta(minutes=1)).to_numpy(dtype=float)
    doy = times.day_of_year.to_numpy()
    dark = np.ones(len(times), dtype=bool)
    for edge in (minutes, minutes + step):
        dark &= profiles.solar_elevation(edge, doy, latitude=latitude, longitude=longitude) < 0
    used = shape.mean(axis=1)[rows]  # the columns' mean output at each study step [kW/kWp]
    share = float(used[dark].sum() / used.sum()) if used.sum() > 0 else 0.0
    if share > PV_DARK_SHARE:
        at = times[dark & (used > 0)]
        raise InputDataError(
            f"{path}: {share:.0%} of the PV profiles' output falls at steps when the sun is "
            f"below the horizon (latitude {latitude:g}, longitude {longitude:g}, e.g. "
            f"{at[0]:%Y-%m-%d %H:%M}); PV profiles must match the study's season and clock "
            "(GMT): a summer profile for a winter study?")
