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


@pytest.mark.parametrize("size", [h5io.DIRECT_MIN_BYTES, 3 * 4096 * 256 + 123, 5_000_001])
def test_large_images_bypass_the_page_cache_with_their_exact_bytes(tmp_path, size):
    """Past the page cache (O_DIRECT, padded to 4096-byte units, then truncated) where the
    file system takes it; the file holds exactly the data either way."""
    import os

    data = os.urandom(size)
    probe = tmp_path / "probe.bin"
    probe.touch()
    direct = h5io._write_direct(data, probe)
    if direct:
        assert probe.read_bytes() == data
    else:  # refused: the file is left empty and the device remembered
        assert probe.stat().st_size == 0
        assert os.stat(tmp_path).st_dev in h5io._no_direct or not hasattr(os, "O_DIRECT")
    with h5io.BackgroundWriter() as writer:
        writer.submit(tmp_path / "block.h5", data)
    assert (tmp_path / "block.h5").read_bytes() == data
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("refusal", ["open", "write"])
def test_a_file_system_refusing_o_direct_gets_plain_writes(tmp_path, monkeypatch, refusal):
    """Where opening with O_DIRECT, or the first direct write, fails with EINVAL (a file
    system without direct I/O, or stricter alignment), the image is written the plain way,
    byte for byte, and that device gets plain writes from then on."""
    import errno
    import os

    monkeypatch.setattr(h5io, "_no_direct", set())
    data = os.urandom(2 * h5io.DIRECT_MIN_BYTES + 7)
    if not hasattr(os, "O_DIRECT"):  # no direct I/O on this platform: plain writes only
        assert not h5io._write_direct(data, tmp_path / "probe.bin")
        h5io.write_bytes_atomic(data, tmp_path / "block.h5")
        assert (tmp_path / "block.h5").read_bytes() == data
        return
    real_open, real_write = os.open, os.write
    direct_fds: set[int] = set()

    def fake_open(path, flags, *args):
        if flags & os.O_DIRECT and refusal == "open":
            raise OSError(errno.EINVAL, "Invalid argument")
        fd = real_open(path, flags, *args)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    def fake_write(fd, data):
        if fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(h5io.os, "open", fake_open)
    monkeypatch.setattr(h5io.os, "write", fake_write)
    h5io.write_bytes_atomic(data, tmp_path / "block.h5")
    assert (tmp_path / "block.h5").read_bytes() == data
    assert h5io._no_direct == {os.stat(tmp_path).st_dev}
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("direct", [True, False])
def test_a_reused_image_holds_only_its_own_bytes(tmp_path, monkeypatch, direct):
    """An image built in released memory: the bytes HDF5 skips over (a gap written past the
    end, a truncate that extends) are zeros, never an earlier image's; reads see the writes;
    the file holds exactly the image, written from its memory with O_DIRECT or plainly."""
    import os

    if not direct:  # this device refuses O_DIRECT: the plain write of the image
        monkeypatch.setattr(h5io, "_no_direct", {os.stat(tmp_path).st_dev})
    first = h5io.FileImage.reuse()
    first.write(b"\xff" * 50_000)
    first.release()
    image = h5io.FileImage.reuse()  # the same memory, emptied
    assert image.nbytes == 0
    image.seek(10)
    image.write(b"abc")
    image.truncate(20)
    image.seek(5)
    back = bytearray(15)
    assert image.readinto(back) == 15
    assert bytes(back) == bytes(5) + b"abc" + bytes(7)
    image.seek(3_000_000)  # past the first capacity: the memory grows
    image.write(b"z")
    h5io.write_bytes_atomic(image, tmp_path / "image.bin")
    expected = bytes(10) + b"abc" + bytes(3_000_000 - 13) + b"z"
    assert (tmp_path / "image.bin").read_bytes() == expected
    image.release()


def test_files_built_in_reused_images_read_back_exactly(tmp_path):
    """Files of falling sizes built one after another (each in the previous one's memory)
    open in h5py with exactly their data and attributes."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(7)
    data = {n: rng.random((n, 3)).astype(np.float32) for n in (300_000, 1000, 40_000)}
    with h5io.BackgroundWriter() as writer:
        for n, values in data.items():
            with h5io.atomic_h5(tmp_path / f"f{n}.h5", attrs={"n": n}, writer=writer) as f:
                f.create_dataset("x", data=values, chunks=(min(n, 20_000), 3))
    for n, values in data.items():
        with h5py.File(tmp_path / f"f{n}.h5", "r") as f:
            assert f.attrs["n"] == n and f.attrs["complete"] == 1
            np.testing.assert_array_equal(f["x"][:], values)


def test_h5_files_are_built_in_the_writer_thread_and_report_when_their_arrays_are_free(
        tmp_path):
    """``submit_h5`` builds the file in the writer's thread (overlapping the caller), calls
    ``done`` once the arrays are read, and a failed build is raised by ``close`` with
    ``done`` still called and no file installed."""
    import threading

    import h5py

    threads, done = [], []

    def fill(f):
        threads.append(threading.get_ident())
        f.create_dataset("x", data=[1, 2, 3])

    def broken(f):
        raise ValueError("no such variable")

    writer = h5io.BackgroundWriter()
    writer.submit_h5(tmp_path / "a.h5", {"k": "v"}, fill, done=lambda: done.append("a"))
    writer.submit_h5(tmp_path / "b.h5", {}, broken, done=lambda: done.append("b"))
    with pytest.raises(ValueError, match="no such variable"):
        writer.close()
    assert threads and threading.get_ident() not in threads
    assert done == ["a", "b"]
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert list(f["x"][:]) == [1, 2, 3] and f.attrs["k"] == "v" and f.attrs["complete"] == 1
    assert not (tmp_path / "b.h5").exists()
    assert not list(tmp_path.glob("*.tmp"))
