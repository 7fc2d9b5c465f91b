"""MPI strong scaling of the load-flow or EV stage: throughput and parallel efficiency on 1, 2,
4, ... ranks.

    python benchmarks/scaling.py [--stage loadflow|ev] [--max-ranks N] [--network DIR ...]
                                 [--days 2] [--cases 4] [--block-steps 144] [--prep-ranks N]
                                 [--split estimate|measured|both] [--ranks 1,4,16]
                                 [--one-at-a-time] [--replay 16,64] [--save-times F]
                                 [--replay-from F]

``--network`` may be given several times: the job then holds every network (a fleet, as a
cluster run has; the EV stage needs many zones to spread over many ranks). ``--prep-ranks``:
ranks for the untimed preparation's load flows (default 1).

``--stage ev``: the load flows and stages 3-6 run once beforehand; each R then times
``mpirun -n R python -m agileflex_hpc.ev`` over every zone (wall time of the command, start-up
included); throughput = zones / wall. Each R > 1 runs twice (``--split both``): zones split by
the stage-6 estimate (a first round), and by the zone times a one-process run measured
(``ev/costs.csv``, as a later round or a rerun has them). Before the measured runs it prints
the best efficiency any split of whole zones could reach (the largest zone bounds it).

A fixed workload (one network x cases x days of 10-minute steps, ``--block-steps`` steps per
block: default 144, a day) is solved with ``mpirun -n R python -m agileflex_hpc.loadflow``
for each R; inputs and manifests are built once beforehand and copied, so every run times
the same solve + write work. Throughput
is total steps / the slowest rank's wall time; efficiency = throughput(R) / (R x throughput(1)).
Target (issue 3): >= 90 % at 16 ranks on a 16-core machine.

After the load flows it replays the one-process run's measured block and compile times
(block attributes ``solve_s``, ``compile_s``) through the static split and through the MPI
work stealing of ``agileflex_hpc.stealing`` for each R and ``--replay`` (an event simulation:
what the split and stealing cost, not contention).

``--save-times F`` keeps the one-rank run's item and compile times (JSON); ``--replay-from F``
replays ``--replay``'s rank counts from such a file without solving anything.

``--one-at-a-time`` (for a machine with fewer cores than R): each R > 1 runs its R shares as
array tasks (``--worker w --workers R``), one after another, each with the machine to itself;
the wall time of R is the slowest share's. This measures what the split costs (imbalance,
work every share repeats: start-up, network compiles, reads) but not what R processes
running at once cost each other (memory bandwidth, shared caches, clock speed, file system).
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
sys.path.insert(0, str(REPO))  # the replay imports this checkout's package, as the runs do
DEFAULT_NET = REPO.parent / "shared" / "networks" / "enwl" / "network_5"
COSTS = Path("out") / "scaling" / "ev" / "costs.csv"  # the job's measured zone times
# the ENWL LVNS files rate no line (NormAmps): rate them as OpenDSS would (timings do not
# depend on ratings)
UNRATED = "unrated_rating_a = 400"
CASES = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP", "50PV50HP", "75PV75HP",
         "100PV100HP"]

JOB = """
[run]
name = "scaling"
root = "out"
[time]
start = "2014-01-06"
days = {days}
block_steps = {block_steps}
{networks}
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


def _stage_cmd(stage: str, job: Path, ranks: int, share: int | None) -> list[str]:
    """``python -m agileflex_hpc.<stage> job``: under ``mpirun -n ranks``, or as array task
    ``share`` of ``ranks`` (one process), or alone (``ranks`` 1)."""
    cmd = [sys.executable, "-m", f"agileflex_hpc.{stage}", str(job), "--log-level", "WARNING"]
    if share is not None:
        return cmd + ["--worker", str(share), "--workers", str(ranks)]
    return [_mpirun(), "-n", str(ranks), *cmd] if ranks > 1 else cmd


def _shares(ranks: int, one_at_a_time: bool) -> list[int | None]:
    """What to launch for R ranks: one MPI world, or R array-task shares one after another."""
    return list(range(ranks)) if one_at_a_time and ranks > 1 else [None]


def measure(job: Path, work: Path, ranks: int, one_at_a_time: bool = False) -> dict:
    """Solve the job on ``ranks`` ranks from a copy of the prepared inputs; return totals
    (wall: the slowest rank's or share's solve loop, from the stage's summary JSON)."""
    import resource
    import time

    run_dir = work / f"r{ranks}"
    shutil.copytree(work / "prepared", run_dir)
    rows = []
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    for k, share in enumerate(_shares(ranks, one_at_a_time)):
        summary = run_dir / f"summary{k}.json"
        _run(_stage_cmd("loadflow", job, ranks, share)
             + ["--no-gather", "--summary-json", str(summary)], run_dir)
        rows += json.loads(summary.read_text())
    after, wall_cmd = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - started
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timed = item_times(run_dir / job) if ranks == 1 else None
    shutil.rmtree(run_dir)  # a long study's blocks fill a disk: keep one tree at a time
    steps = sum(r["steps"] for r in rows)
    wall = max(r["wall_s"] for r in rows)
    return {"ranks": ranks, "steps": steps, "wall_s": wall, "steps_per_s": steps / wall,
            "spread": _spread([r["wall_s"] for r in rows]), "timed": timed,
            "cores": cpu / wall_cmd, "sys_share": (after.ru_stime - before.ru_stime) / cpu}


