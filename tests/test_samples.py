"""Monte Carlo samples (``[cases] samples``): per-sample draws, the pooled quantile, the spread
of the per-sample plans, and validation on a fresh draw (out of sample)."""

import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from agileflex_hpc.config import case_key, load_config, parse_config, split_case_key
from agileflex_hpc.errors import ConfigError
from agileflex_hpc.headroom import HpAssignment, pooled_quantile_profile
from agileflex_hpc.headroom.stage import HostingPlan, with_spread
from agileflex_hpc.inputs.assignment import assign_customers
from tests.conftest import LOADFLOW_JOB, raw_datasets, subprocess_env, write_job


def _parse(text):
    """A minimal job with ``text`` appended (later tables extend it)."""
    base = '[run]\nname = "x"\n[time]\nstart = "2014-01-06"\ndays = 1\n[[network]]\nname = "n"\n'
    return parse_config(base + text.replace('[run]\nname = "x"\n', ""), base_dir=Path("."))


def _loads(n=40):
    return pd.DataFrame({"load": [f"c{i}" for i in range(n)], "bus": "b", "phase": 1,
                         "feeder": 1, "zone": "F1P1"})


# ------------------------------------------------------------------------ config and keys
def test_sample_keys_name_sample_zero_as_the_case_itself():
    assert case_key("25PV50HP", 0) == "25PV50HP" and case_key("25PV50HP", 3) == "25PV50HP_s3"
    assert split_case_key("25PV50HP_s3") == ("25PV50HP", 3)
    assert split_case_key("25PV50HP") == ("25PV50HP", 0)
    cfg = _parse('[run]\nname = "x"\n[cases]\nnames = ["00PV00HP", "25PV50HP"]\n'
                       'samples = 2\n')
    assert cfg.cases.keys == ("00PV00HP", "00PV00HP_s1", "25PV50HP", "25PV50HP_s1")


@pytest.mark.parametrize("cases, validate, expected", [
    ("samples = 1", "", 0),  # one draw: validated on it, as without samples
    ("samples = 4", "", 4),  # several: a fresh draw by default
    ("samples = 4", "sample = 2", 2),  # one of the planning draws, by choice
    ("samples = 4", 'sample = "fresh"', 4),
    ("samples = 1", 'sample = "fresh"', 1),
])
def test_the_validation_draw(cases, validate, expected):
    cfg = _parse(f'[run]\nname = "x"\n[cases]\n{cases}\n[validate]\n{validate}\n')
    assert cfg.validation_sample == expected


def test_each_round_of_the_loop_validates_on_a_new_fresh_draw(monkeypatch):
    """Round r's caps come from round r's draw, so round r + 1 needs a draw no stage saw."""
    from agileflex_hpc import replan

    fresh = _parse('[cases]\nsamples = 4\n')
    fixed = _parse('[cases]\nsamples = 4\n[validate]\nsample = 1\n')
    for r, expected in ((1, 4), (2, 5), (3, 6)):
        monkeypatch.setattr(replan, "rounds_done", lambda cfg, network, r=r: r)
        assert replan.validation_sample(fresh, "n") == expected
        assert replan.validation_sample(fixed, "n") == 1


