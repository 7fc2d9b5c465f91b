"""Stages 3-6 runner: zones, voltage limits, headroom/footroom and hosting, per network.

Reads the stitched load-flow files and the network manifest; writes

* ``zones/<network>/<case>.h5``     Vmin, supply-cable flow, overloads per (time, zone)
* ``headroom/<network>/limits.h5``   the voltage-constrained flow limit per zone
* ``headroom/<network>/<case>.h5``   rate, headroom, footroom, binding per (time, zone)
* ``hosting/<network>.h5`` and ``hosting/<network>_summary.csv``  quantile profiles, HP case
  and EVs hosted per zone, and the final customers table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.config import case_key, parse_case
from agileflex_hpc.errors import ConfigError, ResultsError
from agileflex_hpc.ev.costs import snapshot_costs
from agileflex_hpc.fingerprint import Fingerprints, freshness, require_fresh
from agileflex_hpc.gather import require_stitched
from agileflex_hpc.headroom import (
    Headroom,
    HpAssignment,
    VoltageLimits,
    assign_hp_case,
    compute_headroom,
    daily_energy_kwh,
    evs_estimate,
    final_customers,
    fit_voltage_limits,
    pooled_quantile_profile,
    thermal_rate_kva,
    zone_series,
)
from agileflex_hpc.headroom.zones import ZoneSeries
from agileflex_hpc.inputs.stage import inputs_path, read_customers, study_times
from agileflex_hpc.layout import layout
from agileflex_hpc.network.manifest import NetworkManifest, manifest_path, read_manifest
from agileflex_hpc.network.topology import zone_index

if TYPE_CHECKING:
    from agileflex_hpc.config import Config

__all__ = ["ZoneData", "compute_zones", "supply_signs", "headroom_for", "run_network", "run",
           "hosting_path", "output_paths", "require_upstream", "require_hosting",
           "summary_table"]

logger = logging.getLogger(__name__)

_TIME_CHUNK = 1440  # steps read at once from the stitched files (bounds memory)


@dataclass(frozen=True)
class ZoneData(ZoneSeries):
    """Stage 3 of one (network, case) over the whole study: the per-zone series
    (:class:`ZoneSeries`, (time, zone)) plus the busbar voltage (time, phase) [p.u.], the
    transformers' summed flow (time,) [kVA, + import] and convergence (time,) of each step."""

    busbar_v_pu: np.ndarray
    s_tx_kva: np.ndarray
    converged: np.ndarray


def hosting_path(out_dir: Path, network: str) -> Path:
    return layout(out_dir).hosting(network)


def compute_zones(stitched: Path, m: NetworkManifest) -> ZoneData:
    """Stage 3 over a stitched load-flow file, in time chunks."""
    if not h5io.is_complete(stitched):
        raise ResultsError(f"{stitched} is missing or incomplete: run the load flows and "
                           "their gather step first (python -m agileflex_hpc.gather CONFIG)")
    topo = m.topology
    busbar = list(m.bus_names).index(topo.busbar)
    signs = supply_signs(m)
    parts = []
    with h5py.File(stitched, "r") as f:
        g = f["loadflow"]
        for sl in h5io.time_slices(g["v_pu"].shape[0], _TIME_CHUNK):
            v, i, s = g["v_pu"][sl], g["i_a"][sl], g["s_kva"][sl]
            zs = zone_series(v, i, s, feeder_buses=list(topo.feeder_buses),
                             feeder_lines=list(topo.feeder_lines),
                             supply_lines=list(topo.supply_lines),
                             line_rating_a=m.line_rating_a, supply_sign=signs)
            parts.append((zs.vmin_pu, zs.pflow_kva, zs.n_overloaded, v[:, busbar, :],
                          g["s_tx_kva"][sl].sum(axis=1), g["converged"][sl].astype(bool)))
    vmin, pflow, over, busbar_v, s_tx, converged = (np.concatenate(c) for c in zip(*parts))
    feeder, phase = zone_index(topo.n_feeders)
    return ZoneData(vmin_pu=vmin, pflow_kva=pflow, n_overloaded=over, zone_feeder=feeder,
                    zone_phase=phase, busbar_v_pu=busbar_v, s_tx_kva=s_tx, converged=converged)


