"""Work items (network, case, block) and the one function that splits them over workers.

MPI ranks, SLURM array tasks and single-process runs all call :func:`items_for`, so a run's
results never depend on how it was split. Load-flow items split into contiguous runs of an
order in which, in a long study, each network is dealt over several shares
(:func:`spread_rounds`; a worker still compiles each of its networks once); EV zones,
independent of each other, longest first onto the least-loaded worker
(:func:`assign_longest_first`). A worker solves its load-flow items largest network first
(:func:`largest_networks_first`). Under MPI this is each rank's start: idle ranks then take
unstarted items from busy ones (:mod:`agileflex_hpc.stealing`).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

import numpy as np

__all__ = ["WorkItem", "list_items", "mixed_order", "spread_order", "items_for", "shares",
           "split_by_cost", "assign_longest_first", "spread_factor", "spread_rounds",
           "largest_networks_first", "describe_plan", "short_block_networks"]

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
               block_steps: int, *,
               network_block_steps: Mapping[str, int] | None = None) -> list[WorkItem]:
    """Every work item in the fixed order: network (config order), then the network's
    (block, case) pairs in a mixed order (:func:`mixed_order`), so that any contiguous share
    of a network's items holds its cases in equal numbers and days from the whole study.

    A block's cost varies 7x between a mild day without heat pumps and a cold day with them
    (Newton iterations; a collapsed step runs to the iteration limit), and it is not known
    before the solve. In the old block-major order each of 16 ranks got one day of a 16-day,
    8-case study of a 7,023-bus feeder: 56 % efficiency, against 83 % with a mixed order;
    over 48 days this order reaches 90 % (each rank's share timed alone, docs/loadflow.md).

    Parameters
    ----------
    networks : list of (name, n_buses)
        Networks in config order with their bus counts (the cost weight).
    cases : list of str
        Case names in config order.
    n_steps, block_steps : int
        Steps of the study and of one block (the last block may be shorter).
    network_block_steps : mapping of str to int, optional
        Steps of one block of the networks named (others: ``block_steps``).
    """
    items: list[WorkItem] = []
    for name, n_bus in networks:
        length = (network_block_steps or {}).get(name, block_steps)
        starts = list(range(0, n_steps, length))
        for block, c in mixed_order(len(starts), len(cases)):
            start = starts[block]
            stop = min(start + length, n_steps)
            items.append(WorkItem(len(items), name, cases[c], block, start, stop,
                                  max(n_bus, 1) * (stop - start)))
    return items


def mixed_order(n_blocks: int, n_cases: int) -> list[tuple[int, int]]:
    """Every (block, case) pair once: the k-th is case ``c = k mod n_cases`` of block
    ``(spread(k div n_cases) + floor(spread_c(c) x n_blocks / n_cases)) mod n_blocks``, where
    ``spread`` and ``spread_c`` are :func:`spread_order` of the blocks and of the cases.

    Each run of ``n_cases`` consecutive pairs holds every case once, each on a different block
    (case ``c`` a fixed fraction of the study after the run's base day); consecutive runs'
    base days lie far apart in time, so a contiguous share of any length samples the whole
    study. Cases next to each other in the config (similar heat-pump shares, dear on the same
    cold days) are shifted far apart, so a share does not hold them on the same days.
    """
    spread, shift = spread_order(n_blocks), spread_order(n_cases)
    return [((spread[k // n_cases] + shift[k % n_cases] * n_blocks // n_cases) % n_blocks,
             k % n_cases) for k in range(n_blocks * n_cases)]


def spread_order(n: int) -> list[int]:
    """0..n-1 in bit-reversed (van der Corput) order: 0, 4, 2, 6, 1, 5, 3, 7 for n = 8; for
    other n, that order of the next power of two without the values >= n."""
    bits = max(n - 1, 0).bit_length()
    order = [int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(1 << bits)]
    return [i for i in order if i < n]


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


def assign_longest_first(costs: np.ndarray, n_workers: int) -> np.ndarray:
    """The worker of each item: items in decreasing cost (ties: the earlier item first), each
    to the worker with the least cost so far (ties: the lowest index).

    Greedy longest-processing-time scheduling (Graham, SIAM J. Appl. Math. 17, 1969: at most
    4/3 of the best possible makespan). The dearest worker exceeds the mean cost by at most the
    cheapest item it holds, where a contiguous split can exceed it by about the dearest item
    of all. Deterministic: every worker computes the same assignment from the same costs.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    costs = np.asarray(costs, dtype=float)
    owner = np.empty(costs.size, dtype=int)
    heap = [(0.0, w) for w in range(n_workers)]  # (cost so far, worker): a valid heap
    for i in np.argsort(-costs, kind="stable"):
        load, w = heapq.heappop(heap)
        owner[i] = w
        heapq.heappush(heap, (load + float(costs[i]), w))
    return owner


class Costed(Protocol):
    """Anything with a relative cost: a load-flow work item, an EV zone task."""

    @property
    def cost(self) -> float: ...


C = TypeVar("C", bound=Costed)


def items_for(worker: int, n_workers: int, items: Sequence[C], *,
              contiguous: bool = True) -> list[C]:
    """The items of worker ``worker`` (0-based) of ``n_workers``, balanced by ``cost``, in
    the order to solve them: load-flow items :func:`largest_networks_first`, others in their
    global order. The one partition function: load-flow blocks and EV zones, for MPI ranks,
    array tasks and single runs alike.

    ``contiguous``: contiguous runs (:func:`split_by_cost`) of the items, load-flow items
    first arranged in :func:`spread_rounds` (a worker compiles each of its networks once);
    else the items :func:`assign_longest_first` gives the worker (independent items of uneven
    cost).
    """
    if not 0 <= worker < n_workers:
        raise ValueError(f"worker {worker} is outside 0..{n_workers - 1}")
    mine = [items[k] for k in shares(items, n_workers, contiguous=contiguous)[worker]]
    work = [it for it in mine if isinstance(it, WorkItem)]
    if work and len(work) == len(mine):
        return cast("list[C]", largest_networks_first(work))
    return mine


def largest_networks_first(items: Sequence[WorkItem]) -> list[WorkItem]:
    """A worker's load-flow items network by network, the networks with the most buses
    first, each network's items in their global order.

    Under MPI idle ranks take the unstarted tail of a busy rank's items
    (:mod:`agileflex_hpc.stealing`). A large network's blocks are its dearest and the least
    predictable (a cold day with collapsed steps costs up to 7x a mild one); solved first,
    they leave a tail of small networks' short blocks, which share out finely at the end.
    Replayed from the measured block times of the 62 shared networks (4 cases x 14 days),
    16 ranks: 83.6 -> 91.2 % (``benchmarks/scaling.py --replay-from``).
    """
    first: dict[str, int] = {}
    for k, it in enumerate(items):
        first.setdefault(it.network, k)
    buses = {it.network: it.cost / max(it.n_steps, 1) for it in items}
    return sorted(items, key=lambda it: (-buses[it.network], first[it.network], it.index))


def shares(items: Sequence[Costed], n_workers: int, *, contiguous: bool = True) -> list[list[int]]:
    """Every worker's item positions (ascending), as :func:`items_for` splits them."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    costs = np.array([it.cost for it in items], dtype=float)
    if not contiguous:
        owner = assign_longest_first(costs, n_workers)
        return [np.flatnonzero(owner == w).tolist() for w in range(n_workers)]
    order = np.arange(len(items))
    work = [it for it in items if isinstance(it, WorkItem)]
    if work and len(work) == len(items):  # load-flow items: networks spread in long studies
        order = spread_rounds([it.network for it in work], costs,
                              spread_factor(work, n_workers))
    bounds = split_by_cost(costs[order], n_workers)
    return [sorted(order[bounds[w]:bounds[w + 1]].tolist()) for w in range(n_workers)]


#: compiling a network costs about as much as solving this many of its steps (the 62
#: networks of ``../shared/networks``: median 116, range 70-173)
COMPILE_STEPS = 120
#: every network's items are dealt over more shares only while each part keeps at least this
#: many compiles' worth of steps, so spreading adds at most ``1 / SPREAD_RATIO`` to the work
SPREAD_RATIO = 10


def spread_factor(items: Sequence[WorkItem], n_workers: int) -> int:
    """Over how many workers' shares (1 to ``n_workers``) every network's items are spread.

    Buses x steps misjudges a network's cost per step (small networks pay a per-step
    overhead, weak ones collapsed steps that run to the iteration limit: 0.31 to 1.27 us per
    bus and step over the 62 shared networks). A worker holding a few whole networks inherits
    their error; one holding a part of many networks averages it out. Each extra part
    compiles its network once more, so a study spreads only as far as its length pays for.
    """
    steps: dict[str, int] = {}
    for it in items:
        steps[it.network] = steps.get(it.network, 0) + it.n_steps
    if not steps:
        return 1
    return int(max(1, min(n_workers, min(steps.values()) // (SPREAD_RATIO * COMPILE_STEPS))))


def spread_rounds(networks: Sequence[str], costs: np.ndarray, m: int) -> np.ndarray:
    """Item positions as ``m`` rounds: round ``r`` holds the ``r``-th of ``m`` contiguous,
    cost-balanced parts of each network's items (networks in their order).

    A contiguous split of this order into ``n`` shares gives each share parts of about
    ``m`` times as many networks as a contiguous split of the items themselves (with
    ``m = n``, about ``1 / n`` of every network). ``m = 1`` is the items' own order.
    """
    costs = np.asarray(costs, dtype=float)
    if m <= 1:
        return np.arange(len(networks))
    first: dict[str, list[int]] = {}
    for k, net in enumerate(networks):
        first.setdefault(net, []).append(k)
    rounds: list[list[int]] = [[] for _ in range(m)]
    for positions in first.values():
        pos = np.array(positions)
        bounds = split_by_cost(costs[pos], m)
        for r in range(m):
            rounds[r] += pos[bounds[r]:bounds[r + 1]].tolist()
    return np.array([k for part in rounds for k in part], dtype=int)


def describe_plan(items: list[WorkItem], n_workers: int,
                  current: Callable[[WorkItem], bool] | None = None) -> str:
    """A human-readable table of the partition: items, steps, networks and cost share per
    worker, and (given ``current``, which says whether an item's result is already current)
    how many items each worker finds done and will skip."""
    parts = shares(items, n_workers)
    total = sum(it.cost for it in items) or 1
    done = [current(it) for it in items] if current is not None else None
    m = spread_factor(items, n_workers)
    lines = [f"{len(items)} work items over {n_workers} worker(s)"
             + (f", each network spread over {m} shares" if m > 1 else "")
             + (f", {sum(done)} already current (skipped)" if done is not None else ""),
             "worker  items  steps  nets  cost%" + ("  current" if done is not None else "")
             + "  first -> last"]
    for w, positions in enumerate(parts):
        mine = largest_networks_first([items[k] for k in positions])  # in solving order
        share = 100.0 * sum(it.cost for it in mine) / total
        span = (f"{_label(mine[0])} -> {_label(mine[-1])}" if mine else "(idle)")
        cur = (f" {sum(done[k] for k in positions):8d}" if done is not None else "")
        lines.append(f"{w:6d} {len(mine):6d} {sum(it.n_steps for it in mine):6d} "
                     f"{len({it.network for it in mine}):5d} {share:6.1f}{cur}  {span}")
    small = short_block_networks(items)
    if small:
        lines.append(f"{len(small)} of {len({it.network for it in items})} networks have "
                     f"blocks of under {SHORT_BLOCK_COST:,} buses x steps ({', '.join(small[:5])}"
                     f"{' and more' if len(small) > 5 else ''}): such a block solves in about "
                     "the time its file takes to build and write, and longer blocks "
                     "([[network]] block_steps, docs/loadflow.md#small-feeders-longer-blocks) "
                     "make their flows cheaper")
    return "\n".join(lines)


#: a block of fewer buses x steps solves in about the time its file takes (a 383-bus
#: feeder's 144-step day, 55,152: 12 ms of solves against about 10 ms of file and inputs)
SHORT_BLOCK_COST = 100_000
#: ... which is worth a word only in a plan of this many such blocks (a fleet, a long study)
SHORT_BLOCK_ITEMS = 200


def short_block_networks(items: Sequence[WorkItem]) -> list[str]:
    """The networks (in plan order) whose blocks are mostly under :data:`SHORT_BLOCK_COST`
    buses x steps and could be longer (more than one block per case), where the plan holds
    at least :data:`SHORT_BLOCK_ITEMS` such blocks."""
    costs: dict[str, list[int]] = {}
    split: dict[str, bool] = {}
    for it in items:
        costs.setdefault(it.network, []).append(it.cost)
        split[it.network] = split.get(it.network, False) or it.start > 0
    small = [net for net, c in costs.items()
             if split[net] and float(np.median(c)) < SHORT_BLOCK_COST]
    if sum(len(costs[net]) for net in small) < SHORT_BLOCK_ITEMS:
        return []
    return small


def _label(item: WorkItem) -> str:
    return f"{item.network}/{item.case}/block_{item.block:05d}"
