"""The EV horizon: one day from noon to noon (DESIGN stage 7), in one place.

Daily profiles (quantile headroom, the tariff, EV sessions) start at 00:00 in stages 1-6 and at
12:00 on the EV horizon, so an evening's charging is not cut at midnight. Every conversion
between the two, and between study steps and horizon steps, goes through this module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["START_MINUTE", "from_midnight", "horizon_minutes", "horizon_index"]

START_MINUTE = 720  # the horizon starts at 12:00 [min after midnight]


def from_midnight(profile: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """A daily profile whose step 0 is 00:00, re-ordered so that step 0 is 12:00.

    Parameters
    ----------
    profile : ndarray
        Daily profile(s), ``steps_per_day`` long along ``axis`` (an even number of steps).
    """
    steps = np.asarray(profile).shape[axis]
    return np.roll(profile, -(steps * START_MINUTE // 1440), axis=axis)


def horizon_minutes(steps_per_day: int, step_minutes: int) -> np.ndarray:
    """Minute of the day at the start of every horizon step, shape (steps_per_day,). [min]"""
    return (np.arange(steps_per_day) * step_minutes + START_MINUTE) % 1440


def horizon_index(times: pd.DatetimeIndex, *, step_minutes: int,
                  start_minute: int = START_MINUTE) -> np.ndarray:
    """Horizon step of every study step.

    Parameters
    ----------
    times : DatetimeIndex, shape (time,)
        Start of every study step (study-local clock).
    step_minutes : int
        Step length. [min]
    start_minute : int
        Time of day at which the horizon starts (720: 12:00). [min]

    Returns
    -------
    ndarray of int64, shape (time,)
        ``((tod - start) mod 1440) // step_minutes`` with ``tod`` the minute of the day.
    """
    tod = np.asarray(times.hour * 60 + times.minute, dtype=np.int64)
    return ((tod - start_minute) % 1440) // step_minutes
