"""Feeders and zones from the graph, on a hand-built network and on every shared network."""

import re
from pathlib import Path

import numpy as np
import pytest

from agileflex_hpc.errors import NetworkError
from agileflex_hpc.network.engine import DssNetwork
from agileflex_hpc.network.topology import derive_topology
from tests.conftest import TINY_MASTER

pytestmark = pytest.mark.requires_opendss

TWO_FEEDERS = TINY_MASTER.replace("Set voltagebases", """\
New Line.spare Bus1=11 Bus2=9 phases=3 Linecode=lc Length=20 Units=m
New Line.L3a Bus1=11 Bus2=4 phases=3 Linecode=lc Length=30 Units=m
New Line.L3b Bus1=11 Bus2=4 phases=3 Linecode=lc Length=30 Units=m
New Line.L4 Bus1=4 Bus2=5 phases=3 Linecode=lc Length=30 Units=m
New Load.C3 Phases=1 Bus1=5.3 kV=0.23 kW=1 PF=0.95
New Load.C4 Phases=3 Bus1=4 kV=0.4 kW=3 PF=0.95
Set voltagebases""")


def test_feeders_supply_cables_and_zones(tmp_path):
    master = tmp_path / "Master.dss"
    master.write_text(TWO_FEEDERS)
    net = DssNetwork(master)
    topo = derive_topology(net)
    lines = list(net.line_names)
    assert topo.busbar == "11"
    assert topo.n_feeders == 2  # the spare cable to bus 9 supplies nobody
    assert [sorted(lines[i] for i in s) for s in topo.supply_lines] == [["l1"], ["l3a", "l3b"]]
    assert sorted(net.bus_names[topo.feeder_buses[1]]) == ["4", "5"]
    assert topo.supply_rating_a.tolist() == [100.0, 200.0]  # parallel cables add up
    assert topo.zone_ids == ["F1P1", "F1P2", "F1P3", "F2P1", "F2P2", "F2P3"]
    # C1, C2 on feeder 1 phases 1, 2; C3 on feeder 2 phase 3; C4 three-phase counts thrice
    assert topo.zone_customers.tolist() == [1, 1, 0, 1, 1, 2]


def test_load_on_an_isolated_bus_is_an_error(tmp_path):
    master = tmp_path / "Master.dss"
    master.write_text(TINY_MASTER.replace("Set voltagebases",
                                          "New Load.lost Phases=1 Bus1=77.1 kV=0.23 kW=1\n"
                                          "Set voltagebases"))
    with pytest.raises(NetworkError, match="lost on bus 77"):
        derive_topology(DssNetwork(master))


def _loads_by_feeder_from_files(folder: Path) -> int:
    text = "".join(p.read_text() for p in folder.glob("Load*"))
    return len(re.findall(r"(?im)^\s*New\s+Load\.", text))


def test_enwl_networks_feeders_and_customers(shared_dir):
    expected = {"network_1": (4, 200), "network_5": (8, 335)}  # shared/networks/README.md
    for name, (feeders, customers) in expected.items():
        net = DssNetwork(shared_dir / "networks" / "enwl" / name / "Master.dss")
        topo = derive_topology(net)
        assert topo.n_feeders == feeders, name
        assert len(net.load_names) == customers
        assert (topo.load_feeder >= 0).all()
        assert topo.zone_customers.sum() == customers  # all single-phase


def test_every_lvns_feeder_circuit(shared_dir):
    folders = sorted((shared_dir / "networks" / "enwl-lvns").glob("network_*/Feeder_*"))
    assert len(folders) >= 40
    for folder in folders:
        net = DssNetwork(folder / "Master.dss")
        topo = derive_topology(net)
        n_loads = _loads_by_feeder_from_files(folder)
        assert len(net.load_names) == n_loads, folder
        assert topo.n_feeders >= 1 and (topo.load_feeder >= 0).all(), folder
        three = (topo.load_phase == 0).sum()
        assert topo.zone_customers.sum() == n_loads + 2 * three, folder
        # each circuit is one ENWL feeder, but a busbar may feed two cables
        assert np.all(topo.supply_rating_a > 0)


