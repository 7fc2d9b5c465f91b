"""Stage 8 (validation): EV profiles on the study axis, EV-to-customer mapping, metrics, and the
validation flows of a short demo run (smart vs dumb, headroom respected)."""

from __future__ import annotations

import argparse
import datetime as dt
import types

import h5py
import numpy as np
import pandas as pd
import pytest

from agileflex_hpc import h5io
from agileflex_hpc.cli import Workers
from agileflex_hpc.config import load_config
from agileflex_hpc.errors import InputDataError
from agileflex_hpc.ev.stage import read_zone, zone_path, zone_profiles
from agileflex_hpc.headroom.stage import hosting_path
from agileflex_hpc.inputs.stage import inputs_path, study_times
from agileflex_hpc.network.manifest import manifest_path, read_manifest
from agileflex_hpc.validate import metrics
from agileflex_hpc.validate.inputs import (
    horizon_index,
    map_evs_to_customers,
    tile_daily,
    validation_inputs_path,
    zone_ev_kw,
)
from agileflex_hpc.validate.stage import (
    PROOF_COLUMNS,
    kind_path,
    proof_csv_path,
    proof_table,
    report_csv_path,
    report_h5_path,
    scan_flows,
    worst_added,
    worst_text,
)
from tests.conftest import SHORT_DEMO, write_job

# ------------------------------------------------------------------------ EV profiles


def _zone(t_in, t_out, e_start, e_end, charger_kw, charge=None, discharge=None):
    fleet = pd.DataFrame({"name": [f"ev{i}" for i in range(len(t_in))], "t_in": t_in,
                          "t_out": t_out, "e_start_kwh": e_start, "e_end_kwh": e_end,
                          "battery_kwh": [60.0] * len(t_in), "charger_kw": charger_kw})
    z = {"attrs": {"n_evs": len(t_in)}, "fleet": fleet}
    z["charge_kw"] = charge if charge is not None else np.zeros((len(t_in), 144))
    z["discharge_kw"] = discharge if discharge is not None else np.zeros((len(t_in), 144))
    return z


def test_dumb_charging_hand_example_on_the_study_axis():
    # EV arriving 18:00 (horizon step 36 at 10 min), 7 kW, needs 10 kWh at 95 % efficiency:
    # 10 / 0.95 = 10.526 kWh from the grid = 9 full steps of 7/6 kWh + 0.026316 kWh.
    zone = _zone([36], [108], [20.0], [30.0], [7.0])
    net, dis = zone_ev_kw(zone, "dumb", steps=144, step_minutes=10, efficiency=0.95)
    expected = np.zeros(144)
    expected[36:45] = 7.0
    expected[45] = (10 / 0.95 - 9 * 7 / 6) * 6  # 0.15789 kW in the last, partial step
    np.testing.assert_allclose(net[0], expected, atol=1e-9)
    assert not dis.any()
    times = pd.date_range("2013-12-02", periods=2 * 144, freq="10min")
    tiled = tile_daily(net, times, step_minutes=10)[:, 0]
    for day in range(2):
        at_18 = day * 144 + 108  # 18:00 of each study day
        np.testing.assert_allclose(tiled[at_18:at_18 + 9], 7.0)
        assert tiled[at_18 + 9] == pytest.approx(0.157894737, rel=1e-6)
        assert not tiled[day * 144:at_18].any() and not tiled[at_18 + 10:(day + 1) * 144].any()
    assert tiled.sum() / 6 == pytest.approx(2 * 10 / 0.95)  # two days' grid energy [kWh]


