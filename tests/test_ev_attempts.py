"""Tests of the EV attempts search (agileflex_hpc.ev.attempts): the search on scripted
feasibility oracles, then with the real solver on fleets whose feasibility is known by hand."""

import dataclasses

import numpy as np
import pytest

from agileflex_hpc.ev import EvFleet, run_attempts, tariff_p_per_kwh
from agileflex_hpc.ev.attempts import search_hosting

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


def _oracle(feasible_up_to, script=None):
    """A scripted feasibility oracle: level n is feasible iff n <= ``feasible_up_to``, except
    where ``script`` maps (n, i-th attempt at n) to another verdict. Records every call."""
    calls = []

    def attempt(n):
        i = sum(1 for m in calls if m == n)
        calls.append(n)
        if script and (n, i) in script:
            return script[(n, i)]
        return "feasible" if n <= feasible_up_to else "infeasible"

    attempt.calls = calls
    return attempt


@pytest.mark.parametrize(("start", "cap", "edge", "levels", "direction", "reason"), [
    (4, 20, 7, [4, 5, 6, 7, 8], "up", "refuted"),  # confirmed: climb until refuted
    (10, 20, 7, [10, 9, 8, 7], "down", "confirmed"),  # refuted: step down until confirmed
    (0, 20, 3, [0, 1, 2, 3, 4], "up", "refuted"),  # an estimate of 0 still climbs
    (2, 6, 99, [2, 3, 4, 5, 6], "up", "cap"),  # all feasible: up to the customers
    (5, 8, 0, [5, 4, 3, 2, 1], "down", "zero"),  # all infeasible: down to 0
    (12, 9, 4, [9, 8, 7, 6, 5, 4], "down", "confirmed"),  # start capped at the customers
])
def test_search_on_a_monotone_oracle(start, cap, edge, levels, direction, reason):
    k = 3
    oracle = _oracle(edge)
    got = search_hosting(start, cap, oracle, successes_needed=k)
    assert got.n == min(edge, cap) and got.confirmed
    assert (got.direction, got.stop_reason) == (direction, reason)
    assert list(got.levels) == levels
    # k attempts per confirmed level (none at 0), one per refuted level
    expected = [n for n in levels for _ in range(k if 0 < n <= edge else (0 if n == 0 else 1))]
    assert oracle.calls == expected


def test_search_on_a_noisy_oracle():
    """Level 6 passes twice then fails: refuted (one infeasible refutes). Going up from 4, the
    zone hosts 5; a later success at 6 is never tried."""
    oracle = _oracle(6, script={(6, 2): "infeasible"})
    got = search_hosting(4, 20, oracle, successes_needed=3)
    assert (got.n, got.direction, got.stop_reason) == (5, "up", "refuted")
    assert oracle.calls == [4] * 3 + [5] * 3 + [6] * 3
    # the same noise met going down: 6 refuted, 5 confirmed
    oracle = _oracle(6, script={(6, 1): "infeasible"})
    assert search_hosting(6, 20, oracle, successes_needed=3).n == 5


def test_unknown_attempts_neither_confirm_nor_refute():
    # one unknown at level 5: skipped (does not break the row), level confirmed, zone unconfirmed
    oracle = _oracle(5, script={(5, 1): "unknown"})
    got = search_hosting(5, 20, oracle, successes_needed=3)
    assert got.n == 5 and not got.confirmed
    assert oracle.calls == [5] * 4 + [6]
    # K unknowns at a level: undecided; going up the search stops below it
    oracle = _oracle(9, script={(7, i): "unknown" for i in range(3)})
    got = search_hosting(5, 20, oracle, successes_needed=3)
    assert (got.n, got.stop_reason, got.confirmed) == (6, "undecided", False)
    assert got.levels[7] == "undecided"


def test_attempt_cap_ends_the_search_unconfirmed():
    got = search_hosting(1, 50, _oracle(30), successes_needed=4, max_attempts=10)
    assert (got.n, got.stop_reason, got.confirmed) == (2, "max_attempts", False)


def test_fixed_fleet_search_down_and_up_with_the_solver():
    """Identical 10 kWh EVs on a 1.5 kW (36 kWh/day) zone: 3 fit, 4 do not."""
    def fixed(n, rng):
        return _full_day_fleet(np.full(n, 10.0))

    down = run_attempts(6, np.full(STEPS, HEAD_KW), FOOT, PRICE, seed=0, n_max=10,
                        successes_needed=2, fleet_factory=fixed)
    assert [a.n for a in down.attempts] == [6, 5, 4, 3, 3]
    assert [a.verdict for a in down.attempts] == ["infeasible"] * 3 + ["feasible"] * 2
    assert [a.successes for a in down.attempts] == [0, 0, 0, 1, 2]
    assert (down.n, down.direction, down.confirmed) == (3, "down", True)
    up = run_attempts(1, np.full(STEPS, HEAD_KW), FOOT, PRICE, seed=0, n_max=10,
                      successes_needed=2, fleet_factory=fixed)
    assert [a.n for a in up.attempts] == [1, 1, 2, 2, 3, 3, 4]
    assert (up.n, up.direction, up.stop_reason) == (3, "up", "refuted")
    assert up.fleet.n == 3 and up.schedule.feasible
    assert up.schedule.objective_p == up.attempts[5].objective_p  # the last feasible at 3


@pytest.mark.parametrize("seed", [6, 11, 3])
def test_random_fleets_follow_the_search(seed):
    """Random 7.5/10 kWh fleets: the solver's verdicts equal the energy rule (a fleet fits iff
    its grid energy <= 36 kWh, one EV charging at a time), attempt by attempt."""
    result = run_attempts(4, np.full(STEPS, HEAD_KW), FOOT, PRICE, seed=seed, n_max=8,
                          successes_needed=3, fleet_factory=_factory)
    for a in result.attempts:
        fits = _random_need(a.n, np.random.default_rng([seed, a.attempt])).sum() <= 36.0
        assert a.feasible == fits
    assert 3 <= result.n <= 4  # 5 EVs never fit (>= 37.5 kWh), 3 always do (<= 30 kWh)
    assert result.fleet.n == result.n and result.confirmed


