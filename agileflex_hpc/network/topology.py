"""Feeders, supply cables and zones derived from the network's graph (never from names).

The LV busbar is the transformer's LV bus. A feeder is a connected part of the LV network
once the busbar is removed; the lines joining it to the busbar are its supply cables. A part
that supplies no customer (a spare cable) is not a feeder. A zone is feeder x phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from agileflex_hpc.errors import NetworkError

if TYPE_CHECKING:
    from agileflex_hpc.network.engine import DssNetwork

__all__ = ["Topology", "derive_topology", "zone_id", "zone_position"]


N_PHASES = 3
"""Length of the phase axis (phases 1, 2, 3)."""


def zone_index(n_feeders: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Feeder and phase of each zone in the feeder-major zone order.

    Parameters
    ----------
    n_feeders : int
        Number of feeders of the network.

    Returns
    -------
    zone_feeder : ndarray of int64, shape (3 * n_feeders,)
        Feeder index of each zone: 0, 0, 0, 1, 1, 1, ...
    zone_phase : ndarray of int64, shape (3 * n_feeders,)
        Phase of each zone: 1, 2, 3, 1, 2, 3, ...
    """
    if n_feeders < 0:
        raise NetworkError(f"n_feeders must be >= 0, got {n_feeders}")
    zone_feeder = np.repeat(np.arange(n_feeders, dtype=np.int64), N_PHASES)
    zone_phase = np.tile(np.arange(1, N_PHASES + 1, dtype=np.int64), n_feeders)
    return zone_feeder, zone_phase


def zone_id(feeder: int, phase: int) -> str:
    """Zone name of 1-based ``feeder`` and ``phase``, e.g. ``F2P3``."""
    return f"F{feeder}P{phase}"


def zone_position(zone: str) -> int:
    """Index of a zone id in the feeder-major zone order: ``F2P3`` -> 5."""
    feeder, _, phase = zone[1:].partition("P")
    return 3 * (int(feeder) - 1) + int(phase) - 1


@dataclass(frozen=True)
class Topology:
    """Feeders and zones of one network; indices refer to the engine's bus/line/load order.

    Zones are feeder-major: zone ``3*f + p - 1`` is feeder ``f`` (0-based), phase ``p``.
    """

    busbar: str
    feeder_buses: tuple[np.ndarray, ...]  # bus indices of each feeder (busbar excluded)
    feeder_lines: tuple[np.ndarray, ...]  # line indices of each feeder (supply cables included)
    supply_lines: tuple[np.ndarray, ...]  # supply cable line indices (parallel cables: several)
    load_feeder: np.ndarray  # (load,) 0-based feeder of each customer, -1 if none
    load_phase: np.ndarray  # (load,) 1..3, or 0 for a three-phase customer
    supply_rating_a: np.ndarray  # (feeder,) summed normal amps of the supply cables [A]

    @property
    def n_feeders(self) -> int:
        return len(self.feeder_buses)

    @property
    def zone_ids(self) -> list[str]:
        return [zone_id(f + 1, p) for f in range(self.n_feeders) for p in (1, 2, 3)]

    @property
    def zone_feeder(self) -> np.ndarray:
        return zone_index(self.n_feeders)[0]

    @property
    def zone_phase(self) -> np.ndarray:
        return zone_index(self.n_feeders)[1]

    @property
    def load_zone(self) -> np.ndarray:
        """(load,) zone index of each customer (a three-phase one: its feeder's phase-1 zone)."""
        return self.load_feeder * 3 + np.maximum(self.load_phase, 1) - 1

    @property
    def zone_customers(self) -> np.ndarray:
        """(zone,) customers in each zone; a three-phase customer counts in all three."""
        single = self.load_phase > 0
        counts = np.bincount(self.load_zone[single], minlength=3 * self.n_feeders)
        three = np.bincount(self.load_feeder[~single], minlength=self.n_feeders)
        return counts + np.repeat(three, 3)


