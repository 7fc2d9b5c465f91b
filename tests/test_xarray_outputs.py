"""Every result file of a demo run opens with xarray, block files included: the whole file as
a DataTree, and every group as a Dataset with named dimensions (no ``phony_dim``), times
decoded."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from agileflex_hpc.config import load_config
from tests.conftest import SHORT_DEMO, require_module, write_job

pytestmark = [pytest.mark.requires_opendss, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    from agileflex_hpc.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("xr")
    cfg = load_config(write_job(tmp, SHORT_DEMO))
    run_pipeline(cfg)
    return sorted(cfg.out_dir.rglob("*.h5"))


def test_every_file_and_group_opens_with_named_dims(demo_files):
    xr = require_module("xarray")
    kinds = {p.relative_to(p.parents[2]).parts[0] if len(p.parts) > 3 else p.name
             for p in demo_files}
    assert len(demo_files) > 50 and len(kinds) > 5
    for path in demo_files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # h5netcdf notes on attribute types
            tree = xr.open_datatree(path, engine="h5netcdf")
        for node in tree.subtree:
            ds = node.to_dataset()
            phony = [d for d in ds.dims if str(d).startswith("phony_dim")]
            assert not phony, (path, node.path, phony)
            ds.load()
        tree.close()


def test_times_decode_and_groups_carry_coordinates(demo_files):
    xr = require_module("xarray")
    from agileflex_hpc.h5io import open_dataset

    hosting = next(p for p in demo_files if p.parent.name == "hosting")
    tree = xr.open_datatree(hosting, engine="h5netcdf")
    assert tree["step"].values[:2].tolist() == [0, 30]  # minutes of the day, not decoded
    tree.close()
    zones = next(p for p in demo_files if p.parent.parent.name == "zones")
    ds = open_dataset(zones, "zones")
    assert np.issubdtype(ds["time"].dtype, np.datetime64)
    assert ds["vmin_pu"].dims == ("time", "zone") and ds["zone"].values[0] == "F1P1"
