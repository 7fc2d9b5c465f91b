"""Shared fixtures: ../shared data (skip outside CI, fail in CI), tiny networks, configs."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import h5py
import pytest

os.environ.setdefault("OPENDSSDIRECT_PY_USE_NUMPY", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AGILEFLEX_SHARED", REPO.parent / "shared"))
IN_CI = bool(os.environ.get("CI"))


def require(condition: bool, what: str) -> None:
    """Skip when ``what`` is unavailable on a user's machine; fail when CI is set."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required when CI is set")
    pytest.skip(f"{what} is not available")


def require_module(name: str):
    """``importlib.import_module(name)``; a missing module skips, or fails when CI is set
    (unlike ``pytest.importorskip``, which would hide a missing MPI or OpenDSS in CI)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"the module {name} ({exc})")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    require((SHARED / "networks").is_dir(), f"../shared ({SHARED})")
    return SHARED


@pytest.fixture(scope="session")
def mpirun() -> str:
    exe = shutil.which("mpirun") or str(Path(os.sys.executable).parent / "mpirun")
    require(Path(exe).exists(), "mpirun (pip install mpich)")
    return exe


def write_job(tmp_path: Path, body: str, name: str = "job.toml") -> Path:
    """Write a job TOML (dedented) into ``tmp_path`` and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# A short copy of jobs/demo.toml (2 days of 30-minute steps) for end-to-end tests;
# outputs go to Data/demo_short beside the TOML.
SHORT_DEMO = """
[run]
name = "demo_short"
root = "Data"
seed = 1

[time]
start = "2013-12-02"
days = 2
step_minutes = 30
block_steps = 48

[[network]]
name = "default"

[cases]
names = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP"]

[ev]
successes_needed = 2
"""


TINY_MASTER = """\
Clear
New Circuit.tiny BasekV=11 pu=1.0 MVAsc3=1e8 MVAsc1=1e8
New LineCode.lc nphases=3 R1=0.5 X1=0.08 R0=0.5 X0=0.08 C1=0 C0=0 Units=km Normamps=100
New Transformer.TR1 Buses=[SourceBus 11] Conns=[Delta Wye] kVs=[11 0.416] kVAs=[100 100]
~ XHL=2 %Rs=[0.5 0.5]
New Line.L1 Bus1=11 Bus2=2 phases=3 Linecode=lc Length=100 Units=m
New Line.L2 Bus1=2 Bus2=3 phases=3 Linecode=lc Length=50 Units=m
New Load.C1 Phases=1 Bus1=3.1 kV=0.23 kW=1 PF=0.95
New Load.C2 Phases=1 Bus1=3.2 kV=0.23 kW=1 PF=0.95
Set voltagebases=[11 .416]
Calcvoltagebases
"""


@pytest.fixture
def tiny_master(tmp_path: Path) -> Path:
    """One feeder, buses 11 (busbar) -> 2 -> 3, two customers at bus 3 on phases 1 and 2."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "Master.dss").write_text(TINY_MASTER)
    return folder / "Master.dss"


# --------------------------------------------------------------------------- load flows
#: a 2-day, 2-case job on a small embedded network (``{name}``: the run name)
LOADFLOW_JOB = """
[run]
name = "{name}"
root = "out"
seed = 11
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
block_steps = 16
[[network]]
name = "small"
seed = 3
[cases]
names = ["00PV25HP", "50PV100HP"]
"""


def subprocess_env() -> dict[str, str]:
    """The environment for running the package in a subprocess (checkout on PYTHONPATH, no
    SLURM array task)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.pop("SLURM_ARRAY_TASK_ID", None)
    return env


def raw_datasets(run_dir: Path) -> dict[str, bytes]:
    """Every dataset of every block file and stitched file, as raw bytes, by relative path."""
    out = {}
    for path in sorted((run_dir / "raw").rglob("*.h5")):
        with h5py.File(path, "r") as f:
            def visit(name, obj, path=path):
                if isinstance(obj, h5py.Dataset):
                    data = obj[()]
                    key = f"{path.relative_to(run_dir)}:{name}"
                    out[key] = repr(data.tolist()) if data.dtype == object else data.tobytes()
            f.visititems(visit)
    return out


# --------------------------------------------------------------------------- local SLURM
SLURM_LOCAL = REPO / "scripts" / "slurm-local.sh"
FINISHED = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE",
}
POLL_TIMEOUT = 240.0  # seconds; a healthy local cluster needs ~3 s per dependent stage


def _unavailable(reason: str) -> None:
    hint = ("start it: bash scripts/slurm-local.sh start && "
            "eval \"$(bash scripts/slurm-local.sh env)\"")
    if IN_CI:
        pytest.fail(f"local SLURM cluster not usable ({reason}); {hint}", pytrace=False)
    pytest.skip(f"local SLURM cluster not usable ({reason}); {hint}")


def _local_conf() -> str | None:
    """SLURM_CONF that ``slurm-local.sh env`` would export, if that file exists."""
    try:
        out = subprocess.run(
            ["bash", str(SLURM_LOCAL), "env"], capture_output=True, text=True, timeout=30,
            check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("export SLURM_CONF="):
            conf = line.split("=", 1)[1].strip()
            return conf if Path(conf).is_file() else None
    return None


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """Environment for SLURM commands; skips (or fails under CI) when no cluster answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGILEFLEX_", "FAKE_"))}
    if not env.get("SLURM_CONF"):
        conf = _local_conf()
        if conf is None:
            _unavailable("SLURM_CONF is not set")
        env["SLURM_CONF"] = conf
    for tool in ("sinfo", "sbatch", "srun", "scontrol", "scancel"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} not found")
    try:
        r = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        _unavailable("sinfo timed out")
    if r.returncode != 0:
        _unavailable(f"sinfo failed: {r.stderr.strip()}")
    states = set(r.stdout.split())
    if not states & {"idle", "mixed", "allocated", "completing"}:
        _unavailable(f"no usable node (sinfo states: {sorted(states) or 'none'})")
    return env


@pytest.fixture
def jobs(slurm_env):
    """List to put submitted job ids in; whatever is still queued at the end is cancelled."""
    ids: list[str] = []
    yield ids
    if ids:
        subprocess.run(["scancel", *ids], env=slurm_env, capture_output=True, timeout=30)


def job_records(job_id: str, env: dict[str, str]) -> list[dict[str, str]]:
    """``scontrol -o show job`` records of a job (one per array task or pending task group)."""
    r = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True,
        timeout=30
    )
    assert r.returncode == 0, f"scontrol show job {job_id}: {r.stderr}"
    records = []
    for line in r.stdout.splitlines():
        rec = {}
        for field in line.split():
            key, sep, value = field.partition("=")
            if sep:
                rec.setdefault(key, value)
        records.append(rec)
    return records


def settled(rec: dict[str, str]) -> bool:
    """Finished, or pending for good."""
    return rec.get("JobState") in FINISHED or rec.get("Reason") == "DependencyNeverSatisfied"


def wait_settled(job_ids: list[str], env: dict[str, str], timeout: float = POLL_TIMEOUT):
    """Poll until every job is settled; returns {job_id: [records]}."""
    deadline = time.monotonic() + timeout
    while True:
        recs = {j: job_records(j, env) for j in job_ids}
        if all(r and all(settled(x) for x in r) for r in recs.values()):
            return recs
        if time.monotonic() > deadline:
            summary = {j: [(x.get("JobId"), x.get("JobState"), x.get("Reason")) for x in r]
                       for j, r in recs.items()}
            pytest.fail(f"jobs not settled after {timeout:.0f}s: {summary}")
        time.sleep(0.5)
