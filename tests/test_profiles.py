"""Synthetic smart-meter, heat-pump and PV generators: statistics, physics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agileflex_hpc.errors import InputDataError
from agileflex_hpc.inputs.profiles import (
    daily_temperature,
    heat_pump_demand,
    make_times,
    pv_output,
    smart_meter_demand,
    solar_elevation,
)

# Study statistics (DESIGN.md), typed here independently of the package constants.
STUDY = {"Adversity": (8.04, 3.88), "Comfortable": (9.62, 4.62), "Affluent": (12.87, 5.58)}
WEEK = make_times("2024-01-08", days=7, step_minutes=10)


@pytest.fixture(scope="module")
def demand_by_group() -> dict[str, np.ndarray]:
    ids = list(range(1000, 1120))
    return {g: smart_meter_demand(WEEK, [g] * len(ids), ids, network="stats", seed=0)
            for g in STUDY}


@pytest.mark.parametrize("group", list(STUDY))
def test_group_statistics_match_study(demand_by_group, group):
    kw = demand_by_group[group].reshape(7, 144, -1)  # day, 10-min step, customer
    daily_kwh = kw.sum(axis=1) / 6
    daily_peak = kw.max(axis=1)
    kwh, peak = STUDY[group]
    assert daily_kwh.mean() == pytest.approx(kwh, rel=0.05)
    assert daily_peak.mean() == pytest.approx(peak, rel=0.05)


def test_demand_shape_and_sign(demand_by_group):
    kw = demand_by_group["Comfortable"]
    assert kw.dtype == np.float32 and kw.shape == (7 * 144, 120)
    assert np.isfinite(kw).all() and kw.min() >= 0
    hourly = kw.reshape(7, 24, 6, -1).mean(axis=(0, 2, 3))
    night, morning, evening = hourly[2:5].mean(), hourly[7:9].mean(), hourly[17:20].mean()
    assert night < 0.5 * evening and morning > 1.5 * night
    assert 16 <= hourly.argmax() <= 20  # winter evening peak


def test_demand_determinism_and_independence():
    times = make_times("2024-02-01", days=2)
    a = smart_meter_demand(times, ["Affluent", "Adversity", "Comfortable"], [5, 9, 11],
                           network="n1", seed=3)
    b = smart_meter_demand(times, ["Affluent", "Adversity", "Comfortable"], [5, 9, 11],
                           network="n1", seed=3)
    alone = smart_meter_demand(times, ["Adversity"], [9], network="n1", seed=3)
    assert a.tobytes() == b.tobytes()
    assert alone[:, 0].tobytes() == a[:, 1].tobytes()
    other_net = smart_meter_demand(times, ["Adversity"], [9], network="n2", seed=3)
    other_seed = smart_meter_demand(times, ["Adversity"], [9], network="n1", seed=4)
    assert not np.array_equal(alone, other_net) and not np.array_equal(alone, other_seed)


def test_blocks_and_steps_are_consistent():
    """A day generated alone equals the same day of a longer run; steps keep the energy."""
    long = make_times("2024-01-15", days=3)
    day2 = make_times("2024-01-16", days=1)
    kw = dict(network="n", seed=1)
    assert smart_meter_demand(day2, ["Affluent"], [4], **kw).tobytes() == \
        smart_meter_demand(long, ["Affluent"], [4], **kw)[144:288].tobytes()
    assert heat_pump_demand(day2, [4], **kw).tobytes() == \
        heat_pump_demand(long, [4], **kw)[144:288].tobytes()
    assert pv_output(day2, [3.0], [4], **kw).tobytes() == \
        pv_output(long, [3.0], [4], **kw)[144:288].tobytes()
    half_hourly = smart_meter_demand(make_times("2024-01-16", days=1, step_minutes=30),
                                     ["Affluent"], [4], **kw)
    ten = smart_meter_demand(day2, ["Affluent"], [4], **kw)
    np.testing.assert_allclose(half_hourly[:, 0], ten[:, 0].reshape(48, 3).mean(1), rtol=1e-5,
                               atol=1e-6)


def test_unknown_group_and_bad_times():
    with pytest.raises(InputDataError, match="Wealthy"):
        smart_meter_demand(WEEK, ["Wealthy"], [1], network="n", seed=0)
    with pytest.raises(ValueError):
        make_times("2024-01-01", days=1, step_minutes=7)
    times = make_times("2024-01-01 13:00", days=2, step_minutes=15)
    assert len(times) == 192 and times[0] == pd.Timestamp("2024-01-01")


def test_temperature_climate_and_blocks():
    year = pd.date_range("2023-01-01", "2023-12-31", freq="D")
    t = daily_temperature(year, seed=0)
    jan, jul = t[year.month == 1].mean(), t[year.month == 7].mean()
    assert 1 < jan < 8 and 13 < jul < 20 and 8 < t.mean() < 12
    part = daily_temperature(year[100:110], seed=0)
    np.testing.assert_array_equal(part, t[100:110])
    assert not np.array_equal(daily_temperature(year[:10], seed=1), t[:10])


def test_heat_pumps_use_more_on_colder_days():
    days = 28
    times = make_times("2024-01-01", days=days)
    kw = heat_pump_demand(times, list(range(40)), network="hp", seed=2)
    assert kw.dtype == np.float32 and kw.min() >= 0 and kw.max() <= 8.0 + 1e-5
    daily = kw.reshape(days, 144, -1).sum(axis=1).mean(axis=1) / 6  # kWh per HP per day
    temp = daily_temperature(pd.date_range("2024-01-01", periods=days), seed=2)
    assert np.corrcoef(temp, daily)[0, 1] < -0.8
    cold, mild = daily[temp < np.median(temp)].mean(), daily[temp >= np.median(temp)].mean()
    assert cold > mild
    assert 10 <= daily.mean() <= 25  # plausible winter consumption of an ASHP [kWh/day]
    summer = heat_pump_demand(make_times("2024-07-10", days=3), list(range(10)), network="hp",
                              seed=2).sum(axis=0).mean() / 6 / 3
    assert summer < 0.3 * daily.mean()  # hot water only


def test_solar_elevation_at_solstice_noon():
    # Solar noon at 2.2 W on 21 June is about 12:10 GMT: elevation 90 - 53.5 + 23.44 deg.
    el = solar_elevation(np.array([12 * 60 + 10.0]), np.array([172.0]), latitude=53.5,
                         longitude=-2.2)
    assert math.degrees(el[0]) == pytest.approx(59.94, abs=0.5)


def test_pv_night_noon_and_bounds():
    kwp = np.array([1.0, 2.5, 4.0, 0.0] * 10)
    ids = list(range(40))
    jan = make_times("2024-01-10", days=7)
    pv = pv_output(jan, kwp, ids, network="pv", seed=0)
    hour = jan.hour + jan.minute / 60
    assert pv.dtype == np.float32 and pv.min() >= 0
    assert (pv[(hour < 7.5) | (hour >= 17), :] == 0).all()  # sunrise ~08:20, sunset ~16:10
    assert (pv[:, kwp == 0] == 0).all()
    jun = make_times("2024-06-14", days=14)
    pv = pv_output(jun, kwp, ids, network="pv", seed=0)
    hour = jun.hour + jun.minute / 60
    assert (pv[(hour < 3.5) | (hour >= 22), :] == 0).all()  # sunrise ~04:40, sunset ~21:40
    assert (pv <= kwp + 1e-6).all() and (pv[:, kwp > 0] / kwp[kwp > 0]).max() > 0.6
    mean = pv.reshape(14, 144, -1).mean(axis=(0, 2))
    centroid_h = (mean * (np.arange(144) + 0.5) / 6).sum() / mean.sum()
    assert centroid_h == pytest.approx(12 + 10 / 60, abs=0.5)  # solar noon ~12:10 GMT


def test_pv_clouds_shared_within_a_network():
    times = make_times("2024-05-01", days=10)
    a = pv_output(times, [3.0, 3.0], [1, 2], network="same", seed=0).reshape(10, 144, 2)
    b = pv_output(times, [3.0], [1], network="other", seed=0).reshape(10, 144)
    same = np.corrcoef(a[:, :, 0].sum(1), a[:, :, 1].sum(1))[0, 1]
    other = np.corrcoef(a[:, :, 0].sum(1), b.sum(1))[0, 1]
    assert same > 0.9 and same > other


def test_pv_annual_yield_plausible():
    times = make_times("2023-01-01", days=365, step_minutes=60)
    pv = pv_output(times, [1.0] * 4, [1, 2, 3, 4], network="yield", seed=0)
    assert 650 < pv.sum(axis=0).mean() < 1050  # NW England: ~800-900 kWh/kWp/year
