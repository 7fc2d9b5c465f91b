"""Seeded synthetic customer series: smart-meter demand, heat-pump demand and PV output.

Time axis
---------
``times`` is a regular :class:`pandas.DatetimeIndex` of step starts (see :func:`make_times`),
naive and read as UK local clock time without daylight saving (GMT; equal to UTC in winter).
A value at ``t`` is the mean power over ``[t, t + step)``. Every model is simulated at
1-minute resolution per day and averaged to the step, so any step that divides a day works.

Determinism
-----------
Every random number comes from ``numpy.random.default_rng`` seeded with
``(seed, stable_hash(network), stream, profile_id, day)`` (:func:`customer_rng`), where ``day``
is the date's proleptic ordinal. A customer's series therefore depends only on the seed, the
network name, its profile id and the dates -- not on the other customers, on how the work is
split, nor on which block (day range) is generated. Appliance runs are cut at midnight.
Weather (daily temperature) depends only on (seed, date): all networks share it. PV cloud
cover is drawn per (seed, network, day), so customers of one network see the same clouds.

Smart-meter model
-----------------
Standby base + a smooth occupancy curve (lighting, TV, small loads: night low, morning bump,
evening peak, more daytime use at weekends) + Poisson appliance runs (kettle, microwave, oven,
hob, washing machine, dishwasher, vacuum/iron, portable heater; electric shower, tumble dryer
and immersion heater with a per-customer use propensity) at typical powers and durations,
with time-of-day densities. Per-group scales were tuned (14 000 customer-days per group,
8-14 January 2024; within 0.5 % on 14 000 in February, 0.6-0.9 % low on 35 000 from
2013-12-02) to the study statistics in
:data:`GROUP_STATS`: the daily peak matched is the mean over customer-days of the maximum
10-minute mean of a day (not the half-hourly one), the daily demand the mean kWh per day.
Other steps keep the energy; their peaks are step means of the same 1-minute series.

Heat-pump model
---------------
Daily mean outdoor temperature = climatology (4.5 °C mid-January, 16.5 °C mid-July) + an
anomaly with AR(1)-like persistence (phi 0.75, sd 3 °C; a truncated moving average of daily
innovations, so it needs no state from earlier blocks), + a 2 °C diurnal swing. Daily heat
[kWh] = heat-loss constant [kWh/degree-day] x degree-days (base 15.5 °C), delivered in a
morning and an evening heating period (with a pull-down boost at the start) and a low
set-back outside them; electrical power = heat / COP(T), COP = 2.9 + 0.07 (T - 5) in
[1.8, 4.5], capped at the rating (3-8 kW electrical), run in on/off cycles (20-30 min) below
35 % of the rating; plus one daily hot-water run.

PV model
--------
Sun position from day of year and clock time (Cooper declination, Spencer equation of time,
53.5 N, 2.2 W by default), Haurwitz clear-sky irradiance split 85/15 into beam and diffuse,
transposed to a per-customer plane (tilt 25-45°, azimuth south +-45°), x performance ratio
0.85 x a cloud transmission (daily clearness per network plus a smooth intra-day variation
shared by the network, and a small per-customer variation), clipped to [0, kWp].
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agileflex_hpc.errors import InputDataError

__all__ = [
    "GROUPS",
    "GROUP_STATS",
    "make_times",
    "stable_hash",
    "customer_rng",
    "daily_temperature",
    "smart_meter_demand",
    "heat_pump_demand",
    "pv_output",
    "solar_elevation",
]

logger = logging.getLogger(__name__)

GROUPS: tuple[str, ...] = ("Adversity", "Comfortable", "Affluent")
#: Study statistics per group: mean daily demand [kWh] and mean daily 10-min peak [kW].
GROUP_STATS: dict[str, dict[str, float]] = {
    "Adversity": {"daily_kwh": 8.04, "daily_peak_kw": 3.88},
    "Comfortable": {"daily_kwh": 9.62, "daily_peak_kw": 4.62},
    "Affluent": {"daily_kwh": 12.87, "daily_peak_kw": 5.58},
}

_DAY_MIN = 1440
# Random streams: each model draws from its own, so adding one never shifts another.
_S_SM_PARAM, _S_SM_DAY, _S_HP_PARAM, _S_HP_DAY = 1, 2, 3, 4
_S_PV_PARAM, _S_PV_DAY, _S_CLOUD, _S_WEATHER = 5, 6, 7, 8
_WEATHER_KEY = "weather"  # temperature is shared by every network of a seed


class _GroupParams(NamedTuple):
    base_kw: float  # standby + cold appliances, mean [kW]
    smooth_kw: float  # mean of the occupancy curve [kW]
    event_rate: float  # multiplier on appliance-run rates [-]
    power_scale: float  # multiplier on appliance powers [-]
    p_shower: float  # share owning an electric shower
    p_dryer: float  # share owning a tumble dryer
    p_immersion: float  # share heating hot water with an immersion heater


# Tuned so that the group means match GROUP_STATS (see module docstring).
_GROUP_PARAMS = {
    "Adversity": _GroupParams(0.090, 0.0660, 0.843, 1.0, 0.40, 0.30, 0.10),
    "Comfortable": _GroupParams(0.100, 0.0790, 0.902, 1.1, 0.50, 0.45, 0.10),
    "Affluent": _GroupParams(0.120, 0.1340, 1.003, 1.2, 0.60, 0.60, 0.10),
}


class _Appliance(NamedTuple):
    rate: float  # runs per day [1/day]
    p_kw: tuple[float, float]  # power range [kW]
    minutes: tuple[int, int]  # duration range [min]
    tod: tuple[tuple[float, float, float], ...]  # (hour, sd [h], weight) of start times
    owner: str  # "" (everyone), "shower", "dryer", "immersion"


_APPLIANCES: tuple[_Appliance, ...] = (
    _Appliance(4.0, (2.4, 3.0), (2, 4), ((7.5, 1.0, 0.3), (11.5, 2, 0.2), (16.5, 1.5, 0.25),
                                         (20.5, 1.5, 0.25)), ""),  # kettle
    _Appliance(1.5, (0.9, 1.3), (2, 6), ((7.5, 1.0, 0.3), (12.5, 1.0, 0.3), (18, 1.5, 0.4)), ""),
    _Appliance(0.9, (2.0, 3.5), (20, 45), ((12.5, 1.0, 0.2), (17.5, 1.0, 0.6), (19, 1.0, 0.2)),
               ""),  # cooking
    _Appliance(0.5, (1.8, 2.2), (15, 25), ((10, 2.0, 0.5), (15, 2.5, 0.3), (19.5, 1.5, 0.2)),
               ""),  # washing machine heating
    _Appliance(0.4, (1.8, 2.2), (20, 30), ((13.5, 1.0, 0.2), (20.5, 1.2, 0.8)), ""),  # dishwasher
    _Appliance(0.3, (1.2, 2.0), (15, 40), ((10.5, 2.0, 0.6), (19, 2.0, 0.4)), ""),  # vacuum, iron
    _Appliance(0.5, (2.2, 2.8), (40, 60), ((11, 2.0, 0.4), (16, 2.5, 0.4), (20, 1.5, 0.2)),
               "dryer"),
    _Appliance(0.9, (8.5, 10.5), (4, 9), ((7.0, 0.8, 0.6), (21, 1.5, 0.4)), "shower"),
    _Appliance(1.0, (1.2, 2.0), (10, 30), ((12.5, 1.0, 0.25), (17.8, 1.0, 0.75)), ""),  # hob
    _Appliance(0.4, (2.0, 3.0), (20, 60), ((7.5, 1.0, 0.3), (19.5, 1.5, 0.7)), ""),  # heater
    _Appliance(0.7, (2.8, 3.0), (30, 60), ((5.5, 1.5, 0.5), (17.0, 1.5, 0.5)), "immersion"),
)

# Occupancy curve, hourly, weekday winter (mean about 1); weekends lift 09-16 h by 30 %.
_SMOOTH_HOURLY = (0.45, 0.35, 0.30, 0.28, 0.28, 0.30, 0.50, 0.95, 1.05, 0.85, 0.80, 0.80,
                  0.85, 0.80, 0.80, 0.90, 1.20, 1.65, 1.90, 1.95, 1.85, 1.65, 1.25, 0.80)


def make_times(start: str | pd.Timestamp, *, days: int, step_minutes: int = 10) -> pd.DatetimeIndex:
    """Step starts from local midnight of ``start`` for ``days`` days.

    Parameters
    ----------
    start : str or Timestamp
        First day (its time of day is dropped).
    days : int
        Number of days (>= 1).
    step_minutes : int
        Step length; must divide a day. [min]

    Returns
    -------
    DatetimeIndex, shape (time,)
        Naive UK local clock time (GMT, no daylight saving), ``days * 1440 / step`` entries.
    """
    if days < 1 or step_minutes < 1 or _DAY_MIN % step_minutes:
        raise ValueError(f"make_times: days {days} must be >= 1 and step_minutes {step_minutes} "
                         "must divide 1440")
    t0 = pd.Timestamp(start).normalize()
    return pd.date_range(t0, periods=days * _DAY_MIN // step_minutes, freq=f"{step_minutes}min")


def stable_hash(text: str) -> int:
    """64-bit hash of ``text`` that is the same in every process (unlike :func:`hash`)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def customer_rng(seed: int, network: str, stream: int, profile_id: int,
                 day: int = 0) -> np.random.Generator:
    """Random generator for one (seed, network, stream, profile, day); order independent."""
    return np.random.default_rng([int(seed), stable_hash(network), stream, int(profile_id), day])


