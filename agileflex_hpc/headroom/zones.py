"""Stage 3 (zones): per-zone series of minimum voltage, supply flow and overloads.

A zone is one feeder x one phase. Zones are ordered feeder-major: for each feeder in order,
phases 1, 2, 3, so zone ``k`` is feeder ``k // 3`` and phase ``k % 3 + 1``. Zones are kept for
every feeder and phase, even where the feeder has no bus on that phase (their Vmin is NaN).

All functions here are pure numpy: no file I/O, no MPI, no loop over time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from agileflex_hpc.errors import InputDataError
from agileflex_hpc.network.topology import N_PHASES, zone_index

logger = logging.getLogger(__name__)

__all__ = ["N_PHASES", "ZoneSeries", "zone_index", "zone_series", "overloaded_counts"]



@dataclass(frozen=True)
class ZoneSeries:
    """Per-zone time series of one load-flow case.

    Attributes
    ----------
    vmin_pu : ndarray, shape (time, zone)
        Minimum voltage over the feeder's buses on the zone's phase, NaN ignored; NaN where
        the feeder has no bus on that phase. Same dtype as ``v_pu``. [p.u.]
    pflow_kva : ndarray of float64, shape (time, zone)
        Apparent power from the busbar into the feeder on the zone's phase: the sum over the
        feeder's supply cables (parallel cables) of each cable's flow, oriented away from the
        busbar (+ = import into the feeder). [kVA]
    n_overloaded : ndarray of int32, shape (time, zone)
        Number of the feeder's lines whose current on the zone's phase exceeds (strictly)
        their rating; a NaN current (no such phase) never counts. [-]
    zone_feeder : ndarray of int64, shape (zone,)
        Feeder index of each zone (position in ``feeder_buses``). [-]
    zone_phase : ndarray of int64, shape (zone,)
        Phase of each zone, in {1, 2, 3}. [-]
    """

    vmin_pu: NDArray[np.floating]
    pflow_kva: NDArray[np.floating]
    n_overloaded: NDArray[np.int32]
    zone_feeder: NDArray[np.int64]
    zone_phase: NDArray[np.int64]


def zone_series(
    v_pu: ArrayLike,
    i_a: ArrayLike,
    s_kva: ArrayLike,
    *,
    feeder_buses: Sequence[ArrayLike],
    feeder_lines: Sequence[ArrayLike],
    supply_lines: Sequence[ArrayLike],
    line_rating_a: ArrayLike,
    supply_sign: Sequence[ArrayLike] | None = None,
) -> ZoneSeries:
    """Reduce one case's load-flow arrays to per-zone series (stage 3).

    Parameters
    ----------
    v_pu : array_like, shape (time, bus, phase)
        Bus voltage magnitudes; NaN where a bus has no such phase. [p.u.]
    i_a : array_like, shape (time, line, phase)
        Line current magnitude at the sending terminal. [A]
    s_kva : array_like, shape (time, line, phase)
        Line apparent power per phase, signed by the direction of active power. [kVA]
    feeder_buses : sequence of int arrays, length feeder
        Bus indices (into the bus axis) of each feeder's buses; the LV busbar is not one of them.
    feeder_lines : sequence of int arrays, length feeder
        Line indices of each feeder's lines, supply cable included.
    supply_lines : sequence of int arrays, length feeder
        Line indices of each feeder's supply cable(s) (several: parallel cables).
    line_rating_a : array_like, shape (line,)
        Thermal rating of every line. [A]
    supply_sign : sequence of arrays of +1/-1, optional
        Per supply cable: +1 where the line is defined from the busbar (its flow, signed
        bus1 -> bus2 at bus1, is the import into the feeder), -1 where it is defined towards
        the busbar (its flow is negated: measured at its feeder end). Default all +1.

    Returns
    -------
    ZoneSeries
        ``vmin_pu``, ``pflow_kva``, ``n_overloaded`` of shape (time, zone) with
        zone = 3 * feeder, feeder-major, plus ``zone_feeder`` and ``zone_phase``.

    Raises
    ------
    InputDataError
        Wrong shapes, a feeder without buses or lines, an index out of range, or a rating of a
        feeder line that is not a positive number.

    Notes
    -----
    The loop is over feeders only; each feeder is one fancy-indexed gather and one reduction
    over all time steps. Memory peaks at ``time x buses-of-one-feeder x 3`` values, so callers
    with very long series reduce one block at a time.
    """
    v, i, s = _check_flow_arrays(v_pu, i_a, s_kva)
    buses, lines, supply, rating = _check_feeders(
        feeder_buses, feeder_lines, supply_lines, line_rating_a, v.shape[1], i.shape[1]
    )
    signs = ([np.ones(c.size) for c in supply] if supply_sign is None
             else [np.asarray(g, dtype=np.float64).ravel() for g in supply_sign])
    if [g.size for g in signs] != [c.size for c in supply]:
        raise InputDataError("supply_sign must give one sign per supply cable of each feeder")
    vmin = [np.fmin.reduce(v[:, b, :], axis=1) for b in buses]  # NaN-ignoring, no warning
    pflow = [np.einsum("tlp,l->tp", s[:, c, :], g) for c, g in zip(supply, signs)]
    over = overloaded_counts(i, lines, rating)
    n_time = v.shape[0]
    zone_feeder, zone_phase = zone_index(len(buses))
    logger.debug("zone series: %d steps, %d feeders", n_time, len(buses))
    return ZoneSeries(
        vmin_pu=np.stack(vmin, axis=1).reshape(n_time, -1),
        pflow_kva=np.stack(pflow, axis=1).reshape(n_time, -1),
        n_overloaded=over,
        zone_feeder=zone_feeder,
        zone_phase=zone_phase,
    )


def _check_flow_arrays(
    v_pu: ArrayLike, i_a: ArrayLike, s_kva: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the three load-flow arrays as ndarrays after checking their shapes."""
    v, i, s = np.asarray(v_pu), np.asarray(i_a), np.asarray(s_kva)
    for name, arr in (("v_pu", v), ("i_a", i), ("s_kva", s)):
        if arr.ndim != 3 or arr.shape[2] != N_PHASES:
            raise InputDataError(
                f"{name} must have shape (time, bus|line, {N_PHASES}), got {arr.shape}"
            )
    if i.shape != s.shape:
        raise InputDataError(f"i_a {i.shape} and s_kva {s.shape} must have the same shape")
    if v.shape[0] != i.shape[0]:
        raise InputDataError(f"v_pu has {v.shape[0]} steps but i_a has {i.shape[0]}")
    return v, i, s


