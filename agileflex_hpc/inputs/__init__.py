"""Stage 1, inputs: customers table per (network, case) and per-customer demand and PV series.

- :mod:`.assignment`: seeded, nested HP/PV assignment (:func:`assign_customers`) and the
  series of a customers table (:func:`build_profiles`).
- :mod:`.profiles`: synthetic smart-meter, heat-pump and PV generators (pure numpy, seeded).
- :mod:`.loaders`: ENWL LVNS profile tables and Low Carbon London smart-meter CSVs.
"""

from agileflex_hpc.inputs.assignment import assign_customers, build_profiles, parse_case
from agileflex_hpc.inputs.loaders import load_enwl_profiles, load_lcl_csv
from agileflex_hpc.inputs.profiles import (
    GROUP_STATS,
    GROUPS,
    daily_temperature,
    heat_pump_demand,
    make_times,
    pv_output,
    smart_meter_demand,
    stable_hash,
)

__all__ = [
    "GROUPS",
    "GROUP_STATS",
    "assign_customers",
    "build_profiles",
    "daily_temperature",
    "heat_pump_demand",
    "load_enwl_profiles",
    "load_lcl_csv",
    "make_times",
    "parse_case",
    "pv_output",
    "smart_meter_demand",
    "stable_hash",
]
