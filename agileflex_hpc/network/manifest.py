"""A network's static description (buses, lines, ratings, feeders, customers), stored once.

The first worker that compiles a network writes ``<out>/networks/<name>/network.h5``; the
planner reads bus counts from it and the gather stages read the topology from it, so no
stage after the load flows needs OpenDSS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import h5io, schema
from agileflex_hpc.errors import NetworkError, ResultsError
from agileflex_hpc.layout import layout
from agileflex_hpc.network.topology import Topology, derive_topology, zone_id

if TYPE_CHECKING:
    from agileflex_hpc.config import Config, NetworkConfig
    from agileflex_hpc.network.engine import DssNetwork

__all__ = ["NetworkManifest", "build_manifest", "write_manifest", "read_manifest",
           "manifest_bus_count", "manifest_path", "network_master"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkManifest:
    """Static data of one compiled network (engine order of buses, lines, loads)."""

    name: str
    master: str
    bus_names: np.ndarray  # (bus,)
    bus_xy: np.ndarray  # (bus, 2) [m or source units], NaN where unknown
    line_names: np.ndarray  # (line,)
    line_bus1: np.ndarray  # (line,) bus names
    line_bus2: np.ndarray
    line_rating_a: np.ndarray  # (line,) [A]
    line_rating_given: np.ndarray  # (line,) bool: the rating is in the network files
    transformer_names: np.ndarray  # (transformer,)
    transformer_kva: np.ndarray  # (transformer,) [kVA]
    customers: pd.DataFrame  # load, bus, phase, feeder (1-based), zone
    topology: Topology
    busbar_kv: float  # line-to-line base voltage of the LV busbar [kV]

    @property
    def n_bus(self) -> int:
        return len(self.bus_names)

    @property
    def zone_ids(self) -> list[str]:
        return self.topology.zone_ids


def manifest_path(out_dir: Path, network: str) -> Path:
    return layout(out_dir).manifest(network)


def network_master(cfg: Config, net_cfg: NetworkConfig) -> Path:
    """The master file of a configured network; writes the embedded default if needed."""
    if net_cfg.path is not None:
        return Path(net_cfg.path) / net_cfg.master
    from agileflex_hpc.network.synthetic import write_synthetic_network

    folder = layout(cfg).network_dir(net_cfg.name) / f"dss_seed{net_cfg.seed}"
    master = folder / "Master.dss"
    if not master.is_file():  # one folder per generator seed: a new seed, a new network
        tmp = folder.with_name(f"{folder.name}.{h5io.HOST}.{_pid()}.tmp")
        try:
            write_synthetic_network(tmp, seed=net_cfg.seed)
        except OSError as exc:
            raise ResultsError(f"cannot write the embedded network to {folder}: "
                               f"{exc.strerror or exc} (is run.root a writable folder?)") from None
        try:
            tmp.rename(folder)
        except OSError:  # another worker won the race: theirs is identical
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return master


def _pid() -> int:
    import os

    return os.getpid()


def build_manifest(name: str, net: DssNetwork,
                   unrated_rating_a: float | None = None) -> NetworkManifest:
    """Describe a compiled :class:`~agileflex_hpc.network.engine.DssNetwork` (just compiled:
    the ratings' origin is asked from the engine).

    Lines whose files give no rating take ``unrated_rating_a`` [A].

    Raises
    ------
    NetworkError
        Some lines have no rating and ``unrated_rating_a`` is None: OpenDSS would rate them
        400 A, and the thermal headroom and overloads would rest on that invented number.
    """
    given, codes = net.line_ratings_origin()
    ratings = _ratings(name, net, given, codes, unrated_rating_a)
    controls = net.control_elements()
    if controls:
        logger.warning("network %s: %d control element(s) (%s) never act: the load flows run "
                       "with ControlMode=Off, so taps and capacitor, switch and protection "
                       "states stay as the files set them", name, len(controls),
                       _listed(controls))
    topo = derive_topology(net, ratings)
    customers = pd.DataFrame({
        "load": net.load_names.astype(str),
        "bus": net.load_bus.astype(str),
        "phase": topo.load_phase.astype(int),
        "feeder": topo.load_feeder + 1,
        "zone": [zone_id(f + 1, max(p, 1)) for f, p in zip(topo.load_feeder, topo.load_phase)],
    })
    return NetworkManifest(
        name=name, master=str(net.master), bus_names=net.bus_names.astype(str),
        bus_xy=_bus_xy(net), line_names=net.line_names.astype(str),
        line_bus1=net.line_bus1.astype(str), line_bus2=net.line_bus2.astype(str),
        line_rating_a=ratings, line_rating_given=given,
        transformer_names=net.transformer_names.astype(str),
        transformer_kva=net.transformer_kva, customers=customers, topology=topo,
        busbar_kv=float(net.bus_kv_base[list(net.bus_names).index(topo.busbar)] * np.sqrt(3)),
    )


def _ratings(name: str, net: DssNetwork, given: np.ndarray, codes: np.ndarray,
             unrated_rating_a: float | None) -> np.ndarray:
    """The lines' ratings [A]: the files' where given, else ``unrated_rating_a`` (None: a
    NetworkError naming the unrated LineCodes and lines)."""
    if given.all():
        return net.line_rating_a
    unrated = list(net.line_names[~given].astype(str))
    unrated_codes = list(dict.fromkeys(c or "-" for c in codes[~given]))
    what = (f"{len(unrated)} of {len(given)} lines have no rating (NormAmps) in the network "
            f"files (LineCodes {_listed(unrated_codes)}; lines {_listed(unrated)})")
    if unrated_rating_a is None:
        raise NetworkError(
            f"{net.master}: {what}. OpenDSS would rate them 400 A, and the thermal headroom and "
            "overloads would rest on that number: add NormAmps to those LineCodes (or lines), "
            f"or give the job's [[network]] {name!r} an unrated_rating_a = <amperes> for them")
    logger.warning("network %s: %s; they are rated %g A (network.unrated_rating_a)", name, what,
                   unrated_rating_a)
    return np.where(given, net.line_rating_a, float(unrated_rating_a))


def _listed(names: list[str], limit: int = 5) -> str:
    """The first ``limit`` names, and how many more."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _bus_xy(net: DssNetwork) -> np.ndarray:
    """Bus coordinates from the engine, else from an ``XY_Position.csv`` (Node,X,Y) beside
    the master (ENWL layout; node names may be written as floats, ``11.0``)."""
    xy = np.array(net.bus_xy, dtype=float)
    csv = Path(net.master).parent / "XY_Position.csv"
    if np.isfinite(xy).all(axis=1).any() or not csv.is_file():
        return xy
    table = pd.read_csv(csv)
    nodes = table.iloc[:, 0].astype(str).str.replace(r"\.0$", "", regex=True).str.lower()
    lookup = dict(zip(nodes, table.iloc[:, 1:3].to_numpy(dtype=float)))
    for i, bus in enumerate(net.bus_names):
        if bus in lookup:
            xy[i] = lookup[bus]
    return xy


def write_manifest(path: Path, m: NetworkManifest, cfg: Config | None = None, *,
                   attrs: dict[str, Any] | None = None) -> None:
    """Write the manifest atomically (identical content from any worker); ``attrs`` are
    added to the provenance (e.g. the fingerprint)."""
    topo = m.topology
    bus_feeder = np.full(m.n_bus, -1)
    line_feeder = np.full(len(m.line_names), -1)
    supply = np.zeros(len(m.line_names), bool)
    for f in range(topo.n_feeders):
        bus_feeder[topo.feeder_buses[f]] = f
        line_feeder[topo.feeder_lines[f]] = f
        supply[topo.supply_lines[f]] = True
    with h5io.atomic_h5(path, attrs=h5io.provenance(cfg, network=m.name, master=m.master,
                                                   busbar=topo.busbar, busbar_kv=m.busbar_kv,
                                                   **(attrs or {}))) as f:
        for name, values in (("bus", m.bus_names), ("line", m.line_names),
                             ("transformer", m.transformer_names), ("xy", np.array(["x", "y"]))):
            schema.MANIFEST.write_coord(f, name, values)
        g = f.create_group("network")
        for name, data in [
            ("bus_xy", m.bus_xy), ("bus_feeder", bus_feeder), ("line_bus1", m.line_bus1),
            ("line_bus2", m.line_bus2), ("line_rating_a", m.line_rating_a),
            ("line_rating_given", m.line_rating_given),
            ("line_feeder", line_feeder), ("line_is_supply", supply),
            ("transformer_kva", m.transformer_kva),
        ]:
            schema.MANIFEST.write_var(g, name, data, compress=False)
        h5io.write_table(g, "customers", m.customers)


def _names(values: np.ndarray) -> np.ndarray:
    """An HDF5 string array as a numpy array of str."""
    return np.array(h5io.decode_strings(values))


def manifest_bus_count(path: Path) -> int:
    """The number of buses of a manifest (the planner's cost weight), without reading the rest
    (a plan of hundreds of networks reads every manifest in every worker)."""
    with h5py.File(path, "r") as f:
        return int(f["bus"].shape[0])


def read_manifest(path: Path) -> NetworkManifest:
    """Read a manifest written by :func:`write_manifest`."""
    with h5py.File(path, "r") as f:
        g = f["network"]
        get = {k: g[k][()] for k in g if isinstance(g[k], h5py.Dataset)}
        customers = h5io.read_table(g, "customers")
        names = {k: _names(f[k][()]) for k in ("bus", "line", "transformer")}
        name, master, busbar = (str(f.attrs[k]) for k in ("network", "master", "busbar"))
        busbar_kv = float(f.attrs["busbar_kv"])
    n_feed = int(max(get["bus_feeder"].max(), get["line_feeder"].max()) + 1)
    topo = Topology(
        busbar=busbar,
        feeder_buses=tuple(np.flatnonzero(get["bus_feeder"] == k) for k in range(n_feed)),
        feeder_lines=tuple(np.flatnonzero(get["line_feeder"] == k) for k in range(n_feed)),
        supply_lines=tuple(np.flatnonzero((get["line_feeder"] == k) & get["line_is_supply"])
                           for k in range(n_feed)),
        load_feeder=customers["feeder"].to_numpy() - 1,
        load_phase=customers["phase"].to_numpy(),
        supply_rating_a=np.array([get["line_rating_a"][(get["line_feeder"] == k)
                                                       & get["line_is_supply"]].sum()
                                  for k in range(n_feed)]),
    )
    return NetworkManifest(
        name=name, master=master, bus_names=names["bus"], bus_xy=get["bus_xy"],
        line_names=names["line"], line_bus1=_names(get["line_bus1"]),
        line_bus2=_names(get["line_bus2"]), line_rating_a=get["line_rating_a"],
        line_rating_given=get["line_rating_given"].astype(bool),
        transformer_names=names["transformer"], transformer_kva=get["transformer_kva"],
        customers=customers, topology=topo, busbar_kv=busbar_kv,
    )

