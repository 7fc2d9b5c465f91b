"""The background writer of block files: writes land atomically, errors surface, pending
writes are not lost when the caller fails."""

from __future__ import annotations

import pytest

from agileflex_hpc import h5io
from agileflex_hpc.errors import ResultsError


def test_writes_land_in_order_with_their_bytes(tmp_path):
    data = {tmp_path / f"b{k}.bin": bytes([k]) * (100_000 + k) for k in range(5)}
    with h5io.BackgroundWriter() as writer:
        for path, blob in data.items():
            writer.submit(path, blob)
    assert {p: p.read_bytes() for p in data} == data
    assert not list(tmp_path.glob("*.tmp"))  # no temporary left behind


def test_a_failed_write_is_raised_and_later_images_are_dropped(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    writer = h5io.BackgroundWriter()
    writer.submit(blocker / "a.bin", b"a")  # its folder is a file: the write fails
    with pytest.raises(ResultsError, match="not-a-folder"):
        for k in range(50):  # the error surfaces at a later submit at the latest at close
            writer.submit(tmp_path / f"later{k}.bin", b"b")
        writer.close()
    writer.close()  # raised once; closing again is quiet


def test_pending_writes_finish_when_the_caller_fails(tmp_path):
    path = tmp_path / "done.bin"
    with pytest.raises(RuntimeError, match="solver"):
        with h5io.BackgroundWriter() as writer:
            writer.submit(path, b"complete block")
            raise RuntimeError("solver failed on the next block")
    assert path.read_bytes() == b"complete block"
