"""Tests against a real single-node SLURM started by ``scripts/slurm-local.sh``.

    bash scripts/slurm-local.sh start
    eval "$(bash scripts/slurm-local.sh env)"      # exports SLURM_CONF
    python -m pytest tests/test_slurm_cluster.py -q

Without a cluster these tests skip, unless the environment variable CI is set: then they fail.
The pipeline tests do not need the real stage modules: ``AGILEFLEX_PYTHON`` (the python the
jobs run) points at a fake python (a shell script) that records which stage it was asked to run
and fails on demand; ``agileflex submit`` itself runs in the real python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_module, wait_settled

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "slurm" / "pipeline.sh"

# order of slurm/pipeline.sh (job names; replan-final runs the replan stage)
STAGES = ["loadflow", "gather", "headroom", "ev", "validate", "validate-gather", "replan-final",
          "report"]
ARRAY_STAGES = {"loadflow", "ev", "validate"}
CALLED_AS = {"replan-final": "replan"}  # job name -> the stage the fake python logs

# Fake python: called as  PY -m agileflex_hpc.STAGE CONFIG [args]   (stage scripts)
#                     or  PY -m mpi4py -m agileflex_hpc.loadflow CONFIG   (MPI path, under srun)
FAKE_PYTHON = r"""#!/bin/bash
if [[ $1 == -m && $2 == mpi4py ]]; then
    exec "$FAKE_REAL_PYTHON" -c '
