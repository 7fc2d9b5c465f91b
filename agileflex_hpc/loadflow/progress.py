"""Progress of a load-flow run: a tqdm bar on a terminal, else periodic log lines."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

from agileflex_hpc.loadflow.run import WorkerSummary, collapse_counts
from agileflex_hpc.partition import WorkItem, items_for

if TYPE_CHECKING:
    from tqdm import tqdm

    from agileflex_hpc.cli import Workers

__all__ = ["Progress", "ProgressReporter", "format_summary"]

logger = logging.getLogger(__name__)


class Progress:
    """Counts this worker's units of work; a tqdm bar (single process on a TTY), else a log
    line every ``every_s`` seconds and at the end (done, rate, ETA)."""

    def __init__(self, total: int, workers: Workers, *, label: str, unit: str = "step",
                 every_s: float = 30.0) -> None:
        self.total = total
        self.done = 0
        self.current = 0  # units found up to date (skipped): not in the rate
        self.label, self.unit = label, unit
        self.every_s = every_s
        self.t0 = self.last = time.perf_counter()
        self.bar: tqdm | None = None
        if workers.comm is None and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=unit, desc=label, file=sys.stderr)

    def advance(self, n: int, *, up_to_date: bool = False, **postfix: object) -> None:
        """``n`` more units done (``up_to_date``: found current and skipped, not computed);
        ``postfix`` (e.g. attempts=12) is shown beside the count."""
        self.done += n
        if up_to_date:
            self.current += n
        if self.bar is not None:
            if self.current:
                postfix = {"up to date": self.current, **postfix}
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            logger.info("%s: %s", self.label, self.status_line(now, postfix))
            self.last = now

    def resize(self, delta: int) -> None:
        """``delta`` more (or, negative, fewer) units in total: work taken from or given to
        another MPI rank."""
        self.total += delta
        if self.bar is not None:
            self.bar.total = self.total

    def status_line(self, now: float, postfix: dict[str, object]) -> str:
        """``120/300 steps (20 up to date; 1.2e+03 steps/s, ETA 9 s)``: the rate and ETA count
        computed units only."""
        head = f"{self.done}/{self.total} {self.unit}s"
        if self.current == self.done:
            return f"{head}, all up to date"
        computed = self.done - self.current
        rate = computed / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate else float("nan")
        extra = "".join(f", {k} {v}" for k, v in postfix.items())
        cur = f"{self.current} up to date; " if self.current else ""
        return f"{head} ({cur}{rate:.3g} {self.unit}s/s{extra}, ETA {eta:.0f} s)"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressReporter(Progress):
    """Progress of a load-flow worker, in steps of its share of ``items``."""

    def __init__(self, items: list[WorkItem], workers: Workers, *, label: str = "loadflow",
                 every_s: float = 30.0) -> None:
        mine = items_for(workers.index, workers.count, items)
        super().__init__(sum(it.n_steps for it in mine), workers, label=label, unit="step",
                         every_s=every_s)

    def update(self, item: WorkItem, solved: int) -> None:
        """Called after each item; ``solved`` is 0 when the block was already complete."""
        self.advance(item.n_steps, up_to_date=solved == 0)

    def moved(self, items: list[WorkItem], sign: int) -> None:
        """Items taken from (+1) or given to (-1) another rank: the total grows or shrinks."""
        self.resize(sign * sum(it.n_steps for it in items))


def format_summary(summaries: list[WorkerSummary], *, label: str = "loadflow") -> str:
    """A table: per worker items, skipped, steps, non-converged, wall time and steps/s, and,
    where MPI ranks shared work, the items each took from others and gave away."""
    moved = any(s.taken or s.given for s in summaries)
    lines = [f"{label} summary", "worker  items skipped   steps nonconv   wall_s  steps/s"
             + ("  taken  given" if moved else "")]
    for s in summaries:
        lines.append(f"{s.worker:6d} {s.items:6d} {s.skipped:7d} {s.steps:7d} "
                     f"{s.nonconverged:7d} {s.wall_s:8.2f} {s.steps_per_s:8.1f}"
                     + (f" {s.taken:6d} {s.given:6d}" if moved else ""))
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
