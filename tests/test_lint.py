"""The code passes ruff (pyflakes, pycodestyle, bugbear, import order; see ruff.toml)."""

import importlib.util
import subprocess
import sys

from tests.conftest import REPO, require


def test_ruff_is_clean():
    require(importlib.util.find_spec("ruff") is not None, "ruff (pip install -e .[test])")
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "agileflex_hpc", "tests",
                          "benchmarks"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
