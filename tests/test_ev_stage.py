"""Stage 7 runner: the same zone results however the zones are split over workers."""

import shutil

import numpy as np
import pytest

from agileflex_hpc.__main__ import run_pipeline
from agileflex_hpc.config import load_config
from agileflex_hpc.ev import main as ev_main
from agileflex_hpc.evcharging.stage import list_zone_tasks, read_zone, zone_path
from tests.conftest import write_job

pytestmark = [pytest.mark.requires_opendss, pytest.mark.slow]

JOB = """
[run]
name = "ev"
root = "{root}"
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
block_steps = 48
[[network]]
name = "small"
[cases]
names = ["00PV00HP", "25PV50HP"]
[ev]
max_evs = 3
successes_needed = 2
"""


def _results(cfg):
    out = {}
    for task in list_zone_tasks(cfg):
        z = read_zone(zone_path(cfg.out_dir, task.network, task.zone))
        att = z["attempts"]
        out[task.zone] = (int(z["attrs"]["n_evs"]), att["n"].tolist(), att["status"].tolist(),
                          att["objective_p"].round(9).tolist(),
                          z.get("charge_kw", np.zeros(0)).tobytes())
    return out


def test_ev_results_do_not_depend_on_the_split(tmp_path):
    one = write_job(tmp_path, JOB.format(root="one"), "one.toml")
    cfg1 = load_config(one)
    run_pipeline(cfg1, stages=("loadflow", "headroom"))
    shutil.copytree(cfg1.out_dir.parent, tmp_path / "two")
    two = write_job(tmp_path, JOB.format(root="two"), "two.toml")
    assert ev_main([str(one), "--log-level", "WARNING"]) == 0
    for w in (1, 0):
        assert ev_main([str(two), "--worker", str(w), "--workers", "2",
                        "--log-level", "WARNING"]) == 0
    r1, r2 = _results(cfg1), _results(load_config(two))
    assert r1.keys() == r2.keys() and len(r1) == 12
    assert r1 == r2
    assert any(v[0] > 0 for v in r1.values())  # some zone hosts EVs with a schedule
    assert all(v[0] <= 3 for v in r1.values())  # ev.max_evs caps the start
