"""CLI: ``python -m agileflex_hpc.status CONFIG``: what is complete and what is missing, per stage.

Reads only the files (never OpenDSS): a file counts as complete when it opens, carries
``complete = 1`` (written last, after an atomic rename) and the fingerprint the current config
and input files give it; otherwise it is listed as missing, incomplete or stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agileflex_hpc.cli import run_stage
from agileflex_hpc.fingerprint import Fingerprints, Key, explain, freshness
from agileflex_hpc.layout import layout

if TYPE_CHECKING:
    from collections.abc import Callable

    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config

__all__ = ["stage_status", "print_status", "main"]


def stage_status(cfg: Config) -> list[tuple[str, int, int, list[str]]]:
    """(stage, current, expected, first problems) for every stage of the job.

    A file is current when it is complete and its fingerprint is the one the current config
    and input files give it; the problems name missing, incomplete and stale files (with what
    changed).
    """
    from agileflex_hpc.gather import stitched_path
    from agileflex_hpc.headroom.stage import output_paths
    from agileflex_hpc.inputs.stage import inputs_path
    from agileflex_hpc.loadflow.run import block_path, study_items
    from agileflex_hpc.network.manifest import manifest_path
    from agileflex_hpc.validate.stage import report_h5_path

    fps = Fingerprints(cfg)
    out = cfg.out_dir
    nets = [n.name for n in cfg.networks]
    cases = list(cfg.cases.keys)  # every (case, sample)
    raw = layout(cfg).raw_dir
    items = study_items(cfg)
    blocks = [(block_path(raw, it), fps.block(it.network, it.case, it.start, it.stop))
              for it in items]
    block_states = [freshness(path, key) for path, key in blocks]
    # a stitched file reads its blocks: one missing or stale under it is not current either
    broken = {stitched_path(raw, it.network, it.case)
              for it, state in zip(items, block_states) if state != "ok"}
    rows = [
        _check("manifests", [(manifest_path(out, n), fps.network(n)) for n in nets]),
        _check("inputs", [(inputs_path(out, n, c), fps.inputs(n, c)) for n in nets
                          for c in cases]),
        _check("loadflow blocks", blocks, states=block_states),
        _check("stitched", [(stitched_path(raw, n, c), fps.stitched(n, c)) for n in nets
                            for c in cases], also=broken.__contains__),
        _check("headroom", [(p, fps.headroom(n)) for n in nets for p in output_paths(cfg, n)]),
        _check_ev_zones(cfg, fps),
        _check("validation", [(report_h5_path(out, n), fps.validation(n)) for n in nets]),
    ]
    rows.append(_check_loop(cfg, fps))
    rows.append(_check_report(cfg))
    return rows


def _check_loop(cfg: Config, fps: Fingerprints) -> tuple[str, int, int, list[str]]:
    """Each network's current validation is recorded by the plan-validate loop (its round in
    ``replan/<net>.h5``'s history: what ``replan`` writes after every validation)."""
    from agileflex_hpc.replan import read_caps
    from agileflex_hpc.validate.stage import report_h5_path

    problems = []
    for net in cfg.networks:
        name = net.name
        if freshness(report_h5_path(cfg.out_dir, name), fps.validation(name)) != "ok":
            problems.append(f"{name}: no current validation to record")
            continue
        _, round_, history = read_caps(cfg, name)
        if not (history["round"] == round_).any():
            problems.append(f"{name}: round {round_}'s validation is not recorded (run "
                            "agileflex replan, then the report)")
    return "plan-validate loop", len(cfg.networks) - len(problems), len(cfg.networks), \
        problems[:5]


def _check_report(cfg: Config) -> tuple[str, int, int, list[str]]:
    """The page is current when it was drawn from the results there are now (the digest of
    code, config and result fingerprints it stores)."""
    from agileflex_hpc.report import inputs_fingerprint
    from agileflex_hpc.report.html import page_fingerprint

    index = layout(cfg).report_index
    if not index.is_file():
        return "report", 0, 1, [f"{index} (missing)"]
    if page_fingerprint(index) != inputs_fingerprint(cfg):
        return "report", 0, 1, [f"{index} (stale: drawn from other results or another config; "
                                "run the report stage)"]
    return "report", 1, 1, []


