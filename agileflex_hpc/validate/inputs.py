"""Stage 8 inputs: the final HP/PV assignment plus EV demand, one inputs file per (network, kind).

``<out>/validation/inputs/<network>/<kind>.h5`` (kind ``smart`` or ``dumb``) has the layout of a
stage-1 inputs file (``/inputs/customers``, ``/inputs/demand_kw``, ``/inputs/pv_kw``, (time,
customer)) plus ``/inputs/ev_kw`` (time, customer), which the stage-2 machinery loads at
``loadflow.ev_pf``, and ``/inputs/v2g_discharge_kw`` (time, zone), the V2G discharge the
schedule asked for.

* Demand and PV of each customer come from the inputs file of its zone's assigned case
  (``hosting/<network>.h5:/hosting/customers_final``), in the draw
  ``replan.validation_sample`` (``validate.sample``): sample 0 is the planning draw itself;
  with ``cases.samples = S > 1`` the default is sample ``S`` (round r of the plan-validate
  loop: ``S + r - 1``), a **fresh draw** no stage planned on, whose stage-1 inputs of the
  assigned cases are written here (``inputs/<net>/<case>_s<S>.h5``). The plan (each
  zone's HP case and EVs) is kept; who has the heat pumps, PV and which profiles is that
  draw's, so the proof is out of sample.
* EV demand per EV on the noon-to-noon horizon (step 0 = 12:00): ``smart`` is the optimised
  schedule, charge - discharge (V2G discharge is negative demand); ``dumb`` is uncontrolled
  charging of the same fleet (full charger power from arrival until the needed energy is in).
* Each zone's EVs go onto distinct customers of that zone, drawn by a random permutation seeded
  with ``SeedSequence([run.seed, network index, zone index], spawn_key=(8,))``; the spawn key
  keeps the stream apart from the EV stage's attempt streams ``[seed, network, zone, k]``
  (a trailing 0 in the entropy list does not change a SeedSequence). EV ``i`` takes the
  ``i``-th customer of the permutation, so the mapping does not depend on the fleet size or on
  how the work was split. Three-phase customers of the feeder are candidates in all its zones.
* The daily schedule is tiled over the study: a step at time of day ``tod`` takes horizon
  step ``((tod - 12:00) mod 24 h) // step``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.config import case_key
from agileflex_hpc.errors import InputDataError
from agileflex_hpc.ev.dumb import dumb_charging_kw
from agileflex_hpc.ev.fleet import EvFleet
from agileflex_hpc.ev.stage import read_zone, zone_path
from agileflex_hpc.fingerprint import Fingerprints, Key, freshness, require_fresh
from agileflex_hpc.headroom.stage import require_hosting
from agileflex_hpc.horizon import horizon_index
from agileflex_hpc.inputs.stage import inputs_path, study_times
from agileflex_hpc.layout import layout
from agileflex_hpc.replan import validation_sample

if TYPE_CHECKING:
    from agileflex_hpc.config import Config
    from agileflex_hpc.network.manifest import NetworkManifest

__all__ = ["KINDS", "Kind", "ValidationInputs", "validation_inputs_path", "horizon_index",
           "tile_daily", "map_evs_to_customers", "zone_candidates", "fleet_from_table",
           "zone_ev_kw", "build_validation_inputs", "ensure_validation_inputs", "sample_final"]

logger = logging.getLogger(__name__)

Kind = Literal["none", "smart", "dumb"]
#: "none": the final HP/PV assignment without EVs (the baseline); "smart": the optimised
#: schedules; "dumb": the same EVs charging uncontrolled.
KINDS: tuple[str, ...] = ("none", "smart", "dumb")
_SPAWN_KEY = (8,)  # stage 8: keeps the mapping stream apart from the EV attempt streams


@dataclass(frozen=True)
class ValidationInputs:
    """Everything one validation inputs file holds; arrays are float32.

    Attributes
    ----------
    customers : DataFrame
        Final customers table (manifest order) with ``ev`` (EV name, "" for none; names
        joined by ";" where a three-phase customer takes EVs of several zones) and ``ev_zone``.
    demand_kw, pv_kw, ev_kw : ndarray, shape (time, customer)
        Demand incl. HP, PV output and EV demand (negative: V2G export). [kW]
    v2g_discharge_kw : ndarray, shape (time, zone)
        V2G discharge the schedule asks for, summed over the zone's EVs. [kW]
    fingerprint : dict
        Fingerprint key of everything the file depends on.
    """

    customers: pd.DataFrame
    demand_kw: np.ndarray
    pv_kw: np.ndarray
    ev_kw: np.ndarray
    v2g_discharge_kw: np.ndarray
    fingerprint: Key


def validation_inputs_path(out_dir: Path, network: str, kind: str) -> Path:
    return layout(out_dir).validation_inputs(network, kind)


def tile_daily(profile: np.ndarray, times: pd.DatetimeIndex, *, step_minutes: int) -> np.ndarray:
    """Repeat daily horizon profiles over the study's time axis.

    Parameters
    ----------
    profile : ndarray, shape (n, steps_per_day)
        One noon-to-noon profile per row (EV, zone, ...); step 0 is 12:00. [any unit]
    times : DatetimeIndex, shape (time,)
        Study steps.
    step_minutes : int
        Step length. [min]

    Returns
    -------
    ndarray, shape (time, n)
        ``profile[:, horizon_index(times)].T``.
    """
    profile = np.asarray(profile)
    if profile.shape[1] * step_minutes != 1440:
        raise InputDataError(f"a daily profile needs {1440 // step_minutes} steps of "
                             f"{step_minutes} min, got {profile.shape[1]}")
    return profile[:, horizon_index(times, step_minutes=step_minutes)].T


def map_evs_to_customers(n_evs: int, candidates: np.ndarray, *, seed: list[int]) -> np.ndarray:
    """Distinct customers for a zone's EVs, by a seeded permutation of the candidates.

    Parameters
    ----------
    n_evs : int
        EVs of the zone.
    candidates : ndarray of int, shape (candidate,)
        Customer indices (into the customers table) that may take an EV.
    seed : list of int
        ``[run.seed, network index, zone index]``.

    Returns
    -------
    ndarray of int64, shape (n_evs,)
        Customer of each EV; EV ``i`` gets the ``i``-th of the permutation, so a smaller fleet
        maps onto a prefix of a larger one's customers.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if n_evs > len(candidates):
        raise InputDataError(f"zone seed {seed}: {n_evs} EVs but only {len(candidates)} "
                             "customers to place them on")
    rng = np.random.default_rng(np.random.SeedSequence(list(seed), spawn_key=_SPAWN_KEY))
    return candidates[rng.permutation(len(candidates))[:n_evs]]


