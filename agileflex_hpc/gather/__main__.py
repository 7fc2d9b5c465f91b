"""CLI: ``python -m agileflex_hpc.gather CONFIG``: stitch the load-flow blocks (after an array).

Checks that every block of every (network, case) exists and is complete, then writes
``<out>/raw/<network>/<case>.h5`` with virtual datasets over the blocks.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from agileflex_hpc.cli import run_stage

if TYPE_CHECKING:
    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config

logger = logging.getLogger("agileflex_hpc.gather")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.gather",
                     "Stitch load-flow block files into one file per (network, case).", _body,
                     worker_options=False)


def _body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    from agileflex_hpc.gather import gather_all
    from agileflex_hpc.loadflow.run import study_items

    items = study_items(cfg)
    if args.dry_run:
        print(f"{len(items)} blocks to stitch into "
              f"{len({(i.network, i.case) for i in items})} files")
        return 0
    for path in gather_all(cfg, items):
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
