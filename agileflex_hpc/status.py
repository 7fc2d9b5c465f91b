"""CLI: ``python -m agileflex_hpc.status CONFIG``: what is complete and what is missing, per stage.

Reads only the files (never OpenDSS): a file counts as complete when it opens and carries
``complete = 1`` (written last, after an atomic rename).
"""

from __future__ import annotations

import sys
from pathlib import Path

from agileflex_hpc import h5io
from agileflex_hpc.cli import run_stage

__all__ = ["stage_status", "main"]


def stage_status(cfg) -> list[tuple[str, int, int, list[str]]]:
    """(stage, complete, expected, first missing names) for every stage of the job."""
    from agileflex_hpc.inputs.stage import inputs_path
    from agileflex_hpc.loadflow.gather import stitched_path
    from agileflex_hpc.loadflow.run import block_path
    from agileflex_hpc.network.manifest import manifest_path
    from agileflex_hpc.partition import list_items

    out = cfg.out_dir
    nets = [n.name for n in cfg.networks]
    cases = list(cfg.cases.names)
    rows = [_check("manifests", [manifest_path(out, n) for n in nets]),
            _check("inputs", [inputs_path(out, n, c) for n in nets for c in cases])]
    items = list_items([(n, 1) for n in nets], cases, cfg.time.n_steps, cfg.time.block_steps)
    rows.append(_check("loadflow blocks", [block_path(out / "raw", it) for it in items]))
    rows.append(_check("stitched", [stitched_path(out / "raw", n, c) for n in nets
                                     for c in cases]))
    rows.append(_check("headroom", [out / "hosting" / f"{n}.h5" for n in nets]))
    rows.append(_check("ev zones", _ev_paths(cfg)))
    rows.append(_check("validation", [out / "validation" / n / "report.h5" for n in nets]))
    rows.append(_check("report", [out / "report" / "index.html"]))
    return rows


def _ev_paths(cfg) -> list[Path]:
    """Zone files the EV stage will write (known once every hosting file exists)."""
    from agileflex_hpc.evcharging.stage import list_zone_tasks, zone_path

    if not all(h5io.is_complete(cfg.out_dir / "hosting" / f"{n.name}.h5") for n in cfg.networks):
        return []
    return [zone_path(cfg.out_dir, t.network, t.zone) for t in list_zone_tasks(cfg)]


def _check(stage: str, paths: list[Path]) -> tuple[str, int, int, list[str]]:
    missing = [p for p in paths if not (h5io.is_complete(p) if p.suffix == ".h5"
                                        else p.is_file())]
    return stage, len(paths) - len(missing), len(paths), [str(p) for p in missing[:5]]


def main(argv: list[str] | None = None) -> int:
    return run_stage(argv, "python -m agileflex_hpc.status",
                     "List complete and missing results per stage.", _body)


def _body(cfg, workers, args) -> int:
    print(f"run {cfg.run.name!r} in {cfg.out_dir}")
    print(f"{'stage':18s} {'complete':>9s} {'expected':>9s}")
    for stage, done, expected, missing in stage_status(cfg):
        mark = "ok" if done == expected else "MISSING"
        print(f"{stage:18s} {done:9d} {expected:9d}  {mark}")
        for path in missing:
            print(f"{'':20s}- {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
