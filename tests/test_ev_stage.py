"""Stage 7 runner: the same zone results however the zones are split over workers."""

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from agileflex_hpc.config import load_config
from agileflex_hpc.ev.__main__ import main as ev_main
from agileflex_hpc.ev.stage import list_zone_tasks, read_zone, tasks_for, zone_path
from agileflex_hpc.layout import layout
from agileflex_hpc.pipeline import run_pipeline
from tests.conftest import REPO, write_job

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
        out[task.zone] = (int(z["attrs"]["n_evs"]), bool(z["attrs"]["confirmed"]),
                          att["n"].tolist(), att["status"].tolist(), att["verdict"].tolist(),
                          att["objective_p"].round(9).tolist(),
                          z.get("charge_kw", np.zeros(0)).tobytes())
    return out


def _two_copies(tmp_path, job: str, first: str, second: str):
    """Stages 1-6 of ``job`` run once under root ``first`` and copied to root ``second``;
    returns (job path, its config, the copy's job path)."""
    path = write_job(tmp_path, job.format(root=first), f"{first}.toml")
    cfg = load_config(path)
    run_pipeline(cfg, stages=("loadflow", "headroom"))
    shutil.copytree(cfg.out_dir.parent, tmp_path / second)
    return path, cfg, write_job(tmp_path, job.format(root=second), f"{second}.toml")


def test_ev_results_do_not_depend_on_the_split(tmp_path):
    one, cfg1, two = _two_copies(tmp_path, JOB, "one", "two")
    assert ev_main([str(one), "--log-level", "WARNING"]) == 0
    for w in (1, 0):
        assert ev_main([str(two), "--worker", str(w), "--workers", "2",
                        "--log-level", "WARNING"]) == 0
    r1, r2 = _results(cfg1), _results(load_config(two))
    assert r1.keys() == r2.keys() and len(r1) == 12
    assert r1 == r2
    assert any(v[0] > 0 for v in r1.values())  # some zone hosts EVs with a schedule
    assert all(v[0] <= 3 for v in r1.values())  # ev.max_evs caps the start


def test_same_answers_on_an_idle_and_a_loaded_machine(tmp_path):
    """Solver limits that decide results are node counts, never wall-clock: the EV stage run
    beside two busy processes gives the same answers, verdicts and schedules as run alone."""
    job = JOB.replace("max_evs = 3", "max_evs = 6")
    idle, cfg_idle, busy = _two_copies(tmp_path, job, "idle", "busy")
    assert ev_main([str(idle), "--log-level", "WARNING"]) == 0
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        assert ev_main([str(busy), "--log-level", "WARNING"]) == 0
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    r_idle, r_busy = _results(cfg_idle), _results(load_config(busy))
    assert r_idle == r_busy
    assert all(v[1] for v in r_idle.values())  # every answer confirmed


def test_ev_fleets_drawn_from_session_tables(tmp_path):
    (tmp_path / "sessions.csv").write_text(
        "name,t_in,t_out,EStart,EEnd\nA,12,38,10,18\nB,14,40,20,26\nC,13,36,5,12\n")
    (tmp_path / "vehicles.csv").write_text(
        "name,capacity(kW),battery(kWh)\nA,7.4,40\nB,3.7,60\nC,7.4,50\n")
    job = write_job(tmp_path, JOB.format(root="out") + 'sessions_csv = "sessions.csv"\n'
                    'vehicles_csv = "vehicles.csv"\n')
    cfg = load_config(job)
    run_pipeline(cfg, stages=("loadflow", "headroom", "ev"))
    rows = {("A", 12, 38), ("B", 14, 40), ("C", 13, 36)}
    fleets = [read_zone(zone_path(cfg.out_dir, t.network, t.zone)) for t in list_zone_tasks(cfg)]
    drawn = [f["fleet"] for f in fleets if "fleet" in f]
    assert drawn, "no zone kept a fleet"
    for fleet in drawn:
        assert {(n, a, b) for n, a, b in zip(fleet["name"], fleet["t_in"], fleet["t_out"])} <= rows


