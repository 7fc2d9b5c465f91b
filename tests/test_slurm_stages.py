"""The real stages under the local SLURM: a 2-task load-flow array submitted with the repo's
own slurm/loadflow.sh (then slurm/gather.sh, afterok) gives the same bytes as one process."""

import re
import subprocess
import sys

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


def _sbatch(env, cwd, *args) -> str:
    res = subprocess.run(["sbatch", "--parsable", *args], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split(";")[0]


def _array_then_gather(tmp_path, slurm_env, jobs, *array_args, **env_extra) -> str:
    """Solve the job once in this process and once as a SLURM array (``array_args``) then
    the gather job (afterok); assert the same bytes; return the jobs' logs."""
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "slurm"
    ref_dir.mkdir()
    run_dir.mkdir()
    job_ref = write_job(ref_dir, LOADFLOW_JOB.format(name="x"))
    subprocess.run([sys.executable, "-m", "agileflex_hpc.loadflow", str(job_ref)], cwd=ref_dir,
                   env=subprocess_env(), check=True, capture_output=True, timeout=300)
    job = write_job(run_dir, LOADFLOW_JOB.format(name="x"))
    env = dict(slurm_env, AGILEFLEX_PYTHON=sys.executable, AGILEFLEX_ROOT=str(REPO), **env_extra)
    array = _sbatch(env, run_dir, *array_args, "--time=10", str(REPO / "slurm" / "loadflow.sh"),
                    str(job))
    gather = _sbatch(env, run_dir, f"--dependency=afterok:{array}", "--kill-on-invalid-dep=yes",
                     "--time=10", str(REPO / "slurm" / "gather.sh"), str(job))
    jobs += [array, gather]
    recs = wait_settled([array, gather], env)
    logs = "".join(p.read_text() for p in sorted(run_dir.glob("slurm-*.out")))
    states = [r["JobState"] for rs in recs.values() for r in rs]
    assert states == ["COMPLETED"] * 3, logs
    ref, got = raw_datasets(ref_dir / "out" / "x"), raw_datasets(run_dir / "out" / "x")
    assert got.keys() == ref.keys()
    assert [k for k in ref if got[k] != ref[k]] == []
    return logs


def test_loadflow_array_then_gather_match_single_process(tmp_path, slurm_env, jobs):
    import h5py

    logs = _array_then_gather(tmp_path, slurm_env, jobs, "--array=0-1")
    assert "task 0 of 2" in logs and "task 1 of 2" in logs  # two array tasks, each its share
    # each block records the array task that wrote it as <array job>_<task>
    array_job = re.search(r"task 0 of 2 \(array (\d+)\)", logs).group(1)
    ids = set()
    for block in (tmp_path / "slurm" / "out" / "x" / "raw").rglob("block_*.h5"):
        with h5py.File(block, "r") as f:
            ids.add(str(f.attrs["slurm_job_id"]))
    assert ids == {f"{array_job}_0", f"{array_job}_1"}, ids


def test_mpi_inside_array_tasks_match_single_process(tmp_path, slurm_env, jobs):
    """AGILEFLEX_MPI=1 sbatch --array=0-1 --ntasks=2: 2 tasks x 2 ranks = 4 workers."""
    logs = _array_then_gather(tmp_path, slurm_env, jobs, "--array=0-1", "--ntasks=2",
                              AGILEFLEX_MPI="1")
    assert "over 4 worker(s)" in logs  # each task's rank 0 logged the 4-worker plan


PIPELINE_JOB = """
[run]
name = "pipe"
root = "out"
seed = 5
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
block_steps = 24
[[network]]
name = "small"
[cases]
names = ["00PV25HP", "50PV100HP"]
samples = 2
[ev]
max_evs = 3
successes_needed = 2
[slurm]
workers = 2
"""


def test_pipeline_sh_end_to_end_matches_single_process(tmp_path, slurm_env, jobs):
    import pandas as pd

    ref_dir, run_dir = tmp_path / "ref", tmp_path / "slurm"
    ref_dir.mkdir()
    run_dir.mkdir()
    job_ref = write_job(ref_dir, PIPELINE_JOB)
    subprocess.run([sys.executable, "-m", "agileflex_hpc", "run", str(job_ref)], cwd=ref_dir,
                   env=subprocess_env(), check=True, capture_output=True, timeout=600)
    job = write_job(run_dir, PIPELINE_JOB)
    env = dict(slurm_env, AGILEFLEX_PYTHON=sys.executable)
    res = subprocess.run(["bash", str(REPO / "slurm" / "pipeline.sh"), str(job)], cwd=run_dir,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    ids = dict(line.split("\t") for line in res.stdout.splitlines())
    jobs += list(ids.values())
    recs = wait_settled(list(ids.values()), env, timeout=600)
    logs = "".join(p.read_text() for p in (run_dir / "out" / "pipe" / "slurm-logs").iterdir())
    bad = {s: [r["JobState"] for r in recs[j]] for s, j in ids.items()
           if any(r["JobState"] != "COMPLETED" for r in recs[j])}
    assert not bad, f"{bad}\n{logs[-5000:]}"
    assert len(recs[ids["loadflow"]]) == 2 and len(recs[ids["ev"]]) == 2  # 2-task arrays
    ref, got = ref_dir / "out" / "pipe", run_dir / "out" / "pipe"
    for rel in ("hosting/small_summary.csv", "validation/report.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(got / rel), pd.read_csv(ref / rel))
    # two planning samples, validated on a fresh third: the same flows as one process
    assert "evs_median" in pd.read_csv(got / "hosting/small_summary.csv").columns
    flows = {k: v for k, v in raw_datasets(got).items() if "_s1" in k}
    assert flows and all(raw_datasets(ref)[k] == v for k, v in flows.items())
    assert list((got / "inputs" / "small").glob("*_s2.h5"))  # the fresh draw's inputs
    assert (got / "report" / "index.html").is_file()