def zone_candidates(customers: pd.DataFrame, zone: str, feeder: int) -> np.ndarray:
    """Customers that may host the zone's EVs: its own, plus the feeder's three-phase ones.

    Parameters
    ----------
    customers : DataFrame
        Customers table with ``zone``, ``feeder`` (1-based) and ``phase`` (0: three-phase).
    zone : str
        Zone id.
    feeder : int
        1-based feeder of the zone.
    """
    own = customers["zone"].to_numpy() == zone
    three = (customers["phase"].to_numpy() == 0) & (customers["feeder"].to_numpy() == feeder)
    return np.flatnonzero(own | three)


def fleet_from_table(fleet: pd.DataFrame) -> EvFleet:
    """An :class:`EvFleet` from the ``fleet`` table of an EV zone file."""
    cols = ("name", "t_in", "t_out", "e_start_kwh", "e_end_kwh", "battery_kwh", "charger_kw")
    return EvFleet(**{c: fleet[c].to_numpy() for c in cols})


def zone_ev_kw(zone: dict[str, Any], kind: str, *, steps: int, step_minutes: int,
               efficiency: float) -> tuple[np.ndarray, np.ndarray]:
    """EV demand of one zone's fleet on the horizon.

    Parameters
    ----------
    zone : dict
        :func:`~agileflex_hpc.ev.stage.read_zone` output.
    kind : {'none', 'smart', 'dumb'}
        No EVs (baseline), optimised schedule or uncontrolled charging.
    steps, step_minutes : int
        Horizon length [step] and step [min].
    efficiency : float
        Charging efficiency (dumb charging's grid energy = needed energy / efficiency). [-]

    Returns
    -------
    net_kw, discharge_kw : ndarray, shape (ev, steps)
        Net grid demand (charge - discharge) and the V2G discharge of every EV. [kW]
    """
    if "fleet" not in zone or kind == "none":
        if kind not in KINDS:
            raise InputDataError(f"validation kind {kind!r} is not one of {KINDS}")
        empty = np.zeros((0, steps))
        return empty, empty
    if kind == "smart":
        charge = np.asarray(zone["charge_kw"], dtype=np.float64)
        discharge = np.asarray(zone["discharge_kw"], dtype=np.float64)
        return charge - discharge, discharge
    if kind != "dumb":
        raise InputDataError(f"validation kind {kind!r} is not one of {KINDS}")
    dumb = dumb_charging_kw(fleet_from_table(zone["fleet"]), steps=steps,
                            step_minutes=step_minutes, efficiency=efficiency)
    return dumb, np.zeros_like(dumb)