@pytest.mark.parametrize("text, where", [
    ("[cases]\nsamples = 0", "cases.samples"),
    ('[cases]\nnames = ["25PV50HP_s1"]', "cases.names"),
    ('[validate]\nsample = "other"', "validate.sample"),
    ("[validate]\nsample = -1", "validate.sample"),
])
def test_bad_sample_settings_are_named(text, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        _parse(f'[run]\nname = "x"\n{text}\n')


# ------------------------------------------------------------------------ stage 1 draws
def test_sample_zero_is_the_draw_without_samples_and_others_redraw_it():
    loads = _loads()
    base = assign_customers(loads, network="n", case="50PV50HP", seed=7)
    pd.testing.assert_frame_equal(assign_customers(loads, network="n", case="50PV50HP",
                                                   seed=7, sample=0), base)
    s1 = assign_customers(loads, network="n", case="50PV50HP", seed=7, sample=1)
    s2 = assign_customers(loads, network="n", case="50PV50HP", seed=7, sample=2)
    assert s1["has_hp"].sum() == base["has_hp"].sum() == 20  # the case's share: 50 % of 40
    assert (s1["pv_kwp"] > 0).sum() == 20
    assert not s1["has_hp"].equals(base["has_hp"]) and not s1["has_hp"].equals(s2["has_hp"])
    assert not np.array_equal(s1["profile_id"], base["profile_id"])
    # still nested across the cases of one sample: the 25 % HP customers are among the 50 %
    s1_25 = assign_customers(loads, network="n", case="50PV25HP", seed=7, sample=1)
    assert (s1_25["has_hp"] <= s1["has_hp"]).all() and s1_25["has_hp"].sum() == 10


# ------------------------------------------------------------------------ stage 6
def test_pooled_quantile_ranks_the_days_of_every_sample_together():
    """Two samples of two days, one step per day: values {1, 5} and {3, 7}. The 25 % quantile
    of the pooled {1, 3, 5, 7} is 1 + 0.75 x 2 = 2.5 (linear); each sample alone gives 2 and
    4."""
    a, b = np.array([[1.0], [5.0]]), np.array([[3.0], [7.0]])
    assert pooled_quantile_profile([a, b], 1, q=0.25)[0, 0] == pytest.approx(2.5)
    assert pooled_quantile_profile([a], 1, q=0.25)[0, 0] == pytest.approx(2.0)
    assert pooled_quantile_profile([b], 1, q=0.25)[0, 0] == pytest.approx(4.0)
    # a collapsed step (NaN) ranks lowest in the pool too
    c = np.array([[np.nan], [9.0]])
    assert pooled_quantile_profile([a, b, c], 1, q=0.0)[0, 0] == -np.inf


def _plan(evs, case_index):
    n = len(evs)
    assign = HpAssignment(np.array(case_index), np.zeros(n, bool), np.array(["all_ok"] * n))
    return HostingPlan(np.zeros((3, 1, n)), np.zeros((3, 1, n)), np.zeros((3, n)), assign,
                       np.array(evs), np.zeros(n))


def test_spread_of_the_per_sample_plans():
    """Three samples, two zones; cases in config order 25PV50HP (50 % HP), 00PV00HP (0 %),
    50PV25HP (25 %). Zone A's samples chose 50 %, 50 %, 0 %; zone B's 0 %, 25 %, 0 %."""
    summary = pd.DataFrame({"zone": ["A", "B"], "case": ["25PV50HP", "00PV00HP"],
                            "evs_estimate": [5, 2], "hps": [3, 0]})
    cases = ["25PV50HP", "00PV00HP", "50PV25HP"]
    spread = [_plan([4, 2], [0, 1]), _plan([7, 2], [0, 2]), _plan([5, 1], [1, 1])]
    out = with_spread(summary, cases, spread)
    assert list(out.columns) == ["zone", "case", "case_min", "case_median", "case_max",
                                 "evs_estimate", "evs_min", "evs_median", "evs_max", "hps",
                                 "hp_cases"]
    assert out["evs_min"].tolist() == [4, 1] and out["evs_max"].tolist() == [7, 2]
    assert out["evs_median"].tolist() == [5.0, 2.0]
    assert out["case_min"].tolist() == ["00PV00HP", "00PV00HP"]
    assert out["case_median"].tolist() == ["25PV50HP", "00PV00HP"]
    assert out["case_max"].tolist() == ["25PV50HP", "50PV25HP"]
    assert out["hp_cases"].tolist() == ["25PV50HP x2; 00PV00HP x1", "00PV00HP x2; 50PV25HP x1"]


# ------------------------------------------------------------------------ whole runs
SAMPLES_JOB = """
[run]
name = "{name}"
root = "out"
seed = 4
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
block_steps = 48
[[network]]
name = "small"
[cases]
names = ["00PV25HP", "50PV100HP"]
samples = {samples}
[ev]
max_evs = 3
successes_needed = 2
[validate]
max_rounds = 1
"""


def _datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj[()]).tobytes())
                     if isinstance(obj, h5py.Dataset) and obj.dtype != object else None)
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same job with one sample and with two, each through the whole pipeline."""
    from agileflex_hpc.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("samples")
    cfgs = {}
    for s in (1, 2):
        cfgs[s] = load_config(write_job(tmp, SAMPLES_JOB.format(name=f"s{s}", samples=s),
                                        f"s{s}.toml"))
        run_pipeline(cfgs[s])
    return cfgs


@pytest.mark.requires_opendss
@pytest.mark.slow
def test_sample_zero_of_several_is_the_run_without_samples(two_runs):
    from agileflex_hpc.layout import layout

    one, two = layout(two_runs[1]), layout(two_runs[2])
    for case in ("00PV25HP", "50PV100HP"):
        assert _datasets(one.inputs("small", case)) == _datasets(two.inputs("small", case))
        assert _datasets(one.zones("small", case)) == _datasets(two.zones("small", case))
        assert _datasets(one.inputs("small", case)) != \
            _datasets(two.inputs("small", case_key(case, 1)))
    # the plan made from sample 0 alone is the one-sample run's plan
    with h5py.File(one.hosting("small"), "r") as f1, h5py.File(two.hosting("small"), "r") as f2:
        assert "sample_evs_estimate" not in f1["hosting"]
        assert f2["hosting/sample_evs_estimate"][0].tolist() == \
            f1["hosting/evs_estimate"][()].tolist()
        assert f2["hosting/sample_case_index"][0].tolist() == f1["hosting/case_index"][()].tolist()


@pytest.mark.requires_opendss
@pytest.mark.slow
def test_hosting_pools_the_samples_days_in_the_quantile(two_runs):
    """Recomputed from the stage-5 files of both samples with numpy's quantile."""
    from agileflex_hpc.layout import layout

    cfg = two_runs[2]
    run, spd, q = layout(cfg), cfg.time.steps_per_day, cfg.headroom.quantile
    with h5py.File(run.hosting("small"), "r") as f:
        pooled = f["hosting/headroom_q_kva"][()]
        cases = [c.decode() if isinstance(c, bytes) else c for c in f["case"][()]]
    for k, case in enumerate(cases):
        days = []
        for s in range(2):
            with h5py.File(run.headroom("small", case_key(case, s)), "r") as f:
                h = f["headroom/headroom_kva"][()]
            days.append(h.reshape(-1, spd, h.shape[1]))
        values = np.where(np.isnan(np.concatenate(days)), -np.inf, np.concatenate(days))
        assert values.shape[0] == 2 * cfg.time.days
        moved = not np.allclose(pooled[k], np.quantile(values[:cfg.time.days], q, axis=0))
        # the stage-5 files hold float32; stage 6 pooled the float64 it computed
        np.testing.assert_allclose(pooled[k], np.quantile(values, q, axis=0), rtol=1e-6)
        assert moved or k == 0  # the second sample's days move at least the bigger case


