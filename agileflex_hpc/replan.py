"""The plan-validate loop: tighten the EV bounds of zones the validation did not prove.

Stage 7 plans each zone against a zonal, lossless approximation; stage 8 checks the plan with
full power flows. Where smart charging adds a violation to the no-EV baseline (the proof of
:mod:`agileflex_hpc.validate.stage`), the zones responsible get **caps** at the offending
times of day, and stages 7-8 run again (``validate.max_rounds`` rounds in all; 1 = a single
pass). Caps bound a zone's EV power on the EV horizon: ``cap_kw[0]`` its net import (rule
2), ``cap_kw[1]`` the charging and ``cap_kw[2]`` the V2G discharge of all its EVs together
(rule 1). Rule 1 caps the gross power, not the net: a cap on the net alone let one EV charge
from another's discharge at the same step, which the zone model sees as free; on enwl-lvns
network_3 Feeder_4 such a pair (3.7 kW each, net 0) pulled a customer at the feeder's end
from 0.912 to 0.898 p.u., and the loop, blaming net import only, found no zone to blame.
Rule 2 stays on the net: on the gross charging it also forbade the evening transfers that
validated fine, and cut ENWL network_5 from 110 proved EVs to 69.

The rule (documented decision), for every zone responsible for an offending step:

1. at a time of day ``h`` where the zone's EVs charged (discharged) ``p`` kW in all at an
   offending step, its charge (discharge) cap at ``h`` becomes ``(1 - validate.replan_cut) x
   p``, or stays lower where a cap exists;
2. for an import, its net import bound at every time of day is derated by twice the worst
   relative exceedance ``e`` seen at the step beyond the no-EV baseline's own (transformer:
   ``|S| / (factor x rating) - 1``; thermal: ``I / rating - 1``; undervoltage:
   ``(v_min - v) / v_min``; capped at 0.5), so at most ``(1 - 2e) x`` the stage-7 bound. A
   collapse has no term of its own: a collapsed step's ``e`` comes from the engine's last
   iteration (0 where that is NaN), and rule 1 halves the import at its time of day.

Responsible zones at an offending step (a zone imports where its EVs charge at least as much
as they discharge, net 0 included, and exports where they discharge at least as much): the
flagged zones that imported; if none did, the
importing zones of the same feeders; if none imported, the *exporting* zones of the same
feeders (V2G export on one phase shifts the neutral and can pull another phase under 0.9 p.u.:
seen on ENWL network_1); failing that, every importing, then every exporting zone of the
network (the transformer and collapse are network-wide anyway).

Why: the violations the loop meets are small exceedances of a linear, lossless, per-phase
model (losses grow with the square of the load; phases couple through the neutral; the
quantile leaves some days out). Rule 1 removes the cause where it was seen, whatever its kind,
with no model of the network, and converges geometrically. Rule 2 stops the optimiser from
moving the same load to the next cheapest time of day, where the same model error would show
again: the exceedance measures the model's error, and doubling it leaves a margin.

Files: ``<out>/replan/<network>.h5`` holds the caps (``cap_kw``, (import/export, zone, horizon
step), NaN = no cap), the round they are for and the history of every round;
``<out>/replan/rounds.csv`` the history of all networks. Caps count only while the network's
stage 3-6 inputs are the ones they were computed from (else the loop starts over).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.errors import StaleError
from agileflex_hpc.ev.costs import snapshot_costs
from agileflex_hpc.horizon import horizon_minutes
from agileflex_hpc.layout import layout

if TYPE_CHECKING:
    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config

__all__ = ["caps_path", "read_caps", "tighten_caps", "replan_network", "replan", "rounds_done",
           "validation_sample", "HISTORY_COLUMNS", "CAP_DIRECTIONS"]

logger = logging.getLogger(__name__)

#: what each row of ``cap_kw`` bounds: the zone's net EV import, and the charging and the V2G
#: discharge of all its EVs together
CAP_DIRECTIONS = ("import", "charge", "discharge")
HISTORY_COLUMNS = ["round", "network", "zone", "violations", "steps", "evs_hosted",
                   "replanned", "cap_min_kw", "export_cap_min_kw"]


def caps_path(out_dir: Path, network: str) -> Path:
    return layout(out_dir).caps(network)


def _base(cfg: Config, network: str) -> str:
    """What the caps are valid for: everything stage 7 plans from (the network's stage 3-6
    inputs and the EV settings, caps aside) and the validation settings that judge a plan."""
    vc = cfg.validate
    key = {**fingerprint.Fingerprints(cfg).ev(network), "v_min_pu": str(vc.v_min_pu),
           "tx_overload_factor": str(vc.tx_overload_factor), "replan_cut": str(vc.replan_cut),
           "proof_tolerance": str(vc.proof_tolerance), "tolerance": str(vc.tolerance)}
    return fingerprint.digest(key)


def read_caps(cfg: Config, network: str) -> tuple[np.ndarray | None, int, pd.DataFrame]:
    """(caps (3, zone, step) [kW]: :data:`CAP_DIRECTIONS`; or None), the round they are for
    (1: none yet) and the history."""
    path = caps_path(cfg.out_dir, network)
    empty = pd.DataFrame(columns=HISTORY_COLUMNS)
    if not h5io.is_complete(path, expect={"base": _base(cfg, network)}):
        return None, 1, empty
    with h5py.File(path, "r") as f:
        caps = f["replan/cap_kw"][()]
        history = h5io.read_table(f["replan"], "history")
        round_ = int(f.attrs["round"])
    if caps.shape[0] != len(CAP_DIRECTIONS):  # another release's caps: start over
        return None, 1, empty
    if round_ > cfg.validate.max_rounds:  # from a run allowed more rounds: start over
        return None, 1, empty
    return (caps if np.isfinite(caps).any() else None), round_, history


def rounds_done(cfg: Config, network: str) -> int:
    """The round the current EV plan of the network belongs to (1: the first pass)."""
    return read_caps(cfg, network)[1]


def validation_sample(cfg: Config, network: str) -> int:
    """The draw stage 8 validates the network's current plan on
    (``Config.validation_draw`` of its round)."""
    return cfg.validation_draw(rounds_done(cfg, network))


def tighten_caps(caps: np.ndarray, added: np.ndarray, charge_kw: np.ndarray,
                 discharge_kw: np.ndarray, zone_feeder: np.ndarray, horizon_step: np.ndarray, *,
                 bound_kw: np.ndarray | None = None, exceedance: np.ndarray | None = None,
                 cut: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """New caps from one round's validation (pure; see the module docstring).

    Parameters
    ----------
    caps : ndarray, shape (3, zone, step)
        Current caps on the EV horizon: net import, charging, discharge; NaN = none. [kW]
    added : ndarray of bool, shape (time, zone)
        (step, zone) where smart charging adds a violation of any kind.
    charge_kw, discharge_kw : ndarray, shape (time, zone)
        The zones' EV charging and V2G discharge in the validation flow, each summed over
        the zone's EVs (>= 0). [kW]
    zone_feeder : ndarray of int, shape (zone,)
        Feeder of each zone.
    horizon_step : ndarray of int, shape (time,)
        Horizon step (time of day) of each study step.
    bound_kw : ndarray, shape (zone, step), optional
        The zones' stage-7 import bound (max(headroom, 0)); with ``exceedance``, rule 2. [kW]
    exceedance : ndarray, shape (time,), optional
        Relative exceedance of the worst violation at each step (0 where none). [-]
    cut : float
        Share of the charging (discharge) taken off at an offending time of day. [-]

    Returns
    -------
    caps : ndarray, shape (3, zone, step)
        Tightened caps. [kW]
    blamed : ndarray of bool, shape (zone,)
        Zones whose caps were tightened.
    """
    new = np.array(caps, dtype=float, copy=True)
    blamed = np.zeros(new.shape[1], dtype=bool)
    for t in np.flatnonzero(added.any(axis=1)):
        direction, zones = _responsible(added[t], charge_kw[t], discharge_kw[t], zone_feeder)
        h = horizon_step[t]
        power = (charge_kw, discharge_kw)[direction]
        for z in zones:
            limit = (1.0 - cut) * power[t, z]
            new[1 + direction, z, h] = np.fmin(new[1 + direction, z, h], limit)
            blamed[z] = True
            if direction == 0 and bound_kw is not None and exceedance is not None:
                derated = max(1.0 - 2.0 * float(exceedance[t]), 0.0) * bound_kw[z]
                new[0, z] = np.fmin(new[0, z], derated)
    return new, blamed


def _responsible(flagged: np.ndarray, charge_kw: np.ndarray, discharge_kw: np.ndarray,
                 zone_feeder: np.ndarray) -> tuple[int, np.ndarray]:
    """(0 import / 1 export, zones) held responsible for an offending step: a zone imports
    where its EVs charge at least as much as they discharge (its net can be 0: one EV
    charging from another), and exports where they discharge at least as much."""
    tol = 1e-6
    importing = (charge_kw > tol) & (charge_kw >= discharge_kw - tol)
    exporting = (discharge_kw > tol) & (discharge_kw >= charge_kw - tol)
    feeder = np.isin(zone_feeder, np.unique(zone_feeder[flagged]))
    for direction, mask in ((0, flagged & importing), (0, feeder & importing),
                            (1, feeder & exporting), (0, importing), (1, exporting)):
        if mask.any():
            return direction, np.flatnonzero(mask)
    return 0, np.zeros(0, dtype=int)


def replan_network(cfg: Config, network: str) -> bool:
    """After a round's validation: record it, and tighten the caps of the zones it did not
    prove. Returns True when the network needs another round (caps written)."""
    from agileflex_hpc.ev.stage import hosting_answer
    from agileflex_hpc.horizon import horizon_index
    from agileflex_hpc.inputs.stage import study_times
    from agileflex_hpc.network.manifest import manifest_path, read_manifest
    from agileflex_hpc.validate.stage import added_violation_flags, kind_path

    caps, round_, history = read_caps(cfg, network)
    m = read_manifest(manifest_path(cfg.out_dir, network))
    added, kinds, by_kind = added_violation_flags(cfg, network)
    answer = hosting_answer(cfg, network).set_index("zone")
    if caps is None:
        caps = np.full((len(CAP_DIRECTIONS), len(m.zone_ids), cfg.time.steps_per_day), np.nan)
    proved = not added.any()
    done = proved or round_ >= cfg.validate.max_rounds
    if not done:
        with h5py.File(kind_path(cfg.out_dir, network, "smart"), "r") as f, \
                h5py.File(kind_path(cfg.out_dir, network, "none"), "r") as f0:
            discharge = f["ev/v2g_discharge_kw"][()].astype(float)
            charge = f["ev/net_kw"][()].astype(float) + discharge
            exceed = _exceedance(cfg, f["flags"], f0["flags"], by_kind)
        steps = horizon_index(study_times(cfg), step_minutes=cfg.time.step_minutes)
        new, blamed = tighten_caps(caps, added, charge, discharge, m.topology.zone_feeder, steps,
                                   bound_kw=_bounds(cfg, network, len(m.zone_ids)),
                                   exceedance=exceed, cut=cfg.validate.replan_cut)
        done = not blamed.any()  # nothing the EVs did to blame: another round changes nothing
    else:
        new, blamed = caps, np.zeros(len(m.zone_ids), dtype=bool)
    rows = history[history["round"] != round_].to_dict("records")
    for z, zone in enumerate(m.zone_ids):
        if m.topology.zone_customers[z] <= 0:
            continue
        rows.append(dict(round=round_, network=network, zone=zone, violations=kinds[z],
                         steps=int(added[:, z].sum()),
                         evs_hosted=_hosted(answer, network, zone),
                         replanned=bool(blamed[z]),
                         cap_min_kw=float(np.nanmin(new[:2, z]))
                         if np.isfinite(new[:2, z]).any() else np.nan,
                         export_cap_min_kw=float(np.nanmin(new[2, z]))
                         if np.isfinite(new[2, z]).any() else np.nan))
    table = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    next_round = round_ if done else round_ + 1
    if not (done and next_round == round_ and _same_history(history, table)):
        _write(cfg, network, new, next_round, table)  # (a finished loop is not rewritten)
    if proved:
        logger.info("%s: proved after round %d", network, round_)
    elif done:
        why = ("validate.max_rounds" if round_ >= cfg.validate.max_rounds else
               "no EV charged or discharged at its offending steps: another round would "
               "change nothing")
        logger.warning("%s: still not proved after %d rounds (%s): %s", network, round_, why,
                       ", ".join(sorted({z for z, k in zip(m.zone_ids, kinds) if k})))
    else:
        logger.info("%s: round %d not proved: %d zones re-planned for round %d", network,
                    round_, int(blamed.sum()), next_round)
    return not done


def _hosted(answer: pd.DataFrame, network: str, zone: str) -> int:
    value = answer.loc[zone, "evs_hosted"]
    if pd.isna(value):
        raise StaleError(f"{network}/{zone}: its EV zone file is missing or stale: rerun the ev "
                         "stage before replan")
    return int(value)


def _same_history(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """The stored history already holds exactly these rows (compared as text)."""
    return len(old) == len(new) and old.astype(str).reset_index(drop=True).equals(
        new.astype(str).reset_index(drop=True))


def _exceedance(cfg: Config, smart: h5py.Group, none: h5py.Group,
                added: dict[str, np.ndarray]) -> np.ndarray:
    """Relative exceedance, at each step, of the violations smart charging added, beyond the
    no-EV baseline's own: for each kind added at the step, how much further smart charging
    went than both the limit and the baseline (``smart`` and ``none``: the ``/flags`` groups
    of the two validation flows). [-] (0 where nothing was added; finite, at most 0.5)"""
    vc = cfg.validate

    def beyond(name: str, limit: float, sign: float = 1.0) -> np.ndarray:
        s, n = sign * smart[name][()].astype(float), sign * none[name][()].astype(float)
        return (s - np.fmax(n, sign * limit)) / limit

    parts = {"transformer": beyond("tx_loading_max", vc.tx_overload_factor),
             "thermal": beyond("line_loading_max", 1.0),
             "undervoltage": beyond("vmin_customer_pu", vc.v_min_pu, -1.0)}
    worst = np.zeros(len(smart["collapse"]))
    for kind, value in parts.items():
        hit = added[kind].any(axis=1)
        worst[hit] = np.fmax(worst[hit], np.nan_to_num(value[hit], nan=0.0, posinf=0.0))
    return np.clip(worst, 0.0, 0.5)


def _bounds(cfg: Config, network: str, n_zones: int) -> np.ndarray:
    """Every zone's stage-7 import bound, max(headroom, 0) on the horizon [kW] (zone, step)."""
    from agileflex_hpc.ev.stage import zone_profiles

    return np.stack([np.clip(zone_profiles(cfg, network, z)[0], 0.0, None)
                     for z in range(n_zones)])


