"""CLI: ``python -m agileflex_hpc.ev CONFIG [--worker I --workers N]`` (stage 7).

Runs the EV attempts of this worker's zones (all zones in a single process; MPI ranks or
SLURM array tasks each take a contiguous, cost-balanced share). Zones already done are skipped.
"""

from __future__ import annotations

import logging
import sys

from agileflex_hpc.cli import run_stage

logger = logging.getLogger("agileflex_hpc.ev")


def main(argv: list[str] | None = None) -> int:
    return run_stage(argv, "python -m agileflex_hpc.ev",
                     "Stage 7: EV charging optimisation (HiGHS MILP) per zone.", body)


def body(cfg, workers, args) -> int:
    from agileflex_hpc.evcharging.stage import (
        list_zone_tasks,
        run,
        tasks_for,
        write_hosting_answer,
    )

    tasks = list_zone_tasks(cfg)
    if args.dry_run:
        for w in range(workers.count):
            mine = tasks_for(w, workers.count, tasks)
            print(f"worker {w}: {len(mine)} zones, {sum(t.n_start for t in mine)} EVs to try")
        return 0
    written = run(cfg, worker=workers.index, n_workers=workers.count)
    logger.info("worker %d/%d: %d zone files written", workers.index, workers.count,
                len(written))
    if workers.comm is not None:
        workers.comm.Barrier()
    if workers.covers_all and workers.is_root:
        for net in cfg.networks:
            table = write_hosting_answer(cfg, net.name)
            print(f"\n== EVs hosted (stage 7) beside the estimate (stage 6): {net.name} ==\n"
                  f"{format_answer(table)}")
    return 0


def format_answer(table) -> str:
    """The answer columns of a hosting summary as a fixed-width text table."""
    cols = ["zone", "customers", "case", "binding", "evs_estimate", "evs_hosted", "confirmed",
            "searched", "hps", "v2g_requested_kwh", "v2g_delivered_kwh"]
    totals = f"total: {int(table['evs_estimate'].sum())} EVs estimated, " \
             f"{int(table['evs_hosted'].fillna(0).sum())} hosted, {int(table['hps'].sum())} HPs"
    return table[cols].to_string(index=False, float_format=lambda x: f"{x:.1f}") + "\n" + totals


if __name__ == "__main__":
    sys.exit(main())
