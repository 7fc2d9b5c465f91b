"""Tests of the EV schedule MILP/LP (agileflex_hpc.ev.milp) and the tariff."""

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from agileflex_hpc.errors import InputDataError, SolverError
from agileflex_hpc.ev import (
    EvFleet,
    draw_fleet,
    effective_price_p_per_kwh,
    solve_schedule,
    tariff_p_per_kwh,
)

EFF = 0.95
MIN_KW = 1.5


def _fleet(t_in, t_out, e_start, e_end, battery, charger):
    names = [f"ev{i}" for i in range(len(t_in))]
    return EvFleet(np.array(names), t_in, t_out, e_start, e_end, battery, charger)


def _brute_force(fleet, head, foot, price, *, step_h, v2g, ff=0.7, premium=17.5, caps=None):
    """Cheapest schedule by enumerating every on/off (and charge/discharge) pattern of the
    in-window cells and solving each pattern's continuous LP with scipy's linprog.

    Written from the problem statement, independently of the package's model builder.
    """
    steps = head.size
    eff_price = price + np.where(head < 0, premium, 0.0)
    cells = [(i, t) for i in range(fleet.n) for t in range(fleet.t_in[i], fleet.t_out[i])]
    k = len(cells)
    nvar = 2 * k  # c then d per cell
    a_ub, b_ub = [], []
    for i in range(fleet.n):  # energy after every step of the window
        mine = [j for j, (e, _) in enumerate(cells) if e == i]
        for last in range(len(mine)):
            row = np.zeros(nvar)
            for j in mine[:last + 1]:
                row[j], row[k + j] = step_h * EFF, -step_h / EFF
            a_ub += [row, -row]
            b_ub += [fleet.battery_kwh[i] - fleet.e_start_kwh[i], fleet.e_start_kwh[i]]
        a_ub.append(-row)
        b_ub.append(fleet.e_start_kwh[i] - fleet.e_end_kwh[i])
    for t in range(steps):  # zone limits
        here = [j for j, (_, s) in enumerate(cells) if s == t]
        if here:
            row = np.zeros(nvar)
            row[here] = 1.0
            row[[k + j for j in here]] = -1.0
            a_ub += [row, -row]
            b_ub += [max(head[t], 0.0), ff * max(foot[t], 0.0)]  # DESIGN: headroom clipped
            for direction, cap in enumerate(caps or ()):  # the loop's caps: gross power
                if np.isfinite(cap[t]):
                    row = np.zeros(nvar)
                    row[[direction * k + j for j in here]] = 1.0
                    a_ub.append(row)
                    b_ub.append(cap[t])
    cost = np.array([step_h * eff_price[t] for _, t in cells])
    cost = np.concatenate((cost, -cost))
    best = np.inf
    for pattern in itertools.product((0, 1, 2) if v2g else (0, 1), repeat=k):
        bounds = []
        for mode in (1, 2):
            for j, (i, _) in enumerate(cells):
                on = pattern[j] == mode
                bounds.append((MIN_KW, fleet.charger_kw[i]) if on else (0.0, 0.0))
        res = linprog(cost, A_ub=np.array(a_ub), b_ub=np.array(b_ub), bounds=bounds,
                      method="highs")
        if res.status == 0:
            best = min(best, res.fun)
    return best


@pytest.fixture
def tiny():
    """2 EVs on a 6-step horizon of 1-hour steps, with min power and the zone limit binding."""
    fleet = _fleet([0, 1], [5, 6], [2.0, 1.0], [6.0, 4.4], [20.0, 10.0], [3.0, 2.0])
    head = np.array([2.0, 2.5, 3.2, 1.9, 2.6, 5.0])
    foot = np.full(6, 4.0)
    price = np.array([5.0, 3.0, 1.0, 2.0, 4.0, 6.0])
    return fleet, head, foot, price


