"""``agileflex submit CONFIG``: the whole pipeline as a chain of dependent SLURM jobs.

    loadflow (array) -> gather -> headroom -> ev (array) -> validate (array) -> validate-gather
    [-> replan -> ev -> validate -> validate-gather] x (validate.max_rounds - 1)
    -> replan-final -> report

``replan-final`` records the last round's validation (the history, ``replan/rounds.csv``, and
the verdict), as ``agileflex run`` does after its last validation.

Each job waits for the previous one (``--dependency=afterok``, ``--kill-on-invalid-dep=yes``:
a failed stage cancels the rest instead of leaving it pending). The batch scripts are rendered
into ``<run>/slurm/scripts/``, logs go to ``<run>/slurm-logs/`` (created before submitting),
and every submitted job is recorded in ``<run>/slurm/submissions.jsonl`` for ``agileflex
status`` and ``agileflex resubmit``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agileflex_hpc.config import Config
from agileflex_hpc.errors import AgileflexError
from agileflex_hpc.layout import layout
from agileflex_hpc.slurm.scripts import write_scripts

__all__ = ["PIPELINE", "ARRAY_STAGES", "JobSpec", "plan_pipeline", "submit_jobs",
           "Submitted", "read_submissions", "SubmitError"]

#: submission order; ``report`` stands for the later plan-validate rounds (replan, ev,
#: validate, validate-gather, each round), the final replan and the report
PIPELINE = ("loadflow", "gather", "headroom", "ev", "validate", "validate-gather", "report")
ARRAY_STAGES = ("loadflow", "ev", "validate")


class SubmitError(AgileflexError):
    """sbatch refused a job (the jobs already submitted are cancelled)."""


@dataclass(frozen=True)
class JobSpec:
    """One job to submit: ``name`` (unique in the chain), the stage script, the array tasks
    (None: a single job) of an ``n_workers`` split, and the stage CLI's extra arguments."""

    name: str
    stage: str
    tasks: tuple[int, ...] | None = None
    n_workers: int | None = None
    args: tuple[str, ...] = ()

    @property
    def array_spec(self) -> str | None:
        """The ``--array`` value: ``0-3`` for a whole split, ``1,3`` for some of its tasks."""
        if self.tasks is None:
            return None
        t = list(self.tasks)
        if t == list(range(t[0], t[-1] + 1)):
            return f"{t[0]}-{t[-1]}" if len(t) > 1 else str(t[0])
        return ",".join(map(str, t))


def plan_pipeline(cfg: Config, *, workers: dict[str, int] | None = None,
                  from_stage: str = "loadflow",
                  first_tasks: tuple[int, ...] | None = None) -> list[JobSpec]:
    """The jobs of the pipeline from ``from_stage`` on (one of :data:`PIPELINE`).

    ``workers`` maps an array stage to its number of tasks (default ``slurm.workers``);
    ``first_tasks`` restricts the first job, when it is an array stage, to those tasks.
    """
    if from_stage not in PIPELINE:
        raise AgileflexError(f"unknown stage {from_stage!r}; one of: {', '.join(PIPELINE)}")
    n = {s: (workers or {}).get(s, cfg.slurm.workers) for s in ARRAY_STAGES}
    for stage, count in n.items():
        if count < 1:
            raise AgileflexError(f"{stage}: the number of array tasks must be >= 1, got {count}")

    def job(name: str, stage: str, *args: str) -> JobSpec:
        if stage not in ARRAY_STAGES or "--gather" in args:
            return JobSpec(name, stage, args=args)
        return JobSpec(name, stage, tuple(range(n[stage])), n[stage], args)

    jobs: list[JobSpec] = []
    for stage in PIPELINE[PIPELINE.index(from_stage):]:
        if stage == "validate-gather":
            jobs.append(job("validate-gather", "validate", "--gather"))
        elif stage == "report":
            for r in range(2, cfg.validate.max_rounds + 1):
                jobs += [job(f"replan-{r}", "replan"), job(f"ev-{r}", "ev"),
                         job(f"validate-{r}", "validate"),
                         job(f"validate-gather-{r}", "validate", "--gather")]
            jobs += [job("replan-final", "replan"), job("report", "report")]
        else:
            jobs.append(job(stage, stage))
    if first_tasks is not None and jobs and jobs[0].tasks is not None:
        bad = sorted(set(first_tasks) - set(jobs[0].tasks))
        if bad or not first_tasks:
            n_first = jobs[0].n_workers
            assert n_first is not None  # job() gives every array job its split's size
            raise AgileflexError(f"{jobs[0].name}: tasks {bad or '(none)'} are not in "
                                 f"0..{n_first - 1}")
        jobs[0] = JobSpec(jobs[0].name, jobs[0].stage, tuple(sorted(set(first_tasks))),
                          jobs[0].n_workers, jobs[0].args)
    return jobs


