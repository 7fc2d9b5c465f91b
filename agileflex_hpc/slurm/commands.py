"""``agileflex submit``, ``agileflex resubmit`` and the jobs part of ``agileflex status``."""

from __future__ import annotations

import argparse
import logging
import sys

from agileflex_hpc.config import Config, load_config
from agileflex_hpc.errors import AgileflexError
from agileflex_hpc.slurm.submit import (
    ARRAY_STAGES,
    PIPELINE,
    JobSpec,
    Submitted,
    logs_dir,
    plan_pipeline,
    read_submissions,
    submit_jobs,
)

__all__ = ["add_submit_arguments", "submit_main", "resubmit_main", "print_jobs"]

logger = logging.getLogger("agileflex_hpc.slurm")


def add_submit_arguments(p: argparse.ArgumentParser, *, resubmit: bool = False) -> None:
    p.add_argument("config", help="job config (TOML)")
    p.add_argument("--workers", type=_posint, default=None,
                   help="array tasks of each array stage (loadflow, ev, validate) [resubmit: "
                        "the last submission's; submit: the config's slurm.workers]")
    for stage in ARRAY_STAGES:
        p.add_argument(f"--{stage}-workers", type=_posint, default=None,
                       help=f"array tasks of the {stage} stage")
    p.add_argument("--max-parallel", type=_nonneg, default=None,
                   help="at most MAX_PARALLEL tasks of an array at once, 0: no limit [the "
                   "config's slurm.max_parallel]")
    if not resubmit:
        p.add_argument("--from", dest="from_stage", default="loadflow", choices=PIPELINE,
                       help="start at this stage; the earlier stages' results must exist")
    p.add_argument("--dry-run", action="store_true",
                   help="print the sbatch commands instead of submitting; creates nothing")
    p.epilog = ("Options after -- go to sbatch for every job (e.g. -- --account=x "
                "--partition=y), as do those in $AGILEFLEX_SBATCH_ARGS.")


def _posint(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs a positive integer, got {text!r}")
    return value


def _nonneg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"needs an integer >= 0 (0: no limit), got {text!r}")
    return value


def _workers(args: argparse.Namespace) -> dict[str, int]:
    out: dict[str, int] = {}
    for stage in ARRAY_STAGES:
        n = getattr(args, f"{stage}_workers") or args.workers
        if n:
            out[stage] = n
    return out


def _submit(cfg: Config, jobs: list[JobSpec], args: argparse.Namespace, *,
            last: Submitted | None = None) -> int:
    """Submit ``jobs`` with the command line's sbatch options and throttle; a resubmission
    (``last``: the run's last recorded job) given neither reuses those it was submitted with,
    so the account, partition and time limit stay."""
    import os

    extra = tuple(args.sbatch_args) + tuple(os.environ.get("AGILEFLEX_SBATCH_ARGS", "").split())
    max_par = args.max_parallel if args.max_parallel is not None else cfg.slurm.max_parallel
    if last is not None:
        if not extra and last.sbatch:
            extra = tuple(last.sbatch)
            print(f"with the sbatch options of the last submission: {' '.join(extra)}",
                  file=sys.stderr)
        if args.max_parallel is None:
            max_par = last.max_parallel
    done = submit_jobs(cfg, jobs, max_parallel=max_par, extra=extra, dry_run=args.dry_run)
    for name, job_id in done:
        print(f"{name}\t{job_id}", flush=True)
    if not args.dry_run:
        print(f"submitted {len(done)} jobs; logs in {logs_dir(cfg)}; follow them with "
              f"`agileflex status {args.config}`", file=sys.stderr)
    return 0


def submit_main(args: argparse.Namespace) -> int:
    """``agileflex submit CONFIG``: the dependent pipeline."""
    from agileflex_hpc.slurm.jobs import still_active

    try:
        cfg = load_config(args.config)
        active = [] if args.dry_run else still_active(cfg)
        if active:  # a second chain would write the same results at the same time
            print(f"agileflex submit: jobs of this run are still queued or running "
                  f"({', '.join(active[:8])}{' ...' if len(active) > 8 else ''}); wait for "
                  "them, scancel them, or give this run another [run] name or root",
                  file=sys.stderr)
            return 1
        return _submit(cfg, plan_pipeline(cfg, workers=_workers(args),
                                          from_stage=args.from_stage), args)
    except AgileflexError as exc:
        print(f"agileflex submit: ERROR: {exc}", file=sys.stderr)
        return 1


def resubmit_main(args: argparse.Namespace) -> int:
    """``agileflex resubmit CONFIG``: the unfinished array tasks (same split) and the stages
    after them; refuses while jobs of the run are still queued or running."""
    from agileflex_hpc.slurm.jobs import resubmit_plan, still_active

    try:
        cfg = load_config(args.config)
        active = still_active(cfg)
        if active:
            print(f"agileflex resubmit: jobs of this run are still queued or running "
                  f"({', '.join(active[:8])}{' ...' if len(active) > 8 else ''}); wait for "
                  "them or scancel them first", file=sys.stderr)
            return 1
        jobs = resubmit_plan(cfg, _workers(args))
        if not jobs:
            print("nothing to resubmit: every result of the run is current", file=sys.stderr)
            return 0
        first = jobs[0]
        what = (f"tasks {first.array_spec} of {first.n_workers}" if first.tasks is not None
                else "the whole stage")
        print(f"resubmitting from {first.name} ({what}), then {len(jobs) - 1} later jobs",
              file=sys.stderr)
        subs = read_submissions(cfg)
        return _submit(cfg, jobs, args, last=subs[-1] if subs else None)
    except AgileflexError as exc:
        print(f"agileflex resubmit: ERROR: {exc}", file=sys.stderr)
        return 1


def print_jobs(cfg: Config) -> None:
    """The last submission's jobs and their SLURM states (nothing if none was recorded)."""
    from agileflex_hpc.slurm.jobs import job_states, latest_jobs, slurm_reachable, task_state

    subs = latest_jobs(cfg)
    if not subs:
        return
    reachable = slurm_reachable()
    states = job_states([s.job_id for s in subs]) if reachable else {}
    print(f"\nSLURM jobs of the last submission ({subs[0].time}; logs in {logs_dir(cfg)}):")
    print(f"{'job':22s} {'id':>10s}  state")
    for sub in subs:
        parts = task_state(states, sub)
        text = ", ".join(
            f"{state} ({len(ids)})" if sub.tasks is not None else state
            for state, ids in sorted(parts.items()))
        if sub.tasks is not None:
            text = f"{len(sub.tasks)} tasks of {sub.n_workers}: {text}"
        print(f"{sub.name:22s} {sub.job_id:>10s}  {text}")
    if any(s == "UNKNOWN" for sub in subs for s in task_state(states, sub)):
        if reachable:
            print("(UNKNOWN: SLURM no longer remembers the job and keeps no accounting here; "
                  "the results above are what counts)")
        else:
            print("(UNKNOWN: SLURM could not be queried from here (squeue failed: no "
                  "controller, or SLURM_CONF unset); the results above are what counts)")
