"""Voltage collapse (DESIGN: Collapse) through the pipeline, on a network too weak for its peak.

The feeder is 2 km of a 1.5 ohm/km cable: at about 4.5 kW per customer the power flow has no
solution (checked against the engine below), while the night load converges. Collapsed steps
must be flagged, counted, left out of the voltage fit, NaN in the headroom, -inf in the
quantile profile, and a violation of every kind in the validation -- never a crash.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from agileflex_hpc import h5io
from agileflex_hpc.config import load_config
from agileflex_hpc.network.engine import DssNetwork
from tests.conftest import write_job

pytestmark = pytest.mark.requires_opendss

WEAK_MASTER = """\
Clear
New Circuit.weak BasekV=11 pu=1.0 MVAsc3=1e8 MVAsc1=1e8
New LineCode.lc nphases=3 R1=1.5 X1=0.08 R0=1.5 X0=0.08 C1=0 C0=0 Units=km Normamps=100
New Transformer.TR1 Buses=[SourceBus 11] Conns=[Delta Wye] kVs=[11 0.416] kVAs=[100 100]
~ XHL=2 %Rs=[0.5 0.5]
New Line.L1 Bus1=11 Bus2=2 phases=3 Linecode=lc Length=1000 Units=m
New Line.L2 Bus1=2 Bus2=3 phases=3 Linecode=lc Length=1000 Units=m
New Load.C1 Phases=1 Bus1=3.1 kV=0.23 kW=1 PF=0.95
New Load.C2 Phases=1 Bus1=3.2 kV=0.23 kW=1 PF=0.95
New Load.C3 Phases=1 Bus1=3.3 kV=0.23 kW=1 PF=0.95
New Load.C4 Phases=1 Bus1=2.1 kV=0.23 kW=1 PF=0.95
Set voltagebases=[11 .416]
Calcvoltagebases
"""

JOB = """
[run]
name = "weak"
root = "Data"
seed = 3
[time]
start = "2013-12-02"
days = 2
step_minutes = 30
block_steps = 48
[[network]]
name = "weak"
path = "weak"
[cases]
names = ["00PV00HP", "00PV100HP"]
[ev]
successes_needed = 2
"""


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory):
    from agileflex_hpc.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("weak")
    (tmp / "weak").mkdir()
    (tmp / "weak" / "Master.dss").write_text(WEAK_MASTER)
    cfg = load_config(write_job(tmp, JOB))
    run_pipeline(cfg, stages=("loadflow", "headroom", "ev", "validate"))
    return cfg


def test_the_weak_feeder_collapses_above_its_limit(tmp_path):
    (tmp_path / "Master.dss").write_text(WEAK_MASTER)
    net = DssNetwork(tmp_path / "Master.dss")
    p = np.array([[1.0] * 4, [6.0] * 4])
    out = net.run(p, None, np.zeros_like(p))
    assert out.converged.tolist() == [True, False]


NOSE_MASTER = """\
Clear
New Circuit.nose BasekV=11 pu=1.0 MVAsc3=1e10 MVAsc1=1e10
New LineCode.lc nphases=3 R1=0.5 X1=0.08 R0=0.5 X0=0.08 C1=0 C0=0 Units=km Normamps=300
New Transformer.TR1 Buses=[SourceBus 11] Conns=[Delta Wye] kVs=[11 0.416] kVAs=[500 500]
~ XHL=4 %Rs=[0.5 0.5]
New Line.L1 Bus1=11 Bus2=2 phases=3 Linecode=lc Length=500 Units=m
New Load.C1 Phases=1 Bus1=2.1 kV=0.24 kW=1 PF=0.95
New Load.C2 Phases=1 Bus1=2.2 kV=0.24 kW=1 PF=0.95
New Load.C3 Phases=1 Bus1=2.3 kV=0.24 kW=1 PF=0.95
Set voltagebases=[11 .416]
Calcvoltagebases
"""


def test_non_convergence_is_the_nose_of_the_analytic_pv_curve(tmp_path):
    """A balanced feeder is a two-bus system per phase: source E, series Z = R + jX (cable plus
    transformer, referred to 0.416 kV), a constant-power load P + jQ, Q = P tan(acos 0.95).
    V^4 - (E^2 - 2(RP + XQ)) V^2 + |Z|^2 (P^2 + Q^2) = 0 has a real root up to the nose
    P_max = E^2 / (2(R + X tan phi) + 2|Z| / cos phi). The engine must converge to the upper
    root below the nose and report no solution (collapse) just above it: a non-converged step
    is a real collapse, not a solver that gave up early."""
    (tmp_path / "Master.dss").write_text(NOSE_MASTER)
    net = DssNetwork(tmp_path / "Master.dss")
    e = 416 / np.sqrt(3)  # V per phase
    z_base = 0.416 ** 2 / 0.5  # ohm at 0.416 kV, 500 kVA
    r = 0.5 * 0.5 + 0.01 * z_base  # 500 m of cable + %R of both windings
    x = 0.08 * 0.5 + 0.04 * z_base
    tan_phi = np.tan(np.arccos(0.95))
    a, b = 2 * (r + x * tan_phi), (r * r + x * x) * (1 + tan_phi ** 2)
    p_max = e ** 2 / (a + 2 * np.sqrt(b))  # W per phase (53.0 kW)

    def upper_root_pu(p_w: float) -> float:
        d = (e ** 2 - a * p_w) ** 2 - 4 * b * p_w ** 2
        return float(np.sqrt((e ** 2 - a * p_w + np.sqrt(d)) / 2) / e)

    shares = np.array([0.3, 0.6, 0.9, 0.99, 1.01, 1.05])
    p = np.repeat(shares[:, None] * p_max / 1e3, 3, axis=1)  # kW on each phase
    out = net.run(p, None, np.zeros_like(p), dtype=np.float64)
    assert out.converged.tolist() == [True, True, True, True, False, False]
    end = list(net.bus_names).index("2")
    for k in range(3):  # within the solver's tolerance (1e-4 pu) of the analytic voltage
        assert out.v_pu[k, end] == pytest.approx([upper_root_pu(shares[k] * p_max)] * 3,
                                                 abs=2e-4)


@pytest.mark.slow
def test_collapse_is_flagged_counted_and_masked(weak_run):
    cfg, out = weak_run, weak_run.out_dir
    with h5py.File(out / "raw" / "weak" / "00PV100HP.h5", "r") as f:
        converged = f["loadflow/converged"][()].astype(bool)
    collapsed = int((~converged).sum())
    assert 0 < collapsed < converged.size  # some peaks collapse, the nights do not
    with h5py.File(out / "raw" / "weak" / "00PV00HP.h5", "r") as f:
        converged0 = f["loadflow/converged"][()].astype(bool)
    # counted per case in the hosting file (and so in the report)
    with h5py.File(out / "hosting" / "weak.h5", "r") as f:
        counts = dict(zip(h5io.decode_strings(f["case"][()]), f["hosting/collapse_steps"][()]))
        q_head = f["hosting/headroom_q_kva"][()]
    assert counts == {"00PV00HP": int((~converged0).sum()), "00PV100HP": collapsed}
    # stage 4 fits converged points only
    with h5py.File(out / "headroom" / "weak" / "limits.h5", "r") as f:
        n_points = f["limits/n_points"][()]
    with h5py.File(out / "zones" / "weak" / "00PV00HP.h5", "r") as f:
        customers = f["zones/customers"][()]
    expected_points = int(converged.sum() + converged0.sum())
    assert (n_points[customers > 0] == expected_points).all()
    # stage 5: NaN headroom at collapsed steps; stage 6: -inf at a time of day that collapsed
    with h5py.File(out / "headroom" / "weak" / "00PV100HP.h5", "r") as f:
        head = f["headroom/headroom_kva"][()]
    assert np.isnan(head[~converged]).all() and np.isfinite(head[converged]).all()
    spd = cfg.time.steps_per_day
    collapsed_tod = np.unique(np.flatnonzero(~converged) % spd)
    assert np.isneginf(q_head[1][collapsed_tod][:, customers > 0]).all()


@pytest.mark.slow
def test_collapse_is_a_violation_of_every_kind_in_validation(weak_run):
    out = weak_run.out_dir
    table = pd.read_csv(out / "validation" / "report.csv").set_index("kind")
    for kind in ("none", "smart", "dumb"):
        with h5py.File(out / "validation" / "raw" / "weak" / f"{kind}.h5", "r") as f:
            ok = f["loadflow/converged"][()].astype(bool)
        pct = 100.0 * (~ok).sum() / ok.size
        row = table.loc[kind]
        assert row["nonconverged"] == (~ok).sum()
        assert row["pct_collapse"] == pytest.approx(pct)
        for col in ("pct_thermal", "pct_undervoltage", "pct_tx_overload", "pct_any"):
            assert row[col] >= pct - 1e-9, (kind, col)
    assert table.loc["none", "pct_collapse"] > 0  # the final HP case collapses without EVs
    assert h5io.is_complete(out / "validation" / "weak" / "report.h5")
