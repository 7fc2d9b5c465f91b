"""The code passes ruff (pyflakes, pycodestyle, bugbear, import order; see ruff.toml) and
mypy (every function annotated; see setup.cfg), and only layout.py builds output paths."""

import importlib.util
import subprocess
import sys

from tests.conftest import REPO, require


def test_ruff_is_clean():
    require(importlib.util.find_spec("ruff") is not None, "ruff (pip install -e .[test])")
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "agileflex_hpc", "tests",
                          "benchmarks"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_is_clean():
    """Every function of the package is annotated and the annotations check (setup.cfg)."""
    require(importlib.util.find_spec("mypy") is not None, "mypy (pip install -e .[test])")
    res = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "setup.cfg"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]


def test_only_the_layout_builds_output_paths():
    """Every output path comes from agileflex_hpc/layout.py (RunLayout): no other module joins
    the run folder or a layout folder name onto a path."""
    import re

    folders = ("raw", "zones", "headroom", "hosting", "ev", "validation", "replan", "report",
               "inputs", "networks", "slurm", "slurm-logs")
    pattern = re.compile(r"out_dir\)? /|/ \"(" + "|".join(map(re.escape, folders)) + r")\"")
    offenders = []
    for path in sorted((REPO / "agileflex_hpc").rglob("*.py")):
        if path.name == "layout.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "pkg_parent" not in line and "base /" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
