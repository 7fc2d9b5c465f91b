"""Progress of a load-flow run: a tqdm bar on a terminal, else periodic log lines."""

from __future__ import annotations

import logging
import sys
import time

from agileflex_hpc.loadflow.run import collapse_counts
from agileflex_hpc.partition import WorkItem, items_for

__all__ = ["Progress", "ProgressReporter", "format_summary"]

logger = logging.getLogger(__name__)


class Progress:
    """Counts this worker's units of work; a tqdm bar (single process on a TTY), else a log
    line every ``every_s`` seconds and at the end (done, rate, ETA)."""

    def __init__(self, total: int, workers, *, label: str, unit: str = "step",
                 every_s: float = 30.0):
        self.total = total
        self.done = 0
        self.label, self.unit = label, unit
        self.every_s = every_s
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if workers.comm is None and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=unit, desc=label, file=sys.stderr)

    def advance(self, n: int, **postfix: object) -> None:
        """``n`` more units done; ``postfix`` (e.g. attempts=12) is shown beside the count."""
        self.done += n
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("nan")
            extra = "".join(f", {k} {v}" for k, v in postfix.items())
            logger.info("%s: %d/%d %ss (%.3g %ss/s%s, ETA %.0f s)", self.label, self.done,
                        self.total, self.unit, rate, self.unit, extra, eta)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressReporter(Progress):
    """Progress of a load-flow worker, in steps of its share of ``items``."""

    def __init__(self, items: list[WorkItem], workers, *, label: str = "loadflow",
                 every_s: float = 30.0):
        mine = items_for(workers.index, workers.count, items)
        super().__init__(sum(it.n_steps for it in mine), workers, label=label, unit="step",
                         every_s=every_s)

    def update(self, item: WorkItem, solved: int) -> None:
        """Called after each item; ``solved`` is 0 when the block was already complete."""
        self.advance(item.n_steps)


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
