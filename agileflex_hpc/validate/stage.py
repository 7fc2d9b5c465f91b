"""Stage 8 runner: validation load flows (via stage 2), stages 3 and 5 on them, and the report.

Files, under ``<out>/validation/``:

* ``inputs/<network>/<kind>.h5``   validation inputs (see :mod:`.inputs`)
* ``raw/<network>/<kind>/block_NNNNN.h5`` and ``raw/<network>/<kind>.h5``   stage-2 blocks and
  the stitched file, exactly as stage 2 writes them
* ``<network>/<kind>.h5``   stage 3 (``/zones``) and stage 5 (``/headroom``, with the stage-4
  limits of ``headroom/<network>/limits.h5``, not refitted), the zones' EV power (``/ev``),
  per-step violation flags (``/flags``) and per-bus/line worst values for maps (``/map``)
* ``<network>/report.h5``  ``/report/summary`` (one row per kind) and ``/report/zones``
* ``report.csv``  the summary rows of every network

``kind`` is ``smart`` (optimised EV schedules) or ``dumb`` (uncontrolled charging). Metric
definitions are in :mod:`.metrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.config import case_key
from agileflex_hpc.fingerprint import Fingerprints, freshness, require_fresh
from agileflex_hpc.gather import gather_all, require_stitched
from agileflex_hpc.headroom.stage import ZoneData, compute_zones, headroom_for, require_hosting
from agileflex_hpc.headroom.zones import overloaded_counts
from agileflex_hpc.inputs.stage import study_times
from agileflex_hpc.layout import layout
from agileflex_hpc.loadflow.run import LoadflowInputs, study_items
from agileflex_hpc.network.manifest import NetworkManifest, manifest_path, read_manifest
from agileflex_hpc.replan import validation_sample
from agileflex_hpc.validate import metrics
from agileflex_hpc.validate.inputs import (
    KINDS,
    ensure_validation_inputs,
    validation_inputs_path,
)

if TYPE_CHECKING:
    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config
    from agileflex_hpc.headroom.rates import Headroom

__all__ = ["FlowScan", "validation_dir", "validation_target", "kind_path", "report_h5_path",
           "report_csv_path", "proof_csv_path", "proof_table", "scan_flows", "headroom_before",
           "analyse_network", "analyse", "gather", "format_report", "REPORT_COLUMNS",
           "added_violation_flags", "worst_added", "worst_text", "near_text", "PROOF_COLUMNS"]

logger = logging.getLogger(__name__)

_TIME_CHUNK = 1440  # steps read at once from the stitched files (bounds memory)
REPORT_COLUMNS = ["network", "kind", "evs", "pct_thermal", "pct_undervoltage",
                  "pct_tx_overload", "pct_collapse", "pct_any", "v_min_customer_pu",
                  "max_line_loading_pct",
                  "v2g_requests", "v2g_fulfilled_pct", "headroom_before_min_kva",
                  "headroom_after_min_kva", "headroom_before_mean_kva", "headroom_after_mean_kva",
                  "negative_headroom_before_pct", "negative_headroom_after_pct",
                  "ev_energy_kwh", "ev_peak_kw", "steps", "nonconverged"]
PROOF_COLUMNS = ["network", "violation", "zone", "steps", "first", "last", "worst_element",
                 "worst_time", "worst_smart", "worst_baseline"]
_DETAIL_STEPS = 256  # added steps read at once for the proof's worst values (bounds memory)


@dataclass
class FlowScan:
    """Per-step flags and per-element worst values of one validation load-flow file.

    Attributes
    ----------
    flags : dict of str -> ndarray of bool, shape (time,)
        ``thermal``, ``undervoltage``, ``transformer``, ``collapse``, ``any`` (see
        :mod:`.metrics`).
    converged : ndarray of bool, shape (time,)
    customer_under : ndarray of bool, shape (time, customer)
        Customers under ``v_min_pu`` (for the proof).
    clear : dict of str -> ndarray
        For the proof, past the limit by more than its tolerance: ``thermal`` (time, zone)
        feeder lines over ``(1 + tolerance) x`` their rating on the zone's phase,
        ``undervoltage`` (time, customer) under ``v_min_pu - tolerance``, ``transformer``
        (time,) over ``(1 + tolerance) x factor x`` its rating.
    vmin_customer_pu, vmin_bus_pu : ndarray, shape (time,)
        Lowest customer / bus voltage at each step. [p.u.]
    line_loading_max_t : ndarray, shape (time,)
        Highest line loading at each step. [-]
    tx_loading_max_t : ndarray, shape (time,)
        Highest transformer loading at each step. [-]
    bus_vmin_pu : ndarray, shape (bus,)
        Lowest voltage of each bus over phases and converged steps. [p.u.]
    line_loading_max : ndarray, shape (line,)
        Highest loading of each line over converged steps. [-]
    line_over_steps : ndarray of int, shape (line,)
        Converged steps with the line over its rating.
    """

    flags: dict[str, np.ndarray]
    converged: np.ndarray
    customer_under: np.ndarray
    clear: dict[str, np.ndarray]
    vmin_customer_pu: np.ndarray
    vmin_bus_pu: np.ndarray
    line_loading_max_t: np.ndarray
    tx_loading_max_t: np.ndarray
    bus_vmin_pu: np.ndarray
    line_loading_max: np.ndarray
    line_over_steps: np.ndarray


def validation_dir(out_dir: Path) -> Path:
    return layout(out_dir).validation_dir


def validation_target(cfg: Config) -> LoadflowInputs:
    """Stage 2's target for the validation flows: own raw folder, inputs, keys, label, cases."""
    return LoadflowInputs(raw_dir=layout(cfg).validation_raw_dir,
                          inputs_for=ensure_validation_inputs,
                          block_key=Fingerprints.validation_block,
                          stitched_key=Fingerprints.validation_stitched, label="validate",
                          tolerance=cfg.validate.tolerance,
                          cases=KINDS)


