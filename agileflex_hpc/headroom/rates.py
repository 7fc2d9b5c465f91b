"""Stage 5 (headroom): thermal rate, zone rate, headroom, footroom and the transformer share.

Per zone and time step:

- thermal rate = thermal_factor * supply-cable rating [A] * LV busbar voltage on the zone's
  phase [p.u.] * V_LL [kV] / sqrt(3), in kVA per phase;
- rate = min(thermal rate, voltage limit), a NaN voltage limit meaning no voltage limit;
- headroom = rate - Pflow (spare import), footroom = rate + Pflow (spare export);
- binding constraint: ``b"c"`` cable (thermal; also on a tie), ``b"v"`` voltage limit,
  ``b"t"`` transformer.

Transformer (documented decisions): transformer headroom = rating - s_tx, with s_tx the
transformer's signed total apparent power (+ import), so export adds to it. At a step where the
sum of the headroom of the zones *with customers* exceeds the transformer headroom, the excess is
taken off each of those zones in equal shares, and they are flagged ``b"t"``. Zones without
customers host nothing, so they neither count in the sum nor take a share (their headroom is
reported unreduced). The sum is a plain sum: zones with negative headroom count negatively and
take their share like the others. Footroom is not reduced by the transformer (the method applies
the transformer to import only). NaN (non-converged) steps stay NaN and get no transformer
reduction; mask them with the ``converged`` flags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from agileflex_hpc.errors import InputDataError

logger = logging.getLogger(__name__)

__all__ = [
    "BINDING_CABLE",
    "BINDING_TRANSFORMER",
    "BINDING_VOLTAGE",
    "Headroom",
    "compute_headroom",
    "thermal_rate_kva",
]

BINDING_CABLE = b"c"
BINDING_VOLTAGE = b"v"
BINDING_TRANSFORMER = b"t"


@dataclass(frozen=True)
class Headroom:
    """Headroom and footroom of every zone.

    Attributes
    ----------
    rate_kva : ndarray of float64, shape (time, zone)
        min(thermal rate, voltage limit). [kVA]
    headroom_kva : ndarray of float64, shape (time, zone)
        rate - Pflow, less the transformer share where it binds. [kVA]
    footroom_kva : ndarray of float64, shape (time, zone)
        rate + Pflow. [kVA]
    binding : ndarray of ``S1``, shape (time, zone)
        Binding constraint: ``b"c"`` cable, ``b"v"`` voltage, ``b"t"`` transformer.
    tx_headroom_kva : ndarray of float64, shape (time,)
        Transformer rating - signed transformer import. [kVA]
    tx_excess_kva : ndarray of float64, shape (time,)
        Excess of the zones' headroom sum over ``tx_headroom_kva`` that was taken off
        (0 where the transformer does not bind). [kVA]
    """

    rate_kva: NDArray[np.float64]
    headroom_kva: NDArray[np.float64]
    footroom_kva: NDArray[np.float64]
    binding: NDArray[np.bytes_]
    tx_headroom_kva: NDArray[np.float64]
    tx_excess_kva: NDArray[np.float64]


def thermal_rate_kva(
    supply_rating_a: ArrayLike,
    busbar_v_pu: ArrayLike,
    zone_phase: ArrayLike,
    *,
    thermal_factor: float = 0.9,
    v_ll_kv: float = 0.416,
) -> NDArray[np.float64]:
    """Thermal rate of each zone's supply cable on its phase.

    Parameters
    ----------
    supply_rating_a : array_like, shape (zone,)
        Rating of the zone's supply cable. [A]
    busbar_v_pu : array_like, shape (time, phase)
        LV busbar voltage magnitude per phase (phase axis length 3). [p.u.]
    zone_phase : array_like of int, shape (zone,)
        Phase of each zone, in {1, 2, 3}.
    thermal_factor : float, default 0.9
        Share of the rating that may be used. [-]
    v_ll_kv : float, default 0.416
        Nominal line-to-line voltage of the LV busbar. [kV]

    Returns
    -------
    ndarray of float64, shape (time, zone)
        thermal_factor * rating * V_busbar * v_ll_kv / sqrt(3). [kVA per phase]
    """
    rating = np.asarray(supply_rating_a, dtype=np.float64)
    v = np.asarray(busbar_v_pu, dtype=np.float64)
    phase = np.asarray(zone_phase, dtype=np.int64)
    if rating.ndim != 1 or phase.shape != rating.shape:
        raise InputDataError(
            f"supply_rating_a {rating.shape} and zone_phase {phase.shape} must be (zone,)"
        )
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputDataError(f"busbar_v_pu must have shape (time, 3), got {v.shape}")
    if not np.all((phase >= 1) & (phase <= 3)):
        raise InputDataError(f"zone_phase must be in {{1, 2, 3}}, got {np.unique(phase)}")
    return thermal_factor * rating[None, :] * v[:, phase - 1] * v_ll_kv / np.sqrt(3.0)


def compute_headroom(
    pflow_kva: ArrayLike,
    thermal_kva: ArrayLike,
    voltage_limit_kva: ArrayLike,
    *,
    s_tx_kva: ArrayLike,
    tx_rating_kva: float,
    has_customers: ArrayLike | None = None,
) -> Headroom:
    """Headroom, footroom and binding constraint of every zone (stage 5).

    Parameters
    ----------
    pflow_kva : array_like, shape (time, zone)
        Supply-cable flow on the zone's phase, + = import into the feeder. [kVA]
    thermal_kva : array_like, shape (time, zone)
        Thermal rate, e.g. from :func:`thermal_rate_kva`. [kVA]
    voltage_limit_kva : array_like, shape (zone,)
        Voltage-constrained flow limit from stage 4; NaN = no voltage limit. [kVA]
    s_tx_kva : array_like, shape (time,)
        Transformer total apparent power, signed, + = import from the 11 kV grid. [kVA]
    tx_rating_kva : float
        Transformer rating. [kVA]
    has_customers : array_like of bool, shape (zone,), optional
        Zones that take part in the transformer share. Default: every zone.

    Returns
    -------
    Headroom

    Notes
    -----
    See the module docstring for the transformer share and the treatment of zones without
    customers.
    """
    p, thermal, vlim, s_tx, share = _check_headroom_inputs(
        pflow_kva, thermal_kva, voltage_limit_kva, s_tx_kva, has_customers
    )
    if not float(tx_rating_kva) > 0:
        raise InputDataError(f"tx_rating_kva must be a positive number, got {tx_rating_kva}")
    voltage_binds = vlim[None, :] < thermal  # NaN limit -> False -> cable
    rate = np.where(voltage_binds, vlim[None, :], thermal)
    binding = np.where(voltage_binds, BINDING_VOLTAGE, BINDING_CABLE).astype("S1")
    headroom = rate - p
    tx_headroom = float(tx_rating_kva) - s_tx
    excess = _share_transformer_excess(headroom, binding, tx_headroom, share)
    return Headroom(
        rate_kva=rate,
        headroom_kva=headroom,
        footroom_kva=rate + p,
        binding=binding,
        tx_headroom_kva=tx_headroom,
        tx_excess_kva=excess,
    )


def _share_transformer_excess(
    headroom: np.ndarray, binding: np.ndarray, tx_headroom: np.ndarray, share: np.ndarray
) -> np.ndarray:
    """Take the excess over the transformer headroom off the sharing zones, in place.

    Returns the excess per step, shape (time,) [kVA].
    """
    n_share = int(share.sum())
    if n_share == 0:
        return np.zeros_like(tx_headroom)
    total = headroom[:, share].sum(axis=1)
    excess = np.where(total > tx_headroom, total - tx_headroom, 0.0)  # NaN -> no reduction
    headroom[:, share] -= (excess / n_share)[:, None]
    binding[np.ix_(excess > 0, share)] = BINDING_TRANSFORMER
    logger.debug("transformer binds at %d of %d steps", int((excess > 0).sum()), excess.size)
    return excess


def _check_headroom_inputs(
    pflow_kva: ArrayLike,
    thermal_kva: ArrayLike,
    voltage_limit_kva: ArrayLike,
    s_tx_kva: ArrayLike,
    has_customers: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the inputs of :func:`compute_headroom` as float64/bool arrays, checked."""
    p = np.asarray(pflow_kva, dtype=np.float64)
    thermal = np.asarray(thermal_kva, dtype=np.float64)
    vlim = np.asarray(voltage_limit_kva, dtype=np.float64)
    s_tx = np.asarray(s_tx_kva, dtype=np.float64)
    if p.ndim != 2 or thermal.shape != p.shape:
        raise InputDataError(f"pflow_kva {p.shape} and thermal_kva {thermal.shape} must match")
    n_time, n_zone = p.shape
    if vlim.shape != (n_zone,):
        raise InputDataError(f"voltage_limit_kva must have shape ({n_zone},), got {vlim.shape}")
    if s_tx.shape != (n_time,):
        raise InputDataError(f"s_tx_kva must have shape ({n_time},), got {s_tx.shape}")
    share = (
        np.ones(n_zone, dtype=bool) if has_customers is None
        else np.asarray(has_customers, dtype=bool)
    )
    if share.shape != (n_zone,):
        raise InputDataError(f"has_customers must have shape ({n_zone},), got {share.shape}")
    return p, thermal, vlim, s_tx, share
