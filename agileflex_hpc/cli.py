"""Command-line plumbing shared by every stage: arguments, logging, workers, MPI.

Every stage is ``python -m agileflex_hpc.<stage> CONFIG [--worker I --workers N]
[--log-level L] [--dry-run]``. The worker share comes from, in order: the flags, the MPI
world (under ``mpirun``/``srun``), the SLURM array variables, else one worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agileflex_hpc.config import Config, load_config
from agileflex_hpc.errors import AgileflexError, ConfigError

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["Workers", "stage_parser", "setup_logging", "resolve_workers", "get_comm",
           "run_stage", "slurm_env"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workers:
    """This process's share: worker ``index`` of ``count``; ``comm`` is the MPI world or None."""

    index: int
    count: int
    comm: MPI.Intracomm | None = None
    source: str = "single"  # single, flags, slurm, mpi, or slurm+mpi (MPI inside array tasks)

    @property
    def is_root(self) -> bool:
        """Rank 0 of this process's MPI world, or any process without MPI: the one that plans,
        logs and writes the files its group shares."""
        return self.comm is None or self.comm.Get_rank() == 0

    @property
    def covers_all(self) -> bool:
        """This process group runs every item (single process or a whole-job MPI world)."""
        return self.source in ("single", "mpi")


def stage_parser(prog: str, description: str, *,
                 worker_options: bool = True) -> argparse.ArgumentParser:
    """The common options; ``--worker/--workers`` only where the stage splits its work."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("config", help="job config (TOML), e.g. jobs/demo.toml")
    if worker_options:
        p.add_argument("--worker", type=int, default=None,
                       help="0-based worker index (default: MPI rank or SLURM_ARRAY_TASK_ID)")
        p.add_argument("--workers", type=int, default=None,
                       help="number of workers (default: MPI size, AGILEFLEX_WORKERS or the "
                            "array size)")
    else:
        p.set_defaults(worker=None, workers=None)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return p


def slurm_env() -> dict[str, int | None]:
    """The SLURM array variables as integers (None where unset)."""
    keys = {"task": "SLURM_ARRAY_TASK_ID", "count": "SLURM_ARRAY_TASK_COUNT",
            "min": "SLURM_ARRAY_TASK_MIN", "max": "SLURM_ARRAY_TASK_MAX", "job": "SLURM_JOB_ID"}
    out: dict[str, int | None] = {}
    for key, var in keys.items():
        value = os.environ.get(var)
        out[key] = int(value) if value not in (None, "") else None
    return out


def get_comm() -> MPI.Intracomm | None:
    """MPI.COMM_WORLD when this process runs under an MPI launcher with >1 rank, else None."""
    launched = any(v in os.environ for v in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK",
                                             "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"))
    if not launched:
        return None
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:  # no libmpi: a clear message, not a hang
        raise ConfigError(f"launched under MPI but mpi4py cannot load: {exc}") from None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def resolve_workers(args: argparse.Namespace) -> Workers:
    """Decide this process's worker index and count (see module docstring)."""
    comm = get_comm()
    if comm is not None:
        if args.worker is not None or args.workers is not None:
            raise ConfigError("--worker/--workers cannot be combined with an MPI launch")
        outer = _array_share(args) if slurm_env()["task"] is not None else None
        if outer is None:
            return Workers(comm.Get_rank(), comm.Get_size(), comm, "mpi")
        # MPI inside each array task: task t's ranks take workers t*size .. t*size+size-1
        size = comm.Get_size()
        return Workers(outer.index * size + comm.Get_rank(), outer.count * size, comm,
                       "slurm+mpi")
    return _array_share(args)


