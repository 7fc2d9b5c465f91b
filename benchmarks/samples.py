"""How the hosting numbers settle as the Monte Carlo samples grow: one network, S = 1, 4, 16.

    python benchmarks/samples.py [--network DIR] [--samples 1 4 16] [--days 7] [--out DIR]

Runs stages 1-7 of one network (the study's five cases, ``--days`` of 10-minute steps) with
``[cases] samples = S`` for each S, in one output tree: a larger S reuses the load flows of the
samples it shares with a smaller one (sample s is the same draw whatever S is). Prints, per
zone, the pooled EV estimate, its range over the samples and the EVs hosted (stage 7), then
the totals and the wall time of each S. Default network: ``../shared/networks/enwl/network_1``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's package, not whichever one is installed
DEFAULT_NET = REPO.parent / "shared" / "networks" / "enwl" / "network_1"

JOB = """
[run]
name = "samples"
root = "{root}"
seed = 1
[time]
start = "2013-12-02"
days = {days}
[[network]]
name = "{name}"
path = "{path}"
unrated_rating_a = 400  # where the files rate no line, as OpenDSS would (reported)
[cases]
names = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP"]
samples = {samples}
"""


def run_one(out: Path, network: Path, samples: int, days: int) -> tuple[pd.DataFrame, float]:
    """Stages 1-7 with ``samples``; returns the network's answer table and the wall time."""
    from agileflex_hpc.config import load_config
    from agileflex_hpc.ev.stage import hosting_answer
    from agileflex_hpc.pipeline import run_pipeline

    job = out / f"samples_{samples}.toml"
    job.write_text(JOB.format(root=out, days=days, name=network.name, path=network,
                              samples=samples))
    cfg = load_config(job)
    started = time.perf_counter()
    run_pipeline(cfg, stages=("loadflow", "headroom", "ev"))
    return hosting_answer(cfg, network.name), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", type=Path, default=DEFAULT_NET)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("samples-bench").resolve())
    args = parser.parse_args(argv)
    if not (args.network / "Master.dss").is_file():
        sys.exit(f"{args.network}: no Master.dss (pass --network)")
    args.out.mkdir(parents=True, exist_ok=True)
    columns, totals = {}, []
    for s in sorted(args.samples):
        table, wall = run_one(args.out, args.network.resolve(), s, args.days)
        table = table[table["customers"] > 0].set_index("zone")
        columns[f"S={s} estimate"] = table["evs_estimate"].astype(str) + (
            " (" + table["evs_min"].astype(str) + "-" + table["evs_max"].astype(str) + ")"
            if "evs_min" in table else "")
        columns[f"S={s} hosted"] = table["evs_hosted"]
        columns[f"S={s} HP case"] = table["case"]
        totals.append((s, int(table["evs_estimate"].sum()), int(table["evs_hosted"].sum()),
                       int(table["hps"].sum()), wall))
    print(f"{args.network.name}: {args.days} days; per zone the pooled EV estimate (and its "
          "range over the samples), the EVs hosted and the HP case")
    print(pd.DataFrame(columns).to_string())
    print("\n  S  EVs estimated  EVs hosted  HPs  wall [s]")
    for s, est, hosted, hps, wall in totals:
        print(f"{s:3d} {est:14d} {hosted:11d} {hps:4d} {wall:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
