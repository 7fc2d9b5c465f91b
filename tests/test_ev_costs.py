"""EV split weights: measured zone times, and the estimate scaled where none was measured."""

import pytest

from agileflex_hpc.ev.costs import zone_costs
from agileflex_hpc.ev.stage import ZoneTask, tasks_for


def _tasks(costs, n_start):
    return [ZoneTask(i, "net", 0, z, i, n, n, n, cost=c)
            for i, (z, n, c) in enumerate(zip("abcd", n_start, costs))]


def test_unmeasured_zones_weigh_their_estimate_at_the_median_measured_rate():
    keys = [("net", z) for z in "abcd"]
    # a: 10 s over 9 + 1 = 1.0 s per unit, b: 0.5 s over 5 = 0.1; median 0.55 s per unit
    weights = zone_costs(keys, [9, 4, 4, 9], {("net", "a"): 10.0, ("net", "b"): 0.5})
    assert weights == pytest.approx([10.0, 0.5, 5 * 0.55, 10 * 0.55])


def test_without_measurements_the_weight_is_the_estimate_plus_one():
    assert zone_costs([("n", "a"), ("n", "b")], [0, 7], {}) == [1.0, 8.0]


def test_measured_costs_move_zones_between_workers():
    """The estimate (10, 5, 5, 10) splits 2 + 2; measured, zone a alone costs more than half
    (10 of 18.75 s), so it gets a worker to itself."""
    by_estimate = _tasks([10, 5, 5, 10], [9, 4, 4, 9])
    assert [[t.zone for t in tasks_for(w, 2, by_estimate)] for w in (0, 1)] == \
        [["a", "b"], ["c", "d"]]
    measured = _tasks(zone_costs([("net", z) for z in "abcd"], [9, 4, 4, 9],
                                 {("net", "a"): 10.0, ("net", "b"): 0.5}), [9, 4, 4, 9])
    assert [[t.zone for t in tasks_for(w, 2, measured)] for w in (0, 1)] == \
        [["a"], ["b", "c", "d"]]