# ------------------------------------------------------------------------ file assembly
def _read_hosting(cfg: Config, network: str,
                  fps: Fingerprints) -> tuple[pd.DataFrame, np.ndarray]:
    """Final customers table and customers per zone from ``hosting/<network>.h5`` (checked
    current first)."""
    with h5py.File(require_hosting(cfg, fps, network), "r") as f:
        final = h5io.read_table(f["hosting"], "customers_final")
        zone_customers = f["hosting/customers"][()]
    return final, zone_customers


def sample_final(cfg: Config, manifest: NetworkManifest, final: pd.DataFrame, sample: int,
                 fps: Fingerprints) -> pd.DataFrame:
    """The final customers table in another draw: every zone keeps its assigned case, each
    customer's HP, PV and profile are those of ``sample`` (its stage-1 inputs of the assigned
    cases are written where missing or stale)."""
    from agileflex_hpc.headroom.hosting import final_customers
    from agileflex_hpc.inputs.stage import ensure_inputs, read_customers

    if sample == 0:
        return final
    zone_case = dict(zip(final["zone"], final["assigned_case"]))
    tables = {}
    for case in sorted(set(final["assigned_case"])):
        key = case_key(case, sample)
        tables[case] = read_customers(ensure_inputs(cfg, manifest, key, fps))
    return final_customers(tables, zone_case)


def _read_zones(cfg: Config, manifest: NetworkManifest, zone_customers: np.ndarray,
                fps: Fingerprints) -> dict[int, dict[str, Any]]:
    """EV zone files of every zone with customers, by zone index (each checked current)."""
    zones = {}
    for z, zid in enumerate(manifest.zone_ids):
        if zone_customers[z] <= 0:
            continue
        path = zone_path(cfg.out_dir, manifest.name, zid)
        require_fresh(path, fps.ev_zone(manifest.name, zid), producer="ev")
        zones[z] = read_zone(path)
    return zones


def _check_cases(cfg: Config, manifest: NetworkManifest, final: pd.DataFrame,
                 fps: Fingerprints) -> None:
    """The final table lists the manifest's loads; every assigned case's inputs (in the
    validation's draw) is current."""
    if list(final["load"]) != list(manifest.customers["load"]):
        raise InputDataError(f"{manifest.name}: the final customers table does not list the "
                             "network's loads in manifest order; rerun the headroom stage")
    sample = validation_sample(cfg, manifest.name)
    for case in sorted(set(final["assigned_case"])):
        key = case_key(case, sample)
        require_fresh(inputs_path(cfg.out_dir, manifest.name, key),
                      fps.inputs(manifest.name, key), producer="loadflow")


