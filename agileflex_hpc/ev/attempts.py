"""Attempts search: how many EVs a zone hosts, by random fleet draws and schedule solves.

An **attempt** draws a fleet of ``n`` EVs and asks whether its charging can be scheduled inside
the zone's bounds. Its verdict is ``feasible`` (a schedule was found), ``infeasible`` (the solver
proved there is none) or ``unknown`` (a solver limit stopped it without a proof, even after one
retry with doubled limits).

A **level** ``n`` is *confirmed* by ``successes_needed`` (K) feasible attempts in a row and
*refuted* by one infeasible attempt; an unknown attempt neither confirms nor refutes (nor breaks
the row), and K unknown attempts at one level leave it *undecided*. ``n = 0`` is confirmed
without attempts.

The **search** (DESIGN stage 7) starts at the stage-6 estimate ``n0`` (capped at ``n_max``, the
zone's customers). If ``n0`` is confirmed it tries ``n0 + 1, n0 + 2, ...`` up to ``n_max``
until a level is not confirmed; otherwise it tries ``n0 - 1, n0 - 2, ...`` until a level is
confirmed or ``n = 0``. The zone hosts the largest confirmed ``n``; the answer is flagged
unconfirmed when any attempt was unknown or the search was cut short by ``max_attempts``.

Attempt ``k`` of a zone (counted from 0 over the whole search) draws its fleet with
``numpy.random.default_rng([*seed, k])``, so the search is deterministic given ``seed``, and
zones seeded ``(run seed, network index, zone index)`` never share a stream.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from agileflex_hpc.ev.fleet import EvFleet, draw_fleet
from agileflex_hpc.ev.milp import ScheduleResult, solve_schedule

__all__ = ["AttemptRecord", "AttemptsResult", "Search", "Verdict", "run_attempts",
           "search_hosting"]

logger = logging.getLogger(__name__)

FleetFactory = Callable[[int, np.random.Generator], EvFleet]
Verdict = Literal["feasible", "infeasible", "unknown"]
LevelVerdict = Literal["confirmed", "refuted", "undecided"]
Direction = Literal["up", "down", "none"]
StopReason = Literal["refuted", "undecided", "cap", "confirmed", "zero", "no_headroom",
                     "max_attempts"]


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt: a fleet draw and its schedule solve.

    Attributes
    ----------
    attempt : int
        Attempt index, from 0.
    seed : str
        Entropy of the attempt's generator, e.g. ``"[7, 3]"`` for ``default_rng([7, 3])``.
    n : int
        Number of EVs drawn.
    status : str
        Solver status of the last solve (``"optimal"``, ``"infeasible"``, ``"node_limit"``...).
    verdict : str
        ``"feasible"``, ``"infeasible"`` or ``"unknown"``.
    feasible : bool
        ``verdict == "feasible"``.
    retried : bool
        The first solve hit a solver limit without a proof and was rerun with doubled limits.
    objective_p : float
        Schedule cost, NaN when not feasible. [p]
    mip_gap : float
        Relative MIP gap, NaN when not feasible. [-]
    solve_time_s : float
        HiGHS wall time, retry included. [s]
    successes : int
        Feasible attempts in a row at this ``n`` after this attempt.
    """

    attempt: int
    seed: str
    n: int
    status: str
    verdict: str
    feasible: bool
    retried: bool
    objective_p: float
    mip_gap: float
    solve_time_s: float
    successes: int


@dataclass(frozen=True)
class Search:
    """Outcome of :func:`search_hosting` (no fleets: see :class:`AttemptsResult`).

    Attributes
    ----------
    n : int
        EVs hosted: the largest confirmed level. [-]
    confirmed : bool
        No attempt was unknown and the search ran to its end.
    direction : str
        ``"up"`` (the start was confirmed), ``"down"`` (it was not) or ``"none"``.
    stop_reason : str
        ``"refuted"``/``"undecided"`` (the level above the answer), ``"cap"`` (confirmed up
        to ``n_max``), ``"confirmed"`` (found going down), ``"zero"`` (down to 0 EVs),
        ``"max_attempts"``.
    levels : dict of int -> str
        Verdict of every level tried, in the order tried.
    """

    n: int
    confirmed: bool
    direction: Direction
    stop_reason: StopReason
    levels: dict[int, LevelVerdict]


class _AttemptCap(Exception):
    """Raised inside the search when ``max_attempts`` attempts have been made."""