def supply_signs(m: NetworkManifest) -> list[np.ndarray]:
    """Per feeder, +1/-1 per supply cable: a line's flow is signed bus1 -> bus2 at its bus1
    end, so a cable defined from the feeder to the busbar counts negated (measured at its
    feeder end: its own losses are left out)."""
    topo = m.topology
    return [np.where(m.line_bus1[c] == topo.busbar, 1.0, -1.0) for c in topo.supply_lines]


def output_paths(cfg: Config, network: str) -> list[Path]:
    """Every file stages 3-6 write for a network."""
    run, cases = layout(cfg), list(cfg.cases.keys)
    return ([run.zones(network, c) for c in cases] + [run.headroom(network, c) for c in cases]
            + [run.limits(network), run.hosting(network)])


def require_upstream(cfg: Config, fps: Fingerprints, network: str) -> dict[str, Path]:
    """Check everything stages 3-6 read for a network; return the stitched files by case.

    Raises :class:`~agileflex_hpc.errors.StaleError` naming a stale, missing or corrupt
    manifest, inputs file, stitched file or block.
    """
    require_fresh(manifest_path(cfg.out_dir, network), fps.network(network), producer="loadflow")
    stitched = {}
    for case in cfg.cases.keys:
        require_fresh(inputs_path(cfg.out_dir, network, case), fps.inputs(network, case),
                      producer="loadflow")
        stitched[case] = require_stitched(cfg, fps, network, case)
    return stitched


def require_hosting(cfg: Config, fps: Fingerprints, network: str) -> Path:
    """The hosting file of a network after checking it is current (else StaleError)."""
    path = hosting_path(cfg.out_dir, network)
    require_fresh(path, fps.headroom(network), producer="headroom")
    return path


def run_network(cfg: Config, network: str, fps: Fingerprints | None = None) -> pd.DataFrame:
    """Stages 3-6 of one network; returns its per-zone hosting summary.

    Checks every upstream file first; outputs already computed from the same inputs are kept.
    """
    fps = fps or Fingerprints(cfg)
    stitched = require_upstream(cfg, fps, network)
    key = fps.headroom(network)
    if all(freshness(p, key) == "ok" for p in output_paths(cfg, network)):
        logger.info("%s: stages 3-6 up to date", network)
        with h5py.File(hosting_path(cfg.out_dir, network), "r") as f:
            return h5io.read_table(f["hosting"], "summary")
    m = read_manifest(manifest_path(cfg.out_dir, network))
    cases = list(cfg.cases.keys)  # every (case, sample)
    zones = {c: compute_zones(stitched[c], m) for c in cases}
    fp_attrs = fingerprint.attrs(key)
    for case, zd in zones.items():
        _write_zones(cfg, m, case, zd, fp_attrs)
    customers = m.topology.zone_customers
    limits = _fit_limits(cfg, zones, customers)
    rules, counts = np.unique(limits.rule, return_counts=True)
    logger.info("%s: voltage limits: %s", network, dict(zip(rules.tolist(), counts.tolist())))
    _write_limits(cfg, m, limits, fp_attrs)
    heads = {c: headroom_for(cfg, m, zd, limits.limit_kva) for c, zd in zones.items()}
    for case, hd in heads.items():
        _write_headroom(cfg, m, case, hd, fp_attrs)
    collapse = {c: int((~zd.converged).sum()) for c, zd in zones.items()}
    for case, n in collapse.items():
        if n:
            logger.warning("%s/%s: %d of %d steps collapsed (no power-flow solution): left out "
                           "of the voltage fit, NaN headroom, -inf in the quantile profile",
                           network, case, n, cfg.time.n_steps)
    return _hosting(cfg, m, heads, collapse, fp_attrs, zones)


