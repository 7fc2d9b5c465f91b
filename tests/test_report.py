"""Report: PNG figures and one HTML page whose links resolve, on a short run with hand-made EV
zone files (so the report is tested apart from the EV optimiser)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from agileflex_hpc import h5io
from agileflex_hpc.cli import Workers
from agileflex_hpc.config import load_config
from agileflex_hpc.ev.dumb import dumb_charging_kw
from agileflex_hpc.ev.fleet import draw_fleet
from agileflex_hpc.ev.stage import zone_path
from agileflex_hpc.headroom.stage import hosting_path
from agileflex_hpc.report import build_report
from agileflex_hpc.report.__main__ import main as report_main
from agileflex_hpc.report.html import NetworkSection, Table, render_index
from agileflex_hpc.report.plots import Plot, plot_network_map
from tests.conftest import require, write_job

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
    from agileflex_hpc.ev.attempts import AttemptsResult
    from agileflex_hpc.ev.milp import ScheduleResult
    from agileflex_hpc.ev.stage import ZoneTask, write_zone

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
    from agileflex_hpc.pipeline import run_pipeline
    from agileflex_hpc.validate.stage import run_validation

    tmp = tmp_path_factory.mktemp("rep")
    job = write_job(tmp, JOB.format(root=tmp / "Data"))
    cfg = load_config(job)
    run_pipeline(cfg, stages=("loadflow", "headroom"))
    with h5py.File(hosting_path(cfg.out_dir, "default"), "r") as f:
        zones = h5io.decode_strings(f["zone"][()])
        evs, customers = f["hosting/evs_estimate"][()], f["hosting/customers"][()]
    for z, zone in enumerate(zones):
        if customers[z] > 0:
            write_zone_file(cfg, "default", zone, z, int(min(evs[z], 4)))
    run_validation(cfg, Workers(0, 1, None, "single"))
    index, drawn = build_report(cfg)
    assert drawn
    return job, cfg, index


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
    csvs = re.findall(r'<a class="csv" href="([^"]+)"', text)
    assert {Path(c).name for c in csvs} >= {"overview.csv", "hosting.csv",
                                            "validation_summary.csv", "validation_zones.csv"}
    for src in srcs + re.findall(r'<a[^>]* href="([^"#][^"]*)"', text):
        assert not Path(src).is_absolute()
        assert (index.parent / src).is_file(), src
    # the answer first, then the tables, the run parameters and the terms
    order = [text.index(h) for h in ("The answer, per network", "Hosting per zone",
                                     "Share of time steps with a violation", "Figures",
                                     "Run parameters", "Terms")]
    assert order == sorted(order)
    assert "EVs hosted" in text and "EVs estimated" in text and "Binding limit" in text
    assert "evs_hosted" not in text and "pct_tx_overload" not in text  # no raw codes
    assert "proved: smart charging" in text.lower()
    assert "F1P1" in text and ">smart charging<" in text and ">uncontrolled<" in text
    # the hosting CSV is the machine-readable table (machine names), the page's source
    hosting = pd.read_csv(index.parent / "default" / "hosting.csv")
    assert {"evs_hosted", "evs_estimate", "hps"} <= set(hosting.columns)
    assert f"{cfg.time.start} to " in text and ", ".join(cfg.cases.names) in text


@pytest.mark.slow
def test_report_cli_prints_the_page_and_keeps_an_unchanged_one(report_run, capsys):
    job, cfg, index = report_run
    before = index.stat().st_mtime_ns
    assert report_main([str(job)]) == 0
    cap = capsys.readouterr()
    assert f"report: {index.resolve()}" in cap.out
    # the answer, as a SLURM run's last log shows it: hosted EVs from the zone files
    hosted = sum(int(h5py.File(p, "r").attrs["n_evs"])
                 for p in (cfg.out_dir / "ev" / "default").glob("*.h5"))
    assert f"default: {hosted} EVs hosted (estimate " in cap.out
    assert index.stat().st_mtime_ns == before  # same results: the page is not redrawn
    assert "report up to date" in cap.err
    figure = index.parent / "default" / "min_voltage.png"
    drawn = figure.stat().st_mtime_ns
    assert report_main([str(job), "--force"]) == 0
    assert figure.stat().st_mtime_ns != drawn  # drawn again
    assert index.stat().st_mtime_ns == before  # the same page text is not rewritten


@pytest.mark.slow
def test_page_renders_in_a_real_browser_with_its_key_numbers(report_run, tmp_path):
    """Headless Chromium renders the page: the DOM it builds holds the answer's numbers
    (computed here from the machine-readable CSV), and the screenshot is not blank."""
    browser = chromium()
    _, cfg, index = report_run
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'ud'}",
                          "--dump-dom", index.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    hosting = pd.read_csv(index.parent / "default" / "hosting.csv")
    live = hosting[hosting["customers"] > 0]
    overview = re.search(r"The answer, per network.*?</table>", dom.stdout, re.S).group(0)
    cells = re.findall(r"<td>([^<]*)</td>", overview)
    assert cells[:6] == ["default", str(hosting["customers"].sum()), str(len(live)),
                         str(hosting["hps"].sum()), str(hosting["evs_hosted"].sum()),
                         str(hosting["evs_estimate"].sum())], cells
    assert "proved" in cells
    shot = tmp_path / "page.png"
    res = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'ud'}",
                          "--window-size=1280,2400", f"--screenshot={shot}", index.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    # the page is laid out within the window: nothing wider than it (tables scroll inside)
    assert (pixels[:, -10:] > 250).mean() > 0.99


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def chromium() -> str:
    """The headless browser, or skip (fail under CI: scripts/test.sh installs it)."""
    import shutil

    path = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                   "google-chrome"))), None)
    require(path is not None, "chromium for the report's browser test (scripts/test.sh "
                              "installs it)")
    assert path is not None
    return path


def test_map_is_skipped_without_coordinates_and_noted(tmp_path):
    path = plot_network_map(tmp_path / "map.png", bus_names=np.array(["a", "b"]),
                            bus_xy=np.full((2, 2), np.nan), line_bus1=np.array(["a"]),
                            line_bus2=np.array(["b"]), bus_vmin_pu={"smart": np.ones(2)},
                            line_over={"smart": np.zeros(1, bool)}, v_min_pu=0.9)
    assert path is None and not (tmp_path / "map.png").exists()
    sec = NetworkSection("net1", tables=[Table("Hosting summary", None)],
                         plots=[Plot("network_map", "Network map", None, "no bus coordinates")])
    html = render_index(run="r", base=tmp_path, sections=[sec],
                        overview=Table("The answer", None, missing="no answer yet"))
    assert "no bus coordinates" in html and "<img" not in html
    assert "no answer yet" in html


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


def test_zone_grids_stay_readable_at_24_zones(tmp_path):
    """8 feeders x 3 phases: the grid wraps to 4 feeders per row, so the figure stays about
    a page wide, and every panel is labelled."""
    from PIL import Image

    from agileflex_hpc.report.plots import plot_quantile_profiles

    rng = np.random.default_rng(0)
    zones = [f"F{f}P{p}" for f in range(1, 9) for p in range(1, 4)]
    head = rng.normal(20, 5, (2, 48, 24))
    path = plot_quantile_profiles(tmp_path / "q.png", zone_ids=zones, cases=["a", "b"],
                                  head_q_kva=head, foot_q_kva=head + 10,
                                  assigned=np.zeros(24, int), customers=np.ones(24, int),
                                  step_minutes=30, quantile=0.02)
    with Image.open(path) as im:
        width, height = im.size
    assert width <= 1300 and height > width  # two blocks of 4 feeders, not 8 columns


@pytest.mark.slow
def test_a_stale_page_is_stale_in_status_and_redrawing_leaves_no_old_tables(report_run,
                                                                            tmp_path):
    """Another quantile makes stages 5-8 stale: ``status`` must say the page is stale too, and
    redrawing it must not leave the old hosting table or figures beside the new page."""
    import shutil

    from agileflex_hpc.status import stage_status

    job, cfg, index = report_run
    assert {r[0]: r[1:3] for r in stage_status(cfg)}["report"] == (1, 1)
    root = tmp_path / "Data"  # a copy, drawn again for its own root (the page shows it)
    shutil.copytree(cfg.out_dir.parent, root)
    same = load_config(write_job(tmp_path, JOB.format(root=root)))
    assert {r[0]: r[1:3] for r in stage_status(same)}["report"] == (0, 1)
    build_report(same)
    assert {r[0]: r[1:3] for r in stage_status(same)}["report"] == (1, 1)
    old_csv = same.out_dir / "report" / "default" / "hosting.csv"
    assert old_csv.is_file()
    text = JOB.format(root=root) + "[headroom]\nquantile = 0.05\n"
    other = load_config(write_job(tmp_path, text, name="other.toml"))
    row = {r[0]: r for r in stage_status(other)}["report"]
    assert row[1:3] == (0, 1) and "stale" in row[3][0]
    _, drawn = build_report(other)
    assert drawn and not old_csv.exists()  # its hosting table is stale: no CSV of it is left
    assert not list((other.out_dir / "report" / "default").glob("quantile_profiles.png"))
    assert {r[0]: r for r in stage_status(other)}["report"][1:3] == (1, 1)


@pytest.mark.slow
def test_status_knows_whether_the_loop_recorded_the_last_validation(report_run, tmp_path):
    """A SLURM chain once ended without the replan after its last validation: rounds.csv and
    the report lacked that round while status said every stage was ok."""
    import shutil

    from agileflex_hpc.replan import replan
    from agileflex_hpc.status import stage_status

    _, cfg, _ = report_run
    root = tmp_path / "Data"
    shutil.copytree(cfg.out_dir.parent, root)
    copy = load_config(write_job(tmp_path, JOB.format(root=root) + "[validate]\nmax_rounds = 1\n"))

    def loop_row():
        return {r[0]: r for r in stage_status(copy)}["plan-validate loop"]

    row = loop_row()
    assert row[1:3] == (0, 1) and "round 1's validation is not recorded" in row[3][0]
    assert replan(copy) is False  # one round allowed: recorded, no further round
    assert loop_row()[1:3] == (1, 1)
    history = pd.read_csv(copy.out_dir / "replan" / "rounds.csv")
    assert set(history["round"]) == {1}
