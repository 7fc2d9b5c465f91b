"""Loaders of real profile data: ENWL LVNS profile tables and Low Carbon London smart meters.

Both return kW at the job's step. Bad values (missing, not a number, ``Null``, negative) raise
:class:`~agileflex_hpc.errors.InputDataError` naming the file, the column and the row, so the
offending cell can be found in an editor.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from agileflex_hpc.errors import ConfigError, InputDataError

__all__ = ["load_enwl_profiles", "load_lcl_csv", "ENWL_ROWS", "ENWL_STEP_MINUTES",
           "LCL_STEP_MINUTES"]

logger = logging.getLogger(__name__)

ENWL_STEP_MINUTES = 5
ENWL_ROWS = 288  # 5-minute steps of one day
LCL_STEP_MINUTES = 30
_LCL_ID, _LCL_TIME, _LCL_KWH = "LCLid", "DateTime", "KWH/hh"


def load_enwl_profiles(csv_path: str | os.PathLike, *, step_minutes: int = 10, days: int = 1
                       ) -> np.ndarray:
    """Read an ENWL LVNS profile table and resample it to the job's step.

    The file has no header, one column per profile and 288 rows, the 5-minute steps of one day
    from 00:00 (the last row may lack a newline); values in kW. A step longer than 5 minutes
    gets the mean of the 5-minute values inside it (energy is kept); a shorter one that divides
    5 minutes repeats the value. The day is repeated ``days`` times.

    Parameters
    ----------
    csv_path : path
        ENWL CSV, e.g. ``Winter_Load_Profiles.csv``.
    step_minutes : int
        Job step: a multiple of 5 that divides 1440, or a divisor of 5. [min]
    days : int
        Days to tile over (>= 1).

    Returns
    -------
    ndarray of float32, shape (days * 1440 / step_minutes, profile)
        Mean power over each step. [kW]
    """
    _check_step(step_minutes, ENWL_STEP_MINUTES, field="step_minutes")
    if days < 1:
        raise ConfigError(f"days: {days} must be >= 1")
    path = Path(csv_path)
    raw = _read_enwl_table(path)
    if raw.shape[0] != ENWL_ROWS:
        raise InputDataError(f"{path}: {raw.shape[0]} rows, expected {ENWL_ROWS} "
                             "(5-minute steps of one day)")
    values = _numeric(raw, path, col_names=[str(c + 1) for c in range(raw.shape[1])],
                      line_of_row=np.arange(1, raw.shape[0] + 1))
    daily = _resample(values, from_minutes=ENWL_STEP_MINUTES, to_minutes=step_minutes)
    logger.debug("%s: %d profiles resampled to %d min x %d days", path, values.shape[1],
                 step_minutes, days)
    return np.tile(daily, (days, 1)).astype(np.float32)


def _read_enwl_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, header=None, dtype=str, skip_blank_lines=False,
                           keep_default_na=False)
    except FileNotFoundError as exc:
        raise InputDataError(f"{path}: profile file not found") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: not a comma-separated table of numbers ({exc})") from exc


def _numeric(raw: pd.DataFrame, path: Path, *, col_names: list[str],
             line_of_row: np.ndarray) -> np.ndarray:
    """Table of strings -> float64 array; the first bad cell raises naming column and row."""
    values = raw.apply(lambda s: pd.to_numeric(s.str.strip(), errors="coerce")).to_numpy(float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise _bad_cell(path, col_names[col], int(line_of_row[row]), raw.iat[row, col],
                        values[row, col], int(bad.sum()))
    return values


def _bad_cell(path: Path, column: str, line: int, cell: object, value: float,
              n_bad: int) -> InputDataError:
    reason = "negative value" if np.isfinite(value) else "missing or not a number"
    return InputDataError(
        f"{path}: column {column}, row {line}: {reason} ({cell!r}); values must be finite "
        f"numbers >= 0 ({n_bad} bad cell(s))")


def _check_step(step_minutes: int, native: int, *, field: str) -> None:
    ok = step_minutes >= 1 and 1440 % step_minutes == 0 and (
        step_minutes % native == 0 or native % step_minutes == 0)
    if not ok:
        raise ConfigError(f"{field}: {step_minutes} must divide 1440 and be a multiple or a "
                          f"divisor of the data's {native}-minute step")


def _resample(values: np.ndarray, *, from_minutes: int, to_minutes: int) -> np.ndarray:
    """(n, k) at ``from_minutes`` -> step means (longer step) or held values (shorter)."""
    if to_minutes >= from_minutes:
        per = to_minutes // from_minutes
        n = values.shape[0] // per * per
        return values[:n].reshape(n // per, per, -1).mean(axis=1)
    return np.repeat(values, from_minutes // to_minutes, axis=0)


def load_lcl_csv(path: str | os.PathLike, *, start: str | pd.Timestamp, days: int,
                 step_minutes: int = 10, meters: list[str] | None = None,
                 label: Literal["start", "end"] = "start") -> pd.DataFrame:
    """Read a Low Carbon London smart-meter CSV ("Small LCL data" layout) for a date range.

    Columns ``LCLid,stdorToU,DateTime,KWH/hh (per half hour) `` (header names are matched
    after stripping blanks; ``stdorToU`` is optional). Each row is one meter's energy in one
    half hour; kW = kWh x 2. Values are held over the job's shorter steps (e.g. three
    10-minute steps) or averaged over longer ones. Only the rows of the requested meters and
    dates are checked: a ``Null``, blank or negative value there, or a missing half hour,
    raises :class:`InputDataError`. Duplicated (meter, time) rows keep the first.

    Parameters
    ----------
    path : path
        LCL CSV file.
    start : str or Timestamp
        First day (local midnight).
    days : int
        Number of days (>= 1).
    step_minutes : int
        Job step: a divisor or a multiple of 30 that divides 1440. [min]
    meters : list of str, optional
        Meter ids to keep (default: every meter in the file), in this order.
    label : {"start", "end"}
        Whether ``DateTime`` stamps the start or the end of its half hour.

    Returns
    -------
    DataFrame of float32, shape (time, meter)
        Index: step starts (naive local time); columns: meter ids (sorted if not given). [kW]
    """
    _check_step(step_minutes, LCL_STEP_MINUTES, field="step_minutes")
    if days < 1:
        raise ConfigError(f"days: {days} must be >= 1")
    path = Path(path)
    t0 = pd.Timestamp(start).normalize()
    slots = pd.date_range(t0, periods=days * 48, freq="30min")
    table = _read_lcl_rows(path, slots, meters=meters, label=label)
    kw = _lcl_grid(table, path, slots, meters=meters)
    values = _resample(kw.to_numpy(), from_minutes=LCL_STEP_MINUTES, to_minutes=step_minutes)
    index = pd.date_range(t0, periods=values.shape[0], freq=f"{step_minutes}min")
    return pd.DataFrame(values.astype(np.float32), index=index, columns=kw.columns)


def _read_lcl_rows(path: Path, slots: pd.DatetimeIndex, *, meters: list[str] | None,
                   label: str) -> pd.DataFrame:
    """Rows of the requested meters inside ``slots``, with their 1-based file line."""
    cols = _lcl_columns(path)
    try:
        raw = pd.read_csv(path, usecols=list(cols.values()), dtype=str, keep_default_na=False,
                          skip_blank_lines=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: not a readable LCL CSV ({exc})") from exc
    raw.columns = [k for k, _ in sorted(cols.items(), key=lambda kv: kv[1])]
    ids = raw[_LCL_ID].fillna("").str.strip()
    stamp = raw[_LCL_TIME].fillna("").str.strip().str.slice(0, 19)  # drop ".0000000"
    times = pd.to_datetime(stamp, errors="coerce", format="%Y-%m-%d %H:%M:%S")
    rows = pd.DataFrame({_LCL_ID: ids, "time": times, _LCL_KWH: raw[_LCL_KWH],
                         "line": np.arange(len(raw)) + 2})  # line 1 is the header
    rows = rows[ids != ""]  # blank lines
    if rows["time"].isna().any():
        line = int(rows.loc[rows["time"].isna(), "line"].iloc[0])
        raise InputDataError(f"{path}: column {_LCL_TIME}, row {line}: not a date-time "
                             "(expected YYYY-MM-DD HH:MM:SS)")
    if label == "end":
        rows["time"] = rows["time"] - pd.Timedelta(minutes=LCL_STEP_MINUTES)
    keep = rows["time"].isin(slots)
    if meters is not None:
        keep &= rows[_LCL_ID].isin(meters)
    return rows[keep]


def _lcl_columns(path: Path) -> dict[str, int]:
    """Positions of the LCLid, DateTime and KWH/hh columns from the header."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except FileNotFoundError as exc:
        raise InputDataError(f"{path}: smart-meter file not found") from exc
    names = [h.strip() for h in header]
    found: dict[str, int | None] = {_LCL_ID: None, _LCL_TIME: None, _LCL_KWH: None}
    for i, name in enumerate(names):
        for key in found:
            if found[key] is None and name.startswith(key):
                found[key] = i
    missing = [k for k, v in found.items() if v is None]
    if missing:
        shown = names[:6] + ([f"... {len(names) - 6} more"] if len(names) > 6 else [])
        raise InputDataError(f"{path}: header {shown} lacks column(s) {missing}; expected "
                             "LCLid,stdorToU,DateTime,KWH/hh (per half hour)")
    return {k: v for k, v in found.items() if v is not None}  # none is missing here


