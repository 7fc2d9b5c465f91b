"""The HDF5 schema has one owner, ``agileflex_hpc/schema.py``: ``docs/schema.md`` is its
generated text, the load-flow checksum keeps its order, and every HDF5 file of a short demo
run holds exactly what the registry lists (every dataset and coordinate written is in it, with
its dims, units, description and dtype; every one in it is written)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from agileflex_hpc import h5io, schema
from agileflex_hpc.config import Config, case_key, load_config
from tests.conftest import REPO, SHORT_DEMO, write_job

REGENERATE = "python -m agileflex_hpc.schema > docs/schema.md"


def test_docs_schema_md_is_the_generated_page():
    text = (REPO / "docs" / "schema.md").read_text()
    assert text == schema.markdown(), (
        f"docs/schema.md differs from the registry in agileflex_hpc/schema.py: regenerate it "
        f"with `{REGENERATE}` (edit schema.py, not the page)")


def test_every_file_kind_is_consistent():
    assert len(schema.FILES) == 13
    for fs in schema.FILES.values():
        names = [e.name for e in fs.entries]
        assert len(names) == len(set(names)), fs.key
        coords = {v.name for v in fs.variables if v.is_coord}
        for v in fs.variables:
            if v.is_coord:
                assert v.dims == (v.name,), (fs.key, v.name)
            assert set(v.dims) <= coords, (fs.key, v.name, v.dims)  # every axis has a coord
            if not v.dtype.startswith("S") and v.dtype != "str":
                np.dtype(v.dtype)  # a numpy name
        assert fs.title in schema.markdown()


def test_the_block_checksum_keeps_its_definition():
    """``block_checksum`` hashes the load-flow arrays in the registry's order; the checksum is
    stored in every block file, so the order (and this digest) must not change."""
    from agileflex_hpc.loadflow.run import VARIABLES, block_checksum

    assert list(VARIABLES) == ["v_pu", "i_a", "s_kva", "s_tx_kva", "converged", "iterations"]
    arrays = {"v_pu": np.arange(6, dtype=np.float32).reshape(1, 2, 3),
              "i_a": np.ones((1, 1, 3), np.float32), "s_kva": np.zeros((1, 1, 3), np.float32),
              "s_tx_kva": np.full((1, 1), 2.5, np.float32), "converged": np.ones(1, np.uint8),
              "iterations": np.full(1, 7, np.int16)}
    assert block_checksum(arrays) == (
        "b15096f2eb16ecc45063ffb365c5780bceca585217ba6f6b830afe6ec3236929")


def test_descriptions_fill_their_fields():
    ev_kw = schema.VALIDATION_INPUTS.variable("inputs/ev_kw")
    assert ev_kw.fields == ("kind",)
    assert ev_kw.text(kind="smart").startswith("smart EV demand")
    assert ev_kw.doc().startswith("`<kind>` EV demand")
    with pytest.raises(KeyError, match="not in the schema"):
        schema.HOSTING.variable("hosting/nothing")


# ---------------------------------------------------------------------------- a real run
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Config:
    from agileflex_hpc.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("schema")
    # two samples: the sample datasets of the hosting file and a fresh validation draw
    cfg = load_config(write_job(tmp, SHORT_DEMO.replace(
        'names = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP"]',
        'names = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP"]\nsamples = 2')))
    assert cfg.cases.samples == 2
    run_pipeline(cfg)
    return cfg


def _file_kinds(cfg: Config) -> dict[Path, schema.FileSchema]:
    """The schema of every HDF5 file a run writes, by path (paths from the layout)."""
    from agileflex_hpc.layout import RunLayout, layout
    from agileflex_hpc.loadflow.run import study_items
    from agileflex_hpc.network.manifest import read_manifest
    from agileflex_hpc.replan import rounds_done
    from agileflex_hpc.validate.inputs import KINDS

    run = layout(cfg)
    kinds: dict[Path, schema.FileSchema] = {}
    for net in [n.name for n in cfg.networks]:
        kinds[run.manifest(net)] = schema.MANIFEST
        with h5py.File(run.hosting(net), "r") as f:
            assigned = set(h5io.read_table(f["hosting"], "customers_final")["assigned_case"])
        for r in range(rounds_done(cfg, net)):  # a fresh validation draw per round
            for case in assigned:  # its inputs of the assigned cases
                kinds[run.inputs(net, case_key(case, cfg.validation_sample + r))] = \
                    schema.INPUTS
        for case in cfg.cases.keys:
            kinds[run.inputs(net, case)] = schema.INPUTS
            kinds[RunLayout.stitched(run.raw_dir, net, case)] = schema.STITCHED
            kinds[run.zones(net, case)] = schema.ZONES
            kinds[run.headroom(net, case)] = schema.HEADROOM
        kinds[run.limits(net)] = schema.LIMITS
        kinds[run.hosting(net)] = schema.HOSTING
        for zone in read_manifest(run.manifest(net)).zone_ids:
            kinds[run.ev_zone(net, zone)] = schema.EV_ZONE
        for kind in KINDS:
            kinds[run.validation_inputs(net, kind)] = schema.VALIDATION_INPUTS
            kinds[RunLayout.stitched(run.validation_raw_dir, net, kind)] = schema.STITCHED
            kinds[run.validation_kind(net, kind)] = schema.VALIDATION_KIND
        kinds[run.validation_report(net)] = schema.VALIDATION_REPORT
        kinds[run.caps(net)] = schema.REPLAN
    for raw, cases in ((run.raw_dir, None), (run.validation_raw_dir, KINDS)):
        for it in study_items(cfg, cases):
            kinds[RunLayout.block(raw, it.network, it.case, it.block)] = schema.BLOCK
    return kinds


def _check_file(f: h5py.File, fs: schema.FileSchema, seen: set[str]) -> list[str]:
    """What in ``f`` differs from ``fs``; adds the names found to ``seen``."""
    problems: list[str] = []
    where = Path(f.filename).name

    def visit(name: str, obj: h5py.HLObject) -> None:
        parent = name.rpartition("/")[0]
        if parent and "columns" in f[parent].attrs:
            return  # a column (or the row scale) of a table
        if isinstance(obj, h5py.Group):
            if "columns" in obj.attrs:
                seen.add(name)
                if name not in {t.name for t in fs.tables}:
                    problems.append(f"{where}: table /{name} is not in the registry")
            return
        try:
            v = fs.variable(name)
        except KeyError:
            problems.append(f"{where}: /{name} is not in the registry of {fs.path_pattern}")
            return
        seen.add(name)
        attrs = {k: h5io.attr_text(obj.attrs.get(k)) for k in ("dims", "units", "description")}
        fields = {k: h5io.attr_text(f.attrs[k]) for k in v.fields}
        if tuple(json.loads(attrs["dims"])) != v.dims or obj.ndim != len(v.dims):
            problems.append(f"{where}: /{name} dims {attrs['dims']} {obj.shape}, registry "
                            f"{v.dims}")
        if attrs["units"] != v.units:
            problems.append(f"{where}: /{name} units {attrs['units']!r}, registry {v.units!r}")
        if attrs["description"] != v.text(**fields):
            problems.append(f"{where}: /{name} description {attrs['description']!r}, "
                            f"registry {v.text(**fields)!r}")
        if not v.dtype_ok(obj.dtype):
            problems.append(f"{where}: /{name} dtype {obj.dtype}, registry {v.dtype}")
        if v.is_coord and h5py.h5ds.is_scale(obj.id) != fs.scales:
            problems.append(f"{where}: /{name} is{'' if fs.scales else ' not'} expected to be "
                            "a dimension scale")

    f.visititems(visit)
    return problems


@pytest.mark.slow
@pytest.mark.requires_opendss
def test_every_dataset_of_a_run_is_in_the_registry(demo_run: Config):
    kinds = _file_kinds(demo_run)
    files = sorted(demo_run.out_dir.rglob("*.h5"))
    assert [p for p in files if p not in kinds] == [], "HDF5 files of no known kind"
    assert [p for p in kinds if p not in files] == [], "files the run did not write"
    seen: dict[str, set[str]] = {key: set() for key in schema.FILES}
    problems: list[str] = []
    for path in files:
        with h5py.File(path, "r") as f:
            problems += _check_file(f, kinds[path], seen[kinds[path].key])
    assert problems == []
    never = [f"{key}: /{e.name}" for key, fs in schema.FILES.items() for e in fs.entries
             if e.name not in seen[key]]
    assert never == [], "registered but written in no file of the run"
