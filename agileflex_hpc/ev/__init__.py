"""EV stage: fleets, tariff, charging-schedule MILP, the attempts loop and dumb charging."""

from agileflex_hpc.ev.attempts import AttemptRecord, AttemptsResult, run_attempts
from agileflex_hpc.ev.dumb import dumb_charging_kw
from agileflex_hpc.ev.fleet import EvFleet, draw_fleet, load_fleet_csv
from agileflex_hpc.ev.milp import ScheduleResult, solve_schedule
from agileflex_hpc.ev.tariff import effective_price_p_per_kwh, tariff_p_per_kwh

__all__ = [
    "AttemptRecord",
    "AttemptsResult",
    "EvFleet",
    "ScheduleResult",
    "draw_fleet",
    "dumb_charging_kw",
    "effective_price_p_per_kwh",
    "load_fleet_csv",
    "run_attempts",
    "solve_schedule",
    "tariff_p_per_kwh",
]