def _write(cfg: Config, network: str, caps: np.ndarray, round_: int, history: pd.DataFrame) -> None:
    path = caps_path(cfg.out_dir, network)
    attrs = h5io.provenance(cfg, network=network, round=round_, base=_base(cfg, network),
                            cut=cfg.validate.replan_cut)
    from agileflex_hpc.network.manifest import manifest_path, read_manifest

    zones = read_manifest(manifest_path(cfg.out_dir, network)).zone_ids
    steps = cfg.time.steps_per_day
    with h5io.atomic_h5(path, attrs=attrs) as f:
        schema.REPLAN.write_coord(f, "direction", np.array(CAP_DIRECTIONS))
        schema.REPLAN.write_coord(f, "zone", np.array(zones))
        schema.REPLAN.write_coord(f, "step", horizon_minutes(steps, cfg.time.step_minutes))
        g = f.create_group("replan")
        schema.REPLAN.write_var(g, "cap_kw", caps)
        h5io.write_table(g, "history", history)


def replan(cfg: Config) -> bool:
    """:func:`replan_network` for every network; write ``replan/rounds.csv``. Returns True
    when any network needs another round."""
    from agileflex_hpc.validate.stage import added_violation_flags

    for net in cfg.networks:  # every network's validation is current before anything is written
        added_violation_flags(cfg, net.name)
    again = [replan_network(cfg, net.name) for net in cfg.networks]
    tables = [read_caps(cfg, net.name)[2] for net in cfg.networks]
    out = layout(cfg).rounds_csv
    h5io.write_csv_atomic(pd.concat(tables, ignore_index=True), out)
    snapshot_costs(cfg)  # the next EV round's split weights, fixed before it starts
    return any(again)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    from agileflex_hpc.cli import run_stage

    return run_stage(argv, prog or "python -m agileflex_hpc.replan",
                     "The plan-validate loop: tighten the EV bounds of unproved zones.", _body,
                     worker_options=False)


def _body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    if not workers.is_root:
        return 0
    if args.dry_run:
        print("replan: record the validation round; tighten the caps of unproved zones")
        return 0
    again = replan(cfg)
    print("replan: another round of the ev and validate stages is needed" if again else
          "replan: no further round (proved, or validate.max_rounds reached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