@pytest.mark.requires_opendss
@pytest.mark.slow
def test_validation_runs_on_a_fresh_draw(two_runs):
    """With two planning samples the plan is validated on sample 2: the baseline's demand is
    sample 2's stage-1 series of each zone's assigned case, not the planning draw's."""
    from agileflex_hpc.layout import layout

    cfg = two_runs[2]
    run = layout(cfg)
    with h5py.File(run.validation_inputs("small", "none"), "r") as f:
        table = pd.DataFrame({"case": [c.decode() if isinstance(c, bytes) else c for c in
                                       f["inputs/customers/assigned_case"][()]]})
        demand = f["inputs/demand_kw"][()]
    for case in set(table["case"]):
        cols = np.flatnonzero(table["case"] == case)
        with h5py.File(run.inputs("small", case_key(case, 2)), "r") as f:
            fresh = f["inputs/demand_kw"][()][:, cols]
        with h5py.File(run.inputs("small", case), "r") as f:
            planned = f["inputs/demand_kw"][()][:, cols]
        np.testing.assert_array_equal(demand[:, cols], fresh)
        assert not np.array_equal(demand[:, cols], planned)
    assert not run.inputs("small", case_key("00PV25HP", 3)).exists()
    page = run.report_index.read_text()
    assert "a fresh draw of who has heat pumps and PV that no stage planned on" in page
    assert "sample_spread.png" in page and "Hosting across samples" in page


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.requires_opendss
def test_samples_under_mpirun_give_the_single_process_bytes(tmp_path, mpirun):
    import subprocess

    job = LOADFLOW_JOB.replace('names = ["00PV25HP", "50PV100HP"]',
                               'names = ["00PV25HP", "50PV100HP"]\nsamples = 2')
    assert "samples = 2" in job
    outs = {}
    for runner in ("one", "mpi"):
        folder = tmp_path / runner
        folder.mkdir()
        path = write_job(folder, job.format(name="x"))
        cmd = [sys.executable, "-m", "agileflex_hpc.loadflow", str(path)]
        res = subprocess.run(([mpirun, "-n", "2"] if runner == "mpi" else []) + cmd, cwd=folder,
                             env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        outs[runner] = raw_datasets(folder / "out" / "x")
    assert any("_s1" in k for k in outs["one"])  # sample 1's blocks were solved
    assert outs["mpi"].keys() == outs["one"].keys()
    assert [k for k in outs["one"] if outs["mpi"][k] != outs["one"][k]] == []