def daily_temperature(days: Sequence | pd.DatetimeIndex, *, seed: int) -> np.ndarray:
    """Daily mean outdoor temperature of a seeded synthetic UK (NW England) climate.

    Parameters
    ----------
    days : sequence of dates, shape (day,)
    seed : int

    Returns
    -------
    ndarray, shape (day,)
        Daily mean temperature. [°C]
    """
    ords = np.array([pd.Timestamp(d).toordinal() for d in days], dtype=np.int64)
    phi, sd, lags = 0.75, 3.0, 24
    weights = sd * math.sqrt(1 - phi**2) * phi ** np.arange(lags)
    out = np.empty(len(ords))
    for i, o in enumerate(ords):
        eps = np.array([_weather_innovation(seed, int(o - k)) for k in range(lags)])
        doy = pd.Timestamp.fromordinal(int(o)).day_of_year
        out[i] = 10.5 - 6.0 * math.cos(2 * math.pi * (doy - 20) / 365.25) + weights @ eps
    return out


@functools.lru_cache(maxsize=4096)
def _weather_innovation(seed: int, day: int) -> float:
    return float(customer_rng(seed, _WEATHER_KEY, _S_WEATHER, 0, day).standard_normal())


def smart_meter_demand(times: pd.DatetimeIndex, groups: Sequence[str],
                       profile_ids: Sequence[int] | NDArray[np.integer], *, network: str,
                       seed: int) -> np.ndarray:
    """Synthetic winter smart-meter demand of residential customers.

    Parameters
    ----------
    times : DatetimeIndex, shape (time,)
        Regular step starts (see module docstring).
    groups : sequence of str, shape (customer,)
        Customer group, one of :data:`GROUPS`.
    profile_ids : sequence of int, shape (customer,)
        Per-customer id seeding its series (>= 0).
    network, seed
        Network name and seed (see module docstring).

    Returns
    -------
    ndarray of float32, shape (time, customer)
        Mean demand over each step, >= 0. [kW]
    """
    bad = sorted({g for g in groups if g not in _GROUP_PARAMS})
    if bad:
        raise InputDataError(f"customer group(s) {bad} unknown; valid: {list(GROUPS)}")
    grid = _MinuteGrid(times)
    out = np.empty((len(times), len(groups)), dtype=np.float32)
    for c, (group, pid) in enumerate(zip(groups, profile_ids, strict=True)):
        cust = _sm_customer(seed, network, pid, _GROUP_PARAMS[group])
        minute_kw = np.concatenate([_sm_day(date, _GROUP_PARAMS[group], cust, seed, network, pid)
                                    for date in grid.dates])
        out[:, c] = grid.step_means(minute_kw)
    return out