def test_single_phase_load_without_node_suffix_is_on_phase_1(tmp_path):
    master = tmp_path / "Master.dss"
    master.write_text(TINY_MASTER.replace("Set voltagebases",
                                          "New Load.bare Phases=1 Bus1=2 kV=0.23 kW=1\n"
                                          "Set voltagebases"))
    net = DssNetwork(master)
    topo = derive_topology(net)
    k = list(net.load_names).index("bare")
    assert net.load_phase[k] == 1 and topo.load_zone[k] == 0
    assert topo.zone_customers.tolist() == [2, 1, 0]


def test_supply_flow_is_oriented_from_the_busbar(tmp_path):
    """A supply cable written feeder -> busbar (Bus1 = the feeder end) still reports import
    into the feeder as positive flow."""
    from agileflex_hpc.headroom import zone_series
    from agileflex_hpc.headroom.stage import supply_signs
    from agileflex_hpc.network.manifest import build_manifest

    flows = {}
    for name, line in [("forward", "Bus1=11 Bus2=2"), ("reversed", "Bus1=2 Bus2=11")]:
        master = tmp_path / name / "Master.dss"
        master.parent.mkdir()
        master.write_text(TINY_MASTER.replace("New Line.L1 Bus1=11 Bus2=2", f"New Line.L1 {line}"))
        net = DssNetwork(master)
        out = net.run(np.array([[4.0, 2.0]]), None, np.zeros((1, 2)))
        m = build_manifest(name, net)
        topo = m.topology
        flows[name] = zone_series(out.v_pu, out.i_a, out.s_kva,
                                  feeder_buses=list(topo.feeder_buses),
                                  feeder_lines=list(topo.feeder_lines),
                                  supply_lines=list(topo.supply_lines),
                                  line_rating_a=m.line_rating_a,
                                  supply_sign=supply_signs(m)).pflow_kva
    # line flows are taken at the line's Bus1 terminal: for the reversed cable that is its
    # feeder end, so the cable's own losses (here ~0.4 %) are not in the reported flow
    np.testing.assert_allclose(flows["reversed"], flows["forward"], rtol=1e-2)
    assert (flows["reversed"][0, :2] < flows["forward"][0, :2]).all()
    assert flows["forward"][0, 0] > 4.0 and flows["forward"][0, 2] == 0.0


def test_an_upstream_transformer_is_refused_and_parallel_ones_accepted(tmp_path):
    """Stage 5 sums the transformers' ratings and flows: a second transformer is fine in
    parallel onto the LV busbar, an upstream 33/11 kV one would count the import twice."""
    upstream = TINY_MASTER.replace("New Transformer.TR1 Buses=[SourceBus 11]",
                                   "New Transformer.UP Buses=[SourceBus mv] Conns=[Delta Delta] "
                                   "kVs=[33 11] kVAs=[5000 5000] XHL=8\n"
                                   "New Transformer.TR1 Buses=[mv 11]") \
        .replace("BasekV=11", "BasekV=33").replace("voltagebases=[11 .416]",
                                                   "voltagebases=[33 11 .416]")
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "Master.dss").write_text(upstream)
    with pytest.raises(NetworkError, match="transformer.s. up do not connect to the LV busbar"):
        derive_topology(DssNetwork(tmp_path / "up" / "Master.dss"))
    parallel = TINY_MASTER.replace("Set voltagebases", "New Transformer.TR2 Buses=[SourceBus 11] "
                                   "Conns=[Delta Wye] kVs=[11 0.416] kVAs=[100 100] XHL=2\n"
                                   "Set voltagebases")
    (tmp_path / "par").mkdir()
    (tmp_path / "par" / "Master.dss").write_text(parallel)
    net = DssNetwork(tmp_path / "par" / "Master.dss")
    assert derive_topology(net).busbar == "11" and net.transformer_kva.tolist() == [100, 100]
