"""Progress of a load-flow run: a tqdm bar on a terminal, else periodic log lines."""

from __future__ import annotations

import logging
import sys
import time

from agileflex_hpc.loadflow.run import collapse_counts
from agileflex_hpc.partition import WorkItem, items_for

__all__ = ["ProgressReporter", "format_summary"]

logger = logging.getLogger(__name__)


class ProgressReporter:
    """Counts this worker's steps; shows a bar (single process on a TTY) or logs every 30 s."""

    def __init__(self, items: list[WorkItem], workers, *, label: str = "loadflow",
                 every_s: float = 30.0):
        mine = items_for(workers.index, workers.count, items)
        self.total = sum(it.n_steps for it in mine)
        self.done = 0
        self.label = label
        self.every_s = every_s
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if workers.comm is None and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="step", desc=label, file=sys.stderr)

    def update(self, item: WorkItem, solved: int) -> None:
        """Called after each item; ``solved`` is 0 when the block was already complete."""
        self.done += item.n_steps
        if self.bar is not None:
            self.bar.update(item.n_steps)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("nan")
            logger.info("%s: %d/%d steps (%.0f steps/s, ETA %.0f s)", self.label, self.done,
                        self.total, rate, eta)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_summary(summaries, *, label: str = "loadflow") -> str:
    """A table: per worker items, skipped, steps, non-converged, wall time and steps/s."""
    lines = [f"{label} summary", "worker  items skipped   steps nonconv   wall_s  steps/s"]
    for s in summaries:
        lines.append(f"{s.worker:6d} {s.items:6d} {s.skipped:7d} {s.steps:7d} "
                     f"{s.nonconverged:7d} {s.wall_s:8.2f} {s.steps_per_s:8.1f}")
    tot_steps = sum(s.steps for s in summaries)
    wall = max((s.wall_s for s in summaries), default=0.0)
    lines.append(f" total {sum(s.items for s in summaries):6d} "
                 f"{sum(s.skipped for s in summaries):7d} {tot_steps:7d} "
                 f"{sum(s.nonconverged for s in summaries):7d} {wall:8.2f} "
                 f"{tot_steps / wall if wall else 0.0:8.1f}")
    collapsed = {k: n for k, n in collapse_counts(summaries).items() if n}
    if collapsed:
        lines.append("voltage collapse (power flow without solution), steps per network/case: "
                     + ", ".join(f"{k} {n}" for k, n in collapsed.items()))
    return "\n".join(lines)