def kind_path(out_dir: Path, network: str, kind: str) -> Path:
    return layout(out_dir).validation_kind(network, kind)


def report_h5_path(out_dir: Path, network: str) -> Path:
    return layout(out_dir).validation_report(network)


def report_csv_path(out_dir: Path) -> Path:
    return layout(out_dir).validation_csv


def proof_csv_path(out_dir: Path) -> Path:
    return layout(out_dir).proof_csv


# ------------------------------------------------------------------------ load-flow scan
def scan_flows(stitched: Path, m: NetworkManifest, *, v_min_pu: float,
               tx_factor: float, tolerance: float = 0.0) -> FlowScan:
    """Violation flags and worst values of a stitched validation file, in time chunks
    (``tolerance``: the proof's, see :attr:`FlowScan.clear`)."""
    cust_bus, cust_phase = _customer_nodes(m)
    parts = []
    with h5py.File(stitched, "r") as f:
        g = f["loadflow"]
        for sl in h5io.time_slices(g["v_pu"].shape[0], _TIME_CHUNK):
            parts.append(_scan_chunk(g, sl, m, (cust_bus, cust_phase), v_min_pu, tx_factor,
                                     tolerance))
    return _combine(parts)


def _customer_nodes(m: NetworkManifest) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's bus (index into the bus axis) and phase (0: three-phase)."""
    bus_pos = {b: i for i, b in enumerate(m.bus_names)}
    return (np.array([bus_pos[str(b)] for b in m.customers["bus"]], dtype=np.int64),
            m.customers["phase"].to_numpy())


def _scan_chunk(g: h5py.Group, sl: slice, m: NetworkManifest,
                customers: tuple[np.ndarray, np.ndarray], v_min_pu: float,
                tx_factor: float, tolerance: float) -> dict[str, Any]:
    cust_bus, cust_phase = customers
    v = g["v_pu"][sl].astype(np.float64)
    ok = g["converged"][sl].astype(bool)
    i_a = g["i_a"][sl]
    loading = metrics.line_loading(i_a, m.line_rating_a)
    v_cust = metrics.customer_voltage_pu(v, cust_bus, cust_phase)
    tx = metrics.transformer_loading(g["s_tx_kva"][sl], m.transformer_kva)
    flags = metrics.violation_flags(loading, v_cust, tx, converged=ok, v_min_pu=v_min_pu,
                                    tx_factor=tx_factor)
    v_bus = np.fmin.reduce(v, axis=2)  # (time, bus)
    masked_v = np.where(ok[:, None], v_bus, np.nan)
    masked_l = np.where(ok[:, None], loading, np.nan)
    return dict(
        flags=flags, converged=ok,
        customer_under=v_cust < v_min_pu,
        clear={"thermal": overloaded_counts(i_a, m.topology.feeder_lines,
                                            m.line_rating_a * (1.0 + tolerance)),
               "undervoltage": v_cust < v_min_pu - tolerance,
               "transformer": (tx > tx_factor * (1.0 + tolerance)).any(axis=1) & ok},
        vmin_customer_pu=np.fmin.reduce(v_cust, axis=1),
        vmin_bus_pu=np.fmin.reduce(v_bus, axis=1), line_loading_max_t=np.fmax.reduce(loading, 1),
        tx_loading_max_t=np.fmax.reduce(tx, axis=1), bus_vmin_pu=np.fmin.reduce(masked_v, 0),
        line_loading_max=np.fmax.reduce(masked_l, axis=0),
        line_over_steps=(masked_l > 1.0).sum(axis=0),
    )


