"""Stage 7 runner: the EV attempts of every zone, split over workers, one file per zone.

Reads ``hosting/<network>.h5`` (assigned case, EVs hosted, quantile head/footroom profiles)
and writes ``ev/<network>/<zone>.h5``: every attempt, the final fleet and its schedule on the
noon-to-noon day. Each zone's seed is ``[run.seed, network index, zone index]``, so results
do not depend on how the zones were split.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.ev.attempts import AttemptsResult, FleetFactory, run_attempts
from agileflex_hpc.ev.costs import read_costs, zone_costs
from agileflex_hpc.ev.fleet import EvFleet, draw_fleet, load_fleet_csv
from agileflex_hpc.ev.tariff import tariff_p_per_kwh
from agileflex_hpc.fingerprint import Fingerprints, freshness
from agileflex_hpc.headroom.stage import hosting_path, require_hosting
from agileflex_hpc.horizon import from_midnight, horizon_minutes
from agileflex_hpc.layout import layout
from agileflex_hpc.partition import items_for
from agileflex_hpc.stealing import StealingQueue

if TYPE_CHECKING:
    from mpi4py import MPI

    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config

__all__ = ["ZoneTask", "ZoneRun", "EvResult", "run_ev", "format_runs", "format_answer",
           "list_zone_tasks", "tasks_for", "zone_path", "zone_current", "zone_profiles",
           "run", "read_zone", "write_zone", "hosting_answer", "write_hosting_answer",
           "v2g_energy_kwh"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZoneTask:
    """One zone's attempts: the global order is network (config order), zone."""

    index: int
    network: str
    network_index: int
    zone: str
    zone_index: int
    n_start: int  # stage 6's estimate, capped at n_max
    customers: int
    n_max: int  # most EVs to try: the customers, or ev.max_evs where smaller
    cost: float = 1.0  # split weight: measured search seconds, else scaled n_start + 1 (costs.py)


def zone_path(out_dir: Path, network: str, zone: str) -> Path:
    return layout(out_dir).ev_zone(network, zone)


def zone_current(cfg: Config, fps: Fingerprints, task: ZoneTask) -> bool:
    """Whether the zone's file holds the answer for the current inputs (a run skips it)."""
    return freshness(zone_path(cfg.out_dir, task.network, task.zone),
                     fps.ev_zone(task.network, task.zone)) == "ok"


def list_zone_tasks(cfg: Config, fps: Fingerprints | None = None) -> list[ZoneTask]:
    """Every zone with customers, in the fixed order, with its starting EV count and its split
    weight (the measured seconds of ``ev/costs.csv``, see `agileflex_hpc.ev.costs`).

    Checks first that every hosting file is current (else StaleError naming it).
    """
    fps = fps or Fingerprints(cfg)
    tasks: list[ZoneTask] = []
    for k, net in enumerate(cfg.networks):
        with h5py.File(require_hosting(cfg, fps, net.name), "r") as f:
            zones = h5io.decode_strings(f["zone"][()])
            evs = f["hosting/evs_estimate"][()]
            customers = f["hosting/customers"][()]
        for z, zone in enumerate(zones):
            if customers[z] > 0:
                n_max = int(customers[z])
                n_max = n_max if cfg.ev.max_evs <= 0 else min(n_max, cfg.ev.max_evs)
                tasks.append(ZoneTask(len(tasks), net.name, k, zone, z, min(int(evs[z]), n_max),
                                      int(customers[z]), n_max))
    weights = zone_costs([(t.network, t.zone) for t in tasks], [t.n_start for t in tasks],
                         read_costs(cfg))
    return [dataclasses.replace(t, cost=w) for t, w in zip(tasks, weights)]


def tasks_for(worker: int, n_workers: int, tasks: list[ZoneTask]) -> list[ZoneTask]:
    """This worker's zones, by the one partition function: dearest first onto the least-loaded
    worker (by ``ZoneTask.cost``; zones are independent, so no contiguity is needed), each
    worker's in the global order."""
    return items_for(worker, n_workers, tasks, contiguous=False)


@dataclass
class EvResult:
    """What the EV stage did: every zone's run (all workers' on the root) and, where this
    process group covered every zone, each network's hosting answer table."""

    runs: list[ZoneRun]
    answers: dict[str, pd.DataFrame] = field(default_factory=dict)


