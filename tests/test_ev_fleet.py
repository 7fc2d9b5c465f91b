"""Tests of EV fleets: synthetic draws, validation and the study's CSV tables."""

import numpy as np
import pytest

from agileflex_hpc.errors import InputDataError
from agileflex_hpc.ev import EvFleet, draw_fleet, load_fleet_csv

SESSIONS = ("name,t_in,t_out,EStart,EEnd\n"
            "A,30,120,10.5,30.0\nB,36,110,5.0,20.0\nC,40,130,50.0,45.0\n")
VEHICLES = "name,capacity(kW),battery(kWh),model\nA,7.4,60,x\nB,3.7,40,y\nC,7.4,75,z\n"


def test_draw_fleet_statistics():
    fleet = draw_fleet(20_000, 1)
    need = fleet.e_end_kwh - fleet.e_start_kwh
    assert fleet.n == 20_000 and fleet.validate(steps=144) == []
    assert need.mean() == pytest.approx(14.2, abs=0.25)
    assert np.all(need >= 0)
    arrive_h = 12 + fleet.t_in / 6
    depart_h = (12 + fleet.t_out / 6) % 24
    assert np.all((arrive_h >= 15) & (arrive_h <= 23)) and abs(arrive_h.mean() - 18) < 0.1
    assert np.all((depart_h >= 5) & (depart_h <= 10)) and abs(depart_h.mean() - 7.5) < 0.1
    assert np.all((fleet.battery_kwh >= 40) & (fleet.battery_kwh <= 75))
    assert set(np.unique(fleet.charger_kw)) == {3.7, 7.4}
    assert abs(np.mean(fleet.charger_kw == 7.4) - 0.5) < 0.02
    dwell_h = (fleet.t_out - fleet.t_in) / 6
    assert np.all(need <= 0.9 * fleet.charger_kw * 0.95 * dwell_h + 1e-9)
    assert np.all(fleet.e_end_kwh <= fleet.battery_kwh) and np.all(fleet.e_start_kwh >= 0)


def test_draw_fleet_is_deterministic_per_seed():
    a, b, c = draw_fleet(50, 7), draw_fleet(50, 7), draw_fleet(50, 8)
    for key in ("t_in", "t_out", "e_start_kwh", "e_end_kwh", "battery_kwh", "charger_kw"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.e_end_kwh, c.e_end_kwh)
    g = draw_fleet(50, np.random.default_rng(7))
    np.testing.assert_array_equal(g.t_in, a.t_in)
    hourly = draw_fleet(10, 0, steps=24, step_minutes=60)
    assert hourly.validate(steps=24) == [] and hourly.t_out.max() <= 22
    with pytest.raises(ValueError, match="1440"):
        draw_fleet(3, 0, steps=100)


def test_fleet_validation_and_frame():
    fleet = EvFleet(np.array(["a", "b"]), [5, 9], [4, 20], [1.0, 50.0], [2.0, 45.0],
                    [40.0, 40.0], [7.4, -1.0])
    problems = fleet.validate(steps=18)
    text = "\n".join(problems)
    assert "t_out must be > t_in for EVs ['a']" in text
    assert "charger_kw" in text and "e_end_kwh must be <= battery_kwh for EVs ['b']" in text
    assert "must be <= steps (18) for EVs ['b']" in text
    with pytest.raises(InputDataError, match="invalid EV fleet"):
        fleet.assert_valid()
    assert list(fleet.to_frame().columns)[:3] == ["name", "t_in", "t_out"]
    with pytest.raises(InputDataError, match="differ in length"):
        EvFleet(np.array(["a"]), [1, 2], [3], [0.0], [1.0], [40.0], [7.4])


def _write(tmp_path, sessions=SESSIONS, vehicles=VEHICLES):
    s, v = tmp_path / "sessions.csv", tmp_path / "vehicles.csv"
    s.write_text(sessions)
    v.write_text(vehicles)
    return s, v


def test_load_fleet_csv_happy_path(tmp_path):
    fleet = load_fleet_csv(*_write(tmp_path))
    assert fleet.name.tolist() == ["A", "B", "C"]
    np.testing.assert_array_equal(fleet.t_in, [30, 36, 40])
    np.testing.assert_array_equal(fleet.t_out, [120, 110, 130])
    np.testing.assert_allclose(fleet.charger_kw, [7.4, 3.7, 7.4])
    np.testing.assert_allclose(fleet.battery_kwh, [60, 40, 75])
    np.testing.assert_allclose(fleet.e_start_kwh, [10.5, 5.0, 50.0])
    assert fleet.t_in.dtype == np.int64


@pytest.mark.parametrize(
    "row, replacement, column",
    [
        ("B,36,110,5.0,20.0", "B,36,36,5.0,20.0", "t_out"),  # departure not after arrival
        ("B,36,110,5.0,20.0", "B,36,110,5.0,41.0", "EEnd"),  # above the 40 kWh battery
        ("B,36,110,5.0,20.0", "B,36,110,-1.0,20.0", "EStart"),  # negative energy
        ("B,36,110,5.0,20.0", "B,36,110,,20.0", "EStart"),  # NaN energy
        ("B,36,110,5.0,20.0", "Z,36,110,5.0,20.0", "name"),  # unknown vehicle
        ("B,36,110,5.0,20.0", "B,36,145,5.0,20.0", "t_out"),  # beyond the horizon
        ("B,36,110,5.0,20.0", "B,-2,110,5.0,20.0", "t_in"),  # before the horizon
        ("B,36,110,5.0,20.0", "B,36.5,110,5.0,20.0", "t_in"),  # not a step index
    ],
)
def test_load_fleet_csv_bad_row_names_file_row_and_column(tmp_path, row, replacement, column):
    sessions, vehicles = _write(tmp_path, SESSIONS.replace(row, replacement))
    with pytest.raises(InputDataError) as info:
        load_fleet_csv(sessions, vehicles)
    message = str(info.value)
    assert f"{sessions}: row 2, column '{column}'" in message
    assert "row 1" not in message and "row 3" not in message


def test_load_fleet_csv_bad_vehicle_and_missing_column(tmp_path):
    sessions, vehicles = _write(tmp_path, vehicles=VEHICLES.replace("C,7.4,75", "C,0,75"))
    with pytest.raises(InputDataError, match=r"vehicles.csv: row 3, column 'capacity\(kW\)'"):
        load_fleet_csv(sessions, vehicles)
    sessions, vehicles = _write(tmp_path, sessions=SESSIONS.replace("EEnd", "E_end"))
    with pytest.raises(InputDataError, match=r"missing columns \['EEnd'\]"):
        load_fleet_csv(sessions, vehicles)
    with pytest.raises(InputDataError, match="cannot read"):
        load_fleet_csv(tmp_path / "nope.csv", vehicles)
