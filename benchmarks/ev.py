"""Benchmark: solve time of the EV schedule MILP and its LP relaxation on a 40-EV x 144-step zone.

Usage: ``python benchmarks/ev.py [--seeds 5] [--n-ev 40] [--v2g] [--threads 1]``.
Prints one line per seed and the medians, and the MILP/LP ratio of the median times.

``python benchmarks/ev.py --job jobs/demo.toml``: the EV stage of a whole job against its
load-flow stage (the ratio), and its three slowest zones against a reference that solves every
attempt to optimality (gap 1e-6, no node limit), with answers and verdicts compared.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

import numpy as np  # noqa: E402

from agileflex_hpc.ev import draw_fleet, solve_schedule, tariff_p_per_kwh  # noqa: E402

logger = logging.getLogger(__name__)

STEPS, STEP_MINUTES = 144, 10


def zone_profiles(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A realistic zone: headroom ~10-25 kW in the evening peak, ~40-80 kW overnight. [kW]

    Returns headroom and footroom, each shape (144,), on the noon-to-noon horizon.
    """
    rng = np.random.default_rng(10_000 + seed)
    hour = (12 + np.arange(STEPS) * STEP_MINUTES / 60) % 24
    base = np.interp(hour, [0, 4, 6, 9, 12, 16, 18, 20, 22, 24],
                     [60, 75, 55, 35, 40, 25, 12, 20, 40, 55])
    headroom = base * rng.uniform(0.8, 1.1) + rng.normal(0, 3, STEPS)
    footroom = 120.0 - 0.5 * headroom
    return headroom, footroom


def time_one(seed: int, *, n_ev: int, v2g: bool, threads: int) -> dict[str, float]:
    """Solve one seed's zone with the MILP and the LP; return wall times and objectives."""
    head, foot = zone_profiles(seed)
    price = tariff_p_per_kwh(steps=STEPS, step_minutes=STEP_MINUTES)
    fleet = draw_fleet(n_ev, seed, steps=STEPS, step_minutes=STEP_MINUTES)
    out: dict[str, float] = {}
    for model in ("milp", "lp"):
        started = time.perf_counter()
        res = solve_schedule(fleet, head, foot, price, step_minutes=STEP_MINUTES, model=model,
                             v2g=v2g, mip_gap=1e-3, threads=threads, seed=0)
        out[f"{model}_s"] = time.perf_counter() - started
        out[f"{model}_solve_s"] = res.solve_time_s
        out[f"{model}_obj"] = res.objective_p
        out[f"{model}_status"] = res.status  # type: ignore[assignment]
        out[f"{model}_gap"] = res.mip_gap
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (zones x fleets)")
    parser.add_argument("--n-ev", type=int, default=40)
    parser.add_argument("--v2g", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"EV schedule benchmark: {args.n_ev} EVs x {STEPS} steps, v2g={args.v2g}, "
          f"threads={args.threads}, gap 1e-3; {platform.processor() or platform.machine()}")
    rows = []
    for seed in range(args.seeds):
        r = time_one(seed, n_ev=args.n_ev, v2g=args.v2g, threads=args.threads)
        rows.append(r)
        print(f"seed {seed}: MILP {r['milp_s']:.3f} s ({r['milp_status']}, gap {r['milp_gap']:.1e},"
              f" {r['milp_obj']:.1f} p)  LP {r['lp_s']:.3f} s ({r['lp_status']}, "
              f"{r['lp_obj']:.1f} p)")
    milp = statistics.median(r["milp_s"] for r in rows)
    lp = statistics.median(r["lp_s"] for r in rows)
    print(f"median over {args.seeds} seeds: MILP {milp:.3f} s, LP {lp:.3f} s, "
          f"MILP/LP {milp / lp:.1f}x (build + solve)")
    return 0




# ------------------------------------------------------------------ whole runs and hard zones
def whole_run(job: str) -> None:
    """Time the load-flow and EV stages of ``job`` in one process, from an empty output tree,
    and the slowest zones' attempts: the stage's feasibility solves vs the reference (every
    attempt solved to optimality, ``mip_gap = 1e-6``, no node limit), verdicts compared."""
    import dataclasses
    import shutil
    import tempfile

    from agileflex_hpc.config import load_config
    from agileflex_hpc.ev import attempts as att
    from agileflex_hpc.ev.stage import list_zone_tasks, solve_zone
    from agileflex_hpc.pipeline import run_pipeline

    cfg = load_config(job)
    tmp = Path(tempfile.mkdtemp(prefix="agileflex-bench-"))
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, root=tmp))
    try:
        timings = {}
        for stage in ("loadflow", "headroom", "ev"):
            started = time.perf_counter()
            run_pipeline(cfg, stages=(stage,))
            timings[stage] = time.perf_counter() - started
        print(f"{job}: load flows {timings['loadflow']:.1f} s, EV stage {timings['ev']:.1f} s: "
              f"EV / load flow = {timings['ev'] / timings['loadflow']:.2f}")
        tasks = list_zone_tasks(cfg)
        per_zone = []
        for task in tasks:
            started = time.perf_counter()
            res = solve_zone(cfg, task)
            per_zone.append((time.perf_counter() - started, task, res))
        per_zone.sort(key=lambda r: -r[0])
        ref_cfg = dataclasses.replace(cfg, ev=dataclasses.replace(cfg.ev, mip_gap=1e-6,
                                                                  max_nodes=2**31 - 1))
        orig = att._solve_with_retry
        for wall, task, res in per_zone[:3]:
            att._solve_with_retry = lambda *a, **k: orig(*a, **{**k, "goal": "optimal"})
            started = time.perf_counter()
            ref = solve_zone(ref_cfg, task)
            ref_wall = time.perf_counter() - started
            att._solve_with_retry = orig
            same = ([a.verdict for a in ref.attempts] == [a.verdict for a in res.attempts]
                    and (ref.n, ref.confirmed) == (res.n, res.confirmed))
            worst = max((a.solve_time_s for a in res.attempts), default=0.0)
            print(f"  zone {task.network}/{task.zone}: {res.n} EVs, {len(res.attempts)} attempts"
                  f" in {wall:.2f} s (slowest attempt {worst:.2f} s); reference (optimal, gap "
                  f"1e-6) {ref_wall:.2f} s: {ref_wall / wall:.1f}x; same answer and verdicts: "
                  f"{same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _main_with_job(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--job" in args:
        whole_run(args[args.index("--job") + 1])
        return 0
    return main(args)


if __name__ == "__main__":
    sys.exit(_main_with_job())
