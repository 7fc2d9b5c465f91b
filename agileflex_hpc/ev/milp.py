"""Cost-optimal charging schedule of a zone's EVs: a sparse MILP (or its LP relaxation) for HiGHS.

Model, for EV ``i`` and step ``t`` inside its window ``[t_in, t_out)`` only (no variable exists
outside it, so nothing needs fixing to zero):

- charge ``c[i,t]`` in [0, P_i] kW and on/off ``u[i,t]`` in {0, 1}: ``min_kw*u <= c <= P_i*u``;
- with V2G, discharge ``d[i,t]`` in [0, P_i] kW and ``w[i,t]`` in {0, 1}:
  ``min_kw*w <= d <= P_i*w`` and ``u + w <= 1``;
- energy: without V2G charging only adds energy, so one row per EV,
  ``e_end - e_start <= sum_t step_h*eff*c <= battery - e_start``; with V2G the energy after each
  step is a variable ``e`` with bounds [0, battery] (``[e_end, battery]`` at departure) and
  ``e[t] = e[t-1] + step_h*(eff*c - d/eff)``, ``e[t_in - 1] = e_start``;
- zone: ``-footroom_factor*max(footroom[t], 0) <= sum_i (c - d) <= max(headroom[t], 0)`` at
  every step where at least one EV is plugged in (steps without EVs get no row: the EVs cannot
  change them). Headroom is clipped at 0 as in the study: where it is negative EVs may not
  charge and are paid the premium to discharge, but a deficit they cannot cover does not make
  the schedule infeasible (DESIGN stage 7). A -inf headroom or footroom (a time of day that
  collapses) allows no EV power at all;
- caps (the plan-validate loop's, where given): ``import_cap[t]`` lowers the zone row's
  upper bound (the net import); ``sum_i c[i,t] <= charge_cap[t]`` and
  ``sum_i d[i,t] <= discharge_cap[t]`` bound the zone's charging and discharging, summed over
  its EVs. A bound on the net alone lets one EV charge from another's discharge, which the
  lossless, placeless zone model sees as free, but a power flow does not: the charging EV at
  the end of a feeder still pulls its voltage down (seen on enwl-lvns network_3 Feeder_4,
  where the loop then had no zone to blame);
- small-headroom cuts (MILP only): where ``max(headroom[t], 0) < min_kw`` an EV charges only
  while another discharges, ``c[i,t] <= P_i/min_kw * sum_{j != i} d[j,t]`` (``c[i,t] <= 0``
  without V2G): valid for the MILP, they remove the LP relaxation's small charges there;
- objective: minimise ``sum step_h*price[t]*(c - d)`` [p], with ``price`` the tariff plus
  ``v2g_premium`` where headroom < 0.

Tie-break: the tariff is flat over hours, so many schedules cost the same; ``1e-6*t/steps``
p/kWh (earlier is cheaper) is added to the price of every power variable to pick one of them.
It changes the cost by at most ``1e-6`` p per kWh and is left out of the reported
``objective_p``, which is the cost at the effective price computed from the returned arrays.

Solving (``model="milp"``): HiGHS's own MIP search spends most of its time in root cuts before
its heuristics find a schedule, although the LP bound is nearly tight. So `_solve_milp` first
solves the LP relaxation (the bound), then small MILPs with most binaries fixed from the LP
solution; a schedule within ``mip_gap`` of the LP bound is returned at once, with the gap
against that bound. Only otherwise does the full MILP run, warm-started. A V2G feasibility
question first tries the charge-only model's LP and restricted MILPs (a schedule without
discharge is a V2G schedule). ``model="lp"`` solves
the LP relaxation projected onto the power and energy columns (see `_build_lp`).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Literal, NamedTuple

import highspy
import numpy as np
import scipy.sparse as sp

from agileflex_hpc.errors import InputDataError, SolverError
from agileflex_hpc.ev.fleet import EvFleet
from agileflex_hpc.ev.tariff import effective_price_p_per_kwh

__all__ = ["ScheduleResult", "solve_schedule"]

logger = logging.getLogger(__name__)

_INF = highspy.kHighsInf
_ABS_GAP = 1e-6  # HiGHS's default mip_abs_gap [p]
_FIX_TOL = 1e-7  # power below this counts as off in the LP solution [kW]
_RC_TOL = 1e-5  # reduced cost above this marks an LP cell as dearer than those used [p/kW]
_TIE_BREAK = 1e-6
_MS = highspy.HighsModelStatus
_STATUS = {
    _MS.kOptimal: "optimal",
    _MS.kInfeasible: "infeasible",
    _MS.kUnboundedOrInfeasible: "infeasible",
    _MS.kTimeLimit: "time_limit",
    _MS.kIterationLimit: "iteration_limit",
    _MS.kSolutionLimit: "solution_limit",
    _MS.kObjectiveBound: "objective_bound",
    _MS.kObjectiveTarget: "objective_target",
    _MS.kInterrupt: "interrupted",
    _MS.kHighsInterrupt: "interrupted",  # type: ignore[attr-defined]  # not in the stubs
    _MS.kMemoryLimit: "memory_limit",
}


@dataclass(frozen=True)
class ScheduleResult:
    """Outcome of one schedule optimisation.

    Attributes
    ----------
    status : str
        ``"optimal"``, ``"infeasible"``, ``"time_limit"`` or another HiGHS limit status.
    feasible : bool
        True when a schedule satisfying every constraint was found (an optimal one, or the
        incumbent of a limit-stopped MILP).
    objective_p : float
        Cost of the schedule at the effective price; NaN when not feasible. [p]
    mip_gap : float
        MIP gap ``(cost - bound) / scale`` of the model objective, ``scale`` being the gross
        value of the energy the LP bound's schedule moves (``sum |price x power| x step``; a
        net cost can be near 0 where V2G earnings offset charging, so a gap relative to it is
        ill-conditioned): against the LP bound when a restricted MILP closed it, else against
        HiGHS's dual bound; 0 for the LP, NaN when not feasible. [-]
    solve_time_s : float
        Wall time of all HiGHS runs (LP bound, restricted and full MILPs). [s]
    charge_kw : ndarray, shape (ev, steps)
        Grid-side charging power; zeros when not feasible. [kW]
    discharge_kw : ndarray, shape (ev, steps)
        Grid-side V2G discharge power; zeros without V2G or when not feasible. [kW]
    energy_kwh : ndarray, shape (ev, steps + 1)
        Energy in the battery at the start of each step (the last column is the end of the
        horizon); ``e_start`` before arrival, the departure energy after it; zeros when not
        feasible. [kWh]
    model : str
        ``"milp"`` or ``"lp"``.
    build_time_s : float
        Wall time to build the sparse model. [s]
    """

    status: str
    feasible: bool
    objective_p: float
    mip_gap: float
    solve_time_s: float
    charge_kw: np.ndarray
    discharge_kw: np.ndarray
    energy_kwh: np.ndarray
    model: str = "milp"
    build_time_s: float = 0.0

    @property
    def net_kw(self) -> np.ndarray:
        """Net grid power of each EV, charge minus discharge, shape (ev, steps). [kW]"""
        return self.charge_kw - self.discharge_kw


@dataclass(frozen=True)
class _Cells:
    """The in-window (EV, step) cells, EV-major: one variable of each kind per cell."""

    ev: np.ndarray  # (m,) EV index of each cell
    t: np.ndarray  # (m,) step of each cell
    first: np.ndarray  # (n,) cell index of each EV's first step
    last: np.ndarray  # (n,) cell index of each EV's last step

    @property
    def m(self) -> int:
        return int(self.ev.size)


class _HighsLp(NamedTuple):
    """The arguments of ``Highs.passModel``, in its order: a model with a CSC matrix."""

    num_col: int
    num_row: int
    num_nz: int
    a_format: int
    sense: int
    offset: float
    col_cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    a_start: np.ndarray
    a_index: np.ndarray
    a_value: np.ndarray
    integrality: np.ndarray


@dataclass(frozen=True)
class _Rows:
    """A block of constraint rows in COO form, row numbers local to the block."""

    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def solve_schedule(
    fleet: EvFleet,
    headroom_kw: np.ndarray,
    footroom_kw: np.ndarray,
    price_p_per_kwh: np.ndarray,
    *,
    step_minutes: int = 10,
    model: Literal["milp", "lp"] = "milp",
    v2g: bool = False,
    min_kw: float = 1.38,
    efficiency: float = 0.95,
    footroom_factor: float = 0.7,
    v2g_premium: float = 17.5,
    mip_gap: float = 1e-3,
    max_nodes: int | None = None,
    time_limit_s: float = 300.0,
    threads: int = 1,
    seed: int = 0,
    goal: Literal["optimal", "feasible"] = "optimal",
    import_cap_kw: np.ndarray | None = None,
    charge_cap_kw: np.ndarray | None = None,
    discharge_cap_kw: np.ndarray | None = None,
) -> ScheduleResult:
    """Cheapest charging (and optional V2G) schedule of a zone's EVs within its head/footroom.

    See the module docstring for the model.

    Parameters
    ----------
    fleet : EvFleet
        The EVs' sessions; ``t_out <= steps``.
    headroom_kw, footroom_kw : ndarray, shape (steps,)
        Zone headroom and footroom on the noon-to-noon horizon; -inf where the time of day
        collapses. [kW]
    price_p_per_kwh : ndarray, shape (steps,)
        Import tariff, e.g. from `tariff_p_per_kwh`; the V2G premium is added here. [p/kWh]
    step_minutes : int
        Step length. [min]
    model : {"milp", "lp"}
        ``"lp"`` drops integrality (the LP relaxation, a lower bound on the MILP's cost).
    v2g : bool
        Allow discharge to the grid.
    min_kw : float
        Minimum non-zero charge or discharge power (6 A at 230 V). [kW]
    efficiency : float
        One-way efficiency between grid and battery. [-]
    footroom_factor : float
        Share of the footroom that V2G may use. [-]
    v2g_premium : float
        Added to the price where headroom < 0. [p/kWh]
    mip_gap : float
        Relative MIP gap at which HiGHS stops. [-]
    max_nodes : int, optional
        Branch-and-bound node limit of each MILP solve (deterministic: the limit that decides
        results); None: no limit.
    time_limit_s : float
        Wall-clock safety limit of the whole solve; a schedule stopped by it is reported with
        status ``"time_limit"`` (results that hit it depend on the machine). [s]
    threads : int
        HiGHS threads.
    seed : int
        HiGHS random seed.
    goal : {"optimal", "feasible"}
        ``"feasible"`` answers only whether a schedule exists (the attempts' question): the
        first schedule found is returned (status ``"feasible"``, its cost not optimised), and
        an infeasible LP relaxation proves the MILP infeasible. ``"optimal"`` closes the gap
        to ``mip_gap``.
    import_cap_kw : ndarray, shape (steps,), optional
        Cap on the zone's net EV import (the plan-validate loop's; inf: none). [kW]
    charge_cap_kw, discharge_cap_kw : ndarray, shape (steps,), optional
        Caps on the zone's EV charging and V2G discharge, each summed over its EVs (the
        plan-validate loop's; inf: none). [kW]

    Returns
    -------
    ScheduleResult

    Raises
    ------
    InputDataError
        Bad fleet, profile shape or non-finite values.
    SolverError
        HiGHS failed (load, presolve or solve error), as opposed to proving infeasibility.
    """
    head, foot, price = _check_inputs(fleet, headroom_kw, footroom_kw, price_p_per_kwh,
                                      model=model, min_kw=min_kw)
    steps, step_h = head.size, step_minutes / 60.0
    if fleet.n == 0:
        zeros = np.zeros((0, steps))
        return ScheduleResult("optimal", True, 0.0, 0.0, 0.0, zeros, zeros,
                              np.zeros((0, steps + 1)), model)
    started = time.perf_counter()
    bound = head if import_cap_kw is None else np.minimum(head, _cap_array(import_cap_kw, steps))
    cells = _cells(fleet)
    eff_price = effective_price_p_per_kwh(price, head, v2g_premium=v2g_premium)

    caps = (_cap_array(charge_cap_kw, steps), _cap_array(discharge_cap_kw, steps))

    def build(with_v2g: bool) -> dict[bool, tuple[_HighsLp, dict[str, int]]]:
        return {relaxed: _build_lp(fleet, cells, bound, foot, eff_price, step_h=step_h,
                                   v2g=with_v2g, min_kw=min_kw, efficiency=efficiency,
                                   footroom_factor=footroom_factor, relaxed=relaxed,
                                   cuts=model == "milp", caps=caps)
                for relaxed in ((True, False) if model == "milp" else (True,))}

    options = {"mip_rel_gap": float(mip_gap), "time_limit": float(time_limit_s),
               "threads": int(threads), "random_seed": int(seed)}
    if max_nodes is not None:
        options["mip_max_nodes"] = int(max_nodes)
    build_s = spent = 0.0  # spent: seconds of a charge-only search that found nothing
    run = None
    if model == "milp" and v2g and goal == "feasible":
        # a charge-only schedule is a V2G schedule that never discharges: look for one with
        # the small model's LP and restricted MILPs first (never its full MILP)
        models = build(False)
        build_s = time.perf_counter() - started
        quick = _solve_milp(models[True], models[False], options, m=cells.m, min_kw=min_kw,
                            feasible_only=True, full_milp=False)
        if quick.x is not None:
            run = quick
        else:
            spent = quick.seconds
            options["time_limit"] = max(float(time_limit_s) - spent, 0.0)
    if run is None:
        t0 = time.perf_counter()
        models = build(v2g)
        build_s += time.perf_counter() - t0
        if model == "milp":
            run = _solve_milp(models[True], models[False], options, m=cells.m, min_kw=min_kw,
                              feasible_only=goal == "feasible")
        else:
            run = _run_highs(models[True][0], options)
    cols = models[model == "lp"][1]
    status, x, gap, solve_s = run.status, run.x, run.gap, run.seconds + spent
    if x is None:
        zeros = np.zeros((fleet.n, steps))
        return ScheduleResult(status, False, np.nan, np.nan, solve_s, zeros, zeros.copy(),
                              np.zeros((fleet.n, steps + 1)), model, build_s)
    charge, discharge = _unpack(fleet, cells, x, steps, cols)
    energy = _energy_kwh(fleet, charge, discharge, step_h=step_h, efficiency=efficiency)
    cost = float(step_h * ((charge - discharge) @ eff_price).sum())
    logger.debug("EV schedule %s: %s, %d EVs, cost %.2f p, gap %.2e, %.3f s",
                 model, status, fleet.n, cost, gap, solve_s)
    return ScheduleResult(status, True, cost, gap, solve_s, charge, discharge, energy,
                          model, build_s)


def _check_inputs(
    fleet: EvFleet,
    headroom_kw: np.ndarray,
    footroom_kw: np.ndarray,
    price_p_per_kwh: np.ndarray,
    *,
    model: str,
    min_kw: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profiles as float arrays of one shape (steps,), after checking them and the fleet."""
    if model not in ("milp", "lp"):
        raise ValueError(f"model must be 'milp' or 'lp', got {model!r}")
    arrays = {}
    for key, value in (("headroom_kw", headroom_kw), ("footroom_kw", footroom_kw),
                       ("price_p_per_kwh", price_p_per_kwh)):
        arrays[key] = np.asarray(value, dtype=float)
        ok = np.isfinite(arrays[key]) | ((arrays[key] == -np.inf) & (key != "price_p_per_kwh"))
        if arrays[key].ndim != 1 or not np.all(ok):
            raise InputDataError(f"{key} must be a 1-D array (steps,) of finite values (-inf "
                                 f"allowed in profiles), got shape {arrays[key].shape}")
    steps = arrays["headroom_kw"].size
    if {a.size for a in arrays.values()} != {steps}:
        raise InputDataError(f"profile lengths differ: { {k: a.size for k, a in arrays.items()} }")
    fleet.assert_valid(steps=steps)
    if fleet.n and not 0 <= min_kw <= fleet.charger_kw.min():
        raise InputDataError(f"min_kw {min_kw} must be in [0, smallest charger_kw "
                             f"{fleet.charger_kw.min()}]")
    return arrays["headroom_kw"], arrays["footroom_kw"], arrays["price_p_per_kwh"]


def _cells(fleet: EvFleet) -> _Cells:
    """Flatten every EV's window ``[t_in, t_out)`` into cells, EV-major."""
    length = fleet.t_out - fleet.t_in
    first = np.concatenate(([0], np.cumsum(length)[:-1]))
    ev = np.repeat(np.arange(fleet.n), length)
    t = np.repeat(fleet.t_in - first, length) + np.arange(length.sum())
    return _Cells(ev=ev, t=t, first=first, last=first + length - 1)


def _power_rows(cells: _Cells, charger_kw: np.ndarray, min_kw: float,
                x0: int, b0: int) -> _Rows:
    """``x - P*b <= 0`` and ``x - min_kw*b >= 0`` for power columns ``x0+k``, binaries ``b0+k``."""
    m, k = cells.m, np.arange(cells.m)
    ones = np.ones(m)
    return _Rows(
        row=np.concatenate((k, k, m + k, m + k)),
        col=np.concatenate((x0 + k, b0 + k, x0 + k, b0 + k)),
        val=np.concatenate((ones, -charger_kw[cells.ev], ones, np.full(m, -min_kw))),
        lower=np.concatenate((np.full(m, -_INF), np.zeros(m))),
        upper=np.concatenate((np.zeros(m), np.full(m, _INF))),
    )


def _exclusive_rows(cells: _Cells, u0: int, w0: int) -> _Rows:
    """``u + w <= 1``: never charge and discharge in the same step."""
    k = np.arange(cells.m)
    return _Rows(np.concatenate((k, k)), np.concatenate((u0 + k, w0 + k)),
                 np.ones(2 * cells.m), np.full(cells.m, -_INF), np.ones(cells.m))


def _shared_charger_rows(fleet: EvFleet, cells: _Cells, c0: int, d0: int) -> _Rows:
    """``c + d <= P``: the relaxed form of one charger, charging or discharging."""
    k = np.arange(cells.m)
    return _Rows(np.concatenate((k, k)), np.concatenate((c0 + k, d0 + k)),
                 np.ones(2 * cells.m), np.full(cells.m, -_INF), fleet.charger_kw[cells.ev])


def _total_energy_rows(fleet: EvFleet, cells: _Cells, step_h: float, efficiency: float) -> _Rows:
    """Charge-only energy: ``e_end - e_start <= sum step_h*eff*c <= battery - e_start`` per EV."""
    return _Rows(cells.ev, np.arange(cells.m), np.full(cells.m, step_h * efficiency),
                 fleet.e_end_kwh - fleet.e_start_kwh, fleet.battery_kwh - fleet.e_start_kwh)


def _dynamic_energy_rows(fleet: EvFleet, cells: _Cells, step_h: float, efficiency: float,
                         c0: int, d0: int, e0: int) -> _Rows:
    """V2G energy: ``e[k] - e[k-1] - step_h*eff*c[k] + step_h/eff*d[k] = 0`` (``e_start`` first)."""
    m, k = cells.m, np.arange(cells.m)
    prev = np.setdiff1d(k, cells.first, assume_unique=True)  # cells with an e[k-1] column
    rhs = np.zeros(m)
    rhs[cells.first] = fleet.e_start_kwh
    return _Rows(
        row=np.concatenate((k, k, k, prev)),
        col=np.concatenate((e0 + k, c0 + k, d0 + k, e0 + prev - 1)),
        val=np.concatenate((np.ones(m), np.full(m, -step_h * efficiency),
                            np.full(m, step_h / efficiency), -np.ones(prev.size))),
        lower=rhs, upper=rhs,
    )


def _zone_rows(cells: _Cells, head: np.ndarray, foot: np.ndarray, footroom_factor: float,
               c0: int, d0: int | None) -> _Rows:
    """``-f*max(footroom, 0) <= sum_i (c - d) <= max(headroom, 0)`` where an EV is plugged in."""
    used, row = np.unique(cells.t, return_inverse=True)
    k = np.arange(cells.m)
    col, val = c0 + k, np.ones(cells.m)
    if d0 is not None:
        row, col, val = np.concatenate((row, row)), np.concatenate((col, d0 + k)), \
            np.concatenate((val, -val))
    lower = -footroom_factor * np.clip(foot[used], 0.0, None)
    return _Rows(row, col, val, lower, np.clip(head[used], 0.0, None))


def _cap_array(cap_kw: np.ndarray | None, steps: int) -> np.ndarray:
    """A cap per step as floats (inf: none). [kW]"""
    if cap_kw is None:
        return np.full(steps, np.inf)
    cap = np.asarray(cap_kw, dtype=float)
    if cap.shape != (steps,) or np.isnan(cap).any():
        raise InputDataError(f"EV caps must be {steps} numbers (inf: none), got shape {cap.shape}")
    return cap


def _cap_rows(cells: _Cells, cap_kw: np.ndarray, col0: int) -> _Rows:
    """``sum_i x[i,t] <= cap[t]`` at every step with a finite cap and an EV plugged in."""
    k = np.flatnonzero(np.isfinite(cap_kw[cells.t]))
    used, row = np.unique(cells.t[k], return_inverse=True)
    return _Rows(row, col0 + k, np.ones(k.size), np.full(used.size, -_INF),
                 np.clip(cap_kw[used], 0.0, None))


def _small_headroom_rows(fleet: EvFleet, cells: _Cells, head: np.ndarray, min_kw: float,
                         c0: int, d0: int | None) -> _Rows:
    """Valid cuts where the headroom is below ``min_kw``: there an EV can only charge (at
    ``min_kw`` or more) while another discharges (again at ``min_kw`` or more), so
    ``c[i,t] <= P_i/min_kw * sum_{j != i} d[j,t]``; without V2G, ``c[i,t] <= 0``.

    The MILP's solutions all satisfy them, but the LP relaxation's small charges at such steps
    (the fractional cells that made the restricted MILPs fail and the full MILP's root cuts
    take seconds) do not: with them the LP bound is nearly tight there too.
    """
    small = np.flatnonzero(np.clip(head, 0.0, None)[cells.t] < min_kw)
    order = small[np.argsort(cells.t[small], kind="stable")]  # the rows, grouped by step
    n = order.size
    rows, cols, vals = [np.arange(n)], [c0 + order], [np.ones(n)]
    if d0 is not None and n:
        _, first = np.unique(cells.t[order], return_index=True)
        for a, b in zip(first, [*first[1:], n]):
            q = b - a  # EVs plugged in at this step (one cell each)
            if q < 2:
                continue
            others = np.broadcast_to(order[a:b], (q, q))[~np.eye(q, dtype=bool)]
            rows.append(np.repeat(np.arange(a, b), q - 1))
            cols.append(d0 + others)
            vals.append(np.repeat(-fleet.charger_kw[cells.ev[order[a:b]]] / min_kw, q - 1))
    return _Rows(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals),
                 np.full(n, -_INF), np.zeros(n))