def _check_feeders(
    feeder_buses: Sequence[ArrayLike],
    feeder_lines: Sequence[ArrayLike],
    supply_lines: Sequence[ArrayLike],
    line_rating_a: ArrayLike,
    n_bus: int,
    n_line: int,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Check the feeder description against the bus and line axes; return it as arrays."""
    buses = [np.asarray(b, dtype=np.int64).ravel() for b in feeder_buses]
    lines = [np.asarray(ln, dtype=np.int64).ravel() for ln in feeder_lines]
    supply = [np.asarray(c, dtype=np.int64).ravel() for c in supply_lines]
    rating = np.asarray(line_rating_a, dtype=np.float64)
    if not buses or not (len(buses) == len(lines) == len(supply)):
        raise InputDataError(
            f"feeder_buses ({len(buses)}), feeder_lines ({len(lines)}) and supply_lines "
            f"({len(supply)}) must describe the same number (>= 1) of feeders"
        )
    if rating.shape != (n_line,):
        raise InputDataError(f"line_rating_a must have shape ({n_line},), got {rating.shape}")
    for f, (b, ln) in enumerate(zip(buses, lines)):
        if b.size == 0 or ln.size == 0:
            raise InputDataError(f"feeder {f} has no buses or no lines")
        if b.min() < 0 or b.max() >= n_bus:
            raise InputDataError(f"feeder {f}: bus index out of range [0, {n_bus})")
        if ln.min() < 0 or ln.max() >= n_line:
            raise InputDataError(f"feeder {f}: line index out of range [0, {n_line})")
        if not np.all(rating[ln] > 0):  # also rejects NaN
            raise InputDataError(f"feeder {f}: line ratings must be positive numbers [A]")
    for f, c in enumerate(supply):
        if c.size == 0 or c.min() < 0 or c.max() >= n_line:
            raise InputDataError(f"feeder {f}: no supply cable, or a supply_lines index out of "
                                 f"range [0, {n_line})")
    return buses, lines, supply, rating


def overloaded_counts(i_a: NDArray[np.floating], feeder_lines: Sequence[NDArray[np.integer]],
                      line_rating_a: NDArray[np.floating]) -> NDArray[np.int32]:
    """Per (time, zone): the feeder's lines whose current on the zone's phase exceeds
    (strictly) their rating; a NaN current never counts.

    Parameters
    ----------
    i_a : ndarray, shape (time, line, phase)
        Line current magnitudes. [A]
    feeder_lines : sequence of int arrays, length feeder
        Line indices of each feeder.
    line_rating_a : ndarray, shape (line,)
        The rating each current is compared with. [A]

    Returns
    -------
    ndarray of int32, shape (time, zone), zone = 3 * feeder + phase - 1
    """
    over = [(i_a[:, ln, :] > line_rating_a[ln][None, :, None]).sum(axis=1, dtype=np.int32)
            for ln in feeder_lines]
    return np.stack(over, axis=1).reshape(i_a.shape[0], -1)