def derive_topology(net: DssNetwork, line_rating_a: np.ndarray | None = None) -> Topology:
    """Derive feeders and zones of a compiled :class:`~agileflex_hpc.network.engine.DssNetwork`
    (``line_rating_a``: the lines' ratings [A], default the engine's)."""
    busbar = _lv_busbar(net)
    _check_transformers(net, busbar)
    bus_pos = {b: i for i, b in enumerate(net.bus_names)}
    b1 = np.array([bus_pos[b] for b in net.line_bus1])
    b2 = np.array([bus_pos[b] for b in net.line_bus2])
    bb = bus_pos[busbar]
    inner = (b1 != bb) & (b2 != bb)
    n = net.n_bus
    graph = sp.coo_matrix((np.ones(inner.sum()), (b1[inner], b2[inner])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    comp[bb] = -1
    lv = set(_reachable(n, b1, b2, bb))
    load_bus = np.array([bus_pos.get(b, -1) for b in net.load_bus])
    orphans = [f"{ld} on bus {b}" for ld, b, i in zip(net.load_names, net.load_bus, load_bus)
               if i < 0 or i not in lv]
    if orphans:
        raise NetworkError(f"{net.master}: loads on buses no line connects to the LV busbar "
                           f"{busbar!r}: " + ", ".join(orphans[:5]))
    ratings = net.line_rating_a if line_rating_a is None else np.asarray(line_rating_a)
    return _feeders(net, busbar, b1, b2, bb, comp, load_bus, ratings)


def _feeders(net: DssNetwork, busbar: str, b1: np.ndarray, b2: np.ndarray, bb: int,
             comp: np.ndarray, load_bus: np.ndarray, ratings: np.ndarray) -> Topology:
    """Group the busbar's outgoing lines by the component they feed, in line order."""
    leaving = np.flatnonzero((b1 == bb) | (b2 == bb))
    far = np.where(b1[leaving] == bb, b2[leaving], b1[leaving])
    load_comp = comp[load_bus]
    feeders: list[int] = []
    for c in comp[far]:
        if c not in feeders and np.any(load_comp == c):
            feeders.append(int(c))
    if not feeders:
        raise NetworkError(f"{net.master}: no line leaving the LV busbar {busbar!r} "
                           "supplies a customer")
    line_comp = np.where(b1 == bb, comp[b2], comp[b1])
    f_of_comp = {c: i for i, c in enumerate(feeders)}
    supply = tuple(leaving[comp[far] == c] for c in feeders)
    return Topology(
        busbar=busbar,
        feeder_buses=tuple(np.flatnonzero(comp == c) for c in feeders),
        feeder_lines=tuple(np.flatnonzero(line_comp == c) for c in feeders),
        supply_lines=supply,
        load_feeder=np.array([f_of_comp.get(int(c), -1) for c in load_comp]),
        load_phase=np.asarray(net.load_phase, dtype=int),
        supply_rating_a=np.array([ratings[s].sum() for s in supply]),
    )


def _check_transformers(net: DssNetwork, busbar: str) -> None:
    """Every transformer must feed the LV busbar: stage 5's transformer headroom sums their
    ratings and flows, so an upstream one (33/11 kV, say) would count the import twice."""
    other = [name for name, buses in zip(net.transformer_names, net.transformer_buses)
             if busbar not in buses]
    if other:
        raise NetworkError(f"{net.master}: transformer(s) {', '.join(map(str, other[:5]))} do "
                           f"not connect to the LV busbar {busbar!r}; "
                           "a network is one secondary substation (its transformers in "
                           "parallel onto one LV busbar): leave out upstream transformers")


def _lv_busbar(net: DssNetwork) -> str:
    """The LV busbar: the bus of the lowest-voltage winding of any transformer (the first
    such, in engine order)."""
    pos = {b: i for i, b in enumerate(net.bus_names)}
    buses = [b for tx in net.transformer_buses for b in tx]
    kv = [net.bus_kv_base[pos[b]] for b in buses]
    return buses[int(np.argmin(kv))]


def _reachable(n: int, b1: np.ndarray, b2: np.ndarray, start: int) -> np.ndarray:
    graph = sp.coo_matrix((np.ones(len(b1)), (b1, b2)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return np.flatnonzero(labels == labels[start])
