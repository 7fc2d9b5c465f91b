"""CLI: ``python -m agileflex_hpc.inputs CONFIG [--worker I --workers N]`` (stage 1).

Writes the customers table and demand/PV series of every (network, case) this worker's
load-flow items need (all of them in a single process; MPI ranks share them round-robin).
The load-flow stage does this itself when a file is missing; run it alone to inspect or
prepare the inputs, e.g. before a large array job.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from agileflex_hpc.cli import run_stage
from agileflex_hpc.layout import layout

if TYPE_CHECKING:
    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config

logger = logging.getLogger("agileflex_hpc.inputs")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.inputs",
                     "Stage 1: customers tables and demand/PV series per (network, case).", body)


def body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    from agileflex_hpc.loadflow.run import prepare_inputs
    from agileflex_hpc.loadflow.stage import plan_items

    items = plan_items(cfg, workers)
    if args.dry_run:
        pairs = sorted({(it.network, it.case) for it in items})
        print(f"inputs: {len(pairs)} (network, case) files")
        return 0
    prepare_inputs(cfg, items, workers, None)
    logger.info("inputs ready under %s", layout(cfg).inputs_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