def test_tiny_milp_matches_brute_force(tiny):
    fleet, head, foot, price = tiny
    best = _brute_force(fleet, head, foot, price, step_h=1.0, v2g=False)
    milp = solve_schedule(fleet, head, foot, price, step_minutes=60, min_kw=MIN_KW,
                          efficiency=EFF, mip_gap=1e-9)
    lp = solve_schedule(fleet, head, foot, price, step_minutes=60, min_kw=MIN_KW,
                        efficiency=EFF, model="lp")
    assert milp.status == "optimal" and milp.feasible
    assert milp.objective_p == pytest.approx(best, rel=1e-6, abs=1e-4)
    assert lp.objective_p < best - 1e-3  # the instance really needs the binaries


def test_tiny_v2g_matches_brute_force():
    """V2G: negative headroom at step 1 allows no charging there and pays the premium for a
    discharge; without V2G the same fleet is still feasible (a deficit EVs cannot cover is
    not infeasibility), it just does not charge at step 1."""
    fleet = _fleet([0, 1], [3, 5], [6.0, 3.0], [7.0, 5.0], [10.0, 8.0], [3.0, 2.5])
    head = np.array([2.0, -1.0, 3.0, 1.7, 2.5])
    foot = np.full(5, 3.0)
    price = np.array([4.0, 6.0, 1.0, 2.0, 3.0])
    best = _brute_force(fleet, head, foot, price, step_h=1.0, v2g=True)
    milp = solve_schedule(fleet, head, foot, price, step_minutes=60, min_kw=MIN_KW,
                          efficiency=EFF, v2g=True, mip_gap=1e-9)
    assert milp.feasible and np.isfinite(best)
    assert milp.objective_p == pytest.approx(best, rel=1e-6, abs=1e-4)
    assert milp.discharge_kw[:, 1].sum() >= 1.0 - 1e-6
    no_v2g = solve_schedule(fleet, head, foot, price, step_minutes=60, min_kw=MIN_KW,
                            efficiency=EFF, mip_gap=1e-9)
    assert no_v2g.feasible and no_v2g.charge_kw[:, 1].sum() == 0.0
    assert no_v2g.objective_p == pytest.approx(
        _brute_force(fleet, head, foot, price, step_h=1.0, v2g=False), rel=1e-6, abs=1e-4)


def test_caps_bound_charging_one_ev_from_another():
    """Step 1 (1 h) has negative headroom: the zone may not import there. EV B is plugged in
    at step 1 only and needs 1 kWh; EV A can discharge there and recharge at step 2. Net 0 at
    step 1 fits the zone's bound, but in a power flow B still draws its power where it is:
    the plan-validate loop's charge cap bounds the zone's charging, not its net."""
    fleet = _fleet([0, 1], [3, 2], [8.0, 2.0], [8.0, 3.0], [10.0, 10.0], [3.0, 3.0])
    head, foot = np.array([5.0, -1.0, 5.0]), np.full(3, 5.0)
    price = np.array([1.0, 10.0, 1.0])
    kw = dict(step_minutes=60, min_kw=MIN_KW, efficiency=EFF, v2g=True, mip_gap=1e-9)
    free = solve_schedule(fleet, head, foot, price, **kw)
    assert free.feasible and free.charge_kw[1, 1] >= MIN_KW - 1e-9  # B charges at step 1 ...
    assert free.discharge_kw[0, 1] >= free.charge_kw[1, 1] - 1e-6  # ... from A's discharge
    for cap in (2.0, 1.6):
        caps = (np.array([np.inf, cap, np.inf]), np.full(3, np.inf))
        res = solve_schedule(fleet, head, foot, price, charge_cap_kw=caps[0],
                             discharge_cap_kw=caps[1], **kw)
        assert res.feasible and res.charge_kw[:, 1].sum() <= cap + 1e-6
        assert res.objective_p == pytest.approx(
            _brute_force(fleet, head, foot, price, step_h=1.0, v2g=True, caps=caps),
            rel=1e-6, abs=1e-4)
    # no charging at all at step 1: B cannot get its energy
    stop = solve_schedule(fleet, head, foot, price, charge_cap_kw=np.array([np.inf, 0, np.inf]),
                          **kw)
    assert not stop.feasible and stop.status == "infeasible"
    # the net import cap alone allows it (net 0), as the zone bound does
    net = solve_schedule(fleet, head, foot, price, import_cap_kw=np.array([np.inf, 0, np.inf]),
                         **kw)
    assert net.feasible and net.charge_kw[1, 1] >= MIN_KW - 1e-9
    # a discharge cap bounds the discharge the same way (A may give B at most 1.7 kW)
    res = solve_schedule(fleet, head, foot, price,
                         discharge_cap_kw=np.array([np.inf, 1.7, np.inf]), **kw)
    assert res.feasible and res.discharge_kw[:, 1].sum() <= 1.7 + 1e-6


