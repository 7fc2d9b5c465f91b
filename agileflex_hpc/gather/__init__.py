"""Stitch a (network, case)'s block files into one file of HDF5 virtual datasets.

``<raw_dir>/<network>/<case>.h5`` presents ``/loadflow/<var>`` over the whole time axis,
mapping each block's datasets by relative path (the folder can be moved as a whole). A virtual
dataset reads missing sources as fill values without error, so every block is checked to exist,
be complete and match its fingerprint before the file is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.errors import ResultsError
from agileflex_hpc.fingerprint import Fingerprints, Key, freshness, require_fresh
from agileflex_hpc.inputs.stage import study_times
from agileflex_hpc.layout import RunLayout
from agileflex_hpc.loadflow.run import (
    VARIABLES,
    LoadflowInputs,
    block_path,
    loadflow_target,
    verify_blocks,
)
from agileflex_hpc.network.manifest import manifest_path, read_manifest
from agileflex_hpc.partition import WorkItem, list_items

if TYPE_CHECKING:
    from agileflex_hpc.config import Config

__all__ = ["stitch", "stitched_path", "gather_all", "missing_blocks", "require_stitched"]

logger = logging.getLogger(__name__)


def stitched_path(raw_dir: Path, network: str, case: str) -> Path:
    return RunLayout.stitched(raw_dir, network, case)


def missing_blocks(raw_dir: Path, items: list[WorkItem]) -> list[WorkItem]:
    """Items whose block file is absent or not marked complete."""
    return [it for it in items if not h5io.is_complete(block_path(raw_dir, it))]


def stitch(cfg: Config, raw_dir: Path, items: list[WorkItem], *, label: str = "loadflow",
           key: Key | None = None) -> Path:
    """Write the virtual-dataset file of one (network, case) from its items' blocks (in any
    order: they are stitched in time order).

    ``key`` is the stitched file's fingerprint key (stored with it); callers check the blocks
    first (:func:`~agileflex_hpc.loadflow.run.verify_blocks`).
    """
    items = sorted(items, key=lambda it: it.start)
    network, case = items[0].network, items[0].case
    missing = missing_blocks(raw_dir, items)
    if missing:
        names = ", ".join(f"block_{m.block:05d}" for m in missing[:10])
        raise ResultsError(f"{network}/{case}: {len(missing)} of {len(items)} blocks missing "
                           f"or incomplete in {raw_dir / network / case}: {names}; rerun the "
                           f"{label} stage (complete blocks are skipped)")
    out = stitched_path(raw_dir, network, case)
    first = block_path(raw_dir, items[0])
    with h5py.File(first, "r") as f0:
        shapes = {k: f0["loadflow"][k].shape[1:] for k in VARIABLES}
        dtypes = {k: f0["loadflow"][k].dtype for k in VARIABLES}
    m = read_manifest(manifest_path(cfg.out_dir, network))
    coords = {"bus": m.bus_names, "line": m.line_names,
              "phase": np.array([1, 2, 3], dtype=np.int8), "transformer": m.transformer_names}
    n_time = items[-1].stop - items[0].start
    times = study_times(cfg)[items[0].start:items[-1].stop]
    attrs = h5io.provenance(cfg, network=network, case=case, stage=label,
                            blocks=len(items), **(fingerprint.attrs(key) if key else {}))
    with h5io.atomic_h5(out, attrs=attrs) as f:
        schema.STITCHED.write_coord(f, "time", h5io.time_to_epoch(times))
        for name, values in coords.items():
            schema.STITCHED.write_coord(f, name, values)
        g = f.create_group("loadflow")
        for name in VARIABLES:
            v = schema.STITCHED.variable(f"loadflow/{name}")
            layout = h5py.VirtualLayout(shape=(n_time, *shapes[name]), dtype=dtypes[name])
            for it in items:
                rel = str(block_path(raw_dir, it).relative_to(out.parent))
                src = h5py.VirtualSource(rel, f"loadflow/{name}",
                                         shape=(it.n_steps, *shapes[name]))
                layout[it.start - items[0].start:it.stop - items[0].start] = src
            fill = np.nan if np.dtype(dtypes[name]).kind == "f" else 0
            ds = g.create_virtual_dataset(name, layout, fillvalue=fill)
            ds.attrs.update(units=v.units, description=v.text())
            ds.attrs["dims"] = json.dumps(list(v.dims))
            h5io.attach_scales(ds, list(v.dims))
    logger.info("stitched %d blocks -> %s", len(items), out)
    return out


def gather_all(cfg: Config, items: list[WorkItem], raw_dir: Path | None = None, *,
               label: str = "loadflow", target: LoadflowInputs | None = None) -> list[Path]:
    """Check every block of ``items`` (present, complete, current inputs, intact data), then
    stitch every (network, case) whose stitched file is not current; nothing is written when
    a block is not usable. Returns the files written.

    ``target`` (default stage 2's) gives the fingerprint keys of the blocks and stitched files.
    """
    target = target or loadflow_target(cfg)
    raw_dir = Path(raw_dir or target.raw_dir)
    fps = Fingerprints(cfg)
    verify_blocks(raw_dir, items, lambda it: target.block_key(fps, it.network, it.case,
                                                              it.start, it.stop), label=label)
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for it in items:
        groups.setdefault((it.network, it.case), []).append(it)
    written = []
    for (network, case), group in groups.items():
        key = target.stitched_key(fps, network, case)
        if freshness(stitched_path(raw_dir, network, case), key) != "ok":
            written.append(stitch(cfg, raw_dir, group, label=label, key=key))
    return written


def require_stitched(cfg: Config, fps: Fingerprints, network: str, case: str,
                     target: LoadflowInputs | None = None) -> Path:
    """The stitched file of (network, case), after checking that it and every block under it
    were computed from the current inputs and hold their data intact.

    Raises
    ------
    StaleError
        Naming the stale, missing or corrupt file and what changed.
    """
    target = target or loadflow_target(cfg)
    path = stitched_path(target.raw_dir, network, case)
    require_fresh(path, target.stitched_key(fps, network, case), producer=target.label)
    items = list_items([(network, 1)], [case], cfg.time.n_steps, cfg.block_steps(network))
    verify_blocks(target.raw_dir, items,
                  lambda it: target.block_key(fps, network, case, it.start, it.stop),
                  label=target.label)
    return path
