"""Uncontrolled ("dumb") charging: full charger power from arrival until the energy is in."""

from __future__ import annotations

import logging

import numpy as np

from agileflex_hpc.ev.fleet import EvFleet

__all__ = ["dumb_charging_kw"]

logger = logging.getLogger(__name__)


def dumb_charging_kw(
    fleet: EvFleet,
    *,
    steps: int = 144,
    step_minutes: int = 10,
    efficiency: float = 0.95,
) -> np.ndarray:
    """Grid-side power of each EV charging at full power from arrival until it has its energy.

    Each EV draws its charger rating from ``t_in`` until the grid-side energy
    ``max(e_end - e_start, 0) / efficiency`` is delivered; the last step is partial. Charging
    never continues past departure, so an EV that cannot be filled in its dwell time leaves short.

    Parameters
    ----------
    fleet : EvFleet
        Sessions of the EVs.
    steps : int
        Horizon length. [step]
    step_minutes : int
        Step length. [min]
    efficiency : float
        Charging efficiency, battery energy per grid energy. [-]

    Returns
    -------
    ndarray, shape (ev, steps)
        Charging power drawn from the grid. [kW]
    """
    fleet.assert_valid(steps=steps)
    step_h = step_minutes / 60.0
    grid_kwh = np.maximum(fleet.e_end_kwh - fleet.e_start_kwh, 0.0) / efficiency
    t = np.arange(steps)[None, :]
    done_kwh = (t - fleet.t_in[:, None]) * fleet.charger_kw[:, None] * step_h
    power = np.clip((grid_kwh[:, None] - done_kwh) / step_h, 0.0, fleet.charger_kw[:, None])
    in_window = (t >= fleet.t_in[:, None]) & (t < fleet.t_out[:, None])
    short = grid_kwh > np.where(in_window, power, 0.0).sum(axis=1) * step_h * (1 + 1e-9)
    if np.any(short):
        logger.debug("%d EVs cannot be filled before departure by dumb charging", short.sum())
    return np.where(in_window, power, 0.0)
