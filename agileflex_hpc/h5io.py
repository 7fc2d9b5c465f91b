"""HDF5 conventions shared by every stage.

* Coordinates live at the file root as dimension scales (``/time``, ``/bus``, ``/line``,
  ``/phase``, ...), so ``xarray.open_dataset(path, engine="h5netcdf", group=...)`` sees named
  dimensions. Time is int64 seconds since 1970-01-01 (``schema.TIME_UNITS``, study-local
  clock).
* Every dataset has the attributes ``units``, ``dims`` (JSON list) and ``description``, taken
  from the registry of :mod:`agileflex_hpc.schema`.
* Every file has provenance attributes and ``complete = 1``, written last.
* Files are written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import io
import json
import logging
import mmap
import os
import platform
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from agileflex_hpc import __version__
from agileflex_hpc.errors import ResultsError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd
    import xarray as xr

    from agileflex_hpc.config import Config

__all__ = [
    "SCHEMA_VERSION",
    "atomic_h5",
    "write_coord",
    "write_var",
    "write_table",
    "read_table",
    "is_complete",
    "provenance",
    "time_to_epoch",
    "time_slices",
    "open_dataset",
    "write_csv_atomic",
    "attr_text",
    "decode_strings",
    "atomic_path",
    "write_text_atomic",
    "remove_stale_temp_files",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
_TARGET_CHUNK_BYTES = 2 * 1024 * 1024


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` to write; renamed onto ``path`` on success.

    The temporary name is ``<name>.<host>.<pid>.<random>.tmp``, created exclusively
    (``O_EXCL``: an existing file or planted link there is never followed or overwritten).
    Before the rename the temporary must still be a regular file (not a link) and is synced to
    disk. On any error it is removed and ``path`` is left as it was; a full disk or another
    write error becomes one :class:`~agileflex_hpc.errors.ResultsError` naming the file and
    the free space.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path.parent, prefix=path.name)
        fd, name = tempfile.mkstemp(dir=path.parent,
                                    prefix=f"{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        raise ResultsError(f"cannot write {path}: {exc.strerror or exc} (is the output root "
                           "(run.root) a writable folder?)") from None
    try:  # mkstemp makes it private (0600): give it the mode open() would
        os.fchmod(fd, _new_file_mode())
    finally:
        os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.is_symlink() or not tmp.is_file():
            raise ResultsError(f"{tmp} was replaced by something that is not a plain file "
                               f"while {path} was written; nothing was installed")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ResultsError(_write_error(path, exc)) from None
    finally:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0666 & ~umask``."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's file-creation mask, read without setting it (``os.umask`` sets it,
    which other threads creating files at that moment would see)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


def _read_umask_once() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _read_umask_once()  # where /proc is not there (set once, at import)


def _write_error(path: Path, exc: OSError) -> str:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = -1
    where = f"{free / 1e6:.1f} MB free on its disk" if free >= 0 else "free space unknown"
    return (f"cannot write {path}: {exc.strerror or exc} ({where}); nothing was installed and "
            "earlier results are untouched")


@contextlib.contextmanager
def atomic_h5(path: Path, *, attrs: dict[str, Any] | None = None,
              writer: BackgroundWriter | None = None) -> Iterator[h5py.File]:
    """Build an HDF5 file in memory, then write it through :func:`atomic_path`.

    The file gets ``attrs`` plus ``complete = 1`` as its last write. HDF5 never writes to the
    disk itself: it builds the file in a :class:`FileImage` (h5py's ``fileobj`` driver), and
    the finished image is written by Python in one piece, so a full disk or an I/O error is
    one clear :class:`ResultsError` (HDF5 failing to close a file on a full disk crashes the
    process). On an exception nothing is written and any existing ``path`` is left untouched.
    With ``writer`` the image is handed to that background writer (the write and its fsync
    overlap the caller's next computation).
    """
    with _building(attrs) as (f, image):
        yield f
    if writer is not None:
        writer.submit(Path(path), image)
        return
    try:
        write_bytes_atomic(image, Path(path))
    finally:
        image.release()


@contextlib.contextmanager
def _building(attrs: dict[str, Any] | None) -> Iterator[tuple[h5py.File, FileImage]]:
    """An HDF5 file open for writing in a :class:`FileImage`, with ``attrs``; on leaving,
    ``complete = 1`` is set and the file closed (the image is then the caller's to write and
    release), or, on an exception, the image is released."""
    image = FileImage.reuse()
    try:
        with h5py.File(image, "w", track_order=True) as f:
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
            yield f, image
            f.attrs["complete"] = 1
    except BaseException:
        image.release()
        raise


def build_image(attrs: dict[str, Any], fill: Callable[[h5py.File], None]) -> FileImage:
    """An HDF5 file image with ``attrs``, the content ``fill(f)`` writes, and ``complete``."""
    with _building(attrs) as (f, image):
        fill(f)
    return image


class FileImage(io.RawIOBase):
    """A file built in memory: a growable, page-aligned anonymous mapping behind the file
    interface h5py's ``fileobj`` driver calls (``seek``, ``write``, ``readinto``,
    ``truncate``).

    HDF5 writes each dataset straight into it (one copy); the aligned memory is then written
    to disk as it is (:func:`write_bytes_atomic`), and once released (:meth:`release`) it
    serves the next image (:meth:`reuse`). Against HDF5's core driver plus
    ``get_file_image`` this saves a copy of every image and the page faults of two fresh
    allocations: 47 -> 11 ms for a 36 MB block of the 7,023-bus feeder.
    """

    def __init__(self, capacity: int = 1 << 20) -> None:
        super().__init__()
        self._buf = mmap.mmap(-1, _round_up(max(capacity, 1)))
        self._pos = 0
        self.nbytes = 0  # the image's length [bytes]

    #: at most this many released images are kept for reuse, each at most this large [bytes]
    SPARE_COUNT, SPARE_MAX_BYTES = 3, 128 << 20
    _spare: list[FileImage] = []
    _spare_lock = threading.Lock()

    @classmethod
    def reuse(cls) -> FileImage:
        """An empty image: a released one's memory where one is spare, else a new one."""
        with cls._spare_lock:
            image = cls._spare.pop() if cls._spare else cls()
        image.reset()
        return image

    def release(self) -> None:
        """Done with the image: kept for :meth:`reuse` while few and small enough (its
        memory is already mapped and touched), else closed."""
        with self._spare_lock:
            if len(self._spare) < self.SPARE_COUNT and len(self._buf) <= self.SPARE_MAX_BYTES:
                self._spare.append(self)
                return
        self.close()

    def reset(self) -> None:
        """Empty the image; its memory is kept for the next."""
        self._pos = self.nbytes = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.nbytes}[whence]
        if base + offset < 0:
            raise ValueError(f"negative position {base + offset} in an in-memory HDF5 image")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _extend(self, end: int, *, zero_from: int | None = None) -> None:
        """Grow the image to ``end`` bytes; the new bytes before ``zero_from`` (default:
        all) are zeroed (reused memory holds an earlier image), the rest are the caller's."""
        if end > len(self._buf):
            bigger = mmap.mmap(-1, _round_up(max(end, 2 * len(self._buf))))
            bigger[:self.nbytes] = self._buf[:self.nbytes]
            self._buf.close()
            self._buf = bigger
        stop = end if zero_from is None else min(zero_from, end)
        if stop > self.nbytes:
            self._buf[self.nbytes:stop] = bytes(stop - self.nbytes)
        self.nbytes = max(self.nbytes, end)

    def write(self, data: Any) -> int:
        with memoryview(data) as view:
            n = view.nbytes
            start, end = self._pos, self._pos + n
            if end > self.nbytes:
                self._extend(end, zero_from=start)
            self._buf[start:end] = view.cast("B")
        self._pos = end
        return n

    def readinto(self, into: Any) -> int:
        with memoryview(into) as view:
            n = max(0, min(view.nbytes, self.nbytes - self._pos))
            view.cast("B")[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if size > self.nbytes:
            self._extend(size)
        self.nbytes = size
        return size

    def padded(self) -> memoryview:
        """The image zero-padded to whole :data:`_DIRECT_ALIGN` units (an aligned view)."""
        end = _round_up(self.nbytes)
        self._buf[self.nbytes:end] = bytes(end - self.nbytes)
        return memoryview(self._buf)[:end]

    def close(self) -> None:
        """Release the memory (the image must not be used afterwards)."""
        super().close()
        self._buf.close()


def _round_up(n: int) -> int:
    """``n`` rounded up to whole :data:`_DIRECT_ALIGN` units."""
    return -(-n // _DIRECT_ALIGN) * _DIRECT_ALIGN


def write_bytes_atomic(data: bytes | FileImage, path: Path) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path` (temporary, fsync, rename).

    Data of at least :data:`DIRECT_MIN_BYTES` goes past the page cache where the file system
    allows it (:func:`_write_direct`); otherwise, and for smaller data, a plain write.
    """
    size = data.nbytes if isinstance(data, FileImage) else len(data)
    with atomic_path(path) as tmp:
        if size >= DIRECT_MIN_BYTES and _write_direct(data, tmp):
            return
        with open(tmp, "wb") as out:
            if isinstance(data, FileImage):
                with data.padded() as view:
                    out.write(view[:size])
            else:
                out.write(data)


#: data at least this large is written with O_DIRECT where possible [bytes]
DIRECT_MIN_BYTES = 1 << 20
_DIRECT_ALIGN = 4096  # buffer, offset and length multiple (covers 512- and 4096-byte sectors)
_direct = threading.local()  # per writer thread: an aligned image to copy plain bytes into
_no_direct: set[int] = set()  # devices (st_dev) where O_DIRECT failed: plain writes there


def _write_direct(data: bytes | FileImage, tmp: Path) -> bool:
    """Write ``data`` into the empty file ``tmp`` with ``O_DIRECT``; False (``tmp`` left
    empty) where the platform or file system does not take it.

    A buffered write copies every byte into the page cache in the kernel: on the 2-core VM
    0.9-2.4 s of CPU per GB written to new files, against about 0.1 s with O_DIRECT (DMA from
    an aligned buffer), which is CPU a busy node's other ranks need (a 62-network load-flow
    run writes about 48 kB per step). A :class:`FileImage` is written from its own aligned
    memory; plain bytes are first copied into one. Whole 4096-byte units are written and the
    file is then truncated to its length.
    """
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        dev = os.stat(tmp.parent).st_dev
    except OSError:
        return False
    if dev in _no_direct:
        return False
    if not isinstance(data, FileImage):
        scratch = getattr(_direct, "image", None)
        if scratch is None:
            scratch = _direct.image = FileImage(len(data))
        scratch.reset()
        scratch.write(data)
        data = scratch
    size = data.nbytes
    try:
        fd = os.open(tmp, os.O_WRONLY | flag)
    except OSError:
        _no_direct.add(dev)
        return False
    done = 0
    try:
        with data.padded() as view:
            while done < len(view):
                done += os.write(fd, view[done:])
        os.ftruncate(fd, size)
    except OSError as exc:
        if done or exc.errno != errno.EINVAL:  # a real write error (full disk): report it
            raise
        _no_direct.add(dev)  # EINVAL on the first write: alignment or file system
        return False
    finally:
        os.close(fd)
    return True


#: a writer's job: (path, the bytes or image or how to build it, called once built)
_Job = tuple[Path, "bytes | FileImage | Callable[[], FileImage]", "Callable[[], None] | None"]


class BackgroundWriter:
    """Builds and writes files in one background thread while the caller goes on computing.

    Each ``submit(path, data)`` is written through :func:`write_bytes_atomic` (temporary file,
    fsync, rename); each ``submit_h5(path, attrs, fill)`` is first built in the thread
    (:func:`build_image`). HDF5 runs there beside the caller's own HDF5 reads (h5py serialises
    every HDF5 call behind one lock); nothing given to the thread may call the OpenDSS engine
    (it is driven from the main thread only). At most ``depth`` jobs wait (a bound on
    memory); a submit blocks beyond that. The first error is raised by the next submit or by
    ``close``; ``close`` (or leaving the ``with`` block) waits for every pending job, also
    when the block ends with an exception, so complete results are not lost. A killed
    process leaves at most its pending files unwritten (their temporary files are removed by
    the next run, which recomputes them).
    """

    def __init__(self, depth: int = 1) -> None:
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="agileflex-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            path, data, done = job
            try:
                if self._error is None:  # after an error, later jobs are dropped
                    if callable(data):
                        try:
                            data = data()
                        finally:  # the arrays the build read are free before the write
                            if done is not None:
                                done()
                            done = None
                    write_bytes_atomic(data, path)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                self._error = exc
            finally:
                if done is not None:
                    done()
                if isinstance(data, FileImage):
                    data.release()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, path: Path, data: bytes | FileImage) -> None:
        """Queue ``data`` to be written to ``path``; raises an earlier job's error. A
        :class:`FileImage` is released once written."""
        self._raise()
        self._queue.put((Path(path), data, None))

    def submit_h5(self, path: Path, attrs: dict[str, Any], fill: Callable[[h5py.File], None],
                  *, done: Callable[[], None] | None = None) -> None:
        """Queue an HDF5 file to be built (:func:`build_image` of ``attrs`` and ``fill``) and
        written to ``path``; ``done()`` is called once ``fill`` has run (the arrays it reads
        are free again), also when the build fails or is dropped after an earlier error."""
        self._raise()
        self._queue.put((Path(path), functools.partial(build_image, attrs, fill), done))

    def close(self) -> None:
        """Wait for every pending write; raise the first error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except BaseException:  # noqa: BLE001 - the exception that ended the block wins
            logger.exception("a background write failed while another error was raised")


_HOST = platform.node().split(".")[0].replace(".", "_") or "host"
HOST = _HOST  # the host part of temporary names
_TEMP = re.compile(r"\.(?P<host>[^.]+)\.(?P<pid>\d+)(\.[^.]+)?\.tmp$")


def remove_stale_temp_files(folder: Path, *, prefix: str = "", recursive: bool = False,
                            dry_run: bool = False) -> int:
    """Delete temporary files (and folders) of writers on this host that are no longer alive.

    Temporary names end in ``.<host>.<pid>[.<random>].tmp``; a zombie counts as dead; files of
    live processes and of other hosts are left alone. Returns how many were removed (with
    ``dry_run``: how many would be, each printed, none removed).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    found = folder.rglob(f"{prefix}*.tmp") if recursive else folder.glob(f"{prefix}*.tmp")
    removed = 0
    for tmp in list(found):
        m = _TEMP.search(tmp.name)
        if not m or m.group("host") != _HOST or _alive(int(m.group("pid"))):
            continue
        if dry_run:
            print(f"would remove {tmp}")
        elif tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    """A running (not zombie) process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def is_complete(path: Path, *, expect: dict[str, Any] | None = None) -> bool:
    """True if ``path`` is a readable HDF5 file marked complete whose attrs match ``expect``."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if int(f.attrs.get("complete", 0)) != 1:
                return False
            for key, value in (expect or {}).items():
                if attr_text(f.attrs.get(key)) != attr_text(value):
                    return False
    except (OSError, KeyError, ValueError):
        return False
    return True


def attr_text(value: Any) -> str:
    """An HDF5 attribute value as text (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def decode_strings(values: Iterable[object]) -> list[str]:
    """The elements of an HDF5 string array (or any sequence) as ``str``: bytes (fixed-length
    and h5py's variable-length strings) decoded as UTF-8, anything else through ``str``."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def write_coord(f: h5py.File, name: str, values: npt.ArrayLike, *, units: str = "",
                description: str = "", scale: bool = True) -> h5py.Dataset:
    """Write a 1-D coordinate at the root; make it a dimension scale named ``name`` unless
    ``scale`` is False (block files, whose variables attach no scales)."""
    values = np.asarray(values)
    if values.dtype.kind in "OU":
        values = values.astype(h5py.string_dtype())
    ds = f.create_dataset(name, data=values)
    if scale:
        ds.make_scale(name)
    _describe(ds, units, [name], description)
    return ds


def write_var(group: h5py.Group, name: str, data: npt.ArrayLike, *, dims: list[str], units: str,
              description: str, compress: bool | str = True,
              scales: bool = True) -> h5py.Dataset:
    """Write a data variable with attrs and chunks along time; attach the root scales.

    ``compress``: True or "gzip" (level 4, shuffle), "lzf" (fast), False or "none"
    (contiguous and uncompressed: the fastest write, for the load-flow hot path). ``scales``:
    attach the root dimension scales named by ``dims`` (so xarray names the axes).
    """
    data = np.asarray(data)
    if data.dtype.kind in "OU":
        data = data.astype(h5py.string_dtype())
        compress = False
    method = {True: "gzip", False: None, "none": None}.get(compress, compress)
    chunks = _chunks(data.shape, data.dtype.itemsize, dims) if method and data.size else None
    ds = group.create_dataset(
        name, data=data, chunks=chunks,
        compression=method if chunks else None,
        compression_opts=4 if chunks and method == "gzip" else None,
        shuffle=bool(chunks and method),
    )
    _describe(ds, units, dims, description)
    if scales:
        attach_scales(ds, dims)
    return ds


def attach_scales(ds: h5py.Dataset, dims: list[str]) -> None:
    """Attach the root dimension scales named ``dims`` to ``ds`` where they exist."""
    root = ds.file
    for axis, dim in enumerate(dims):
        if dim in root and root[dim].shape[0] == ds.shape[axis]:
            ds.dims[axis].attach_scale(root[dim])


def _describe(ds: h5py.Dataset, units: str, dims: list[str], description: str) -> None:
    ds.attrs["units"] = units
    ds.attrs["dims"] = json.dumps(dims)
    ds.attrs["description"] = description


def _chunks(shape: tuple[int, ...], itemsize: int, dims: list[str]) -> tuple[int, ...]:
    """About 2 MiB chunks, whole along every axis but time (axis 0 when dims[0] == 'time')."""
    if not shape or dims[0] != "time":
        return tuple(max(s, 1) for s in shape)
    row = int(np.prod(shape[1:], dtype=np.int64)) * itemsize or 1
    n_time = max(1, min(shape[0], _TARGET_CHUNK_BYTES // row))
    return (n_time, *[max(s, 1) for s in shape[1:]])


def open_dataset(path: Path, group: str) -> xr.Dataset:
    """Open ``group`` of an agileflex file as an ``xarray.Dataset`` with its coordinates.

    The data variables live in a group (``loadflow``, ``zones``, ...) and the coordinates at
    the root; plain ``xarray.open_dataset(path, engine="h5netcdf", group=...)`` gives the
    named dimensions, this also attaches the coordinate values (time decoded to datetimes).
    """
    import xarray as xr

    ds = xr.open_dataset(path, engine="h5netcdf", group=group)
    root = xr.open_dataset(path, engine="h5netcdf")
    coords = {name: root[name] for name in root.variables if name in ds.dims}
    return ds.assign_coords(coords)


def write_csv_atomic(df: pd.DataFrame, path: Path) -> bool:
    """Write a DataFrame as CSV through :func:`write_text_atomic` (left alone when its text
    is unchanged); returns whether it wrote."""
    return write_text_atomic(df.to_csv(index=False), path)


def write_text_atomic(text: str, path: Path) -> bool:
    """Write UTF-8 text through :func:`atomic_path`, unless ``path`` already holds exactly
    this text (a rerun that changes nothing leaves the file and its time alone). Returns
    whether it wrote."""
    path = Path(path)
    data = text.encode("utf-8")
    try:
        if path.is_file() and path.read_bytes() == data:
            _widen_private(path)
            return False
    except OSError:
        pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


def _widen_private(path: Path) -> None:
    """Give a file an earlier version left at mkstemp's 0600 the mode a new file gets
    (``0666 & ~umask``); any other mode (a user's choice) is kept."""
    mode = _new_file_mode()
    with contextlib.suppress(OSError):
        if (path.stat().st_mode & 0o777) == 0o600 != mode:
            os.chmod(path, mode)


def time_slices(n_time: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of at most ``chunk`` steps over a time axis of ``n_time`` steps."""
    for t0 in range(0, n_time, chunk):
        yield slice(t0, min(t0 + chunk, n_time))


def write_table(group: h5py.Group, name: str, df: pd.DataFrame) -> None:
    """Store a pandas DataFrame as one dataset per column under ``group/name``.

    The columns share one dimension, ``row``, a dimension scale of the table's group holding
    the row numbers, so that ``xarray`` opens the group as a dataset with named dims.
    """
    sub = group.create_group(name)
    sub.attrs["columns"] = json.dumps(list(df.columns))
    row = sub.create_dataset("row", data=np.arange(len(df), dtype=np.int64))
    row.make_scale("row")
    for col in df.columns:
        values = df[col].to_numpy()
        if values.dtype.kind in "OUS" or values.dtype == object:
            values = values.astype(str).astype(h5py.string_dtype())
        ds = sub.create_dataset(col, data=values)
        ds.dims[0].attach_scale(row)


def read_table(group: h5py.Group, name: str) -> pd.DataFrame:
    """Read a table written by :func:`write_table` back as a pandas DataFrame."""
    import pandas as pd

    sub = group[name]
    cols = json.loads(sub.attrs["columns"])
    data: dict[str, np.ndarray] = {}
    for col in cols:
        values = sub[col][()]
        if values.dtype.kind in "OS":
            values = np.array(decode_strings(values), dtype=object)
        data[col] = values
    return pd.DataFrame(data, columns=cols)


def time_to_epoch(times: pd.DatetimeIndex) -> np.ndarray:
    """pandas DatetimeIndex (naive, study clock) -> int64 seconds since 1970-01-01."""
    return (np.asarray(times, dtype="datetime64[s]").astype(np.int64))


def provenance(cfg: Config | None = None, **extra: Any) -> dict[str, Any]:
    """Root attributes: schema/package/engine versions, config, seed, MPI/SLURM context."""
    from agileflex_hpc.network.engine import engine_version

    attrs: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "version": __version__,
        "git_commit": git_commit(),
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "opendss_version": engine_version(),
        "versions": json.dumps(_versions()),
        "slurm_job_id": slurm_job_label(),
        "mpi_size": int(os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE")
                        or 1),
        "array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
        "host": platform.node(),
    }
    if cfg is not None:
        attrs.update(config_toml=cfg.toml_text, config_sha256=cfg.sha256, seed=cfg.run.seed)
    attrs.update(extra)
    return attrs


def slurm_job_label() -> str:
    """``<array job>_<task>`` in an array task, the job id in a single job, else ""."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID", "")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results (numpy, HiGHS, OpenDSS...)."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "h5py", "opendssdirect.py", "dss-python", "highspy", "mpi4py", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit (empty outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""