def _sm_customer(seed: int, network: str, pid: int, gp: _GroupParams) -> dict:
    """Per-customer habits: size, activity, shift of the daily routine, appliance use.

    Use of the appliances only some own (electric shower, tumble dryer, immersion heater) is
    a propensity ~ Beta with the group's ownership share as mean (concentration 3), which
    keeps a group's mean close to the study's over a few dozen customers.
    """
    rng = customer_rng(seed, network, _S_SM_PARAM, pid)
    size, activity = np.exp(rng.normal(-0.5 * 0.15**2, 0.15, 2))
    use = {"": 1.0}
    for owner, p in (("shower", gp.p_shower), ("dryer", gp.p_dryer),
                     ("immersion", gp.p_immersion)):
        use[owner] = float(rng.beta(3 * p, 3 * (1 - p)))
    use_vec = np.array([use[a.owner] for a in _APPLIANCES])
    return {"size": size, "activity": activity, "shift_min": rng.uniform(-45, 45),
            "use_vec": use_vec}


def _sm_day(date: pd.Timestamp, gp: _GroupParams, cust: dict, seed: int,
            network: str, pid: int) -> np.ndarray:
    """One customer-day of 1-minute demand [kW], shape (1440,)."""
    rng = customer_rng(seed, network, _S_SM_DAY, pid, date.toordinal())
    weekend = date.day_of_week >= 5
    day_factor = math.exp(rng.normal(-0.5 * 0.2**2, 0.2))
    shape = _smooth_shape(weekend)
    shift = int(round(cust["shift_min"]))
    minute_kw = np.roll(shape, shift) * (gp.smooth_kw * cust["size"] * day_factor)
    minute_kw += gp.base_kw * cust["size"] * (1.0 + 0.15 * rng.standard_normal(_DAY_MIN)).clip(0.5)
    rate_scale = gp.event_rate * cust["activity"] * day_factor * (1.1 if weekend else 1.0)
    rates = _appliance_table()["rate"] * rate_scale * cust["use_vec"]
    _add_runs(minute_kw, rng, rates, gp.power_scale, shift)
    return minute_kw


