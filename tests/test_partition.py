"""The one partition: every item exactly once, contiguous (networks spread over shares in
long studies) or longest first, balanced by cost."""

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from agileflex_hpc.partition import (
    COMPILE_STEPS,
    SHORT_BLOCK_COST,
    SPREAD_RATIO,
    assign_longest_first,
    describe_plan,
    items_for,
    list_items,
    mixed_order,
    short_block_networks,
    split_by_cost,
    spread_factor,
    spread_order,
)


def _items():
    return list_items([("a", 100), ("b", 700), ("c", 50)], ["00PV00HP", "25PV50HP"], 1008, 144)


def test_item_order_and_blocks():
    items = list_items([("n", 10)], ["c1"], 300, 144)
    assert sorted((i.start, i.stop, i.cost) for i in items) == [
        (0, 144, 1440), (144, 288, 1440), (288, 300, 120)]
    assert [i.block for i in items] == [0, 2, 1]  # spread: bit-reversed
    assert [it.index for it in _items()] == list(range(42))
    assert [it.network for it in _items()] == ["a"] * 14 + ["b"] * 14 + ["c"] * 14


@pytest.mark.parametrize("n_blocks,n_cases", [(16, 8), (7, 3), (2, 5), (1, 1), (0, 2), (9, 1)])
def test_mixed_order_holds_every_pair_once_and_mixes_cases_and_days(n_blocks, n_cases):
    order = mixed_order(n_blocks, n_cases)
    assert sorted(order) == [(b, c) for b in range(n_blocks) for c in range(n_cases)]
    for k in range(0, len(order), n_cases):  # every run of n_cases: each case once ...
        run = order[k:k + n_cases]
        assert [c for _, c in run] == list(range(n_cases))
        assert len({b for b, _ in run}) == min(n_cases, n_blocks)  # ... on distinct days


def test_spread_order_is_bit_reversed():
    assert spread_order(8) == [0, 4, 2, 6, 1, 5, 3, 7]
    assert spread_order(5) == [0, 4, 2, 1, 3]
    assert spread_order(1) == [0] and spread_order(0) == []


def _cold_spell_costs(n_blocks, cases):
    """A block's cost [s]: 1 plus its case's heat-pump share x how cold its day is (a cold
    spell in the study's middle): the shape measured on a weak 7,023-bus feeder, where a
    heat-pump case's collapsed steps run to the iteration limit."""
    hp = {c: int(c.split("PV")[1].rstrip("HP")) / 100 for c in cases}
    cold = [3.0 * np.exp(-((b - n_blocks / 2) / (n_blocks / 5)) ** 2) for b in range(n_blocks)]
    return lambda b, c: 1.0 + hp[c] * cold[b]


@pytest.mark.parametrize("n_workers", [2, 4, 8, 16])
def test_mixed_order_balances_days_of_uneven_cost(n_workers):
    """Costs unknown to the split (it sees buses x steps, equal for every block): cold days
    with heat pumps cost up to 4x a mild one. Contiguous shares of the mixed order stay within
    6 % of the mean (14 % with cases on neighbouring days, the order before); block-major
    shares (one day's cases each at 16 workers) do not."""
    cases = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP", "50PV50HP",
             "75PV75HP", "100PV100HP"]
    cost = _cold_spell_costs(16, cases)
    items = list_items([("n", 100)], cases, 16 * 144, 144)

    def worst_over_mean(ordered):
        bounds = split_by_cost(np.full(len(ordered), 1.0), n_workers)
        loads = [sum(cost(b, c) for b, c in ordered[bounds[w]:bounds[w + 1]])
                 for w in range(n_workers)]
        return max(loads) / np.mean(loads)

    assert worst_over_mean([(it.block, it.case) for it in items]) <= 1.06
    block_major = [(b, c) for b in range(16) for c in cases]
    if n_workers == 16:
        assert worst_over_mean(block_major) > 1.5


