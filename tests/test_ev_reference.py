"""Issue 11: the fast EV stage (feasibility-only attempts, node limits) gives the answers of a
reference that solves every attempt to optimality with ``mip_gap = 1e-6`` and no node limit:
the same hosted number, confirmed flag, and every attempt's verdict, zone by zone."""

from __future__ import annotations

import dataclasses

import pytest

from agileflex_hpc.config import parse_config
from agileflex_hpc.ev import attempts
from agileflex_hpc.ev.stage import list_zone_tasks, solve_zone
from tests.conftest import SHORT_DEMO

pytestmark = [pytest.mark.requires_opendss, pytest.mark.slow]


def _compare(cfg, monkeypatch) -> int:
    from agileflex_hpc.pipeline import run_pipeline

    run_pipeline(cfg, stages=("loadflow", "headroom"))
    tasks = list_zone_tasks(cfg)
    fast = [solve_zone(cfg, t) for t in tasks]
    ref_cfg = dataclasses.replace(cfg, ev=dataclasses.replace(cfg.ev, mip_gap=1e-6,
                                                              max_nodes=2**31 - 1))
    solve = attempts._solve_with_retry
    monkeypatch.setattr(attempts, "_solve_with_retry",
                        lambda *a, **k: solve(*a, **{**k, "goal": "optimal"}))
    for task, f in zip(tasks, fast):
        r = solve_zone(ref_cfg, task)
        assert (f.n, f.confirmed) == (r.n, r.confirmed), task.zone
        assert [a.verdict for a in f.attempts] == [a.verdict for a in r.attempts], task.zone
    return sum(len(f.attempts) for f in fast)


def test_demo_answers_equal_the_all_optimal_reference(tmp_path, monkeypatch):
    text = SHORT_DEMO.replace("step_minutes = 30", "step_minutes = 10").replace(
        "block_steps = 48", "block_steps = 144")
    assert _compare(parse_config(text, base_dir=tmp_path), monkeypatch) > 12


@pytest.mark.shared
def test_network_5_answers_equal_the_all_optimal_reference(tmp_path, monkeypatch, shared_dir):
    path = shared_dir / "networks" / "enwl" / "network_5"
    text = SHORT_DEMO.replace('name = "default"', f'name = "network_5"\npath = "{path}"\n'
                              'unrated_rating_a = 400')
    assert _compare(parse_config(text, base_dir=tmp_path), monkeypatch) > 23
