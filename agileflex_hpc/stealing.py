"""Work stealing between the ranks of one MPI world: idle ranks take the tail of busy ones' shares.

The static split (:func:`agileflex_hpc.partition.items_for`) balances estimated costs, but a
load-flow block's time is not known before its solve (collapsed steps run to the iteration
limit; small networks pay a per-step overhead: 0.3-1.3 us per bus and step over the 62 shared
networks), nor an EV zone's before its search. So every rank starts on its static share, and a
rank that runs out asks the others, in turn, for work. A busy rank answers between two of its
items with the back half (by estimated cost) of what it has not started. Which rank computes an
item never changes the item's result (each is computed from its own inputs alone), so results
stay bit-identical to a single process; only who writes which file changes.

Protocol (point-to-point, two tags): a thief sends ``ASK`` to one rank and waits for its
``GIVE`` (a list of items, empty when it has none worth giving), answering other thieves'
``ASK`` meanwhile with empty lists. When every other rank has answered empty, the thief enters
a non-blocking barrier and keeps answering until every rank has entered it. A rank enters only
after all its questions are answered, so no message is left in flight when the barrier
completes.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from agileflex_hpc.partition import Costed

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["StealingQueue", "back_half"]

logger = logging.getLogger(__name__)

ASK, GIVE = 7301, 7302  # message tags (collectives use their own contexts)
_POLL_S = 0.001  # sleep between polls while waiting (do not spin on a shared core) [s]

T = TypeVar("T", bound=Costed)


def back_half(todo: Sequence[T], overhead: Callable[[Sequence[T]], float]) -> int:
    """How many items from the back of ``todo`` to give away: the longest tail whose estimated
    cost is at most half of the whole, and only where that tail costs more than
    ``overhead(tail)`` (what the taker pays first, e.g. compiling the tail's networks); else 0.

    Halving balances the giver and the taker when both start now; a tail dearer than half would
    make the taker the new last one.
    """
    costs = [float(it.cost) for it in todo]
    half = sum(costs) / 2
    n, tail = 0, 0.0
    while n < len(costs) and tail + costs[-1 - n] <= half:
        tail += costs[-1 - n]
        n += 1
    if n and tail <= overhead(todo[len(todo) - n:]):
        return 0
    return n


class StealingQueue(Generic[T]):
    """This rank's items in order; iterating yields them and, once they are done, items taken
    from other ranks, until no rank has work left. Without ``comm`` (one process, an array task
    without MPI) it yields ``items`` and nothing else.

    Every rank of ``comm`` must iterate its queue to the end (the last step is a barrier).

    Parameters
    ----------
    items : sequence
        This rank's static share, in the order to solve it.
    comm : MPI.Intracomm or None
        The ranks that share their work.
    overhead : callable, optional
        Estimated cost a taker pays before solving a tail of items (same units as ``cost``);
        a tail is given only where it costs more. Default: nothing.
    moved : callable, optional
        ``moved(items, sign)``: items taken (+1) or given away (-1), e.g. to resize a progress
        total.
    """

    def __init__(self, items: Sequence[T], comm: MPI.Intracomm | None = None, *,
                 overhead: Callable[[Sequence[T]], float] | None = None,
                 moved: Callable[[list[T], int], None] | None = None) -> None:
        self._todo: deque[T] = deque(items)
        self.comm = comm
        self.overhead = overhead or (lambda tail: 0.0)
        self.moved = moved
        self.taken = 0  # items taken from other ranks
        self.given = 0  # items given to other ranks
        self._dry: set[int] = set()  # ranks that answered with nothing

    def __iter__(self) -> Iterator[T]:
        while True:
            self._serve()
            if self._todo:
                yield self._todo.popleft()
            elif self.comm is None or not self._steal():
                break
        self._drain()

    # ------------------------------------------------------------------ giving
    def _serve(self) -> None:
        """Answer every pending ``ASK`` with this rank's back half (or an empty list)."""
        comm = self.comm
        if comm is None:
            return
        from mpi4py import MPI

        status = MPI.Status()
        while comm.Iprobe(source=MPI.ANY_SOURCE, tag=ASK, status=status):
            thief = status.Get_source()
            comm.recv(source=thief, tag=ASK)
            n = back_half(list(self._todo), self.overhead)
            part = [self._todo.pop() for _ in range(n)][::-1]
            comm.send(part, dest=thief, tag=GIVE)
            if part:
                self.given += len(part)
                logger.debug("gave %d items to rank %d", len(part), thief)
                if self.moved is not None:
                    self.moved(part, -1)

    # ----------------------------------------------------------------- taking
    def _steal(self) -> bool:
        """Ask the other ranks in turn (from the next one on) until one gives work; False when
        none has any. A rank that answered empty once is not asked again: ranks only lose work
        to thieves, so its answer would stay empty (unless it stole meanwhile, a rare miss
        that costs time, never a result)."""
        assert self.comm is not None
        comm = self.comm
        rank, size = comm.Get_rank(), comm.Get_size()
        for k in range(1, size):
            victim = (rank + k) % size
            if victim in self._dry:
                continue
            comm.send(None, dest=victim, tag=ASK)
            while not comm.Iprobe(source=victim, tag=GIVE):
                self._serve()
                time.sleep(_POLL_S)
            part: list[T] = comm.recv(source=victim, tag=GIVE)
            if part:
                self._todo.extend(part)
                self.taken += len(part)
                logger.debug("took %d items from rank %d", len(part), victim)
                if self.moved is not None:
                    self.moved(part, +1)
                return True
            self._dry.add(victim)
        return False

    def _drain(self) -> None:
        """Wait until every rank is out of work, answering their questions meanwhile."""
        if self.comm is None:
            return
        done = self.comm.Ibarrier()
        while not done.Test():
            self._serve()
            time.sleep(_POLL_S)