def test_bad_session_table_is_named(tmp_path, capfd):
    (tmp_path / "sessions.csv").write_text("name,t_in,t_out,EStart,EEnd\nA,30,20,10,18\n")
    (tmp_path / "vehicles.csv").write_text("name,capacity(kW),battery(kWh)\nA,7.4,40\n")
    job = write_job(tmp_path, JOB.format(root="out") + 'sessions_csv = "sessions.csv"\n'
                    'vehicles_csv = "vehicles.csv"\n')
    cfg = load_config(job)
    run_pipeline(cfg, stages=("loadflow", "headroom"))
    capfd.readouterr()
    assert ev_main([str(job)]) == 1
    err = capfd.readouterr().err
    assert "sessions.csv: row 1, column 't_out'" in err, err


def test_split_weights_are_the_zone_times_snapshot_before_an_ev_stage(tmp_path, capsys):
    """The EV stage records each zone's search time; only the single-job step before the next
    EV stage (here the headroom stage) copies them to ev/costs.csv, so the stage's workers all
    read one fixed table while zone files change."""
    path = write_job(tmp_path, JOB.format(root="out"))
    cfg = load_config(path)
    run_pipeline(cfg, stages=("loadflow", "headroom"))
    costs = layout(cfg).ev_costs
    assert not costs.exists()
    assert [t.cost for t in list_zone_tasks(cfg)] == [t.n_start + 1 for t in list_zone_tasks(cfg)]
    assert ev_main([str(path), "--log-level", "WARNING"]) == 0
    assert not costs.exists()  # the EV stage itself never writes the weights it splits by
    wall = {t.zone: float(read_zone(zone_path(cfg.out_dir, t.network, t.zone))["attrs"]["wall_s"])
            for t in list_zone_tasks(cfg)}
    assert all(w > 0 for w in wall.values())
    run_pipeline(cfg, stages=("headroom",))
    snapshot = costs.read_bytes()
    assert {t.zone: t.cost for t in list_zone_tasks(cfg)} == \
        pytest.approx({z: max(w, 1e-3) for z, w in wall.items()})
    assert ev_main([str(path), "--log-level", "WARNING"]) == 0  # every zone current
    run_pipeline(cfg, stages=("headroom",))
    assert costs.read_bytes() == snapshot  # nothing re-solved: the same weights
    # the dry run shows each worker's share of the measured seconds
    capsys.readouterr()
    assert ev_main([str(path), "--dry-run", "--workers", "2", "--worker", "0"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] in (["0"], ["1"])]
    first = sum(max(w, 1e-3) for z, w in wall.items()
                if z in {t.zone for t in tasks_for(0, 2, list_zone_tasks(cfg))})
    assert float(rows[0][3]) == pytest.approx(100 * first / sum(max(w, 1e-3)
                                                               for w in wall.values()), abs=0.06)


@pytest.mark.mpi
def test_ev_stage_under_mpirun_gives_the_single_process_answers(tmp_path, mpirun):
    """Zones split over 2 MPI ranks: the same answers, verdicts and schedules as one process,
    the root prints the summary (slowest zones) and the answer table."""
    one, cfg1, two = _two_copies(tmp_path, JOB, "one", "two")
    assert ev_main([str(one), "--log-level", "WARNING"]) == 0
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("SLURM_ARRAY_TASK_ID", None)
    res = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "agileflex_hpc.ev", str(two)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _results(cfg1) == _results(load_config(two))
    assert "ev summary: 12 zones solved" in res.stderr and "slowest:" in res.stderr
    assert "EVs hosted (stage 7) beside the estimate" in res.stdout
    assert "[mpi 0/2]" in res.stderr  # the ranks really ran under MPI


