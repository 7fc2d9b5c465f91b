"""The wheel: built, installed into a fresh virtual environment (the project's dependencies
lent through a .pth file), then ``agileflex init`` and a short demo run outside the checkout."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, SHORT_DEMO

pytestmark = pytest.mark.slow


def _run(cmd, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, (cmd, res.stdout[-2000:], res.stderr[-3000:])
    return res


def test_wheel_installs_and_runs_the_demo_outside_the_checkout(tmp_path):
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", tmp_path / "dist", REPO], cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("agileflex_hpc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("LICENSE") for n in names)
    assert any(n.endswith("share/agileflex_hpc/slurm/pipeline.sh") for n in names)
    assert any(n.endswith("share/agileflex_hpc/jobs/demo.toml") for n in names)
    venv = tmp_path / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    lib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).stdout.strip())
    (lib / "deps.pth").write_text(site.getsitepackages()[0] + "\n")  # the dependencies
    _run([py, "-m", "pip", "install", "-q", "--no-deps", wheel], cwd=tmp_path)
    where = _run([py, "-c", "import agileflex_hpc; print(agileflex_hpc.__file__)"],
                 cwd=tmp_path).stdout
    assert where.startswith(str(venv)), where  # the installed package, not the checkout
    proj = tmp_path / "proj"
    _run([venv / "bin" / "agileflex", "init", proj], cwd=tmp_path)
    assert (proj / "slurm" / "loadflow.sh").is_file() and (proj / "jobs" / "demo.toml").is_file()
    (proj / "jobs" / "short.toml").write_text(SHORT_DEMO.replace('root = "Data"',
                                                                 'root = "../Data"'))
    res = _run([venv / "bin" / "agileflex", "run", "jobs/short.toml"], cwd=proj)
    assert (proj / "Data" / "demo_short" / "report" / "index.html").is_file()
    assert "proved" in res.stderr
