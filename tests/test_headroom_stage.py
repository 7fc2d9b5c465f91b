"""Stages 3-6 on real stitched load flows: zones of ENWL network_5 against an independent
count from its files, and the hosting file's consistency with the stage's own outputs."""

import re
from collections import defaultdict

import h5py
import numpy as np
import pytest

from agileflex_hpc.config import load_config
from agileflex_hpc.gather import stitched_path
from agileflex_hpc.headroom.stage import compute_zones, hosting_path, run_network
from agileflex_hpc.loadflow.__main__ import main as loadflow_main
from agileflex_hpc.network.manifest import manifest_path, read_manifest
from tests.conftest import write_job

pytestmark = [pytest.mark.requires_opendss, pytest.mark.slow]

JOB = """
[run]
name = "n5"
root = "out"
[time]
start = "2014-01-06"
days = 2
step_minutes = 60
block_steps = 24
[[network]]
name = "network_5"
path = "{path}"
unrated_rating_a = 400  # 189 lines have no NormAmps (none a supply cable)
[cases]
names = ["00PV00HP", "25PV75HP"]
"""


def _independent_zone_counts(folder):
    """Customers per (feeder, phase) by a plain BFS over Lines.txt from the busbar (bus 11),
    feeders numbered in the order their first line appears in Lines.txt."""
    edges = defaultdict(set)
    order = []
    for m in re.finditer(r"Bus1=(\S+)\s+Bus2=(\S+)", (folder / "Lines.txt").read_text()):
        a, b = m.group(1).split(".")[0], m.group(2).split(".")[0]
        edges[a].add(b)
        edges[b].add(a)
        if "11" in (a, b):
            order.append(b if a == "11" else a)
    feeder_of = {}
    for k, start in enumerate(order):
        stack = [start]
        while stack:
            bus = stack.pop()
            if bus in feeder_of or bus == "11":
                continue
            feeder_of[bus] = k
            stack.extend(edges[bus])
    counts = defaultdict(int)
    for m in re.finditer(r"Bus1=(\w+)\.(\d)", (folder / "Loads.txt").read_text()):
        counts[(feeder_of[m.group(1)], int(m.group(2)))] += 1
    return order, counts


@pytest.fixture(scope="module")
def network_5_run(tmp_path_factory, shared_dir):
    tmp = tmp_path_factory.mktemp("n5")
    folder = shared_dir / "networks" / "enwl" / "network_5"
    job = write_job(tmp, JOB.format(path=folder))
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    return load_config(job), folder


def test_stage3_zones_of_network_5(network_5_run):
    cfg, folder = network_5_run
    m = read_manifest(manifest_path(cfg.out_dir, "network_5"))
    order, counts = _independent_zone_counts(folder)
    assert m.topology.n_feeders == len(order) == 8
    expected = [counts.get((f, p), 0) for f in range(8) for p in (1, 2, 3)]
    assert m.topology.zone_customers.tolist() == expected
    zd = compute_zones(stitched_path(cfg.out_dir / "raw", "network_5", "25PV75HP"), m)
    assert zd.vmin_pu.shape == (48, 24) and zd.converged.all()
    # Vmin of a zone is the minimum of the stored bus voltages of its feeder on that phase
    with h5py.File(stitched_path(cfg.out_dir / "raw", "network_5", "25PV75HP")) as f:
        v = f["loadflow/v_pu"][()]
        s = f["loadflow/s_kva"][()]
    f3 = m.topology.feeder_buses[2]
    np.testing.assert_array_equal(zd.vmin_pu[:, 3 * 2 + 1], np.nanmin(v[:, f3, 1], axis=1))
    supply = m.topology.supply_lines[2][0]
    np.testing.assert_allclose(zd.pflow_kva[:, 3 * 2 + 2], s[:, supply, 2])


def test_stages_3_to_6_outputs(network_5_run):
    cfg, _ = network_5_run
    summary = run_network(cfg, "network_5")
    assert len(summary) == 24 and (summary["evs_estimate"] <= summary["customers"]).all()
    with h5py.File(hosting_path(cfg.out_dir, "network_5")) as f:
        evs = f["hosting/evs_estimate"][()]
        energy = f["hosting/energy_kwh"][()]
        case = f["hosting/case_index"][()]
        customers = f["hosting/customers"][()]
        assert f["hosting/headroom_q_kva"].shape == (2, 24, 24)
    picked = energy[case, np.arange(24)]
    expected = np.clip(np.floor(np.nan_to_num(picked) / 14.2), 0, customers)
    np.testing.assert_array_equal(evs, expected)
    assert (evs[customers == 0] == 0).all()
