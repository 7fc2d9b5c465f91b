"""The OpenDSS engine: compile a network once, then set, solve and read it fast.

One :class:`DssNetwork` per process (each MPI rank or array task builds its own). It compiles
the master file with absolute paths and ``AllowChangeDir`` off, adds one single-phase PV
generator per customer (disabling generators the files define), and prepares index maps so
that each step is: batch-set loads and generators (DSS C-API ``Batch_Float64Array`` with the
*avoid full recalculation* flag), one snapshot solve, three bulk getters.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENDSSDIRECT_PY_USE_NUMPY", "1")

import numpy as np  # noqa: E402
import opendssdirect as dss  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from dss import DSSException  # noqa: E402
from dss_python_backend.enums import SetterFlags  # noqa: E402
from numpy.typing import ArrayLike, DTypeLike  # noqa: E402

from agileflex_hpc.errors import NetworkError  # noqa: E402
from agileflex_hpc.fingerprint import network_files  # noqa: E402
from agileflex_hpc.network.safety import check_network_files  # noqa: E402

__all__ = ["LOAD_VMAX_PU", "LOAD_VMIN_PU", "DssNetwork", "StepResult", "engine_version",
           "pf_to_kvar_ratio"]

logger = logging.getLogger(__name__)

_BATCH_SET = 0  # BatchOperation_Set
LOAD_VMIN_PU = 0.02  # loads and PV stay constant power down to this voltage [p.u.]
LOAD_VMAX_PU = 50.0  # ... and up to this one [p.u.]
_FLAGS = int(SetterFlags.AvoidFullRecalc)

# (pointer to a DSS class's object list, its length); the pointer is an untyped cffi object
_Batch = tuple[Any, int]


def engine_version() -> str:
    """The DSS C-API / OpenDSS version string (for provenance)."""
    return dss.Basic.Version().split(";")[0]


def pf_to_kvar_ratio(pf: float) -> float:
    """kvar per kW of a lagging load at power factor ``pf``."""
    return float(np.tan(np.arccos(pf)))


@dataclass
class StepResult:
    """Preallocated results of a run of steps (see :meth:`DssNetwork.allocate`)."""

    v_pu: np.ndarray  # (time, bus, phase) float32 [p.u.], NaN where the bus lacks the phase
    i_a: np.ndarray  # (time, line, phase) float32 [A] at the line's sending end
    s_kva: np.ndarray  # (time, line, phase) float32 [kVA], signed by active-power direction
    s_tx_kva: np.ndarray  # (time, transformer) float32 [kVA], + import at the HV terminal
    converged: np.ndarray  # (time,) bool
    iterations: np.ndarray  # (time,) int16


class DssNetwork:
    """A compiled OpenDSS circuit with fast per-step set/solve/get.

    Parameters
    ----------
    master : Path
        The network's master ``.dss`` file.
    tolerance : float
        Power-flow convergence tolerance. [p.u.]
    max_iterations : int
        Iteration limit of one snapshot solve.
    """

    def __init__(self, master: Path, *, tolerance: float = 1e-4, max_iterations: int = 100):
        self.master = Path(master).resolve()
        self._compile(tolerance, max_iterations)
        self._index_loads_and_pv()
        dss.Solution.Solve()  # builds the system Y, node order and YPrims
        self._index_buses()
        self._index_lines()
        self._index_transformers()
        self._pf_mode: float | None = None
        self._last_pv: np.ndarray | None = None

    # ----------------------------------------------------------------- compile
    def _compile(self, tolerance: float, max_iterations: int) -> None:
        if not self.master.is_file():
            raise NetworkError(f"network master file not found: {self.master}")
        check_network_files(network_files(self.master))
        _sandbox_engine()
        dss.Text.Command("Clear")
        dss.Text.Command("Set DefaultBaseFrequency=50")
        try:
            dss.Text.Command(f'Compile "{self.master}"')
        except DSSException as exc:
            raise NetworkError(f"OpenDSS could not compile {self.master}: {exc}") from None
        _sandbox_engine()
        if dss.Circuit.Name() == "":
            raise NetworkError(f"{self.master} defines no circuit (New Circuit.<name>)")
        if dss.Transformers.Count() == 0:
            raise NetworkError(f"{self.master}: the network has no transformer")
        kvs = sorted({kv for kv in self._transformer_kvs()}, reverse=True)
        dss.Text.Command("Set voltagebases=[" + " ".join(f"{kv:g}" for kv in kvs) + "]")
        dss.Text.Command("Calcvoltagebases")
        dss.Text.Command("Set Mode=Snap ControlMode=Off")
        dss.Solution.Convergence(tolerance)
        dss.Solution.MaxIterations(max_iterations)

    @staticmethod
    def _transformer_kvs() -> list[float]:
        kvs = []
        for _ in _iterate(dss.Transformers):
            for w in range(1, dss.Transformers.NumWindings() + 1):
                dss.Transformers.Wdg(w)
                kvs.append(dss.Transformers.kV())
        return kvs

    # ----------------------------------------------------------------- indexing
    def _index_buses(self) -> None:
        """Map the engine's node-voltage vector (YNodeOrder, 1-based) to (bus, phase)."""
        self.bus_names = np.array(dss.Circuit.AllBusNames(), dtype=object)
        bus_pos = {b: i for i, b in enumerate(self.bus_names)}
        info = np.array([_bus_info(b) for b in self.bus_names]).reshape(-1, 3)
        self.bus_kv_base = info[:, 0]
        self.bus_xy = info[:, 1:]
        take, flat = [], []
        for k, node in enumerate(dss.Circuit.YNodeOrder()):
            bus, _, ph = node.lower().rpartition(".")
            if ph in ("1", "2", "3"):
                take.append(k + 1)  # index 0 of the vector is the ground reference
                flat.append(bus_pos[bus] * 3 + int(ph) - 1)
        self.n_bus = len(self.bus_names)
        base_v = self.bus_kv_base[np.array(flat, dtype=np.intp) // 3] * 1e3
        self._v_scale = np.where(base_v > 0, 1.0 / np.where(base_v > 0, base_v, 1.0), np.nan)
        self._v_take = _index(take)
        self._v_flat = _index(flat)
        self._n_nodes = dss.Circuit.NumNodes()

    def _index_lines(self) -> None:
        """Branch matrices: terminal-1 currents of every line = Y_lines @ V (from YPrim).

        The engine is asked line by line; the matrix is then assembled in one vectorised
        pass (:func:`_branch_rows`).
        """
        names: list[str] = []
        bus1: list[str] = []
        bus2: list[str] = []
        rating: list[float] = []
        refs: list[np.ndarray] = []
        yprims: list[np.ndarray] = []
        orders: list[np.ndarray] = []
        tx_names: list[str] = []
        tx_buses: list[list[str]] = []
        tx_rows: list[tuple[np.ndarray, np.ndarray]] = []
        for _ in _iterate(dss.PDElements):
            el = dss.CktElement
            kind, _, name = el.Name().partition(".")
            if kind.lower() not in ("line", "transformer") or not el.Enabled():
                continue
            n_cond = el.NumConductors()
            ref = np.asarray(el.NodeRef(), dtype=np.intp)
            y = np.asarray(el.YPrim(), dtype=float)
            if kind.lower() == "transformer":
                yprim = (y[0::2] + 1j * y[1::2]).reshape(len(ref), len(ref))
                tx_names.append(name)
                tx_buses.append([_bus_of(b) for b in el.BusNames()])
                tx_rows.append((yprim[:n_cond], ref))
                continue
            names.append(name)
            buses = el.BusNames()
            bus1.append(_bus_of(buses[0]))
            bus2.append(_bus_of(buses[1]))
            rating.append(el.NormalAmps())
            refs.append(ref)
            yprims.append(y)
            orders.append(np.asarray(el.NodeOrder()[:n_cond], dtype=np.intp))
        rows, cols, vals, flat, row_node = _branch_rows(refs, yprims, orders)
        n_v = self._n_nodes + 1
        self._y_lines = _csr([rows], [cols], [vals], (len(flat), n_v))
        self._line_flat = _index(flat.tolist())
        self._line_node = row_node
        self.line_names = np.array(names, dtype=object)
        self.line_bus1 = np.array(bus1, dtype=object)
        self.line_bus2 = np.array(bus2, dtype=object)
        self.line_rating_a = np.array(rating, dtype=float)
        bad = ~(self.line_rating_a > 0)  # also NaN
        if bad.any():
            which = ", ".join(f"{n} ({r:g} A)" for n, r in
                              zip(np.array(names)[bad][:5], self.line_rating_a[bad][:5]))
            raise NetworkError(f"{self.master}: {int(bad.sum())} line(s) without a positive "
                               f"rating (NormAmps): {which}; the thermal limits need one")
        self.n_line = len(names)
        self.transformer_names = np.array(tx_names, dtype=object)
        self.transformer_buses = tx_buses
        self._tx = [(_csr([np.repeat(np.arange(len(y)), len(r))], [np.tile(r, len(y))],
                          [y.ravel()], (len(y), n_v)), r[:len(y)]) for y, r in tx_rows]

    def line_ratings_origin(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each line's rating (``NormAmps``) comes from, in engine line order: whether
        the network files give it (on the line or on its LineCode) rather than OpenDSS's
        default (400 A), and the line's LineCode name ("" without one).

        Asks the engine about the compiled circuit's set properties, so call it right after
        compiling. A line whose own rating equals its unrated LineCode's default counts as not
        given; lines built from a geometry or wire data count as given (their ratings come
        from the wires).
        """
        code_given: dict[str, tuple[bool, float]] = {}
        for _ in _iterate(dss.LineCodes):
            code_given[dss.LineCodes.Name().lower()] = ("NormAmps" in _set_properties(),
                                                        dss.LineCodes.NormAmps())
        given: dict[str, tuple[bool, str]] = {}
        for _ in _iterate(dss.Lines):
            name, code = dss.Lines.Name().lower(), dss.Lines.LineCode().lower()
            if dss.Lines.Geometry() or dss.Lines.Spacing():
                rated = True
            elif code in code_given:
                code_set, code_amps = code_given[code]
                rated = code_set or dss.Lines.NormAmps() != code_amps
            else:
                rated = "NormAmps" in _set_properties()
            given[name] = rated, code
        origin = [given[str(n).lower()] for n in self.line_names]
        return (np.array([g for g, _ in origin], dtype=bool),
                np.array([c for _, c in origin], dtype=object))

    def control_elements(self) -> list[str]:
        """The circuit's control elements (``RegControl.r1``, ``CapControl.c1``, ...), which
        never act here: the snapshots run with ``ControlMode=Off``."""
        return [n for n in dss.Circuit.AllElementNames()
                if n.partition(".")[0].lower() in _CONTROL_CLASSES]

    def _index_transformers(self) -> None:
        """Winding-1 kVA of each transformer; one whose files give none (no ``kVA``/``kVAs``,
        no XfmrCode) is a NetworkError: OpenDSS would rate it 1000 kVA without a word, and the
        transformer headroom rests on it."""
        kva, unrated = [], []
        for name in self.transformer_names:
            dss.Transformers.Name(name)
            dss.Transformers.Wdg(1)
            kva.append(dss.Transformers.kVA())
            given = _set_properties()
            if "kVA" not in given and "XfmrCode" not in given:
                unrated.append(name)
        if unrated:
            raise NetworkError(f"{self.master}: transformer(s) {', '.join(unrated[:5])} have no "
                               "kVA rating in the network files (OpenDSS would use 1000 kVA, "
                               "and the transformer headroom rests on it): add kVAs=[...]")
        self.transformer_kva = np.array(kva, dtype=float)

    def _index_loads_and_pv(self) -> None:
        """Loads (customers) and one PV generator per customer, created here, phases=1."""
        names, buses, phases, kv = [], [], [], []
        for _ in _iterate(dss.Loads):
            el = dss.CktElement
            # the nodes the engine really connected (``Bus1=b`` of a 1-phase load is node 1)
            node = int(el.NodeOrder()[0])
            names.append(dss.Loads.Name())
            buses.append(_bus_of(el.BusNames()[0]))
            phases.append(node if el.NumPhases() == 1 and node in (1, 2, 3) else 0)
            kv.append(dss.Loads.kV())
        if not names:
            raise NetworkError(f"{self.master}: the network has no loads (customers)")
        self.load_names = np.array(names, dtype=object)
        self.load_bus = np.array(buses, dtype=object)
        self.load_phase = np.array(phases, dtype=np.int8)  # 0: not a single-phase load
        for gen in list(_iterate_names(dss.Generators)):
            dss.Text.Command(f"Generator.{gen}.enabled=no")
        for name, bus, ph, v in zip(names, buses, phases, kv):
            conn = f"Bus1={bus}.{ph} phases=1" if ph else f"Bus1={bus} phases=3"
            dss.Text.Command(f"New Generator.pv_{name} {conn} kV={v:g} kW=0 PF=1 Model=1 "
                             f"Vminpu={LOAD_VMIN_PU:g} Vmaxpu={LOAD_VMAX_PU:g}")
        self._constant_power_loads()
        self._load_batch = self._batch("Load", len(names))
        self._gen_batch = self._batch("Generator", dss.Generators.Count() + self._n_disabled_gens())
        self._pv_slice = slice(self._gen_batch[1] - len(names), self._gen_batch[1])
        self._prop = {
            "load_kw": _prop_index("Load", "kW"),
            "load_kvar": _prop_index("Load", "kvar"),
            "load_pf": _prop_index("Load", "PF"),
            "gen_kw": _prop_index("Generator", "kW"),
        }

    @staticmethod
    def _constant_power_loads() -> None:
        """Every load constant P/Q down to 0.02 p.u. (DESIGN stage 2, the study's runDSS.py).

        OpenDSS's defaults (``Vminpu=0.95``) turn a load into a constant impedance below
        0.95 p.u., which draws less than its profile and hides undervoltage and collapse.
        The PV generators are created constant power the same way (a generator's default,
        ``Vminpu=0.9``, injected 23 % less than set at 181 V on ENWL network_5).
        """
        dss.Text.Command(f"BatchEdit Load..* Model=1 Vminpu={LOAD_VMIN_PU:g} "
                         f"Vmaxpu={LOAD_VMAX_PU:g}")

    @staticmethod
    def _n_disabled_gens() -> int:
        lib, ctx = dss.dss_lib, dss.Basic._api_util.ctx
        return lib.Obj_GetCount(ctx, lib.DSS_SetActiveClass(b"Generator")) - dss.Generators.Count()

    @staticmethod
    def _batch(cls_name: str, expected: int) -> _Batch:
        lib, ctx = dss.dss_lib, dss.Basic._api_util.ctx
        cls_idx = lib.DSS_SetActiveClass(cls_name.encode())
        count = lib.Obj_GetCount(ctx, cls_idx)
        if count != expected:
            raise NetworkError(f"internal: {count} {cls_name} objects, expected {expected}")
        return lib.Obj_GetListPointer(ctx, cls_idx), count

    # ----------------------------------------------------------------- per step
    def reset_solver_state(self) -> None:
        """Make the next solve start from the zero-load snapshot (a fixed, cold state)."""
        dss.dss_lib.YMatrix_Set_SolutionInitialized(False)

    def _batch_set(self, batch: _Batch, prop: str, values: ArrayLike) -> None:
        ptr, n = batch
        arr = values
        if not (isinstance(arr, np.ndarray) and arr.shape == (n,) and arr.dtype == np.float64
                and arr.flags.c_contiguous):  # a step's row of an input block already is
            arr = np.ascontiguousarray(np.broadcast_to(values, (n,)), dtype=np.float64)
        dss.dss_lib.Batch_Float64Array(ptr, n, self._prop[prop], _BATCH_SET,
                                       _ffi().from_buffer("double[]", arr), _FLAGS)

    def set_injections(self, p_load_kw: np.ndarray, q_load_kvar: np.ndarray | None,
                       p_pv_kw: np.ndarray, *, load_pf: float = 0.95) -> None:
        """Set every customer load and PV generator (PF 1), in load order.

        With ``q_load_kvar`` None the loads run at power factor ``load_pf`` (set once, then
        only kW changes per step); otherwise kW and kvar are both set.
        """
        if q_load_kvar is None:
            if self._pf_mode != load_pf:
                self._batch_set(self._load_batch, "load_pf", load_pf)
                self._pf_mode = load_pf
            self._batch_set(self._load_batch, "load_kw", p_load_kw)
        else:
            self._batch_set(self._load_batch, "load_kw", p_load_kw)
            self._batch_set(self._load_batch, "load_kvar", q_load_kvar)
            self._pf_mode = None
        if self._last_pv is None or not np.array_equal(p_pv_kw, self._last_pv):
            full = np.zeros(self._gen_batch[1])  # disabled file generators stay at 0
            full[self._pv_slice] = p_pv_kw
            self._batch_set(self._gen_batch, "gen_kw", full)
            self._last_pv = np.array(p_pv_kw, dtype=float)  # unchanged PV (night) is not re-set
        _check_engine_error()

    def node_voltages(self) -> np.ndarray:
        """Copy of the engine's complex node-voltage vector [V] (index 0: ground)."""
        row = np.empty(self._n_nodes + 1, dtype=np.complex128)
        self.node_voltages_into(row)
        return row

    def node_voltages_into(self, row: np.ndarray) -> None:
        """Copy the engine's complex node-voltage vector [V] into ``row`` (index 0: ground)."""
        pp = _ffi().new("double**")
        dss.dss_lib.YMatrix_getVpointer(pp)
        buf = _ffi().buffer(pp[0], 16 * (self._n_nodes + 1))
        row[:] = np.frombuffer(buf, dtype=np.complex128)

    def solve_into(self, out: StepResult, t: int, voltages: np.ndarray | None = None) -> None:
        """Solve the snapshot and write the results of step ``t`` into ``out``.

        With ``voltages`` only ``converged`` and ``iterations`` are written, and the solved
        node voltages kept in ``voltages[t]`` for :meth:`fill_step` to turn into results.
        """
        dss.Solution.Solve()
        out.converged[t] = dss.Solution.Converged()
        out.iterations[t] = dss.Solution.Iterations()
        if voltages is not None:
            self.node_voltages_into(voltages[t])
            return
        self.fill_step(out, t, self.node_voltages())

    def fill_step(self, out: StepResult, t: int, v: np.ndarray) -> None:
        """Write the bus voltages, line currents and powers and transformer powers of step
        ``t`` into ``out`` from the solved node voltages ``v`` [V].

        Line currents and powers come from the node voltages through each element's YPrim
        (I = Y V, S = V conj(I)), which is what OpenDSS itself reports, without per-element
        getter calls. No engine call: any thread may run this.
        """
        v_abs = np.abs(v)
        # out's rows are NaN-filled and C-contiguous: write through flat views in place
        out.v_pu[t].reshape(-1)[self._v_flat] = v_abs[self._v_take] * self._v_scale
        cur = self._y_lines @ v
        i_abs = np.abs(cur)
        v_send = v[self._line_node]
        p_w = v_send.real * cur.real + v_send.imag * cur.imag  # Re(V conj(I))
        out.i_a[t].reshape(-1)[self._line_flat] = i_abs
        out.s_kva[t].reshape(-1)[self._line_flat] = np.copysign(
            v_abs[self._line_node] * i_abs * 1e-3, p_w)
        for k, (y_hv, ref) in enumerate(self._tx):
            s = (v[ref] * np.conj(y_hv @ v)).sum() * 1e-3
            out.s_tx_kva[t, k] = np.copysign(abs(s), s.real)

    def fill(self, out: StepResult, voltages: np.ndarray) -> None:
        """:meth:`fill_step` for every step of a block solved with ``voltages``.

        Small networks are computed several steps at a time (one sparse product and one of
        each array operation per chunk of steps, its arrays kept within about 0.5 MB, so
        they stay in cache: 2.7 -> 1.1 ms per 144-step block of a 215-bus feeder); a network
        of over 16,000 line-phase rows step by step. Every value is the one :meth:`fill_step`
        gives, bit for bit: the same element-wise operations, each current summed over the
        same YPrim entries in the same order.
        """
        chunk = min(32, _FILL_CHUNK_ROWS // max(self._y_lines.shape[0], 1))
        if chunk <= 1:
            for t in range(voltages.shape[0]):
                self.fill_step(out, t, voltages[t])
            return
        for start in range(0, voltages.shape[0], chunk):
            self._fill_steps(out, slice(start, min(start + chunk, voltages.shape[0])),
                             voltages)

    def _fill_steps(self, out: StepResult, steps: slice, voltages: np.ndarray) -> None:
        v = voltages[steps]  # (steps, nodes + 1)
        v_t = np.ascontiguousarray(v.T)  # (nodes + 1, steps): the sparse products' operand
        n = v.shape[0]
        v_abs = np.abs(v)
        out.v_pu[steps].reshape(n, -1)[:, self._v_flat] = v_abs[:, self._v_take] * self._v_scale
        cur = (self._y_lines @ v_t).T  # (steps, line rows)
        i_abs = np.abs(cur)
        v_send = v[:, self._line_node]
        p_w = v_send.real * cur.real + v_send.imag * cur.imag
        out.i_a[steps].reshape(n, -1)[:, self._line_flat] = i_abs
        out.s_kva[steps].reshape(n, -1)[:, self._line_flat] = np.copysign(
            v_abs[:, self._line_node] * i_abs * 1e-3, p_w)
        for k, (y_hv, ref) in enumerate(self._tx):
            # (steps, refs), each step's terms contiguous: numpy sums each row as it sums
            # the 1-D array of fill_step (same loop, same order)
            terms = np.ascontiguousarray(v[:, ref] * np.conj((y_hv @ v_t).T))
            s = terms.sum(axis=1) * 1e-3
            # the scalar abs of fill_step (numpy's array abs of complex may round otherwise)
            magnitude = np.array([abs(value) for value in s])
            out.s_tx_kva[steps, k] = np.copysign(magnitude, s.real)

    def allocate_voltages(self, n_steps: int) -> np.ndarray:
        """A (steps, nodes + 1) complex array for :meth:`run`'s ``voltages``."""
        return np.empty((n_steps, self._n_nodes + 1), dtype=np.complex128)

    @functools.cached_property
    def _name_coords(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(values, dtype=str).astype("S")
                for name, values in (("bus", self.bus_names), ("line", self.line_names),
                                     ("transformer", self.transformer_names))}

    def name_coords(self) -> dict[str, np.ndarray]:
        """Bus, line and transformer names as fixed-length ASCII arrays (made once; not to be
        modified)."""
        return self._name_coords

    def allocate(self, n_steps: int, dtype: DTypeLike = np.float32) -> StepResult:
        """Arrays for ``n_steps`` steps, NaN-filled (a step never solved stays NaN)."""
        return StepResult(
            v_pu=np.full((n_steps, self.n_bus, 3), np.nan, dtype),
            i_a=np.full((n_steps, self.n_line, 3), np.nan, dtype),
            s_kva=np.full((n_steps, self.n_line, 3), np.nan, dtype),
            s_tx_kva=np.full((n_steps, len(self.transformer_names)), np.nan, dtype),
            converged=np.zeros(n_steps, bool),
            iterations=np.zeros(n_steps, np.int16),
        )

    def run(self, p_load_kw: np.ndarray, q_load_kvar: np.ndarray | None, p_pv_kw: np.ndarray,
            *, load_pf: float = 0.95, dtype: DTypeLike = np.float32,
            into: StepResult | None = None,
            voltages: np.ndarray | None = None) -> StepResult:
        """Solve a block of steps from the fixed starting state; inputs are (time, customer).

        ``q_load_kvar`` None: loads at power factor ``load_pf``. Results are stored as
        ``dtype`` (float32 for files; float64 to compare with other engines' output).
        ``into``: arrays from an earlier :meth:`allocate` of the same length and dtype to
        overwrite (every step rewrites every entry it holds; the entries no bus or line phase
        fills stay NaN), saving the allocation and NaN fill of a block. ``voltages``: an
        :meth:`allocate_voltages` array of the block's length: only ``converged`` and
        ``iterations`` are written here, the rest later by :meth:`fill` (in any thread).
        """
        n_steps = p_load_kw.shape[0]
        if into is not None and (into.v_pu.shape != (n_steps, self.n_bus, 3)
                                 or into.i_a.shape != (n_steps, self.n_line, 3)
                                 or into.v_pu.dtype != np.dtype(dtype)):
            into = None
        out = into if into is not None else self.allocate(n_steps, dtype)
        if voltages is not None and voltages.shape != (n_steps, self._n_nodes + 1):
            raise ValueError(f"voltages of shape {voltages.shape} for {n_steps} steps of "
                             f"{self._n_nodes + 1} nodes")
        self.reset_solver_state()
        for t in range(n_steps):
            q = None if q_load_kvar is None else q_load_kvar[t]
            self.set_injections(p_load_kw[t], q, p_pv_kw[t], load_pf=load_pf)
            self.solve_into(out, t, voltages)
        return out


def _sandbox_engine() -> None:
    """No editor, forms or shell commands, and OpenDSS's own output in a private folder
    (called before and after each compile: a compile moves the data path to the master's).
    The process's working directory stays where it is (the engine would otherwise move it to
    the data path, a folder deleted at exit)."""
    dss.Basic.AllowChangeDir(False)
    dss.Basic.AllowEditor(False)
    dss.Basic.AllowForms(False)
    dss.Basic.AllowDOScmd(False)
    dss.Basic.DataPath(_private_folder())


#: OpenDSS classes that act between solves (off here: ``Set ControlMode=Off``)
_CONTROL_CLASSES = frozenset({"regcontrol", "capcontrol", "swtcontrol", "invcontrol",
                              "expcontrol", "storagecontroller", "upfccontrol", "relay",
                              "recloser", "fuse", "gencontroller"})

#: :meth:`DssNetwork.fill` takes as many steps at once as make this many line-phase rows
_FILL_CHUNK_ROWS = 32_768

_FOLDER_PREFIX = "agileflex-dss-"


@functools.lru_cache(maxsize=1)
def _private_folder() -> str:
    """``<tmp>/agileflex-dss-.<host>.<pid>.<random>.tmp``, removed at exit; the folders of
    killed processes on this host (SIGKILL, a SLURM time limit) are removed first."""
    from agileflex_hpc import h5io

    h5io.remove_stale_temp_files(Path(tempfile.gettempdir()), prefix=_FOLDER_PREFIX)
    folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}.{h5io.HOST}.{os.getpid()}.",
                              suffix=".tmp")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _index(positions: list[int]) -> np.ndarray | slice:
    """Positions as an index: a slice where they are one increasing run (every phase of every
    bus or line present, as on three-phase networks), which numpy copies in one sweep; else
    an integer array. Both select the same elements."""
    if positions and positions == list(range(positions[0], positions[0] + len(positions))):
        return slice(positions[0], positions[0] + len(positions))
    return np.array(positions, dtype=np.intp)


def _set_properties() -> set[str]:
    """The properties of the active DSS object that its definition set (the DSS C-API's JSON
    leaves out those left at OpenDSS's defaults)."""
    return set(json.loads(dss.Element.ToJSON()))


def _branch_rows(refs: list[np.ndarray], yprims: list[np.ndarray], orders: list[np.ndarray]
                 ) -> tuple[np.ndarray, ...]:
    """The terminal-1 phase rows of every line's YPrim, as one sparse matrix's triples.

    Line ``i`` has node references ``refs[i]`` (length ``r``), its YPrim as interleaved
    (re, im) floats ``yprims[i]`` (``r x r`` complex) and its terminal-1 conductors' phases
    ``orders[i]``. Every conductor on phase 1-3 gives one row, in line then conductor order:
    YPrim row ``c`` against the columns ``refs[i]``. Returns (row, column, value) of every
    entry, each row's flat (line, phase) position ``3 x line + phase - 1`` and the node
    (``refs[i][c]``) each row's current leaves from.
    """
    if not refs:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0, dtype=np.complex128), empty, empty
    size = np.array([len(r) for r in refs], dtype=np.intp)
    ref_at, y_at = _starts(size), _starts(size * size)  # each line's start in refs, YPrims
    n_cond = np.array([len(o) for o in orders], dtype=np.intp)
    phase = np.concatenate(orders)
    line = np.repeat(np.arange(len(refs)), n_cond)
    cond = np.arange(len(phase)) - np.repeat(_starts(n_cond), n_cond)  # within its line
    keep = (phase >= 1) & (phase <= 3)
    line, cond, phase = line[keep], cond[keep], phase[keep]
    width = size[line]  # entries in each row
    row = np.repeat(np.arange(len(line)), width)
    j = np.arange(width.sum()) - np.repeat(_starts(width), width)  # position within its row
    ref = np.concatenate(refs)
    y = np.concatenate(yprims).view(np.complex128)
    col = ref[np.repeat(ref_at[line], width) + j]
    val = y[np.repeat(y_at[line] + cond * width, width) + j]
    return row, col, val, 3 * line + phase - 1, ref[ref_at[line] + cond]


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive runs of ``lengths`` starts: 0, l0, l0 + l1, ..."""
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)


def _csr(rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray],
         shape: tuple[int, int]) -> sp.csr_matrix:
    if not rows:
        return sp.csr_matrix(shape, dtype=np.complex128)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=shape)


def _iterate(collection: Any) -> Iterator[int]:
    """Iterate an OpenDSSDirect collection (``First``/``Next``), yielding positions.

    ``collection`` is one of OpenDSSDirect's (untyped) interface objects, e.g.
    ``dss.Transformers``."""
    k = collection.First()
    while k > 0:
        yield k
        k = collection.Next()


def _iterate_names(collection: Any) -> list[str]:
    return [collection.Name() for _ in _iterate(collection)]


def _bus_of(bus_spec: str) -> str:
    return bus_spec.split(".", 1)[0].lower()


def _bus_info(bus: str) -> tuple[float, float, float]:
    """(kV base, x, y) of a bus; x and y NaN where no coordinates are defined."""
    dss.Circuit.SetActiveBus(bus)
    if dss.Bus.Coorddefined():
        return dss.Bus.kVBase(), dss.Bus.X(), dss.Bus.Y()
    return dss.Bus.kVBase(), np.nan, np.nan


def _prop_index(cls_name: str, prop: str) -> int:
    """1-based property index of ``prop`` in class ``cls_name`` (which has an element)."""
    dss.Circuit.SetActiveClass(cls_name)
    dss.ActiveClass.First()
    dss.Circuit.SetActiveElement(f"{cls_name}.{dss.ActiveClass.Name()}")
    names = [p.lower() for p in dss.Element.AllPropertyNames()]
    return names.index(prop.lower()) + 1


def _ffi() -> Any:  # the DSS C-API backend's cffi FFI (untyped)
    from dss_python_backend._dss_capi import ffi

    return ffi


def _check_engine_error() -> None:
    num = dss.Error.Number()
    if num:
        raise NetworkError(f"OpenDSS error {num}: {dss.Error.Description()}")

