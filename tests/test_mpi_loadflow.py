"""Stage 2 gives the same bytes whatever the split: 1 process, mpirun -n 2 and -n 3, worker
flags, and after a worker is killed mid-run and rerun. Launches real MPI processes."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import LOADFLOW_JOB, raw_datasets, require_module, subprocess_env, write_job

pytestmark = [pytest.mark.mpi, pytest.mark.slow, pytest.mark.requires_opendss]


def _run(cmd, cwd, timeout=300):
    res = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    job = write_job(tmp, LOADFLOW_JOB.format(name="ref"))
    _run([sys.executable, "-m", "agileflex_hpc.loadflow", str(job)], tmp)
    data = raw_datasets(tmp / "out" / "ref")
    assert len([k for k in data if k.endswith("loadflow/v_pu")]) == 2 * 6 + 2  # blocks + stitched
    return data


@pytest.mark.parametrize("ranks", [2, 3])
def test_mpi_ranks_give_identical_bytes(tmp_path, reference, mpirun, ranks):
    job = write_job(tmp_path, LOADFLOW_JOB.format(name="ref"))
    summary = tmp_path / "summary.json"
    res = _run([mpirun, "-n", str(ranks), sys.executable, "-m", "agileflex_hpc.loadflow",
                str(job), "--summary-json", str(summary)], tmp_path)
    assert f"over {ranks} worker(s)" in res.stderr  # rank 0 logged the partition
    got = raw_datasets(tmp_path / "out" / "ref")
    assert got.keys() == reference.keys()
    assert all(got[k] == reference[k] for k in reference)
    # the summary has every rank, each having solved a share, together every item once
    workers = json.loads(summary.read_text())
    assert [w["worker"] for w in workers] == list(range(ranks))
    assert all(w["steps"] > 0 for w in workers)
    assert sum(w["items"] for w in workers) == 2 * (2 * 48 // 16)  # cases x blocks of 16 steps


def test_worker_flags_then_gather_give_identical_bytes(tmp_path, reference):
    job = write_job(tmp_path, LOADFLOW_JOB.format(name="ref"))
    for w in range(3):
        _run([sys.executable, "-m", "agileflex_hpc.loadflow", str(job), "--worker", str(w),
              "--workers", "3"], tmp_path)
    _run([sys.executable, "-m", "agileflex_hpc.gather", str(job)], tmp_path)
    got = raw_datasets(tmp_path / "out" / "ref")
    assert all(got[k] == reference[k] for k in reference) and got.keys() == reference.keys()


def test_killed_worker_rerun_gives_identical_bytes(tmp_path, reference):
    job = write_job(tmp_path, LOADFLOW_JOB.format(name="ref"))
    cmd = [sys.executable, "-m", "agileflex_hpc.loadflow", str(job)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=subprocess_env(), stderr=subprocess.DEVNULL)
    blocks = tmp_path / "out" / "ref" / "raw" / "small"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(blocks.rglob("block_*.h5"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list(blocks.rglob("block_*.h5"))
    assert 3 <= len(done) < 12, "the kill should land mid-run"
    before = {p: p.stat().st_mtime_ns for p in done}
    _run(cmd, tmp_path)
    got = raw_datasets(tmp_path / "out" / "ref")
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)
    # complete blocks were kept, not recomputed; no temporary file is left behind
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.exists())
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_mpi_rank_error_aborts_all_ranks(tmp_path, mpirun):
    text = LOADFLOW_JOB.format(name="bad").replace('seed = 3', 'seed = 3\npath = "x"')
    job = write_job(tmp_path, text)
    res = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "agileflex_hpc.loadflow",
                          str(job)], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                         text=True,
                         timeout=120)
    assert res.returncode != 0
    assert "network[small].path" in res.stderr


def test_stitched_file_opens_with_named_dims(tmp_path, reference):
    xr = require_module("xarray")
    job = write_job(tmp_path, LOADFLOW_JOB.format(name="ref"))
    _run([sys.executable, "-m", "agileflex_hpc.loadflow", str(job)], tmp_path)
    path = tmp_path / "out" / "ref" / "raw" / "small" / "00PV25HP.h5"
    ds = xr.open_dataset(path, engine="h5netcdf", group="loadflow")
    assert ds["v_pu"].dims == ("time", "bus", "phase")
    assert ds.sizes["time"] == 96 and np.isfinite(ds["v_pu"].values[:, :, 0]).any()
    ds.close()
    from agileflex_hpc.h5io import open_dataset

    ds = open_dataset(path, "loadflow")  # with the root coordinates attached
    assert str(ds["time"].values[0])[:19] == "2014-01-06T00:00:00"
    assert ds["time"].values[1] - ds["time"].values[0] == np.timedelta64(30, "m")
    assert ds["phase"].values.tolist() == [1, 2, 3] and "sourcebus" in ds["bus"].values
    ds.close()


def test_error_on_rank_0_only_aborts_the_other_ranks(tmp_path, mpirun):
    """A malformed master passes config validation; rank 0 fails compiling it while rank 1
    waits for the plan: the run must end with the error shown, not hang."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Master.dss").write_text("New Circuit.x BasekV=11\nNew Lion.l1 Bus1=a Bus2=b\n")
    text = LOADFLOW_JOB.format(name="bad").replace("seed = 3", f'path = "{bad}"')
    job = write_job(tmp_path, text)
    res = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "agileflex_hpc.loadflow",
                          str(job)], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                         text=True,
                         timeout=120)
    assert res.returncode != 0
    assert "OpenDSS could not compile" in res.stderr and "Master.dss" in res.stderr