def _fit_limits(cfg: Config, zones: dict[str, ZoneData], customers: np.ndarray
                ) -> VoltageLimits:
    """Stage 4 from all cases' converged (Pflow, Vmin) points."""
    pflow = np.concatenate([z.pflow_kva for z in zones.values()])
    vmin = np.concatenate([z.vmin_pu for z in zones.values()])
    ok = np.concatenate([z.converged for z in zones.values()])
    return fit_voltage_limits(pflow, vmin, customers > 0, valid=ok,
                              v_lim=cfg.headroom.v_lim_pu,
                              fallback_factor=cfg.headroom.fallback_factor)


#: how far the LV busbar's base voltage may differ from ``headroom.v_ll_kv`` [-]
LV_VOLTAGE_TOLERANCE = 0.01


def check_lv_voltage(cfg: Config, m: NetworkManifest) -> None:
    """The thermal rate takes the busbar voltage as p.u. x ``headroom.v_ll_kv``: refuse a
    network whose LV busbar has another base (a 0.433 or 0.4 kV transformer), which would
    misstate every zone's thermal rate by the ratio.

    Raises
    ------
    ConfigError
        Naming the network, both voltages and the setting to change.
    """
    v_ll = cfg.headroom.v_ll_kv
    if abs(m.busbar_kv / v_ll - 1) > LV_VOLTAGE_TOLERANCE:
        raise ConfigError(
            f"network {m.name}: its LV busbar {m.topology.busbar!r} has a base of "
            f"{m.busbar_kv:.4g} kV, but headroom.v_ll_kv is {v_ll:g} kV: the thermal rate "
            f"(thermal_factor x A x p.u. x v_ll_kv / sqrt 3) would be "
            f"{100 * abs(v_ll / m.busbar_kv - 1):.1f} % off; set headroom.v_ll_kv = "
            f"{m.busbar_kv:.4g} (networks of other LV voltages go in another job)")


def headroom_for(cfg: Config, m: NetworkManifest, zd: ZoneData, limit_kva: np.ndarray
                 ) -> Headroom:
    """Stage 5 of one case; non-converged steps are NaN (masked, not trusted)."""
    hc, topo = cfg.headroom, m.topology
    check_lv_voltage(cfg, m)
    thermal = thermal_rate_kva(np.repeat(topo.supply_rating_a, 3), zd.busbar_v_pu,
                               topo.zone_phase, thermal_factor=hc.thermal_factor,
                               v_ll_kv=hc.v_ll_kv)
    pflow = np.where(zd.converged[:, None], zd.pflow_kva, np.nan)
    return compute_headroom(pflow, thermal, limit_kva, s_tx_kva=zd.s_tx_kva,
                            tx_rating_kva=float(m.transformer_kva.sum()),
                            has_customers=topo.zone_customers > 0)


def _hosting(cfg: Config, m: NetworkManifest, heads: dict[str, Headroom],
             collapse: dict[str, int], fp_attrs: dict[str, str],
             zones: dict[str, ZoneData]) -> pd.DataFrame:
    """Stage 6: quantile profiles, HP case per zone, EVs hosted; writes hosting/<net>.h5.

    ``heads``, ``collapse`` and ``zones`` are by (case, sample) key. Each case's quantile
    profile pools the days of all its samples; with several samples, each sample is also
    planned alone (:func:`single_sample_plan`), and that spread is written beside the pooled
    answer.
    """
    cases, samples = list(cfg.cases.names), cfg.cases.samples
    hp_pct = [parse_case(c)[1] for c in cases]
    if min(hp_pct) > 0:
        logger.warning("%s: no case has 0 %% heat pumps; zones that can host none are given "
                       "the lowest-HP case %s (add a XXPV00HP case to model them)", m.name,
                       cases[int(np.argmin(hp_pct))])
    by_case = {c: [heads[case_key(c, s)] for s in range(samples)] for c in cases}
    plan = plan_from(cfg, by_case, m.topology.zone_customers)
    spread = ([single_sample_plan(cfg, m, {c: zones[case_key(c, s)] for c in cases})
               for s in range(samples)] if samples > 1 else [])
    v2g, none = int(plan.assign.v2g.sum()), int((plan.assign.rule == "none").sum())
    logger.info("%s: HP cases: %d zones rely on V2G, %d zones fit no case", m.name, v2g, none)
    zone_case = {z: cases[k] for z, k in zip(m.zone_ids, plan.assign.case_index)}
    tables = {c: read_customers(inputs_path(cfg.out_dir, m.name, c)) for c in cases}
    final = final_customers(tables, {z: zone_case[z] for z in m.zone_ids})
    binding = {c: np.concatenate([h.binding for h in hs]) for c, hs in by_case.items()}
    summary = summary_table(m, cases, binding, plan.q_head, plan.assign, plan.evs,
                            plan.chosen_energy, final)
    if spread:
        summary = with_spread(summary, cases, spread)
    per_case = np.array([sum(collapse[case_key(c, s)] for s in range(samples)) for c in cases])
    _write_hosting(cfg, m, cases, plan, final, summary, per_case, spread, fp_attrs)
    return summary


