"""The OpenDSS engine wrapper against hand-computed power flows and plain OpenDSS use."""

import numpy as np
import pytest

from agileflex_hpc.errors import NetworkError
from agileflex_hpc.network.engine import DssNetwork, pf_to_kvar_ratio

pytestmark = pytest.mark.requires_opendss


def _hand_voltage(p_kw: float, q_kvar: float) -> complex:
    """Phase-1 voltage at bus 3 of the tiny network for one constant-PQ load, by fixed point.

    Source: ideal 11 kV. Transformer 100 kVA, z = (0.5 % + 0.5 %) + j 2 % on its own base,
    seen from the LV side as Z_t = z * 0.416^2 / 0.1 ohm per phase (Dyn: a single-phase
    load loads one winding). Line 150 m of R1 = R0 = 0.5, X1 = X0 = 0.08 ohm/km: with
    Z0 = Z1 there is no mutual coupling, so the loop is the phase conductor alone.
    """
    z_t = complex(0.01, 0.02) * 0.416**2 / 0.1
    z_l = complex(0.5, 0.08) * 0.150
    v0 = 416.0 / np.sqrt(3)  # no-load phase voltage [V], angle reference
    s = complex(p_kw, q_kvar) * 1e3
    v = complex(v0)
    for _ in range(100):
        v = v0 - (z_t + z_l) * np.conj(s / v)
    return v


def test_voltage_drop_matches_hand_calculation(tiny_master):
    net = DssNetwork(tiny_master, tolerance=1e-12)
    p = np.array([[6.0, 0.0]])
    q = p * pf_to_kvar_ratio(0.95)
    out = net.run(p, q, np.zeros_like(p))
    assert out.converged.all()
    bus3 = list(net.bus_names).index("3")
    v_hand = abs(_hand_voltage(6.0, 6.0 * pf_to_kvar_ratio(0.95)))
    v_base = 416.0 / np.sqrt(3)
    assert out.v_pu[0, bus3, 0] == pytest.approx(v_hand / v_base, abs=2e-6)
    # phase 2 carries no load here (C2 at 0 kW): only the neutral shift, which is nil
    assert out.v_pu[0, bus3, 1] == pytest.approx(1.0, abs=1e-5)
    i_hand = 6e3 / 0.95 / v_hand
    line2 = list(net.line_names).index("l2")
    assert out.i_a[0, line2, 0] == pytest.approx(i_hand, rel=1e-4)
    # apparent power at the sending end of L2: the load plus the line's losses, positive
    s_send = abs(v_hand * i_hand + 0j) / 1e3 + i_hand**2 * abs(complex(0.5, 0.08) * 0.05) / 1e3
    assert out.s_kva[0, line2, 0] == pytest.approx(s_send, rel=1e-3)


def test_pv_export_reverses_signs(tiny_master):
    net = DssNetwork(tiny_master, tolerance=1e-12)
    zero = np.zeros((1, 2))
    out = net.run(zero, zero, np.array([[5.0, 0.0]]))
    line1 = list(net.line_names).index("l1")
    assert out.s_kva[0, line1, 0] < -4.9  # flowing back towards the busbar
    assert out.s_tx_kva[0, 0] < -4.9  # exported to the 11 kV side
    bus3 = list(net.bus_names).index("3")
    assert out.v_pu[0, bus3, 0] > 1.0


def test_pv_injects_its_set_power_at_low_voltage(tiny_master):
    """72 kW at customer 1 pulls bus 3 to about 200 V, under 0.9 x the PV generator's 230 V
    base, where OpenDSS's default generator turns constant impedance. The 2 kW of PV there
    must still inject 2 kW: the voltage is the hand calculation's for a 70 kW net load."""
    net = DssNetwork(tiny_master, tolerance=1e-12)
    p = np.array([[72.0, 0.0]])
    q = p * pf_to_kvar_ratio(0.95)
    out = net.run(p, q, np.array([[2.0, 0.0]]), dtype=np.float64)
    assert out.converged.all()
    v_hand = abs(_hand_voltage(70.0, float(q[0, 0])))
    assert v_hand < 0.9 * 230.0
    bus3 = list(net.bus_names).index("3")
    assert out.v_pu[0, bus3, 0] * 416.0 / np.sqrt(3) == pytest.approx(v_hand, abs=1e-3)


