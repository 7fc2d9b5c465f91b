"""The embedded synthetic LV network: layout, determinism, topology and an OpenDSS solve."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from agileflex_hpc.network.synthetic import default_network_dir, write_synthetic_network
from tests.conftest import require_module

FILES = ("Master.dss", "LineCode.txt", "Lines.txt", "Transformers.txt", "Loads.txt",
         "XY_Position.csv")


def _props(line: str) -> dict[str, str]:
    return {k.lower(): v for k, v in re.findall(r"(\S+?)=(\[[^\]]*\]|\S+)", line)}


def _lines(folder: Path, name: str) -> list[str]:
    return [ln for ln in (folder / name).read_text().splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def default_net(tmp_path_factory) -> Path:
    return write_synthetic_network(tmp_path_factory.mktemp("net")).parent


def test_layout_like_enwl(default_net):
    assert all((default_net / f).is_file() for f in FILES)
    master = (default_net / "Master.dss").read_text()
    assert "DefaultBaseFrequency=50" in master
    assert re.search(r"^New circuit\.\S+", master, re.M)
    assert "Edit Vsource.Source BasekV=11 pu=1.00 ISC3=3000 ISC1=2500" in master
    for f in FILES[1:5]:
        assert f"Redirect {f}" in master
    assert "Set voltagebases=[11 .416]" in master and "Calcvoltagebases" in master
    assert not re.search(r"^\s*solve", master, re.M | re.I)
    (tx,) = _lines(default_net, "Transformers.txt")
    p = _props(tx)
    assert tx.startswith("New Transformer.TR1 ") and p["buses"] == "[SourceBus 11]"
    assert p["conns"] == "[Delta Wye]" and p["kvs"] == "[11 0.416]" and p["kvas"] == "[500 500]"
    r_pct = sum(float(v) for v in p["%rs"].strip("[]").split())
    z_pct = np.hypot(r_pct, float(p["xhl"]))
    assert 0.7 <= r_pct <= 1.6 and 4.0 <= z_pct <= 5.5  # 500 kVA 11 kV/LV unit


def test_linecodes_realistic(default_net):
    codes = {ln.split()[1].split(".", 1)[1]: _props(ln)
             for ln in _lines(default_net, "LineCode.txt")}
    r1 = {c: float(p["r1"]) for c, p in codes.items()}
    amps = {c: float(p["normamps"]) for c, p in codes.items()}
    assert all(p["units"] == "km" and p["nphases"] == "3" for p in codes.values())
    # published-like 300/185/95 mm² Waveform and 35 mm² CNE service cables
    for r_ohm_km, a in ((0.100, 465), (0.164, 355), (0.32, 245), (0.87, 122)):
        assert any(abs(r1[c] - r_ohm_km) < 0.02 and abs(amps[c] - a) < 15 for c in codes)


def _tree(folder: Path):
    children, lengths, parent = defaultdict(list), {}, {}
    for ln in _lines(folder, "Lines.txt"):
        p = _props(ln)
        assert p["phases"] == "3" and p["units"] == "m"
        children[p["bus1"]].append(p["bus2"])
        assert p["bus2"] not in parent, "radial: one supply per bus"
        parent[p["bus2"]] = p["bus1"]
        lengths[p["bus2"]] = float(p["length"])
    return children, lengths, parent


def test_radial_feeders_and_lengths(default_net):
    children, lengths, parent = _tree(default_net)
    assert len(children["11"]) == 4
    dist = {"11": 0.0}
    stack = ["11"]
    while stack:
        b = stack.pop()
        for c in children[b]:
            dist[c] = dist[b] + lengths[c]
            stack.append(c)
    assert set(dist) == set(parent) | {"11"}, "every bus reachable from the busbar"
    assert all(b.isdigit() for b in dist)
    assert all(2 <= m <= 60 for m in lengths.values())
    reach = [max(dist[b] for b in dist if _feeder_of(b, parent) == f) for f in children["11"]]
    assert all(150 <= r <= 900 for r in reach), reach


def _feeder_of(bus: str, parent: dict[str, str]) -> str | None:
    while bus in parent and parent[bus] != "11":
        bus = parent[bus]
    return bus if bus in parent else None


@pytest.mark.parametrize(("n_feeders", "n_customers"), [(4, 150), (3, 37), (1, 1)])
def test_customers_and_phase_spread(tmp_path, n_feeders, n_customers):
    folder = write_synthetic_network(tmp_path, n_feeders=n_feeders, n_customers=n_customers,
                                     seed=3).parent
    loads = [_props(ln) for ln in _lines(folder, "Loads.txt")]
    assert len(loads) == n_customers
    assert all(p["phases"] == "1" and p["kv"] == "0.23" and p["kw"] == "1" and p["pf"] == "0.95"
               for p in loads)
    buses, phases = zip(*(p["bus1"].split(".") for p in loads))
    assert len(set(buses)) == n_customers and all(b.isdigit() for b in buses)
    counts = np.bincount([int(x) for x in phases], minlength=4)[1:]
    assert counts.sum() == n_customers and counts.max() - counts.min() <= max(2, n_customers // 10)
    children, _, parent = _tree(folder)
    assert len(children["11"]) == n_feeders
    assert all(_feeder_of(b, parent) for b in buses)


def test_xy_positions(default_net):
    rows = _lines(default_net, "XY_Position.csv")
    assert rows[0] == "Node,X,Y"
    nodes = {r.split(",")[0] for r in rows[1:]}
    _, _, parent = _tree(default_net)
    assert set(parent) | {"11"} <= nodes
    xy = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    assert np.abs(xy).max() < 2000  # metres around the substation


def test_deterministic_bytes(tmp_path):
    a = write_synthetic_network(tmp_path / "a", seed=7).parent
    b = write_synthetic_network(tmp_path / "b", seed=7).parent
    c = write_synthetic_network(tmp_path / "c", seed=8).parent
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in FILES)
    assert (a / "Lines.txt").read_bytes() != (c / "Lines.txt").read_bytes()


@pytest.mark.parametrize("kwargs", [{"n_feeders": 0}, {"n_customers": 2, "n_feeders": 3},
                                    {"kva": 0}, {"seed": -1}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        write_synthetic_network(tmp_path, **kwargs)


def test_default_network_dir_idempotent(tmp_path):
    folder = default_network_dir(tmp_path)
    assert folder == tmp_path / "embedded_default" and (folder / "Master.dss").is_file()
    stamp = (folder / "Lines.txt").stat().st_mtime_ns
    assert default_network_dir(tmp_path) == folder
    assert (folder / "Lines.txt").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["embedded_default"]  # no temp leftovers
    ref = write_synthetic_network(tmp_path / "ref", name="embedded_default").parent
    assert all((folder / f).read_bytes() == (ref / f).read_bytes() for f in FILES)


def _solve(dss, kw: float) -> tuple[bool, np.ndarray]:
    for name in dss.Loads.AllNames():
        dss.Loads.Name(name)
        dss.Loads.kW(kw)
    dss.Solution.Solve()
    v = np.asarray(dss.Circuit.AllBusMagPu())
    lv = [not n.lower().startswith("sourcebus") for n in dss.Circuit.AllNodeNames()]
    return bool(dss.Solution.Converged()), v[np.array(lv)]


@pytest.mark.requires_opendss
def test_solves_in_opendss(default_net):
    os.environ["OPENDSSDIRECT_PY_USE_NUMPY"] = "1"
    dss = require_module("opendssdirect")
    dss.Text.Command(f"Compile [{default_net / 'Master.dss'}]")
    assert dss.Loads.Count() == 150 and dss.Transformers.Count() == 1
    converged, v = _solve(dss, 1.0)
    assert converged and v.min() >= 0.94 and v.max() <= 1.1
    converged, v2 = _solve(dss, 2.0)  # about the winter ADMD
    assert converged and 0.90 <= v2.min() <= 0.985 and v2.min() < v.min()
    assert abs(complex(*dss.Circuit.TotalPower()[:2])) < 500  # transformer not overloaded