def test_tiling_wraps_an_overnight_session_into_the_first_morning():
    # 23:00 arrival (step 66), 7.2 kW, 12 kWh at efficiency 1: 23:00-00:40 at 30 min steps
    zone = _zone([22], [40], [10.0], [22.0], [7.2])
    zone["charge_kw"] = np.zeros((1, 48))
    zone["discharge_kw"] = np.zeros((1, 48))
    net, _ = zone_ev_kw(zone, "dumb", steps=48, step_minutes=30, efficiency=1.0)
    times = pd.date_range("2013-12-02", periods=3 * 48, freq="30min")
    tiled = tile_daily(net, times, step_minutes=30)[:, 0]
    # horizon step 22 = 23:00; 12 kWh = 3 steps of 3.6 kWh + 1.2 kWh (2.4 kW)
    for day in range(3):
        base = day * 48
        np.testing.assert_allclose(tiled[base + 46:base + 48], 7.2)  # 23:00, 23:30
        np.testing.assert_allclose(tiled[base:base + 2], [7.2, 2.4])  # 00:00, 00:30
        assert not tiled[base + 2:base + 46].any()


def test_horizon_index_starts_at_noon():
    times = pd.DatetimeIndex(["2013-12-02 00:00", "2013-12-02 11:30", "2013-12-02 12:00",
                              "2013-12-03 23:30"])
    np.testing.assert_array_equal(horizon_index(times, step_minutes=30), [24, 47, 0, 23])
    with pytest.raises(InputDataError, match="48 steps"):
        tile_daily(np.zeros((1, 47)), times, step_minutes=30)


def test_smart_profile_is_charge_minus_discharge():
    charge = np.zeros((2, 144))
    discharge = np.zeros((2, 144))
    charge[0, 80:84] = 3.7
    discharge[1, 40:42] = 7.0
    zone = _zone([30, 35], [120, 130], [10.0, 40.0], [20.0, 45.0], [3.7, 7.4], charge, discharge)
    net, dis = zone_ev_kw(zone, "smart", steps=144, step_minutes=10, efficiency=0.95)
    np.testing.assert_array_equal(net, charge - discharge)
    np.testing.assert_array_equal(dis, discharge)
    empty, _ = zone_ev_kw({"attrs": {"n_evs": 0}}, "smart", steps=144, step_minutes=10,
                          efficiency=0.95)
    assert empty.shape == (0, 144)


def test_ev_mapping_is_distinct_seeded_and_prefix_stable():
    cand = np.arange(100, 112)
    a = map_evs_to_customers(8, cand, seed=[1, 0, 3])
    assert len(set(a)) == 8 and set(a) <= set(cand)
    np.testing.assert_array_equal(a, map_evs_to_customers(8, cand, seed=[1, 0, 3]))
    np.testing.assert_array_equal(a[:5], map_evs_to_customers(5, cand, seed=[1, 0, 3]))
    assert not np.array_equal(a, map_evs_to_customers(8, cand, seed=[1, 0, 4]))
    with pytest.raises(InputDataError, match="13 EVs but only 12"):
        map_evs_to_customers(13, cand, seed=[1, 0, 3])


# ------------------------------------------------------------------------ metrics


def _flows():
    """4 steps, 3 buses, 2 lines (line 1 single-phase), 1 transformer, 3 customers."""
    v = np.ones((4, 3, 3))
    v[1, 2, 1] = 0.89  # bus 2 phase 2: customer 1 -> undervoltage at step 1
    v[2, 1, 2] = 0.85  # bus 1 phase 3: only the three-phase customer 2 sees it
    v[3, 0, 0] = 0.80  # bus 0 has no customer: no undervoltage at step 3
    i = np.full((4, 2, 3), 50.0)
    i[:, 1, 1:] = np.nan
    i[0, 1, 0] = 101.0  # over 100 A at step 0
    i[3, 0, 2] = 200.0  # over 200 A? no: rating 200, not strictly above
    s_tx = np.array([[100.0], [-120.0], [50.0], [99.0]])  # 100 kVA: step 1 overloaded
    return v, i, s_tx


