"""CLI: ``python -m agileflex_hpc.validate CONFIG [--worker I --workers N] [--gather]`` (stage 8).

Validation load flows of every network with the final HP assignment plus (a) the optimised EV
schedules (``smart``) and (b) uncontrolled charging of the same EVs (``dumb``). The flows are
stage 2's, with the same partition, MPI/SLURM split, block files and restart:

* single process: all blocks, stitching, stages 3 and 5 on the results, the metrics and the
  report table;
* under ``mpirun``/``srun``: every rank solves its share, rank 0 stitches and analyses;
* as a SLURM array task: this task's share only; afterwards one ``--gather`` job stitches the
  blocks, runs stages 3 and 5 and writes the report (``slurm/validate.sh ... --gather``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from agileflex_hpc.cli import Workers, run_stage

if TYPE_CHECKING:
    import pandas as pd

    from agileflex_hpc.config import Config

logger = logging.getLogger("agileflex_hpc.validate")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.validate",
                     "Stage 8: validation load flows (no EVs, smart and dumb EV charging) and "
                     "their analysis (validation/report.csv, the proof).",
                     body, extend=_extend)


def _extend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gather", action="store_true",
                   help="stitch the validation blocks of an array run, then analyse (one job)")
    p.add_argument("--no-gather", action="store_true",
                   help="solve only: do not stitch or analyse afterwards (single process / MPI)")


def body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    """``--gather``: stitch and analyse (root only); else solve this worker's share and, where
    it covered everything, analyse."""
    from agileflex_hpc.loadflow.__main__ import body as loadflow_body
    from agileflex_hpc.validate.stage import (
        format_report,
        gather,
        run_validation,
        validation_target,
    )

    if getattr(args, "gather", False):
        if not workers.is_root:
            return 0
        if args.dry_run:
            print("validate --gather: stitch the validation blocks, then stages 3, 5 and report")
            return 0
        _print(gather(cfg), format_report)
        return 0
    if args.dry_run:  # the plan, with what is current
        return loadflow_body(cfg, workers, args, target=validation_target(cfg))
    table = run_validation(cfg, workers, solve_only=getattr(args, "no_gather", False))
    if table is not None:
        _print(table, format_report)
    return 0


def _print(table: pd.DataFrame, fmt: Callable[[pd.DataFrame], str]) -> None:
    print(f"\n== validation report ==\n{fmt(table)}")


if __name__ == "__main__":
    sys.exit(main())