def _lcl_grid(rows: pd.DataFrame, path: Path, slots: pd.DatetimeIndex, *,
              meters: list[str] | None) -> pd.DataFrame:
    """(slot, meter) kW table; bad values and missing half hours raise."""
    if rows.duplicated([_LCL_ID, "time"]).any():
        logger.warning("%s: duplicated (meter, time) rows, keeping the first", path)
        rows = rows.drop_duplicates([_LCL_ID, "time"], keep="first")
    ids = list(meters) if meters is not None else sorted(rows[_LCL_ID].unique())
    present = set(rows[_LCL_ID])
    absent = [m for m in ids if m not in present]
    if not ids or absent:
        raise InputDataError(f"{path}: no data for meter(s) {absent or 'any'} from {slots[0]} "
                             f"to {slots[-1]}")
    kwh = pd.to_numeric(rows[_LCL_KWH].str.strip(), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(kwh) | (kwh < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise _bad_cell(path, str(rows[_LCL_ID].iat[i]), int(rows["line"].iat[i]),
                        rows[_LCL_KWH].iat[i], kwh[i], int(bad.sum()))
    rows = rows.assign(kw=kwh * 2.0)
    grid = rows.pivot(index="time", columns=_LCL_ID, values="kw").reindex(index=slots,
                                                                          columns=ids)
    if grid.isna().any().any():
        meter = grid.columns[grid.isna().any()][0]
        when = grid.index[grid[meter].isna()][0]
        raise InputDataError(f"{path}: column {meter}: no reading for the half hour from "
                             f"{when} ({int(grid[meter].isna().sum())} missing)")
    return grid