def _layout(m: int, *, v2g: bool, relaxed: bool) -> dict[str, int]:
    """Column offsets of the variable blocks, each ``m`` long, in model order."""
    names = ["c"] if relaxed else ["c", "u"]
    if v2g:
        names += ["d", "e"] if relaxed else ["d", "w", "e"]
    return {name: i * m for i, name in enumerate(names)}


def _build_lp(fleet: EvFleet, cells: _Cells, head: np.ndarray, foot: np.ndarray,
              price: np.ndarray, *, step_h: float, v2g: bool, min_kw: float, efficiency: float,
              footroom_factor: float, relaxed: bool, cuts: bool = True,
              caps: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[_HighsLp, dict[str, int]]:
    """Assemble the model as ``passModel`` arguments (CSC matrix) and its column layout.

    ``relaxed`` builds the LP relaxation projected onto the power and energy columns: with the
    binaries continuous, ``min_kw*u <= c <= P*u``, ``min_kw*w <= d <= P*w``, ``u + w <= 1``
    hold for some ``u, w`` exactly when ``c + d <= P`` (take ``u = c/P``, ``w = d/P``), so
    the binaries and their rows are dropped; the optimum is that of the LP relaxation.
    ``cuts``: add `_small_headroom_rows` (valid for the MILP only, so not for ``model="lp"``,
    whose schedules may use powers below ``min_kw``). ``caps``: (charge, discharge) caps per
    step on the zone's summed charging and discharging (inf: none).
    """
    m, steps = cells.m, head.size
    cols = _layout(m, v2g=v2g, relaxed=relaxed)
    power_max = fleet.charger_kw[cells.ev]
    tie = _TIE_BREAK * step_h * cells.t / steps
    e_low = np.zeros(m)
    e_low[cells.last] = fleet.e_end_kwh
    spec = {  # name: (cost, lower, upper, integrality)
        "c": (step_h * price[cells.t] + tie, 0.0, power_max, 0),
        "u": (0.0, 0.0, 1.0, 1),
        "d": (-step_h * price[cells.t] + tie, 0.0, power_max, 0),
        "w": (0.0, 0.0, 1.0, 1),
        "e": (0.0, e_low, fleet.battery_kwh[cells.ev], 0),
    }
    columns = [np.broadcast_to(np.asarray(spec[name][j], dtype=float), (m,))
               for j in range(4) for name in cols]
    cost, lower, upper, integrality = (np.concatenate(columns[j * len(cols):(j + 1) * len(cols)])
                                       for j in range(4))
    blocks = _constraint_rows(fleet, cells, cols, head, foot, step_h=step_h, min_kw=min_kw,
                              efficiency=efficiency, footroom_factor=footroom_factor)
    if caps is not None:
        blocks.append(_cap_rows(cells, caps[0], cols["c"]))
        if "d" in cols:
            blocks.append(_cap_rows(cells, caps[1], cols["d"]))
    if cuts:
        blocks.append(_small_headroom_rows(fleet, cells, head, min_kw, cols["c"], cols.get("d")))
    return _to_highs_lp(blocks, cost, lower, upper, integrality.astype(np.int32)), cols


def _constraint_rows(fleet: EvFleet, cells: _Cells, cols: dict[str, int], head: np.ndarray,
                     foot: np.ndarray, *, step_h: float, min_kw: float, efficiency: float,
                     footroom_factor: float) -> list[_Rows]:
    """Row blocks of the model whose columns are laid out as ``cols``."""
    blocks = []
    if "u" in cols:
        blocks.append(_power_rows(cells, fleet.charger_kw, min_kw, cols["c"], cols["u"]))
    if "w" in cols:
        blocks += [_power_rows(cells, fleet.charger_kw, min_kw, cols["d"], cols["w"]),
                   _exclusive_rows(cells, cols["u"], cols["w"])]
    elif "d" in cols:
        blocks.append(_shared_charger_rows(fleet, cells, cols["c"], cols["d"]))
    if "e" in cols:
        blocks.append(_dynamic_energy_rows(fleet, cells, step_h, efficiency,
                                           cols["c"], cols["d"], cols["e"]))
    else:
        blocks.append(_total_energy_rows(fleet, cells, step_h, efficiency))
    blocks.append(_zone_rows(cells, head, foot, footroom_factor, cols["c"], cols.get("d")))
    return blocks


def _to_highs_lp(blocks: list[_Rows], cost: np.ndarray, col_lower: np.ndarray,
                 col_upper: np.ndarray, integrality: np.ndarray) -> _HighsLp:
    """Stack row blocks into one CSC matrix; return the arguments of ``Highs.passModel``.

    They are (num_col, num_row, num_nz, a_format, sense, offset, col_cost, col_lower,
    col_upper, row_lower, row_upper, a_start, a_index, a_value, integrality).
    """
    offsets = np.cumsum([0] + [b.lower.size for b in blocks])
    num_row, num_col = int(offsets[-1]), cost.size
    rows = np.concatenate([b.row + o for b, o in zip(blocks, offsets[:-1])])
    a = sp.coo_matrix((np.concatenate([b.val for b in blocks]),
                       (rows, np.concatenate([b.col for b in blocks]))),
                      shape=(num_row, num_col)).tocsc()
    a.sum_duplicates()
    return _HighsLp(num_col=num_col, num_row=num_row, num_nz=int(a.nnz),
                    a_format=int(highspy.MatrixFormat.kColwise),
                    sense=int(highspy.ObjSense.kMinimize), offset=0.0, col_cost=cost,
                    col_lower=col_lower, col_upper=col_upper,
                    row_lower=np.concatenate([b.lower for b in blocks]),
                    row_upper=np.concatenate([b.upper for b in blocks]),
                    a_start=a.indptr.astype(np.int32), a_index=a.indices.astype(np.int32),
                    a_value=a.data.astype(float), integrality=integrality.astype(np.int32))


class _Run(NamedTuple):
    """One HiGHS run: status text, column values (None without a solution), objective of the
    model including the tie-break, relative MIP gap, wall seconds, the LP's reduced costs and
    the MIP's dual bound."""

    status: str
    x: np.ndarray | None
    objective: float
    gap: float
    seconds: float
    reduced_cost: np.ndarray | None = None
    dual_bound: float = np.nan


@functools.lru_cache(maxsize=1)
def _silence_banner() -> None:
    """Make the process's first HiGHS object with stdout closed: HiGHS prints its banner
    from the constructor, before any option can turn output off."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _run_highs(lp: _HighsLp, options: dict[str, float | int],
               start: np.ndarray | None = None) -> _Run:
    """Solve the model ``lp``, optionally from the MIP start ``start``."""
    _silence_banner()
    h = highspy.Highs()
    for key, value in {"output_flag": False, "log_to_console": False, **options}.items():
        if h.setOptionValue(key, value) == highspy.HighsStatus.kError:
            raise SolverError(f"HiGHS rejected option {key}={value!r}")
    if h.passModel(*lp) == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the EV schedule model (passModel error)")
    if start is not None:
        h.setSolution(start.size, np.arange(start.size, dtype=np.int32), start)
    started = time.perf_counter()
    run_status = h.run()
    seconds = time.perf_counter() - started
    model_status = h.getModelStatus()
    if run_status == highspy.HighsStatus.kError or model_status not in _STATUS:
        raise SolverError(f"HiGHS failed: run status {run_status.name}, model status "
                          f"{h.modelStatusToString(model_status)}")
    info = h.getInfo()
    integer = bool(np.any(lp.integrality))
    has_solution = info.primal_solution_status == highspy.kSolutionStatusFeasible
    if model_status != _MS.kOptimal and not (integer and has_solution):
        return _Run(_STATUS[model_status], None, np.nan, np.nan, seconds)
    solution = h.getSolution()
    x = np.asarray(solution.col_value, dtype=float)
    gap = float(info.mip_gap) if integer else 0.0
    reduced = None if integer else np.asarray(solution.col_dual, dtype=float)
    dual = float(info.mip_dual_bound) if integer else float(info.objective_function_value)
    return _Run(_STATUS[model_status], x, float(info.objective_function_value), gap, seconds,
                reduced, dual)


def _solve_milp(relaxed: tuple[_HighsLp, dict[str, int]],
                full: tuple[_HighsLp, dict[str, int]], options: dict[str, float | int],
                *, m: int, min_kw: float, feasible_only: bool = False,
                full_milp: bool = True) -> _Run:
    """LP bound, then restricted MILPs, then (only if still not within the gap) the full MILP.

    With ``feasible_only`` the first schedule found ends the search (status ``"feasible"``);
    the full MILP then stops at its first incumbent (``mip_max_improving_sols = 1``). Without
    ``full_milp`` a feasibility search stops before the full MILP (status ``"not_found"``, no
    solution, when the restricted MILPs found no schedule).

    1. The LP relaxation gives a lower bound; if it is infeasible so is the MILP.
    2. Restricted MILPs (RENS-like) fix binaries from the LP solution (`_fix_binaries`), first
       every zero-power cell off ("tight"), then only those with a positive reduced cost
       ("wide"). Their optima are feasible schedules; the first within ``mip_gap x scale`` of
       the LP bound is returned (``scale``: the LP schedule's gross value, `_cost_scale`).
       When the tight one found a schedule but not close enough, the wide one only looks for
       a close one: ``objective_bound`` prunes the rest, sub-MIP heuristics are off (they
       took 5 s of a 6 s kept solve, to return the tight one's schedule).
    3. Otherwise the full MILP runs, warm-started from the best restricted schedule.

    Parameters ``relaxed`` and ``full`` are (``passModel`` arguments, column layout) pairs.
    """
    deadline = time.perf_counter() + float(options["time_limit"])
    bound = _run_highs(relaxed[0], options)
    if bound.x is None:
        return bound
    # the gap is measured against the gross value of the energy moved (see ScheduleResult)
    scale = max(_cost_scale(relaxed[0], bound.x), 1e-9)
    abs_gap = max(float(options["mip_rel_gap"]) * scale, _ABS_GAP)
    options = {**options, "mip_rel_gap": 0.0, "mip_abs_gap": abs_gap}
    spent, best = bound.seconds, None
    for wide in (False, True):
        remaining = {**options, "time_limit": max(deadline - time.perf_counter(), 0.0),
                     "mip_abs_gap": 0.1 * abs_gap}  # vs the LP bound
        if feasible_only:
            remaining["mip_max_improving_sols"] = 1
        elif wide and best is not None:
            # here only a schedule within the gap of the LP bound ends the search (else the
            # full MILP runs from ``best``): prune the nodes that cannot reach one, and skip
            # the sub-MIP heuristics that spent seconds looking for any schedule at the root
            remaining.update(objective_bound=bound.objective + abs_gap,
                             mip_heuristic_run_rins=False, mip_heuristic_run_rens=False)
        run = _run_highs(_fix_binaries(full, relaxed[1], bound, m=m, min_kw=min_kw, wide=wide),
                         remaining, start=None if best is None else best.x)
        spent += run.seconds
        if run.x is not None and feasible_only:
            return run._replace(status="feasible", gap=np.nan, seconds=spent)
        if run.x is not None and (best is None or run.objective < best.objective):
            best = run
        if best is not None:
            best = best._replace(gap=max(best.objective - bound.objective, 0.0) / scale,
                                 seconds=spent)
            close = best.objective - bound.objective <= abs_gap
            if close or time.perf_counter() >= deadline:
                return best._replace(status="optimal" if close else "time_limit")
    if feasible_only and not full_milp:
        return _Run("not_found", None, np.nan, np.nan, spent)
    logger.debug("restricted MILPs not within the gap: solving the full MILP")
    last = {**options, "time_limit": max(deadline - time.perf_counter(), 0.0)}
    if feasible_only:
        last["mip_max_improving_sols"] = 1
    run = _run_highs(full[0], last, start=None if best is None else best.x)
    if feasible_only and run.x is not None:
        return run._replace(status="feasible", gap=np.nan, seconds=spent + run.seconds)
    if run.x is None and best is not None:  # stopped before taking up the start
        return best._replace(status="time_limit", seconds=spent + run.seconds)
    if run.x is not None:
        lower = max(run.dual_bound, bound.objective) if np.isfinite(run.dual_bound) \
            else bound.objective
        run = run._replace(gap=max(run.objective - lower, 0.0) / scale)
    return run._replace(seconds=spent + run.seconds)


def _cost_scale(lp: _HighsLp, x: np.ndarray) -> float:
    """Gross value of a solution: ``sum |cost_j x_j|`` over the columns. [p]"""
    return float(np.abs(np.asarray(lp.col_cost, dtype=float) * x).sum())


def _with(lp: _HighsLp, *, col_lower: np.ndarray | None = None,
          col_upper: np.ndarray | None = None,
          integrality: np.ndarray | None = None) -> _HighsLp:
    """Copy of a model with new column bounds or integrality (None: kept)."""
    return lp._replace(col_lower=lp.col_lower if col_lower is None else col_lower,
                       col_upper=lp.col_upper if col_upper is None else col_upper,
                       integrality=lp.integrality if integrality is None else integrality)


def _fix_binaries(full: tuple[_HighsLp, dict[str, int]], relaxed_cols: dict[str, int],
                  bound: _Run, *, m: int, min_kw: float, wide: bool) -> _HighsLp:
    """The full model with binaries fixed from the LP relaxation's solution ``bound``.

    A binary is fixed on where the LP power is at least ``min_kw`` and off where the LP power
    is 0; with ``wide``, only zero-power cells with a positive reduced cost (dearer than the
    cells in use) are fixed off, and those as cheap as the cells in use stay free.
    """
    lp, cols = full
    lower, upper = lp.col_lower.copy(), lp.col_upper.copy()
    assert bound.x is not None and bound.reduced_cost is not None
    for power, binary in (("c", "u"), ("d", "w")):
        if binary in cols:
            lp_cells = slice(relaxed_cols[power], relaxed_cols[power] + m)
            value, reduced = bound.x[lp_cells], bound.reduced_cost[lp_cells]
            free = slice(cols[binary], cols[binary] + m)
            upper[free][(value <= _FIX_TOL) & ((reduced > _RC_TOL) | (not wide))] = 0.0
            lower[free][value >= min_kw - _FIX_TOL] = 1.0
    return _with(lp, col_lower=lower, col_upper=upper)


def _unpack(fleet: EvFleet, cells: _Cells, x: np.ndarray, steps: int,
            cols: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scatter the power columns into (ev, steps) arrays, clipped to [0, charger]."""
    m = cells.m
    charge = np.zeros((fleet.n, steps))
    discharge = np.zeros((fleet.n, steps))
    power_max = fleet.charger_kw[cells.ev]
    charge[cells.ev, cells.t] = np.clip(x[cols["c"]:cols["c"] + m], 0.0, power_max)
    if "d" in cols:
        discharge[cells.ev, cells.t] = np.clip(x[cols["d"]:cols["d"] + m], 0.0, power_max)
    return charge, discharge


def _energy_kwh(fleet: EvFleet, charge: np.ndarray, discharge: np.ndarray,
                *, step_h: float, efficiency: float) -> np.ndarray:
    """Battery energy at each step boundary, shape (ev, steps + 1), from the power arrays."""
    delta = step_h * (efficiency * charge - discharge / efficiency)
    start = fleet.e_start_kwh[:, None]
    return np.concatenate((start, start + np.cumsum(delta, axis=1)), axis=1)
