"""End to end: ``python -m agileflex_hpc run JOB`` on a short copy of the demo, every stage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from agileflex_hpc import h5io
from tests.conftest import REPO, SHORT_DEMO, write_job

DEMO = REPO / "jobs" / "demo.toml"

# the demo job, shortened: 2 days of 30-min steps, one block per day, 2 confirming EV attempts
def test_short_demo_matches_the_demo_job():
    """The short job differs from jobs/demo.toml only where it says so."""
    from agileflex_hpc.config import load_config, parse_config

    demo = load_config(DEMO)
    short = parse_config(SHORT_DEMO, base_dir=DEMO.parent)
    assert short.cases == demo.cases and short.networks == demo.networks
    assert short.time.start == demo.time.start and short.run.seed == demo.run.seed


@pytest.mark.slow
def test_pipeline_runs_every_stage(tmp_path):
    job = write_job(tmp_path, SHORT_DEMO)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}"}
    res = subprocess.run([sys.executable, "-m", "agileflex_hpc", "run", str(job)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    out = tmp_path / "Data" / "demo_short"
    cases = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP"]
    expected = [out / "networks" / "default" / "network.h5", out / "hosting" / "default.h5",
                out / "headroom" / "default" / "limits.h5",
                out / "validation" / "default" / "report.h5"]
    expected += [out / d / "default" / f"{c}.h5" for d in ("inputs", "zones", "headroom")
                 for c in cases]
    expected += [out / "raw" / "default" / f"{c}.h5" for c in cases]
    expected += [out / "validation" / sub / "default" / f"{k}.h5" for k in
                 ("none", "smart", "dumb") for sub in ("inputs", "raw")]
    missing = [str(p) for p in expected if not h5io.is_complete(p)]
    assert not missing, missing
    assert list((out / "ev" / "default").glob("*.h5")), "no EV zone files"
    assert "== hosting summary: default ==" in res.stdout
    assert "== validation report (round 1) ==" in res.stdout
    # the console ends with the final round's answer, as the files hold it
    answer = pd.read_csv(out / "hosting" / "default_summary.csv")
    proof = pd.read_csv(out / "validation" / "proof.csv")
    last = int(pd.read_csv(out / "replan" / "rounds.csv")["round"].max())
    tail = res.stdout.split("== the answer (final plan-validate round) ==\n")[1]
    assert tail.startswith(
        f"default: {int(answer['evs_hosted'].sum())} EVs hosted (estimate "
        f"{int(answer['evs_estimate'].sum())}), {int(answer['hps'].sum())} heat pumps; "
        + ("proved" if proof.empty else "NOT proved: ") + ("" if proof.empty else
                                                          f"{proof['violation'].iloc[0]} in "))
    assert f"(round {last} of at most 5)" in tail.splitlines()[0]
    table = pd.read_csv(out / "validation" / "report.csv")
    assert set(table["kind"]) == {"none", "smart", "dumb"} and (table["nonconverged"] == 0).all()
    index = out / "report" / "index.html"
    assert index.is_file() and f"report: {index.resolve()}" in res.stdout
    assert len(list((out / "report" / "default").glob("*.png"))) == 5

    # a rerun with nothing changed: every stage finds its results current, writes nothing
    # and says so (no rate for work it did not do)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    dry = subprocess.run([sys.executable, "-m", "agileflex_hpc", "run", str(job), "--dry-run"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "would run" in dry.stdout and "MISSING" not in dry.stdout
    check = subprocess.run([sys.executable, "-m", "agileflex_hpc", "status", str(job),
                            "--check"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0, check.stdout  # every row current, the loop and page too
    again = subprocess.run([sys.executable, "-m", "agileflex_hpc", "run", str(job)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    changed = [str(p) for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert changed == [], changed
    log = again.stderr + again.stdout
    steps = len(cases) * 2 * 48  # SHORT_DEMO: 2 days of 30-minute steps
    assert f"loadflow: {steps}/{steps} steps, all up to date" in log
    assert "steps/s, ETA" not in log  # no rate for skipped work
    assert "zones up to date" in log and "report up to date" in log
