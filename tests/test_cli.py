"""Which share of the work a process takes: flags, SLURM array variables, MPI, or both."""

import argparse

import pytest

from agileflex_hpc import cli
from agileflex_hpc.errors import ConfigError

ARRAY = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
         "SLURM_ARRAY_TASK_MAX", "AGILEFLEX_WORKERS", "PMI_RANK", "PMI_SIZE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ARRAY:
        monkeypatch.delenv(var, raising=False)


def _args(worker=None, workers=None):
    return argparse.Namespace(worker=worker, workers=workers)


def _array(monkeypatch, task, count, lo=0, hi=None):
    for var, value in zip(ARRAY[:4], (task, count, lo, count - 1 if hi is None else hi)):
        monkeypatch.setenv(var, str(value))


def test_single_process_and_flags():
    assert cli.resolve_workers(_args()) == cli.Workers(0, 1, None, "single")
    assert cli.resolve_workers(_args(2, 5)) == cli.Workers(2, 5, None, "flags")
    with pytest.raises(ConfigError, match="--worker needs --workers"):
        cli.resolve_workers(_args(worker=1))
    with pytest.raises(ConfigError, match="outside 0..4"):
        cli.resolve_workers(_args(5, 5))


def test_full_array_and_partial_rerun(monkeypatch):
    _array(monkeypatch, 3, 4)
    assert cli.resolve_workers(_args()) == cli.Workers(3, 4, None, "slurm")
    _array(monkeypatch, 5, 2, lo=3, hi=5)  # sbatch --array=3,5 after a failure
    with pytest.raises(ConfigError, match="AGILEFLEX_WORKERS"):
        cli.resolve_workers(_args())
    monkeypatch.setenv("AGILEFLEX_WORKERS", "8")
    assert cli.resolve_workers(_args()) == cli.Workers(5, 8, None, "slurm")


class _Comm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_mpi_world_and_mpi_inside_array_tasks(monkeypatch):
    monkeypatch.setattr(cli, "get_comm", lambda: _Comm(1, 3))
    w = cli.resolve_workers(_args())
    assert (w.index, w.count, w.source, w.covers_all, w.is_root) == (1, 3, "mpi", True, False)
    _array(monkeypatch, 2, 4)  # task 2 of 4, each task 3 ranks: workers 6, 7, 8 of 12
    w = cli.resolve_workers(_args())
    assert (w.index, w.count, w.source, w.covers_all) == (7, 12, "slurm+mpi", False)
    with pytest.raises(ConfigError, match="cannot be combined"):
        cli.resolve_workers(_args(0, 2))


def test_agileflex_console_script_runs_stages_and_knows_its_version(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from agileflex_hpc import __version__

    exe = shutil.which("agileflex", path=str(Path(sys.executable).parent)) or "agileflex"
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"agileflex_hpc {__version__}"
    job = tmp_path / "job.toml"
    job.write_text('[run]\nname = "c"\nroot = "out"\n[time]\nstart = "2014-01-06"\ndays = 1\n'
                   'step_minutes = 60\nblock_steps = 24\n[[network]]\nname = "default"\n'
                   '[cases]\nnames = ["00PV00HP"]\n')
    res = subprocess.run([exe, "loadflow", str(job), "--dry-run"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0 and "1 work items over 1 worker" in res.stdout, res.stderr[-2000:]
    res = subprocess.run([exe, "status", str(job)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0 and "manifests" in res.stdout
    # a stage's usage and errors name the command as typed, and the top help is plain text
    res = subprocess.run([exe, "inputs", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("usage: agileflex inputs ")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert "agileflex run CONFIG " in res.stdout and "``" not in res.stdout


def test_dry_runs_print_the_plan_once_with_what_is_current(tmp_path):
    import subprocess
    import sys

    job = tmp_path / "job.toml"
    job.write_text('[run]\nname = "c"\nroot = "out"\n[time]\nstart = "2014-01-06"\ndays = 2\n'
                   'step_minutes = 60\nblock_steps = 24\n[[network]]\nname = "default"\n'
                   '[cases]\nnames = ["00PV00HP", "25PV50HP"]\n')

    def agileflex(*args):
        res = subprocess.run([sys.executable, "-m", "agileflex_hpc", *args, str(job)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout

    out = agileflex("loadflow", "--dry-run")
    assert out.count("4 work items over 1 worker(s), 0 already current") == 1, out
    assert not (tmp_path / "out" / "c" / "raw").exists()  # nothing solved or written
    agileflex("loadflow")
    out = agileflex("loadflow", "--dry-run", "--workers", "2", "--worker", "0")
    assert "4 work items over 2 worker(s), 4 already current (skipped)" in out
    lines = out.splitlines()
    col = lines[-3].split().index("current")  # the table's "current" column, per worker
    assert [line.split()[col] for line in lines[-2:]] == ["2", "2"]
    out = agileflex("run", "--dry-run")
    assert "would run in this process" in out and "loadflow blocks" in out
    # a temporary file of a writer that died: status --clean --dry-run lists, keeps it
    import socket

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no live process has
    tmp = tmp_path / "out" / "c" / "raw" / f"x.h5.{socket.gethostname()}.{dead.pid}.tmp"
    tmp.write_text("")
    out = agileflex("status", "--clean", "--dry-run")
    assert f"would remove {tmp}" in out and tmp.exists()
    out = agileflex("status", "--clean")
    assert "removed 1 temporary files" in out and not tmp.exists()
