"""Charging prices on the noon-to-noon horizon: DUoS time bands plus energy, and the V2G premium."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from agileflex_hpc.errors import InputDataError

__all__ = ["tariff_p_per_kwh", "effective_price_p_per_kwh"]

logger = logging.getLogger(__name__)


def _in_bands(hour: np.ndarray, bands: Sequence[Sequence[float]]) -> np.ndarray:
    """True where ``hour`` lies in any half-open band ``[start, end)``; bands may wrap midnight.

    Each band is a ``(start, end)`` pair of clock hours.
    """
    inside = np.zeros(hour.shape, dtype=bool)
    for start, end in bands:
        if start <= end:
            inside |= (hour >= start) & (hour < end)
        else:
            inside |= (hour >= start) | (hour < end)
    return inside


def tariff_p_per_kwh(
    *,
    steps: int = 144,
    step_minutes: int = 10,
    start_hour: float = 12,
    green: float = 0.8,
    amber: float = 2.1,
    red: float = 10.4,
    energy: float = 3.2,
    green_hours: tuple[float, float] = (0, 6),
    red_hours: Sequence[tuple[float, float]] = ((6, 9), (16, 19)),
) -> np.ndarray:
    """Import price per step: the DUoS band price plus the energy price.

    A step takes the band of its start time. Defaults are the study's: green 0.8 p/kWh
    00:00-06:00, red 10.4 p/kWh 06:00-09:00 and 16:00-19:00, amber 2.1 p/kWh otherwise, plus
    3.2 p/kWh energy. Red wins where a red and the green band overlap.

    Parameters
    ----------
    steps : int
        Horizon length. [step]
    step_minutes : int
        Step length. [min]
    start_hour : float
        Clock time at which step 0 starts (12 for the noon-to-noon day). [h]
    green, amber, red : float
        DUoS band prices. [p/kWh]
    energy : float
        Energy price added to every step. [p/kWh]
    green_hours : (float, float)
        Green band ``[start, end)`` in clock hours. [h]
    red_hours : sequence of (float, float)
        Red bands ``[start, end)`` in clock hours. [h]

    Returns
    -------
    ndarray, shape (steps,)
        Price of importing energy at each step. [p/kWh]
    """
    hour = (start_hour + np.arange(steps) * step_minutes / 60.0) % 24.0
    duos = np.full(steps, float(amber))
    duos[_in_bands(hour, [tuple(green_hours)])] = green
    duos[_in_bands(hour, [tuple(b) for b in red_hours])] = red
    return duos + energy


def effective_price_p_per_kwh(
    price_p_per_kwh: np.ndarray,
    headroom_kw: np.ndarray,
    *,
    v2g_premium: float = 17.5,
) -> np.ndarray:
    """Price used by the schedule optimiser: the tariff plus a premium where headroom < 0.

    Where the zone's headroom is negative, charging costs ``v2g_premium`` more and V2G
    discharge (priced at minus the same value) earns it.

    Parameters
    ----------
    price_p_per_kwh : ndarray, shape (steps,)
        Import tariff. [p/kWh]
    headroom_kw : ndarray, shape (steps,)
        Zone headroom. [kW]
    v2g_premium : float
        Premium where ``headroom_kw < 0``. [p/kWh]

    Returns
    -------
    ndarray, shape (steps,)
        Effective price. [p/kWh]
    """
    price = np.asarray(price_p_per_kwh, dtype=float)
    headroom = np.asarray(headroom_kw, dtype=float)
    if price.shape != headroom.shape:
        raise InputDataError(
            f"price_p_per_kwh shape {price.shape} differs from headroom_kw shape {headroom.shape}"
        )
    return price + np.where(headroom < 0, v2g_premium, 0.0)
