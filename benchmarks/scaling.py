"""MPI strong scaling of the load-flow or EV stage: throughput and parallel efficiency on 1, 2,
4, ... ranks.

    python benchmarks/scaling.py [--stage loadflow|ev] [--max-ranks N] [--network DIR]
                                 [--days 2] [--cases 4]

``--stage ev``: the load flows and stages 3-6 run once beforehand; each R then times
``mpirun -n R python -m agileflex_hpc.ev`` over every zone (wall time of the command, start-up
included); throughput = zones / wall. Each R > 1 runs twice: zones split by the stage-6
estimate (a first round), and by the zone times a one-process run measured
(``ev/costs.csv``, as a later round or a rerun has them).

A fixed workload (one network x cases x days of 10-minute steps, 144-step blocks) is solved
with ``mpirun -n R python -m agileflex_hpc.loadflow`` for each R; inputs and manifests are
built once beforehand and copied, so every run times the same solve + write work. Throughput
is total steps / the slowest rank's wall time; efficiency = throughput(R) / (R x throughput(1)).
Target (issue 3): >= 90 % at 16 ranks on a 16-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NET = REPO.parent / "shared" / "networks" / "enwl" / "network_5"
CASES = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP", "50PV50HP", "75PV75HP",
         "100PV100HP"]

JOB = """
[run]
name = "scaling"
root = "out"
[time]
start = "2014-01-06"
days = {days}
[[network]]
name = "bench"
{path}
[cases]
names = {cases}
"""


def _mpirun() -> str:
    exe = shutil.which("mpirun") or str(Path(sys.executable).parent / "mpirun")
    if not Path(exe).exists():
        sys.exit("mpirun not found: pip install mpich (or load your site MPI)")
    return exe


def _run(cmd: list[str], cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr[-3000:]}")


def measure(job: Path, work: Path, ranks: int) -> dict:
    """Solve the job on ``ranks`` ranks from a copy of the prepared inputs; return totals."""
    run_dir = work / f"r{ranks}"
    shutil.copytree(work / "prepared", run_dir)
    summary = run_dir / "summary.json"
    cmd = [_mpirun(), "-n", str(ranks), sys.executable, "-m", "agileflex_hpc.loadflow",
           str(job), "--no-gather", "--log-level", "WARNING", "--summary-json", str(summary)]
    if ranks == 1:
        cmd = cmd[3:]
    _run(cmd, run_dir)
    rows = json.loads(summary.read_text())
    steps = sum(r["steps"] for r in rows)
    wall = max(r["wall_s"] for r in rows)
    return {"ranks": ranks, "steps": steps, "wall_s": wall, "steps_per_s": steps / wall}


def measure_ev(job: Path, work: Path, ranks: int, source: str = "prepared") -> dict:
    """The EV stage of the prepared job (``source``: the tree to copy) on ``ranks`` ranks;
    zones per second."""
    import time

    run_dir = work / f"ev{ranks}-{source}"
    shutil.copytree(work / source, run_dir)
    cmd = [_mpirun(), "-n", str(ranks), sys.executable, "-m", "agileflex_hpc.ev", str(job),
           "--log-level", "WARNING"]
    if ranks == 1:
        cmd = cmd[3:]
    started = time.perf_counter()
    _run(cmd, run_dir)
    wall = time.perf_counter() - started
    zones = len(list((run_dir / "out" / "scaling" / "ev").rglob("*.h5")))
    return {"ranks": ranks, "steps": zones, "wall_s": wall, "steps_per_s": zones / wall,
            "split": "measured" if source == "measured" else "estimate"}


def measured_tree(work: Path) -> None:
    """``work/measured``: the prepared tree plus ``ev/costs.csv`` from the one-process run
    (``work/ev1-prepared``), snapshot as the pipeline's single-job steps do."""
    shutil.copytree(work / "prepared", work / "measured")
    code = ("from agileflex_hpc.config import load_config; from agileflex_hpc.ev.costs import "
            "snapshot_costs; snapshot_costs(load_config('job.toml'))")
    _run([sys.executable, "-c", code], work / "ev1-prepared")
    costs = Path("out") / "scaling" / "ev" / "costs.csv"
    (work / "measured" / costs).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "ev1-prepared" / costs, work / "measured" / costs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=["loadflow", "ev"], default="loadflow")
    ap.add_argument("--max-ranks", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--network", type=Path, default=DEFAULT_NET if DEFAULT_NET.is_dir() else None)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--cases", type=int, default=4)
    args = ap.parse_args(argv)
    path = f'path = "{args.network}"' if args.network else ""
    ranks = [1]
    while ranks[-1] * 2 <= args.max_ranks:
        ranks.append(ranks[-1] * 2)
    if ranks[-1] != args.max_ranks:
        ranks.append(args.max_ranks)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepared = work / "prepared"
        prepared.mkdir()
        job = prepared / "job.toml"
        job.write_text(JOB.format(days=args.days, path=path,
                                  cases=json.dumps(CASES[:args.cases])))
        if args.stage == "ev":
            _run([sys.executable, "-m", "agileflex_hpc", "run", str(job), "--stages",
                  "loadflow,headroom", "--log-level", "WARNING"], prepared)
        else:
            _run([sys.executable, "-m", "agileflex_hpc.loadflow", str(job), "--no-gather",
                  "--log-level", "WARNING"], prepared)  # builds manifests + inputs, warms up
            shutil.rmtree(prepared / "out" / "scaling" / "raw")
        job = Path("job.toml")
        measure_one = measure_ev if args.stage == "ev" else measure
        results = [measure_one(job, work, r) for r in ranks]
        if args.stage == "ev" and len(ranks) > 1:
            measured_tree(work)
            results += [measure_ev(job, work, r, "measured") for r in ranks[1:]]
    base = results[0]["steps_per_s"]
    unit = "zones" if args.stage == "ev" else "steps"
    print(f"{args.stage}: network {args.network or 'embedded default'}, {results[0]['steps']} "
          f"{unit}, cpus {os.cpu_count()}")
    print(f"{'ranks':>5s} {'wall_s':>8s} {unit + '/s':>9s} {'speedup':>8s} {'efficiency':>10s}"
          + ("  split" if args.stage == "ev" else ""))
    for r in results:
        speed = r["steps_per_s"] / base
        print(f"{r['ranks']:5d} {r['wall_s']:8.2f} {r['steps_per_s']:9.1f} {speed:8.2f} "
              f"{100 * speed / r['ranks']:9.1f}%" + (f"  {r['split']}" if "split" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
