"""EV fleets: one charging session per EV over the noon-to-noon horizon.

Times are step indices into the horizon: step 0 starts at 12:00 and the horizon has
``steps = 24 * 60 / step_minutes`` steps (144 at 10 min). An EV is plugged in during
``[t_in, t_out)``: ``t_in`` is the first step it can charge, ``t_out`` the first step it is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from agileflex_hpc.errors import InputDataError

__all__ = ["EvFleet", "draw_fleet", "load_fleet_csv"]

logger = logging.getLogger(__name__)

_FLOAT_FIELDS = ("e_start_kwh", "e_end_kwh", "battery_kwh", "charger_kw")
_SESSION_COLUMNS = ("name", "t_in", "t_out", "EStart", "EEnd")
_VEHICLE_COLUMNS = ("name", "capacity(kW)", "battery(kWh)")


@dataclass(frozen=True)
class EvFleet:
    """Charging sessions of ``n`` EVs, one per EV, as parallel arrays of shape (ev,).

    Attributes
    ----------
    name : ndarray of str, shape (ev,)
        EV identifiers.
    t_in : ndarray of int, shape (ev,)
        Arrival step, inclusive (first step the EV can charge). [step]
    t_out : ndarray of int, shape (ev,)
        Departure step, exclusive; ``t_in < t_out <= steps``. [step]
    e_start_kwh : ndarray of float, shape (ev,)
        Energy in the battery on arrival. [kWh]
    e_end_kwh : ndarray of float, shape (ev,)
        Energy required in the battery at departure (a lower bound). [kWh]
    battery_kwh : ndarray of float, shape (ev,)
        Usable battery capacity. [kWh]
    charger_kw : ndarray of float, shape (ev,)
        Charger rating, the same for charging and V2G discharge. [kW]
    """

    name: np.ndarray
    t_in: np.ndarray
    t_out: np.ndarray
    e_start_kwh: np.ndarray
    e_end_kwh: np.ndarray
    battery_kwh: np.ndarray
    charger_kw: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", np.asarray(self.name, dtype=str).reshape(-1))
        for key in ("t_in", "t_out"):
            value = np.asarray(getattr(self, key), dtype=np.int64).reshape(-1)
            object.__setattr__(self, key, value)
        for key in _FLOAT_FIELDS:
            object.__setattr__(self, key, np.asarray(getattr(self, key), dtype=float).reshape(-1))
        sizes = {f.name: getattr(self, f.name).size for f in fields(self)}
        if len(set(sizes.values())) > 1:
            raise InputDataError(f"EvFleet arrays differ in length: {sizes}")

    @property
    def n(self) -> int:
        """Number of EVs."""
        return int(self.name.size)

    def validate(self, *, steps: int | None = None) -> list[str]:
        """Return every problem of the fleet, one message per field (empty if valid).

        Parameters
        ----------
        steps : int, optional
            Horizon length; when given, ``t_out <= steps`` is checked too. [step]
        """
        checks = [
            ("t_in", self.t_in < 0, "must be >= 0"),
            ("t_out", self.t_out <= self.t_in, "must be > t_in"),
            ("e_start_kwh", ~(self.e_start_kwh >= 0), "must be finite and >= 0"),
            ("e_end_kwh", ~(self.e_end_kwh >= 0), "must be finite and >= 0"),
            ("battery_kwh", ~(self.battery_kwh > 0) | ~np.isfinite(self.battery_kwh),
             "must be finite and > 0"),
            ("charger_kw", ~(self.charger_kw > 0) | ~np.isfinite(self.charger_kw),
             "must be finite and > 0"),
            ("e_end_kwh", self.e_end_kwh > self.battery_kwh, "must be <= battery_kwh"),
            ("e_start_kwh", self.e_start_kwh > self.battery_kwh, "must be <= battery_kwh"),
        ]
        if steps is not None:
            checks.append(("t_out", self.t_out > steps, f"must be <= steps ({steps})"))
        return [f"{key} {why} for EVs {self.name[bad][:10].tolist()}"
                for key, bad, why in checks if np.any(bad)]

    def assert_valid(self, *, steps: int | None = None) -> None:
        """Raise `InputDataError` listing every problem found by `validate`."""
        problems = self.validate(steps=steps)
        if problems:
            raise InputDataError("invalid EV fleet:\n  - " + "\n  - ".join(problems))

    def to_frame(self) -> pd.DataFrame:
        """The sessions as a DataFrame, one row per EV, columns named as the attributes."""
        return pd.DataFrame({f.name: getattr(self, f.name) for f in fields(self)})


def draw_fleet(
    n: int,
    seed_or_rng: int | np.random.Generator | np.random.SeedSequence | list[int] | None,
    *,
    steps: int = 144,
    step_minutes: int = 10,
    mean_daily_kwh: float = 14.2,
    fast_share: float = 0.5,
    efficiency: float = 0.95,
) -> EvFleet:
    """Draw ``n`` synthetic UK-like overnight charging sessions.

    Arrivals ~ N(18:00, 1.5 h) clipped to 15:00-23:00; departures ~ N(07:30, 1 h) clipped to
    05:00-10:00; energy needed ~ Gamma(shape 3, mean ``mean_daily_kwh``), clipped to 90 % of what
    the charger can deliver in the dwell time and to the battery; battery U(40, 75) kWh; charger
    7.4 kW with probability ``fast_share``, else 3.7 kW; target energy at departure U(80, 100) %
    of the battery, and the start energy is that minus the energy needed (>= 5 % of the battery).

    Parameters
    ----------
    n : int
        Number of EVs.
    seed_or_rng : int, sequence of int, SeedSequence or Generator
        Passed to `numpy.random.default_rng`; the same seed gives the same fleet.
    steps, step_minutes : int
        Horizon length [step] and step length [min]; ``steps * step_minutes`` must be one day.
    mean_daily_kwh : float
        Mean energy needed per EV before clipping. [kWh]
    fast_share : float
        Share of 7.4 kW chargers. [-]
    efficiency : float
        Charging efficiency used for the deliverable-energy cap. [-]

    Returns
    -------
    EvFleet
        ``n`` sessions named ``ev0000``, ``ev0001``, ...
    """
    if steps * step_minutes != 24 * 60:
        raise ValueError(f"steps * step_minutes must be 1440 (one day), got {steps}*{step_minutes}")
    rng = np.random.default_rng(seed_or_rng)
    per_hour = 60 / step_minutes
    arrive_h = np.clip(rng.normal(18.0, 1.5, n), 15.0, 23.0)
    depart_h = np.clip(rng.normal(7.5, 1.0, n), 5.0, 10.0)
    t_in = np.rint((arrive_h - 12.0) * per_hour).astype(np.int64)
    t_out = np.rint((depart_h + 12.0) * per_hour).astype(np.int64)
    need = rng.gamma(3.0, mean_daily_kwh / 3.0, n)
    battery = rng.uniform(40.0, 75.0, n)
    charger = np.where(rng.random(n) < fast_share, 7.4, 3.7)
    e_end = battery * rng.uniform(0.8, 1.0, n)
    deliverable = 0.9 * charger * efficiency * (t_out - t_in) / per_hour
    need = np.minimum(need, np.minimum(deliverable, e_end - 0.05 * battery))
    names = np.array([f"ev{i:04d}" for i in range(n)], dtype=str)
    return EvFleet(names, t_in, t_out, e_end - need, e_end, battery, charger)


def load_fleet_csv(
    sessions_csv: str | Path,
    vehicles_csv: str | Path,
    *,
    step_minutes: int = 10,
    steps: int = 144,
) -> EvFleet:
    """Load the study's session and vehicle tables into an `EvFleet`.

    Parameters
    ----------
    sessions_csv : path
        Columns ``name,t_in,t_out,EStart,EEnd``: arrival and departure steps of the noon-to-noon
        horizon [step] and the energy in the battery on arrival and needed at departure [kWh].
    vehicles_csv : path
        Columns ``name,capacity(kW),battery(kWh)``; extra columns are ignored.
    step_minutes, steps : int
        Step length [min] and horizon length [step]; ``t_out <= steps``.

    Returns
    -------
    EvFleet
        One EV per session row, in file order.

    Raises
    ------
    InputDataError
        Listing every bad cell as ``<file>: row <r>, column '<col>': <reason>``, ``r`` counting
        data rows from 1 after the header.
    """
    logger.debug("loading EV sessions %s (step %d min)", sessions_csv, step_minutes)
    vehicles, problems = _read_vehicles(Path(vehicles_csv))
    sessions = _read_table(Path(sessions_csv), _SESSION_COLUMNS)
    problems += _check_sessions(sessions, Path(sessions_csv), vehicles, steps)
    if problems:
        raise InputDataError("invalid EV tables:\n  - " + "\n  - ".join(problems))
    vehicle = vehicles.loc[sessions["name"]]
    return EvFleet(
        sessions["name"].to_numpy(str), sessions["t_in"].to_numpy(np.int64),
        sessions["t_out"].to_numpy(np.int64), sessions["EStart"].to_numpy(float),
        sessions["EEnd"].to_numpy(float), vehicle["battery(kWh)"].to_numpy(float),
        vehicle["capacity(kW)"].to_numpy(float),
    )


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV with ``name`` as text, raising if a required column is missing."""
    try:
        table = pd.read_csv(path, dtype={"name": str}, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"{path}: cannot read CSV: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputDataError(f"{path}: missing columns {missing}; found {list(table.columns)}")
    table["name"] = table["name"].astype(str).str.strip()
    return table


def _numeric(table: pd.DataFrame, column: str) -> pd.Series:
    """Column as float, non-numeric cells as NaN."""
    return pd.to_numeric(table[column], errors="coerce").astype(float)


def _cell_problems(path: Path, column: str, bad: np.ndarray, why: str) -> list[str]:
    """One message per flagged row, rows counted from 1 after the header."""
    return [f"{path}: row {r + 1}, column '{column}': {why}" for r in np.flatnonzero(bad)]


def _read_vehicles(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Vehicle table indexed by name, and the problems found in it."""
    table = _read_table(path, _VEHICLE_COLUMNS)
    problems = _cell_problems(path, "name", table["name"].duplicated().to_numpy(),
                              "duplicate vehicle name")
    for column in ("capacity(kW)", "battery(kWh)"):
        value = _numeric(table, column).to_numpy()
        table[column] = value
        problems += _cell_problems(path, column, ~(value > 0) | ~np.isfinite(value),
                                   "must be a finite number > 0")
    return table.drop_duplicates("name").set_index("name"), problems


def _check_sessions(
    table: pd.DataFrame, path: Path, vehicles: pd.DataFrame, steps: int
) -> list[str]:
    """Problems of the session rows; converts the numeric columns of ``table`` in place."""
    problems: list[str] = []
    ok_time = np.ones(len(table), dtype=bool)
    for column in ("t_in", "t_out"):
        v = _numeric(table, column).to_numpy()
        bad = ~np.isfinite(v) | (v != np.round(v)) | (v < 0) | (v > steps)
        problems += _cell_problems(path, column, bad, f"must be an integer step in [0, {steps}]")
        table[column] = np.where(bad, 0, v).astype(np.int64)
        ok_time &= ~bad
    backwards = ok_time & (table["t_out"] <= table["t_in"]).to_numpy()
    problems += _cell_problems(path, "t_out", backwards,
                               "departure must be after arrival (t_out > t_in)")
    known = table["name"].isin(vehicles.index).to_numpy()
    problems += _cell_problems(path, "name", ~known, "unknown vehicle (not in the vehicles table)")
    battery = vehicles["battery(kWh)"].reindex(table["name"]).to_numpy(float)
    for column in ("EStart", "EEnd"):
        v = _numeric(table, column).to_numpy()
        table[column] = v
        problems += _cell_problems(path, column, ~(v >= 0) | ~np.isfinite(v),
                                   "must be a finite number >= 0")
        problems += _cell_problems(path, column, known & (v > battery),
                                   "exceeds the vehicle's battery(kWh)")
    return problems