def _add_runs(minute_kw: np.ndarray, rng: np.random.Generator, rates: np.ndarray,
              power_scale: float, shift: int) -> None:
    """Add Poisson appliance runs (in place) to one day of 1-minute demand [kW].

    ``rates`` (appliance,) are the expected runs of the day; starts follow each appliance's
    time-of-day density (shifted by the customer's routine), runs are cut at midnight.
    """
    tab = _appliance_table()
    k = np.repeat(np.arange(rates.size), rng.poisson(rates))
    if k.size == 0:
        return
    minute = np.searchsorted(tab["cdf_flat"], k + rng.random(k.size)) - k * _DAY_MIN
    starts = (np.clip(minute, 0, _DAY_MIN - 1) + shift) % _DAY_MIN
    ends = np.minimum(starts + rng.integers(tab["min_lo"][k], tab["min_hi"][k] + 1), _DAY_MIN)
    power = rng.uniform(tab["p_lo"][k], tab["p_hi"][k]) * power_scale
    diff = (np.bincount(starts, power, minlength=_DAY_MIN + 1)
            - np.bincount(ends, power, minlength=_DAY_MIN + 1))
    minute_kw += np.cumsum(diff[:-1])


@functools.lru_cache(maxsize=1)
def _appliance_table() -> dict[str, np.ndarray]:
    """:data:`_APPLIANCES` as arrays; ``cdf_flat[k * 1440 + m] = k + CDF_k(m)`` (increasing)."""
    cdf = np.concatenate([_tod_cdf(k) + k for k in range(len(_APPLIANCES))])
    tab = {"cdf_flat": cdf,
           "rate": np.array([a.rate for a in _APPLIANCES]),
           "p_lo": np.array([a.p_kw[0] for a in _APPLIANCES]),
           "p_hi": np.array([a.p_kw[1] for a in _APPLIANCES]),
           "min_lo": np.array([a.minutes[0] for a in _APPLIANCES]),
           "min_hi": np.array([a.minutes[1] for a in _APPLIANCES])}
    for arr in tab.values():
        arr.flags.writeable = False
    return tab


@functools.lru_cache(maxsize=None)
def _tod_cdf(k: int) -> np.ndarray:
    """Cumulative distribution over the minutes of a day of appliance ``k``'s run starts."""
    hours = (np.arange(_DAY_MIN) + 0.5) / 60
    pdf = np.full(_DAY_MIN, 0.02 / _DAY_MIN)
    for h0, sd, w in _APPLIANCES[k].tod:
        d = (hours - h0 + 12) % 24 - 12  # wrapped distance [h]
        pdf += w * np.exp(-0.5 * (d / sd) ** 2)
    cdf = np.cumsum(pdf)
    cdf /= cdf[-1]
    cdf.flags.writeable = False
    return cdf