def search_hosting(n_start: int, n_max: int, attempt: Callable[[int], Verdict], *,
                   successes_needed: int = 10, max_attempts: int | None = None) -> Search:
    """The attempts search of the module docstring, on any feasibility oracle.

    Parameters
    ----------
    n_start : int
        Starting level, e.g. the stage-6 estimate; capped to ``[0, n_max]``.
    n_max : int
        Largest level to try (the zone's customers).
    attempt : callable ``(n) -> verdict``
        Makes the next attempt at ``n`` EVs and returns its verdict.
    successes_needed : int
        Feasible attempts in a row that confirm a level (K).
    max_attempts : int, optional
        Safety cap on the number of attempts; reaching it ends the search unconfirmed.

    Returns
    -------
    Search
    """
    if successes_needed < 1 or n_max < 0:
        raise ValueError(f"need successes_needed >= 1 and n_max >= 0, got {successes_needed} "
                         f"and {n_max}")
    levels: dict[int, LevelVerdict] = {}
    made = {"attempts": 0, "unknown": 0}

    def counted(n: int) -> Verdict:
        if max_attempts is not None and made["attempts"] >= max_attempts:
            raise _AttemptCap
        made["attempts"] += 1
        verdict = attempt(n)
        made["unknown"] += verdict == "unknown"
        return verdict

    def test(n: int) -> LevelVerdict:
        levels[n] = _test_level(n, counted, successes_needed)
        return levels[n]

    n0 = min(max(int(n_start), 0), n_max)
    direction: Direction = "none"
    reason: StopReason = "zero"
    best = 0
    try:
        if test(n0) == "confirmed":
            best, direction, reason = n0, "up", "cap"
            while best < n_max:
                verdict = test(best + 1)
                if verdict != "confirmed":
                    reason = verdict
                    break
                best += 1
        else:
            direction, best, reason = "down", n0 - 1, "zero"
            while best > 0 and test(best) != "confirmed":
                best -= 1
            reason = "confirmed" if best > 0 else "zero"
    except _AttemptCap:
        confirmed_levels = [n for n, v in levels.items() if v == "confirmed"]
        best = max(confirmed_levels, default=0)
        return Search(best, False, direction, "max_attempts", levels)
    return Search(max(best, 0), made["unknown"] == 0, direction, reason, levels)


def _test_level(n: int, attempt: Callable[[int], Verdict], successes_needed: int) -> LevelVerdict:
    """Attempts at ``n`` until K feasible in a row, one infeasible, or K unknown."""
    if n == 0:
        return "confirmed"
    row = unknown = 0
    while True:
        verdict = attempt(n)
        if verdict == "infeasible":
            return "refuted"
        if verdict == "feasible":
            row += 1
            if row >= successes_needed:
                return "confirmed"
        else:
            unknown += 1
            if unknown >= successes_needed:
                return "undecided"


@dataclass(frozen=True)
class AttemptsResult:
    """Outcome of the attempts search for one zone.

    Attributes
    ----------
    n : int
        EVs hosted: the largest confirmed number (0 without positive headroom).
    n_start : int
        The estimate the search started from.
    confirmed : bool
        See :class:`Search`; True for a zone without positive headroom (0 EVs, proved).
    direction : str
        ``"up"``, ``"down"`` or ``"none"``.
    stop_reason : str
        See :class:`Search`, or ``"no_headroom"``.
    fleet : EvFleet or None
        Fleet of the last feasible attempt at ``n``; None for 0 EVs.
    schedule : ScheduleResult or None
        Schedule of that fleet, optimal to the solver's ``mip_gap`` (the attempts themselves
        only ask whether a schedule exists).
    attempts : list of AttemptRecord
        Every attempt in order.
    """

    n: int
    n_start: int
    confirmed: bool
    direction: Direction
    stop_reason: StopReason
    fleet: EvFleet | None
    schedule: ScheduleResult | None
    attempts: list[AttemptRecord] = field(default_factory=list)

    def attempts_frame(self) -> pd.DataFrame:
        """The attempt records as a DataFrame, one row per attempt."""
        columns = list(AttemptRecord.__dataclass_fields__)
        return pd.DataFrame([asdict(a) for a in self.attempts], columns=columns)