def item_times(job: Path) -> tuple[list, dict[int, float], dict[str, float]]:
    """The planned items of a solved job, each item's measured ``solve_s`` and each network's
    ``compile_s`` (block attributes, keyed by item index and network name) [s]."""
    import h5py

    from agileflex_hpc.config import load_config
    from agileflex_hpc.layout import layout
    from agileflex_hpc.loadflow.run import block_path, plan

    cfg = load_config(job)
    items = plan(cfg, build=False)
    solve: dict[int, float] = {}
    compile_s: dict[str, float] = {}
    for it in items:
        with h5py.File(block_path(layout(cfg).raw_dir, it), "r") as f:
            solve[it.index] = float(f.attrs["solve_s"])
            compile_s[it.network] = max(compile_s.get(it.network, 0.0),
                                        float(f.attrs["compile_s"]))
    return items, solve, compile_s


def replay(timed: tuple[list, dict[int, float], dict[str, float]],
           ranks: int) -> tuple[float, float]:
    """Efficiency of ``ranks`` workers replayed from the one-process run's measured item and
    compile times: (static split alone, static split with work stealing).

    An event simulation of :mod:`agileflex_hpc.stealing`: a rank pays a compile whenever its
    next item's network is not the one it holds; a thief asks the others in turn from the next
    rank on and gets its answer when the asked rank finishes its current item (at once from an
    idle one), the asked rank giving :func:`~agileflex_hpc.stealing.back_half` of what it has
    not started. Contention between ranks is not modelled.
    """
    import heapq
    from collections import deque

    from agileflex_hpc.loadflow.run import compile_cost
    from agileflex_hpc.partition import items_for
    from agileflex_hpc.stealing import back_half

    items, solve, comp = timed
    total = sum(solve.values()) + sum(comp.values())
    shares = [items_for(w, ranks, items) for w in range(ranks)]

    def cost(rank_items: list) -> float:
        held, t = None, 0.0
        for it in rank_items:
            t += solve[it.index] + (comp[it.network] if it.network != held else 0.0)
            held = it.network
        return t

    static = total / (ranks * max(cost(s) for s in shares))
    todo = [deque(s) for s in shares]
    held: list = [None] * ranks
    busy_until = [0.0] * ranks  # end of the current item; idle ranks: when they went idle
    asks: list[list[int]] = [[] for _ in range(ranks)]  # thieves waiting on each rank
    dry: list[set[int]] = [set() for _ in range(ranks)]
    done_at = [0.0] * ranks
    events = [(0.0, r) for r in range(ranks)]  # (time, rank): the rank is between items

    def ask_next(thief: int, now: float) -> None:
        for k in range(1, ranks):
            victim = (thief + k) % ranks
            if victim in dry[thief]:
                continue
            if busy_until[victim] > now:  # answers after its current item
                asks[victim].append(thief)
                return
            dry[thief].add(victim)  # an idle rank has nothing left to give
        done_at[thief] = max(done_at[thief], now)
        busy_until[thief] = now

    while events:
        now, r = heapq.heappop(events)
        for thief in asks[r]:  # answer between items, in the order asked
            n = back_half(list(todo[r]), compile_cost)
            part = [todo[r].pop() for _ in range(n)][::-1]
            if part:
                todo[thief].extend(part)
                heapq.heappush(events, (now, thief))
            else:
                dry[thief].add(r)
                ask_next(thief, now)
        asks[r] = []
        if todo[r]:
            it = todo[r].popleft()
            busy_until[r] = now + solve[it.index] + (comp[it.network] if it.network != held[r]
                                                    else 0.0)
            held[r] = it.network
            done_at[r] = busy_until[r]
            heapq.heappush(events, (busy_until[r], r))
        else:
            ask_next(r, now)
    return static, total / (ranks * max(done_at))


def save_times(timed: tuple[list, dict[int, float], dict[str, float]], path: Path) -> None:
    """Write :func:`item_times`' result as JSON (for ``--replay-from``)."""
    import dataclasses

    items, solve, compile_s = timed
    path.write_text(json.dumps({"items": [dataclasses.asdict(it) for it in items],
                                "solve_s": {str(k): v for k, v in solve.items()},
                                "compile_s": compile_s}))