def _array_share(args: argparse.Namespace) -> Workers:
    """The share from --worker/--workers, the SLURM array variables, else one worker."""
    env = slurm_env()
    count = args.workers if args.workers is not None else _int_env("AGILEFLEX_WORKERS")
    if count is not None and count < 1:
        raise ConfigError(f"the number of workers must be >= 1, got {count} (--workers or "
                          "AGILEFLEX_WORKERS)")
    index = args.worker if args.worker is not None else env["task"]
    if index is None:
        if args.workers is not None:
            raise ConfigError("--workers needs --worker I (or a SLURM array task)")
        return Workers(0, 1, None, "single")
    if count is None:
        if args.worker is not None:
            raise ConfigError("--worker needs --workers N")
        count, lo, hi = env["count"], env["min"], env["max"]
        if count is None or lo != 0 or hi is None or hi + 1 != count:  # not the full array
            raise ConfigError("a partial SLURM array (resubmitted ids) needs --workers N or "
                              "AGILEFLEX_WORKERS=N, the size of the original split")
    if not 0 <= index < count:
        raise ConfigError(f"worker {index} is outside 0..{count - 1}")
    return Workers(index, count, None, "flags" if args.worker is not None else "slurm")


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None


def setup_logging(level: str, workers: Workers | None = None) -> None:
    """Log to stderr with the worker in the format; non-root MPI ranks log warnings only."""
    tag = f"[{workers.source} {workers.index}/{workers.count}] " if workers else ""
    lvl = getattr(logging, level)
    if workers is not None and workers.comm is not None and not workers.is_root:
        lvl = max(lvl, logging.WARNING)
    logging.basicConfig(level=lvl, stream=sys.stderr, force=True,
                        format=f"%(asctime)s {tag}%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)


def run_stage(argv: list[str] | None, prog: str, description: str,
              body: Callable[[Config, Workers, argparse.Namespace], int],
              extend: Callable[[argparse.ArgumentParser], None] | None = None, *,
              clean: bool = True, worker_options: bool = True) -> int:
    """Parse, load the config (rank 0 then broadcast), run ``body``; errors exit non-zero.

    ``worker_options``: the stage splits its work over workers (``--worker/--workers``).
    Under MPI an exception on any rank prints its traceback and aborts every rank.
    """
    parser = stage_parser(prog, description, worker_options=worker_options)
    if extend is not None:
        extend(parser)
    args = parser.parse_args(argv)
    try:
        workers = resolve_workers(args)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, workers)
    comm = workers.comm
    try:
        cfg = _load(args.config, comm)
        if clean:
            _clean_leftovers(cfg, workers)
        return body(cfg, workers, args)
    except BrokenPipeError:  # e.g. `status CONFIG | head`: the reader has gone
        _quiet_stdout()
        return 0
    except AgileflexError as exc:
        logger.error("%s", exc)
        if comm is not None:
            _abort(comm)
        return 1
    except Exception:
        if comm is None:
            raise
        print(f"rank {workers.index}: unhandled error, aborting all ranks\n"
              + traceback.format_exc(), file=sys.stderr, flush=True)
        _abort(comm)
        return 1


#: seconds an aborting rank waits for mpirun to forward what it wrote [s]
_ABORT_GRACE_S = 1.0


def _abort(comm: MPI.Intracomm) -> None:
    """End every rank after an error on this one, its message shown first.

    A flush is not enough: MPICH's mpirun forwards a rank's output through a proxy, and
    output still in that pipe when the abort kills the ranks is lost (seen in CI: an
    ``mpirun -n 2`` run ended with code 1 and an empty stderr)."""
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(_ABORT_GRACE_S)
    comm.Abort(1)


def _clean_leftovers(cfg: Config, workers: Workers) -> None:
    """Remove temporary files that killed writers of this host left in the run's folder."""
    from agileflex_hpc.h5io import remove_stale_temp_files

    if workers.is_root:
        n = remove_stale_temp_files(cfg.out_dir, recursive=True)
        if n:
            logger.info("removed %d temporary files left by writers that died", n)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that Python's exit flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _load(path: str, comm: MPI.Intracomm | None) -> Config:
    """Rank 0 reads the config; the others receive it (a bad config fails everywhere)."""
    if comm is None:
        return load_config(path)
    cfg: Config | None = None
    err: ConfigError | None = None
    if comm.Get_rank() == 0:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            err = exc
    cfg, err = comm.bcast((cfg, err), root=0)
    if err is not None:
        raise err
    return cfg
