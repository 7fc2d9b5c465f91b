"""Work stealing between MPI ranks: how much a busy rank gives, and, under real mpirun, that
every item is done exactly once whoever does it, the slow rank's tail by the idle ones."""

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from agileflex_hpc.stealing import StealingQueue, back_half
from tests.conftest import subprocess_env


@dataclass(frozen=True)
class Item:
    name: str
    cost: float


def items(*costs):
    return [Item(f"i{k}", c) for k, c in enumerate(costs)]


@pytest.mark.parametrize("costs, expected", [
    ((1, 1, 1, 1), 2),        # half of 4 is 2: the last two
    ((1, 1, 1), 1),           # half of 3 is 1.5: one item, not two
    ((5, 1, 1, 1), 3),        # 3 <= 4, the dear first item stays
    ((1, 1, 1, 5), 0),        # the last item alone is more than half: nothing
    ((3,), 0),                # one item: more than half of itself
    ((), 0),
])
def test_back_half_gives_the_longest_tail_within_half_the_cost(costs, expected):
    assert back_half(items(*costs), lambda tail: 0.0) == expected


def test_back_half_gives_nothing_a_taker_would_spend_more_on_than_it_saves():
    todo = items(1, 1, 1, 1)  # tail of 2 costs 2
    assert back_half(todo, lambda tail: 1.9) == 2
    assert back_half(todo, lambda tail: 2.0) == 0
    seen = []
    back_half(todo, lambda tail: seen.append([it.name for it in tail]) or 0.0)
    assert seen == [["i2", "i3"]]  # the overhead is asked of the tail it would give


def test_without_mpi_the_queue_is_the_share_in_order():
    share = items(3, 1, 2)
    queue = StealingQueue(share, None)
    assert list(queue) == share
    assert (queue.taken, queue.given) == (0, 0)


SCRIPT = textwrap.dedent("""
    import json, sys, time
    from dataclasses import dataclass
    from mpi4py import MPI
    from agileflex_hpc.stealing import StealingQueue

    @dataclass(frozen=True)
    class Item:
        index: int
        cost: float

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n = 60  # 20 items per rank; the last rank's take 20 x 30 ms, the others' 20 x 1 ms
    share = [Item(k, 1.0) for k in range(n) if k * size // n == rank]
    moves = []
    queue = StealingQueue(share, comm, moved=lambda part, sign: moves.append(sign * len(part)))
    done = []
    for item in queue:
        time.sleep(0.03 if item.index * size // n == size - 1 else 0.001)
        done.append(item.index)
    out = comm.gather({"done": done, "taken": queue.taken, "given": queue.given,
                       "moves": moves}, root=0)
    if rank == 0:
        json.dump(out, open(sys.argv[1], "w"))
""")


@pytest.mark.mpi
def test_idle_ranks_take_the_slow_ranks_tail_and_every_item_is_done_once(tmp_path, mpirun):
    script, result = tmp_path / "steal.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    res = subprocess.run([mpirun, "-n", "3", sys.executable, str(script), str(result)],
                         env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = json.loads(result.read_text())
    done = [k for r in ranks for k in r["done"]]
    assert sorted(done) == list(range(60))  # each item once
    slow, fast = ranks[2], ranks[:2]
    assert sum(r["taken"] for r in ranks) == sum(r["given"] for r in ranks)
    for r in ranks:
        assert len(r["done"]) == 20 + r["taken"] - r["given"]
    assert all(r["taken"] > 0 for r in fast)  # (the slow rank may take back a last item)
    # each thief solves what it took in the giver's order, after its own share
    for k, r in enumerate(fast):
        own = [i for i in r["done"] if i * 3 // 60 == k]
        assert r["done"][:len(own)] == own == sorted(own)
    # the moves reported match the counts
    for r in ranks:
        assert sum(m for m in r["moves"] if m > 0) == r["taken"]
        assert -sum(m for m in r["moves"] if m < 0) == r["given"]
    # the slow rank's 20 x 30 ms shrink towards the balanced ~ (20 x 30 + 40 x 1) / 3 ms
    assert slow["given"] >= 8
