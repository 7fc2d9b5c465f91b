"""CLI: ``python -m agileflex_hpc.headroom CONFIG``: stages 3-6 (zones, limits, headroom,
hosting) for every network, from the stitched load-flow files; prints the hosting summary."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agileflex_hpc.cli import run_stage

if TYPE_CHECKING:
    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.headroom",
                     "Stages 3-6: zones, voltage limits, headroom/footroom and hosting.", body,
                     worker_options=False)


def body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    from agileflex_hpc.headroom.stage import run

    if args.dry_run:
        print(f"headroom: {len(cfg.networks)} network(s) x {len(cfg.cases.names)} case(s)")
        return 0
    for name, table in run(cfg).items():
        print(f"\n== hosting summary: {name} ==\n{table.to_string(index=False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