def test_violation_percentages_hand_example():
    v, i, s_tx = _flows()
    loading = metrics.line_loading(i, np.array([200.0, 100.0]))
    np.testing.assert_allclose(loading[0], [0.25, 1.01])
    v_cust = metrics.customer_voltage_pu(v, np.array([2, 2, 1]), np.array([1, 2, 0]))
    np.testing.assert_allclose(v_cust[:, 1], [1, 0.89, 1, 1])
    np.testing.assert_allclose(v_cust[:, 2], [1, 1, 0.85, 1])
    tx = metrics.transformer_loading(s_tx, np.array([100.0]))
    flags = metrics.violation_flags(loading, v_cust, tx, v_min_pu=0.9, tx_factor=1.0)
    np.testing.assert_array_equal(flags["thermal"], [1, 0, 0, 0])
    np.testing.assert_array_equal(flags["undervoltage"], [0, 1, 1, 0])
    np.testing.assert_array_equal(flags["transformer"], [0, 1, 0, 0])
    np.testing.assert_array_equal(flags["any"], [1, 1, 1, 0])
    assert not flags["collapse"].any()
    assert metrics.percent_of_steps(flags["any"]) == 75.0
    conv = np.array([True, True, False, True])
    assert metrics.percent_of_steps(flags["undervoltage"], conv) == pytest.approx(100 / 3)
    assert np.isnan(metrics.percent_of_steps(flags["any"], np.zeros(4, bool)))
    assert not metrics.violation_flags(loading, v_cust, tx, tx_factor=1.25)["transformer"].any()