def run_ev(cfg: Config, workers: Workers) -> EvResult:
    """Stage 7 for this process's share of the zones (split by cost), with progress (a bar on
    a terminal, else log lines); the root gathers every worker's runs and, where this process
    group covered every zone, writes each network's answer (``hosting/<net>_summary.csv``)."""
    from agileflex_hpc.loadflow.progress import Progress

    tasks, fps = _listed_by_root(cfg, workers)
    mine = tasks_for(workers.index, workers.count, tasks)
    # the bar fills and the ETA counts by each zone's split weight (its measured search time
    # where a previous round has one): zones take from 0.05 s to seconds
    cost = {(t.network, t.zone): t.cost for t in tasks}
    bar = Progress(len(mine), workers, label="ev", unit="zone",
                   total_work=sum(t.cost for t in mine))
    attempts = [0]

    def step(zone_run: ZoneRun) -> None:
        attempts[0] += zone_run.attempts
        bar.advance(1, up_to_date=not zone_run.solved, attempts=attempts[0],
                    work=cost[zone_run.network, zone_run.zone])

    runs = run(cfg, worker=workers.index, n_workers=workers.count, tasks=tasks, progress=step,
               fps=fps, comm=workers.comm,
               moved=lambda zones, sign: bar.resize(sign * len(zones),
                                                     work=sign * sum(z.cost for z in zones)))
    bar.close()
    if workers.comm is not None:
        order = {(t.network, t.zone): t.index for t in tasks}
        runs = sorted((r for part in workers.comm.gather(runs, root=0) or [] for r in part),
                      key=lambda r: order[(r.network, r.zone)])
        workers.comm.Barrier()
    result = EvResult(runs)
    if workers.is_root and workers.covers_all:
        result.answers = {net.name: write_hosting_answer(cfg, net.name)
                          for net in cfg.networks}
    return result


def zone_uses_v2g(cfg: Config, network: str, zone_index: int) -> bool:
    """V2G on for this zone: ``ev.v2g`` always, never, or auto (the hosting stage's flag)."""
    if cfg.ev.v2g != "auto":
        return cfg.ev.v2g == "always"
    with h5py.File(hosting_path(cfg.out_dir, network), "r") as f:
        return bool(f["hosting/v2g"][zone_index])


