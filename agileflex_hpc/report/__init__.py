"""Report of a run: PNG figures per network and one HTML page (``<out>/report/index.html``).

``python -m agileflex_hpc.report CONFIG`` (or the pipeline's last stage) draws what the run's
files allow: stage 4/6 figures after the headroom stage, stage 7/8 figures after the EV and
validation stages; anything missing is noted on the page instead of failing the report.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import h5io
from agileflex_hpc.fingerprint import Fingerprints, Key, freshness
from agileflex_hpc.layout import layout
from agileflex_hpc.report import tables as views
from agileflex_hpc.report.html import NetworkSection, Table, page_fingerprint, write_index
from agileflex_hpc.report.plots import network_plots
from agileflex_hpc.validate.stage import near_text, report_h5_path, worst_text

if TYPE_CHECKING:
    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config

__all__ = ["report_dir", "build_report", "body"]

logger = logging.getLogger(__name__)


def report_dir(out_dir: Path) -> Path:
    return layout(out_dir).report_dir


def _table(path: Path, group: str, name: str, key: Key | None = None) -> pd.DataFrame | None:
    """A table from a complete result file (current, where ``key`` is given), or None."""
    if not h5io.is_complete(path) or (key is not None and freshness(path, key) != "ok"):
        return None
    with h5py.File(path, "r") as f:
        return h5io.read_table(f[group], name) if name in f.get(group, {}) else None


def _hosting(cfg: Config, network: str) -> pd.DataFrame | None:
    """Stage 6's summary with stage 7's answer (EVs hosted beside the estimate)."""
    from agileflex_hpc.ev.stage import hosting_answer
    from agileflex_hpc.headroom.stage import hosting_path

    path = hosting_path(cfg.out_dir, network)
    return hosting_answer(cfg, network) if freshness(
        path, Fingerprints(cfg).headroom(network)) == "ok" else None


def _collapse(cfg: Config, network: str) -> pd.DataFrame | None:
    """Steps without a power-flow solution per case (stage 2), from the hosting file."""
    from agileflex_hpc.headroom.stage import hosting_path

    path = hosting_path(cfg.out_dir, network)
    if freshness(path, Fingerprints(cfg).headroom(network)) != "ok":
        return None
    with h5py.File(path, "r") as f:
        cases = h5io.decode_strings(f["case"][()])
        steps = f["hosting/collapse_steps"][()]
    return pd.DataFrame({"case": cases, "collapsed_steps": steps,
                         "of_steps": cfg.time.n_steps})


def loop_rounds(cfg: Config, network: str) -> pd.DataFrame | None:
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


def validation_draw(cfg: Config, network: str | None = None) -> str:
    """Which draw of who has heat pumps and PV the network's plan was validated on, in words
    (without a network: the rule of the run)."""
    from agileflex_hpc.replan import validation_sample

    n = cfg.cases.samples
    if network is None and cfg.fresh_validation:
        return (f"fresh draws no stage planned on: sample {n} for the first plan, one more "
                "for each further round (out of sample)")
    v = cfg.validation_sample if network is None else validation_sample(cfg, network)
    if v >= n:
        return (f"sample {v}, a fresh draw of who has heat pumps and PV that no stage planned "
                "on (out of sample)")
    return ("the planning draw" if n == 1 else f"sample {v}, one of the {n} planning samples "
            "(in sample)")


def proof_statement(proof: pd.DataFrame | None, draw: str = "",
                    near: pd.DataFrame | None = None) -> str:
    """One sentence: whether smart charging adds a violation to the no-EV baseline, on
    ``draw`` (:func:`validation_draw`) where given, and the crossings within the proof's
    tolerance (``near``) it did not count."""
    on = f" Validated on {draw}." if draw else ""
    listed = "" if near is None else near_text(near)
    if listed:
        on += f" {listed[0].upper()}{listed[1:]}."
    if proof is None:
        return ("No current validation (missing, or computed from other inputs): the plan is "
                "not proved; run the validate stage.")
    if proof.empty:
        return ("Proved: smart charging adds no violation (thermal, undervoltage, transformer, "
                "collapse) to the no-EV baseline of the same heat-pump assignment." + on)
    where = "; ".join(f"{r.violation} in {r.zone} at {r.steps} steps ({r.first} to {r.last}"
                      + (f", worst: {worst_text(r)})" if worst_text(r) else ")")
                      for r in proof.itertuples())
    return f"NOT proved: smart charging adds violations to the no-EV baseline: {where}.{on}"


def final_answer(cfg: Config, answers: dict[str, pd.DataFrame]) -> str:
    """The last word of a run (console, or the report job's log): per network the EVs hosted
    beside the estimate (``answers``: stage 7's tables), the heat pumps, whether the final
    round's plan is proved and which round that is, so that no earlier round's table is
    taken for the answer."""
    from agileflex_hpc.replan import rounds_done

    lines = ["", "== the answer (final plan-validate round) =="]
    for net in cfg.networks:
        name = net.name
        key = Fingerprints(cfg).validation(name)
        proof = _table(report_h5_path(cfg.out_dir, name), "report", "proof", key)
        near = _table(report_h5_path(cfg.out_dir, name), "report", "within_tolerance", key)
        table = answers.get(name)
        hosted = ("no EV answer" if table is None else
                  f"{int(table['evs_hosted'].fillna(0).sum())} EVs hosted (estimate "
                  f"{int(table['evs_estimate'].sum())}), {int(table['hps'].sum())} heat pumps")
        if proof is None:
            verdict = "not validated"
        elif proof.empty:
            listed = "" if near is None else near_text(near)
            verdict = "proved" + (f"; {listed}" if listed else "")
        else:
            verdict = "NOT proved: " + "; ".join(
                f"{r.violation} in {r.zone} at {r.steps} steps"
                + (f" (worst {worst_text(r)})" if worst_text(r) else "")
                for r in proof.itertuples())
        lines.append(f"{name}: {hosted}; {verdict} (round {rounds_done(cfg, name)} of at most "
                     f"{cfg.validate.max_rounds})")
    return "\n".join(lines)


def _assumed_ratings(cfg: Config, network: str) -> tuple[str, str] | None:
    """Where the network files rate not every line: the page's note and the overview's count
    (None: they do, or the network is not compiled yet)."""
    from agileflex_hpc.network.manifest import manifest_path, read_manifest

    path = manifest_path(cfg.out_dir, network)
    if freshness(path, Fingerprints(cfg).network(network)) != "ok":
        return None
    m = read_manifest(path)
    unrated = ~m.line_rating_given
    if not unrated.any():
        return None
    supply = np.concatenate(m.topology.supply_lines)
    n_supply = int(unrated[supply].sum())
    ratings = ", ".join(f"{a:g} A" for a in np.unique(m.line_rating_a[unrated]))
    lines = (f"{int(unrated.sum())} of {unrated.size} lines ({n_supply} of {supply.size} "
             "supply cables)")
    note = (f"{lines} have no rating in the network files; they are rated {ratings} "
            "(network.unrated_rating_a in the job), an assumption, not data: "
            + ("the thermal headroom of their feeders and " if n_supply else "")
            + "the overloads counted on those lines rest on it.")
    return note, (f"{int(unrated.sum())} of {unrated.size} ({ratings})"
                  + (", supply cables too" if n_supply else ""))


def _csv(df: pd.DataFrame | None, path: Path) -> Path | None:
    """Write a machine-readable table beside the page (unchanged text: left alone)."""
    if df is None:
        return None
    h5io.write_csv_atomic(df, path)
    return path


def _view(fn: Callable[[pd.DataFrame], pd.DataFrame],
          df: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if df is None else fn(df)


def _section(cfg: Config, network: str) -> tuple[NetworkSection, dict[str, object]]:
    """The network's part of the page, and its row of the overview."""
    from agileflex_hpc.replan import rounds_done

    run = layout(cfg)
    rep = report_h5_path(cfg.out_dir, network)
    key = Fingerprints(cfg).validation(network)
    proof = _table(rep, "report", "proof", key)
    near = _table(rep, "report", "within_tolerance", key)
    hosting = _hosting(cfg, network)
    collapse = _collapse(cfg, network)
    rounds = loop_rounds(cfg, network)
    summary = _table(rep, "report", "summary", key)
    zones = _table(rep, "report", "zones", key)
    sec = NetworkSection(network)
    sec.verdict = proof_statement(proof, validation_draw(cfg, network)
                                  if cfg.cases.samples > 1 else "", near)
    sec.verdict_class = "unknown" if proof is None else ("ok" if proof.empty else "bad")
    row = _overview_row(network, hosting, collapse, proof,
                        rounds_done(cfg, network) if rounds is not None else None)
    sec.keyline = _keyline(row)
    spread_frame = None if hosting is None else views.spread_view(hosting)
    spread = [] if spread_frame is None else [Table(
        "Hosting across samples: the pooled plan beside single-sample plans", spread_frame,
        f"Each of the {cfg.cases.samples} samples redraws who has a heat pump or PV and which "
        "profile each customer has; a single-sample plan is what a study of that one draw "
        "would answer. The pooled plan takes the worst "
        f"{cfg.headroom.quantile:.0%} of all (sample, day) pairs at each time of day, so it "
        "can be below every single sample's.")]
    sec.tables = [
        Table("Hosting per zone: heat pumps, and EVs hosted by smart charging beside the "
              "estimate", _view(views.hosting_view, hosting),
              "Binding limit and worst headroom are those of the assigned case's quantile "
              "profile (stage 6); EVs hosted come from the EV optimisation (stage 7).",
              _csv(hosting, run.report_file("hosting.csv", network)),
              missing="not available (run the headroom and EV stages)"),
        *spread,
        Table("Share of time steps with a violation, by charging", _view(views.violations_view,
                                                                         summary),
              "Smart charging should not exceed the no-EV baseline in any column; "
              "uncontrolled charging of the same EVs is shown for comparison.",
              _csv(summary, run.report_file("validation_summary.csv", network)),
              missing="no current validation (run the validate stage)"),
        Table("Extremes, EV energy and V2G, by charging", _view(views.extremes_view, summary)),
        Table("Headroom before (no EVs) and after charging, over all zones and steps",
              _view(views.headroom_view, summary),
              "Before: stage 5's headroom of each zone in its own assigned case, solved "
              "with every zone in that case; after: recomputed on the validation flow, where "
              "every zone is in its own case at once, so the two differ even without EVs. "
              "Negative after: zone-steps whose headroom, recomputed on the validation flow, "
              "is below zero. Smart charging is planned to fill the room it is given, so less "
              "headroom is left after it by design; a zone can end a step just below zero "
              "without a limit being exceeded. Whether limits are exceeded is what the "
              "violation table and the proof count."),
        Table("Where smart charging adds violations to the no-EV baseline (final round)",
              _view(views.proof_view, proof),
              csv=_csv(proof, run.report_file("proof.csv", network)),
              missing="no current validation", empty="none: proved"),
        *([] if near is None or near.empty else [Table(
            "Limits passed by no more than the proof tolerance (not counted)",
            views.proof_view(near),
            f"Smart charging passes a limit the no-EV baseline keeps, but by at most "
            f"validate.proof_tolerance ({cfg.validate.proof_tolerance:g}: p.u. under "
            f"{cfg.validate.v_min_pu:g} pu, or a fraction of a rating), mostly through the "
            "busbar voltage and the neutral from EVs on other feeders. The proof does not "
            "count these; with validate.proof_tolerance = 0 it would.",
            _csv(near, run.report_file("within_tolerance.csv", network)))]),
        Table("Plan-validate rounds: the EVs each round costs", _view(views.rounds_view, rounds),
              csv=_csv(rounds, run.report_file("rounds.csv", network)), missing="no rounds yet"),
        Table("Voltage collapse per case (stage 2)", _view(views.collapse_view, collapse),
              csv=_csv(collapse, run.report_file("collapse.csv", network))),
        Table("Validation per zone and charging", _view(views.zones_view, zones),
              csv=_csv(zones, run.report_file("validation_zones.csv", network)), folded=True,
              missing="no current validation"),
    ]
    sec.plots = network_plots(cfg, network)
    assumed = _assumed_ratings(cfg, network)
    row["assumed_ratings"] = assumed[1] if assumed else "none"
    sec.notes = ([assumed[0]] if assumed else []) + [p.note for p in sec.plots
                                                     if p.path is None and p.note]
    return sec, row


def _overview_row(network: str, hosting: pd.DataFrame | None,
                  collapse: pd.DataFrame | None, proof: pd.DataFrame | None,
                  rounds: int | None) -> dict[str, object]:
    """The network's answer in numbers (NaN / text where a stage has not run)."""
    row: dict[str, object] = {"network": network}
    if hosting is not None:
        live = hosting[hosting["customers"] > 0]
        counts = live["binding"].astype(str).map(views.BINDING).value_counts()
        row.update(customers=int(hosting["customers"].sum()), zones=len(live),
                   hps=int(hosting["hps"].sum()),
                   evs_hosted=int(hosting["evs_hosted"].fillna(0).sum())
                   if hosting["evs_hosted"].notna().any() else pd.NA,
                   evs_estimate=int(hosting["evs_estimate"].sum()),
                   unconfirmed=int((live["confirmed"].astype(str) == "False").sum()),
                   binding=", ".join(f"{k} {v}" for k, v in counts.items()))
    if collapse is not None:
        row["collapse_steps"] = int(collapse["collapsed_steps"].sum())
    row["proof"] = ("not validated" if proof is None else "proved" if proof.empty else
                    f"NOT proved: {int(proof['steps'].sum())} added zone-steps")
    row["rounds"] = rounds if rounds is not None else pd.NA
    return row


def _keyline(row: dict[str, object]) -> str:
    if "hps" not in row:
        return "No hosting answer yet (run the headroom and EV stages)."
    evs = row["evs_hosted"]
    evs_text = "EVs not optimised yet" if pd.isna(evs) else f"{evs} EVs"
    return (f"{row['customers']} customers in {row['zones']} zones host {row['hps']} heat pumps "
            f"and {evs_text} (estimate {row['evs_estimate']}); binding limits: "
            f"{row['binding'] or '-'}.")


def run_parameters(cfg: Config) -> dict[str, str]:
    """What the run was: period, cases, networks, main settings, code and engine versions."""
    import datetime as dt

    from agileflex_hpc import __version__
    from agileflex_hpc.network.engine import engine_version

    t = cfg.time
    end = t.start + dt.timedelta(days=t.days)
    commit = h5io.git_commit()
    nets = ", ".join(f"{n.name} ({n.path if n.path else 'embedded default'})"
                     for n in cfg.networks)
    return {
        "Run": f"{cfg.run.name} (outputs in {cfg.out_dir})",
        "Job config": f"{cfg.source} (sha256 {cfg.sha256[:12]})",
        "Period": f"{t.start} to {end} ({t.days} days of {t.step_minutes}-minute steps, "
                  f"{t.n_steps} steps)",
        "Cases": ", ".join(cfg.cases.names) + (
            f"; {cfg.cases.samples} samples each, pooled in the quantile profiles"
            if cfg.cases.samples > 1 else ""),
        "Networks": nets,
        "Seed": str(cfg.run.seed),
        "Headroom": f"quantile {cfg.headroom.quantile:g}, voltage limit fit at "
                    f"{cfg.headroom.v_lim_pu:g} pu, thermal factor "
                    f"{cfg.headroom.thermal_factor:g}",
        "EVs": f"MILP gap {cfg.ev.mip_gap:g}, {cfg.ev.successes_needed} successes needed, "
               f"V2G {cfg.ev.v2g}, footroom factor {cfg.ev.footroom_factor:g}",
        "Validation": f"undervoltage below {cfg.validate.v_min_pu:g} pu, proof tolerance "
                      f"{cfg.validate.proof_tolerance:g}, up to "
                      f"{cfg.validate.max_rounds} plan-validate rounds, on "
                      f"{validation_draw(cfg)}",
        "Code": f"agileflex_hpc {__version__}" + (f" (git {commit[:12]})" if commit else ""),
        "Engine": engine_version().split(" based on")[0],
        "Libraries": ", ".join(f"{k} {v}" for k, v in h5io.library_versions().items()),
    }


def inputs_fingerprint(cfg: Config) -> str:
    """A digest of what the page is drawn from: the code, the config and the fingerprint of
    every result file (raw load-flow blocks aside, which the stitched files cover)."""
    import hashlib

    h = hashlib.sha256(json.dumps(Fingerprints(cfg).code(), sort_keys=True).encode())
    h.update(cfg.sha256.encode())
    out = Path(cfg.out_dir)
    for path in sorted(out.rglob("*.h5")):
        rel = path.relative_to(out).as_posix()
        if "/raw/" in f"/{rel}" or rel.startswith("report/"):
            continue
        try:
            with h5py.File(path, "r") as f:
                stamp = f"{f.attrs.get('fingerprint', '')}:{f.attrs.get('complete', 0)}"
            if stamp.startswith(":"):  # no fingerprint (the loop's caps): its bytes
                stamp = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            stamp = "unreadable"
        h.update(f"{rel}={stamp}\n".encode())
    return h.hexdigest()


def build_report(cfg: Config, *, force: bool = False) -> tuple[Path, bool]:
    """Draw every figure and write ``<out>/report/index.html``; return (its path, whether it
    was drawn). A page drawn from the same inputs (code, config, result fingerprints) is kept
    as it is unless ``force``."""
    index = layout(cfg).report_index
    fingerprint = inputs_fingerprint(cfg)
    if not force and index.is_file() and page_fingerprint(index) == fingerprint:
        logger.info("report up to date (drawn from the same results): %s", index)
        return index, False
    fps = Fingerprints(cfg)
    drawn = [_section(cfg, net.name) for net in cfg.networks]
    sections = [sec for sec, _ in drawn]
    overview = pd.DataFrame([row for _, row in drawn])
    summaries = [_table(report_h5_path(cfg.out_dir, n.name), "report", "summary",
                        fps.validation(n.name)) for n in cfg.networks]
    validation: list[Table] = []
    if len(cfg.networks) > 1 and all(t is not None for t in summaries):
        every = pd.concat(summaries, ignore_index=True)
        validation = [Table("Share of time steps with a violation [%], every network",
                            views.violations_view(every).assign(
                                Network=every["network"].to_numpy()),
                            csv=_csv(every, layout(cfg).report_file("validation.csv")))]
    over = Table("The answer, per network", views.overview_view(overview),
                 "Heat pumps and EVs hosted in total; the per-zone numbers are in each "
                 "network's section. A network's plan counts as proved when smart charging "
                 "adds no violation to its no-EV baseline (column 'Smart charging vs no-EV "
                 "baseline').", _csv(overview, layout(cfg).report_file("overview.csv")))
    write_index(index, run=cfg.run.name, overview=over, sections=sections,
                validation=validation, params=run_parameters(cfg), glossary=views.GLOSSARY,
                fingerprint=fingerprint)
    drawn_files = {t.csv for t in [over, *validation] if t.csv} | {
        f for sec in sections for f in [*(t.csv for t in sec.tables), *(p.path for p in sec.plots)]
        if f}
    _remove_undrawn(report_dir(cfg.out_dir), drawn_files)
    return index, True


def _remove_undrawn(folder: Path, drawn: set[Path]) -> None:
    """Remove the CSV tables and PNG figures of an earlier drawing that this one did not
    draw (their results are missing or stale now): nothing beside the page may show old
    numbers."""
    keep = {Path(p).resolve() for p in drawn}
    for path in folder.rglob("*"):
        if path.suffix in (".csv", ".png") and path.is_file() and path.resolve() not in keep:
            path.unlink()
            logger.info("removed %s: not drawn from the current results", path)


def body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    """CLI body: the root (or a single process) writes the report and prints where it is."""
    if not workers.is_root:
        return 0
    if getattr(args, "dry_run", False):
        print(f"report: figures and index.html under {report_dir(cfg.out_dir)}")
        return 0
    path, _ = build_report(cfg, force=getattr(args, "force", False))
    answers = {n.name: table for n in cfg.networks
               if (table := _hosting(cfg, n.name)) is not None}
    print(final_answer(cfg, answers).lstrip("\n"))  # what a SLURM run's last log says
    print(f"report: {path.resolve()}")
    return 0