def _assigned_series(cfg: Config, manifest: NetworkManifest,
                     final: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """demand_kw, pv_kw (time, customer), each customer's columns from its assigned case
    (in the validation's draw)."""
    demand: np.ndarray | None = None
    pv: np.ndarray | None = None
    sample = validation_sample(cfg, manifest.name)
    for case in sorted(set(final["assigned_case"])):
        cols = np.flatnonzero(final["assigned_case"].to_numpy() == case)
        key = case_key(case, sample)
        with h5py.File(inputs_path(cfg.out_dir, manifest.name, key), "r") as f:
            d, p = f["inputs/demand_kw"][()], f["inputs/pv_kw"][()]
        if demand is None or pv is None:
            demand, pv = np.zeros_like(d), np.zeros_like(p)
        demand[:, cols], pv[:, cols] = d[:, cols], p[:, cols]
    if demand is None or pv is None:  # no customers: no assigned case to read
        raise InputDataError(f"{manifest.name}: the final customers table has no customers")
    return demand, pv


def _ev_demand(cfg: Config, manifest: NetworkManifest, kind: str, final: pd.DataFrame,
               zones: dict[int, dict[str, Any]],
               times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """ev_kw (time, customer), v2g discharge (time, zone) and the table with ``ev`` columns."""
    t = cfg.time
    net_index = [n.name for n in cfg.networks].index(manifest.name)
    ev_kw = np.zeros((len(times), len(final)))
    v2g = np.zeros((len(times), len(manifest.zone_ids)))
    ev_name = np.full(len(final), "", dtype=object)
    ev_zone = np.full(len(final), "", dtype=object)
    for z, zone in zones.items():
        net_kw, dis_kw = zone_ev_kw(zone, kind, steps=t.steps_per_day,
                                    step_minutes=t.step_minutes, efficiency=cfg.ev.efficiency)
        if not len(net_kw):
            continue
        zid = manifest.zone_ids[z]
        cand = zone_candidates(final, zid, int(manifest.topology.zone_feeder[z]) + 1)
        cust = map_evs_to_customers(len(net_kw), cand, seed=[cfg.run.seed, net_index, z])
        np.add.at(ev_kw.T, cust, tile_daily(net_kw, times, step_minutes=t.step_minutes).T)
        v2g[:, z] = tile_daily(dis_kw.sum(axis=0, keepdims=True), times,
                               step_minutes=t.step_minutes)[:, 0]
        for c, name in zip(cust, zone["fleet"]["name"]):
            # a three-phase customer can take EVs of several zones of its feeder: list them all
            ev_name[c] = f"{ev_name[c]};{name}" if ev_name[c] else str(name)
            ev_zone[c] = f"{ev_zone[c]};{zid}" if ev_zone[c] else zid
    table = final.assign(ev=ev_name.astype(str), ev_zone=ev_zone.astype(str))
    return ev_kw, v2g, table


def _sources(cfg: Config, manifest: NetworkManifest, kind: str,
             fps: Fingerprints) -> tuple[pd.DataFrame, dict[int, dict[str, Any]], Key]:
    """Final customers table, EV zone files and the fingerprint key of one (network, kind)."""
    if kind not in KINDS:
        raise InputDataError(f"validation kind {kind!r} is not one of {KINDS}")
    final, zone_customers = _read_hosting(cfg, manifest.name, fps)
    final = sample_final(cfg, manifest, final, validation_sample(cfg, manifest.name), fps)
    zones = {} if kind == "none" else _read_zones(cfg, manifest, zone_customers, fps)
    _check_cases(cfg, manifest, final, fps)
    return final, zones, fps.validation_inputs(manifest.name, kind)


def build_validation_inputs(cfg: Config, manifest: NetworkManifest, kind: str,
                            fps: Fingerprints | None = None) -> ValidationInputs:
    """Assemble the validation inputs of one (network, kind) (no file is written).

    Raises
    ------
    ResultsError
        The hosting file or an EV zone file is missing: run the earlier stages.
    InputDataError
        Unknown kind, a zone with more EVs than customers, or a customers table out of order.
    """
    final, zones, key = _sources(cfg, manifest, kind, fps or Fingerprints(cfg))
    demand, pv = _assigned_series(cfg, manifest, final)
    ev_kw, v2g, table = _ev_demand(cfg, manifest, kind, final, zones, study_times(cfg))
    return ValidationInputs(table, demand.astype(np.float32), pv.astype(np.float32),
                            ev_kw.astype(np.float32), v2g.astype(np.float32), key)


def ensure_validation_inputs(cfg: Config, manifest: NetworkManifest, kind: str,
                             fps: Fingerprints | None = None) -> Path:
    """Write ``validation/inputs/<network>/<kind>.h5`` unless one from the same inputs exists.

    The signature is stage 2's ``inputs_for(cfg, manifest, case, fps)`` with the kind as the
    case. Before writing, the hosting file, every EV zone file and the assigned cases' inputs
    are checked current (else StaleError naming the file).
    """
    fps = fps or Fingerprints(cfg)
    path = validation_inputs_path(cfg.out_dir, manifest.name, kind)
    if freshness(path, fps.validation_inputs(manifest.name, kind)) == "ok":
        return path
    vi = build_validation_inputs(cfg, manifest, kind, fps)
    _write(path, cfg, manifest, kind, vi)
    n_evs = int(sum(len(e.split(";")) for e in vi.customers["ev"] if e))
    logger.info("validation inputs written: %s (%d EVs)", path, n_evs)
    return path


def _write(path: Path, cfg: Config, manifest: NetworkManifest, kind: str,
           vi: ValidationInputs) -> None:
    attrs = h5io.provenance(cfg, network=manifest.name, case=kind, kind=kind,
                            stage="validate-inputs", **fingerprint.attrs(vi.fingerprint))
    file = schema.VALIDATION_INPUTS
    with h5io.atomic_h5(path, attrs=attrs) as f:
        file.write_coord(f, "time", h5io.time_to_epoch(study_times(cfg)))
        file.write_coord(f, "customer", vi.customers["load"].to_numpy())
        file.write_coord(f, "zone", np.array(manifest.zone_ids))
        g = f.create_group("inputs")
        h5io.write_table(g, "customers", vi.customers)
        for name, data in [("demand_kw", vi.demand_kw), ("pv_kw", vi.pv_kw),
                           ("ev_kw", vi.ev_kw), ("v2g_discharge_kw", vi.v2g_discharge_kw)]:
            file.write_var(g, name, data, kind=kind)