def zone_profiles(cfg: Config, network: str, zone_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(headroom, footroom) [kW] of the zone's assigned case on the noon-to-noon horizon.

    The quantile profiles are per phase in kVA; EVs charge at ``loadflow.ev_pf``, so the
    real-power room is kVA x ev_pf. The horizon starts at 12:00 (profile index steps/2).
    """
    with h5py.File(hosting_path(cfg.out_dir, network), "r") as f:
        case = int(f["hosting/case_index"][zone_index])
        head = f["hosting/headroom_q_kva"][case, :, zone_index]
        foot = f["hosting/footroom_q_kva"][case, :, zone_index]
    pf = cfg.loadflow.ev_pf
    return from_midnight(head) * pf, from_midnight(foot) * pf


def _price(cfg: Config) -> np.ndarray:
    ev = cfg.ev
    return tariff_p_per_kwh(steps=cfg.time.steps_per_day, step_minutes=cfg.time.step_minutes,
                            start_hour=12, green=ev.green, amber=ev.amber, red=ev.red,
                            energy=ev.energy)


def session_sampler(cfg: Config) -> FleetFactory:
    """Fleet factory: synthetic fleets (the job's kWh/EV/day and efficiency), or draws from
    the configured session tables.

    Each attempt samples ``n`` sessions without replacement (with replacement where the table
    has fewer rows than ``n``) with the attempt's random generator.
    """
    ev = cfg.ev
    if ev.sessions_csv is None:
        return functools.partial(draw_fleet, steps=cfg.time.steps_per_day,
                                 step_minutes=cfg.time.step_minutes,
                                 mean_daily_kwh=cfg.headroom.kwh_per_ev, efficiency=ev.efficiency)
    assert ev.vehicles_csv is not None, "config check: sessions_csv comes with vehicles_csv"
    table = load_fleet_csv(ev.sessions_csv, ev.vehicles_csv,
                           step_minutes=cfg.time.step_minutes, steps=cfg.time.steps_per_day)

    def draw(n: int, rng: np.random.Generator) -> EvFleet:
        rows = rng.choice(table.n, size=n, replace=n > table.n)
        return EvFleet(**{f.name: getattr(table, f.name)[rows] for f in fields(EvFleet)})

    return draw


def solve_zone(cfg: Config, task: ZoneTask, *, successes: int | None = None) -> AttemptsResult:
    """The attempts search of one zone (a -inf quantile, a collapsing time of day, is no room)."""
    from agileflex_hpc.replan import read_caps

    head, foot = zone_profiles(cfg, task.network, task.zone_index)
    caps = read_caps(cfg, task.network)[0]
    cap = (None, None, None) if caps is None else tuple(  # net import, charge, discharge
        None if np.isnan(c).all() else np.nan_to_num(c, nan=np.inf)
        for c in caps[:, task.zone_index])
    ev = cfg.ev
    return run_attempts(
        task.n_start, head, foot, _price(cfg), fleet_factory=session_sampler(cfg),
        seed=[cfg.run.seed, task.network_index, task.zone_index], n_max=task.n_max,
        successes_needed=successes or ev.successes_needed, max_attempts=ev.max_attempts,
        step_minutes=cfg.time.step_minutes, model=ev.model,
        v2g=zone_uses_v2g(cfg, task.network, task.zone_index), min_kw=ev.min_kw,
        efficiency=ev.efficiency, footroom_factor=ev.footroom_factor,
        v2g_premium=ev.v2g_premium, mip_gap=ev.mip_gap, max_nodes=ev.max_nodes,
        time_limit_s=ev.time_limit_s, threads=ev.threads,
        import_cap_kw=cap[0], charge_cap_kw=cap[1], discharge_cap_kw=cap[2],
    )


def v2g_energy_kwh(head_kw: np.ndarray, net_kw: np.ndarray | None, *,
                   step_hours: float) -> tuple[float, float]:
    """V2G energy a zone's plan asks for and what its schedule delivers.

    Parameters
    ----------
    head_kw : ndarray, shape (steps,)
        Zone headroom on the horizon (-inf: a collapsing time of day, left out). [kW]
    net_kw : ndarray, shape (steps,), or None
        The schedule's net EV power, + charging (None: no EVs). [kW]
    step_hours : float
        Step length. [h]

    Returns
    -------
    requested_kwh, delivered_kwh : float
        Energy of the negative headroom, sum of max(-headroom, 0) x step; and the part of it
        the schedule's net export covers, sum of min(max(-net, 0), max(-headroom, 0)) x step.
        [kWh]
    """
    deficit = np.clip(-np.where(np.isfinite(head_kw), head_kw, 0.0), 0.0, None)
    export = np.zeros_like(deficit) if net_kw is None else np.clip(-net_kw, 0.0, None)
    return (float(deficit.sum() * step_hours),
            float(np.minimum(export, deficit).sum() * step_hours))


@dataclass(frozen=True)
class ZoneRun:
    """What the EV stage did for one zone: ``solved`` False when its file was current."""

    network: str
    zone: str
    n_start: int
    n_evs: int
    attempts: int
    wall_s: float
    solved: bool


def _listed_by_root(cfg: Config, workers: Workers) -> tuple[list[ZoneTask], Fingerprints]:
    """Every zone task and the fingerprints that checked them. Under MPI the root lists and
    checks (every network's files hashed once, not once per rank: 0.35 s for 62 networks)
    and sends both to every rank; an error there aborts every rank (`cli.run_stage`)."""
    fps = Fingerprints(cfg)
    if workers.comm is None:
        return list_zone_tasks(cfg, fps), fps
    tasks = list_zone_tasks(cfg, fps) if workers.is_root else None
    tasks, fps = workers.comm.bcast((tasks, fps), root=0)
    assert tasks is not None
    return tasks, fps


def run(cfg: Config, *, worker: int = 0, n_workers: int = 1, tasks: list[ZoneTask] | None = None,
        progress: Callable[[ZoneRun], None] | None = None,
        fps: Fingerprints | None = None, comm: MPI.Intracomm | None = None,
        moved: Callable[[list[ZoneTask], int], None] | None = None) -> list[ZoneRun]:
    """Solve this worker's zones unless their file holds the answer for the same inputs.

    ``tasks``: every zone of the job (default :func:`list_zone_tasks`); ``fps``: the
    fingerprints that listed them (default: new). Returns one :class:`ZoneRun` per zone this
    worker solved or found current; ``progress`` is called after each. With ``comm`` (every
    rank of it calls this), a rank that runs out takes unstarted zones from busy ranks
    (:mod:`agileflex_hpc.stealing`; ``moved(zones, sign)`` reports them).
    """
    fps = fps or Fingerprints(cfg)
    mine = tasks_for(worker, n_workers, list_zone_tasks(cfg, fps) if tasks is None else tasks)
    runs = []
    for task in StealingQueue(mine, comm, moved=moved):
        if zone_current(cfg, fps, task):
            with h5py.File(zone_path(cfg.out_dir, task.network, task.zone), "r") as f:
                runs.append(ZoneRun(task.network, task.zone, task.n_start, int(f.attrs["n_evs"]),
                                    0, 0.0, False))
            if progress is not None:
                progress(runs[-1])
            continue
        t0 = time.perf_counter()
        result = solve_zone(cfg, task)
        wall_s = time.perf_counter() - t0
        write_zone(zone_path(cfg.out_dir, task.network, task.zone), cfg, task, result,
                   fp_attrs=fingerprint.attrs(fps.ev_zone(task.network, task.zone)),
                   wall_s=wall_s)
        logger.info("%s/%s: %d EVs hosted%s (estimate %d, searched %s, %d attempts, %s) in "
                    "%.1f s", task.network, task.zone, result.n,
                    "" if result.confirmed else " UNCONFIRMED", task.n_start, result.direction,
                    len(result.attempts), result.stop_reason, wall_s)
        runs.append(ZoneRun(task.network, task.zone, task.n_start, result.n,
                            len(result.attempts), wall_s, True))
        if progress is not None:
            progress(runs[-1])
    return runs


def write_zone(path: Path, cfg: Config, task: ZoneTask, res: AttemptsResult, *,
               fp_attrs: dict[str, str] | None = None, wall_s: float = float("nan")) -> None:
    """Write one zone's attempts, final fleet and schedule (see the module docstring);
    ``wall_s``: the search's time, the zone's measured split weight. [s]"""
    head, _ = zone_profiles(cfg, task.network, task.zone_index)
    net = None if res.schedule is None else res.schedule.net_kw.sum(axis=0)
    requested, delivered = v2g_energy_kwh(head, net, step_hours=cfg.time.step_hours)
    attrs = h5io.provenance(cfg, network=task.network, zone=task.zone, n_start=task.n_start,
                            n_evs=res.n, confirmed=int(res.confirmed), direction=res.direction,
                            stop_reason=res.stop_reason, customers=task.customers,
                            n_max=task.n_max, v2g_requested_kwh=requested,
                            v2g_delivered_kwh=delivered, wall_s=float(wall_s),
                            **(fp_attrs or {}))
    steps = cfg.time.steps_per_day
    with h5io.atomic_h5(path, attrs=attrs) as f:
        schema.EV_ZONE.write_coord(f, "step", horizon_minutes(steps, cfg.time.step_minutes))
        g = f.create_group("evcharging")
        h5io.write_table(g, "attempts", res.attempts_frame())
        fleet = res.fleet
        if fleet is not None and fleet.n:
            h5io.write_table(g, "fleet", pd.DataFrame({
                "name": fleet.name, "t_in": fleet.t_in, "t_out": fleet.t_out,
                "e_start_kwh": fleet.e_start_kwh, "e_end_kwh": fleet.e_end_kwh,
                "battery_kwh": fleet.battery_kwh, "charger_kw": fleet.charger_kw}))
            sch = res.schedule
            assert sch is not None, "run_attempts keeps a fleet with its schedule"
            schema.EV_ZONE.write_coord(f, "ev", fleet.name)
            for name, data in [("charge_kw", sch.charge_kw), ("discharge_kw", sch.discharge_kw)]:
                schema.EV_ZONE.write_var(g, name, data.astype(np.float32))
            g.attrs.update(objective_p=sch.objective_p, mip_gap=sch.mip_gap,
                           solve_time_s=sch.solve_time_s, status=sch.status)


ANSWER_COLUMNS = ["evs_hosted", "confirmed", "searched", "v2g_requested_kwh",
                  "v2g_delivered_kwh"]


def hosting_answer(cfg: Config, network: str) -> pd.DataFrame:
    """The hosting summary of stage 6 with stage 7's answer beside the estimate, per zone.

    Columns added to the stage-6 table: ``evs_hosted`` (the largest confirmed number of EVs,
    the answer), ``confirmed`` (False: a solver limit left an attempt unproven), ``searched``
    (``up`` or ``down`` from the estimate), ``v2g_requested_kwh`` and ``v2g_delivered_kwh``
    (energy of the negative headroom and the part the schedule's net export covers). Zones
    without customers host 0; zones whose EV file is missing or stale show <NA>.
    """
    fps = Fingerprints(cfg)
    with h5py.File(require_hosting(cfg, fps, network), "r") as f:
        table = h5io.read_table(f["hosting"], "summary")
    extra: dict[str, list[object]] = {c: [] for c in ANSWER_COLUMNS}
    for zone, customers in zip(table["zone"], table["customers"]):
        path = zone_path(cfg.out_dir, network, zone)
        if customers == 0 or freshness(path, fps.ev_zone(network, zone)) != "ok":
            none = customers == 0
            for c, v in zip(ANSWER_COLUMNS, (0, True, "none", 0.0, 0.0)):
                extra[c].append(v if none else pd.NA)
            continue
        with h5py.File(path, "r") as f:
            a = f.attrs
            values = (int(a["n_evs"]), bool(a["confirmed"]), str(a["direction"]),
                      float(a["v2g_requested_kwh"]), float(a["v2g_delivered_kwh"]))
        for c, v in zip(ANSWER_COLUMNS, values):
            extra[c].append(v)
    out = table.copy()
    out.insert(out.columns.get_loc("evs_estimate") + 1, "evs_hosted",
               pd.array(extra.pop("evs_hosted"), dtype="Int64"))
    for c in ANSWER_COLUMNS[1:]:
        out[c] = extra[c]
    return out


def write_hosting_answer(cfg: Config, network: str) -> pd.DataFrame:
    """Write :func:`hosting_answer` to ``hosting/<network>_summary.csv``; return it."""
    table = hosting_answer(cfg, network)
    h5io.write_csv_atomic(table, layout(cfg).hosting_csv(network))
    return table


def read_zone(path: Path) -> dict[str, Any]:
    """A zone file as a dict: attrs, attempts, and fleet/charge/discharge where EVs exist."""
    with h5py.File(path, "r") as f:
        keys = ("network", "zone", "n_evs", "n_start", "confirmed", "direction", "stop_reason",
                "v2g_requested_kwh", "v2g_delivered_kwh")
        attrs = {k: f.attrs[k] for k in keys}
        attrs["wall_s"] = float(f.attrs.get("wall_s", np.nan))  # NaN: not recorded
        out: dict[str, Any] = {"attrs": attrs,
                               "attempts": h5io.read_table(f["evcharging"], "attempts")}
        if "fleet" in f["evcharging"]:
            out["fleet"] = h5io.read_table(f["evcharging"], "fleet")
            out["charge_kw"] = f["evcharging/charge_kw"][()]
            out["discharge_kw"] = f["evcharging/discharge_kw"][()]
    return out


def format_runs(runs: list[ZoneRun]) -> str:
    """What the stage did: zones solved and up to date, attempts, time, the slowest zones."""
    solved = [r for r in runs if r.solved]
    lines = [f"ev summary: {len(solved)} zones solved ({sum(r.attempts for r in solved)} "
             f"attempts, {sum(r.wall_s for r in solved):.1f} s), {len(runs) - len(solved)} "
             "zones up to date"]
    for r in sorted(solved, key=lambda r: -r.wall_s)[:3]:
        lines.append(f"  slowest: {r.network}/{r.zone} {r.wall_s:.1f} s ({r.attempts} attempts, "
                     f"{r.n_evs} EVs hosted, estimate {r.n_start})")
    return "\n".join(lines)


def format_answer(table: pd.DataFrame) -> str:
    """The answer columns of a hosting summary as a fixed-width text table."""
    cols = ["zone", "customers", "case", "binding", "evs_estimate", "evs_hosted", "confirmed",
            "searched", "hps", "v2g_requested_kwh", "v2g_delivered_kwh"]
    totals = f"total: {int(table['evs_estimate'].sum())} EVs estimated, " \
             f"{int(table['evs_hosted'].fillna(0).sum())} hosted, {int(table['hps'].sum())} HPs"
    return table[cols].to_string(index=False, float_format=lambda x: f"{x:.1f}") + "\n" + totals
