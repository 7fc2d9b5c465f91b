"""Report of a run: PNG figures per network and one HTML page (``<out>/report/index.html``).

``python -m agileflex_hpc.report CONFIG`` (or the pipeline's last stage) draws what the run's
files allow: stage 4/6 figures after the headroom stage, stage 7/8 figures after the EV and
validation stages; anything missing is noted on the page instead of failing the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import pandas as pd

from agileflex_hpc import h5io
from agileflex_hpc.fingerprint import Fingerprints, freshness
from agileflex_hpc.report.html import NetworkSection, write_index
from agileflex_hpc.report.plots import network_plots

__all__ = ["report_dir", "build_report", "body"]

logger = logging.getLogger(__name__)

DEFINITIONS = (
    "Percentages are shares of all timesteps with: any line current above its normal "
    "rating (thermal), any customer voltage (its bus, its phase) below validate.v_min_pu "
    "(undervoltage), any transformer |S| above tx_overload_factor x rating (tx), no power-flow "
    "solution (collapse; a collapsed step counts as a violation of every kind). A V2G request "
    "is a (zone, step) where the smart schedule discharges; it is fulfilled when the zone's "
    "net EV power in the validation flow is an export and the zone's recomputed headroom is "
    "&ge; 0. Headroom before: stage-5 headroom of each zone's assigned case (no EVs); after: "
    "the same computation (stage-4 limits, not refitted) on the validation flows; min/mean over "
    "zones with customers and converged steps [kVA].")


def report_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "report"


def _table(path: Path, group: str, name: str, key: dict | None = None) -> pd.DataFrame | None:
    """A table from a complete result file (current, where ``key`` is given), or None."""
    if not h5io.is_complete(path) or (key is not None and freshness(path, key) != "ok"):
        return None
    with h5py.File(path, "r") as f:
        return h5io.read_table(f[group], name) if name in f.get(group, {}) else None


def _hosting(cfg, network: str) -> pd.DataFrame | None:
    """Stage 6's summary with stage 7's answer (EVs hosted beside the estimate)."""
    from agileflex_hpc.evcharging.stage import hosting_answer
    from agileflex_hpc.headroom.stage import hosting_path

    path = hosting_path(cfg.out_dir, network)
    return hosting_answer(cfg, network) if freshness(
        path, Fingerprints(cfg).headroom(network)) == "ok" else None


def _collapse(cfg, network: str) -> pd.DataFrame | None:
    """Steps without a power-flow solution per case (stage 2), from the hosting file."""
    from agileflex_hpc.headroom.stage import hosting_path

    path = hosting_path(cfg.out_dir, network)
    if freshness(path, Fingerprints(cfg).headroom(network)) != "ok":
        return None
    with h5py.File(path, "r") as f:
        cases = [c.decode() if isinstance(c, bytes) else str(c) for c in f["case"][()]]
        steps = f["hosting/collapse_steps"][()]
    return pd.DataFrame({"case": cases, "collapsed_steps": steps,
                         "of_steps": cfg.time.n_steps})


def loop_rounds(cfg, network: str) -> pd.DataFrame | None:
    """One row per plan-validate round: zones with added violations, zones re-planned, steps
    with added violations and EVs hosted (the last row is the final answer)."""
    from agileflex_hpc.replan import read_caps

    history = read_caps(cfg, network)[2]
    if history.empty:
        return None
    rows = []
    for r, g in history.groupby("round"):
        rows.append({"round": int(r), "zones_unproved": int((g["steps"] > 0).sum()),
                     "zones_replanned": int(g["replanned"].astype(str).eq("True").sum()),
                     "violation_zone_steps": int(g["steps"].sum()),
                     "evs_hosted": int(g["evs_hosted"].sum())})
    return pd.DataFrame(rows)


def proof_statement(proof: pd.DataFrame | None) -> str:
    """One sentence: whether smart charging adds a violation to the no-EV baseline."""
    if proof is None:
        return ("No current validation (missing, or computed from other inputs): the plan is "
                "not proved; run the validate stage.")
    if proof.empty:
        return ("Proved: smart charging adds no violation (thermal, undervoltage, transformer, "
                "collapse) to the no-EV baseline of the same heat-pump assignment.")
    where = "; ".join(f"{r.violation} in {r.zone} at {r.steps} steps ({r.first} to {r.last})"
                      for r in proof.itertuples())
    return f"NOT proved: smart charging adds violations to the no-EV baseline: {where}."


def _section(cfg, network: str) -> NetworkSection:
    from agileflex_hpc.validation.stage import report_h5_path

    rep = report_h5_path(cfg.out_dir, network)
    key = Fingerprints(cfg).validation(network)
    proof = _table(rep, "report", "proof", key)
    sec = NetworkSection(network, tables={
        "EVs and heat pumps per zone: stage 7's hosted EVs beside stage 6's estimate":
            _hosting(cfg, network),
        "Voltage collapse per case (stage 2)": _collapse(cfg, network),
        "Where smart charging adds violations to the no-EV baseline (final round)": proof,
        "Plan-validate rounds (validate.max_rounds): the EVs each round cost":
            loop_rounds(cfg, network),
        "Validation per zone (stage 8)": _table(rep, "report", "zones", key),
    })
    sec.plots = network_plots(cfg, network, report_dir(cfg.out_dir) / network)
    sec.notes = [proof_statement(proof)]
    sec.notes += [p.note for p in sec.plots if p.path is None and p.note]
    return sec


def build_report(cfg) -> Path:
    """Draw every figure and write ``<out>/report/index.html``; return its path."""
    from agileflex_hpc.validation.stage import report_h5_path

    fps = Fingerprints(cfg)
    tables = [_table(report_h5_path(cfg.out_dir, n.name), "report", "summary",
                     fps.validation(n.name)) for n in cfg.networks]
    overview = None if any(t is None for t in tables) else pd.concat(tables, ignore_index=True)
    sections = [_section(cfg, net.name) for net in cfg.networks]
    return write_index(report_dir(cfg.out_dir) / "index.html", run=cfg.run.name,
                       overview=overview, sections=sections, definitions=DEFINITIONS)


def body(cfg, workers, args) -> int:
    """CLI body: the root (or a single process) writes the report and prints where it is."""
    if not workers.is_root:
        return 0
    if getattr(args, "dry_run", False):
        print(f"report: figures and index.html under {report_dir(cfg.out_dir)}")
        return 0
    path = build_report(cfg)
    print(f"report: {path.resolve()}")
    return 0
