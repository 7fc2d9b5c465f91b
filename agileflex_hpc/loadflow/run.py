"""Stage 2 runner: solve every work item of one worker and write its block files.

``run(cfg, worker=i, n_workers=n)`` is the whole stage for one MPI rank, SLURM array task or
single process. Each block starts from the same solver state (the zero-load snapshot), so a
block's bytes do not depend on which worker ran it or what it ran before.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import h5py
import numpy as np
import pandas as pd

from agileflex_hpc import fingerprint, h5io, schema
from agileflex_hpc.errors import AgileflexError, StaleError
from agileflex_hpc.fingerprint import Fingerprints, Key, freshness
from agileflex_hpc.inputs.stage import (
    check_profiles,
    ensure_inputs,
    inputs_path,
    read_inputs,
    study_times,
)
from agileflex_hpc.layout import RunLayout, layout
from agileflex_hpc.network.engine import DssNetwork, StepResult, pf_to_kvar_ratio
from agileflex_hpc.network.manifest import (
    NetworkManifest,
    build_manifest,
    manifest_bus_count,
    manifest_path,
    network_master,
    read_manifest,
    write_manifest,
)
from agileflex_hpc.partition import COMPILE_STEPS, WorkItem, items_for, list_items, shares
from agileflex_hpc.stealing import StealingQueue

if TYPE_CHECKING:
    from mpi4py import MPI

    from agileflex_hpc.cli import Workers
    from agileflex_hpc.config import Config, LoadflowConfig

__all__ = ["run", "plan", "study_items", "block_path", "block_checksum", "verify_blocks",
           "WorkerSummary", "LoadflowInputs", "loadflow_target"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: the ``/loadflow`` arrays of a block, by name, in the registry's order (the order of
#: :func:`block_checksum`, stored in every block file)
VARIABLES: dict[str, schema.Variable] = {v.name.rpartition("/")[2]: v
                                         for v in schema.BLOCK.group("loadflow")}


@dataclass(frozen=True)
class LoadflowInputs:
    """Where a load-flow run reads its injections and writes its blocks (stage 2 or 8), and
    the fingerprint keys of its blocks and stitched files."""

    raw_dir: Path  # blocks in <raw_dir>/<network>/<case>/block_NNNNN.h5
    inputs_for: Callable[[Config, NetworkManifest, str, Fingerprints], Path]  # -> inputs file
    block_key: Callable[[Fingerprints, str, str, int, int], Key]  # fps, net, case, start, stop
    stitched_key: Callable[[Fingerprints, str, str], Key]  # (fps, network, case)
    label: str = "loadflow"
    cases: tuple[str, ...] | None = None  # None: the job's cases
    tolerance: float | None = None  # OpenDSS convergence tolerance [p.u.]; None: loadflow's

    def block_current(self, fps: Fingerprints, item: WorkItem) -> bool:
        """Whether ``item``'s block file is complete and carries the current fingerprint
        (what a run skips, its data checksum aside); False where the key cannot be built yet
        (an upstream result is missing or stale)."""
        try:
            key = self.block_key(fps, item.network, item.case, item.start, item.stop)
        except AgileflexError:
            return False
        return freshness(block_path(self.raw_dir, item), key) == "ok"


def loadflow_target(cfg: Config) -> LoadflowInputs:
    """Stage 2's target: ``<out>/raw``, stage-1 inputs, the job's cases."""
    return LoadflowInputs(layout(cfg).raw_dir, ensure_inputs, Fingerprints.block,
                          Fingerprints.stitched)


@dataclass
class WorkerSummary:
    """What one worker did: items, steps, non-converged steps, time."""

    worker: int
    items: int = 0
    skipped: int = 0
    steps: int = 0  # steps solved in this run
    nonconverged: int = 0  # non-converged steps of all items, skipped (complete) ones included
    checked_steps: int = 0  # steps of all items, solved or skipped
    wall_s: float = 0.0  # until this worker ran out of work [s]
    taken: int = 0  # items taken from other MPI ranks' shares
    given: int = 0  # items of this worker's share given to other ranks
    failed_items: list[str] = field(default_factory=list)
    collapse: dict[str, int] = field(default_factory=dict)  # "network/case": steps not converged

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else 0.0


def block_path(raw_dir: Path, item: WorkItem) -> Path:
    return RunLayout.block(raw_dir, item.network, item.case, item.block)


def block_checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a block's data: every variable of :data:`VARIABLES`, in order, as stored."""
    h = hashlib.sha256()
    for name in VARIABLES:
        data = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{data.dtype.str}:{data.shape}".encode())
        h.update(data.reshape(-1).view(np.uint8).data)  # the buffer itself, not a copy
    return h.hexdigest()


