"""CLI: ``python -m agileflex_hpc.report CONFIG``: figures and ``<out>/report/index.html``."""

from __future__ import annotations

import argparse
import sys

from agileflex_hpc.cli import run_stage
from agileflex_hpc.report import body


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.report",
                     "Report: PNG figures per network and one HTML page of the run.", body,
                     extend=_extend, worker_options=False)


def _extend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="draw the page again even if its inputs have not changed")


if __name__ == "__main__":
    sys.exit(main())