def _combine(parts: list[dict[str, Any]]) -> FlowScan:
    flags = {k: np.concatenate([p["flags"][k] for p in parts]) for k in parts[0]["flags"]}
    clear = {k: np.concatenate([p["clear"][k] for p in parts]) for k in parts[0]["clear"]}
    cat = {k: np.concatenate([p[k] for p in parts]) for k in
           ("converged", "customer_under", "vmin_customer_pu", "vmin_bus_pu",
            "line_loading_max_t", "tx_loading_max_t")}
    return FlowScan(
        flags=flags, clear=clear, **cat,
        bus_vmin_pu=np.fmin.reduce(np.stack([p["bus_vmin_pu"] for p in parts]), axis=0),
        line_loading_max=np.fmax.reduce(np.stack([p["line_loading_max"] for p in parts]), 0),
        line_over_steps=np.sum([p["line_over_steps"] for p in parts], axis=0),
    )


# ------------------------------------------------------------------------ inputs of the analysis
def read_limit_kva(cfg: Config, network: str, fps: Fingerprints) -> np.ndarray:
    """Stage-4 voltage limit per zone from ``headroom/<network>/limits.h5`` (not refitted)."""
    path = layout(cfg).limits(network)
    require_fresh(path, fps.headroom(network), producer="headroom")
    with h5py.File(path, "r") as f:
        return f["limits/limit_kva"][()]


def headroom_before(cfg: Config, m: NetworkManifest, fps: Fingerprints,
                    sample: int) -> np.ndarray:
    """Stage-5 headroom (time, zone) [kVA] of each zone's assigned case (NaN: not converged),
    in the validation's draw ``sample`` (one of the planning samples)."""
    with h5py.File(require_hosting(cfg, fps, m.name), "r") as f:
        cases = h5io.decode_strings(f["case"][()])
        case_index = f["hosting/case_index"][()]
    out = np.full((cfg.time.n_steps, len(m.zone_ids)), np.nan)
    for k in sorted(set(case_index.tolist())):
        path = layout(cfg).headroom(m.name, case_key(cases[k], sample))
        require_fresh(path, fps.headroom(m.name), producer="headroom")
        cols = np.flatnonzero(case_index == k)
        with h5py.File(path, "r") as f:
            out[:, cols] = f["headroom/headroom_kva"][()][:, cols]
    return out


def zone_ev_series(cfg: Config, m: NetworkManifest, kind: str,
                   fps: Fingerprints) -> tuple[np.ndarray, np.ndarray, int]:
    """Net EV power and V2G discharge per zone (time, zone) [kW], and the number of EVs."""
    path = validation_inputs_path(cfg.out_dir, m.name, kind)
    require_fresh(path, fps.validation_inputs(m.name, kind), producer="validate")
    with h5py.File(path, "r") as f:
        ev_kw = f["inputs/ev_kw"][()].astype(np.float64)
        v2g = f["inputs/v2g_discharge_kw"][()].astype(np.float64)
        evs = h5io.read_table(f["inputs"], "customers")["ev"]
        n_evs = int(sum(len(e.split(";")) for e in evs if e))
    w = metrics.zone_weights(m.topology.load_zone, m.topology.load_phase, len(m.zone_ids))
    return ev_kw @ w, v2g, n_evs