def load_times(path: Path) -> tuple[list, dict[int, float], dict[str, float]]:
    """Read a :func:`save_times` file back."""
    from agileflex_hpc.partition import WorkItem

    data = json.loads(path.read_text())
    return ([WorkItem(**it) for it in data["items"]],
            {int(k): v for k, v in data["solve_s"].items()}, data["compile_s"])


def _rank_list(text: str) -> list[int]:
    return [int(r) for r in text.split(",") if r]


def _spread(walls: list[float]) -> str:
    """The ranks' (or shares') wall times [s] as ``min-max``."""
    return f"{min(walls):.2f}-{max(walls):.2f} s"


def measure_ev(job: Path, work: Path, ranks: int, source: str = "prepared",
               one_at_a_time: bool = False) -> dict:
    """The EV stage of the prepared job (``source``: the tree to copy) on ``ranks`` ranks;
    zones per second (wall: the command's, start-up included; one at a time, the slowest
    share's)."""
    import time

    run_dir = work / f"ev{ranks}-{source}"
    shutil.copytree(work / source, run_dir)
    walls = []
    for share in _shares(ranks, one_at_a_time):
        started = time.perf_counter()
        _run(_stage_cmd("ev", job, ranks, share), run_dir)
        walls.append(time.perf_counter() - started)
    zones = len(list((run_dir / "out" / "scaling" / "ev").rglob("*.h5")))
    wall = max(walls)
    return {"ranks": ranks, "steps": zones, "wall_s": wall, "steps_per_s": zones / wall,
            "split": "measured" if source == "measured" else "estimate",
            **({"spread": _spread(walls)} if len(walls) > 1 else {})}


def measured_tree(work: Path) -> None:
    """``work/measured``: the prepared tree plus ``ev/costs.csv`` from the one-process run
    (``work/ev1-prepared``), snapshot as the pipeline's single-job steps do."""
    shutil.copytree(work / "prepared", work / "measured")
    code = ("from agileflex_hpc.config import load_config; from agileflex_hpc.ev.costs import "
            "snapshot_costs; snapshot_costs(load_config('job.toml'))")
    _run([sys.executable, "-c", code], work / "ev1-prepared")
    (work / "measured" / COSTS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "ev1-prepared" / COSTS, work / "measured" / COSTS)


def _report(row: dict, base: dict | None = None) -> dict:
    """Print one result line (speed-up and efficiency against ``base``, the 1-rank row)."""
    base = base or row
    speed = row["steps_per_s"] / base["steps_per_s"]
    print(f"{row['ranks']:5d} {row['wall_s']:8.2f} {row['steps_per_s']:9.1f} {speed:8.2f} "
          f"{100 * speed / row['ranks']:9.1f}%"
          + (f"  {row['split']}" if "split" in row and row["ranks"] > 1 else "")
          + (f"  shares {row['spread']}" if row["ranks"] > 1 and "spread" in row else "")
          + (f"  ({row['steps']} {'zones' if 'split' in row else 'steps'})" if row is base
             else ""), flush=True)
    return base