@pytest.mark.mpi
def test_idle_rank_takes_zones_from_the_busy_one(tmp_path, mpirun):
    """Split weights (``ev/costs.csv``) that give rank 0 one zone and rank 1 the other 11, and
    rank 0's zone solved beforehand (``--worker 0 --workers 2``): under ``mpirun -n 2`` rank 0
    finds its zone current, takes unstarted zones from rank 1, and the answers are one
    process's."""
    import pandas as pd

    one, cfg1, two = _two_copies(tmp_path, JOB, "one", "two")
    assert ev_main([str(one), "--log-level", "WARNING"]) == 0
    cfg2 = load_config(two)
    tasks = list_zone_tasks(cfg2)
    layout(cfg2).ev_costs.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([(t.network, t.zone, 1000.0 if k == 0 else 1.0) for k, t in enumerate(tasks)],
                 columns=["network", "zone", "wall_s"]).to_csv(layout(cfg2).ev_costs, index=False)
    assert [len(tasks_for(w, 2, list_zone_tasks(cfg2))) for w in (0, 1)] == [1, 11]
    assert ev_main([str(two), "--worker", "0", "--workers", "2", "--log-level", "WARNING"]) == 0
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("SLURM_ARRAY_TASK_ID", None)
    res = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "agileflex_hpc.ev", str(two),
                          "--log-level", "DEBUG"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "took" in res.stderr and "items from rank 1" in res.stderr  # rank 0 (the root) logs
    assert _results(cfg1) == _results(load_config(two))


@pytest.mark.mpi
def test_ev_stage_under_mpirun_stops_every_rank_on_a_stale_hosting_file(tmp_path, mpirun):
    """The root alone lists and checks the zones (every network's files hashed once) and
    sends them to the ranks: a stale hosting file there is one clear error and every rank
    stops (none waits for a list that never comes), with nothing written."""
    path = write_job(tmp_path, JOB.format(root="one"), "one.toml")
    cfg = load_config(path)
    run_pipeline(cfg, stages=("loadflow", "headroom"))
    hosting = layout(cfg).hosting("small")
    with h5py.File(hosting, "r+") as f:
        f.attrs["fingerprint"] = "0" * 64  # as if computed from other inputs
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("SLURM_ARRAY_TASK_ID", None)
    res = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "agileflex_hpc.ev", str(path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert f"{hosting}" in res.stderr and "headroom" in res.stderr, res.stderr[-2000:]
    assert not list((cfg.out_dir / "ev").rglob("*.h5"))


def test_progress_counts_zones_and_attempts(tmp_path, capfd, monkeypatch):
    """Without a terminal the EV stage logs zones done, attempts and an ETA, weighing each
    zone by its split weight (the ETA's work); a rerun finds every zone up to date and
    solves nothing."""
    from agileflex_hpc.ev.stage import list_zone_tasks
    from agileflex_hpc.loadflow import progress

    job = write_job(tmp_path, JOB.format(root="p"))
    cfg = load_config(job)
    run_pipeline(cfg, stages=("loadflow", "headroom"))
    capfd.readouterr()
    bars = []

    class Recorded(progress.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(progress, "Progress", Recorded)
    assert ev_main([str(job)]) == 0  # stderr is captured: not a terminal
    err = capfd.readouterr().err
    assert "ev: 12/12 zones" in err and "attempts" in err and "ETA" in err
    weights = [t.cost for t in list_zone_tasks(cfg)]  # here each zone's estimate + 1
    (bar,) = bars
    assert bar.total == bar.done == 12 and sum(weights) > 12
    assert bar.total_work == pytest.approx(sum(weights)) == bar.work_done
    assert "ev summary: 12 zones solved" in err
    assert ev_main([str(job)]) == 0
    assert "ev summary: 0 zones solved (0 attempts, 0.0 s), 12 zones up to date" in \
        capfd.readouterr().err