# ------------------------------------------------------------------------ metrics
def _summary_row(cfg: Config, m: NetworkManifest, kind: str, scan: FlowScan, hd: Headroom,
                 before: np.ndarray, net_kw: np.ndarray, v2g: np.ndarray,
                 n_evs: int) -> dict[str, Any]:
    """One report row (network, kind); see :data:`REPORT_COLUMNS`."""
    ok, has = scan.converged, m.topology.zone_customers > 0
    req, done = metrics.v2g_fulfilment(v2g, net_kw, hd.headroom_kva, ok)
    hb, ha = metrics.headroom_stats(before, has), metrics.headroom_stats(hd.headroom_kva, has)
    total = net_kw.sum(axis=1)
    pct = {k: metrics.percent_of_steps(scan.flags[k]) for k in scan.flags}
    vmin = scan.vmin_customer_pu[ok]
    return dict(
        network=m.name, kind=kind, evs=n_evs, pct_thermal=pct["thermal"],
        pct_undervoltage=pct["undervoltage"], pct_tx_overload=pct["transformer"],
        pct_collapse=pct["collapse"], pct_any=pct["any"],
        v_min_customer_pu=float(np.nanmin(vmin)) if np.isfinite(vmin).any() else np.nan,
        max_line_loading_pct=100 * float(np.nanmax(scan.line_loading_max)) if
        np.isfinite(scan.line_loading_max).any() else np.nan,
        v2g_requests=int(req.sum()),
        v2g_fulfilled_pct=100.0 * done.sum() / req.sum() if req.any() else np.nan,
        headroom_before_min_kva=hb["min_kva"], headroom_after_min_kva=ha["min_kva"],
        headroom_before_mean_kva=hb["mean_kva"], headroom_after_mean_kva=ha["mean_kva"],
        negative_headroom_before_pct=hb["negative_pct"],
        negative_headroom_after_pct=ha["negative_pct"],
        ev_energy_kwh=float(total.sum() * cfg.time.step_hours),
        ev_peak_kw=float(total.max()) if total.size else 0.0,
        steps=int(len(ok)), nonconverged=int((~ok).sum()),
    )


def _zone_rows(cfg: Config, m: NetworkManifest, kind: str, zd: ZoneData, hd: Headroom,
               before: np.ndarray, net_kw: np.ndarray, v2g: np.ndarray) -> list[dict[str, Any]]:
    """Per-zone detail rows of one kind (zones with customers)."""
    req, done = metrics.v2g_fulfilment(v2g, net_kw, hd.headroom_kva, zd.converged)
    rows = []
    for z, zid in enumerate(m.zone_ids):
        if m.topology.zone_customers[z] <= 0:
            continue
        hb = metrics.headroom_stats(before[:, [z]])
        ha = metrics.headroom_stats(hd.headroom_kva[:, [z]])
        rows.append(dict(
            zone=zid, kind=kind, customers=int(m.topology.zone_customers[z]),
            ev_energy_kwh_per_day=float(net_kw[:, z].sum() * cfg.time.step_hours
                                        / cfg.time.days),
            headroom_before_min_kva=hb["min_kva"], headroom_after_min_kva=ha["min_kva"],
            negative_headroom_after_pct=ha["negative_pct"],
            overloaded_steps=int((zd.n_overloaded[:, z] > 0).sum()),
            v2g_requests=int(req[:, z].sum()),
            v2g_fulfilled_pct=100.0 * done[:, z].sum() / req[:, z].sum() if req[:, z].any()
            else np.nan,
        ))
    return rows