def test_scan_of_a_hand_built_result_file(tmp_path):
    v, i, s_tx = _flows()
    path = tmp_path / "smart.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("loadflow")
        g["v_pu"], g["i_a"], g["s_tx_kva"] = v.astype(np.float32), i.astype(np.float32), s_tx
        g["converged"] = np.array([1, 1, 1, 0], dtype=np.uint8)
    m = types.SimpleNamespace(bus_names=np.array(["a", "b", "c"]), line_rating_a=np.array(
        [200.0, 100.0]), transformer_kva=np.array([100.0]), customers=pd.DataFrame(
        {"bus": ["c", "c", "b"], "phase": [1, 2, 0]}), zone_ids=["F1P1", "F1P2", "F1P3"],
        topology=types.SimpleNamespace(load_zone=np.array([0, 1, 0]),
                                       load_phase=np.array([1, 2, 0]),
                                       feeder_lines=(np.array([0, 1]),)))
    scan = scan_flows(path, m, v_min_pu=0.9, tx_factor=1.0)
    # step 3 did not converge: a collapse, counted as a violation of every kind
    np.testing.assert_array_equal(scan.flags["collapse"], [0, 0, 0, 1])
    np.testing.assert_array_equal(scan.flags["any"], [1, 1, 1, 1])
    np.testing.assert_array_equal(scan.flags["thermal"], [1, 0, 0, 1])
    assert metrics.percent_of_steps(scan.flags["thermal"]) == 50.0
    # per customer: customer 1 at step 1, the three-phase customer 2 at step 2
    np.testing.assert_array_equal(scan.customer_under,
                                  [[0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    # per zone: customer 1 in F1P2; the three-phase customer in all three zones of its feeder
    w = metrics.zone_weights(m.topology.load_zone, m.topology.load_phase, 3)
    np.testing.assert_array_equal(metrics.zone_of_customers(scan.customer_under, w),
                                  [[0, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_allclose(scan.vmin_customer_pu, [1, 0.89, 0.85, 1], rtol=1e-6)
    np.testing.assert_allclose(scan.bus_vmin_pu, [1.0, 0.85, 0.89], rtol=1e-6)  # step 3 masked
    np.testing.assert_array_equal(scan.line_over_steps, [0, 1])
    # no tolerance: the proof's "clear" violations are the violations (a collapse aside)
    np.testing.assert_array_equal(scan.clear["thermal"], [[1, 0, 0], [0, 0, 0], [0, 0, 0],
                                                          [0, 0, 0]])
    np.testing.assert_array_equal(scan.clear["undervoltage"], scan.customer_under)
    np.testing.assert_array_equal(scan.clear["transformer"], [0, 1, 0, 0])
    # 101 A on 100 A is 1 % over; 0.89 and 0.85 p.u. are 0.01 and 0.05 under; 120 kVA 20 %
    wide = scan_flows(path, m, v_min_pu=0.9, tx_factor=1.0, tolerance=0.02)
    assert not wide.clear["thermal"].any()
    np.testing.assert_array_equal(wide.clear["undervoltage"],
                                  [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(wide.clear["transformer"], [0, 1, 0, 0])
    np.testing.assert_array_equal(wide.flags["thermal"], scan.flags["thermal"])  # unchanged


def test_v2g_fulfilment_and_headroom_stats():
    dis = np.array([[0.0, 5.0], [3.0, 5.0], [3.0, 0.0]])
    net = np.array([[2.0, -5.0], [1.0, -4.0], [-3.0, 0.0]])  # step 1 zone 0 cancelled
    head = np.array([[1.0, 2.0], [1.0, -0.5], [np.nan, 3.0]])  # step 2 not converged
    conv = np.array([True, True, False])
    req, ok = metrics.v2g_fulfilment(dis, net, head, conv)
    np.testing.assert_array_equal(req, [[0, 1], [1, 1], [0, 0]])
    np.testing.assert_array_equal(ok, [[0, 1], [0, 0], [0, 0]])
    st = metrics.headroom_stats(head, np.array([True, False]))
    assert st == {"min_kva": 1.0, "mean_kva": 1.0, "negative_pct": 0.0}
    st = metrics.headroom_stats(head)
    assert st["min_kva"] == -0.5 and st["negative_pct"] == pytest.approx(20.0)
    assert np.isnan(metrics.headroom_stats(np.full((2, 2), np.nan))["min_kva"])
    w = metrics.zone_weights(np.array([0, 4, 3]), np.array([1, 2, 0]), 6)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w[2, 3:6], 1 / 3)


# ------------------------------------------------------------------------ short demo run

@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """The demo on 2 days of 30-min steps, every stage up to validation, in this process."""
    from agileflex_hpc.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("short")
    cfg = load_config(write_job(tmp, SHORT_DEMO))
    run_pipeline(cfg, stages=("loadflow", "headroom", "ev", "validate"))
    return cfg


@pytest.mark.slow
def test_validation_files_and_report(short_run):
    cfg = short_run
    for kind in ("none", "smart", "dumb"):
        assert h5io.is_complete(validation_inputs_path(cfg.out_dir, "default", kind))
        assert h5io.is_complete(kind_path(cfg.out_dir, "default", kind))
    assert h5io.is_complete(report_h5_path(cfg.out_dir, "default"))
    table = pd.read_csv(report_csv_path(cfg.out_dir))
    assert list(table["kind"]) == ["none", "smart", "dumb"]
    assert (table["steps"] == cfg.time.n_steps).all()
    assert (table["evs"][1:] == table["evs"].iloc[1]).all()  # the same EVs, smart or dumb
    assert table["pct_any"].iloc[0] <= table["pct_any"].iloc[2]  # EVs add no relief


@pytest.mark.slow
def test_validation_flows_are_solved_to_the_validation_tolerance(short_run):
    """The proof compares two flows with a margin of validate.proof_tolerance (1e-4), so each
    is solved to validate.tolerance (1e-6): the no-EV flow's voltages are those of an engine
    converged to 1e-12 within 1e-6 p.u. (1.0e-7 measured; float32 storage resolves 6e-8).
    Solved at stage 2's 1e-4 they were 7.6e-6 p.u. off."""
    from agileflex_hpc.network.engine import DssNetwork
    from agileflex_hpc.network.manifest import network_master

    cfg = short_run
    assert cfg.validate.tolerance == 1e-6 < cfg.loadflow.tolerance
    with h5py.File(validation_inputs_path(cfg.out_dir, "default", "none"), "r") as f:
        demand, pv = f["inputs/demand_kw"][()], f["inputs/pv_kw"][()]
        assert not f["inputs/ev_kw"][()].any()
    with h5py.File(cfg.out_dir / "validation" / "raw" / "default" / "none.h5", "r") as f:
        stored = f["loadflow/v_pu"][()]
    net = DssNetwork(network_master(cfg, cfg.network("default")), tolerance=1e-12)
    exact = net.run(demand.astype(float), None, pv.astype(float), dtype=np.float64)
    assert exact.converged.all()
    assert np.nanmax(np.abs(stored - exact.v_pu)) < 1e-6


@pytest.mark.slow
def test_demo_plan_is_proved(short_run):
    """The demo: smart charging adds no violation of any kind to the no-EV baseline."""
    proof = pd.read_csv(proof_csv_path(short_run.out_dir))
    assert list(proof.columns) == PROOF_COLUMNS and proof.empty
    with h5py.File(report_h5_path(short_run.out_dir, "default"), "r") as f:
        assert f["report"].attrs["proved"] == 1
    table = pd.read_csv(report_csv_path(short_run.out_dir)).set_index("kind")
    assert table.loc["smart", "evs"] > 0  # the proof is about real EVs
    assert (table["pct_collapse"] == 0).all()


def test_proof_names_zones_and_steps_by_hand():
    """Two zones (customers 0, 1 in zone 0; customer 2 in zone 1), four steps.

    Baseline: customer 0 under 0.9 at step 1; one line of zone 1 over its rating at step 2; the
    transformer overloaded at step 0. Smart: customer 0 at steps 1 and 2 (step 2 added),
    customer 1 at step 1 (added: another customer of the same zone), two lines of zone 1 at
    step 2 (one more: added), the transformer at step 0 (not added), and a collapse at step 3
    (added, network-wide, a violation of every kind there).
    """
    w = metrics.zone_weights(np.array([0, 0, 1]), np.array([1, 1, 2]), 2)
    base_under = np.zeros((4, 3), bool)
    base_under[1, 0] = True
    over = np.zeros((4, 2), int)
    over[2, 1] = 1
    base = metrics.violation_state(over, base_under, {
        "transformer": np.array([1, 0, 0, 0], bool), "collapse": np.zeros(4, bool)})
    smart_under = base_under.copy()
    smart_under[2, 0] = smart_under[1, 1] = True
    smart_over = over.copy()
    smart_over[2, 1] = 2
    smart = metrics.violation_state(smart_over, smart_under, {
        "transformer": np.array([1, 0, 0, 0], bool), "collapse": np.array([0, 0, 0, 1], bool)})
    added = metrics.added_violations(base, smart, w)
    np.testing.assert_array_equal(added["undervoltage"], [[0, 0], [1, 0], [1, 0], [1, 1]])
    np.testing.assert_array_equal(added["thermal"], [[0, 0], [0, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(added["transformer"], [[0, 0], [0, 0], [0, 0], [1, 1]])
    np.testing.assert_array_equal(added["collapse"], [[0, 0], [0, 0], [0, 0], [1, 1]])
    m = types.SimpleNamespace(name="n", zone_ids=["F1P1", "F1P2"], topology=types.SimpleNamespace(
        zone_customers=np.array([2, 1])))
    cfg = types.SimpleNamespace(time=types.SimpleNamespace(
        start=dt.date(2014, 1, 6), days=1, step_minutes=360, n_steps=4, steps_per_day=4))
    proof = proof_table(cfg, m, added)
    got = {(r.violation, r.zone): (r.steps, r.first[11:16], r.last[11:16])
           for r in proof.itertuples()}
    assert got == {("thermal", "F1P1"): (1, "18:00", "18:00"),
                   ("thermal", "F1P2"): (2, "12:00", "18:00"),
                   ("undervoltage", "F1P1"): (3, "06:00", "18:00"),
                   ("undervoltage", "F1P2"): (1, "18:00", "18:00"),
                   ("transformer", "network"): (1, "18:00", "18:00"),
                   ("collapse", "network"): (1, "18:00", "18:00")}


def _one_step_flow(path, *, i_a, v_pu, s_kva):
    """A validation file of one converged step: 1 feeder line (200 A, phase 2 only), one
    customer on phase 2 at bus 1, a 100 kVA transformer."""
    v = np.full((1, 2, 3), 1.0)
    v[0, 1, 1] = v_pu
    i = np.full((1, 1, 3), np.nan)
    i[0, 0, 1] = i_a
    with h5py.File(path, "w") as f:
        g = f.create_group("loadflow")
        g["v_pu"], g["i_a"] = v.astype(np.float32), i.astype(np.float32)
        g["s_tx_kva"] = np.array([[s_kva]], dtype=np.float32)
        g["converged"] = np.ones(1, np.uint8)
    return path


def test_proof_ignores_a_crossing_within_the_load_flows_resolution(tmp_path):
    """Seen on ENWL network_1 and network_5: three lines at 199.987 A (no EVs) and 200.013 A
    (smart) on 200 A ratings, a customer at 0.90010 and 0.89999 p.u., each moved by other
    feeders' EVs through the busbar and the neutral. Both are within the load flow's
    tolerance (1e-4) of the limit: no evidence of an added violation. 200.03 A (1.5e-4 over)
    and 0.8998 p.u. (2e-4 under) are."""
    m = types.SimpleNamespace(
        bus_names=np.array(["busbar", "b1"]), line_rating_a=np.array([200.0]),
        transformer_kva=np.array([100.0]), customers=pd.DataFrame({"bus": ["b1"],
                                                                   "phase": [2]}),
        zone_ids=["F1P1", "F1P2", "F1P3"],
        topology=types.SimpleNamespace(load_zone=np.array([1]), load_phase=np.array([2]),
                                       feeder_lines=(np.array([0]),)))
    w = metrics.zone_weights(m.topology.load_zone, m.topology.load_phase, 3)

    def added(base_flow, smart_flow, tolerance):
        state = {}
        for kind, flow in (("none", base_flow), ("smart", smart_flow)):
            scan = scan_flows(_one_step_flow(tmp_path / f"{kind}.h5", **flow), m,
                              v_min_pu=0.9, tx_factor=1.0, tolerance=tolerance)
            over = (scan_flows(tmp_path / f"{kind}.h5", m, v_min_pu=0.9, tx_factor=1.0)
                    .clear["thermal"])  # stage 3's strict count
            state[kind] = metrics.violation_state(over, scan.customer_under, scan.flags,
                                                  scan.clear)
        got = metrics.added_violations(state["none"], state["smart"], w)
        near = metrics.within_tolerance(state["none"], state["smart"], w, got)
        for k in got:  # a crossing is either counted or reported as within the tolerance
            strict = got[k] | near[k]
            assert not (got[k] & near[k]).any() and (strict[0, 1] == (k != "collapse" and (
                flow_over(base_flow, smart_flow, k))))
        return {k: bool(v[0, 1]) for k, v in got.items() if k != "collapse"}

    def flow_over(base_flow, smart_flow, kind):
        """Whether the smart flow passes the limit the baseline keeps, strictly (by hand)."""
        value, limit, sign = {"thermal": ("i_a", 200.0, 1), "undervoltage": ("v_pu", 0.9, -1),
                              "transformer": ("s_kva", 100.0, 1)}[kind]
        over = [sign * np.float32(f[value]) > sign * limit for f in (base_flow, smart_flow)]
        return over[1] and not over[0]

    base = dict(i_a=199.98724, v_pu=0.9001021, s_kva=99.995)
    noise = dict(i_a=200.01294, v_pu=0.89999443, s_kva=100.005)
    clear = dict(i_a=200.03, v_pu=0.8998, s_kva=100.02)
    none_added = {"thermal": False, "undervoltage": False, "transformer": False}
    all_added = {"thermal": True, "undervoltage": True, "transformer": True}
    assert added(base, noise, 1e-4) == none_added
    assert added(base, noise, 0.0) == all_added  # the strict proof counts them
    assert added(base, clear, 1e-4) == all_added
    assert added(clear, clear, 1e-4) == none_added  # the baseline has them already


def test_proof_rows_name_the_worst_added_violation(tmp_path):
    """The proof table says how far past its limit each added violation is, with and without
    EVs, read back from the two flows at the added steps."""
    m = types.SimpleNamespace(
        name="n", bus_names=np.array(["busbar", "b1"]), line_names=np.array(["cable1"]),
        line_rating_a=np.array([200.0]), transformer_names=np.array(["tx"]),
        transformer_kva=np.array([100.0]),
        customers=pd.DataFrame({"load": ["load_7"], "bus": ["b1"], "phase": [2]}),
        zone_ids=["F1P1", "F1P2", "F1P3"],
        topology=types.SimpleNamespace(load_zone=np.array([1]), load_phase=np.array([2]),
                                       feeder_lines=(np.array([0]),),
                                       zone_customers=np.array([0, 1, 0])))
    w = metrics.zone_weights(m.topology.load_zone, m.topology.load_phase, 3)
    paths = {"none": _one_step_flow(tmp_path / "none.h5", i_a=199.98724, v_pu=0.9001021,
                                    s_kva=99.995),
             "smart": _one_step_flow(tmp_path / "smart.h5", i_a=201.0, v_pu=0.8998,
                                     s_kva=-103.0)}
    state = {}
    for kind, path in paths.items():
        scan = scan_flows(path, m, v_min_pu=0.9, tx_factor=1.0, tolerance=1e-4)
        strict = scan_flows(path, m, v_min_pu=0.9, tx_factor=1.0).clear["thermal"]
        state[kind] = metrics.violation_state(strict, scan.customer_under, scan.flags,
                                              scan.clear)
    added = metrics.added_violations(state["none"], state["smart"], w)
    worst = worst_added(paths["none"], paths["smart"], m, added, w, v_min_pu=0.9,
                        tolerance=1e-4)
    cfg = types.SimpleNamespace(time=types.SimpleNamespace(
        start=dt.date(2014, 1, 6), days=1, step_minutes=1440, n_steps=1, steps_per_day=1))
    rows = {r.violation: r for r in proof_table(cfg, m, added, worst).itertuples()}
    assert set(rows) == {"thermal", "undervoltage", "transformer"}
    th, uv, tx = rows["thermal"], rows["undervoltage"], rows["transformer"]
    assert (th.zone, th.worst_element, th.worst_time) == ("F1P2", "cable1",
                                                          "2014-01-06T00:00:00")
    assert th.worst_smart == pytest.approx(100.5) and th.worst_baseline == pytest.approx(
        99.99362, abs=1e-4)
    assert (uv.zone, uv.worst_element) == ("F1P2", "load_7")
    assert uv.worst_smart == pytest.approx(0.8998) and uv.worst_baseline == pytest.approx(
        0.9001021)
    assert (tx.zone, tx.worst_element) == ("network", "tx")  # |S|: reverse flow counts
    assert tx.worst_smart == pytest.approx(103.0) and tx.worst_baseline == pytest.approx(99.995)
    # as the log, the report and the run's answer say it
    assert worst_text(uv) == "0.89980 pu at load_7, 0.90010 without EVs"
    assert worst_text(th) == "100.500 % of rating at cable1, 99.994 without EVs"
    assert worst_text(types.SimpleNamespace(violation="collapse", worst_smart=np.nan)) == ""


@pytest.mark.slow
def test_smart_violations_not_worse_than_dumb(short_run):
    table = pd.read_csv(report_csv_path(short_run.out_dir)).set_index("kind")
    for col in ("pct_thermal", "pct_undervoltage", "pct_tx_overload", "pct_any"):
        assert table.loc["smart", col] <= table.loc["dumb", col], col
    assert table.loc["smart", "v_min_customer_pu"] >= table.loc["dumb", "v_min_customer_pu"]
    assert table.loc["smart", "headroom_after_min_kva"] >= table.loc["dumb",
                                                                     "headroom_after_min_kva"]


@pytest.mark.slow
def test_smart_charging_stays_within_the_headroom_it_was_given(short_run):
    cfg = short_run
    m = read_manifest(manifest_path(cfg.out_dir, "default"))
    with h5py.File(kind_path(cfg.out_dir, "default", "smart"), "r") as f:
        zone_net = f["ev/net_kw"][()]
    times = study_times(cfg)
    n_checked = 0
    for z, zid in enumerate(m.zone_ids):
        if m.topology.zone_customers[z] <= 0:
            continue
        zone = read_zone(zone_path(cfg.out_dir, "default", zid))
        net, _ = zone_ev_kw(zone, "smart", steps=48, step_minutes=30, efficiency=0.95)
        head, _ = zone_profiles(cfg, "default", z)
        total = net.sum(axis=0)
        if len(net):
            f = zone["fleet"]
            plugged = ((np.arange(48)[None, :] >= f["t_in"].to_numpy()[:, None])
                       & (np.arange(48)[None, :] < f["t_out"].to_numpy()[:, None])).any(0)
            bound = np.clip(head[plugged], 0.0, None)  # DESIGN: headroom clipped at 0
            assert (total[plugged] <= bound + 1e-3).all(), zid
            assert not total[~plugged].any()
            n_checked += 1
        # the validation flows carry exactly the tiled schedule (float32 files)
        np.testing.assert_allclose(zone_net[:, z], tile_daily(total[None], times,
                                                              step_minutes=30)[:, 0], atol=1e-3)
    assert n_checked > 0


@pytest.mark.slow
def test_validation_inputs_take_the_assigned_case_and_distinct_customers(short_run):
    cfg = short_run
    with h5py.File(hosting_path(cfg.out_dir, "default"), "r") as f:
        final = h5io.read_table(f["hosting"], "customers_final")
    with h5py.File(validation_inputs_path(cfg.out_dir, "default", "dumb"), "r") as f:
        demand, customers = f["inputs/demand_kw"][()], h5io.read_table(f["inputs"], "customers")
        ev_kw = f["inputs/ev_kw"][()]
    for case in set(final["assigned_case"]):
        cols = np.flatnonzero(final["assigned_case"].to_numpy() == case)
        with h5py.File(inputs_path(cfg.out_dir, "default", case), "r") as f:
            np.testing.assert_array_equal(demand[:, cols], f["inputs/demand_kw"][()][:, cols])
    has_ev = customers["ev"].to_numpy() != ""
    assert (customers.loc[has_ev, "ev_zone"] == customers.loc[has_ev, "zone"]).all()
    assert not ev_kw[:, ~has_ev].any()
    assert (ev_kw >= 0).all()  # dumb charging never exports


@pytest.mark.slow
def test_rerun_skips_blocks_and_keeps_the_report(short_run, capsys, caplog):
    import logging

    from agileflex_hpc.validate.__main__ import body

    caplog.set_level(logging.INFO)
    cfg = short_run
    before = pd.read_csv(report_csv_path(cfg.out_dir))
    args = argparse.Namespace(dry_run=False, no_gather=False, gather=False)
    assert body(cfg, Workers(0, 1, None, "single"), args) == 0
    assert "== validation report ==" in capsys.readouterr().out
    total = [line for line in caplog.text.splitlines() if line.strip().startswith("total")]
    assert total and total[-1].split()[2] == total[-1].split()[1]  # all items skipped
    pd.testing.assert_frame_equal(before, pd.read_csv(report_csv_path(cfg.out_dir)))