def test_negative_evening_headroom_hosts_evs():
    """A V2G-style zone: headroom -8 kW from 16:00 to 20:00, +6 kW overnight. The clipped bound
    lets EVs sit out the evening; from an estimate of 0 the search climbs to what the night's
    energy allows (each EV needs about 10 kWh: 6 kW x 14 h x 0.95 / 10 -> about 7)."""
    hour = (12 + np.arange(STEPS) / 6) % 24
    head = np.where((hour >= 16) & (hour < 20), -8.0, 6.0)

    def overnight(n, rng):
        t_in = np.full(n, int((18 - 12) * 6))  # 18:00
        t_out = np.full(n, int((7 + 12) * 6))  # 07:00
        return EvFleet(np.array([f"ev{i}" for i in range(n)]), t_in, t_out, np.zeros(n),
                       np.full(n, 9.5), np.full(n, 60.0), np.full(n, 7.0))

    for v2g in (False, True):
        got = run_attempts(0, head, FOOT, PRICE, seed=1, n_max=20, successes_needed=2,
                           fleet_factory=overnight, v2g=v2g)
        # grid energy: 6 kW x 11 h (20:00-07:00) x 0.95 = 62.7 kWh -> 6 EVs of 9.5 kWh
        assert got.n == 6 and got.direction == "up", v2g


def test_solver_limit_is_retried_then_unknown(monkeypatch):
    """A solve stopped by a limit without a proof is retried once with doubled limits; still
    unproven, the attempt is unknown and the zone unconfirmed."""
    from agileflex_hpc.ev import attempts as mod

    seen = []
    real = mod.solve_schedule

    def limited(fleet, *args, **kwargs):
        seen.append((fleet.n, kwargs.get("max_nodes"), kwargs.get("goal")))
        res = real(fleet, *args, **kwargs)
        if fleet.n == 2 and kwargs.get("max_nodes") == 10:  # the first solve at n = 2
            return dataclasses.replace(res, status="solution_limit", feasible=False)
        if fleet.n == 3:
            return dataclasses.replace(res, status="solution_limit", feasible=False)
        return res

    monkeypatch.setattr(mod, "solve_schedule", limited)
    got = run_attempts(2, np.full(STEPS, HEAD_KW), FOOT, PRICE, seed=0, n_max=5,
                       successes_needed=1, max_nodes=10,
                       fleet_factory=lambda n, rng: _full_day_fleet(np.full(n, 10.0)))
    # retried with doubled nodes, then feasible
    assert seen[:2] == [(2, 10, "feasible"), (2, 20, "feasible")]
    assert got.attempts[0].retried and got.attempts[0].verdict == "feasible"
    assert [a.verdict for a in got.attempts if a.n == 3] == ["unknown"]  # 3 never proven
    assert got.n == 2 and seen[2:4] == [(3, 10, "feasible"), (3, 20, "feasible")]
    # the kept fleet at 2 is then solved to optimality (and retried the same way)
    assert seen[4:] == [(2, 10, "optimal"), (2, 20, "optimal")]
    assert got.schedule.status == "optimal"
    assert not got.confirmed and got.stop_reason == "undecided"


def _zone_head():
    hour = (12 + np.arange(STEPS) / 6) % 24
    return np.interp(hour, [0, 6, 9, 16, 19, 22, 24], [30, 30, 15, 10, 5, 20, 30])


def test_attempts_with_drawn_fleets_are_deterministic():
    head = _zone_head()
    runs = [run_attempts(26, head, FOOT, PRICE, seed=s, n_max=30, successes_needed=2)
            for s in (6, 6, 5)]
    key = [[(a.n, a.status, a.seed, round(a.objective_p, 6) if a.feasible else None)
            for a in r.attempts] for r in runs]
    assert key[0] == key[1] and key[0] != key[2]
    assert "infeasible" in [a.status for a in runs[0].attempts]
    assert runs[0].n == runs[0].fleet.n
    np.testing.assert_array_equal(runs[0].schedule.charge_kw, runs[1].schedule.charge_kw)
    assert runs[0].attempts[0].seed == "[6, 0]"
    assert run_attempts(3, head, FOOT, PRICE, seed=(5, 0), successes_needed=1).attempts[0].seed \
        == "[5, 0, 0]"


def test_no_positive_headroom_hosts_nothing_without_attempts():
    none = run_attempts(5, np.full(STEPS, -1.0), FOOT, PRICE, seed=0, n_max=9)
    assert (none.n, none.stop_reason, none.attempts, none.fleet) == (0, "no_headroom", [], None)
    assert none.confirmed


def test_v2g_energy_requested_and_delivered_by_hand():
    """Headroom [5, -4, -2, -inf] kW, net EV power [3, -1, -5, -2] kW, 30-min steps:
    requested = (4 + 2) x 0.5 = 3 kWh (the collapsed step is left out); delivered =
    (min(1, 4) + min(5, 2)) x 0.5 = 1.5 kWh."""
    from agileflex_hpc.ev.stage import v2g_energy_kwh

    head = np.array([5.0, -4.0, -2.0, -np.inf])
    got = v2g_energy_kwh(head, np.array([3.0, -1.0, -5.0, -2.0]), step_hours=0.5)
    assert got == pytest.approx((3.0, 1.5))
    assert v2g_energy_kwh(head, None, step_hours=0.5) == pytest.approx((3.0, 0.0))
