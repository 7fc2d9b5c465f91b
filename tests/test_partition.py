"""The one partition: every item exactly once, contiguous, balanced by cost."""

import numpy as np
import pytest

from agileflex_hpc.partition import describe_plan, items_for, list_items, split_by_cost


def _items():
    return list_items([("a", 100), ("b", 700), ("c", 50)], ["00PV00HP", "25PV50HP"], 1008, 144)


def test_item_order_and_blocks():
    items = list_items([("n", 10)], ["c1"], 300, 144)
    assert [(i.start, i.stop) for i in items] == [(0, 144), (144, 288), (288, 300)]
    assert [i.cost for i in items] == [1440, 1440, 120]
    assert [it.index for it in _items()] == list(range(42))


def test_block_major_so_every_share_of_a_network_holds_every_case():
    """The heat-pump cases solve slower; a case-major order gave whole cases to the last
    ranks (2 ranks on a 7,023-bus feeder: 2.5 s against 4.4 s for the same steps)."""
    cases = ["00PV00HP", "25PV50HP", "50PV100HP"]
    items = list_items([("n", 10), ("m", 10)], cases, 4 * 144, 144)
    assert [(i.network, i.block, i.case) for i in items[:4]] == [
        ("n", 0, "00PV00HP"), ("n", 0, "25PV50HP"), ("n", 0, "50PV100HP"), ("n", 1, "00PV00HP")]
    for w in range(4):  # 4 workers: one network's two days each, every case
        mine = items_for(w, 4, items)
        assert {i.case for i in mine} == set(cases) and len({i.network for i in mine}) == 1


@pytest.mark.parametrize("n_workers", [1, 2, 3, 5, 16, 64])
def test_every_item_exactly_once_in_order(n_workers):
    items = _items()
    got = [it for w in range(n_workers) for it in items_for(w, n_workers, items)]
    assert got == items


@pytest.mark.parametrize("n_workers", [2, 3, 4, 7])
def test_balance_within_one_item_cost(n_workers):
    items = _items()
    loads = [sum(it.cost for it in items_for(w, n_workers, items)) for w in range(n_workers)]
    ideal = sum(it.cost for it in items) / n_workers
    assert max(loads) - ideal <= max(it.cost for it in items)
    # brute force: no contiguous split has a smaller maximum than ours by more than one item
    assert max(loads) <= _best_contiguous_max([it.cost for it in items], n_workers) + \
        max(it.cost for it in items)


def _best_contiguous_max(costs, k):
    """Minimal possible max part cost of a contiguous k-split (binary search on the answer)."""
    lo, hi = max(costs), sum(costs)
    while lo < hi:
        mid = (lo + hi) // 2
        parts, run = 1, 0
        for c in costs:
            if run + c > mid:
                parts, run = parts + 1, c
            else:
                run += c
        lo, hi = (mid + 1, hi) if parts > k else (lo, mid)
    return lo


def test_equal_costs_split_evenly():
    bounds = split_by_cost(np.ones(10), 3)
    assert np.diff(bounds).tolist() in ([3, 4, 3], [4, 3, 3], [3, 3, 4])


def test_more_workers_than_items_leaves_some_idle():
    items = list_items([("n", 1)], ["c"], 288, 144)
    counts = [len(items_for(w, 4, items)) for w in range(4)]
    assert sum(counts) == 2 and max(counts) == 1
    assert "(idle)" in describe_plan(items, 4)


def test_bad_worker_index():
    with pytest.raises(ValueError):
        items_for(3, 3, _items())
