"""Tests of the EV attempts loop (agileflex_hpc.evcharging.attempts)."""

import numpy as np
import pytest

from agileflex_hpc.evcharging import EvFleet, run_attempts, tariff_p_per_kwh

STEPS = 144
HEAD_KW = 1.5  # constant headroom: 1.5 kW x 24 h = 36 kWh a day from the grid
PRICE = tariff_p_per_kwh()
FOOT = np.full(STEPS, 10.0)


def _full_day_fleet(grid_kwh):
    """EVs plugged in all day (3.7 kW) needing ``grid_kwh`` each from the grid (eff 0.95)."""
    n = len(grid_kwh)
    return EvFleet(np.array([f"ev{i}" for i in range(n)]), np.zeros(n, int), np.full(n, STEPS),
                   np.zeros(n), 0.95 * np.asarray(grid_kwh), np.full(n, 60.0), np.full(n, 3.7))


def _random_need(n, rng):
    """Each EV needs 7.5 or 10 kWh from the grid, by a coin toss."""
    return np.where(rng.random(n) < 0.5, 10.0, 7.5)


def _factory(n, rng):
    return _full_day_fleet(_random_need(n, rng))


def _expected_records(n, seed, successes_needed):
    """The loop re-implemented from its rule: a fleet fits iff its grid energy <= 36 kWh.

    With one EV on at a time (2 x 1.38 kW > 1.5 kW) any set of EVs whose energy fits in the
    day's 36 kWh can charge one after another, so feasibility is known without a solver.
    """
    records, run = [], 0
    while n > 0 and run < successes_needed:
        k = len(records)
        feasible = _random_need(n, np.random.default_rng([seed, k])).sum() <= 36.0
        run = run + 1 if feasible else 0
        records.append((k, n, feasible, run))
        n -= 0 if feasible else 1
    return records, n


@pytest.mark.parametrize("seed", [6, 11, 3])  # restart after successes at n=4; stop at 4; at 3
def test_attempts_follow_the_stopping_rule(seed):
    result = run_attempts(5, np.full(STEPS, HEAD_KW), FOOT, PRICE, seed=seed,
                          successes_needed=3, fleet_factory=_factory)
    expected, n = _expected_records(5, seed, 3)
    got = [(a.attempt, a.n, a.feasible, a.successes) for a in result.attempts]
    assert got == expected
    assert result.n == n and result.stop_reason == "successes"
    assert 3 <= n <= 4  # 5 EVs never fit (>= 37.5 kWh), 3 always do (<= 30 kWh)
    assert result.fleet is not None and result.fleet.n == n
    assert result.schedule is not None and result.schedule.feasible
    assert result.attempts[-1].objective_p == result.schedule.objective_p
    frame = result.attempts_frame()
    assert list(frame["n"]) == [r[1] for r in expected]
    assert {"attempt", "seed", "status", "objective_p", "mip_gap", "solve_time_s"} <= set(frame)


def test_fixed_fleet_steps_down_to_what_fits():
    """Identical 10 kWh EVs: 3 fit in 36 kWh, 4 do not; from 6: 6, 5, 4 fail, then 3 twice."""
    result = run_attempts(6, np.full(STEPS, HEAD_KW), FOOT, PRICE, seed=0, successes_needed=2,
                          fleet_factory=lambda n, rng: _full_day_fleet(np.full(n, 10.0)))
    assert [a.n for a in result.attempts] == [6, 5, 4, 3, 3]
    assert [a.status for a in result.attempts] == ["infeasible"] * 3 + ["optimal"] * 2
    assert [a.successes for a in result.attempts] == [0, 0, 0, 1, 2]
    assert result.n == 3 and result.stop_reason == "successes"


def test_no_headroom_and_down_to_zero():
    none = run_attempts(5, np.full(STEPS, -1.0), FOOT, PRICE, seed=0)
    assert (none.n, none.stop_reason, none.attempts, none.fleet) == (0, "no_headroom", [], None)
    tiny = run_attempts(3, np.full(STEPS, 1.0), FOOT, PRICE, seed=0,  # below the 1.38 kW minimum
                        fleet_factory=lambda n, rng: _full_day_fleet(np.full(n, 1.0)))
    assert [a.n for a in tiny.attempts] == [3, 2, 1]
    assert tiny.n == 0 and tiny.stop_reason == "n_zero" and tiny.fleet is None
    capped = run_attempts(3, np.full(STEPS, 1.0), FOOT, PRICE, seed=0, max_attempts=2,
                          fleet_factory=lambda n, rng: _full_day_fleet(np.full(n, 1.0)))
    assert len(capped.attempts) == 2 and capped.stop_reason == "max_attempts"


def _zone_head():
    hour = (12 + np.arange(STEPS) / 6) % 24
    return np.interp(hour, [0, 6, 9, 16, 19, 22, 24], [30, 30, 15, 10, 5, 20, 30])


def test_attempts_with_drawn_fleets_are_deterministic():
    head = _zone_head()
    runs = [run_attempts(26, head, FOOT, PRICE, seed=s, successes_needed=2) for s in (6, 6, 5)]
    key = [[(a.n, a.status, a.seed, round(a.objective_p, 6) if a.feasible else None)
            for a in r.attempts] for r in runs]
    assert key[0] == key[1] and key[0] != key[2]
    assert "infeasible" in [a.status for a in runs[0].attempts]
    assert runs[0].n == runs[0].fleet.n == runs[0].attempts[-1].n
    np.testing.assert_array_equal(runs[0].schedule.charge_kw, runs[1].schedule.charge_kw)
    assert runs[0].attempts[0].seed == "[6, 0]"
    assert run_attempts(3, head, FOOT, PRICE, seed=(5, 0), successes_needed=1).attempts[0].seed \
        == "[5, 0, 0]"
