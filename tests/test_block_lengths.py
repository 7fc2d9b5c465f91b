"""A network's own block length (``[[network]] block_steps``): its blocks, its stitched flows."""

import h5py
import pytest

from agileflex_hpc.config import load_config
from agileflex_hpc.errors import ConfigError
from agileflex_hpc.fingerprint import Fingerprints
from agileflex_hpc.gather import require_stitched
from agileflex_hpc.loadflow.__main__ import main as loadflow_main
from agileflex_hpc.loadflow.run import block_path, study_items
from tests.conftest import write_job

pytestmark = pytest.mark.requires_opendss

JOB = """
[run]
name = "b"
root = "out"
[time]
start = "2014-01-06"
days = 1
step_minutes = 60
block_steps = {global_steps}
[[network]]
name = "day_blocks"
{own}
[[network]]
name = "time_blocks"
[cases]
names = ["25PV50HP"]
"""


def _flows(cfg, network: str) -> dict[str, bytes]:
    path = require_stitched(cfg, Fingerprints(cfg), network, "25PV50HP")
    with h5py.File(path, "r") as f:
        return {name: ds[()].tobytes() for name, ds in f["loadflow"].items()}


def test_a_network_with_its_own_block_length_solves_as_if_the_job_had_it(tmp_path):
    """Network ``day_blocks`` with ``block_steps = 24`` gets one block of 24 hourly steps
    while the other keeps ``[time]``'s 6; its stitched flows are, bit for bit, those of a
    job whose ``[time] block_steps`` is 24 (each block solves from the same cold start), and
    the other network's are those of a job with 6 for all."""
    for sub in ("own", "all24", "all6"):
        (tmp_path / sub).mkdir()
    own = write_job(tmp_path / "own", JOB.format(global_steps=6, own="block_steps = 24"))
    all24 = write_job(tmp_path / "all24", JOB.format(global_steps=24, own=""))
    all6 = write_job(tmp_path / "all6", JOB.format(global_steps=6, own=""))
    for job in (own, all24, all6):
        assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    cfg = load_config(own)
    lengths = {}
    for item in study_items(cfg):
        assert block_path(cfg.out_dir / "raw", item).is_file()
        lengths.setdefault(item.network, set()).add(item.n_steps)
    assert lengths == {"day_blocks": {24}, "time_blocks": {6}}
    assert _flows(cfg, "day_blocks") == _flows(load_config(all24), "day_blocks")
    assert _flows(cfg, "time_blocks") == _flows(load_config(all6), "time_blocks")
    # the warm starts inside a block do move the flows: blocks of 24 are not blocks of 6
    assert _flows(cfg, "day_blocks") != _flows(load_config(all6), "day_blocks")


def test_a_network_block_length_below_one_is_refused(tmp_path):
    job = write_job(tmp_path, JOB.format(global_steps=6, own="block_steps = 0"))
    with pytest.raises(ConfigError, match=r"network\[day_blocks\]\.block_steps: 0 must be >= 1"):
        load_config(job)


def test_a_block_length_is_in_the_flows_keys_not_in_the_network_or_inputs_keys(tmp_path):
    """A network's own block length changes the keys of its blocks' layout (the stitched
    file and what follows) but not its manifest's or inputs', so a new length recomputes its
    flows, never its manifest or inputs; a length equal to ``[time]``'s changes no key."""
    from agileflex_hpc.config import parse_config

    def fps(global_steps: int, own: str) -> Fingerprints:
        return Fingerprints(parse_config(JOB.format(global_steps=global_steps, own=own),
                                         base_dir=tmp_path))

    base, week, same = fps(6, ""), fps(6, "block_steps = 24"), fps(6, "block_steps = 6")
    other_global = fps(12, "")
    for f in (week, same, other_global):
        assert f.network("day_blocks") == base.network("day_blocks")
        assert f.inputs("day_blocks", "25PV50HP") == base.inputs("day_blocks", "25PV50HP")
        assert f.block("day_blocks", "25PV50HP", 0, 6) == base.block("day_blocks", "25PV50HP",
                                                                       0, 6)
    assert week.stitched("day_blocks", "25PV50HP") != base.stitched("day_blocks", "25PV50HP")
    assert week.headroom("day_blocks") != base.headroom("day_blocks")
    assert week.validation_stitched("day_blocks", "smart") != \
        base.validation_stitched("day_blocks", "smart")
    assert week.headroom("time_blocks") == base.headroom("time_blocks")
    assert same.headroom("day_blocks") == base.headroom("day_blocks")
    assert other_global.headroom("time_blocks") != base.headroom("time_blocks")


@pytest.mark.parametrize("compression", ["lzf", "gzip"])
def test_compressed_blocks_are_chunked_and_hold_the_uncompressed_values(tmp_path, compression):
    """``loadflow.compression`` = lzf or gzip: block datasets chunked along time and
    compressed; the values those of uncompressed (contiguous) blocks."""
    text = JOB.format(global_steps=6, own="") + f'[loadflow]\ncompression = "{compression}"\n'
    (tmp_path / "plain").mkdir()
    (tmp_path / "packed").mkdir()
    plain = write_job(tmp_path / "plain", JOB.format(global_steps=6, own=""))
    packed = write_job(tmp_path / "packed", text)
    for job in (plain, packed):
        assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    item = study_items(load_config(plain))[0]
    paths = [block_path(load_config(job).out_dir / "raw", item) for job in (plain, packed)]
    with h5py.File(paths[0], "r") as a, h5py.File(paths[1], "r") as b:
        for name, ds in a["loadflow"].items():
            assert ds.chunks is None and ds.compression is None, name
            assert b["loadflow"][name].compression == compression, name
            assert b["loadflow"][name].chunks is not None, name
            assert ds[()].tobytes() == b["loadflow"][name][()].tobytes(), name