def run_attempts(
    n_start: int,
    headroom_kw: np.ndarray,
    footroom_kw: np.ndarray,
    price: np.ndarray,
    *,
    seed: int | Sequence[int],
    n_max: int | None = None,
    successes_needed: int = 10,
    max_attempts: int | None = None,
    fleet_factory: FleetFactory | None = None,
    step_minutes: int = 10,
    **solve_kwargs: Any,
) -> AttemptsResult:
    """How many EVs a zone hosts, by the search of the module docstring.

    Parameters
    ----------
    n_start : int
        Starting number of EVs, the stage-6 estimate.
    headroom_kw, footroom_kw : ndarray, shape (steps,)
        Zone headroom and footroom on the noon-to-noon horizon (-inf: collapse). [kW]
    price : ndarray, shape (steps,)
        Import tariff. [p/kWh]
    seed : int or sequence of int
        Base entropy; attempt ``k`` uses ``default_rng([*seed, k])``.
    n_max : int, optional
        Most EVs to try (the zone's customers); default ``n_start``.
    successes_needed : int
        Feasible attempts in a row that confirm a number (10 in the study).
    max_attempts : int, optional
        Safety cap on the attempts of the zone.
    fleet_factory : callable ``(n, rng) -> EvFleet``, optional
        Draws a fleet; default `draw_fleet` on this horizon.
    step_minutes : int
        Step length. [min]
    **solve_kwargs
        Passed on to `solve_schedule` (``v2g``, ``mip_gap``, ``max_nodes``, ``time_limit_s``...).
        A solve stopped by a limit without a proof is retried once with ``max_nodes`` and
        ``time_limit_s`` doubled; still unproven, the attempt is unknown.

    Returns
    -------
    AttemptsResult
    """
    head = np.asarray(headroom_kw, dtype=float)
    n_max = n_start if n_max is None else n_max
    if fleet_factory is None:
        fleet_factory = functools.partial(draw_fleet, steps=head.size, step_minutes=step_minutes)
    room = head.copy()
    for name in ("import_cap_kw", "charge_cap_kw"):  # a cap on the net, or on all charging
        if solve_kwargs.get(name) is not None:
            room = np.minimum(room, solve_kwargs[name])
    if head.size == 0 or np.max(room) <= 0:
        logger.debug("zone has no positive headroom: 0 EVs, no attempts")
        return AttemptsResult(0, n_start, True, "none", "no_headroom", None, None, [])
    entropy = [int(s) for s in np.atleast_1d(seed)]
    records: list[AttemptRecord] = []
    kept: dict[int, tuple[EvFleet, ScheduleResult]] = {}
    row = {"n": -1, "count": 0}

    def attempt(n: int) -> Verdict:
        k = len(records)
        fleet = fleet_factory(n, np.random.default_rng([*entropy, k]))
        result, retried = _solve_with_retry(fleet, head, footroom_kw, price,
                                            step_minutes=step_minutes, goal="feasible",
                                            **solve_kwargs)
        verdict = _verdict(result)
        if row["n"] != n or verdict == "infeasible":
            row.update(n=n, count=0)
        row["count"] += verdict == "feasible"
        records.append(AttemptRecord(
            k, str([*entropy, k]), n, result.status, verdict, verdict == "feasible", retried,
            result.objective_p, result.mip_gap, result.solve_time_s, row["count"]))
        if verdict == "feasible":
            kept[n] = (fleet, result)
        logger.debug("attempt %d: n=%d %s (%s)", k, n, verdict, result.status)
        return verdict

    found = search_hosting(n_start, n_max, attempt, successes_needed=successes_needed,
                           max_attempts=max_attempts)
    fleet, schedule = kept.get(found.n, (None, None))
    if fleet is not None:  # the schedule the zone keeps: optimal to mip_gap
        best, _ = _solve_with_retry(fleet, head, footroom_kw, price, step_minutes=step_minutes,
                                    goal="optimal", **solve_kwargs)
        if best.feasible:
            schedule = best
        else:
            logger.warning("the kept fleet's optimal schedule stopped without a solution (%s): "
                           "keeping its first feasible schedule", best.status)
    timed_out = sum(r.status == "time_limit" for r in records)
    if timed_out:
        logger.warning("%d attempts stopped at the wall-clock safety limit (ev.time_limit_s): "
                       "the answer may depend on the machine's load and is flagged unconfirmed",
                       timed_out)
    return AttemptsResult(found.n, n_start, found.confirmed and not timed_out, found.direction,
                          found.stop_reason, fleet, schedule, records)


def _verdict(result: ScheduleResult) -> Verdict:
    if result.feasible:
        return "feasible"
    return "infeasible" if result.status == "infeasible" else "unknown"


def _solve_with_retry(fleet: EvFleet, head: np.ndarray, foot: np.ndarray, price: np.ndarray,
                      **kwargs: Any) -> tuple[ScheduleResult, bool]:
    """Solve; a limit without a proof is retried once with the limits doubled."""
    result = solve_schedule(fleet, head, foot, price, **kwargs)
    if _verdict(result) != "unknown":
        return result, False
    doubled = dict(kwargs)
    for key, default in (("max_nodes", None), ("time_limit_s", None)):
        if kwargs.get(key, default) is not None:
            doubled[key] = 2 * kwargs[key]
    retry = solve_schedule(fleet, head, foot, price, **doubled)
    logger.info("EV schedule of %d EVs stopped by a solver limit (%s); retried with doubled "
                "limits: %s", fleet.n, result.status, retry.status)
    return dataclasses.replace(retry, solve_time_s=retry.solve_time_s + result.solve_time_s), True
