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
    from agileflex_hpc.evcharging.stage import list_zone_tasks, run, tasks_for

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
