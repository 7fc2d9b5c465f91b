"""Stage 2 as one library call: ``run_loadflow(cfg, workers)`` (also stage 8's flows, with a
``target``). The command line (``python -m agileflex_hpc.loadflow``), the validation stage and
the whole pipeline all run it.

Single process: every item with a progress bar, then the stitched files. Under MPI: rank 0
plans and logs the partition, every rank solves its share, rank 0 gathers the summaries and
stitches. As a SLURM array task: this task's share only (the gather stage stitches later).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agileflex_hpc.cli import Workers
from agileflex_hpc.config import Config
from agileflex_hpc.layout import layout
from agileflex_hpc.loadflow.progress import ProgressReporter, format_summary
from agileflex_hpc.loadflow.run import (
    LoadflowInputs,
    WorkerSummary,
    check_failures,
    collapse_counts,
    plan,
    prepare_inputs,
    run,
)
from agileflex_hpc.partition import WorkItem, describe_plan

__all__ = ["LoadflowResult", "plan_items", "run_loadflow"]

logger = logging.getLogger("agileflex_hpc.loadflow")


@dataclass
class LoadflowResult:
    """What a load-flow run did: the study's items, the workers' summaries (every worker's
    on the root, its own elsewhere) and the stitched files written."""

    items: list[WorkItem]
    summaries: list[WorkerSummary]
    stitched: list[Path] = field(default_factory=list)


def plan_items(cfg: Config, workers: Workers,
               target: LoadflowInputs | None = None) -> list[WorkItem]:
    """The study's work items, planned by the root (manifests built for stage 2) and shared
    with every MPI rank."""
    items = (plan(cfg, target.cases if target else None, build=target is None)
             if workers.is_root else None)
    if workers.comm is not None:
        items = workers.comm.bcast(items, root=0)
    assert items is not None
    return items


def run_loadflow(cfg: Config, workers: Workers, *, target: LoadflowInputs | None = None,
                 gather: bool = True, items: list[WorkItem] | None = None,
                 summary_json: Path | None = None) -> LoadflowResult:
    """Solve this process's share of the study's blocks; on the root, report and check.

    Parameters
    ----------
    target : LoadflowInputs, optional
        Where injections come from and blocks go (default: stage 2's).
    gather : bool
        Stitch the blocks afterwards when this process group covered every item.
    items : list of WorkItem, optional
        The planned items (default: :func:`plan_items`).
    summary_json : Path, optional
        Root: write every worker's summary there as JSON (before the failure check).

    Raises
    ------
    LoadflowError
        On the root, where ``run.max_failure_fraction`` is exceeded (collapsed steps are
        otherwise findings: counted and logged, never an error).
    """
    comm = workers.comm
    items = plan_items(cfg, workers, target) if items is None else items
    label = target.label if target else "loadflow"
    if workers.is_root:
        logger.info("%s plan:\n%s", label, describe_plan(items, workers.count))
    prepare_inputs(cfg, items, workers, target)
    reporter = ProgressReporter(items, workers, label=label)
    summary = run(cfg, worker=workers.index, n_workers=workers.count, items=items,
                  target=target, progress=reporter.update, comm=comm, moved=reporter.moved)
    reporter.close()
    gathered = comm.gather(summary, root=0) if comm is not None else [summary]
    if comm is not None:
        comm.Barrier()
    if not workers.is_root:
        return LoadflowResult(items, [summary])
    assert gathered is not None  # gather returns None on the other ranks only
    summaries: list[WorkerSummary] = gathered
    logger.info("%s", format_summary(summaries, label=label))
    if summary_json is not None:
        Path(summary_json).write_text(json.dumps([asdict(s) for s in summaries], indent=1))
    for key, n in collapse_counts(summaries).items():
        if n:
            logger.warning("%s %s: %d steps have no power-flow solution (voltage collapse); "
                           "they are flagged converged = 0 and count as violations", label, key, n)
    check_failures(cfg, summaries)
    result = LoadflowResult(items, summaries)
    if workers.covers_all and gather:  # array tasks leave stitching to the gather stage
        from agileflex_hpc.gather import gather_all

        raw = target.raw_dir if target else layout(cfg).raw_dir
        result.stitched = list(gather_all(cfg, items, raw, label=label, target=target))
        for path in result.stitched:
            logger.info("wrote %s", path)
    return result