#: LOADFLOW_JOB over 9 days of 10-minute steps, with a second network
SPREAD_JOB = (LOADFLOW_JOB.format(name="spread")
              .replace("days = 2\nstep_minutes = 30\nblock_steps = 16",
                       "days = 9\nstep_minutes = 10\nblock_steps = 144")
              .replace("[cases]", '[[network]]\nname = "other"\nseed = 4\n[cases]'))


def test_networks_spread_over_ranks_give_identical_bytes(tmp_path, mpirun):
    """A study long enough to spread each network over both ranks (2 x 9 days of 144 steps
    per network): each rank solves part of both networks, and the bytes are a single
    process's."""
    ref_dir, mpi_dir = tmp_path / "one", tmp_path / "mpi"
    ref_dir.mkdir()
    mpi_dir.mkdir()
    _run([sys.executable, "-m", "agileflex_hpc.loadflow", str(write_job(ref_dir, SPREAD_JOB))],
         ref_dir)
    summary = mpi_dir / "summary.json"
    res = _run([mpirun, "-n", "2", sys.executable, "-m", "agileflex_hpc.loadflow",
                str(write_job(mpi_dir, SPREAD_JOB)), "--summary-json", str(summary)], mpi_dir)
    assert "each network spread over 2 shares" in res.stderr
    workers = json.loads(summary.read_text())
    for w in workers:  # the keys are the (network, case) pairs each rank solved
        assert {key.split("/")[0] for key in w["collapse"]} == {"small", "other"}, w
    ref, got = raw_datasets(ref_dir / "out" / "spread"), raw_datasets(mpi_dir / "out" / "spread")
    assert got.keys() == ref.keys() and len(ref) > 0
    assert all(got[k] == ref[k] for k in ref)


def test_idle_rank_takes_blocks_from_the_busy_one(tmp_path, mpirun):
    """Rank 0's share is already complete (solved before by ``--worker 0 --workers 2``), so
    under ``mpirun -n 2`` it skips its share and takes blocks from rank 1's tail: each block
    is solved once, by either rank, and the bytes are a single process's."""
    ref_dir, mpi_dir = tmp_path / "one", tmp_path / "mpi"
    ref_dir.mkdir()
    mpi_dir.mkdir()
    _run([sys.executable, "-m", "agileflex_hpc.loadflow", str(write_job(ref_dir, SPREAD_JOB))],
         ref_dir)
    job = write_job(mpi_dir, SPREAD_JOB)
    _run([sys.executable, "-m", "agileflex_hpc.loadflow", str(job), "--worker", "0",
          "--workers", "2", "--no-gather", "--summary-json", str(mpi_dir / "zero.json")],
         mpi_dir)
    (zero,) = json.loads((mpi_dir / "zero.json").read_text())
    summary = mpi_dir / "summary.json"
    res = _run([mpirun, "-n", "2", sys.executable, "-m", "agileflex_hpc.loadflow", str(job),
                "--summary-json", str(summary)], mpi_dir)
    first, second = json.loads(summary.read_text())
    assert first["taken"] > 0 and second["given"] == first["taken"]
    assert first["steps"] == first["taken"] * 144  # it solved only what it took
    assert first["steps"] + second["steps"] == 2 * 2 * 9 * 144 - zero["steps"]  # rank 1's share
    assert "taken  given" in res.stderr  # the summary table shows the moves
    ref, got = raw_datasets(ref_dir / "out" / "spread"), raw_datasets(mpi_dir / "out" / "spread")
    assert got.keys() == ref.keys() and len(ref) > 0
    assert all(got[k] == ref[k] for k in ref)