import os
from mpi4py import MPI
c = MPI.COMM_WORLD
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(f"mpi {c.rank} {c.size}\n")
'
fi
mod=${2#agileflex_hpc.}
shift 2
stage=$mod
[[ " $* " == *" --gather "* ]] && stage=$mod-gather
echo "$stage ${SLURM_JOB_ID:-none} ${SLURM_ARRAY_TASK_ID:--} $*" \
    "workers=${AGILEFLEX_WORKERS:-}" >> "$FAKE_LOG"
if [[ $stage == "${FAKE_FAIL:-}" ]] &&
   [[ -z ${FAKE_FAIL_TASK:-} || ${SLURM_ARRAY_TASK_ID:-} == "$FAKE_FAIL_TASK" ]]; then
    echo "fake failure of $stage" >&2
    exit 1
fi
exit 0
"""


FAKE_JOB = """
[run]
name = "slurm-test"
root = "out"
[time]
start = "2014-01-06"
days = 1
[[network]]
name = "small"
[validate]
max_rounds = 1
"""


def fake_logs(tmp_path: Path) -> Path:
    """Where ``agileflex submit`` puts the job logs of FAKE_JOB."""
    return tmp_path / "out" / "slurm-test" / "slurm-logs"


# --------------------------------------------------------------------------- fixtures
def make_fake(tmp_path: Path, base_env: dict[str, str]):
    """(env, log path, config path) for running the stage scripts with the fake python."""
    py = tmp_path / "fake-python"
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)
    log = tmp_path / "calls.log"
    config = tmp_path / "job.toml"
    config.write_text(FAKE_JOB)
    env = {k: v for k, v in base_env.items() if not k.startswith(("AGILEFLEX_", "FAKE_"))}
    env.update(
        AGILEFLEX_PYTHON=str(py),
        AGILEFLEX_ROOT=str(ROOT),
        FAKE_LOG=str(log),
        FAKE_REAL_PYTHON=sys.executable,
    )
    return env, log, config.resolve()


@pytest.fixture
def fake(tmp_path, slurm_env):
    return make_fake(tmp_path, slurm_env)


# --------------------------------------------------------------------------- helpers
def run_pipeline(env, config, cwd, *args) -> dict[str, str]:
    r = subprocess.run(
        ["bash", str(PIPELINE), str(config), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, f"pipeline.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    ids = dict(line.split("\t") for line in r.stdout.splitlines())
    assert list(ids) == STAGES, r.stdout
    assert all(j.isdigit() for j in ids.values()), r.stdout
    return ids


def read_calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def expected_calls(stages: list[str], workers: int) -> list[str]:
    out: list[str] = []
    for s in stages:
        out += [CALLED_AS.get(s, s)] * (workers if s in ARRAY_STAGES else 1)
    return out


# --------------------------------------------------------------------------- tests
def test_srun_pmi2_gives_mpi_world(slurm_env):
    """Pip MPICH under srun: --mpi=pmi2 gives one world of size 2 (not two worlds of size 1)."""
    require_module("mpi4py")
    code = "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.rank, c.size, flush=True)"
    r = subprocess.run(
        ["srun", "-n", "2", "--mpi=pmi2", "--immediate=60", "--time=2", sys.executable, "-c", code],
        env=slurm_env, capture_output=True, text=True, timeout=180,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:-1]) == ["0 2", "1 2"], r.stdout + r.stderr


def test_loadflow_mpi_inside_sbatch(fake, tmp_path, jobs):
    """slurm/loadflow.sh with --ntasks=2 runs the stage under srun --mpi=pmi2 -m mpi4py."""
    require_module("mpi4py")
    env, log, config = fake
    r = subprocess.run(
        ["sbatch", "--parsable", "--ntasks=2", "--time=5", str(ROOT / "slurm" / "loadflow.sh"),
         str(config)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split(";")[0]
    jobs.append(job)
    (rec,) = wait_settled([job], env)[job]
    # no --output: sbatch's default log name in the submit folder (no folder to create first)
    out = (tmp_path / f"slurm-{job}.out").read_text()
    assert rec["JobState"] == "COMPLETED", out
    assert sorted(read_calls(log)) == [["mpi", "0", "2"], ["mpi", "1", "2"]], out


def test_pipeline_runs_all_stages_in_order(fake, tmp_path, jobs):
    env, log, config = fake
    ids = run_pipeline(env, config, tmp_path, "--workers", "2")
    jobs.extend(ids.values())
    recs = wait_settled(list(ids.values()), env)

    for stage, job in ids.items():
        states = {x["JobState"] for x in recs[job]}
        assert states == {"COMPLETED"}, (stage, recs[job])
    calls = read_calls(log)
    assert [c[0] for c in calls] == expected_calls(STAGES, 2)
    assert all(c[3] == str(config) for c in calls)  # absolute config path passed on
    for stage in ARRAY_STAGES:  # each array task ran once, told the size of the split
        tasks = sorted(c[2] for c in calls if c[0] == stage)
        assert tasks == ["0", "1"], (stage, calls)
        assert {c[-1] for c in calls if c[0] == stage} == {"workers=2"}
    logs = sorted(p.name for p in fake_logs(tmp_path).iterdir())
    # array tasks as <name>_<array job>_<task>, single jobs as <name>_<job>
    assert f"af-loadflow_{ids['loadflow']}_1.out" in logs, logs
    assert f"af-gather_{ids['gather']}.out" in logs, logs


@pytest.mark.parametrize(
    ("fail", "task"),
    [("loadflow", "1"), ("headroom", None), ("validate-gather", None)],
    ids=["loadflow-task1", "headroom", "validate-gather"],
)
def test_failing_stage_stops_later_stages(fake, tmp_path, jobs, fail, task):
    env, log, config = fake
    env["FAKE_FAIL"] = fail
    if task is not None:
        env["FAKE_FAIL_TASK"] = task
    ids = run_pipeline(env, config, tmp_path, "--workers", "2")
    jobs.extend(ids.values())
    recs = wait_settled(list(ids.values()), env)

    k = STAGES.index(fail)
    before, after = STAGES[:k], STAGES[k + 1:]
    # stages before it ran, in order, and the failing one ran
    calls = [c[0] for c in read_calls(log)]
    assert calls == expected_calls(before + [fail], 2), calls
    for stage in before:
        assert {x["JobState"] for x in recs[ids[stage]]} == {"COMPLETED"}, (stage, recs[ids[stage]])
    failed = [x for x in recs[ids[fail]] if x["JobState"] == "FAILED"]
    assert len(failed) == 1, recs[ids[fail]]
    if task is not None:
        assert failed[0]["ArrayTaskId"] == task
    # the ones after it never ran (the fake python's log above has no line for them) and were
    # cancelled (--kill-on-invalid-dep) or are stuck on their dependency
    for stage in after:
        for x in recs[ids[stage]]:
            assert x["JobState"] == "CANCELLED" or x["Reason"] == "DependencyNeverSatisfied", \
                (stage, x)


def test_pipeline_exits_nonzero_when_sbatch_fails(fake, tmp_path, slurm_env):
    env, log, config = fake
    r = subprocess.run(
        ["bash", str(PIPELINE), str(config), "--workers", "2", "--",
         "--partition=no-such-partition"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    assert "sbatch failed for stage loadflow" in r.stderr
    assert r.stdout == ""


def test_stage_script_runs_outside_slurm(tmp_path):
    """The stage scripts also run with plain bash (repo found from the script, config from env)."""
    env, log, config = make_fake(tmp_path, dict(os.environ))
    del env["AGILEFLEX_ROOT"]
    env["AGILEFLEX_CONFIG"] = config.name  # relative to the working directory
    for var in [v for v in env if v.startswith("SLURM_") and v != "SLURM_CONF"]:
        del env[var]
    r = subprocess.run(
        ["bash", str(ROOT / "slurm" / "gather.sh")], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert read_calls(log) == [["gather", "none", "-", str(config), "workers="]]