def _check_ev_zones(cfg: Config, fps: Fingerprints) -> tuple[str, int, int, list[str]]:
    """The EV zone files; how many there must be is known only once the manifests (zones
    with customers) exist: before that, each missing manifest is a problem of its own."""
    from agileflex_hpc.ev.stage import zone_path
    from agileflex_hpc.network.manifest import manifest_path

    row = _check("ev zones", [(zone_path(cfg.out_dir, n, z), fps.ev_zone(n, z))
                              for n, z in _ev_zones(cfg, fps)])
    states = {net.name: freshness(manifest_path(cfg.out_dir, net.name), fps.network(net.name))
              for net in cfg.networks}
    unknown = [f"{name}: zones not known yet (manifest {state}: run the load flows)"
               for name, state in states.items() if state != "ok"]
    stage, ok, total, problems = row
    return stage, ok, total + len(unknown), (problems + unknown)[:5]


def _ev_zones(cfg: Config, fps: Fingerprints) -> list[tuple[str, str]]:
    """(network, zone) of every zone with customers, from the current manifests (none from
    a missing or stale one: an older release's may not even be readable)."""
    from agileflex_hpc.network.manifest import manifest_path, read_manifest

    zones: list[tuple[str, str]] = []
    for net in cfg.networks:
        path = manifest_path(cfg.out_dir, net.name)
        if freshness(path, fps.network(net.name)) != "ok":
            continue
        m = read_manifest(path)
        zones += [(net.name, z) for z, n in zip(m.zone_ids, m.topology.zone_customers) if n > 0]
    return zones


def _check(stage: str, files: list[tuple[Path, Key]], *, states: list[str] | None = None,
           also: Callable[[Path], bool] | None = None) -> tuple[str, int, int, list[str]]:
    """The row of ``files`` (``states``: their freshness, where already read); ``also(path)``:
    a current file that is not usable all the same (a stitched file over a missing or stale
    block)."""
    problems: list[str] = []
    if states is None:
        states = [freshness(path, key) for path, key in files]
    for (path, key), state in zip(files, states):
        if state == "stale":
            problems.append(f"{path} (stale: {explain(path, key)})")
        elif state != "ok":
            problems.append(f"{path} ({state})")
        elif also is not None and also(path):
            problems.append(f"{path} (stale: a block under it is missing or stale)")
    return stage, len(files) - len(problems), len(files), problems[:5]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The stage's command line (``prog``: the name it was called by, for usage and errors)."""
    return run_stage(argv, prog or "python -m agileflex_hpc.status",
                     "List current, missing and stale results per stage, and the submitted "
                     "SLURM jobs' states.", _body, extend=_extend, clean=False,
                     worker_options=False)


#: ``status --check``'s exit status when a result is missing or stale
NOT_CURRENT = 3


def _extend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clean", action="store_true",
                   help="also remove temporary files left by writers that died")
    p.add_argument("--check", action="store_true",
                   help=f"exit {NOT_CURRENT} when any result is missing or stale (for scripts)")


def _body(cfg: Config, workers: Workers, args: argparse.Namespace) -> int:
    if args.clean:
        from agileflex_hpc.h5io import remove_stale_temp_files

        n = remove_stale_temp_files(cfg.out_dir, recursive=True, dry_run=args.dry_run)
        print(f"{'would remove' if args.dry_run else 'removed'} {n} temporary files left by "
              "writers that died")
    current = print_status(cfg)
    from agileflex_hpc.slurm.commands import print_jobs

    print_jobs(cfg)
    return NOT_CURRENT if getattr(args, "check", False) and not current else 0


def print_status(cfg: Config) -> bool:
    """Print the per-stage table: complete / expected files, and the first problems; return
    whether every result is current."""
    print(f"run {cfg.run.name!r} in {cfg.out_dir}")
    print(f"{'stage':18s} {'complete':>9s} {'expected':>9s}")
    current = True
    for stage, done, expected, missing in stage_status(cfg):
        stale = any("(stale" in m for m in missing)
        mark = "ok" if done == expected else ("STALE" if stale else "MISSING")
        current &= done == expected
        print(f"{stage:18s} {done:9d} {expected:9d}  {mark}")
        for path in missing:
            print(f"{'':20s}- {path}")
    return current


if __name__ == "__main__":
    sys.exit(main())