def test_blocks_restart_from_the_same_state(tiny_master):
    net = DssNetwork(tiny_master)
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 8, (6, 2))
    first = net.run(p, 0.3 * p, np.zeros_like(p))
    net.run(p[::-1] * 2, p, np.zeros_like(p))  # something else in between
    again = net.run(p, 0.3 * p, np.zeros_like(p))
    for name in ("v_pu", "i_a", "s_kva", "s_tx_kva", "iterations"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))


def test_a_single_phase_lateral_matches_plain_opendss(tmp_path):
    """A network where some buses have one phase (the general, index-array path; three-phase
    networks copy slices): every bus phase and line phase equals what OpenDSS reports element
    by element, and phases a bus or line lacks stay NaN."""
    import opendssdirect as dss

    from tests.conftest import TINY_MASTER

    master = tmp_path / "Master.dss"
    master.write_text(TINY_MASTER.replace("Set voltagebases", (
        "New Line.L3 Bus1=3.2 Bus2=4.2 phases=1 R1=0.0006 X1=0.0001 Length=40 Units=m Normamps=60\n"
        "New Load.C3 Phases=1 Bus1=4.2 kV=0.23 kW=1 PF=0.95\nSet voltagebases")))
    net = DssNetwork(master, tolerance=1e-12)
    assert isinstance(net._v_flat, np.ndarray) and isinstance(net._line_flat, np.ndarray)
    p = np.array([[3.0, 1.0, 4.0], [0.5, 2.0, 6.0]])
    pv = np.array([[0.0, 2.5, 0.0], [0.0, 0.0, 0.0]])
    out = net.run(p, None, pv, dtype=np.float64)
    bus4, line3 = list(net.bus_names).index("4"), list(net.line_names).index("l3")
    assert np.isnan(out.v_pu[:, bus4, [0, 2]]).all() and np.isnan(out.i_a[:, line3, [0, 2]]).all()
    for t in range(2):
        net.set_injections(p[t], None, pv[t])
        dss.Solution.Solve()  # the same state the run's step t solved
        for node, v in zip(dss.Circuit.AllNodeNames(), dss.Circuit.AllBusMagPu()):
            bus, ph = node.rsplit(".", 1)
            assert out.v_pu[t, list(net.bus_names).index(bus), int(ph) - 1] == pytest.approx(
                v, abs=1e-9)
        for k, line in enumerate(net.line_names):
            dss.Lines.Name(line)
            phases = dss.CktElement.NodeOrder()[:dss.CktElement.NumConductors()]
            amps = dss.CktElement.CurrentsMagAng()[0::2]
            for c, ph in enumerate(phases):
                assert out.i_a[t, k, ph - 1] == pytest.approx(amps[c], rel=1e-9, abs=1e-9)


def test_results_filled_later_from_kept_voltages_are_the_same(tiny_master):
    """``run(voltages=...)`` writes only the convergence record and keeps the node voltages;
    ``fill`` (which the background writer runs) then gives exactly the results of a plain
    run; kept voltages of the wrong length are refused."""
    net = DssNetwork(tiny_master)
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 8, (5, 2))
    pv = np.where(np.arange(5)[:, None] > 2, 3.0, 0.0) * np.ones((5, 2))
    plain = net.run(p, None, pv)
    voltages = net.allocate_voltages(5)
    later = net.run(p, None, pv, voltages=voltages)
    assert np.isnan(later.v_pu).all() and (later.converged == plain.converged).all()
    net.fill(later, voltages)
    for name in ("v_pu", "i_a", "s_kva", "s_tx_kva", "iterations"):
        assert getattr(later, name).tobytes() == getattr(plain, name).tobytes(), name
    with pytest.raises(ValueError, match="voltages of shape"):
        net.run(p, None, pv, voltages=net.allocate_voltages(4))


