"""Measured cost of each zone's EV search: the weights that balance the EV stage's split.

The EV stage records each zone's search time in the zone's file (attribute ``wall_s``). A
zone near the edge of its headroom can take 10x the time of a zone of the same size, so the
stage-6 estimate alone balances poorly. But the zone files change while an EV stage runs, and
every worker (MPI rank, array task, a later ``resubmit``) must compute the same split. So the
times are copied to ``ev/costs.csv`` only by the single-job steps that precede an EV stage:
the headroom stage (before round 1) and ``replan`` (before each further round). Every worker
of the next EV stage reads that one file.

A zone with a measured time costs that time [s]. A zone without one costs ``n_start + 1``
times the median measured seconds per ``n_start + 1`` (or just ``n_start + 1`` when nothing
was measured). The split never changes results, only who computes them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import h5io
from agileflex_hpc.layout import layout

if TYPE_CHECKING:
    from agileflex_hpc.config import Config

__all__ = ["snapshot_costs", "read_costs", "zone_costs"]

logger = logging.getLogger(__name__)

_MIN_S = 1e-3  # floor of a measured zone cost [s]
COLUMNS = ["network", "zone", "wall_s"]


def snapshot_costs(cfg: Config) -> bool:
    """Copy the ``wall_s`` of every zone file of the job to ``ev/costs.csv``.

    Zone files from older versions without ``wall_s`` are left out. Nothing is written when
    no zone was measured or the table is unchanged. Returns whether it wrote.
    """
    out = layout(cfg)
    rows = []
    for net in cfg.networks:
        folder = out.ev_zone_dir(net.name)
        for path in sorted(folder.glob("*.h5")) if folder.is_dir() else []:
            try:
                with h5py.File(path, "r") as f:
                    wall = f.attrs.get("wall_s")
            except OSError as exc:  # a damaged zone file is the EV stage's to report
                logger.debug("cost snapshot: %s unreadable (%s)", path, exc)
                continue
            if wall is not None and np.isfinite(wall):
                rows.append((net.name, path.stem, float(wall)))
    if not rows:
        return False
    wrote = h5io.write_csv_atomic(pd.DataFrame(rows, columns=COLUMNS), out.ev_costs)
    if wrote:
        logger.info("EV zone costs for the next split: %d zones measured -> %s", len(rows),
                    out.ev_costs)
    return wrote


def read_costs(cfg: Config) -> dict[tuple[str, str], float]:
    """The snapshot as ``{(network, zone): seconds}``; empty when there is none."""
    path = layout(cfg).ev_costs
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype={"network": str, "zone": str})
    if list(table.columns) != COLUMNS:
        logger.warning("%s: unexpected columns %s; balancing by the estimates", path,
                       list(table.columns))
        return {}
    return {(str(n), str(z)): float(w) for n, z, w in table.itertuples(index=False)
            if np.isfinite(w)}


def zone_costs(keys: list[tuple[str, str]], n_start: list[int],
               measured: dict[tuple[str, str], float]) -> list[float]:
    """Each zone's split weight: its measured seconds, else ``n_start + 1`` scaled by the
    median measured seconds per ``n_start + 1`` (see the module docstring)."""
    size = np.asarray(n_start, dtype=float) + 1.0
    seen = [(max(measured[k], _MIN_S), s) for k, s in zip(keys, size) if k in measured]
    per_unit = float(np.median([w / s for w, s in seen])) if seen else 1.0
    return [max(measured[k], _MIN_S) if k in measured else s * per_unit
            for k, s in zip(keys, size)]
