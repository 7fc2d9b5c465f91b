"""Shared fixtures: ../shared data (skip outside CI, fail in CI), tiny networks, configs."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

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
