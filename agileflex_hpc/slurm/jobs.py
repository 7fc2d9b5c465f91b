"""The submitted jobs of a run: their SLURM states (``agileflex status``) and what is left to
redo (``agileflex resubmit``).

States come from ``squeue --states=all`` (jobs the controller still remembers), else from
``sacct`` where the site keeps accounting. What to redo comes from the files, not from SLURM:
an array task must run again when one of its work items has no complete, current result
(whether the task failed, was cancelled, timed out, or never started).
"""

from __future__ import annotations

import subprocess

from agileflex_hpc.config import Config
from agileflex_hpc.errors import AgileflexError
from agileflex_hpc.fingerprint import Fingerprints, freshness
from agileflex_hpc.layout import layout
from agileflex_hpc.slurm.submit import (
    ARRAY_STAGES,
    PIPELINE,
    JobSpec,
    Submitted,
    plan_pipeline,
    read_submissions,
)

__all__ = ["job_states", "ACTIVE", "latest_jobs", "tasks_to_redo", "resubmit_plan"]

#: states of a job that may still run (do not resubmit under it)
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING",
          "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


def job_states(job_ids: list[str]) -> dict[str, str]:
    """``{"<job>" or "<array job>_<task>": state}`` for the given job ids; jobs neither the
    controller nor accounting knows are left out."""
    states: dict[str, str] = {}
    for jid in job_ids:  # one call each: squeue fails as a whole on one unknown id
        out = _run(["squeue", "-h", "--states=all", "-r", "-j", jid, "-o", "%i|%T"])
        for line in (out or "").splitlines():
            key, _, state = line.partition("|")
            if state:
                states[key.strip()] = state.strip()
    unknown = [j for j in job_ids if not any(k == j or k.startswith(f"{j}_") for k in states)]
    if unknown:
        out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(unknown), "-o", "JobID,State"])
        for line in (out or "").splitlines():
            key, _, state = line.partition("|")
            if state:
                states[key.strip()] = state.split()[0]  # "CANCELLED by 1000" -> CANCELLED
    return states


def _run(cmd: list[str]) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def latest_jobs(cfg: Config) -> list[Submitted]:
    """The jobs of the last ``submit``/``resubmit`` of this run (empty if none)."""
    subs = read_submissions(cfg)
    return [s for s in subs if s.batch == subs[-1].batch] if subs else []


def task_state(states: dict[str, str], sub: Submitted) -> dict[str, list[str]]:
    """``{state: [job or task ids]}`` of one submitted job."""
    out: dict[str, list[str]] = {}
    keys = ([f"{sub.job_id}_{t}" for t in sub.tasks] if sub.tasks is not None
            else [sub.job_id])
    for key in keys:
        state = states.get(key) or (states.get(sub.job_id) if sub.tasks is None else None)
        if state is None and sub.tasks is not None:
            # a pending array is one record "<job>_[0-3]" until its tasks start
            state = next((v for k, v in states.items()
                          if k.startswith(f"{sub.job_id}_[")), None)
        out.setdefault(state or "UNKNOWN", []).append(key)
    return out


# --------------------------------------------------------------------------- what to redo
def tasks_to_redo(cfg: Config, stage: str, n_workers: int) -> list[int] | None:
    """The tasks of an ``n_workers`` split of ``stage`` with work left, or None when the
    stage's own inputs are not there yet (an earlier stage has work left)."""
    from agileflex_hpc.partition import items_for

    fps = Fingerprints(cfg)
    if stage == "loadflow":
        from agileflex_hpc.loadflow.run import block_path, study_items

        raw = layout(cfg).raw_dir
        items = study_items(cfg)
        return [w for w in range(n_workers)
                if any(freshness(block_path(raw, it), fps.block(it.network, it.case, it.start,
                                                                it.stop)) != "ok"
                       for it in items_for(w, n_workers, items))]
    if stage == "ev":
        from agileflex_hpc.ev.stage import list_zone_tasks, tasks_for, zone_path

        try:
            zones = list_zone_tasks(cfg, fps)
        except AgileflexError:
            return None
        return [w for w in range(n_workers)
                if any(freshness(zone_path(cfg.out_dir, t.network, t.zone),
                                 fps.ev_zone(t.network, t.zone)) != "ok"
                       for t in tasks_for(w, n_workers, zones))]
    if stage == "validate":
        from agileflex_hpc.loadflow.run import block_path, study_items
        from agileflex_hpc.validate.stage import validation_target

        target = validation_target(cfg)
        items = study_items(cfg, target.cases)
        try:
            return [w for w in range(n_workers)
                    if any(freshness(block_path(target.raw_dir, it),
                                     target.block_key(fps, it.network, it.case, it.start,
                                                      it.stop)) != "ok"
                           for it in items_for(w, n_workers, items))]
        except AgileflexError:
            return None
    raise ValueError(f"{stage} is not an array stage")


def _single_done(cfg: Config, stage: str) -> bool:
    """Whether a single-job stage's results are all current."""
    fps = Fingerprints(cfg)
    nets = [n.name for n in cfg.networks]
    try:
        if stage == "gather":
            from agileflex_hpc.gather import stitched_path

            raw = layout(cfg).raw_dir
            return all(freshness(stitched_path(raw, n, c), fps.stitched(n, c)) == "ok"
                       for n in nets for c in cfg.cases.names)
        if stage == "headroom":
            from agileflex_hpc.headroom.stage import output_paths

            return all(freshness(p, fps.headroom(n)) == "ok" for n in nets
                       for p in output_paths(cfg, n))
        if stage == "validate-gather":
            from agileflex_hpc.validate.stage import report_h5_path

            return all(freshness(report_h5_path(cfg.out_dir, n), fps.validation(n)) == "ok"
                       for n in nets)
    except AgileflexError:
        return False
    if stage == "report":
        return layout(cfg).report_index.is_file()
    raise ValueError(stage)


def resubmit_plan(cfg: Config, workers: dict[str, int] | None = None) -> list[JobSpec]:
    """The jobs that finish the run: from the first stage with work left, that stage's
    unfinished array tasks only (same split as before), then every later stage. Empty when
    every result is current. Raises if jobs of the run are still queued or running."""
    prev = {s.name: s for s in read_submissions(cfg)}
    n: dict[str, int] = {
        s: ((workers or {}).get(s) or (prev[s].n_workers if s in prev else None)
            or cfg.slurm.workers)
        for s in ARRAY_STAGES}
    for stage in PIPELINE:
        if stage in ARRAY_STAGES:
            todo = tasks_to_redo(cfg, stage, n[stage])
            if todo == []:
                continue
            return plan_pipeline(cfg, workers=n, from_stage=stage,
                                 first_tasks=tuple(todo) if todo else None)
        if not _single_done(cfg, stage):
            return plan_pipeline(cfg, workers=n, from_stage=stage)
    return []


def still_active(cfg: Config) -> list[str]:
    """Ids of this run's recorded jobs that SLURM still has queued or running."""
    subs = read_submissions(cfg)
    states = job_states(sorted({s.job_id for s in subs}))
    return sorted(k for k, v in states.items() if v in ACTIVE)
