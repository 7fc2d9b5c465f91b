"""Report: PNG figures and one HTML page whose links resolve, on a short run with hand-made EV
zone files (so the report is tested apart from the EV optimiser)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from agileflex_hpc.cli import Workers
from agileflex_hpc.config import load_config
from agileflex_hpc.evcharging.dumb import dumb_charging_kw
from agileflex_hpc.evcharging.fleet import draw_fleet
from agileflex_hpc.evcharging.stage import zone_path
from agileflex_hpc.headroom.stage import hosting_path
from agileflex_hpc.report import build_report
from agileflex_hpc.report.__main__ import main as report_main
from agileflex_hpc.report.html import NetworkSection, render_index
from agileflex_hpc.report.plots import Plot, plot_network_map
from tests.conftest import write_job

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ["quantile_profiles", "vmin_vs_flow", "ev_headroom", "min_voltage", "network_map"]

JOB = """
[run]
name = "rep"
root = "{root}"
seed = 3
[time]
start = "2013-12-02"
days = 1
step_minutes = 30
block_steps = 48
[[network]]
name = "default"
[cases]
names = ["00PV00HP", "25PV50HP"]
"""


def write_zone_file(cfg, network: str, zone: str, zone_index: int, n: int) -> None:
    """An EV zone file written by the EV stage's own writer from a hand-made result: dumb
    charging as the 'optimised' schedule, plus 2 kW of V2G on the first EV's first step."""
    from agileflex_hpc.evcharging.attempts import AttemptsResult
    from agileflex_hpc.evcharging.milp import ScheduleResult
    from agileflex_hpc.evcharging.stage import ZoneTask, write_zone

    steps = cfg.time.steps_per_day
    fleet = draw_fleet(n, [3, zone_index], steps=steps, step_minutes=cfg.time.step_minutes)
    charge = dumb_charging_kw(fleet, steps=steps, step_minutes=cfg.time.step_minutes)
    discharge = np.zeros_like(charge)
    if n:
        t0 = int(fleet.t_in[0])
        charge[0, t0], discharge[0, t0] = 0.0, 2.0
    sched = ScheduleResult(status="optimal", feasible=True, objective_p=0.0, mip_gap=0.0,
                           solve_time_s=0.0, charge_kw=charge, discharge_kw=discharge,
                           energy_kwh=np.zeros_like(charge))
    res = AttemptsResult(n=n, n_start=n, confirmed=True, direction="up", stop_reason="cap",
                         fleet=fleet if n else None, schedule=sched if n else None)
    task = ZoneTask(0, network, 0, zone, zone_index, n, n, n)
    from agileflex_hpc import fingerprint

    key = fingerprint.Fingerprints(cfg).ev_zone(network, zone)
    write_zone(zone_path(cfg.out_dir, network, zone), cfg, task, res,
               fp_attrs=fingerprint.attrs(key))


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """Load flows + headroom of a 1-day run, hand-made EV files, validation, then the report."""
    from agileflex_hpc.__main__ import run_pipeline
    from agileflex_hpc.validate import body as validate_body

    tmp = tmp_path_factory.mktemp("rep")
    job = write_job(tmp, JOB.format(root=tmp / "Data"))
    cfg = load_config(job)
    run_pipeline(cfg, stages=("loadflow", "headroom"))
    with h5py.File(hosting_path(cfg.out_dir, "default"), "r") as f:
        zones = [z.decode() for z in f["zone"][()]]
        evs, customers = f["hosting/evs_estimate"][()], f["hosting/customers"][()]
    for z, zone in enumerate(zones):
        if customers[z] > 0:
            write_zone_file(cfg, "default", zone, z, int(min(evs[z], 4)))
    args = argparse.Namespace(dry_run=False, no_gather=False, gather=False)
    validate_body(cfg, Workers(0, 1, None, "single"), args)
    return job, cfg, build_report(cfg)


@pytest.mark.slow
def test_every_figure_is_a_png(report_run):
    _, cfg, _ = report_run
    folder = cfg.out_dir / "report" / "default"
    for name in FIGURES:
        path = folder / f"{name}.png"
        assert path.is_file(), name
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5000, name


@pytest.mark.slow
def test_index_links_resolve_and_tables_are_there(report_run):
    _, cfg, index = report_run
    text = index.read_text()
    assert text.startswith("<!DOCTYPE html>")
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(Path(s).stem for s in srcs) == sorted(FIGURES)
    for src in srcs + re.findall(r'<a href="([^"#][^"]*)"', text):
        assert not Path(src).is_absolute()
        assert (index.parent / src).is_file(), src
    assert "EVs and heat pumps per zone" in text and "Validation load flows" in text
    assert "evs_hosted" in text and "evs_estimate" in text
    assert "proved: smart charging" in text.lower()
    assert text.count("<table") >= 3  # validation overview, hosting summary, per-zone table
    assert "F1P1" in text and ">smart<" in text and ">dumb<" in text


@pytest.mark.slow
def test_report_cli_prints_the_page(report_run, capsys):
    job, cfg, index = report_run
    assert report_main([str(job)]) == 0
    out = capsys.readouterr().out
    assert f"report: {index.resolve()}" in out


def test_map_is_skipped_without_coordinates_and_noted(tmp_path):
    path = plot_network_map(tmp_path / "map.png", bus_names=np.array(["a", "b"]),
                            bus_xy=np.full((2, 2), np.nan), line_bus1=np.array(["a"]),
                            line_bus2=np.array(["b"]), bus_vmin_pu={"smart": np.ones(2)},
                            line_over={"smart": np.zeros(1, bool)}, v_min_pu=0.9)
    assert path is None and not (tmp_path / "map.png").exists()
    sec = NetworkSection("net1", tables={"Hosting summary": None},
                         plots=[Plot("network_map", "Network map", None, "no bus coordinates")])
    html = render_index(run="r", base=tmp_path, overview=None, sections=[sec])
    assert "no bus coordinates" in html and "<img" not in html
    assert "no validation report yet" in html


def test_map_with_coordinates_marks_overloads(tmp_path):
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 1.0]])
    path = plot_network_map(tmp_path / "map.png", bus_names=np.array(["a", "b", "c"]),
                            bus_xy=xy, line_bus1=np.array(["a", "b"]),
                            line_bus2=np.array(["b", "c"]),
                            bus_vmin_pu={"smart": np.array([1.0, 0.95, 0.93]),
                                         "dumb": np.array([1.0, 0.9, 0.85])},
                            line_over={"smart": np.zeros(2, bool),
                                       "dumb": np.array([True, False])}, v_min_pu=0.9)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