def test_results_filled_in_chunks_of_steps_equal_step_by_step_results(tmp_path):
    """On the embedded default (150 customers, several chunks of steps per block, chunk
    boundaries inside the block) ``fill`` gives the bytes of ``fill_step`` run step by step,
    the transformer's power included."""
    from agileflex_hpc.network import engine
    from agileflex_hpc.network.synthetic import default_network_dir

    net = DssNetwork(default_network_dir(tmp_path) / "Master.dss")
    n_steps = 77
    rng = np.random.default_rng(11)
    p = rng.uniform(0, 4, (n_steps, len(net.load_names)))
    pv = rng.uniform(0, 3, (n_steps, len(net.load_names)))
    voltages = net.allocate_voltages(n_steps)
    # float64 results: float32 files would hide a last-bit difference of a changed order
    chunked = net.run(p, None, pv, voltages=voltages, dtype=np.float64)
    assert 1 < engine._FILL_CHUNK_ROWS // net._y_lines.shape[0] < n_steps
    net.fill(chunked, voltages)
    stepwise = net.allocate(n_steps, dtype=np.float64)
    for t in range(n_steps):
        net.fill_step(stepwise, t, voltages[t])
    for name in ("v_pu", "i_a", "s_kva", "s_tx_kva"):
        assert getattr(chunked, name).tobytes() == getattr(stepwise, name).tobytes(), name
    assert np.isfinite(chunked.s_tx_kva).all() and (np.abs(chunked.s_tx_kva) > 1).all()


def test_arrays_of_another_network_are_never_overwritten(tiny_master, tmp_path):
    """``run(into=...)`` reuses arrays only of its own shape: given a block of another network
    (or another length) it solves into new arrays, and the other block is untouched."""
    from agileflex_hpc.network.synthetic import default_network_dir

    big = DssNetwork(default_network_dir(tmp_path) / "Master.dss")
    p_big = np.full((4, len(big.load_names)), 1.5)
    theirs = big.run(p_big, None, np.zeros_like(p_big))
    kept = theirs.v_pu.copy()
    net = DssNetwork(tiny_master)
    p = np.full((4, 2), 2.0)
    alone = net.run(p, None, np.zeros_like(p))
    for other in (theirs, net.allocate(3)):
        out = net.run(p, None, np.zeros_like(p), into=other)
        assert out.v_pu is not other.v_pu and out.v_pu.shape == (4, net.n_bus, 3)
        np.testing.assert_array_equal(out.v_pu, alone.v_pu)
    np.testing.assert_array_equal(theirs.v_pu, kept)
    same = net.run(2 * p, None, np.zeros_like(p), into=alone)  # its own shape: reused
    assert same.v_pu is alone.v_pu


def test_missing_master_and_no_transformer(tmp_path):
    with pytest.raises(NetworkError, match="not found"):
        DssNetwork(tmp_path / "nope" / "Master.dss")
    master = tmp_path / "Master.dss"
    master.write_text("New Circuit.x BasekV=0.4\nNew Load.a Bus1=sourcebus.1 kV=0.23 kW=1\n")
    with pytest.raises(NetworkError, match="no transformer"):
        DssNetwork(master)


def test_malformed_master_is_a_clear_error(tmp_path):
    master = tmp_path / "Master.dss"
    master.write_text("New Circuit.x BasekV=11\nNew Lion.l1 Bus1=a Bus2=b\n")
    with pytest.raises(NetworkError, match="could not compile"):
        DssNetwork(master)


def _absorbed_load_kw() -> float:
    """Total active power the engine's loads absorb at the last solve [kW]."""
    import opendssdirect as dss

    total, k = 0.0, dss.Loads.First()
    while k:
        total += float(np.sum(dss.CktElement.Powers()[0:2 * dss.CktElement.NumPhases():2]))
        k = dss.Loads.Next()
    return total


def _plain_min_voltage(master, kw: float, **load_settings: float) -> tuple[float, float]:
    """Lowest bus voltage [p.u.] and absorbed load [kW], plain OpenDSS: every load at ``kw``."""
    import opendssdirect as dss

    dss.Basic.AllowChangeDir(False)
    dss.Text.Command("Clear")
    dss.Text.Command("Set DefaultBaseFrequency=50")
    dss.Text.Command(f'Compile "{master}"')
    dss.Text.Command("Set tolerance=1e-10 maxiterations=100")
    extra = " ".join(f"{k}={v:g}" for k, v in load_settings.items())
    dss.Text.Command(f"BatchEdit Load..* kW={kw:g} PF=0.95 {extra}")
    dss.Solution.Solve()
    assert dss.Solution.Converged()
    v = np.asarray(dss.Circuit.AllBusMagPu())
    return float(v[v > 0].min()), _absorbed_load_kw()