def _in_solving_order(share):
    """Whether a share runs network by network, most buses first (ties: the network met first
    in global order), each network's items in global order."""
    buses = [it.cost // it.n_steps for it in share]
    runs = [net for net, _ in itertools.groupby(it.network for it in share)]
    return (len(runs) == len(set(runs)) and buses == sorted(buses, reverse=True)
            and all([it.index for it in share if it.network == net]
                    == sorted(it.index for it in share if it.network == net) for net in runs))


@pytest.mark.parametrize("n_workers", [1, 2, 3, 5, 16, 64])
def test_every_item_exactly_once_in_solving_order(n_workers):
    items = _items()  # networks a (100 buses), b (700), c (50), in that order
    parts = [items_for(w, n_workers, items) for w in range(n_workers)]
    assert sorted((it for part in parts for it in part), key=lambda it: it.index) == items
    assert all(_in_solving_order(part) for part in parts)
    if n_workers == 1:  # the largest network first, the smallest last
        assert [net for net, _ in itertools.groupby(it.network for it in parts[0])] == \
            ["b", "a", "c"]


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


def test_the_plan_names_networks_whose_blocks_are_short_only_in_a_large_plan():
    """A 383-bus feeder's day (55,152 buses x steps) is a short block, a 7,023-bus feeder's
    is not; the plan says so once it holds SHORT_BLOCK_ITEMS short blocks, not for a few."""
    assert 383 * 144 < SHORT_BLOCK_COST < 7023 * 144
    fleet = list_items([("big", 7023), ("small1", 383), ("small2", 200)], ["c1", "c2"],
                       60 * 144, 144)  # 120 short blocks per small feeder: 240 in all
    assert short_block_networks(fleet) == ["small1", "small2"]
    text = describe_plan(fleet, 4)
    assert "2 of 3 networks have blocks of under 100,000 buses x steps (small1, small2)" in text
    week = list_items([("big", 7023), ("small1", 383), ("small2", 200)], ["c1", "c2"],
                      60 * 144, 144, network_block_steps={"small1": 1008, "small2": 1008})
    assert short_block_networks(week) == []  # week blocks: 386,064 and 201,600
    few = list_items([("small1", 383)], ["c1"], 7 * 144, 144)
    assert short_block_networks(few) == [] and "block_steps" not in describe_plan(few, 2)
    # one block per case already (a day's study): a longer block cannot help
    whole = list_items([(f"s{k}", 300) for k in range(60)], ["c1", "c2", "c3", "c4"], 144, 144)
    assert len(whole) == 240 and short_block_networks(whole) == []


def test_bad_worker_index():
    with pytest.raises(ValueError):
        items_for(3, 3, _items())


def _best_makespan(costs, k):
    """Brute force: the smallest possible maximum worker cost of any assignment."""
    best = sum(costs)
    for owners in itertools.product(range(k), repeat=len(costs)):
        loads = [0.0] * k
        for c, w in zip(costs, owners):
            loads[w] += c
        best = min(best, max(loads))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_longest_first_is_within_graham_bound_of_the_best_split(seed):
    """LPT: every item once, in order; the dearest worker within (4/3 - 1/3k) of the best any
    assignment reaches (brute force) and within its own cheapest item of the mean."""
    rng = np.random.default_rng(seed)
    costs = rng.lognormal(0.0, 1.2, size=8).tolist()  # skewed, as EV zone times are
    k = 3
    tasks = [_Task(i, c) for i, c in enumerate(costs)]
    shares = [items_for(w, k, tasks, contiguous=False) for w in range(k)]
    assert sorted(t.index for s in shares for t in s) == list(range(len(costs)))
    assert all([t.index for t in s] == sorted(t.index for t in s) for s in shares)
    loads = [sum(t.cost for t in s) for s in shares]
    assert max(loads) <= (4 / 3 - 1 / (3 * k)) * _best_makespan(costs, k) + 1e-12
    dearest = shares[int(np.argmax(loads))]
    assert max(loads) <= sum(costs) / k + min(t.cost for t in dearest) + 1e-12


def test_longest_first_beats_a_contiguous_split_of_skewed_costs():
    """The dear items side by side: a contiguous split must put two of them together."""
    costs = [5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    owner = assign_longest_first(np.array(costs), 2)
    assert owner.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]  # ties go to the lowest worker
    bounds = split_by_cost(np.array(costs), 2)
    contiguous = max(sum(costs[bounds[w]:bounds[w + 1]]) for w in range(2))
    assert contiguous == 10.0 and _best_makespan(costs, 2) == 8.0


@dataclass(frozen=True)
class _Task:
    index: int
    cost: float


def _fleet(n_networks, days, n_cases=4):
    """Networks of 60 to 2,000 buses, 10-minute steps, one block per day."""
    sizes = np.linspace(60, 2000, n_networks).astype(int)
    return list_items([(f"n{k:02d}", int(b)) for k, b in enumerate(sizes)],
                      [f"c{c}" for c in range(n_cases)], days * 144, 144)


def test_spread_factor_follows_the_study_length():
    """Parts of at least SPREAD_RATIO compiles' worth of steps, at most one per worker."""
    per_part = SPREAD_RATIO * COMPILE_STEPS
    assert spread_factor(_fleet(3, 2), 16) == 1  # 4 x 288 steps per network: too short
    steps = 4 * 120 * 144  # a 120-day study of 4 cases
    assert spread_factor(_fleet(3, 120), 16) == min(16, steps // per_part) == 16
    assert spread_factor(_fleet(3, 120), 64) == steps // per_part == 57
    assert spread_factor(_fleet(3, 120), 1) == 1


@pytest.mark.parametrize("n_workers", [2, 7, 16, 64])
def test_spread_shares_hold_every_item_once_largest_network_first_with_few_compiles(n_workers):
    items = _fleet(12, 60)
    m = spread_factor(items, n_workers)
    parts = [items_for(w, n_workers, items) for w in range(n_workers)]
    assert sorted(it.index for part in parts for it in part) == list(range(len(items)))
    for part in parts:  # each network's items side by side (one compile), largest first
        assert _in_solving_order(part)
    compiles = sum(len({it.network for it in part}) for part in parts)
    assert compiles <= 12 * m + n_workers - 1  # parts, plus one per share boundary
    loads = [sum(it.cost for it in part) for part in parts]
    assert max(loads) - np.mean(loads) <= max(it.cost for it in items)


def test_fully_spread_workers_hold_one_nth_of_every_network():
    items = _fleet(5, 120)
    n = 8
    assert spread_factor(items, n) == n
    for net in {it.network for it in items}:
        mine = [it for it in items if it.network == net]
        cost = sum(it.cost for it in mine)
        for w in range(n):
            got = sum(it.cost for it in items_for(w, n, items) if it.network == net)
            assert abs(got - cost / n) <= 2 * max(it.cost for it in mine), (net, w)


@pytest.mark.parametrize("n_workers", [16, 64])
def test_spreading_averages_out_what_buses_x_steps_misjudges(n_workers):
    """Each network's true cost per bus and step differs from the weight's by a factor the
    split cannot see (0.3-1.3, as measured over the shared networks), and each network a
    worker holds costs a compile. Shares of a 120-day study spread over the workers stay
    within 10 % of the mean; whole networks side by side (the short-study split) do not."""
    rng = np.random.default_rng(5)
    items = _fleet(40, 120)
    rate = {f"n{k:02d}": r for k, r in enumerate(rng.uniform(0.3, 1.3, 40))}
    bus = {it.network: it.cost // it.n_steps for it in items}

    def worst_over_mean(parts):
        loads = [sum(it.cost * rate[it.network] for it in part)
                 + sum(COMPILE_STEPS * bus[g] * rate[g] for g in {it.network for it in part})
                 for part in parts]
        return max(loads) / np.mean(loads)

    spread = [items_for(w, n_workers, items) for w in range(n_workers)]
    bounds = split_by_cost(np.array([it.cost for it in items], float), n_workers)
    whole = [items[bounds[w]:bounds[w + 1]] for w in range(n_workers)]
    assert worst_over_mean(spread) <= 1.10
    assert worst_over_mean(whole) > 1.25