def _balance_bound(work: Path, ranks: list[int]) -> None:
    """Print the measured zone times' total and largest zone, the best efficiency any split of
    whole zones could reach at each R (total / (R x max(largest zone, total / R))), and what
    the stage's split (longest first) and a contiguous split reach with those times."""
    import numpy as np
    import pandas as pd

    from agileflex_hpc.partition import assign_longest_first, split_by_cost

    costs = pd.read_csv(work / "measured" / COSTS)["wall_s"].to_numpy()
    total, top = float(costs.sum()), float(costs.max())

    def efficiency(loads: np.ndarray, r: int) -> str:
        return f"{100 * total / (r * loads.max()):.0f}%"

    rows = []
    for r in ranks[1:]:
        bounds = split_by_cost(costs, r)
        contiguous = np.array([costs[a:b].sum() for a, b in zip(bounds, bounds[1:])])
        longest_first = np.bincount(assign_longest_first(costs, r), costs, r)
        rows.append(f"  {r} ranks: any whole-zone split <= "
                    f"{100 * total / (r * max(top, total / r)):.0f}%, longest first "
                    f"{efficiency(longest_first, r)}, contiguous {efficiency(contiguous, r)}")
    print(f"measured zone times: {len(costs)} zones, total {total:.1f} s, largest {top:.2f} s; "
          "efficiency of the split by these times:\n" + "\n".join(rows), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=["loadflow", "ev"], default="loadflow")
    ap.add_argument("--max-ranks", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--network", type=Path, action="append",
                    help="network folder; repeat for several (default: enwl network_5)")
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--block-steps", type=int, default=144,
                    help="steps per block (work item) of every network (default 144, a day)")
    ap.add_argument("--prep-ranks", type=int, default=1)
    ap.add_argument("--ranks", help="comma-separated rank counts (default: 1, 2, 4, ... up to "
                    "--max-ranks)")
    ap.add_argument("--split", choices=["estimate", "measured", "both"], default="both",
                    help="EV stage: which split(s) to time for R > 1")
    ap.add_argument("--one-at-a-time", action="store_true",
                    help="run the R shares as array tasks one after another (fewer cores "
                    "than ranks: measures the split, not contention)")
    ap.add_argument("--replay", default="16,64",
                    help="load flows: further rank counts to replay from the 1-rank run's "
                    "block times, static split and with work stealing (default 16,64)")
    ap.add_argument("--save-times", type=Path,
                    help="load flows: write the 1-rank run's item and compile times (JSON)")
    ap.add_argument("--replay-from", type=Path,
                    help="load flows: replay --replay's rank counts from a --save-times file "
                    "and stop (no solve)")
    args = ap.parse_args(argv)
    if args.replay_from:
        timed = load_times(args.replay_from)
        print(f"replayed from {args.replay_from} ({len(timed[0])} items; no contention): "
              + ", ".join("{} ranks: static {:.1%}, with stealing {:.1%}".format(
                  r, *replay(timed, r)) for r in _rank_list(args.replay)), flush=True)
        return 0
    nets = args.network or ([DEFAULT_NET] if DEFAULT_NET.is_dir() else [])
    networks = "\n".join(f'[[network]]\nname = "bench{i}"\npath = "{p.resolve()}"\n{UNRATED}'
                          for i, p in enumerate(nets)) or '[[network]]\nname = "bench0"'
    ranks = [1]
    while ranks[-1] * 2 <= args.max_ranks:
        ranks.append(ranks[-1] * 2)
    if ranks[-1] != args.max_ranks:
        ranks.append(args.max_ranks)
    if args.ranks:
        ranks = sorted({1, *(int(r) for r in args.ranks.split(","))})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepared = work / "prepared"
        prepared.mkdir()
        job = prepared / "job.toml"
        job.write_text(JOB.format(days=args.days, networks=networks,
                                  block_steps=args.block_steps,
                                  cases=json.dumps(CASES[:args.cases])))
        prep = [_mpirun(), "-n", str(args.prep_ranks)] if args.prep_ranks > 1 else []
        if args.stage == "ev":  # the load flows and headroom the EV stage reads
            _run(prep + [sys.executable, "-m", "agileflex_hpc.loadflow", str(job),
                         "--log-level", "WARNING"], prepared)
            _run([sys.executable, "-m", "agileflex_hpc", "run", str(job), "--stages",
                  "headroom", "--log-level", "WARNING"], prepared)
        else:  # stage 1 alone: manifests and inputs (the timed runs then solve every block)
            _run(prep + [sys.executable, "-m", "agileflex_hpc.inputs", str(job), "--log-level",
                         "WARNING"], prepared)
        job = Path("job.toml")
        unit = "zones" if args.stage == "ev" else "steps"
        where = ", ".join(str(p) for p in nets) if len(nets) < 3 else f"{len(nets)} networks"
        print(f"{args.stage}: network {where or 'embedded default'}, cpus {os.cpu_count()}"
              + (", R > 1 as R shares one at a time" if args.one_at_a_time else ""))
        print(f"{'ranks':>5s} {'wall_s':>8s} {unit + '/s':>9s} {'speedup':>8s} "
              f"{'efficiency':>10s}" + ("  split" if args.stage == "ev" else ""), flush=True)
        if args.stage == "loadflow":
            base = _report(measure(job, work, 1))
            print(f"one rank kept {base['cores']:.2f} cores busy (CPU time over the command's "
                  f"wall, start-up included; {base['sys_share']:.0%} of it in the kernel): the "
                  "solver thread and the background block writer. R ranks on R cores share "
                  "that; the one-rank figure above had the spare cores to itself.", flush=True)
            for r in ranks[1:]:
                _report(measure(job, work, r, args.one_at_a_time), base)
            again = sorted({*ranks[1:], *_rank_list(args.replay)})
            if args.save_times:
                save_times(base["timed"], args.save_times)
            print("replayed from the 1-rank run's item and compile times (no contention): "
                  + ", ".join("{} ranks: static {:.1%}, with stealing {:.1%}".format(
                      r, *replay(base["timed"], r)) for r in again), flush=True)
        else:
            base = _report(measure_ev(job, work, 1))
            if args.split in ("estimate", "both"):
                for r in ranks[1:]:
                    _report(measure_ev(job, work, r, one_at_a_time=args.one_at_a_time), base)
            if args.split in ("measured", "both") and len(ranks) > 1:
                measured_tree(work)
                _balance_bound(work, ranks)
                for r in ranks[1:]:
                    _report(measure_ev(job, work, r, "measured", args.one_at_a_time), base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