def analyse_network(cfg: Config, network: str
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stages 3 and 5 and the metrics of one network's validation flows; writes its files.

    Returns
    -------
    summary : DataFrame
        One row per kind, columns :data:`REPORT_COLUMNS`.
    zones : DataFrame
        One row per (kind, zone with customers).
    proof : DataFrame
        Where smart charging adds violations to the baseline (:func:`proof_table`).
    near : DataFrame
        Where it passes a limit by no more than ``validate.proof_tolerance`` (not counted by
        the proof; same columns, worst values against the limit itself).
    """
    fps = Fingerprints(cfg)
    target = validation_target(cfg)
    stitched = {kind: require_stitched(cfg, fps, network, kind, target) for kind in KINDS}
    for kind in KINDS:  # everything is checked before the first file is written
        require_fresh(validation_inputs_path(cfg.out_dir, network, kind),
                      fps.validation_inputs(network, kind), producer="validate")
    m = read_manifest(manifest_path(cfg.out_dir, network))
    limit_kva = read_limit_kva(cfg, network, fps)
    # a fresh draw has no stage-5 headroom: its own no-EV flows (kind "none", first) are it
    sample = validation_sample(cfg, network)
    fresh = sample >= cfg.cases.samples
    before = None if fresh else headroom_before(cfg, m, fps, sample)
    key = fps.validation(network)
    if all(freshness(p, key) == "ok" for p in [*(kind_path(cfg.out_dir, network, k)
                                                 for k in KINDS),
                                               report_h5_path(cfg.out_dir, network)]):
        logger.info("%s: validation analysis up to date", network)
        return _read_report(cfg, network)
    fp_attrs = fingerprint.attrs(key)
    rows, zone_rows, violations = [], [], {}
    for kind in KINDS:
        zd = compute_zones(stitched[kind], m)
        hd = headroom_for(cfg, m, zd, limit_kva)
        if before is None:
            before = hd.headroom_kva
        scan = scan_flows(stitched[kind], m, v_min_pu=cfg.validate.v_min_pu,
                          tx_factor=cfg.validate.tx_overload_factor,
                          tolerance=cfg.validate.proof_tolerance)
        net_kw, v2g, n_evs = zone_ev_series(cfg, m, kind, fps)
        _write_kind(cfg, m, kind, zd, hd, scan, net_kw, v2g, fp_attrs)
        rows.append(_summary_row(cfg, m, kind, scan, hd, before, net_kw, v2g, n_evs))
        zone_rows += _zone_rows(cfg, m, kind, zd, hd, before, net_kw, v2g)
        violations[kind] = metrics.violation_state(zd.n_overloaded, scan.customer_under,
                                                   scan.flags, scan.clear)
    summary = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    zones = pd.DataFrame(zone_rows)
    weights = metrics.zone_weights(m.topology.load_zone, m.topology.load_phase, len(m.zone_ids))
    added = metrics.added_violations(violations["none"], violations["smart"], weights)
    worst = worst_added(stitched["none"], stitched["smart"], m, added, weights,
                        v_min_pu=cfg.validate.v_min_pu, tolerance=cfg.validate.proof_tolerance)
    proof = proof_table(cfg, m, added, worst)
    flags = metrics.within_tolerance(violations["none"], violations["smart"], weights, added)
    near = proof_table(cfg, m, flags, worst_added(
        stitched["none"], stitched["smart"], m, flags, weights, v_min_pu=cfg.validate.v_min_pu,
        tolerance=0.0))
    _log_proof(m.name, proof, sample, cfg.cases.samples, near)
    _write_report(cfg, m, summary, zones, (proof, near), added, fp_attrs)
    return summary, zones, proof, near


def added_violation_flags(cfg: Config, network: str
                          ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """(step, zone) where smart charging adds a violation of any kind, from ``report.h5``; per
    zone the kinds added (``"thermal;undervoltage"``, "" for none); the flags by kind."""
    path = report_h5_path(cfg.out_dir, network)
    require_fresh(path, Fingerprints(cfg).validation(network), producer="validate")
    with h5py.File(path, "r") as f:
        flags = {k: f["added"][k][()].astype(bool) for k in metrics.KINDS_OF_VIOLATION}
    kinds = [";".join(k for k in metrics.KINDS_OF_VIOLATION if flags[k][:, z].any())
             for z in range(next(iter(flags.values())).shape[1])]
    return np.logical_or.reduce(list(flags.values())), kinds, flags


def _read_report(cfg: Config, network: str
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(summary, zones, proof, within tolerance) of a network from its ``report.h5``."""
    with h5py.File(report_h5_path(cfg.out_dir, network), "r") as f:
        g = f["report"]
        return (h5io.read_table(g, "summary"), h5io.read_table(g, "zones"),
                h5io.read_table(g, "proof"), h5io.read_table(g, "within_tolerance"))


def proof_table(cfg: Config, m: NetworkManifest, added: dict[str, np.ndarray],
                worst: dict[tuple[str, str], tuple[str, int, float, float]] | None = None
                ) -> pd.DataFrame:
    """Where smart charging adds a violation to the no-EV baseline: one row per (kind, zone).

    Columns: ``network``, ``violation`` (kind), ``zone`` (zones with customers; ``network``
    for transformer overload and collapse, which are network-wide), ``steps`` added, ``first``
    and ``last`` (ISO times of the first and last such step), and from ``worst``
    (:func:`worst_added`) the element furthest past its limit at any of those steps, the
    step's ISO time and its value with smart charging and without EVs (``worst_smart``,
    ``worst_baseline``: p.u. for undervoltage, % of the rating for thermal and transformer;
    empty for collapse). Empty: the plan is proved.
    """
    times = study_times(cfg)
    has = m.topology.zone_customers > 0
    worst = worst or {}
    rows = []
    for kind in metrics.KINDS_OF_VIOLATION:
        flags = added[kind][:, has]
        if kind in ("transformer", "collapse"):
            per_zone = {"network": flags.any(axis=1)}
        else:
            per_zone = {z: flags[:, k] for k, z in enumerate(np.asarray(m.zone_ids)[has])}
        for zone, steps in per_zone.items():
            idx = np.flatnonzero(steps)
            if idx.size:
                element, step, smart, base = worst.get((kind, str(zone)),
                                                       ("", -1, np.nan, np.nan))
                rows.append(dict(network=m.name, violation=kind, zone=str(zone),
                                 steps=int(idx.size), first=times[idx[0]].isoformat(),
                                 last=times[idx[-1]].isoformat(), worst_element=element,
                                 worst_time=times[step].isoformat() if step >= 0 else "",
                                 worst_smart=smart, worst_baseline=base))
    return pd.DataFrame(rows, columns=PROOF_COLUMNS)


def worst_added(baseline: Path, smart: Path, m: NetworkManifest, added: dict[str, np.ndarray],
                weights: np.ndarray, *, v_min_pu: float, tolerance: float
                ) -> dict[tuple[str, str], tuple[str, int, float, float]]:
    """Per (kind, zone) of the proof, the element furthest past its limit among those smart
    charging added, read back from the two stitched flows at the added steps only.

    Undervoltage: the lowest voltage [p.u.] of a customer of the zone that is clearly under
    ``v_min_pu`` with smart charging and not under it without EVs. Thermal: the highest
    loading [% of rating] of a feeder line on the zone's phase clearly over its rating with
    smart charging and not over it without EVs (one exists wherever the counts say added).
    Transformer (zone ``network``): the highest loading [%]. Steps that collapse are left
    out (no values). Returns ``{(kind, zone): (element, step, smart, baseline)}``.
    """
    collapse = np.any(added["collapse"], axis=1, keepdims=True)  # (time, 1)
    need = {k: added[k] & ~collapse for k in ("thermal", "undervoltage", "transformer")}
    steps = np.flatnonzero(np.any([f.any(axis=1) for f in need.values()], axis=0))
    if not steps.size:
        return {}
    cust_bus, cust_phase = _customer_nodes(m)
    member = np.asarray(weights) > 0  # (customer, zone)
    found: dict[tuple[str, str], tuple[str, int, float, float]] = {}

    def keep(key: tuple[str, str], candidate: tuple[str, int, float, float], lower: bool) -> None:
        old = found.get(key)
        if old is None or (candidate[2] < old[2] if lower else candidate[2] > old[2]):
            found[key] = candidate

    with h5py.File(baseline, "r") as fb, h5py.File(smart, "r") as fs:
        gb, gs = fb["loadflow"], fs["loadflow"]
        for lo in range(0, steps.size, _DETAIL_STEPS):
            part = steps[lo:lo + _DETAIL_STEPS]
            vb, vs = (metrics.customer_voltage_pu(g["v_pu"][part], cust_bus, cust_phase)
                      for g in (gb, gs))
            lb, ls = (g["i_a"][part].astype(np.float64) / m.line_rating_a[None, :, None]
                      for g in (gb, gs))
            tb, ts = (metrics.transformer_loading(g["s_tx_kva"][part], m.transformer_kva)
                      for g in (gb, gs))
            new_under = (vs < v_min_pu - tolerance) & ~(vb < v_min_pu)
            new_over = (ls > 1.0 + tolerance) & ~(lb > 1.0)
            for j, step in enumerate(part):
                for z in np.flatnonzero(need["undervoltage"][step]):
                    cands = np.flatnonzero(new_under[j] & member[:, z])
                    if cands.size:
                        c = cands[np.argmin(vs[j, cands])]
                        keep(("undervoltage", m.zone_ids[z]), (str(m.customers["load"].iloc[c]),
                             int(step), float(vs[j, c]), float(vb[j, c])), lower=True)
                for z in np.flatnonzero(need["thermal"][step]):
                    lines, phase = m.topology.feeder_lines[z // 3], z % 3
                    cands = lines[new_over[j, lines, phase]]
                    if cands.size:
                        ln = cands[np.argmax(ls[j, cands, phase])]
                        keep(("thermal", m.zone_ids[z]), (str(m.line_names[ln]), int(step),
                             100 * float(ls[j, ln, phase]), 100 * float(lb[j, ln, phase])),
                             lower=False)
                if need["transformer"][step].any():
                    t = int(np.argmax(ts[j]))
                    keep(("transformer", "network"), (str(m.transformer_names[t]), int(step),
                         100 * float(ts[j, t]), 100 * float(tb[j, t])), lower=False)
    return found


def worst_text(row: Any) -> str:
    """How far a proof row's worst added violation is past its limit, with and without EVs
    (``"0.89985 pu at load_33, 0.90010 without EVs"``; "" where unknown, e.g. collapse)."""
    smart, base = getattr(row, "worst_smart", np.nan), getattr(row, "worst_baseline", np.nan)
    if not np.isfinite(smart):
        return ""
    fmt = "{:.5f} pu" if row.violation == "undervoltage" else "{:.3f} % of rating"
    return (f"{fmt.format(smart)} at {row.worst_element}, "
            f"{fmt.format(base).split(' ')[0]} without EVs")


def near_text(near: pd.DataFrame) -> str:
    """The crossings within the proof's tolerance, in a few words ("" for none)."""
    if near.empty:
        return ""
    n = int(near["steps"].sum())
    rows = [f"{r.violation} in {r.zone}: {worst_text(r)}" for r in near.itertuples()
            if worst_text(r)]
    more = f"; and {len(rows) - 2} more zones" if len(rows) > 2 else ""
    return (f"{n} zone-step{'s' if n != 1 else ''} past a limit by no more than the proof "
            "tolerance, not counted" + ("; " + "; ".join(rows[:2]) + more if rows else ""))


def _log_proof(network: str, proof: pd.DataFrame, sample: int, samples: int,
               near: pd.DataFrame) -> None:
    where = "fresh, out of sample" if sample >= samples else "in sample"
    draw = "" if samples == 1 and sample == 0 else f" (on sample {sample}: {where})"
    if listed := near_text(near):
        logger.info("%s: %s", network, listed)
    if proof.empty:
        logger.info("%s: proved%s: smart charging adds no violation to the no-EV baseline",
                    network, draw)
        return
    where = ", ".join(f"{r.violation} in {r.zone} ({r.steps} steps"
                      + (f"; worst {worst_text(r)})" if worst_text(r) else ")")
                      for r in proof.itertuples())
    logger.warning("%s: NOT proved%s: smart charging adds violations to the no-EV baseline: "
                   "%s", network, draw, where)


def analyse(cfg: Config) -> pd.DataFrame:
    """Analyse every network; write ``validation/report.csv`` and ``validation/proof.csv``;
    return the summary rows."""
    from agileflex_hpc.ev.stage import write_hosting_answer

    results = [analyse_network(cfg, net.name) for net in cfg.networks]
    for net in cfg.networks:  # the EV answer beside the estimate (array runs end here)
        write_hosting_answer(cfg, net.name)
    table = pd.concat([r[0] for r in results], ignore_index=True)
    path = report_csv_path(cfg.out_dir)
    h5io.write_csv_atomic(table, path)
    proof = pd.concat([r[2] for r in results], ignore_index=True)
    h5io.write_csv_atomic(proof, proof_csv_path(cfg.out_dir))
    logger.info("validation report: %s", path)
    return table


def run_validation(cfg: Config, workers: Workers, *,
                   solve_only: bool = False) -> pd.DataFrame | None:
    """Stage 8 for this process's share: the validation power flows (stage 2's solver, split
    and restart), then, where this process group covered every item and ``solve_only`` is not
    set, the root stitches and analyses; returns the report table there (else None)."""
    from agileflex_hpc.loadflow.stage import run_loadflow

    run_loadflow(cfg, workers, target=validation_target(cfg), gather=not solve_only)
    if solve_only or not workers.covers_all or not workers.is_root:
        return None
    return analyse(cfg)


def gather(cfg: Config) -> pd.DataFrame:
    """After the array tasks: stitch the validation blocks, then :func:`analyse`."""
    target = validation_target(cfg)
    items = study_items(cfg, target.cases)
    for path in gather_all(cfg, items, target.raw_dir, label=target.label, target=target):
        logger.info("wrote %s", path)
    return analyse(cfg)


def format_report(table: pd.DataFrame) -> str:
    """The main columns of the validation summary as a fixed-width text table."""
    cols = ["network", "kind", "evs", "pct_thermal", "pct_undervoltage", "pct_tx_overload",
            "pct_collapse", "v_min_customer_pu", "v2g_requests", "v2g_fulfilled_pct",
            "headroom_before_min_kva", "headroom_after_min_kva", "headroom_before_mean_kva",
            "headroom_after_mean_kva"]
    short = {"pct_thermal": "thermal%", "pct_undervoltage": "undervolt%",
             "pct_tx_overload": "tx_over%", "pct_collapse": "collapse%",
             "v_min_customer_pu": "vmin_pu",
             "v2g_requests": "v2g_req", "v2g_fulfilled_pct": "v2g_ok%",
             "headroom_before_min_kva": "hr_min_before", "headroom_after_min_kva": "hr_min_after",
             "headroom_before_mean_kva": "hr_mean_before",
             "headroom_after_mean_kva": "hr_mean_after"}
    return table[cols].rename(columns=short).to_string(index=False, float_format="%.3f")


# ------------------------------------------------------------------------ writers
def _write_kind(cfg: Config, m: NetworkManifest, kind: str, zd: ZoneData, hd: Headroom,
                scan: FlowScan, net_kw: np.ndarray, v2g: np.ndarray,
                fp_attrs: dict[str, str]) -> None:
    path = kind_path(cfg.out_dir, m.name, kind)
    file = schema.VALIDATION_KIND
    with h5io.atomic_h5(path, attrs=h5io.provenance(cfg, network=m.name, case=kind,
                                                   stage="validate", **fp_attrs)) as f:
        file.write_coord(f, "time", h5io.time_to_epoch(study_times(cfg)))
        file.write_coord(f, "zone", np.array(m.zone_ids))
        file.write_coord(f, "phase", np.array([1, 2, 3], dtype=np.int8))
        file.write_coord(f, "bus", m.bus_names)
        file.write_coord(f, "line", m.line_names)
        for group, items in _kind_variables(zd, hd, scan, net_kw, v2g).items():
            g = f.create_group(group)
            for name, data in items:
                data = np.asarray(data)
                data = data.astype(np.uint8) if data.dtype == bool else data
                data = data.astype(np.float32) if data.dtype == np.float64 else data
                file.write_var(g, name, data)


def _kind_variables(zd: ZoneData, hd: Headroom, scan: FlowScan, net_kw: np.ndarray,
                    v2g: np.ndarray) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The data of a kind file by group: (name, data); the attributes are the registry's
    (:data:`agileflex_hpc.schema.VALIDATION_KIND`)."""
    return {
        "zones": [("vmin_pu", zd.vmin_pu), ("pflow_kva", zd.pflow_kva),
                  ("n_overloaded", zd.n_overloaded), ("busbar_v_pu", zd.busbar_v_pu),
                  ("s_tx_kva", zd.s_tx_kva), ("converged", zd.converged)],
        "headroom": [("rate_kva", hd.rate_kva), ("headroom_kva", hd.headroom_kva),
                     ("footroom_kva", hd.footroom_kva), ("binding", hd.binding),
                     ("tx_headroom_kva", hd.tx_headroom_kva)],
        "ev": [("net_kw", net_kw), ("v2g_discharge_kw", v2g)],
        "flags": [*scan.flags.items(),
                  ("vmin_customer_pu", scan.vmin_customer_pu), ("vmin_bus_pu", scan.vmin_bus_pu),
                  ("line_loading_max", scan.line_loading_max_t),
                  ("tx_loading_max", scan.tx_loading_max_t)],
        "map": [("bus_vmin_pu", scan.bus_vmin_pu), ("line_loading_max", scan.line_loading_max),
                ("line_over_steps", scan.line_over_steps)],
    }


def _write_report(cfg: Config, m: NetworkManifest, summary: pd.DataFrame, zones: pd.DataFrame,
                  proofs: tuple[pd.DataFrame, pd.DataFrame], added: dict[str, np.ndarray],
                  fp_attrs: dict[str, str]) -> None:
    proof, near = proofs
    path = report_h5_path(cfg.out_dir, m.name)
    attrs = h5io.provenance(cfg, network=m.name, v_min_pu=cfg.validate.v_min_pu,
                            tx_overload_factor=cfg.validate.tx_overload_factor,
                            stage="validate", **fp_attrs)
    with h5io.atomic_h5(path, attrs=attrs) as f:
        g = f.create_group("report")
        h5io.write_table(g, "summary", summary)
        h5io.write_table(g, "zones", zones)
        h5io.write_table(g, "proof", proof)
        h5io.write_table(g, "within_tolerance", near)
        g.attrs["proved"] = int(proof.empty)
        schema.VALIDATION_REPORT.write_coord(f, "time", h5io.time_to_epoch(study_times(cfg)))
        schema.VALIDATION_REPORT.write_coord(f, "zone", np.array(m.zone_ids))
        a = f.create_group("added")
        for kind, flags in added.items():
            schema.VALIDATION_REPORT.write_var(a, kind, flags.astype(np.uint8))
