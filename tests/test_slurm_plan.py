"""The SLURM side that needs no cluster: the rendered stage scripts, the job chain of
``agileflex submit``, ``--dry-run``, and which array tasks ``resubmit`` would redo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileflex_hpc.config import load_config
from agileflex_hpc.errors import AgileflexError
from agileflex_hpc.slurm.scripts import STAGE_SCRIPTS, render_sbatch
from agileflex_hpc.slurm.submit import plan_pipeline
from tests.conftest import REPO, write_job

SMALL = """
[run]
name = "plan"
root = "out"
seed = 3
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
block_steps = 24
[[network]]
name = "small"
[cases]
names = ["00PV25HP", "50PV100HP"]
[validate]
max_rounds = {rounds}
[slurm]
workers = 3
"""


@pytest.mark.parametrize("stage", sorted(STAGE_SCRIPTS))
def test_repo_scripts_are_the_rendered_template(stage):
    """slurm/<stage>.sh is exactly what the one template renders (no hand-edited copy)."""
    assert (REPO / "slurm" / f"{stage}.sh").read_text() == render_sbatch(stage), \
        f"regenerate: python -m agileflex_hpc.slurm.scripts slurm/ ({stage} differs)"


def test_rendered_scripts_are_valid_bash_with_requeue_and_mpi_where_it_applies():
    for stage, spec in STAGE_SCRIPTS.items():
        text = render_sbatch(stage)
        res = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
        assert res.returncode == 0, (stage, res.stderr)
        assert "#SBATCH --requeue" in text and "#SBATCH --signal=B:USR1@120" in text
        assert ("srun --mpi=" in text) == spec.mpi, stage
        assert "#SBATCH --output" not in text  # sbatch's default log: no folder needed first
        assert f"-m {spec.module} " in text


def test_pipeline_chain_with_rounds_and_per_stage_workers(tmp_path):
    cfg = load_config(write_job(tmp_path, SMALL.format(rounds=2)))
    jobs = plan_pipeline(cfg, workers={"ev": 5})
    assert [j.name for j in jobs] == [
        "loadflow", "gather", "headroom", "ev", "validate", "validate-gather",
        "replan-2", "ev-2", "validate-2", "validate-gather-2", "replan-final", "report"]
    by = {j.name: j for j in jobs}
    assert by["loadflow"].array_spec == "0-2" and by["loadflow"].n_workers == 3  # slurm.workers
    assert by["ev"].array_spec == "0-4" and by["ev-2"].n_workers == 5
    assert by["validate-gather"].tasks is None and by["validate-gather"].args == ("--gather",)
    assert by["replan-2"].stage == "replan" and by["report"].tasks is None
    later = plan_pipeline(cfg, from_stage="ev", first_tasks=(2, 0))
    assert later[0].name == "ev" and later[0].array_spec == "0,2"
    assert plan_pipeline(cfg, from_stage="report")[0].name == "replan-2"
    with pytest.raises(AgileflexError, match="not in 0..2"):
        plan_pipeline(cfg, from_stage="loadflow", first_tasks=(3,))


def test_submit_dry_run_prints_the_commands_and_creates_nothing(tmp_path):
    job = write_job(tmp_path, SMALL.format(rounds=1))
    res = subprocess.run([sys.executable, "-m", "agileflex_hpc", "submit", str(job),
                          "--workers", "2", "--max-parallel", "1", "--dry-run", "--",
                          "--account=abc"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert [line.split("\t")[0] for line in res.stdout.splitlines()] == [
        "loadflow", "gather", "headroom", "ev", "validate", "validate-gather", "replan-final",
        "report"]
    cmds = res.stderr.splitlines()
    assert "--array=0-1%1" in cmds[0] and "AGILEFLEX_WORKERS=2" in cmds[0]
    assert all("--account=abc" in c for c in cmds)
    assert "--dependency=afterok:'<loadflow>'" in cmds[1] or \
        "--dependency=afterok:<loadflow>" in cmds[1]
    assert not (tmp_path / "out").exists()  # no log folder, scripts or records


def test_max_parallel_zero_lifts_the_configs_throttle(tmp_path):
    job = write_job(tmp_path, SMALL.format(rounds=1) + "max_parallel = 2\n")
    cmd = [sys.executable, "-m", "agileflex_hpc", "submit", str(job), "--dry-run"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "--array=0-2%2" in res.stderr.splitlines()[0], res.stderr
    res = subprocess.run(cmd + ["--max-parallel", "0"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    first = res.stderr.splitlines()[0]
    assert res.returncode == 0 and "--array=0-2 " in first and "--array=0-2%" not in first


def test_bad_submit_options_are_refused(tmp_path):
    job = write_job(tmp_path, SMALL.format(rounds=1))
    res = subprocess.run([sys.executable, "-m", "agileflex_hpc", "submit", str(job),
                          "--workers", "0", "--dry-run"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "positive integer" in res.stderr
    res = subprocess.run([sys.executable, "-m", "agileflex_hpc", "submit", str(job),
                          "--from", "nowhere", "--dry-run"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "invalid choice" in res.stderr


@pytest.mark.parametrize("stage", ["gather", "headroom", "report", "replan", "status"])
def test_single_job_stages_refuse_worker_options(tmp_path, stage):
    job = write_job(tmp_path, SMALL.format(rounds=1))
    res = subprocess.run([sys.executable, "-m", f"agileflex_hpc.{stage}", str(job),
                          "--workers", "2", "--worker", "0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr


#: SMALL with a 4-bus network before the embedded one
TWO_SIZES = SMALL.format(rounds=1).replace('[[network]]\nname = "small"',
                                           '[[network]]\nname = "tiny"\npath = "tiny"\n'
                                           '[[network]]\nname = "small"')


@pytest.mark.requires_opendss
def test_resubmit_names_the_load_flow_task_that_did_not_run_on_networks_of_two_sizes(
        tmp_path, tiny_master):
    """Tasks 0 and 2 of 3 run, task 1 is lost. Tasks split by buses x steps (a 4-bus and a
    203-bus network), so resubmit must name task 1 by that split (an equal-weight split of
    the same items names other tasks); running what it names completes the stage."""
    from agileflex_hpc.cli import Workers
    from agileflex_hpc.fingerprint import Fingerprints
    from agileflex_hpc.loadflow.run import loadflow_target, study_items
    from agileflex_hpc.loadflow.stage import run_loadflow
    from agileflex_hpc.partition import items_for
    from agileflex_hpc.slurm.jobs import tasks_to_redo

    cfg = load_config(write_job(tmp_path, TWO_SIZES))
    assert tasks_to_redo(cfg, "loadflow", 3) is None  # nothing planned yet: the whole array
    for w in (0, 2):
        run_loadflow(cfg, Workers(w, 3, source="flags"), gather=False)
    target, fps = loadflow_target(cfg), Fingerprints(cfg)
    missing = [it for it in study_items(cfg) if not target.block_current(fps, it)]
    assert missing and {it.network for it in missing} == {"small"}
    equal = [w for w in range(3) if any(it in missing for it in items_for(w, 3, study_items(cfg)))]
    assert equal != [1]  # the scenario tells the two splits apart
    assert tasks_to_redo(cfg, "loadflow", 3) == [1]
    run_loadflow(cfg, Workers(1, 3, source="flags"), gather=False)
    assert all(target.block_current(fps, it) for it in study_items(cfg))
    assert tasks_to_redo(cfg, "loadflow", 3) == []