def _assert_schedule_valid(res, fleet, head, foot, *, ff=0.7):
    """Every constraint of the V2G model, checked on the returned arrays (1-hour steps)."""
    for power in (res.charge_kw, res.discharge_kw):
        on = power > 1e-9
        assert np.all(power[on] >= MIN_KW - 1e-6)
        assert np.all(power <= fleet.charger_kw[:, None] + 1e-6)
    assert not np.any((res.charge_kw > 1e-9) & (res.discharge_kw > 1e-9))
    net = res.net_kw.sum(axis=0)
    assert np.all(net <= np.clip(head, 0, None) + 1e-6)
    assert np.all(net >= -ff * np.clip(foot, 0, None) - 1e-6)
    energy = fleet.e_start_kwh[:, None] + np.cumsum(EFF * res.charge_kw - res.discharge_kw / EFF,
                                                    axis=1)
    assert np.all(energy >= -1e-6) and np.all(energy <= fleet.battery_kwh[:, None] + 1e-6)
    assert np.all(energy[:, -1] >= fleet.e_end_kwh - 1e-6)


def test_v2g_feasibility_charge_only_first_then_v2g(tiny, monkeypatch):
    """A V2G attempt first looks for a charge-only schedule (valid for the V2G model), and
    still finds the schedules that need a discharge: EV 0 must charge 1.5 kW in step 0, where
    the headroom is 0.5 kW, so EV 1 discharges 1.5 kW then and recharges in step 1."""
    from agileflex_hpc.ev import milp

    built = []
    build = milp._build_lp
    monkeypatch.setattr(milp, "_build_lp", lambda *a, **k: built.append(k["v2g"]) or build(*a, **k))
    fleet, head, foot, price = tiny
    quick = solve_schedule(fleet, head, foot, price, step_minutes=60, min_kw=MIN_KW,
                           efficiency=EFF, v2g=True, goal="feasible")
    assert quick.feasible and not quick.discharge_kw.any()
    assert built == [False, False]  # the charge-only LP and MILP; no V2G model needed
    _assert_schedule_valid(quick, fleet, head, foot)

    fleet = _fleet([0, 0], [1, 2], [0.0, 5.0], [MIN_KW * EFF, 5.0], [10.0, 10.0], [3.0, 3.0])
    head, foot, price = np.array([0.5, 5.0]), np.array([3.0, 3.0]), np.array([2.0, 1.0])
    assert not np.isfinite(_brute_force(fleet, head, foot, price, step_h=1.0, v2g=False))
    assert np.isfinite(_brute_force(fleet, head, foot, price, step_h=1.0, v2g=True))
    kw = dict(step_minutes=60, min_kw=MIN_KW, efficiency=EFF, goal="feasible")
    assert solve_schedule(fleet, head, foot, price, **kw).status == "infeasible"
    built.clear()
    res = solve_schedule(fleet, head, foot, price, v2g=True, **kw)
    assert built == [False, False, True, True]
    assert res.feasible and res.discharge_kw[1, 0] >= MIN_KW - 1e-6
    _assert_schedule_valid(res, fleet, head, foot)


def test_lp_model_keeps_small_charges_the_milp_cannot():
    """Headroom 0.5 and 1.0 kW, both below min_kw = 1.5: the MILP cannot charge at all
    (the small-headroom cuts say so to its LP bound), while the ``lp`` model, whose powers
    may be below min_kw, charges 0.5 + 1.0 kW to deliver 1.425 kWh."""
    fleet = _fleet([0], [2], [0.0], [1.5 * EFF], [10.0], [3.0])
    head, foot, price = np.array([0.5, 1.0]), np.zeros(2), np.array([1.0, 2.0])
    kw = dict(step_minutes=60, min_kw=MIN_KW, efficiency=EFF)
    lp = solve_schedule(fleet, head, foot, price, model="lp", **kw)
    assert lp.feasible and lp.charge_kw[0] == pytest.approx([0.5, 1.0], abs=1e-6)
    assert solve_schedule(fleet, head, foot, price, **kw).status == "infeasible"


