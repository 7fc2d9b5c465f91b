"""Progress: a tqdm bar for a single process on a terminal, log lines otherwise."""

import logging
import sys

from agileflex_hpc.cli import Workers
from agileflex_hpc.loadflow.progress import ProgressReporter, format_summary
from agileflex_hpc.loadflow.run import WorkerSummary
from agileflex_hpc.partition import list_items


def test_bar_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    items = list_items([("n", 10)], ["c"], 288, 144)
    rep = ProgressReporter(items, Workers(0, 1, None, "single"))
    assert rep.bar is not None and rep.total == 288
    for it in items:
        rep.update(it, it.n_steps)
    rep.close()
    # the bar fills by work (buses x steps) and counts steps
    assert rep.bar.n == rep.bar.total == 2880 and "288/288 steps" in capsys.readouterr().err


def test_the_eta_weighs_steps_by_buses(monkeypatch):
    """A worker solves its largest network first: after the 1,000-bus network's day took 10 s,
    the 10-bus network's day is expected to take 0.1 s, not 10 s as counting steps would."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    items = list_items([("small", 10), ("big", 1000)], ["c"], 144, 144)
    rep = ProgressReporter(items, Workers(0, 1, None, "single"), every_s=1e9)
    big = next(it for it in items if it.network == "big")
    rep.update(big, big.n_steps)
    line = rep.status_line(rep.t0 + 10.0, {})
    assert line == "144/288 steps (14.4 steps/s, ETA 0 s)"
    rep.update(next(it for it in items if it.network == "small"), 0)  # found up to date
    assert rep.status_line(rep.t0 + 10.0, {}) == "288/288 steps (144 up to date; 14.4 " \
        "steps/s, ETA 0 s)"


def test_log_lines_without_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    items = list_items([("n", 10)], ["c"], 288, 144)
    rep = ProgressReporter(items, Workers(1, 2, None, "flags"), every_s=0.0)
    assert rep.bar is None and rep.total == 144  # worker 1's share only
    with caplog.at_level(logging.INFO, logger="agileflex_hpc.loadflow.progress"):
        rep.update(items[1], 144)
    assert "144/144 steps" in caplog.text


def test_summary_table_totals():
    rows = [WorkerSummary(0, items=2, steps=100, wall_s=2.0),
            WorkerSummary(1, items=3, skipped=1, steps=50, nonconverged=2, wall_s=1.0)]
    text = format_summary(rows)
    assert " total      5       1     150       2     2.00     75.0" in text