def verify_blocks(raw_dir: Path, items: list[WorkItem], key_of: Callable[[WorkItem], Key], *,
                  label: str = "loadflow") -> None:
    """Check that every block of ``items`` exists, is complete, was computed from the current
    inputs (fingerprint) and holds the data it was written with (checksum).

    Raises
    ------
    StaleError
        Naming the first bad blocks and why; nothing is written.
    """
    bad = []
    for it in items:
        path = block_path(raw_dir, it)
        key = key_of(it)
        state = freshness(path, key)
        if state == "stale":
            bad.append(f"{path} (stale: {fingerprint.explain(path, key)})")
        elif state != "ok":
            bad.append(f"{path} ({state})")
        elif not _checksum_ok(path):
            bad.append(f"{path} (its data does not match its checksum: overwritten or corrupt)")
        if len(bad) >= 5:
            break
    if bad:
        raise StaleError(f"{label} blocks not usable: {'; '.join(bad)}; rerun the {label} stage "
                         "(it recomputes exactly these blocks)")


def _checksum_ok(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("data_sha256")
            arrays = {name: f["loadflow"][name][()] for name in VARIABLES}
    except (OSError, KeyError):
        return False
    return stored is not None and h5io.attr_text(stored) == block_checksum(arrays)


def ensure_manifests(cfg: Config, fps: Fingerprints | None = None) -> dict[str, Path]:
    """Write each network's manifest unless one of the same network files exists (compiling
    it once); return their paths."""
    fps = fps or Fingerprints(cfg)
    paths = {}
    for net_cfg in cfg.networks:
        path = manifest_path(cfg.out_dir, net_cfg.name)
        master = network_master(cfg, net_cfg)  # (re)writes the embedded network if needed
        key = fps.network(net_cfg.name)
        if freshness(path, key) != "ok":
            net = DssNetwork(master, tolerance=cfg.loadflow.tolerance,
                             max_iterations=cfg.loadflow.max_iterations)
            manifest = build_manifest(net_cfg.name, net, net_cfg.unrated_rating_a)
            write_manifest(path, manifest, cfg, attrs=fingerprint.attrs(key))
        paths[net_cfg.name] = path
    return paths


def plan(cfg: Config, cases: tuple[str, ...] | None = None, fps: Fingerprints | None = None, *,
         build: bool = True) -> list[WorkItem]:
    """Every work item of the study in the fixed order, costed by buses x steps.

    ``build``: (re)write missing or stale network manifests (stage 2); without it (stage 8,
    which reads stage 2's) a stale or missing manifest is a StaleError.
    """
    fps = fps or Fingerprints(cfg)
    if build:
        paths = ensure_manifests(cfg, fps)
    else:
        paths = {n.name: manifest_path(cfg.out_dir, n.name) for n in cfg.networks}
        for n in cfg.networks:
            fingerprint.require_fresh(paths[n.name], fps.network(n.name), producer="loadflow")
    nets = [(n.name, manifest_bus_count(paths[n.name])) for n in cfg.networks]
    return list_items(nets, list(cases or cfg.cases.keys), cfg.time.n_steps,
                      cfg.time.block_steps, network_block_steps=block_lengths(cfg))


def study_items(cfg: Config, cases: tuple[str, ...] | None = None) -> list[WorkItem]:
    """Every work item in the fixed order, without costs (for checking and stitching: reads
    and writes nothing, unlike :func:`plan`, which needs the compiled networks' sizes)."""
    return list_items([(n.name, 1) for n in cfg.networks], list(cases or cfg.cases.keys),
                      cfg.time.n_steps, cfg.time.block_steps,
                      network_block_steps=block_lengths(cfg))


def block_lengths(cfg: Config) -> dict[str, int]:
    """Steps per block of each network (its ``block_steps``, else ``[time]``'s)."""
    return {n.name: cfg.block_steps(n.name) for n in cfg.networks}


def run(cfg: Config, *, worker: int = 0, n_workers: int = 1, items: list[WorkItem] | None = None,
        target: LoadflowInputs | None = None,
        progress: Callable[[WorkItem, int], None] | None = None,
        comm: MPI.Intracomm | None = None,
        moved: Callable[[list[WorkItem], int], None] | None = None) -> WorkerSummary:
    """Solve this worker's items; skip blocks already complete; return a summary.

    With ``comm`` (the MPI world whose ranks are this worker and its neighbours), a rank that
    runs out takes the unstarted tail of a busy rank's items (:mod:`agileflex_hpc.stealing`);
    every rank of ``comm`` must call this. ``moved(items, sign)`` reports items taken (+1) or
    given away (-1). ``wall_s`` is the time until this rank ran out of work.
    """
    target = target or loadflow_target(cfg)
    items = plan(cfg, target.cases) if items is None else items
    queue = StealingQueue(items_for(worker, n_workers, items), comm,
                          overhead=compile_cost, moved=moved)
    summary = WorkerSummary(worker)
    t0 = time.perf_counter()
    with h5io.BackgroundWriter() as writer:  # block writes overlap the next block's solves
        solver = _Solver(cfg, writer, tolerance=target.tolerance)
        _solve_items(solver, queue, target, summary, progress, t0)
    summary.taken, summary.given = queue.taken, queue.given
    return summary


def compile_cost(items: Sequence[WorkItem]) -> float:
    """What a rank taking ``items`` pays first, in cost units (buses x steps): compiling each
    of their networks, about :data:`~agileflex_hpc.partition.COMPILE_STEPS` steps' worth."""
    buses = {it.network: it.cost / max(it.n_steps, 1) for it in items}
    return COMPILE_STEPS * sum(buses.values())


def _solve_items(solver: _Solver, mine: Iterable[WorkItem], target: LoadflowInputs,
                 summary: WorkerSummary,
                 progress: Callable[[WorkItem, int], None] | None, t0: float) -> None:
    """Solve ``mine`` in order; ``summary.wall_s`` is the time since ``t0`` [s, perf_counter]
    at the end of the last item (before this rank waits for the others)."""
    for item in mine:
        steps, bad = solver.solve_item(item, target)
        summary.items += 1
        summary.skipped += steps == 0
        summary.steps += steps
        summary.checked_steps += item.n_steps
        summary.nonconverged += bad
        key = f"{item.network}/{item.case}"
        summary.collapse[key] = summary.collapse.get(key, 0) + bad
        if bad:
            summary.failed_items.append(f"{item.network}/{item.case}/block_{item.block:05d} "
                                        f"({bad} of {item.n_steps} steps)")
        if progress is not None:
            progress(item, steps)
        summary.wall_s = time.perf_counter() - t0


class _Solver:
    """Holds one compiled network at a time (a worker's items come network by network).

    With a background ``writer``, this thread only solves and keeps each step's node
    voltages; the writer's thread fills the block's results from them (``DssNetwork.fill``),
    builds the file (HDF5 image and checksum) and writes it while the next block solves.
    Everything that asks the engine (the provenance attributes hold its version) is done here
    first, so the DSS C-API is only ever called from this thread (an earlier version built
    whole files, engine calls included, in a second thread, and crashed). A block's arrays
    and voltages go back to the spares once its file is built, for a later block of the same
    network to overwrite.
    """

    def __init__(self, cfg: Config, writer: h5io.BackgroundWriter | None = None, *,
                 tolerance: float | None = None) -> None:
        self.cfg = cfg
        self.writer = writer
        self.tolerance = cfg.loadflow.tolerance if tolerance is None else tolerance
        self.fps = Fingerprints(cfg)
        self.name: str | None = None
        self.net: DssNetwork | None = None
        self.manifest: NetworkManifest | None = None
        # each (target, network, case)'s inputs file, checked current once per run
        self._inputs: dict[tuple[Path, str, str], Path] = {}
        # built blocks' arrays and node voltages, to reuse
        self._spare: list[tuple[str, StepResult, np.ndarray | None]] = []
        self._lock = threading.Lock()

    def _manifest(self, name: str) -> NetworkManifest:
        # the manifest is None only before the first network, when name != self.name (None)
        if name != self.name or self.manifest is None:
            self.manifest = read_manifest(manifest_path(self.cfg.out_dir, name))
            self.name, self.net = name, None
            with self._lock:
                self._spare.clear()
        return self.manifest

    def _take_arrays(self) -> tuple[StepResult | None, np.ndarray | None]:
        """A spare block's arrays and node voltages of the current network, if any."""
        with self._lock:
            while self._spare:
                name, out, voltages = self._spare.pop()
                if name == self.name:
                    return out, voltages
        return None, None

    def _give_back(self, name: str, out: StepResult, voltages: np.ndarray | None) -> None:
        with self._lock:
            self._spare.append((name, out, voltages))

    def _network(self) -> DssNetwork:
        """The compiled engine of the current network (compiled on first use)."""
        if self.net is None:
            cfg = self.cfg
            if self.name is None:
                raise KeyError(None)  # unreachable (_manifest sets it); cfg.network(None) did
            self.net = DssNetwork(network_master(cfg, cfg.network(self.name)),
                                  tolerance=self.tolerance,
                                  max_iterations=cfg.loadflow.max_iterations)
        return self.net

    def solve_item(self, item: WorkItem, target: LoadflowInputs) -> tuple[int, int]:
        """Solve one block unless complete; returns (steps solved, non-converged steps)."""
        cfg = self.cfg
        path = block_path(target.raw_dir, item)
        manifest = self._manifest(item.network)
        key = target.block_key(self.fps, item.network, item.case, item.start, item.stop)
        if freshness(path, key) == "ok" and _checksum_ok(path):
            logger.debug("complete, skipped: %s", path)
            return 0, int(_file_attr(path, "nonconverged"))
        inputs = self._inputs.get((target.raw_dir, item.network, item.case))
        if inputs is None:
            inputs = target.inputs_for(cfg, manifest, item.case, self.fps)
            self._inputs[target.raw_dir, item.network, item.case] = inputs
        compiled, t0 = self.net is None, time.perf_counter()
        net = self._network()
        t1 = time.perf_counter()
        data = read_inputs(inputs, item.start, item.stop)
        p, q, pv = _injections(data, cfg.loadflow)
        # a spare block's arrays are overwritten; this block's stay with the writer until
        # its file is built (``done``). With a writer, only the node voltages are kept here
        # and the writer's thread turns them into results (``net.fill``)
        arrays, voltages = self._take_arrays()
        if self.writer is None:
            voltages = None
        elif voltages is None or len(voltages) != item.n_steps:
            voltages = net.allocate_voltages(item.n_steps)
        out = net.run(p, q, pv, load_pf=cfg.loadflow.load_pf, into=arrays, voltages=voltages)
        bad = int((~out.converged).sum())
        if bad:
            logger.warning("%s/%s block %d: %d of %d steps did not converge", item.network,
                           item.case, item.block, bad, item.n_steps)
        timing = {"solve_s": time.perf_counter() - t1, "compile_s": t1 - t0 if compiled else 0.0}
        name = item.network
        _write_block(path, cfg, item, net, out, key, target.label, writer=self.writer,
                     timing=timing, voltages=voltages,
                     done=lambda: self._give_back(name, out, voltages))
        return item.n_steps, bad


def _injections(data: dict[str, np.ndarray], lf: LoadflowConfig
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Load kW, kvar (None: all at load_pf) and PV kW, each (time, customer).

    With EV demand the load's kvar is demand at ``load_pf`` plus EV at ``ev_pf``.
    """
    p = data["demand_kw"]
    if "ev_kw" not in data:
        return p, None, data["pv_kw"]
    q = p * pf_to_kvar_ratio(lf.load_pf) + data["ev_kw"] * pf_to_kvar_ratio(lf.ev_pf)
    return p + data["ev_kw"], q, data["pv_kw"]


def _file_attr(path: Path, key: str) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        return str(f.attrs[key])


def _write_block(path: Path, cfg: Config, item: WorkItem, net: DssNetwork, out: StepResult,
                 key: Key, label: str, *, writer: h5io.BackgroundWriter | None = None,
                 timing: dict[str, float] | None = None, voltages: np.ndarray | None = None,
                 done: Callable[[], None] | None = None) -> None:
    """Write one block (``timing``: its measured ``solve_s`` and ``compile_s`` [s]).

    With ``voltages`` (the block's solved node voltages) ``out`` is first filled from them
    (:meth:`DssNetwork.fill`). With ``writer`` that, the file's build and its write run in
    the writer's thread, and ``done()`` is called there once ``out`` and ``voltages`` have
    been read; without, all happen here.
    """
    attrs = h5io.provenance(cfg, network=item.network, case=item.case, block=item.block,
                            start=item.start, stop=item.stop, stage=label,
                            nonconverged=int((~out.converged).sum()), **(timing or {}),
                            **fingerprint.attrs(key))
    coords = _block_coords(study_times(cfg)[item.start:item.stop], net)
    arrays = {name: getattr(out, name) for name in VARIABLES}

    def fill(f: h5py.File) -> None:
        if voltages is not None:
            net.fill(out, voltages)
        _fill_block(f, coords, arrays, compress=cfg.loadflow.compression)

    if writer is not None:
        writer.submit_h5(path, attrs, fill, done=done)
        return
    try:
        with h5io.atomic_h5(path, attrs=attrs) as f:
            fill(f)
    finally:
        if done is not None:
            done()


def _fill_block(f: h5py.File, coords: dict[str, np.ndarray], arrays: dict[str, np.ndarray], *,
                compress: str) -> None:
    """A block file's coordinates, variables and ``data_sha256`` (no engine call: this may
    run in the background writer's thread)."""
    arrays = {k: v.astype(np.uint8) if v.dtype == bool else v for k, v in arrays.items()}
    # the checksum (hashlib releases the GIL on large buffers) runs while HDF5 copies the
    # same arrays into the file image; neither writes to them
    checksum: list[str] = []
    hasher = threading.Thread(target=lambda: checksum.append(block_checksum(arrays)))
    hasher.start()
    try:
        for name, values in coords.items():
            schema.BLOCK.write_coord(f, name, values)
        g = f.create_group("loadflow")
        for name in VARIABLES:
            schema.BLOCK.write_var(g, name, arrays[name], compress=compress)
        hasher.join()
        f.attrs["data_sha256"] = checksum[0]
    finally:
        hasher.join()


def _block_coords(times: pd.DatetimeIndex, net: DssNetwork) -> dict[str, np.ndarray]:
    """A block's coordinates, in file order; names as fixed-length ASCII (faster to write
    than vlen)."""
    coords = {"time": h5io.time_to_epoch(times)}
    coords.update(net.name_coords())
    coords["phase"] = np.array([1, 2, 3], dtype=np.int8)
    return coords


def prepare_inputs(cfg: Config, items: list[WorkItem], workers: Workers,
                   target: LoadflowInputs | None) -> None:
    """Build every (network, case) inputs file this run needs, split over the workers.

    The pairs the process group's items need (one process, an MPI world, or the ranks of one
    array task) are dealt round-robin over its ranks, which then wait for each other.
    Array tasks share no memory, and neighbouring tasks need mostly the same pairs (every
    share holds each of its networks' cases): each task builds its own part of the list first
    (:func:`rotated`), and a pair another task has written meanwhile is found current and
    skipped, so a pair is built about once, not once per task.
    """
    target = target or loadflow_target(cfg)
    fps = Fingerprints(cfg)
    comm = workers.comm
    size, rank = (1, 0) if comm is None else (comm.Get_size(), comm.Get_rank())
    first = workers.index - rank  # the process group's first worker
    parts = shares(items, workers.count)  # once: an MPI world holds up to every share
    group = [items[k] for w in range(first, first + size) for k in parts[w]]
    needed = {(it.network, it.case) for it in group}
    pairs = [p for p in dict.fromkeys((it.network, it.case) for it in items) if p in needed]
    share = rotated(pairs, first, workers.count)[rank::size]
    stale = [(n, c) for n, c in share
             if freshness(inputs_path(cfg.out_dir, n, c), fps.inputs(n, c)) != "ok"]
    if target.inputs_for is ensure_inputs and stale:
        check_profiles(cfg)  # every profile file in full before the first inputs file
    manifests: dict[str, NetworkManifest] = {}
    for network, case in share:
        if network not in manifests:
            manifests[network] = read_manifest(manifest_path(cfg.out_dir, network))
        target.inputs_for(cfg, manifests[network], case, fps)
    if workers.comm is not None:
        workers.comm.Barrier()


def rotated(pairs: list[T], worker: int, n_workers: int) -> list[T]:
    """The order in which worker ``worker`` of ``n_workers`` builds ``pairs`` that every worker
    may need: first its own ``1 / n_workers`` of the list, then the others' in reverse (the
    pairs their owners reach last first), so that helpers and owners meet in the middle."""
    n = max(n_workers, 1)
    lo, hi = worker * len(pairs) // n, (worker + 1) * len(pairs) // n
    return pairs[lo:hi] + (pairs[hi:] + pairs[:lo])[::-1]


def collapse_counts(summaries: list[WorkerSummary]) -> dict[str, int]:
    """Non-converged (collapsed) steps per ``"network/case"`` over every worker's items."""
    out: dict[str, int] = {}
    for s in summaries:
        for key, n in s.collapse.items():
            out[key] = out.get(key, 0) + n
    return out


def check_failures(cfg: Config, summaries: list[WorkerSummary]) -> None:
    """Raise :class:`ConvergenceError` if non-converged steps exceed ``run.max_failure_fraction``
    (only where the user set it: by default collapse is counted, never fatal)."""
    from agileflex_hpc.errors import ConvergenceError

    limit = cfg.run.max_failure_fraction
    steps = sum(s.checked_steps for s in summaries)
    bad = sum(s.nonconverged for s in summaries)
    if limit is not None and steps and bad / steps > limit:
        where = [f for s in summaries for f in s.failed_items]
        raise ConvergenceError(
            f"{bad} of {steps} power flows did not converge ({100 * bad / steps:.2f} %, limit "
            f"run.max_failure_fraction = {100 * limit:.2f} %) in "
            f"{', '.join(where[:5])}{' ...' if len(where) > 5 else ''}; results are written "
            "with converged = 0 at those steps (see loadflow.tolerance, max_iterations)")
