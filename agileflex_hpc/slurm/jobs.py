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
from agileflex_hpc.fingerprint import Fingerprints
from agileflex_hpc.slurm.submit import (
    ARRAY_STAGES,
    PIPELINE,
    JobSpec,
    Submitted,
    plan_pipeline,
    read_submissions,
)

__all__ = ["job_states", "ACTIVE", "latest_jobs", "tasks_to_redo", "resubmit_plan",
           "slurm_reachable", "still_active", "task_state"]

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


def slurm_reachable(timeout_s: float = 10.0) -> bool:
    """Whether ``squeue`` answers here within ``timeout_s`` [s] (a controller to ask; without
    one, SLURM's commands retry for a minute each)."""
    return _run(["squeue", "-h", "-o", "%i"], timeout_s) is not None


def _run(cmd: list[str], timeout_s: float = 60.0) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
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
    from agileflex_hpc.partition import shares

    fps = Fingerprints(cfg)
    if stage == "ev":
        from agileflex_hpc.ev.stage import list_zone_tasks, tasks_for, zone_current

        try:
            zones = list_zone_tasks(cfg, fps)
        except AgileflexError:
            return None
        return [w for w in range(n_workers)
                if not all(zone_current(cfg, fps, t) for t in tasks_for(w, n_workers, zones))]
    if stage in ("loadflow", "validate"):
        from agileflex_hpc.loadflow.run import loadflow_target, plan
        from agileflex_hpc.validate.stage import validation_target

        target = loadflow_target(cfg) if stage == "loadflow" else validation_target(cfg)
        try:  # the tasks' own split: costed by the manifests' bus counts, as they plan it
            items = plan(cfg, target.cases, fps, build=False)
        except AgileflexError:  # no current manifests: the stage has not run since
            return None
        return [w for w, part in enumerate(shares(items, n_workers))
                if not all(target.block_current(fps, items[k]) for k in part)]
    raise ValueError(f"{stage} is not an array stage")


#: the single-job stages of the chain and their rows in :func:`agileflex_hpc.status.stage_status`
#: (``report`` stands for the later rounds, the final replan and the report)
_SINGLE_ROWS = {"gather": ("stitched",), "headroom": ("headroom",),
                "validate-gather": ("validation",), "report": ("plan-validate loop", "report")}


def resubmit_plan(cfg: Config, workers: dict[str, int] | None = None) -> list[JobSpec]:
    """The jobs that finish the run: from the first stage with work left, that stage's
    unfinished array tasks only (same split as before), then every later stage. Empty when
    every result is current."""
    from agileflex_hpc.status import stage_status

    prev = {s.name: s for s in read_submissions(cfg)}
    n: dict[str, int] = {
        s: ((workers or {}).get(s) or (prev[s].n_workers if s in prev else None)
            or cfg.slurm.workers)
        for s in ARRAY_STAGES}
    done = {row: current == expected for row, current, expected, _ in stage_status(cfg)}
    for stage in PIPELINE:
        if stage in ARRAY_STAGES:
            todo = tasks_to_redo(cfg, stage, n[stage])
            if todo == []:
                continue
            return plan_pipeline(cfg, workers=n, from_stage=stage,
                                 first_tasks=tuple(todo) if todo else None)
        if not all(done[row] for row in _SINGLE_ROWS[stage]):
            return plan_pipeline(cfg, workers=n, from_stage=stage)
    return []


def still_active(cfg: Config) -> list[str]:
    """Ids of this run's recorded jobs that SLURM still has queued or running."""
    subs = read_submissions(cfg)
    states = job_states(sorted({s.job_id for s in subs}))
    return sorted(k for k, v in states.items() if v in ACTIVE)
