"""``agileflex submit / status / resubmit`` and the stage scripts' requeue, with the real stages
on the local SLURM (``scripts/slurm-local.sh``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import (
    LOADFLOW_JOB,
    REPO,
    raw_datasets,
    subprocess_env,
    wait_settled,
    write_job,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.requires_opendss]

RUN_JOB = """
[run]
name = "sub"
root = "out"
seed = 7
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
block_steps = 24
[[network]]
name = "small"
[cases]
names = ["00PV25HP", "50PV100HP"]
[ev]
max_evs = 3
successes_needed = 2
[validate]
max_rounds = 1
[slurm]
workers = 2
"""


def _agileflex(env, cwd, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agileflex_hpc", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _ids(stdout: str) -> dict[str, str]:
    return dict(line.split("\t") for line in stdout.splitlines())


def _scontrol(env, *args) -> None:
    subprocess.run(["scontrol", *args], env=env, check=True, capture_output=True, timeout=30)


def test_submit_status_resubmit_redo_exactly_the_failed_task(tmp_path, slurm_env, jobs):
    """Load-flow task 1 dies (its python exits 1 before solving, once: a lost worker); the
    chain stops; status shows it; resubmit runs task 1 of 2 only, then the later stages, and
    the run ends with the answers of a one-process run."""
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "slurm"
    ref_dir.mkdir()
    run_dir.mkdir()
    subprocess.run([sys.executable, "-m", "agileflex_hpc", "run",
                    str(write_job(ref_dir, RUN_JOB))], cwd=ref_dir, env=subprocess_env(),
                   check=True,
                   capture_output=True, timeout=600)
    job = write_job(run_dir, RUN_JOB)
    died = tmp_path / "died"
    py = tmp_path / "python-dies-once"
    py.write_text(f"#!/bin/bash\nif [[ $* == *agileflex_hpc.loadflow* && "
                  f"${{SLURM_ARRAY_TASK_ID:-}} == 1 && ! -e {died} ]]; then\n"
                  f"    touch {died}; echo 'worker lost' >&2; exit 1\nfi\n"
                  f"exec {sys.executable} \"$@\"\n")
    py.chmod(0o755)
    env = dict(slurm_env, AGILEFLEX_PYTHON=str(py))

    res = _agileflex(env, run_dir, "submit", job, "--", "--comment=af-test")
    assert res.returncode == 0, res.stderr
    ids = _ids(res.stdout)
    jobs += list(ids.values())
    assert list(ids) == ["loadflow", "gather", "headroom", "ev", "validate",
                         "validate-gather", "replan-final", "report"]
    # a second chain on the same run while the first is queued is refused
    again = _agileflex(env, run_dir, "submit", job)
    assert again.returncode == 1 and "still queued or running" in again.stderr, again.stderr
    recs = wait_settled(list(ids.values()), env)
    states = {r["ArrayTaskId"]: r["JobState"] for r in recs[ids["loadflow"]]}
    assert states == {"0": "COMPLETED", "1": "FAILED"}, states
    assert {r["JobState"] for r in recs[ids["gather"]]} == {"CANCELLED"}  # afterok failed

    status = _agileflex(env, run_dir, "status", job)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    # the stage table: task 1's blocks are missing; the jobs table: each job's state
    assert any(line.startswith("loadflow blocks") and "MISSING" in line for line in lines)
    row = {line.split()[0]: line for line in lines if line.split()[:2][-1:] != []}
    assert "2 tasks of 2: COMPLETED (1), FAILED (1)" in row["loadflow"], status.stdout
    assert row["gather"].split()[-1] == "CANCELLED", status.stdout

    res = _agileflex(env, run_dir, "resubmit", job)
    assert res.returncode == 0, res.stderr
    assert "resubmitting from loadflow (tasks 1 of 2)" in res.stderr
    # the account, partition, time limit... given at submit stay: its sbatch options again
    assert "with the sbatch options of the last submission: --comment=af-test" in res.stderr
    records = (run_dir / "out" / "sub" / "slurm" / "submissions.jsonl").read_text().splitlines()
    assert all(json.loads(r)["sbatch"] == ["--comment=af-test"] for r in records)
    again = _ids(res.stdout)
    jobs += list(again.values())
    recs = wait_settled(list(again.values()), env, timeout=600)
    lf = recs[again["loadflow"]]
    assert [(r["ArrayTaskId"], r["JobState"]) for r in lf] == [("1", "COMPLETED")]
    logs = "".join(p.read_text() for p in (run_dir / "out" / "sub" / "slurm-logs").iterdir())
    bad = {s: [r["JobState"] for r in recs[j]] for s, j in again.items()
           if any(r["JobState"] != "COMPLETED" for r in recs[j])}
    assert not bad, f"{bad}\n{logs[-4000:]}"
    ref, got = ref_dir / "out" / "sub", run_dir / "out" / "sub"
    for rel in ("hosting/small_summary.csv", "validation/report.csv", "validation/proof.csv",
                "replan/rounds.csv"):  # the last round recorded too, as one process does
        pd.testing.assert_frame_equal(pd.read_csv(got / rel), pd.read_csv(ref / rel))

    res = _agileflex(env, run_dir, "resubmit", job)
    assert res.returncode == 0 and res.stdout == ""
    assert "nothing to resubmit" in res.stderr


def test_stage_requeues_itself_near_its_time_limit_and_finishes(tmp_path, slurm_env, jobs):
    """SIGUSR1 to the batch shell (what --signal=B:USR1@120 sends) requeues the job; the rerun
    finishes with the bytes of a plain run. The first start of the python sleeps, so that the
    signal lands while the stage runs."""
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "slurm"
    ref_dir.mkdir()
    run_dir.mkdir()
    subprocess.run([sys.executable, "-m", "agileflex_hpc.loadflow",
                    str(write_job(ref_dir, LOADFLOW_JOB.format(name="x")))], cwd=ref_dir,
                   env=subprocess_env(),
                   check=True, capture_output=True, timeout=300)
    job = write_job(run_dir, LOADFLOW_JOB.format(name="x"))
    started = tmp_path / "started"
    slow = tmp_path / "slow-python"
    slow.write_text(f"#!/bin/bash\nif [[ ${{SLURM_RESTART_COUNT:-0}} == 0 ]]; then\n"
                    f"    touch {started}; sleep 300\nfi\nexec {sys.executable} \"$@\"\n")
    slow.chmod(0o755)
    env = dict(slurm_env, AGILEFLEX_PYTHON=str(slow), AGILEFLEX_ROOT=str(REPO))
    res = subprocess.run(["sbatch", "--parsable", "--time=10", str(REPO / "slurm" /
                                                                    "loadflow.sh"), str(job)],
                         cwd=run_dir, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    jid = res.stdout.strip().split(";")[0]
    jobs.append(jid)
    deadline = time.monotonic() + 120
    while not started.exists():
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR1", "--batch", jid], env=env, check=True,
                   timeout=30)
    # a requeued job waits ~2 min (its BeginTime) before it may start: let it start now
    deadline = time.monotonic() + 60
    while True:
        (rec,) = [r for r in _records(env, jid)]
        if rec["JobState"] == "PENDING" and rec.get("Restarts") == "1":
            _scontrol(env, "update", f"JobId={jid}", "StartTime=now")
            break
        assert time.monotonic() < deadline, rec
        time.sleep(0.3)
    (rec,) = wait_settled([jid], env)[jid]
    log = (run_dir / f"slurm-{jid}.out").read_text()
    assert rec["JobState"] == "COMPLETED" and rec["Restarts"] == "1", log
    assert "time limit near: requeueing" in log and "restart=0" in log and "restart=1" in log
    ref, got = raw_datasets(ref_dir / "out" / "x"), raw_datasets(run_dir / "out" / "x")
    assert got.keys() == ref.keys() and [k for k in ref if got[k] != ref[k]] == []


def _records(env, jid):
    from tests.conftest import job_records

    return job_records(jid, env)


def test_stage_script_submitted_outside_any_checkout(tmp_path, slurm_env, jobs):
    """`agileflex init` scripts, submitted from a folder outside the checkout with no
    AGILEFLEX_ROOT, run the installed package."""
    proj = tmp_path / "proj"
    res = _agileflex(dict(os.environ), tmp_path, "init", proj)
    assert res.returncode == 0, res.stderr
    job = write_job(proj, RUN_JOB)
    env = {k: v for k, v in slurm_env.items() if k not in ("PYTHONPATH", "AGILEFLEX_ROOT")}
    env["AGILEFLEX_PYTHON"] = sys.executable
    res = subprocess.run(["sbatch", "--parsable", "--time=5", "slurm/report.sh", job.name],
                         cwd=proj, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    jid = res.stdout.strip().split(";")[0]
    jobs.append(jid)
    (rec,) = wait_settled([jid], env)[jid]
    log = (proj / f"slurm-{jid}.out").read_text()
    assert rec["JobState"] == "COMPLETED", log
    assert (proj / "out" / "sub" / "report" / "index.html").is_file()
