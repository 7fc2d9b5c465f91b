"""CLI: ``python -m agileflex_hpc.loadflow CONFIG [--worker I --workers N]`` (stage 2): parses
the arguments and calls :func:`agileflex_hpc.loadflow.stage.run_loadflow`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agileflex_hpc.cli import Workers, run_stage
from agileflex_hpc.loadflow.run import LoadflowInputs
from agileflex_hpc.loadflow.stage import plan_items, run_loadflow
from agileflex_hpc.partition import WorkItem, describe_plan

if TYPE_CHECKING:
    from agileflex_hpc.config import Config

logger = logging.getLogger("agileflex_hpc.loadflow")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.loadflow",
                     "Stage 2: OpenDSS load flows of every (network, case, block).", body,
                     extend=_extend)


def _extend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-gather", action="store_true",
                   help="do not stitch the blocks afterwards (single process / MPI)")
    p.add_argument("--summary-json", type=Path, default=None,
                   help="write the per-worker summary (items, steps, wall time) as JSON")


def body(cfg: Config, workers: Workers, args: argparse.Namespace,
         target: LoadflowInputs | None = None) -> int:
    """Plan; with ``--dry-run`` print the plan (with what is current), else run the stage."""
    items = plan_items(cfg, workers, target)
    if args.dry_run:
        if workers.is_root:
            label = target.label if target else "loadflow"
            print(f"{label} plan (dry run: nothing is solved or written):\n"
                  + describe_plan(items, workers.count, _is_current(cfg, target)))
        return 0
    run_loadflow(cfg, workers, target=target, gather=not getattr(args, "no_gather", False),
                 items=items, summary_json=getattr(args, "summary_json", None))
    return 0


def _is_current(cfg: Config, target: LoadflowInputs | None) -> Callable[[WorkItem], bool]:
    """item -> whether its block file is complete and current (what a run would skip)."""
    from agileflex_hpc.fingerprint import Fingerprints
    from agileflex_hpc.loadflow.run import loadflow_target

    target = target or loadflow_target(cfg)
    fps = Fingerprints(cfg)
    return lambda item: target.block_current(fps, item)


if __name__ == "__main__":
    sys.exit(main())
