"""The whole pipeline in one process, as a library call: ``run_pipeline(cfg)``.

Stages, in order: load flows (1-2, stitched), headroom and hosting (3-6), EV charging (7),
validation (8) with the plan-validate loop, report. Every stage reuses its current results,
so an interrupted run continues where it stopped and a rerun that changes nothing computes
nothing. ``agileflex run CONFIG`` calls this and prints what it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd

from agileflex_hpc.cli import Workers
from agileflex_hpc.config import Config

__all__ = ["STAGES", "PipelineResult", "run_pipeline"]

logger = logging.getLogger("agileflex_hpc")

STAGES = ("loadflow", "headroom", "ev", "validate", "report")

_T = TypeVar("_T")


@dataclass
class PipelineResult:
    """What a pipeline run produced (tables by network; empty for stages not run)."""

    hosting: dict[str, pd.DataFrame] = field(default_factory=dict)  # stage 6
    answers: dict[str, pd.DataFrame] = field(default_factory=dict)  # stage 7, final round
    validation: pd.DataFrame | None = None  # stage 8, final round
    rounds: int = 0  # plan-validate rounds run in this call after the first
    report: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


def run_pipeline(cfg: Config, workers: Workers | None = None, *,
                 stages: tuple[str, ...] = STAGES,
                 echo: Callable[[str], None] | None = None) -> PipelineResult:
    """Run ``stages`` of the job in pipeline order in this process (or MPI world).

    ``echo`` receives each stage's table as text when it is done (the command line prints
    them); None: nothing is echoed.
    """
    from agileflex_hpc.ev.stage import run_ev
    from agileflex_hpc.h5io import remove_stale_temp_files
    from agileflex_hpc.headroom.stage import run as run_headroom
    from agileflex_hpc.loadflow.stage import run_loadflow
    from agileflex_hpc.replan import replan, rounds_done
    from agileflex_hpc.report import build_report, final_answer
    from agileflex_hpc.validate.stage import format_report, run_validation

    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; valid: {', '.join(STAGES)}")
    workers = workers or Workers(0, 1, None, "single")
    say = echo or (lambda text: None)
    out = PipelineResult()
    n = remove_stale_temp_files(cfg.out_dir, recursive=True) if workers.is_root else 0
    if n:
        logger.info("removed %d temporary files left by writers that died", n)

    def timed(stage: str, fn: Callable[[], _T]) -> _T:
        t0 = time.perf_counter()
        logger.info("== stage %s ==", stage)
        value = fn()
        out.seconds[stage] = out.seconds.get(stage, 0.0) + time.perf_counter() - t0
        logger.info("== stage %s done in %.1f s ==", stage, time.perf_counter() - t0)
        return value

    def ev_and_validate(tag: str) -> None:
        from agileflex_hpc.ev.stage import format_answer, format_runs

        ev = timed(f"ev{tag}", lambda: run_ev(cfg, workers))
        say(format_runs(ev.runs))
        out.answers = ev.answers
        for net, table in ev.answers.items():
            say(f"\n== EVs hosted (stage 7) beside the estimate (stage 6): {net}{tag} ==\n"
                f"{format_answer(table)}")
        if "validate" in stages:
            out.validation = timed(f"validate{tag}", lambda: run_validation(cfg, workers))
            if out.validation is not None:
                say(f"\n== validation report{tag} ==\n{format_report(out.validation)}")

    if "loadflow" in stages:
        timed("loadflow", lambda: run_loadflow(cfg, workers))
    if "headroom" in stages:
        out.hosting = timed("headroom", lambda: run_headroom(cfg))
        for name, table in out.hosting.items():
            say(f"\n== hosting summary: {name} ==\n{table.to_string(index=False)}")
    if "ev" in stages:
        ev_and_validate(" (round 1)" if "validate" in stages else "")
    elif "validate" in stages:
        out.validation = timed("validate", lambda: run_validation(cfg, workers))
    if "validate" in stages:
        while workers.is_root and replan(cfg):  # the plan-validate loop
            out.rounds += 1
            logger.info("== plan-validate round %d ==", rounds_done(cfg, cfg.networks[0].name))
            ev_and_validate(f" (round {out.rounds + 1})")
        if "ev" in stages and workers.is_root:
            say(final_answer(cfg, out.answers))
    if "report" in stages and workers.is_root:
        report, _ = timed("report", lambda: build_report(cfg))
        out.report = report
        say(f"report: {report.resolve()}")
    return out