def test_infeasible_when_headroom_cannot_deliver_energy():
    """One EV needs 10 kWh in the battery over 6 one-hour steps.

    Headroom 1.5 kW delivers at most 6 * 1.5 * 0.95 = 8.55 kWh < 10: infeasible.
    Headroom 1.8 kW delivers 6 * 1.8 * 0.95 = 10.26 kWh >= 10: feasible.
    """
    fleet = _fleet([0], [6], [5.0], [15.0], [40.0], [7.0])
    price, foot = np.full(6, 4.0), np.full(6, 10.0)
    for model in ("milp", "lp"):
        res = solve_schedule(fleet, np.full(6, 1.5), foot, price, step_minutes=60, model=model)
        assert res.status == "infeasible" and not res.feasible
        assert np.isnan(res.objective_p) and not res.charge_kw.any()
        ok = solve_schedule(fleet, np.full(6, 1.8), foot, price, step_minutes=60, model=model)
        assert ok.feasible
        assert ok.energy_kwh[0, -1] >= 15.0 - 1e-6


def _zone(seed, steps=144, scale=1.0):
    rng = np.random.default_rng(seed)
    hour = (12 + np.arange(steps) / 6) % 24
    base = np.interp(hour, [0, 6, 9, 16, 19, 22, 24], [40, 40, 20, 15, 8, 25, 40])
    head = scale * base + rng.normal(0, 2, steps)
    return head, np.full(steps, 30.0)


def _check_schedule(fleet, res, head, foot, price, *, step_h, min_kw, v2g, tol=1e-6):
    """Every constraint, checked on the returned arrays."""
    n, steps = fleet.n, head.size
    t = np.arange(steps)
    window = (t >= fleet.t_in[:, None]) & (t < fleet.t_out[:, None])
    c, d, e = res.charge_kw, res.discharge_kw, res.energy_kwh
    assert c.shape == d.shape == (n, steps) and e.shape == (n, steps + 1)
    assert not c[~window].any() and not d[~window].any()
    for p in (c, d):
        assert np.all(p >= 0) and np.all(p <= fleet.charger_kw[:, None] + tol)
        assert np.all((p <= tol) | (p >= min_kw - tol))
    assert not np.any((c > tol) & (d > tol))
    if not v2g:
        assert not d.any()
    recomputed = fleet.e_start_kwh[:, None] + np.concatenate(
        (np.zeros((n, 1)), np.cumsum(step_h * (EFF * c - d / EFF), axis=1)), axis=1)
    np.testing.assert_allclose(e, recomputed, atol=1e-9)
    assert np.all(e >= -tol) and np.all(e <= fleet.battery_kwh[:, None] + tol)
    assert np.all(e[np.arange(n), fleet.t_out] >= fleet.e_end_kwh - tol)
    net = (c - d).sum(axis=0)
    busy = window.any(axis=0)
    assert np.all(net[busy] <= np.maximum(head[busy], 0.0) + tol)  # DESIGN: max(headroom, 0)
    assert np.all(net[busy] >= -0.7 * foot[busy] - tol)
    cost = step_h * ((c - d).sum(axis=0) * effective_price_p_per_kwh(price, head)).sum()
    assert res.objective_p == pytest.approx(cost, rel=1e-9)


