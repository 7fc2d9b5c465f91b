"""The agileflex command: the whole pipeline, its stages one by one, and SLURM.

  agileflex run CONFIG         the whole pipeline in this process (laptop mode; also
                               python -m agileflex_hpc run CONFIG)
  agileflex submit CONFIG      the same pipeline as dependent SLURM jobs
  agileflex status CONFIG      what is current, missing or stale; the submitted jobs' states
  agileflex resubmit CONFIG    the unfinished array tasks and the stages after them
  agileflex <stage> CONFIG     one stage, exactly as python -m agileflex_hpc.<stage>:
                               inputs, loadflow, gather, headroom, ev, validate, replan, report

Stages, in order: inputs and load flows (1-2), gather, zones, limits, headroom and hosting
(3-6), EV charging optimisation (7), validation load flows (8), in a plan-validate loop of
up to validate.max_rounds rounds, then the report. Completed results are reused, so an
interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from agileflex_hpc.cli import setup_logging
from agileflex_hpc.config import load_config
from agileflex_hpc.errors import AgileflexError
from agileflex_hpc.pipeline import STAGES, run_pipeline

logger = logging.getLogger("agileflex_hpc")


def init_project(folder: Path) -> int:
    """Copy the SLURM scripts (``slurm/``) and the demo job (``jobs/demo.toml``, writing to
    ``<folder>/Data``) into ``folder``; existing files are kept. From an installed package they
    come from ``<prefix>/share/agileflex_hpc``, in a checkout from the checkout."""
    import shutil

    here = Path(__file__).resolve().parents[1]
    for base in (Path(sys.prefix) / "share" / "agileflex_hpc", here):
        if (base / "slurm" / "loadflow.sh").is_file() and (base / "jobs" / "demo.toml").is_file():
            break
    else:
        print("agileflex init: the SLURM templates are not installed (reinstall the package)",
              file=sys.stderr)
        return 1
    files = sorted((base / "slurm").glob("*.sh")) + [base / "jobs" / "demo.toml"]
    for src in files:
        dst = Path(folder) / src.parent.name / src.name
        if dst.exists():
            print(f"kept {dst} (exists)")
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        print(f"wrote {dst}")
    print(f"next: cd {folder} && agileflex run jobs/demo.toml, or bash slurm/pipeline.sh "
          "jobs/demo.toml on a SLURM login node")
    return 0


#: ``agileflex <stage> CONFIG [...]``: the stage's own CLI (module with ``main(argv)``)
STAGE_COMMANDS = {stage: f"agileflex_hpc.{stage}" + ("" if stage == "replan" else ".__main__")
                  for stage in ("inputs", "loadflow", "gather", "headroom", "ev", "validate",
                                "replan", "report")}


def main(argv: list[str] | None = None) -> int:
    """``agileflex`` (= ``python -m agileflex_hpc``): run, status, or one stage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in STAGE_COMMANDS:  # the stage parses its own arguments
        import importlib

        return importlib.import_module(STAGE_COMMANDS[argv[0]]).main(argv[1:],
                                                                     f"agileflex {argv[0]}")
    from agileflex_hpc import __version__

    sbatch_args: list[str] = []  # submit/resubmit CONFIG ... -- <sbatch options for every job>
    if argv and argv[0] in ("submit", "resubmit") and "--" in argv:
        k = argv.index("--")
        argv, sbatch_args = argv[:k], argv[k + 1:]
    ap = argparse.ArgumentParser(prog="agileflex", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"agileflex_hpc {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in STAGE_COMMANDS:
        sub.add_parser(name, help=f"the {name} stage alone (agileflex {name} CONFIG --help)",
                       add_help=False)
    init = sub.add_parser("init", help="write the SLURM scripts and the demo job into DIR")
    init.add_argument("dir", type=Path, help="folder for slurm/ and jobs/demo.toml (existing "
                      "files are kept)")
    run_p = sub.add_parser("run", help="run the whole pipeline in this process")
    run_p.add_argument("config", help="job config (TOML), e.g. jobs/demo.toml")
    run_p.add_argument("--stages", default=",".join(STAGES),
                       help=f"comma-separated subset of {','.join(STAGES)} (the plan-validate "
                       "loop runs within validate, after ev) [all]")
    run_p.add_argument("--log-level", default="INFO", type=str.upper,
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="what the log (stderr) shows [INFO]")
    run_p.add_argument("--dry-run", action="store_true",
                       help="print what each stage would do (what is current, what is left)")
    st = sub.add_parser("status", help="list current, missing and stale results per stage, "
                                       "and the states of the submitted SLURM jobs")
    st.add_argument("config", help="job config (TOML)")
    st.add_argument("--clean", action="store_true",
                    help="also remove temporary files left by writers that died")
    st.add_argument("--check", action="store_true",
                    help="exit 3 when any result is missing or stale (for scripts)")
    st.add_argument("--dry-run", action="store_true",
                    help="with --clean: list the temporary files instead of removing them")
    from agileflex_hpc.slurm.commands import add_submit_arguments

    add_submit_arguments(sub.add_parser(
        "submit", help="submit the pipeline as dependent SLURM jobs (array stages split "
                       "over tasks)"))
    add_submit_arguments(sub.add_parser(
        "resubmit", help="resubmit the array tasks with missing or stale results (same split) "
                         "and the stages after them"), resubmit=True)
    args = ap.parse_args(argv)
    if args.command == "init":
        return init_project(args.dir)
    if args.command == "status":
        from agileflex_hpc.status import main as status_main

        return status_main([args.config, *(["--clean"] if args.clean else []),
                            *(["--check"] if args.check else []),
                            *(["--dry-run"] if args.dry_run else [])], "agileflex status")
    if args.command in ("submit", "resubmit"):
        from agileflex_hpc.slurm import commands

        args.sbatch_args = sbatch_args
        return (commands.submit_main if args.command == "submit"
                else commands.resubmit_main)(args)
    setup_logging(args.log_level.upper())
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        ap.error(f"unknown stages {unknown}; valid: {', '.join(STAGES)}")
    try:
        cfg = load_config(args.config)
        if args.dry_run:
            from agileflex_hpc.status import print_status

            print(f"agileflex run --dry-run: stages {', '.join(stages)} would run in this "
                  "process; each skips its current results:")
            print_status(cfg)
            return 0
        run_pipeline(cfg, stages=stages, echo=print)
    except AgileflexError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