@functools.lru_cache(maxsize=2)
def _smooth_shape(weekend: bool) -> np.ndarray:
    """Occupancy curve per minute (mean 1), linearly interpolated from hourly values."""
    hourly = np.array(_SMOOTH_HOURLY)
    if weekend:
        hourly[9:17] *= 1.3
    hourly /= hourly.mean()
    knots = np.concatenate([[hourly[-1]], hourly, [hourly[0]]])  # at hour midpoints
    shape = np.interp((np.arange(_DAY_MIN) + 0.5) / 60, np.arange(26) - 0.5, knots)
    shape /= shape.mean()
    shape.flags.writeable = False
    return shape


class _MinuteGrid:
    """Days covered by ``times`` and averaging of 1-minute series over each step."""

    def __init__(self, times: pd.DatetimeIndex):
        if len(times) == 0:
            raise InputDataError("times: empty time axis")
        step = pd.Timedelta(times.freq) if times.freq is not None else None
        if step is None:
            diffs = np.unique(np.diff(times.asi8)) if len(times) > 1 else np.array([])
            if len(diffs) != 1:
                raise InputDataError("times: need a regular axis of >= 2 steps (or a freq)")
            step = pd.Timedelta(int(diffs[0]), unit="ns")
        self.step_min = int(step / pd.Timedelta(minutes=1))
        if self.step_min < 1 or step != pd.Timedelta(minutes=self.step_min):
            raise InputDataError(f"times: step {step} must be a whole number of minutes")
        day0 = times[0].normalize()
        last = (times[-1] + step - pd.Timedelta(minutes=1)).normalize()
        self.dates = pd.date_range(day0, last, freq="D")
        self.start_min = ((times - day0) // pd.Timedelta(minutes=1)).to_numpy(dtype=np.int64)

    def step_means(self, minute_values: np.ndarray) -> np.ndarray:
        """Mean of a 1-minute series over each step, shape (time,)."""
        csum = np.concatenate([[0.0], np.cumsum(minute_values, dtype=np.float64)])
        return (csum[self.start_min + self.step_min] - csum[self.start_min]) / self.step_min

    def hours(self) -> np.ndarray:
        """Clock hour of every minute of the covered days, shape (day * 1440,)."""
        return np.tile(np.arange(_DAY_MIN) / 60.0, len(self.dates))


def heat_pump_demand(times: pd.DatetimeIndex, profile_ids: Sequence[int] | NDArray[np.integer],
                     *, network: str, seed: int) -> np.ndarray:
    """Synthetic air-source heat-pump electrical demand (space heating + hot water).

    Parameters
    ----------
    times : DatetimeIndex, shape (time,)
    profile_ids : sequence of int, shape (customer,)
    network, seed
        See module docstring.

    Returns
    -------
    ndarray of float32, shape (time, customer)
        Mean electrical demand over each step, >= 0 and <= the unit's rating. [kW]
    """
    grid = _MinuteGrid(times)
    t_day = daily_temperature(grid.dates, seed=seed)
    t_min = np.repeat(t_day, _DAY_MIN) + 2.0 * np.cos(2 * np.pi * (grid.hours() - 15) / 24)
    cop = np.clip(2.9 + 0.07 * (t_min - 5.0), 1.8, 4.5)
    out = np.empty((len(times), len(profile_ids)), dtype=np.float32)
    for c, pid in enumerate(profile_ids):
        unit = _hp_unit(seed, network, pid)
        days = [_hp_day(grid.dates[d], t_day[d], cop[d * _DAY_MIN:(d + 1) * _DAY_MIN], unit,
                        customer_rng(seed, network, _S_HP_DAY, pid, grid.dates[d].toordinal()))
                for d in range(len(grid.dates))]
        out[:, c] = grid.step_means(np.concatenate(days))
    return out


def _hp_unit(seed: int, network: str, pid: int) -> dict[str, float]:
    """Per-customer house and heat pump: heat loss, rating and heating schedule."""
    rng = customer_rng(seed, network, _S_HP_PARAM, pid)
    kwh_per_dd = rng.uniform(2.5, 5.5)  # heat per degree-day [kWh/K/day]
    rating = float(np.clip(3.0 + 5.0 * (kwh_per_dd - 2.5) / 3.0 + rng.normal(0, 0.5), 3.0, 8.0))
    return {"kwh_per_dd": kwh_per_dd, "rating_kw": rating,
            "morning": rng.uniform(5.0, 7.0), "morning_h": rng.uniform(2.5, 4.0),
            "evening": rng.uniform(15.5, 17.5), "evening_h": rng.uniform(4.5, 6.5),
            "setback": rng.uniform(0.1, 0.3), "dhw_start": rng.choice([2.0, 13.0, 18.0]),
            "cycle_min": rng.uniform(20, 30)}


def _hp_day(date: pd.Timestamp, t_day: float, cop: np.ndarray, unit: dict[str, float],
            rng: np.random.Generator) -> np.ndarray:
    """One day of heat-pump electrical demand per minute [kW], shape (1440,)."""
    heat_kwh = unit["kwh_per_dd"] * max(0.0, 15.5 - t_day) * math.exp(rng.normal(0, 0.1))
    minute = np.arange(_DAY_MIN)
    weight = np.full(_DAY_MIN, unit["setback"])
    periods = ((unit["morning"], unit["morning_h"]), (unit["evening"], unit["evening_h"]))
    for start, length in periods:
        m0 = int(60 * (start + rng.normal(0, 0.15)))
        on = (minute >= m0) & (minute < m0 + int(60 * length))
        weight[on] = 1.0
        weight[(minute >= m0) & (minute < m0 + 45)] = 2.5  # pull-down boost
    heat_kw = heat_kwh * 60 * weight / weight.sum()
    elec = np.minimum(heat_kw / cop, unit["rating_kw"])
    elec = _cycle(elec, 0.35 * unit["rating_kw"], unit["cycle_min"], rng.uniform(0, 1))
    dhw0 = int(60 * unit["dhw_start"]) + int(rng.integers(0, 60))
    elec[dhw0:dhw0 + int(rng.integers(40, 61))] += 0.6 * unit["rating_kw"]
    return np.minimum(elec, unit["rating_kw"])


def _cycle(elec: np.ndarray, p_min: float, period: float, phase: float) -> np.ndarray:
    """On/off cycling at ``p_min`` where demand is below it, keeping the energy [kW]."""
    low = elec < p_min
    duty = elec / p_min
    pos = (np.arange(elec.size) / period + phase) % 1.0
    return np.where(low, np.where(pos < duty, p_min, 0.0), elec)


def solar_elevation(minutes_utc: np.ndarray, day_of_year: np.ndarray, *, latitude: float,
                    longitude: float) -> np.ndarray:
    """Sun elevation angle (Cooper declination, Spencer equation of time).

    Parameters
    ----------
    minutes_utc : ndarray, shape (n,)
        Clock time of day (GMT). [min]
    day_of_year : ndarray, shape (n,)
        1..366.
    latitude, longitude : float
        Site, east positive. [deg]

    Returns
    -------
    ndarray, shape (n,)
        Elevation above the horizon (negative at night). [rad]
    """
    decl, hour_angle = _declination_hour_angle(minutes_utc, day_of_year, longitude)
    lat = math.radians(latitude)
    sin_el = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return np.arcsin(np.clip(sin_el, -1.0, 1.0))


def _declination_hour_angle(minutes_utc: np.ndarray, doy: np.ndarray,
                            longitude: float) -> tuple[np.ndarray, np.ndarray]:
    gamma = 2 * np.pi * (doy - 1) / 365.0
    decl = np.radians(23.45) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    eot_min = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                        - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    solar_min = minutes_utc + 4.0 * longitude + eot_min
    return decl, np.radians((solar_min / 4.0) - 180.0)


def pv_output(times: pd.DatetimeIndex, pv_kwp: Sequence[float] | NDArray[np.floating],
              profile_ids: Sequence[int] | NDArray[np.integer], *, network: str, seed: int,
              latitude: float = 53.5, longitude: float = -2.2) -> np.ndarray:
    """Synthetic rooftop PV output.

    Parameters
    ----------
    times : DatetimeIndex, shape (time,)
    pv_kwp : sequence of float, shape (customer,)
        Installed capacity (0: no PV). [kWp]
    profile_ids : sequence of int, shape (customer,)
    network, seed
        See module docstring.
    latitude, longitude : float
        Site, east positive. [deg]

    Returns
    -------
    ndarray of float32, shape (time, customer)
        Mean AC output over each step, 0 at night, within [0, kWp]. [kW]
    """
    grid = _MinuteGrid(times)
    doy = np.repeat(grid.dates.day_of_year.to_numpy(), _DAY_MIN).astype(float)
    minutes = np.tile(np.arange(_DAY_MIN) + 0.5, len(grid.dates)).astype(float)
    decl, ha = _declination_hour_angle(minutes, doy, longitude)
    sun = _sun_vectors(decl, ha, math.radians(latitude))
    ghi = _clear_sky_ghi(sun[2])
    cloud = np.concatenate([_network_cloud(seed, network, d.toordinal()) for d in grid.dates])
    out = np.zeros((len(times), len(pv_kwp)), dtype=np.float32)
    for c, (kwp, pid) in enumerate(zip(pv_kwp, profile_ids, strict=True)):
        if kwp > 0:
            minute_kw = _pv_customer(sun, ghi, cloud, kwp, grid, seed, network, pid)
            out[:, c] = grid.step_means(minute_kw)
    return out


def _sun_vectors(decl: np.ndarray, ha: np.ndarray, lat: float) -> np.ndarray:
    """Unit vector to the sun (east, north, up), shape (3, n)."""
    up = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(ha)
    east = -np.cos(decl) * np.sin(ha)
    north = math.cos(lat) * np.sin(decl) - math.sin(lat) * np.cos(decl) * np.cos(ha)
    return np.stack([east, north, up])


def _clear_sky_ghi(cos_zenith: np.ndarray) -> np.ndarray:
    """Haurwitz clear-sky global horizontal irradiance [W/m²], 0 below the horizon."""
    cz = np.maximum(cos_zenith, 1e-6)
    return np.where(cos_zenith > 0, 1098.0 * cz * np.exp(-0.059 / cz), 0.0)


def _network_cloud(seed: int, network: str, day: int) -> np.ndarray:
    """Cloud transmission shared by a network's customers for one day, shape (1440,) [-]."""
    rng = customer_rng(seed, network, _S_CLOUD, 0, day)
    doy = pd.Timestamp.fromordinal(day).day_of_year
    mean = 0.42 + 0.14 * math.cos(2 * math.pi * (doy - 172) / 365.25)  # sunnier summers
    clear = rng.beta(4.0 * mean, 4.0 * (1.0 - mean))
    knots = rng.standard_normal(_DAY_MIN // 15 + 1)
    wiggle = np.interp(np.arange(_DAY_MIN), np.arange(knots.size) * 15, knots)
    return np.clip(clear + 0.7 * math.sqrt(clear * (1 - clear)) * wiggle, 0.05, 1.0)


def _pv_customer(sun: np.ndarray, ghi: np.ndarray, cloud: np.ndarray, kwp: float,
                 grid: _MinuteGrid, seed: int, network: str, pid: int) -> np.ndarray:
    """One customer's 1-minute AC output [kW] over the grid's days."""
    rng = customer_rng(seed, network, _S_PV_PARAM, pid)
    tilt, azimuth = np.radians(rng.uniform(25, 45)), np.radians(180 + rng.uniform(-45, 45))
    normal = np.array([math.sin(tilt) * math.sin(azimuth), math.sin(tilt) * math.cos(azimuth),
                       math.cos(tilt)])
    cos_inc = np.maximum(normal @ sun, 0.0)
    beam_normal = np.where(sun[2] > 0.02, 0.85 * ghi / np.maximum(sun[2], 0.02), 0.0)
    poa = beam_normal * cos_inc + 0.15 * ghi * (1 + math.cos(tilt)) / 2
    poa += 0.2 * ghi * (1 - math.cos(tilt)) / 2  # ground reflection
    local = np.concatenate([1.0 + 0.05 * customer_rng(seed, network, _S_PV_DAY, pid,
                                                      d.toordinal()).standard_normal(_DAY_MIN)
                            for d in grid.dates])
    return np.clip(kwp * 0.85 * poa / 1000.0 * np.clip(cloud * local, 0, 1), 0.0, kwp)
