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
    line every ``every_s`` seconds and at the end (done, rate, ETA).

    ``total_work``: the units weighed by their expected cost (load flows: buses x steps), for
    the bar's fill and the ETA. A step of the 7,023-bus feeder takes about 30 times one of a
    383-bus feeder's, so counted in steps alone a fleet that starts with its largest network
    (as each worker does) would first show an ETA over ten times too long (docs/loadflow.md).
    Without it every unit weighs 1.
    """

    def __init__(self, total: int, workers: Workers, *, label: str, unit: str = "step",
                 every_s: float = 30.0, total_work: float | None = None) -> None:
        self.total = total
        self.done = 0
        self.current = 0  # units found up to date (skipped): not in the rate
        self.weighted = total_work is not None
        self.total_work = float(total if total_work is None else total_work)
        self.work_done = self.work_current = 0.0  # the same, weighed
        self.label, self.unit = label, unit
        self.every_s = every_s
        self.t0 = self.last = time.perf_counter()
        self.bar: tqdm | None = None
        if workers.comm is None and sys.stderr.isatty():
            from tqdm import tqdm

            if self.weighted:  # fill and ETA by work; the description counts units
                self.bar = tqdm(total=self.total_work, desc=f"{label} {self._count()}",
                                file=sys.stderr,
                                bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                                           "[{elapsed}<{remaining}{postfix}]")
            else:
                self.bar = tqdm(total=self.total, unit=unit, desc=label, file=sys.stderr)

    def _count(self) -> str:
        return f"{self.done}/{self.total} {self.unit}s"

    def advance(self, n: int, *, up_to_date: bool = False, work: float | None = None,
                **postfix: object) -> None:
        """``n`` more units done, weighing ``work`` (default ``n``; ``up_to_date``: found
        current and skipped, not computed); ``postfix`` (e.g. attempts=12) is shown beside
        the count."""
        w = float(n if work is None else work)
        self.done += n
        self.work_done += w
        if up_to_date:
            self.current += n
            self.work_current += w
        if self.bar is not None:
            if self.current:
                postfix = {"up to date": self.current, **postfix}
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            if self.weighted:
                self.bar.set_description_str(f"{self.label} {self._count()}", refresh=False)
            self.bar.update(w if self.weighted else n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            logger.info("%s: %s", self.label, self.status_line(now, postfix))
            self.last = now

    def resize(self, delta: int, *, work: float | None = None) -> None:
        """``delta`` more (or, negative, fewer) units in total, weighing ``work`` (default
        ``delta``): work taken from or given to another MPI rank."""
        self.total += delta
        self.total_work += float(delta if work is None else work)
        if self.bar is not None:
            self.bar.total = self.total_work if self.weighted else self.total

    def status_line(self, now: float, postfix: dict[str, object]) -> str:
        """``120/300 steps (20 up to date; 1.2e+03 steps/s, ETA 9 s)``: the rate counts
        computed units, the ETA the work left at the computed work's pace."""
        head = self._count()
        if self.current == self.done:
            return f"{head}, all up to date"
        elapsed = max(now - self.t0, 1e-9)
        rate = (self.done - self.current) / elapsed
        pace = (self.work_done - self.work_current) / elapsed
        eta = (self.total_work - self.work_done) / pace if pace else float("nan")
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
                         every_s=every_s, total_work=sum(float(it.cost) for it in mine))

    def update(self, item: WorkItem, solved: int) -> None:
        """Called after each item; ``solved`` is 0 when the block was already complete."""
        self.advance(item.n_steps, up_to_date=solved == 0, work=float(item.cost))

    def moved(self, items: list[WorkItem], sign: int) -> None:
        """Items taken from (+1) or given to (-1) another rank: the total grows or shrinks."""
        self.resize(sign * sum(it.n_steps for it in items),
                    work=sign * sum(float(it.cost) for it in items))


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
