"""CLI: ``python -m agileflex_hpc.ev CONFIG [--worker I --workers N]`` (stage 7).

Runs the EV attempts of this worker's zones (all zones in a single process; MPI ranks or
SLURM array tasks each take a contiguous, cost-balanced share). Zones already done are skipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from agileflex_hpc.cli import run_stage
from agileflex_hpc.ev.stage import format_answer, format_runs

if TYPE_CHECKING:

    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config
    from agileflex_hpc.ev.stage import ZoneTask

logger = logging.getLogger("agileflex_hpc.ev")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.ev",
                     "Stage 7: EV charging optimisation (HiGHS MILP) per zone.", body)


def body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    """Dry run: the plan; else :func:`~agileflex_hpc.ev.stage.run_ev` and, on the root,
    what it did and the answers."""
    from agileflex_hpc.ev.stage import list_zone_tasks, run_ev

    if args.dry_run:
        if workers.is_root:
            print(_describe_plan(cfg, list_zone_tasks(cfg), workers.count))
        return 0
    result = run_ev(cfg, workers)
    if not workers.is_root:
        return 0
    print(format_runs(result.runs), file=sys.stderr)
    for net, table in result.answers.items():
        print(f"\n== EVs hosted (stage 7) beside the estimate (stage 6): {net} ==\n"
              f"{format_answer(table)}")
    return 0


def _describe_plan(cfg: Config, tasks: list[ZoneTask], n_workers: int) -> str:
    """Per worker: zones, the EV estimates they start from, and zones already current."""
    from agileflex_hpc.ev.stage import tasks_for, zone_current
    from agileflex_hpc.fingerprint import Fingerprints

    fps = Fingerprints(cfg)
    current = {t.index for t in tasks if zone_current(cfg, fps, t)}
    total = sum(t.cost for t in tasks) or 1.0
    lines = [f"ev plan (dry run: nothing is solved or written): {len(tasks)} zones over "
             f"{n_workers} worker(s), {len(current)} already current (skipped)",
             "worker  zones  current  cost%  EVs to start from"]
    for w in range(n_workers):
        mine = tasks_for(w, n_workers, tasks)
        lines.append(f"{w:6d} {len(mine):6d} {sum(t.index in current for t in mine):8d} "
                     f"{100 * sum(t.cost for t in mine) / total:6.1f} "
                     f"{sum(t.n_start for t in mine):8d}")
    lines.append("cost: each zone's measured search time (ev/costs.csv) where known, else its "
                 "estimate")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
