"""Attempts loop: how many EVs a zone hosts, by repeated random draws and schedule solves.

Start at ``n_start`` EVs. Each attempt draws a fleet of ``n`` EVs and solves its schedule; an
infeasible attempt lowers ``n`` by one and restarts the count of consecutive feasible attempts
at zero. The loop stops after ``successes_needed`` consecutive feasible attempts at the same
``n`` (the zone hosts ``n``), when ``n`` reaches 0, or after ``max_attempts`` attempts.

Attempt ``k`` (counted from 0) draws its fleet with ``numpy.random.default_rng([*seed, k])``:
distinct streams for every (seed, attempt) pair, so the loop is deterministic given ``seed`` and
zones seeded ``(cfg_seed, zone_index)`` never share a stream.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from agileflex_hpc.evcharging.fleet import EvFleet, draw_fleet
from agileflex_hpc.evcharging.milp import ScheduleResult, solve_schedule

__all__ = ["AttemptRecord", "AttemptsResult", "run_attempts"]

logger = logging.getLogger(__name__)

FleetFactory = Callable[[int, np.random.Generator], EvFleet]
StopReason = Literal["successes", "n_zero", "no_headroom", "max_attempts"]


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
        Solver status (``"optimal"``, ``"infeasible"``, ``"time_limit"``, ...).
    feasible : bool
        Whether a feasible schedule was found.
    objective_p : float
        Schedule cost, NaN when infeasible. [p]
    mip_gap : float
        Relative MIP gap, NaN when infeasible. [-]
    solve_time_s : float
        HiGHS wall time. [s]
    successes : int
        Consecutive feasible attempts at this ``n`` after this attempt.
    """

    attempt: int
    seed: str
    n: int
    status: str
    feasible: bool
    objective_p: float
    mip_gap: float
    solve_time_s: float
    successes: int


@dataclass(frozen=True)
class AttemptsResult:
    """Outcome of the attempts loop for one zone.

    Attributes
    ----------
    n : int
        EVs hosted: the ``n`` of the final attempts (0 if the loop reached 0 EVs or the zone
        has no positive headroom). Only confirmed when ``stop_reason == "successes"``.
    stop_reason : str
        ``"successes"``, ``"n_zero"``, ``"no_headroom"`` or ``"max_attempts"``.
    fleet : EvFleet or None
        Fleet of the last feasible attempt at the final ``n``; None if there is none.
    schedule : ScheduleResult or None
        Schedule of that fleet.
    attempts : list of AttemptRecord
        Every attempt in order.
    """

    n: int
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
    successes_needed: int = 10,
    max_attempts: int | None = None,
    fleet_factory: FleetFactory | None = None,
    step_minutes: int = 10,
    **solve_kwargs: Any,
) -> AttemptsResult:
    """Find how many EVs a zone can schedule, by the attempts loop of the module docstring.

    Parameters
    ----------
    n_start : int
        EVs of the first attempt, e.g. the hosting estimate.
    headroom_kw, footroom_kw : ndarray, shape (steps,)
        Zone headroom and footroom on the noon-to-noon horizon. [kW]
    price : ndarray, shape (steps,)
        Import tariff. [p/kWh]
    seed : int or sequence of int
        Base entropy; attempt ``k`` uses ``default_rng([*seed, k])``.
    successes_needed : int
        Consecutive feasible attempts that confirm ``n`` (10 in the study, 2 in validation).
    max_attempts : int, optional
        Hard cap on attempts; the loop ends anyway after at most
        ``(n_start + 1) * successes_needed`` attempts.
    fleet_factory : callable ``(n, rng) -> EvFleet``, optional
        Draws a fleet; default `draw_fleet` on this horizon.
    step_minutes : int
        Step length. [min]
    **solve_kwargs
        Passed on to `solve_schedule` (``v2g``, ``mip_gap``, ``time_limit_s``, ...). An attempt
        stopped at the time limit without a schedule counts as infeasible.

    Returns
    -------
    AttemptsResult
    """
    if successes_needed < 1 or n_start < 0:
        raise ValueError(f"need successes_needed >= 1 and n_start >= 0, got "
                         f"{successes_needed} and {n_start}")
    head = np.asarray(headroom_kw, dtype=float)
    if fleet_factory is None:
        fleet_factory = functools.partial(draw_fleet, steps=head.size, step_minutes=step_minutes)
    if head.size == 0 or np.max(head) <= 0:
        logger.debug("zone has no positive headroom: 0 EVs, no attempts")
        return AttemptsResult(0, "no_headroom", None, None, [])
    entropy = [int(s) for s in np.atleast_1d(seed)]

    def solve(n: int, rng: np.random.Generator) -> tuple[EvFleet, ScheduleResult]:
        fleet = fleet_factory(n, rng)
        return fleet, solve_schedule(fleet, head, footroom_kw, price,
                                     step_minutes=step_minutes, **solve_kwargs)

    return _loop(n_start, entropy, successes_needed, max_attempts, solve)


def _loop(
    n: int,
    entropy: list[int],
    successes_needed: int,
    max_attempts: int | None,
    solve: Callable[[int, np.random.Generator], tuple[EvFleet, ScheduleResult]],
) -> AttemptsResult:
    """The stopping rule, separated from drawing and solving."""
    records: list[AttemptRecord] = []
    successes, kept = 0, (None, None)
    while n > 0 and successes < successes_needed:
        if max_attempts is not None and len(records) >= max_attempts:
            return AttemptsResult(n, "max_attempts", *kept, records)
        k = len(records)
        fleet, result = solve(n, np.random.default_rng([*entropy, k]))
        successes = successes + 1 if result.feasible else 0
        records.append(AttemptRecord(k, str([*entropy, k]), n, result.status, result.feasible,
                                     result.objective_p, result.mip_gap, result.solve_time_s,
                                     successes))
        logger.debug("attempt %d: n=%d %s (%d in a row)", k, n, result.status, successes)
        kept = (fleet, result) if result.feasible else (None, None)
        n -= 0 if result.feasible else 1
    reason: StopReason = "successes" if successes >= successes_needed else "n_zero"
    return AttemptsResult(n, reason, *kept, records)