@dataclass
class Submitted:
    """A submitted job as recorded in ``submissions.jsonl``."""

    batch: str  # one id per `agileflex submit`/`resubmit` call
    name: str
    stage: str
    job_id: str
    tasks: list[int] | None
    n_workers: int | None
    args: list[str] = field(default_factory=list)
    time: str = ""
    sbatch: list[str] = field(default_factory=list)  # the options given to every sbatch
    max_parallel: int = 0  # the array throttle it was submitted with (0: none)


def submissions_path(cfg: Config) -> Path:
    return layout(cfg).submissions


def logs_dir(cfg: Config) -> Path:
    return layout(cfg).slurm_logs_dir


def read_submissions(cfg: Config) -> list[Submitted]:
    """Every job recorded for this run, oldest first (none if nothing was submitted)."""
    path = submissions_path(cfg)
    if not path.is_file():
        return []
    out: list[Submitted] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(Submitted(**json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise AgileflexError(f"{path}:{n}: not a submission record ({exc})") from None
    return out


def sbatch_command(cfg: Config, spec: JobSpec, script: Path, *, after: str | None,
                   max_parallel: int = 0, extra: tuple[str, ...] = ()) -> list[str]:
    """The sbatch command line of one job."""
    logs = logs_dir(cfg)
    cmd = ["sbatch", "--parsable", f"--job-name=af-{spec.name}"]
    if spec.tasks is None:
        cmd.append(f"--output={logs}/%x_%j.out")
    else:
        array = spec.array_spec or ""
        if max_parallel > 0:
            array += f"%{max_parallel}"
        cmd += [f"--array={array}", f"--output={logs}/%x_%A_%a.out",
                f"--export=ALL,AGILEFLEX_WORKERS={spec.n_workers}"]
    if after:
        cmd += [f"--dependency=afterok:{after}", "--kill-on-invalid-dep=yes"]
    assert cfg.source is not None  # submit_jobs refuses a config without a file
    cmd += [*extra, str(script), str(Path(cfg.source).resolve()), *spec.args]
    return cmd


def submit_jobs(cfg: Config, jobs: list[JobSpec], *, max_parallel: int = 0,
                extra: tuple[str, ...] = (), dry_run: bool = False,
                after: str | None = None) -> list[tuple[str, str]]:
    """Submit ``jobs`` in order, each after the previous (the first after ``after``).

    Returns (name, job id) per job. With ``dry_run`` prints the sbatch commands to stderr and
    creates nothing (the ids are placeholders). If sbatch fails, the jobs already submitted
    are cancelled and :class:`SubmitError` is raised.
    """
    if cfg.source is None:
        raise AgileflexError("submit needs a job config file (cfg.source is unset)")
    scripts = layout(cfg).slurm_scripts_dir
    env = _job_env()
    batch = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    if not dry_run:
        logs_dir(cfg).mkdir(parents=True, exist_ok=True)
        write_scripts(scripts)
    done: list[tuple[str, str]] = []
    prev = after
    for spec in jobs:
        cmd = sbatch_command(cfg, spec, scripts / f"{spec.stage}.sh", after=prev,
                             max_parallel=max_parallel, extra=extra)
        if dry_run:
            print(shlex.join(cmd), file=sys.stderr)
            job_id = f"<{spec.name}>"
        else:
            job_id = _sbatch(cmd, env, spec.name, [j for _, j in done])
            _record(cfg, Submitted(batch, spec.name, spec.stage, job_id,
                                   list(spec.tasks) if spec.tasks is not None else None,
                                   spec.n_workers, list(spec.args),
                                   dt.datetime.now().isoformat(timespec="seconds"),
                                   list(extra), max_parallel))
        done.append((spec.name, job_id))
        prev = job_id
    return done


def _job_env() -> dict[str, str]:
    """The environment sbatch passes on (--export=ALL): the python running this command
    (unless AGILEFLEX_PYTHON is set) and, from a checkout, the checkout."""
    env = dict(os.environ)
    env.setdefault("AGILEFLEX_PYTHON", sys.executable)
    pkg_parent = Path(__file__).resolve().parents[2]
    if (pkg_parent / "slurm").is_dir() and (pkg_parent / "setup.cfg").is_file():
        env.setdefault("AGILEFLEX_ROOT", str(pkg_parent))
    return env


def _sbatch(cmd: list[str], env: dict[str, str], name: str, submitted: list[str]) -> str:
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        err = res.stderr.strip() if res.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        res, err = None, str(exc)
    job_id = res.stdout.strip().split(";")[0] if res is not None and not err else ""
    if err or not job_id.isdigit():
        if submitted:
            subprocess.run(["scancel", *submitted], env=env, capture_output=True, timeout=60)
        cancelled = f"; cancelled the jobs already submitted: {' '.join(submitted)}" \
            if submitted else ""
        detail = err if err or res is None else res.stdout
        detail = " / ".join(line.strip() for line in detail.splitlines() if line.strip())
        raise SubmitError(f"sbatch failed for stage {name}: {detail or 'no job id'}{cancelled}")
    return job_id


def _record(cfg: Config, sub: Submitted) -> None:
    path = submissions_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(sub.__dict__) + "\n")
        f.flush()
        os.fsync(f.fileno())

