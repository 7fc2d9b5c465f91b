"""Work items (network, case, block) and the one function that splits them over workers.

MPI ranks, SLURM array tasks and single-process runs all call :func:`items_for`, so a run's
results never depend on how it was split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

__all__ = ["WorkItem", "list_items", "items_for", "split_by_cost", "describe_plan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """One block of timesteps of one network and case.

    ``index`` is the item's position in the fixed global order; ``start`` and ``stop`` are
    step indices into the study's time axis; ``cost`` is buses x steps.
    """

    index: int
    network: str
    case: str
    block: int
    start: int
    stop: int
    cost: int

    @property
    def n_steps(self) -> int:
        return self.stop - self.start


def list_items(networks: list[tuple[str, int]], cases: list[str], n_steps: int,
               block_steps: int) -> list[WorkItem]:
    """Every work item in the fixed order network, block, case.

    Block-major within a network, so a contiguous share of a network's items holds every case
    of its days: the dearer cases (more heat pumps, more Newton iterations and non-converging
    steps) spread over the workers instead of landing on the last ones.

    Parameters
    ----------
    networks : list of (name, n_buses)
        Networks in config order with their bus counts (the cost weight).
    cases : list of str
        Case names in config order.
    n_steps, block_steps : int
        Steps of the study and of one block (the last block may be shorter).
    """
    items: list[WorkItem] = []
    for name, n_bus in networks:
        for block, start in enumerate(range(0, n_steps, block_steps)):
            stop = min(start + block_steps, n_steps)
            for case in cases:
                items.append(WorkItem(len(items), name, case, block, start, stop,
                                      max(n_bus, 1) * (stop - start)))
    return items


def split_by_cost(costs: np.ndarray, n_workers: int) -> np.ndarray:
    """Contiguous split of ordered items into ``n_workers`` parts of near-equal cost.

    Returns ``bounds`` (n_workers + 1,): worker ``w`` gets items ``bounds[w]:bounds[w+1]``.
    An item goes to the worker whose share of the cumulative cost holds the item's midpoint,
    so worker costs differ by at most about one item's cost.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    costs = np.asarray(costs, dtype=float)
    if costs.size == 0:
        return np.zeros(n_workers + 1, dtype=int)
    mid = np.cumsum(costs) - costs / 2
    owner = np.minimum((mid / costs.sum() * n_workers).astype(int), n_workers - 1)
    return np.searchsorted(owner, np.arange(n_workers + 1), side="left")


class Costed(Protocol):
    """Anything with a relative cost: a load-flow work item, an EV zone task."""

    @property
    def cost(self) -> float: ...


C = TypeVar("C", bound=Costed)


def items_for(worker: int, n_workers: int, items: Sequence[C]) -> list[C]:
    """The items of worker ``worker`` (0-based) of ``n_workers``: a contiguous run of the
    ordered items, balanced by ``cost`` (:func:`split_by_cost`). The one partition function:
    load-flow blocks and EV zones, for MPI ranks, array tasks and single runs alike."""
    if not 0 <= worker < n_workers:
        raise ValueError(f"worker {worker} is outside 0..{n_workers - 1}")
    bounds = split_by_cost(np.array([it.cost for it in items]), n_workers)
    return list(items[bounds[worker]:bounds[worker + 1]])


def describe_plan(items: list[WorkItem], n_workers: int,
                  current: Callable[[WorkItem], bool] | None = None) -> str:
    """A human-readable table of the partition: items, steps and cost share per worker, and
    (given ``current``, which says whether an item's result is already current) how many
    items each worker finds done and will skip."""
    bounds = split_by_cost(np.array([it.cost for it in items]), n_workers)
    total = sum(it.cost for it in items) or 1
    done = [current(it) for it in items] if current is not None else None
    lines = [f"{len(items)} work items over {n_workers} worker(s)"
             + (f", {sum(done)} already current (skipped)" if done is not None else ""),
             "worker  items  steps  cost%" + ("  current" if done is not None else "")
             + "  first -> last"]
    for w in range(n_workers):
        mine = items[bounds[w]:bounds[w + 1]]
        share = 100.0 * sum(it.cost for it in mine) / total
        span = (f"{_label(mine[0])} -> {_label(mine[-1])}" if mine else "(idle)")
        cur = (f" {sum(done[bounds[w]:bounds[w + 1]]):8d}" if done is not None else "")
        lines.append(f"{w:6d} {len(mine):6d} {sum(it.n_steps for it in mine):6d} "
                     f"{share:6.1f}{cur}  {span}")
    return "\n".join(lines)


def _label(item: WorkItem) -> str:
    return f"{item.network}/{item.case}/block_{item.block:05d}"
