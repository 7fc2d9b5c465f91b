"""Stage 1 runner: the customers table and demand/PV series of one (network, case), in HDF5.

``<out>/inputs/<network>/<case>.h5`` holds ``/inputs/customers`` (table) and
``/inputs/demand_kw``, ``/inputs/pv_kw`` (time, customer). Everything is seeded per customer,
so the file is the same whichever worker writes it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.config import split_case_key
from agileflex_hpc.errors import InputDataError
from agileflex_hpc.fingerprint import Fingerprints, freshness
from agileflex_hpc.layout import layout

if TYPE_CHECKING:
    from agileflex_hpc.config import Config
    from agileflex_hpc.network.manifest import NetworkManifest

__all__ = ["inputs_path", "study_times", "ensure_inputs", "read_inputs", "read_customers",
           "check_profiles"]

logger = logging.getLogger(__name__)


def inputs_path(out_dir: Path, network: str, case: str) -> Path:
    return layout(out_dir).inputs(network, case)


def study_times(cfg: Config) -> pd.DatetimeIndex:
    """Start of every step of the study (naive local clock)."""
    return pd.date_range(pd.Timestamp(cfg.time.start), periods=cfg.time.n_steps,
                         freq=f"{cfg.time.step_minutes}min")


def ensure_inputs(cfg: Config, manifest: NetworkManifest, case: str,
                  fps: Fingerprints | None = None) -> Path:
    """Write the (network, case) inputs file unless a complete one of the same inputs (by
    content: config values, profile files, network files) exists. ``case`` may be a sample's
    key (``config.case_key``): its customers are that sample's draw."""
    from agileflex_hpc.inputs.assignment import assign_customers, build_profiles

    path = inputs_path(cfg.out_dir, manifest.name, case)
    key = (fps or Fingerprints(cfg)).inputs(manifest.name, case)
    if freshness(path, key) == "ok":
        return path
    name, sample = split_case_key(case)
    customers = assign_customers(manifest.customers, network=manifest.name, case=name,
                                 seed=cfg.run.seed, sample=sample)
    times = study_times(cfg)
    pc = cfg.profiles
    series = build_profiles(customers, times, network=manifest.name, seed=cfg.run.seed,
                            source=pc.source, path=pc.path, hp_path=pc.hp_path,
                            pv_path=pc.pv_path)
    _check_series(series, manifest.name, case)
    attrs = h5io.provenance(cfg, network=manifest.name, case=case, **fingerprint.attrs(key))
    with h5io.atomic_h5(path, attrs=attrs) as f:
        schema.INPUTS.write_coord(f, "time", h5io.time_to_epoch(times))
        schema.INPUTS.write_coord(f, "customer", customers["load"].to_numpy())
        g = f.create_group("inputs")
        h5io.write_table(g, "customers", customers)
        for name in ("demand_kw", "pv_kw"):
            schema.INPUTS.write_var(g, name, series[name])
    logger.info("inputs written: %s", path)
    return path


def check_profiles(cfg: Config) -> None:
    """Read every configured profile file in full, before any inputs file is written.

    A bad value anywhere raises :class:`InputDataError` naming the file, the column and the row,
    so that no inputs file of the run is written from a file that would fail later.
    """
    from agileflex_hpc.inputs.assignment import build_profiles

    pc = cfg.profiles
    if pc.source == "synthetic" and pc.hp_path is None and pc.pv_path is None:
        return
    probe = pd.DataFrame({"load": ["probe"], "group": ["Comfortable"], "profile_id": [0],
                          "has_hp": [True], "pv_kwp": [1.0]})
    build_profiles(probe, study_times(cfg), network="probe", seed=cfg.run.seed,
                   source=pc.source, path=pc.path, hp_path=pc.hp_path, pv_path=pc.pv_path)


def _check_series(series: dict[str, np.ndarray], network: str, case: str) -> None:
    for name in ("demand_kw", "pv_kw"):
        arr = series[name]
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            t, c = np.argwhere(bad)[0]
            raise InputDataError(f"{network}/{case}: {name} has {int(bad.sum())} NaN or "
                                 f"negative values, first at step {t}, customer {c}")


def read_inputs(path: Path, start: int, stop: int) -> dict[str, np.ndarray]:
    """demand_kw and pv_kw (and ev_kw where present) for steps ``start:stop``."""
    with h5py.File(path, "r") as f:
        g = f["inputs"]
        return {k: g[k][start:stop].astype(np.float64) for k in ("demand_kw", "pv_kw", "ev_kw")
                if k in g}


def read_customers(path: Path) -> pd.DataFrame:
    with h5py.File(path, "r") as f:
        return h5io.read_table(f["inputs"], "customers")