@dataclass(frozen=True)
class HostingPlan:
    """Stage 6 from a set of headroom series: quantile profiles (case, step, zone) [kVA],
    daily energy (case, zone) [kWh], the HP case per zone, the EV estimate and the energy of
    the chosen case [kWh] per zone."""

    q_head: np.ndarray
    q_foot: np.ndarray
    energy: np.ndarray
    assign: HpAssignment
    evs: np.ndarray
    chosen_energy: np.ndarray


def plan_from(cfg: Config, by_case: dict[str, list[Headroom]],
              customers: np.ndarray) -> HostingPlan:
    """Stage 6 on the headroom of each case, pooling the days of every series of a case
    (the samples) in its quantile: the ``headroom.quantile`` of days x samples."""
    hc, spd = cfg.headroom, cfg.time.steps_per_day
    cases = list(by_case)
    q_head = np.stack([pooled_quantile_profile([h.headroom_kva for h in hs], spd, q=hc.quantile)
                       for hs in by_case.values()])
    q_foot = np.stack([pooled_quantile_profile([h.footroom_kva for h in hs], spd, q=hc.quantile)
                       for hs in by_case.values()])
    energy = np.stack([daily_energy_kwh(q, step_hours=cfg.time.step_hours,
                                        efficiency=hc.efficiency) for q in q_head])
    hp_pct = np.array([parse_case(c)[1] for c in cases])
    assign = assign_hp_case(hp_pct, q_head, energy, v2g_energy_kwh=hc.v2g_energy_kwh,
                            none_case=int(np.argmin(hp_pct)))
    chosen_energy = energy[assign.case_index, np.arange(q_head.shape[2])]
    evs = evs_estimate(chosen_energy, customers, kwh_per_ev=hc.kwh_per_ev)
    return HostingPlan(q_head, q_foot, energy, assign, evs, chosen_energy)


def single_sample_plan(cfg: Config, m: NetworkManifest,
                       zones: dict[str, ZoneData]) -> HostingPlan:
    """Stages 4-6 of one sample alone (``zones`` by case): the voltage limits fitted on its
    own points, its headroom and its plan; what a study of that one draw would answer."""
    customers = m.topology.zone_customers
    limits = _fit_limits(cfg, zones, customers)
    return plan_from(cfg, {c: [headroom_for(cfg, m, zd, limits.limit_kva)]
                           for c, zd in zones.items()}, customers)