@pytest.mark.parametrize("v2g", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lp_bounds_milp_and_schedules_respect_constraints(seed, v2g):
    head, foot = _zone(seed, scale=0.6)
    if v2g:
        head = head / 0.6 - 10.0  # negative in the evening: V2G must discharge there
    fleet = draw_fleet(12, 100 + seed)
    price = tariff_p_per_kwh()
    milp = solve_schedule(fleet, head, foot, price, v2g=v2g, min_kw=MIN_KW, efficiency=EFF,
                          mip_gap=1e-2, time_limit_s=5)
    lp = solve_schedule(fleet, head, foot, price, v2g=v2g, min_kw=MIN_KW, efficiency=EFF,
                        model="lp")
    assert milp.feasible and lp.feasible, (milp.status, lp.status)
    assert lp.objective_p <= milp.objective_p + 1e-4
    assert 0 <= milp.mip_gap <= 1e-2 or milp.status == "time_limit"
    _check_schedule(fleet, milp, head, foot, price, step_h=1 / 6, min_kw=MIN_KW, v2g=v2g)
    if v2g:
        assert (milp.discharge_kw > 0).any() and (head < 0).any()


def test_milp_within_gap_of_exact_optimum():
    """ev.mip_gap bounds the cost above the optimum by mip_gap x the gross value of the
    energy moved (not x the net cost, which V2G earnings can bring near 0)."""
    head, foot = _zone(5)
    fleet = draw_fleet(15, 5)
    price = tariff_p_per_kwh()
    fast = solve_schedule(fleet, head, foot, price, mip_gap=1e-3)
    exact = solve_schedule(fleet, head, foot, price, mip_gap=1e-7)
    lp = solve_schedule(fleet, head, foot, price, model="lp")
    # the gap is relative to the gross value of the energy the LP schedule moves
    gross = (np.abs(price) * (lp.charge_kw + lp.discharge_kw)).sum() / 6
    assert exact.objective_p <= fast.objective_p + 1e-4
    assert fast.objective_p - exact.objective_p <= 1e-3 * gross + 1e-4
    assert fast.mip_gap <= 1e-3 and exact.mip_gap <= 1e-7


def test_node_limit_with_incumbent_is_feasible():
    """A V2G zone whose MILP needs branching to reach a 1e-9 gap: stopped by the node limit
    (deterministic, unlike a time limit), the best schedule so far is returned, feasible,
    with its (larger) gap."""
    head, foot = _zone(3, scale=0.6)
    head = head / 0.6 - 15.0
    fleet, price = draw_fleet(10, 8), tariff_p_per_kwh()
    res = solve_schedule(fleet, head, foot, price, v2g=True, min_kw=MIN_KW, mip_gap=1e-9,
                         max_nodes=1)
    assert res.status == "solution_limit" and res.feasible and res.mip_gap > 1e-9
    _check_schedule(fleet, res, head, foot, price, step_h=1 / 6, min_kw=MIN_KW, v2g=True)


def test_negative_headroom_is_clipped_not_infeasible():
    """DESIGN stage 7: net EV power within [-0.7 footroom, max(headroom, 0)]. A negative (or
    collapsed, -inf) step only forbids charging there; infeasible only when the positive
    headroom cannot deliver the energy."""
    fleet = _fleet([2], [5], [0.0], [3.0], [40.0], [7.0])  # 3 kWh in steps 2..4
    price, foot = np.full(6, 4.0), np.full(6, 5.0)
    head = np.array([-3.0, -1.0, 5.0, -0.5, 5.0, -2.0])
    res = solve_schedule(fleet, head, foot, price, step_minutes=60)
    assert res.feasible and res.charge_kw[0, 3] == 0.0
    assert res.charge_kw[0].sum() * 0.95 == pytest.approx(3.0)
    head[3], foot[3] = -np.inf, -np.inf
    res = solve_schedule(fleet, head, foot, price, step_minutes=60)
    assert res.feasible and res.charge_kw[0, 3] == 0.0
    head[[2, 4]] = 1.0  # below the 1.38 kW minimum: nowhere to charge
    assert solve_schedule(fleet, head, foot, price, step_minutes=60).status == "infeasible"


def test_empty_fleet_and_input_errors():
    head, foot = _zone(0)
    price = tariff_p_per_kwh()
    empty = draw_fleet(0, 0)
    res = solve_schedule(empty, head, foot, price)
    assert res.feasible and res.charge_kw.shape == (0, 144) and res.objective_p == 0.0
    fleet = draw_fleet(3, 0)
    with pytest.raises(InputDataError, match="profile lengths"):
        solve_schedule(fleet, head[:100], foot, price)
    with pytest.raises(InputDataError, match="footroom_kw"):
        solve_schedule(fleet, head, np.full(144, np.nan), price)
    late = _fleet([100], [130], [0.0], [3.0], [40.0], [7.0])
    with pytest.raises(InputDataError, match="t_out"):
        solve_schedule(late, head[:120], foot[:120], price[:120])
    with pytest.raises(ValueError, match="model"):
        solve_schedule(fleet, head, foot, price, model="qp")  # type: ignore[arg-type]


def test_solver_failure_raises_and_time_limit_without_incumbent():
    head, foot = _zone(0)
    fleet, price = draw_fleet(5, 0), tariff_p_per_kwh()
    with pytest.raises(SolverError, match="time_limit"):
        solve_schedule(fleet, head, foot, price, time_limit_s=-1.0)
    res = solve_schedule(fleet, head, foot, price, time_limit_s=0.0)
    assert res.status == "time_limit" and not res.feasible


def test_tariff_bands_and_premium():
    price = tariff_p_per_kwh()
    assert price.shape == (144,)
    at = {12: 0, 16: 24, 18.5: 39, 19: 42, 23.9: 71, 0: 72, 5.9: 107, 6: 108, 8.9: 125, 9: 126}
    expect = {12: 5.3, 16: 13.6, 18.5: 13.6, 19: 5.3, 23.9: 5.3, 0: 4.0, 5.9: 4.0, 6: 13.6,
              8.9: 13.6, 9: 5.3}
    for hour, step in at.items():
        assert price[step] == pytest.approx(expect[hour]), hour
    hourly = tariff_p_per_kwh(steps=24, step_minutes=60, start_hour=0)
    assert hourly[:6] == pytest.approx(4.0) and hourly[6:9] == pytest.approx(13.6)
    head = np.array([1.0, -0.1, 0.0])
    np.testing.assert_allclose(effective_price_p_per_kwh(np.full(3, 5.0), head), [5.0, 22.5, 5.0])


def test_kept_schedule_after_a_pruned_wide_search_is_within_the_gap(monkeypatch):
    """A V2G zone whose tight restricted MILP finds a schedule outside the gap: the wide one
    runs with the LP bound + gap as ``objective_bound`` (nodes that cannot beat it pruned,
    no sub-MIP heuristics), then the full MILP. The schedule is still within mip_gap x the
    gross value of the exact optimum (solved to 1e-7) and meets every constraint."""
    from agileflex_hpc.ev import milp as milp_module

    rng = np.random.default_rng(23)
    n, scale = int(rng.integers(8, 25)), float(rng.uniform(0.3, 1.0))
    head, foot = _zone(23, scale=scale)
    head = head - 12.0
    fleet = draw_fleet(n, 323)
    price = tariff_p_per_kwh()
    pruned = []
    run_highs = milp_module._run_highs

    def spy(lp, options, start=None):
        pruned.append("objective_bound" in options
                      and not options.get("mip_heuristic_run_rins", True))
        return run_highs(lp, options, start)

    monkeypatch.setattr(milp_module, "_run_highs", spy)
    fast = solve_schedule(fleet, head, foot, price, v2g=True, min_kw=MIN_KW, efficiency=EFF,
                          mip_gap=1e-3)
    assert any(pruned)
    monkeypatch.setattr(milp_module, "_run_highs", run_highs)
    exact = solve_schedule(fleet, head, foot, price, v2g=True, min_kw=MIN_KW, efficiency=EFF,
                           mip_gap=1e-7)
    lp = solve_schedule(fleet, head, foot, price, v2g=True, min_kw=MIN_KW, efficiency=EFF,
                        model="lp")
    gross = (np.abs(effective_price_p_per_kwh(price, head))
             * (lp.charge_kw + lp.discharge_kw)).sum() / 6
    assert fast.status == "optimal" and exact.status == "optimal"
    assert exact.objective_p <= fast.objective_p + 1e-4
    assert fast.objective_p - exact.objective_p <= 1e-3 * gross + 1e-4
    _check_schedule(fleet, fast, head, foot, price, step_h=1 / 6, min_kw=MIN_KW, v2g=True)