@pytest.mark.shared
def test_loads_are_constant_power_at_low_voltage(shared_dir):
    """network_5 at a heavy step (every customer 2.5 kW, lowest voltage ~0.69 p.u.): the loads
    absorb exactly the kW set, and the lowest voltage equals a plain OpenDSS run with
    constant-power loads (Vminpu 0.02, Vmaxpu 50) -- not OpenDSS's constant-Z fallback."""
    master = shared_dir / "networks" / "enwl" / "network_5" / "Master.dss"
    net = DssNetwork(master, tolerance=1e-10)
    p = np.full((1, len(net.load_names)), 2.5)
    out = net.run(p, None, np.zeros_like(p), dtype=np.float64)
    assert out.converged.all()
    assert _absorbed_load_kw() == pytest.approx(p.sum(), rel=1e-6)
    v_ours = float(np.nanmin(out.v_pu))
    v_plain, kw_plain = _plain_min_voltage(master, 2.5, Vminpu=0.02, Vmaxpu=50)
    assert kw_plain == pytest.approx(p.sum(), rel=1e-6)
    assert v_ours == pytest.approx(v_plain, abs=1e-6)
    assert v_ours < 0.75
    # OpenDSS's default load model would have hidden part of the drop
    v_default, kw_default = _plain_min_voltage(master, 2.5)
    assert kw_default < 0.99 * p.sum() and v_default > v_ours + 0.02


@pytest.mark.shared
def test_overloaded_network_collapses_without_error(shared_dir):
    """Every customer of network_5 at 3 kW: no power-flow solution (voltage collapse). The step
    is flagged not converged and the run goes on; the next, feasible step converges again."""
    master = shared_dir / "networks" / "enwl" / "network_5" / "Master.dss"
    net = DssNetwork(master, max_iterations=30)
    p = np.full((2, len(net.load_names)), 3.0)
    p[1] = 1.0
    out = net.run(p, None, np.zeros_like(p))
    assert out.converged.tolist() == [False, True]


def test_compiling_leaves_the_working_directory_alone(tiny_master, tmp_path):
    """A fresh process: the engine's first data-path change used to move the process into
    its private folder, deleted at exit, so a library user's relative paths broke."""
    import subprocess
    import sys

    code = ("import os; from agileflex_hpc.network.engine import DssNetwork; "
            f"DssNetwork({str(tiny_master)!r}); print(os.getcwd())")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert res.stdout.strip() == str(tmp_path)


def test_private_folders_of_killed_processes_are_removed(tiny_master, tmp_path):
    """A process killed after compiling leaves its engine folder; the next process on the host
    removes it before making its own, and removes its own at exit."""
    import os
    import subprocess
    import sys

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    compile_ = ("from agileflex_hpc.network.engine import DssNetwork; "
                f"DssNetwork({str(tiny_master)!r})")
    killed = subprocess.run([sys.executable, "-c", compile_ + "; import os, signal; "
                             "os.kill(os.getpid(), signal.SIGKILL)"], env=env)
    assert killed.returncode == -9
    left = list(tmp.glob("agileflex-dss-*"))
    assert len(left) == 1 and left[0].is_dir()
    subprocess.run([sys.executable, "-c", compile_], env=env, check=True)
    assert list(tmp.iterdir()) == []


def test_branch_rows_take_each_phase_conductors_yprim_row():
    """The line matrix's triples for two hand-made lines: a three-phase line whose 4th
    conductor is the neutral (node 0: no row) and a single-phase line on phase 2."""
    from agileflex_hpc.network.engine import _branch_rows

    y3 = np.arange(64, dtype=float) + 1j * np.arange(64, dtype=float) / 10  # 8 x 8, r = 8
    y1 = np.array([5 + 1j, 6 + 2j, 7 + 3j, 8 + 4j])  # 2 x 2, r = 2
    refs = [np.array([1, 2, 3, 9, 4, 5, 6, 9]), np.array([5, 7])]
    yprims = [y3.view(float), y1.view(float)]  # interleaved (re, im), as the engine gives
    orders = [np.array([1, 2, 3, 0]), np.array([2, 0])]
    row, col, val, flat, node = _branch_rows(refs, yprims, orders)
    # rows 0-2: line 0's conductors 1-3 (YPrim rows 0-2, 8 entries each); row 3: line 1's
    # conductor 1 (YPrim row 0, 2 entries)
    assert row.tolist() == [0] * 8 + [1] * 8 + [2] * 8 + [3] * 2
    assert col.tolist() == refs[0].tolist() * 3 + refs[1].tolist()
    np.testing.assert_array_equal(val, np.concatenate([y3[:24], y1[:2]]))
    assert flat.tolist() == [0, 1, 2, 3 * 1 + 2 - 1]
    assert node.tolist() == [1, 2, 3, 5]
