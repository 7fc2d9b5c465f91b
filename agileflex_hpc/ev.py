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

if TYPE_CHECKING:
    import pandas as pd

    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config
    from agileflex_hpc.evcharging.stage import ZoneRun, ZoneTask

logger = logging.getLogger("agileflex_hpc.ev")


def main(argv: list[str] | None = None) -> int:
    return run_stage(argv, "python -m agileflex_hpc.ev",
                     "Stage 7: EV charging optimisation (HiGHS MILP) per zone.", body)


def body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    """Dry run: the plan; else :func:`~agileflex_hpc.evcharging.stage.run_ev` and, on the root,
    what it did and the answers."""
    from agileflex_hpc.evcharging.stage import list_zone_tasks, run_ev

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
    from agileflex_hpc.evcharging.stage import tasks_for, zone_path
    from agileflex_hpc.fingerprint import Fingerprints, freshness

    fps = Fingerprints(cfg)
    current = {t.index for t in tasks if freshness(zone_path(cfg.out_dir, t.network, t.zone),
                                                   fps.ev_zone(t.network, t.zone)) == "ok"}
    lines = [f"ev plan (dry run: nothing is solved or written): {len(tasks)} zones over "
             f"{n_workers} worker(s), {len(current)} already current (skipped)",
             "worker  zones  current  EVs to start from"]
    for w in range(n_workers):
        mine = tasks_for(w, n_workers, tasks)
        lines.append(f"{w:6d} {len(mine):6d} {sum(t.index in current for t in mine):8d} "
                     f"{sum(t.n_start for t in mine):8d}")
    return "\n".join(lines)


def format_runs(runs: list[ZoneRun]) -> str:
    """What the stage did: zones solved and up to date, attempts, time, the slowest zones."""
    solved = [r for r in runs if r.solved]
    lines = [f"ev summary: {len(solved)} zones solved ({sum(r.attempts for r in solved)} "
             f"attempts, {sum(r.wall_s for r in solved):.1f} s), {len(runs) - len(solved)} "
             "zones up to date"]
    for r in sorted(solved, key=lambda r: -r.wall_s)[:3]:
        lines.append(f"  slowest: {r.network}/{r.zone} {r.wall_s:.1f} s ({r.attempts} attempts, "
                     f"{r.n_evs} EVs hosted, estimate {r.n_start})")
    return "\n".join(lines)


def format_answer(table: pd.DataFrame) -> str:
    """The answer columns of a hosting summary as a fixed-width text table."""
    cols = ["zone", "customers", "case", "binding", "evs_estimate", "evs_hosted", "confirmed",
            "searched", "hps", "v2g_requested_kwh", "v2g_delivered_kwh"]
    totals = f"total: {int(table['evs_estimate'].sum())} EVs estimated, " \
             f"{int(table['evs_hosted'].fillna(0).sum())} hosted, {int(table['hps'].sum())} HPs"
    return table[cols].to_string(index=False, float_format=lambda x: f"{x:.1f}") + "\n" + totals


if __name__ == "__main__":
    sys.exit(main())
