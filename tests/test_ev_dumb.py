"""Tests of uncontrolled ("dumb") EV charging."""

import numpy as np

from agileflex_hpc.ev import EvFleet, draw_fleet, dumb_charging_kw


def test_dumb_charging_hand_example():
    """10-minute steps (1/6 h), efficiency 0.95.

    ev0: 7 kW from step 3, needs 2.66 kWh in the battery = 2.8 kWh from the grid:
         2 full steps give 2 * 7/6 = 2.3333 kWh, the rest 0.4667 kWh is 2.8 kW in step 5.
    ev1: 3.5 kW from step 1 to 3 (exclusive), needs 9.5 kWh = 10 kWh grid: far more than the
         two steps give, so it charges at full power and stops at departure.
    ev2: already above its target: no charging.
    ev3: 6 kW from step 0, needs 1.9 kWh = 2 kWh grid = exactly 2 full steps.
    """
    fleet = EvFleet(np.array(["ev0", "ev1", "ev2", "ev3"]), [3, 1, 0, 0], [9, 3, 9, 9],
                    [10.0, 0.0, 30.0, 5.0], [12.66, 9.5, 20.0, 6.9], [40.0] * 4,
                    [7.0, 3.5, 7.4, 6.0])
    power = dumb_charging_kw(fleet, steps=9, step_minutes=10, efficiency=0.95)
    expected = np.zeros((4, 9))
    expected[0, 3:6] = [7.0, 7.0, 2.8]
    expected[1, 1:3] = 3.5
    expected[3, 0:2] = 6.0
    np.testing.assert_allclose(power, expected, atol=1e-12)


def test_dumb_charging_delivers_the_energy_of_a_drawn_fleet():
    fleet = draw_fleet(200, 3)
    power = dumb_charging_kw(fleet)
    assert power.shape == (200, 144)
    grid_kwh = power.sum(axis=1) / 6
    np.testing.assert_allclose(grid_kwh * 0.95, fleet.e_end_kwh - fleet.e_start_kwh, rtol=1e-9)
    t = np.arange(144)
    outside = (t < fleet.t_in[:, None]) | (t >= fleet.t_out[:, None])
    assert not power[outside].any()
    first = power[np.arange(200), fleet.t_in]
    np.testing.assert_allclose(first, np.minimum(fleet.charger_kw, grid_kwh * 6))
    steps_on = (power > 0).sum(axis=1)
    np.testing.assert_array_equal(steps_on, np.ceil(grid_kwh * 6 / fleet.charger_kw - 1e-9))
