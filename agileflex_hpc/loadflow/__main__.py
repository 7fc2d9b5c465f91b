"""CLI: ``python -m agileflex_hpc.loadflow CONFIG [--worker I --workers N]`` (stage 2).

Single process: all items, a progress bar, then the stitched files. Under ``mpirun``/``srun``:
rank 0 plans and logs the partition, every rank solves its share, rank 0 stitches and prints
the summary. As a SLURM array task: this task's share only (``python -m agileflex_hpc.gather``
stitches afterwards).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from agileflex_hpc.cli import Workers, run_stage
from agileflex_hpc.errors import AgileflexError
from agileflex_hpc.layout import layout
from agileflex_hpc.loadflow.progress import ProgressReporter, format_summary
from agileflex_hpc.loadflow.run import (
    LoadflowInputs,
    check_failures,
    collapse_counts,
    plan,
    prepare_inputs,
    run,
)
from agileflex_hpc.partition import describe_plan

logger = logging.getLogger("agileflex_hpc.loadflow")


def main(argv: list[str] | None = None) -> int:
    return run_stage(argv, "python -m agileflex_hpc.loadflow",
                     "Stage 2: OpenDSS load flows of every (network, case, block).", body,
                     extend=_extend)


def _extend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-gather", action="store_true",
                   help="do not stitch the blocks afterwards (single process / MPI)")
    p.add_argument("--summary-json", type=Path, default=None,
                   help="write the per-worker summary (items, steps, wall time) as JSON")


def body(cfg, workers: Workers, args: argparse.Namespace,
         target: LoadflowInputs | None = None) -> int:
    """Plan, solve this worker's items, then (single process or whole-job MPI root) stitch."""
    comm = workers.comm
    cases = target.cases if target else None
    items = plan(cfg, cases, build=target is None) if workers.is_root else None
    if comm is not None:
        items = comm.bcast(items, root=0)
    label = target.label if target else "loadflow"
    if args.dry_run:
        if workers.is_root:
            print(f"{label} plan (dry run: nothing is solved or written):\n"
                  + describe_plan(items, workers.count, _is_current(cfg, target)))
        return 0
    if workers.is_root:
        logger.info("%s plan:\n%s", label, describe_plan(items, workers.count))
    prepare_inputs(cfg, items, workers, target)
    reporter = ProgressReporter(items, workers, label=label)
    summary = run(cfg, worker=workers.index, n_workers=workers.count, items=items,
                  target=target, progress=reporter.update)
    reporter.close()
    summaries = comm.gather(summary, root=0) if comm is not None else [summary]
    if comm is not None:
        comm.Barrier()
    if not workers.is_root:
        return 0
    print(format_summary(summaries, label=label), file=sys.stderr)
    if getattr(args, "summary_json", None):
        args.summary_json.write_text(json.dumps([asdict(s) for s in summaries], indent=1))
    for key, n in collapse_counts(summaries).items():
        if n:
            logger.warning("%s %s: %d steps have no power-flow solution (voltage collapse); "
                           "they are flagged converged = 0 and count as violations", label, key, n)
    check_failures(cfg, summaries)
    # stitch when this run covered every item; array tasks leave it to the gather stage
    if workers.covers_all and not getattr(args, "no_gather", False):
        from agileflex_hpc.loadflow.gather import gather_all

        raw = target.raw_dir if target else layout(cfg).raw_dir
        for path in gather_all(cfg, items, raw, label=label, target=target):
            logger.info("wrote %s", path)
    return 0


def _is_current(cfg, target: LoadflowInputs | None):
    """item -> whether its block file is complete and current (what a run would skip)."""
    from agileflex_hpc.fingerprint import Fingerprints, freshness
    from agileflex_hpc.loadflow.run import block_path, loadflow_target

    target = target or loadflow_target(cfg)
    fps = Fingerprints(cfg)

    def current(it) -> bool:
        try:
            key = target.block_key(fps, it.network, it.case, it.start, it.stop)
        except AgileflexError:  # its inputs are not there yet
            return False
        return freshness(block_path(target.raw_dir, it), key) == "ok"

    return current


if __name__ == "__main__":
    sys.exit(main())