def with_spread(summary: pd.DataFrame, cases: list[str],
                spread: list[HostingPlan]) -> pd.DataFrame:
    """The summary with the spread of the per-sample plans: ``evs_min``, ``evs_median``,
    ``evs_max`` (EV estimate over samples) after ``evs_estimate``; ``case_min``,
    ``case_median``, ``case_max`` (the HP case over samples, ranked by HP % then config
    order; the median is the lower middle one, a case some sample chose) after ``case``; and
    ``hp_cases`` (each case the samples chose with how many chose it, e.g.
    ``25PV50HP x3; 25PV75HP x1``)."""
    evs = np.stack([p.evs for p in spread])  # (sample, zone)
    chosen = np.stack([p.assign.case_index for p in spread])
    rank = sorted(range(len(cases)), key=lambda k: (parse_case(cases[k])[1], k))
    position = np.argsort(rank)[chosen]  # each sample's case as its rank by HP %
    ordered = np.sort(position, axis=0)
    out = summary.copy()
    at = list(out.columns).index("evs_estimate") + 1
    for offset, (name, values) in enumerate([
            ("evs_min", evs.min(axis=0)), ("evs_median", np.median(evs, axis=0)),
            ("evs_max", evs.max(axis=0))]):
        out.insert(at + offset, name, values)
    at = list(out.columns).index("case") + 1
    for offset, (name, row) in enumerate([("case_min", 0), ("case_median",
                                                            (len(spread) - 1) // 2),
                                          ("case_max", len(spread) - 1)]):
        out.insert(at + offset, name, [cases[rank[r]] for r in ordered[row]])
    out["hp_cases"] = ["; ".join(f"{cases[k]} x{n}" for k, n in
                                 zip(*np.unique(chosen[:, z], return_counts=True)))
                       for z in range(chosen.shape[1])]
    return out


def summary_table(m: NetworkManifest, cases: list[str], binding: dict[str, np.ndarray],
                  q_head: np.ndarray, assign: HpAssignment, evs: np.ndarray, energy: np.ndarray,
                  final: pd.DataFrame) -> pd.DataFrame:
    """One row per zone: customers, binding constraint, worst quantile headroom, EVs, HPs.
    ``binding``: per case, the binding flags (time, zone) of all its samples."""
    rows = []
    step_min = 1440 // q_head.shape[1]
    for z, zid in enumerate(m.zone_ids):
        k = int(assign.case_index[z])
        prof = q_head[k, :, z]
        worst = int(np.nanargmin(prof)) if np.isfinite(prof).any() else 0
        flags_z = binding[cases[k]][:, z]
        flags, counts = np.unique(flags_z[flags_z != b""], return_counts=True)
        in_zone = final["zone"] == zid
        rows.append(dict(
            zone=zid, customers=int(m.topology.zone_customers[z]), case=cases[k],
            rule=str(assign.rule[z]), v2g=bool(assign.v2g[z]),
            binding=flags[np.argmax(counts)].decode() if len(flags) else "",
            worst_headroom_kva=float(prof[worst]), worst_time=f"{worst * step_min // 60:02d}:"
            f"{worst * step_min % 60:02d}", energy_kwh=float(energy[z]), evs_estimate=int(evs[z]),
            hps=int(final.loc[in_zone, "has_hp"].sum()),
        ))
    return pd.DataFrame(rows)


def run(cfg: Config) -> dict[str, pd.DataFrame]:
    """Stages 3-6 for every network of the job; returns the summaries by network.

    Every network's upstream files are checked before anything is written.
    """
    fps = Fingerprints(cfg)
    for net in cfg.networks:
        require_upstream(cfg, fps, net.name)
    out = {}
    for net in cfg.networks:
        out[net.name] = run_network(cfg, net.name, fps)
        logger.debug("hosting of %s:\n%s", net.name, out[net.name].to_string(index=False))
    snapshot_costs(cfg)  # the EV stage's split weights, fixed before it starts
    return out


# ------------------------------------------------------------------------- writers
def _time_and_zone(f: h5py.File, cfg: Config, m: NetworkManifest,
                   file: schema.FileSchema) -> None:
    file.write_coord(f, "time", h5io.time_to_epoch(study_times(cfg)))
    file.write_coord(f, "zone", np.array(m.zone_ids))
    file.write_coord(f, "phase", np.array([1, 2, 3], dtype=np.int8))


def _write_zones(cfg: Config, m: NetworkManifest, case: str, zd: ZoneData,
                 fp_attrs: dict[str, str] | None = None) -> None:
    path = layout(cfg).zones(m.name, case)
    attrs = h5io.provenance(cfg, network=m.name, case=case, **(fp_attrs or {}))
    with h5io.atomic_h5(path, attrs=attrs) as f:
        _time_and_zone(f, cfg, m, schema.ZONES)
        g = f.create_group("zones")
        for name, data in [
            ("vmin_pu", zd.vmin_pu.astype(np.float32)),
            ("pflow_kva", zd.pflow_kva.astype(np.float32)),
            ("n_overloaded", zd.n_overloaded),
            ("busbar_v_pu", zd.busbar_v_pu),
            ("s_tx_kva", zd.s_tx_kva),
            ("converged", zd.converged.astype(np.uint8)),
            ("customers", m.topology.zone_customers),
        ]:
            schema.ZONES.write_var(g, name, data)


def _write_limits(cfg: Config, m: NetworkManifest, lim: VoltageLimits,
                  fp_attrs: dict[str, str]) -> None:
    path = layout(cfg).limits(m.name)
    attrs = h5io.provenance(cfg, network=m.name, v_lim_pu=cfg.headroom.v_lim_pu, **fp_attrs)
    with h5io.atomic_h5(path, attrs=attrs) as f:
        schema.LIMITS.write_coord(f, "zone", np.array(m.zone_ids))
        g = f.create_group("limits")
        for v in schema.LIMITS.group("limits"):
            name = v.name.rpartition("/")[2]
            schema.LIMITS.write_var(g, name, getattr(lim, name), compress=False)


def _write_headroom(cfg: Config, m: NetworkManifest, case: str, hd: Headroom,
                    fp_attrs: dict[str, str]) -> None:
    path = layout(cfg).headroom(m.name, case)
    attrs = h5io.provenance(cfg, network=m.name, case=case, **fp_attrs)
    with h5io.atomic_h5(path, attrs=attrs) as f:
        _time_and_zone(f, cfg, m, schema.HEADROOM)
        g = f.create_group("headroom")
        for v in schema.HEADROOM.group("headroom"):
            name = v.name.rpartition("/")[2]
            data = getattr(hd, name)
            data = data.astype(np.float32) if data.dtype.kind == "f" else data
            schema.HEADROOM.write_var(g, name, data)


def _write_hosting(cfg: Config, m: NetworkManifest, cases: list[str], plan: HostingPlan,
                   final: pd.DataFrame, summary: pd.DataFrame, collapse: np.ndarray,
                   spread: list[HostingPlan], fp_attrs: dict[str, str]) -> None:
    path = hosting_path(cfg.out_dir, m.name)
    spd = cfg.time.steps_per_day
    attrs = h5io.provenance(cfg, network=m.name, quantile=cfg.headroom.quantile, **fp_attrs)
    with h5io.atomic_h5(path, attrs=attrs) as f:
        schema.HOSTING.write_coord(f, "case", np.array(cases))
        schema.HOSTING.write_coord(f, "step", np.arange(spd) * cfg.time.step_minutes)
        schema.HOSTING.write_coord(f, "zone", np.array(m.zone_ids))
        if spread:
            schema.HOSTING.write_coord(f, "sample", np.arange(len(spread), dtype=np.int64))
        g = f.create_group("hosting")
        assign = plan.assign
        for name, data in [
            ("headroom_q_kva", plan.q_head), ("footroom_q_kva", plan.q_foot),
            ("energy_kwh", plan.energy), ("case_index", assign.case_index),
            ("v2g", assign.v2g.astype(np.uint8)), ("rule", assign.rule),
            ("evs_estimate", plan.evs), ("customers", m.topology.zone_customers),
            ("collapse_steps", collapse),
        ] + ([("sample_evs_estimate", np.stack([p.evs for p in spread])),
              ("sample_case_index", np.stack([p.assign.case_index for p in spread]))]
             if spread else []):
            schema.HOSTING.write_var(g, name, data, compress=False)
        h5io.write_table(g, "customers_final", final)
        h5io.write_table(g, "summary", summary)
    from agileflex_hpc.ev.stage import write_hosting_answer

    write_hosting_answer(cfg, m.name)  # the CSV: the estimate, and stage 7's answer (NA for now)
