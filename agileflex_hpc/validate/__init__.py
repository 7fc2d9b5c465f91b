"""Stage 8: validation load flows with the final HP assignment and the EV schedules.

- :mod:`.inputs`: the validation inputs files (assigned case's demand/PV plus smart or dumb EV
  demand, tiled over the study);
- :mod:`.metrics`: pure functions: violations, V2G fulfilment, headroom statistics;
- :mod:`.stage`: stages 3 and 5 on the validation flows, the metrics and the report files.

The load flows themselves are stage 2's (``agileflex_hpc.loadflow``) with
:func:`.stage.validation_target`; the CLI is ``python -m agileflex_hpc.validate``.
"""

from agileflex_hpc.validate.inputs import (
    KINDS,
    build_validation_inputs,
    ensure_validation_inputs,
    horizon_index,
    map_evs_to_customers,
    tile_daily,
    validation_inputs_path,
    zone_ev_kw,
)
from agileflex_hpc.validate.stage import (
    analyse,
    analyse_network,
    format_report,
    gather,
    kind_path,
    report_csv_path,
    report_h5_path,
    validation_target,
)

__all__ = [
    "KINDS",
    "analyse",
    "analyse_network",
    "build_validation_inputs",
    "ensure_validation_inputs",
    "format_report",
    "gather",
    "horizon_index",
    "kind_path",
    "map_evs_to_customers",
    "report_csv_path",
    "report_h5_path",
    "tile_daily",
    "validation_inputs_path",
    "validation_target",
    "zone_ev_kw",
]
