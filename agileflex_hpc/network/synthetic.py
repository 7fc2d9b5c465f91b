"""A seeded synthetic UK LV network, written as OpenDSS files in the ENWL layout.

The embedded default network lets a job run on a fresh machine with no downloads. It imitates
the ENWL LVNS networks (``Master.dss``, ``LineCode.txt``, ``Lines.txt``, ``Transformers.txt``,
``Loads.txt``, ``XY_Position.csv``): one 11/0.416 kV Delta-Wye transformer from ``SourceBus``
to the LV busbar ``11``, radial feeders leaving the busbar, plain-integer bus names, 3-phase
lines in metres and one single-phase 1 kW customer (PF 0.95) per service bus.

Each feeder has a main trunk (300 or 185 mm² Waveform), spur branches (95 mm²) hung off
trunk joints, and 35 mm² CNE service cables from a joint to each customer (2-4 per joint).
Trunks are 150-350 m, a feeder reaches a few hundred metres.

Cable data (``_LINECODES``) are approximations of published 4-core Waveform (BS 7870-3.40)
and CNE service cable values, close to the codes in the ENWL networks: R1 is the 20 °C a.c.
resistance of the phase conductor, R0 ~ 2.5-4 x R1 for the sequence return through the
concentric neutral, X1 ~ 0.07-0.09 ohm/km, Normamps the buried sustained rating.
Transformer impedances (``_transformer_pct``) approximate ENA TS 35-1 (4.0 % up to 300 kVA,
4.75 % to 1000 kVA, 6 % above) with %R from typical EU 548/2014 (Tier 1) load losses.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["write_synthetic_network", "default_network_dir", "DEFAULT_NETWORK_NAME"]

logger = logging.getLogger(__name__)

DEFAULT_NETWORK_NAME = "embedded_default"
_BUSBAR = "11"
_FIRST_BUS = 100

# name: (R1, X1, R0, X0) [ohm/km], Normamps [A]
_LINECODES: dict[str, tuple[tuple[float, float, float, float], int]] = {
    "4c_300_WAVE": ((0.100, 0.073, 0.400, 0.080), 465),
    "4c_185_WAVE": ((0.164, 0.074, 0.580, 0.082), 355),
    "4c_95_WAVE": ((0.320, 0.075, 0.960, 0.090), 245),
    "35_CNE_SERVICE": ((0.868, 0.092, 0.760, 0.092), 122),
}
_TRUNK_CODES = ("4c_300_WAVE", "4c_185_WAVE")
_BRANCH_CODE = "4c_95_WAVE"
_SERVICE_CODE = "35_CNE_SERVICE"

# kVA -> load losses as % of rating (EU 548/2014 Tier 1 Ak / kVA, rounded)
_TX_KVA = np.array([100.0, 160, 250, 315, 400, 500, 630, 800, 1000, 1600])
_TX_R_PCT = np.array([1.75, 1.47, 1.30, 1.24, 1.15, 1.10, 1.03, 1.05, 1.05, 0.90])


@dataclass
class _Net:
    """Network under construction: buses (name -> x, y [m]), lines and loads."""

    xy: dict[str, tuple[float, float]] = field(default_factory=dict)
    lines: list[tuple[str, str, str, float]] = field(default_factory=list)  # bus1, bus2, code, m
    loads: list[tuple[str, int]] = field(default_factory=list)  # bus, phase
    next_bus: int = _FIRST_BUS

    def add_bus(self, x: float, y: float) -> str:
        name = str(self.next_bus)
        self.next_bus += 1
        self.xy[name] = (x, y)
        return name

    def extend(self, frm: str, angle: float, length: float, code: str) -> str:
        """New bus ``length`` metres from ``frm`` at ``angle`` [rad], joined by a line."""
        x0, y0 = self.xy[frm]
        bus = self.add_bus(x0 + length * math.cos(angle), y0 + length * math.sin(angle))
        self.lines.append((frm, bus, code, length))
        return bus


def write_synthetic_network(
    folder: str | os.PathLike,
    *,
    seed: int = 0,
    kva: float = 500,
    n_feeders: int = 4,
    n_customers: int = 150,
    name: str = "synthetic_lv",
) -> Path:
    """Write a seeded synthetic UK LV network as OpenDSS files.

    Parameters
    ----------
    folder : path
        Folder to write into (created if missing; existing files of the same names are
        overwritten).
    seed : int
        Random seed; the same arguments give byte-identical files.
    kva : float
        Transformer rating. [kVA]
    n_feeders : int
        Feeders leaving the LV busbar ``11``; each supplies at least one customer.
    n_customers : int
        Single-phase customers (loads), spread over the feeders and phases 1, 2, 3.
    name : str
        OpenDSS circuit name.

    Returns
    -------
    Path
        Path of ``Master.dss`` (compile it; it does not ``solve``).
    """
    if n_feeders < 1 or n_customers < n_feeders or kva <= 0 or seed < 0:
        raise ValueError(
            f"synthetic network: need n_feeders >= 1 (got {n_feeders}), n_customers >= "
            f"n_feeders (got {n_customers}), kva > 0 (got {kva}), seed >= 0 (got {seed})"
        )
    rng = np.random.default_rng([seed, n_feeders, n_customers])
    net = _Net()
    net.xy[_BUSBAR] = (0.0, 0.0)
    counts = _split_customers(rng, n_customers, n_feeders)
    for f, n_c in enumerate(counts):
        angle = 2 * math.pi * f / n_feeders + rng.uniform(-0.3, 0.3)
        _build_feeder(net, rng, n_c, angle)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for fname, text in _render(net, kva=kva, name=name).items():
        (folder / fname).write_text(text, encoding="ascii", newline="\n")
    logger.debug("synthetic network %s: %d buses, %d lines, %d loads in %s",
                 name, len(net.xy), len(net.lines), len(net.loads), folder)
    return folder / "Master.dss"


def default_network_dir(cache_root: str | os.PathLike) -> Path:
    """Folder of the embedded default network, written under ``cache_root`` if missing.

    The network (seed 0, 500 kVA, 4 feeders, 150 customers) is written to a temporary
    folder and renamed into place, so concurrent processes never see a half-written one.

    Parameters
    ----------
    cache_root : path
        Cache folder; the network goes to ``<cache_root>/embedded_default/``.

    Returns
    -------
    Path
        The network folder (holding ``Master.dss``).
    """
    root = Path(cache_root)
    target = root / DEFAULT_NETWORK_NAME
    if (target / "Master.dss").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_NETWORK_NAME}.", dir=root))
    try:
        tmp.chmod(0o755)
        write_synthetic_network(tmp, name=DEFAULT_NETWORK_NAME)
        os.rename(tmp, target)
        logger.info("embedded default network written to %s", target)
    except OSError:
        if not (target / "Master.dss").is_file():
            raise
        logger.debug("embedded default network already written by another process")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _split_customers(rng: np.random.Generator, n: int, n_feeders: int) -> list[int]:
    """Customers per feeder: uneven random shares (largest remainder), each >= 1."""
    weights = rng.uniform(0.6, 1.4, n_feeders)
    share = (n - n_feeders) * weights / weights.sum()
    counts = np.floor(share).astype(int)
    rest = (n - n_feeders) - counts.sum()
    counts[np.argsort(-(share - counts), kind="stable")[:rest]] += 1
    return [int(c) + 1 for c in counts]


def _build_feeder(net: _Net, rng: np.random.Generator, n_c: int, angle: float) -> None:
    """Trunk from the busbar, spurs off trunk joints, services to ``n_c`` customers."""
    n_joints = max(1, math.ceil(n_c / 3))
    n_trunk = max(1, min(n_joints, math.ceil(0.55 * n_joints)))
    trunk_code = _TRUNK_CODES[int(rng.random() < 0.35)]
    bus = net.extend(_BUSBAR, angle, rng.uniform(15, 40), trunk_code)  # supply cable
    trunk = [bus]
    for _ in range(n_trunk - 1):
        bus = net.extend(bus, angle + rng.uniform(-0.25, 0.25), rng.uniform(30, 50), trunk_code)
        trunk.append(bus)
    joints = list(trunk) + _build_branches(net, rng, trunk, n_joints - n_trunk, angle)
    per_joint = np.full(len(joints), n_c // len(joints))
    per_joint[rng.permutation(len(joints))[: n_c % len(joints)]] += 1
    phases = (rng.permutation(n_c) + rng.integers(3)) % 3 + 1
    k = 0
    for j, n_here in zip(joints, per_joint):
        for s in range(n_here):
            side = angle + (math.pi / 2 if s % 2 else -math.pi / 2) + rng.uniform(-0.6, 0.6)
            cust = net.extend(j, side, rng.uniform(8, 25), _SERVICE_CODE)
            net.loads.append((cust, int(phases[k])))
            k += 1


def _build_branches(net: _Net, rng: np.random.Generator, trunk: list[str], n_branch: int,
                    angle: float) -> list[str]:
    """Spurs of 2-4 joints off random trunk joints; returns the spur joints."""
    joints: list[str] = []
    while n_branch > 0:
        size = min(n_branch, int(rng.integers(2, 5)))
        root = trunk[int(rng.integers(len(trunk)))]
        side = angle + (math.pi / 2 if rng.random() < 0.5 else -math.pi / 2)
        bus = root
        for _ in range(size):
            bus = net.extend(bus, side + rng.uniform(-0.3, 0.3), rng.uniform(20, 40), _BRANCH_CODE)
            joints.append(bus)
        n_branch -= size
    return joints


def _transformer_pct(kva: float) -> tuple[float, float]:
    """(%R, %X) of an 11/0.416 kV distribution transformer of ``kva``."""
    z_pct = 4.0 if kva <= 300 else 4.75 if kva <= 1000 else 6.0
    r_pct = float(np.interp(math.log(kva), np.log(_TX_KVA), _TX_R_PCT))
    return r_pct, math.sqrt(z_pct**2 - r_pct**2)


def _render(net: _Net, *, kva: float, name: str) -> dict[str, str]:
    """File name -> text of every file of the network."""
    r_pct, x_pct = _transformer_pct(kva)
    master = [
        "Clear",
        "Set DefaultBaseFrequency=50  ! UK",
        f"New circuit.{name}",
        "Edit Vsource.Source BasekV=11 pu=1.00 ISC3=3000 ISC1=2500",
        "Redirect LineCode.txt", "Redirect Lines.txt", "Redirect Transformers.txt",
        "Redirect Loads.txt",
        "Set voltagebases=[11 .416]", "Calcvoltagebases", "Buscoords XY_Position.csv",
    ]
    codes = [f"New LineCode.{c} nphases=3 R1={z[0]:g} X1={z[1]:g} R0={z[2]:g} X0={z[3]:g} "
             f"C1=0 C0=0 Units=km Normamps={amps}" for c, (z, amps) in _LINECODES.items()]
    lines = [f"New Line.LINE{b2} Bus1={b1} Bus2={b2} phases=3 Linecode={code} "
             f"Length={length:.2f} Units=m" for b1, b2, code, length in net.lines]
    tx = (f"New Transformer.TR1 Buses=[SourceBus {_BUSBAR}] Conns=[Delta Wye] "
          f"kVs=[11 0.416] kVAs=[{kva:g} {kva:g}] XHL={x_pct:.4f} "
          f"%Rs=[{r_pct / 2:.4f} {r_pct / 2:.4f}]")
    loads = [f"New Load.LOAD{i} Phases=1 Bus1={bus}.{ph} kV=0.23 kW=1 PF=0.95"
             for i, (bus, ph) in enumerate(net.loads, start=1)]
    xy = ["Node,X,Y", f"SourceBus,{0.0:.2f},{0.0:.2f}"]
    xy += [f"{b},{x:.2f},{y:.2f}" for b, (x, y) in net.xy.items()]
    texts = {"Master.dss": master, "LineCode.txt": codes, "Lines.txt": lines,
             "Transformers.txt": [tx], "Loads.txt": loads, "XY_Position.csv": xy}
    return {k: "\n".join(v) + "\n" for k, v in texts.items()}
