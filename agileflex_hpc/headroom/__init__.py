"""Headroom stages 3-6: zone series, voltage limits, headroom/footroom and hosting capacity.

Pure numpy functions on arrays (no I/O, no MPI):

- :mod:`.zones` (stage 3): per-zone Vmin, supply-cable flow and overload counts;
- :mod:`.limits` (stage 4): voltage-constrained flow limit per zone;
- :mod:`.rates` (stage 5): thermal rate, headroom, footroom, binding constraint, transformer share;
- :mod:`.hosting` (stage 6): daily quantile profiles, daily energy, EVs hosted, HP case per zone.
"""

from agileflex_hpc.headroom.hosting import (
    NO_CASE,
    HpAssignment,
    assign_hp_case,
    daily_energy_kwh,
    daily_profiles,
    evs_estimate,
    final_customers,
    pooled_quantile_profile,
    quantile_profile,
)
from agileflex_hpc.headroom.limits import (
    RULES,
    VoltageLimit,
    VoltageLimits,
    fit_voltage_limit,
    fit_voltage_limits,
)
from agileflex_hpc.headroom.rates import (
    BINDING_CABLE,
    BINDING_TRANSFORMER,
    BINDING_VOLTAGE,
    Headroom,
    compute_headroom,
    thermal_rate_kva,
)
from agileflex_hpc.headroom.zones import N_PHASES, ZoneSeries, zone_index, zone_series

__all__ = [
    "BINDING_CABLE",
    "BINDING_TRANSFORMER",
    "BINDING_VOLTAGE",
    "N_PHASES",
    "NO_CASE",
    "RULES",
    "Headroom",
    "HpAssignment",
    "VoltageLimit",
    "VoltageLimits",
    "ZoneSeries",
    "assign_hp_case",
    "compute_headroom",
    "daily_energy_kwh",
    "daily_profiles",
    "evs_estimate",
    "final_customers",
    "fit_voltage_limit",
    "fit_voltage_limits",
    "pooled_quantile_profile",
    "quantile_profile",
    "thermal_rate_kva",
    "zone_index",
    "zone_series",
]
