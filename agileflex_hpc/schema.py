"""The HDF5 schema of a run: every file kind and the datasets and coordinates it holds.

This module is the one owner of the layout of the result files:

* :class:`Variable` describes one dataset or root coordinate (path inside the file, dims,
  dtype as documented, ``units`` and ``description`` attributes); :class:`Table` one table
  (:func:`~agileflex_hpc.h5io.write_table`); :class:`FileSchema` one file kind, with the
  text of its section of ``docs/schema.md``.
* The writers take dims, units and description from here: ``HOSTING.write_var(g,
  "evs_estimate", evs)`` writes ``/hosting/evs_estimate`` with the registry's attributes;
  ``ZONES.write_coord(f, "time", epochs)`` a root coordinate.
* ``docs/schema.md`` is generated: ``python -m agileflex_hpc.schema > docs/schema.md``
  (``tests/test_schema.py`` fails when the file differs, and checks the files of a real run
  against the registry).
"""

from __future__ import annotations

import dataclasses
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h5py
import numpy as np

from agileflex_hpc import h5io

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["TIME_UNITS", "Variable", "Table", "FileSchema", "FILES", "MANIFEST", "INPUTS",
           "BLOCK", "STITCHED", "ZONES", "LIMITS", "HEADROOM", "HOSTING", "EV_ZONE",
           "VALIDATION_INPUTS", "VALIDATION_KIND", "VALIDATION_REPORT", "REPLAN", "markdown"]

#: units of every ``time`` coordinate: step starts on the study's naive local clock
TIME_UNITS = "seconds since 1970-01-01 00:00:00"


@dataclass(frozen=True)
class Variable:
    """One dataset or root coordinate of a file kind.

    Attributes
    ----------
    name : str
        Path inside the file: ``"time"`` (a root coordinate) or ``"hosting/evs_estimate"``.
    dims : tuple of str
        Axis names (the ``dims`` attribute; a coordinate's is its own name).
    dtype : str
        As documented: a numpy name (``"float32"``, ``"uint8"``), ``"bool"``, ``"str"``
        (variable-length UTF-8), ``"S1"`` or ``"S (fixed-length ASCII)"``.
    units : str
        The ``units`` attribute (``"1"`` dimensionless, ``""`` strings and codes).
    description : str
        The ``description`` attribute; ``{attr}`` fields are filled by the writer with the
        file's root attribute of that name (``kind``).
    detail : str
        Documentation only: appended to the description in ``docs/schema.md``.
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str
    description: str = ""
    detail: str = ""

    @property
    def is_coord(self) -> bool:
        """A root coordinate (``time``, ``zone``, ...), not a variable in a group."""
        return "/" not in self.name

    @property
    def fields(self) -> tuple[str, ...]:
        """The ``{attr}`` fields of the description (root attribute names)."""
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.description) if f)

    def text(self, **fields: str) -> str:
        """The ``description`` attribute, with its fields filled in."""
        return self.description.format(**fields) if self.fields else self.description

    def doc(self) -> str:
        """The description column of ``docs/schema.md`` (fields shown as ``<attr>`` in code)."""
        return self.text(**{f: f"`<{f}>`" for f in self.fields}) + self.detail

    def dtype_ok(self, dtype: np.dtype) -> bool:
        """Whether a stored dtype is of the documented kind (and size, where given)."""
        if self.dtype == "str":
            return dtype.kind == "O" and h5py.check_string_dtype(dtype) is not None
        if self.dtype.startswith("S"):
            size = self.dtype[1:]
            return dtype.kind == "S" and (not size.isdigit() or dtype.itemsize == int(size))
        want = np.dtype(self.dtype)
        return dtype.kind == want.kind and dtype.itemsize == want.itemsize


@dataclass(frozen=True)
class Table:
    """A table (:func:`~agileflex_hpc.h5io.write_table`): a group of 1-D column datasets on
    a ``row`` dimension scale, without ``units``/``dims``/``description``.

    ``rows``: what a row is (a dimension name such as ``customer``, or a sentence);
    ``columns``: the columns with their dtypes and units (markdown).
    """

    name: str
    rows: str
    columns: str


@dataclass(frozen=True)
class FileSchema:
    """One file kind: where it lives, its datasets, coordinates and tables, and its text in
    ``docs/schema.md``.

    Attributes
    ----------
    key : str
        Short name (``"hosting"``); :data:`FILES` maps it to the schema.
    title, level : str, int
        Heading of its section in ``docs/schema.md`` (markdown) and its level.
    path_pattern : str
        Path below the run folder (``hosting/<net>.h5``); the paths themselves come from
        :mod:`agileflex_hpc.layout`.
    attributes_text : str
        Markdown before the table: root attributes and what the file is.
    entries : tuple of Variable or Table
        Everything the file holds, in the order documented (and written).
    notes : str
        Markdown after the table.
    scales : bool
        Coordinates are dimension scales attached to the variables (False: block files).
    tables_apart : bool
        Document the tables in a table of their own (rows, columns) before the datasets.
    """

    key: str
    title: str
    level: int
    path_pattern: str
    attributes_text: str
    entries: tuple[Variable | Table, ...]
    notes: str = ""
    scales: bool = True
    tables_apart: bool = False

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(e for e in self.entries if isinstance(e, Variable))

    @property
    def tables(self) -> tuple[Table, ...]:
        return tuple(e for e in self.entries if isinstance(e, Table))

    def variable(self, name: str) -> Variable:
        """The dataset or coordinate at ``name`` (``"hosting/rule"``, ``"zone"``)."""
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"{name!r} is not in the schema of {self.path_pattern}: add it to "
                       "agileflex_hpc/schema.py (and regenerate docs/schema.md)")

    def group(self, group: str) -> tuple[Variable, ...]:
        """The variables of one group, in registry order."""
        return tuple(v for v in self.variables if v.name.rpartition("/")[0] == group)

    def write_var(self, group: h5py.Group, name: str, data: npt.ArrayLike, *,
                  compress: bool | str = True, **fields: str) -> h5py.Dataset:
        """:func:`h5io.write_var` of ``<group>/<name>`` with the registry's dims, units and
        description (``fields`` fill the description's ``{attr}`` fields); root scales are
        attached unless the file kind has none (block files)."""
        v = self.variable(f"{group.name.strip('/')}/{name}")
        return h5io.write_var(group, name, data, dims=list(v.dims), units=v.units,
                              description=v.text(**fields), compress=compress,
                              scales=self.scales)

    def write_coord(self, f: h5py.File, name: str, values: npt.ArrayLike) -> h5py.Dataset:
        """:func:`h5io.write_coord` of the root coordinate ``name`` with the registry's units
        and description (a dimension scale unless the file kind has none)."""
        v = self.variable(name)
        return h5io.write_coord(f, name, values, units=v.units, description=v.text(),
                                scale=self.scales)


def _var(name: str, dims: str, dtype: str, units: str, description: str = "",
         detail: str = "") -> Variable:
    """A :class:`Variable` with dims written ``"time zone"``."""
    return Variable(name, tuple(dims.split()), dtype, units, description, detail)


def _coord(name: str, dtype: str = "str", units: str = "", detail: str = "",
           description: str = "") -> Variable:
    return Variable(name, (name,), dtype, units, description, detail)


def _detail(v: Variable, detail: str) -> Variable:
    """``v`` with another documentation detail (same attributes)."""
    return dataclasses.replace(v, detail=detail)


# ---------------------------------------------------------------------------- coordinates
TIME = _coord("time", "int64", TIME_UNITS, "study steps")
PHASE = _coord("phase", "int8", detail="1, 2, 3")
ZONE = _coord("zone", detail="zone ids")
HORIZON_STEP = _coord("step", "int64", "min",
                      description="minute of the day at the step's start (the horizon starts "
                      "at 12:00)")

# ---------------------------------------------------------------------------- manifest
MANIFEST = FileSchema(
    key="manifest", title="`networks/<net>/network.h5`", level=2,
    path_pattern="networks/<net>/network.h5",
    attributes_text="""\
Attributes: `network`, `master` (absolute path of the master file), `busbar` (LV busbar name),
`busbar_kv` (its line-to-line base voltage [kV]),
fingerprint (key: code, network files or embedded seed, the network's config entry).""",
    entries=(
        _coord("bus", detail="bus names, engine order (lower case)"),
        _coord("line", detail="enabled Line elements, engine order"),
        _coord("transformer", detail="enabled Transformer elements"),
        _coord("xy", description="coordinate axis", detail=": `x`, `y` (the axis of `bus_xy`)"),
        _var("network/bus_xy", "bus xy", "float64", "",
             "bus coordinates (x, y) as in the source",
             " (`Buscoords` or `XY_Position.csv`); NaN unknown"),
        _var("network/bus_feeder", "bus", "int64", "", "0-based feeder of each bus, -1: none",
             " (busbar, HV side, spare cables)"),
        _var("network/line_bus1", "line", "str", "", "sending bus", " (terminal 1)"),
        _var("network/line_bus2", "line", "str", "", "receiving bus"),
        _var("network/line_rating_a", "line", "float64", "A", "normal rating",
             " (`NormAmps`; where the files give none, the job's `unrated_rating_a`)"),
        _var("network/line_rating_given", "line", "bool", "",
             "whether the network files give the line's rating",
             " (`NormAmps` on the line or its LineCode)"),
        _var("network/line_feeder", "line", "int64", "", "0-based feeder of each line, -1: none"),
        _var("network/line_is_supply", "line", "bool", "", "supply cable of its feeder"),
        _var("network/transformer_kva", "transformer", "float64", "kVA", "rating",
             " (winding 1)"),
        Table("network/customers", "customer",
              "`load` str, `bus` str, `phase` int64 (1-3, 0 three-phase), `feeder` int64 "
              "(1-based), `zone` str"),
    ),
)

# ---------------------------------------------------------------------------- stage 1
INPUTS = FileSchema(
    key="inputs", title="`inputs/<net>/<case>.h5`", level=2, path_pattern="inputs/<net>/<case>.h5",
    attributes_text="""\
Attributes: `network`, `case`, fingerprint (restart key,
[inputs.md](inputs.md#customers-table)).""",
    entries=(
        _detail(TIME, "step starts of the study"),
        _coord("customer", detail="load names, manifest order"),
        Table("inputs/customers", "customer",
              "`load`, `bus`, `phase`, `feeder`, `zone` (as the manifest), `group` str, "
              "`profile_id` int64, `has_hp` bool, `pv_kwp` float64 [kWp]"),
        _var("inputs/demand_kw", "time customer", "float32", "kW",
             "customer demand incl. heat pump, PF load_pf"),
        _var("inputs/pv_kw", "time customer", "float32", "kW", "PV output, PF 1"),
    ),
)

# ---------------------------------------------------------------------------- stage 2
#: the six load-flow arrays; their order defines the ``data_sha256`` checksum of block files
LOADFLOW = (
    _var("loadflow/v_pu", "time bus phase", "float32", "1",
         "bus voltage magnitude per phase [p.u.]", "; NaN where the bus lacks the phase"),
    _var("loadflow/i_a", "time line phase", "float32", "A",
         "line current per phase at the sending end", "; NaN where the line lacks the phase"),
    _var("loadflow/s_kva", "time line phase", "float32", "kVA",
         "line apparent power per phase, signed by active power (+ bus1 -> bus2)"),
    _var("loadflow/s_tx_kva", "time transformer", "float32", "kVA",
         "transformer total apparent power, signed (+ import from the HV side)"),
    _var("loadflow/converged", "time", "uint8", "1", "power flow converged (1) or not (0)",
         ": voltage collapse, values of the last iteration"),
    _var("loadflow/iterations", "time", "int16", "1", "power-flow iterations"),
)

_ASCII = "S (fixed-length ASCII)"
BLOCK = FileSchema(
    key="block", title="`raw/<net>/<case>/block_NNNNN.h5`", level=3,
    path_pattern="raw/<net>/<case>/block_NNNNN.h5",
    attributes_text="""\
Attributes: `network`, `case`, `block`, `start`, `stop` (step indices into the study, stop
exclusive), fingerprint (restart key,
[loadflow.md](loadflow.md#block-files-atomic-writes-restart)), `data_sha256` (sha256 of the
six `/loadflow` arrays as stored, checked on restart, gather and every read), `nonconverged`
(steps), `stage` (`loadflow`), `solve_s` (reading the block's inputs and solving its steps
in the solving thread, compile excluded; with a background writer the results are then
computed from the node voltages in the writer's thread, outside it [s]) and `compile_s`
(compiling the network first, 0 when it was compiled already [s]): measured costs, which vary
between runs and are left out of the checksum and the fingerprint. Block files are the hot
path: their names are fixed-length ASCII (faster to write than variable-length strings); the
coordinates are dimension scales attached to the variables, as in every other file (about
4 ms per 144-step block of a 7,000-bus network, under 1 % of its solves), so a block opens in
xarray with named dims.""",
    entries=(
        _detail(TIME, "the block's steps"),
        _coord("bus", _ASCII, detail="bus names, engine order (as the manifest)"),
        _coord("line", _ASCII, detail="line names, engine order (as the manifest)"),
        _coord("transformer", _ASCII, detail="transformer names, engine order (as the manifest)"),
        PHASE,
        *LOADFLOW,
    ),
)

STITCHED = FileSchema(
    key="stitched", title="`raw/<net>/<case>.h5` (stitched)", level=3,
    path_pattern="raw/<net>/<case>.h5",
    attributes_text="""\
Attributes: `network`, `case`, `stage`, `blocks` (number of blocks), fingerprint.
Coordinates for the whole study (names from the manifest), attached as dimension scales, and
the same six `/loadflow/*` datasets, dims, dtypes and attributes as the block files, as
**virtual datasets** whose sources are `<case>/block_NNNNN.h5:/loadflow/<var>` (relative
paths; fill value NaN for floats, 0 for integers).""",
    entries=(
        _detail(TIME, "the whole study"),
        _coord("bus", detail="bus names, engine order"),
        _coord("line", detail="line names, engine order"),
        _coord("transformer", detail="transformer names, engine order"),
        PHASE,
        *LOADFLOW,
    ),
)

# ---------------------------------------------------------------------------- stages 3-6
#: stage 3's series, also in the validation kind files
ZONE_SERIES = (
    _var("zones/vmin_pu", "time zone", "float32", "1",
         "minimum voltage of the feeder's buses on the phase"),
    _var("zones/pflow_kva", "time zone", "float32", "kVA",
         "supply-cable flow on the phase, + import"),
    _var("zones/n_overloaded", "time zone", "int32", "1", "feeder lines over their rating"),
    _var("zones/busbar_v_pu", "time phase", "float32", "1", "LV busbar voltage"),
    _var("zones/s_tx_kva", "time", "float32", "kVA", "transformer flow, + import"),
    _var("zones/converged", "time", "uint8", "1", "power flow converged"),
)

ZONES = FileSchema(
    key="zones", title="`zones/<net>/<case>.h5`", level=3, path_pattern="zones/<net>/<case>.h5",
    attributes_text="Attributes: `network`, `case`, fingerprint.",
    entries=(
        TIME,
        _detail(ZONE, "zone ids `F<feeder>P<phase>`, feeder-major"),
        PHASE,
        *ZONE_SERIES,
        _var("zones/customers", "zone", "int64", "1", "customers in the zone",
             " (three-phase customers count in each phase)"),
    ),
)

LIMITS = FileSchema(
    key="limits", title="`headroom/<net>/limits.h5`", level=3,
    path_pattern="headroom/<net>/limits.h5",
    attributes_text="Attributes: `network`, `v_lim_pu`, fingerprint.",
    entries=(
        ZONE,
        _var("limits/slope_pu_per_kva", "zone", "float64", "1/kVA",
             "least-squares slope of Vmin vs Pflow", " [p.u./kVA]"),
        _var("limits/intercept_pu", "zone", "float64", "1", "least-squares intercept",
             " [p.u.]"),
        _var("limits/limit_kva", "zone", "float64", "kVA",
             "voltage-constrained flow limit (NaN: none)"),
        _var("limits/rule", "zone", "str", "", "rule that set the limit",
             ": `fit`, `fallback`, `observed`, `nofit_observed`, `nofit_max`, `no_data`, "
             "`no_customers`"),
        _var("limits/share_below", "zone", "float64", "1",
             "share of points below V_lim at flows up to the limit"),
        _var("limits/n_points", "zone", "int64", "1", "converged points used"),
    ),
)

#: stage 5's series, also in the validation kind files
HEADROOM_SERIES = (
    _var("headroom/rate_kva", "time zone", "float32", "kVA",
         "min(thermal rate, voltage limit) per phase",
         "; the voltage limit of `headroom/<net>/limits.h5` (stage 4)"),
    _var("headroom/headroom_kva", "time zone", "float32", "kVA",
         "spare import capacity (rate - Pflow, transformer share)",
         "; the transformer share by water-filling; NaN at non-converged steps"),
    _var("headroom/footroom_kva", "time zone", "float32", "kVA",
         "spare export capacity (rate + Pflow)", "; NaN at non-converged steps"),
    _var("headroom/binding", "time zone", "S1", "",
         "binding constraint: c cable, v voltage, t transformer"),
    _var("headroom/tx_headroom_kva", "time", "float32", "kVA", "transformer rating - import"),
)

HEADROOM = FileSchema(
    key="headroom", title="`headroom/<net>/<case>.h5`", level=3,
    path_pattern="headroom/<net>/<case>.h5",
    attributes_text="""\
Attributes: `network`, `case`, fingerprint. Coordinates `time`, `zone`, `phase` as in the zones
file.""",
    entries=(TIME, ZONE, PHASE, *HEADROOM_SERIES),
)

HOSTING = FileSchema(
    key="hosting", title="`hosting/<net>.h5`", level=3, path_pattern="hosting/<net>.h5",
    attributes_text="Attributes: `network`, `quantile`, fingerprint.",
    entries=(
        _coord("case", detail="case names, config order"),
        _coord("step", "int64", "min", description="minute of the day at the step's start",
               detail="; the steps of the daily profiles (units `min`, not a CF time, so "
               "xarray leaves it an integer)"),
        ZONE,
        _var("hosting/headroom_q_kva", "case step zone", "float64", "kVA",
             "q-quantile headroom at each time of day",
             " over the days of every sample of the case (pooled); -inf where collapse (NaN "
             "ranked as -inf) reaches the quantile"),
        _var("hosting/footroom_q_kva", "case step zone", "float64", "kVA",
             "q-quantile footroom at each time of day", " (same rule)"),
        _var("hosting/energy_kwh", "case zone", "float64", "kWh", "daily headroom energy",
             " (-inf with a -inf step)"),
        _var("hosting/case_index", "zone", "int64", "1", "assigned case (index)",
             "; indexes `/case`"),
        _var("hosting/v2g", "zone", "uint8", "1", "relies on V2G (120 kWh rule)"),
        _var("hosting/rule", "zone", "str", "", "HP case rule",
             ": `all_ok`, `best_ok`, `v2g`, `none`"),
        _var("hosting/evs_estimate", "zone", "int64", "1",
             "EV estimate from the daily energy: the start of the stage-7 search",
             " (the answer is stage 7's `n_evs`)"),
        _var("hosting/customers", "zone", "int64", "1", "customers in the zone"),
        _var("hosting/collapse_steps", "case", "int64", "1",
             "steps without a power-flow solution (voltage collapse)",
             ", summed over the case's samples"),
        _coord("sample", "int64", detail="planning samples 0..S-1; only with `cases.samples` "
               "S > 1, as are the two `sample_` variables"),
        _var("hosting/sample_evs_estimate", "sample zone", "int64", "1",
             "EV estimate of the plan made from one sample alone",
             " (the spread of the pooled `evs_estimate`)"),
        _var("hosting/sample_case_index", "sample zone", "int64", "1",
             "HP case of the plan made from one sample alone", "; indexes `/case`"),
        Table("hosting/customers_final", "customer",
              "the inputs customers columns taken from each zone's assigned case, plus "
              "`assigned_case` str"),
        Table("hosting/summary", "zone",
              "`zone` str, `customers` int64, `case` str, `rule` str, `v2g` bool, `binding` "
              "str, `worst_headroom_kva` float64 [kVA], `worst_time` str (`HH:MM`), "
              "`energy_kwh` float64 [kWh], `evs_estimate` int64, `hps` int64; with samples "
              "also `case_min`, `case_median`, `case_max` str (after `case`), `evs_min` "
              "int64, `evs_median` float64, `evs_max` int64 (after `evs_estimate`) and "
              "`hp_cases` str ([samples.md](samples.md#stages))"),
    ),
    notes="""\
`hosting/<net>_summary.csv` (written atomically): stage 6 writes the same summary table; stage
7 (one process or MPI world over every zone) and every stage-8 analysis rewrite it with stage
7's answer (`hosting_answer`): `evs_hosted` (nullable integer, empty where the zone file is
missing or stale) right after `evs_estimate`, then `confirmed` bool, `searched` str (`up`,
`down`, `none`), `v2g_requested_kwh`, `v2g_delivered_kwh` float64 [kWh]
([ev.md](ev.md#the-answer-evs-hosted-beside-the-estimate)).""",
)

# ---------------------------------------------------------------------------- stage 7
EV_ZONE = FileSchema(
    key="ev", title="`ev/<net>/<zone>.h5`", level=2, path_pattern="ev/<net>/<zone>.h5",
    attributes_text="""\
Attributes: `network`, `zone`, `n_start` (int64, the estimate the search started from),
`n_evs` (int64, EVs hosted: the answer), `confirmed` (int64 0/1), `direction` (str: `up`,
`down`, `none`), `stop_reason` (str: `cap`, `refuted`, `undecided`, `confirmed`, `zero`,
`no_headroom`, `max_attempts`; [ev.md](ev.md#attempts-search-run_attempts-search_hosting)),
`customers`, `n_max` (int64, most EVs tried), `v2g_requested_kwh`, `v2g_delivered_kwh`
(float64 [kWh], V2G energy of the negative headroom and the part the schedule covers),
`wall_s` (float64 [s], the zone's search time: the measured cost that balances the next
split, [ev.md](ev.md#zones-split-and-inputs)),
fingerprint (key: the stage 3-6 key, `[ev]`, network index, session tables, zone, its caps).""",
    entries=(
        _detail(HORIZON_STEP, ": 720, 730, ..., 710 for 10-minute steps"),
        Table("evcharging/attempts", "attempt",
              "`attempt` int64, `seed` str (generator entropy, e.g. `[1, 0, 3, 7]`), `n` int64, "
              "`status` str (solver status of the last solve: `feasible`, `infeasible`, "
              "`solution_limit`, `time_limit`, ...), `verdict` str (`feasible`, `infeasible`, "
              "`unknown`), `feasible` bool, `retried` bool (rerun with doubled limits), "
              "`objective_p` float64 [p] (cost of the schedule found, not optimised), "
              "`mip_gap` float64 (NaN for feasibility solves), `solve_time_s` float64 [s] "
              "(retry included), `successes` int64"),
        _coord("ev", detail="EV names `ev0000`, ... (only with a final fleet)"),
        Table("evcharging/fleet", "ev",
              "`name` str, `t_in` int64 [step, inclusive], `t_out` int64 [step, exclusive], "
              "`e_start_kwh`, `e_end_kwh`, `battery_kwh` float64 [kWh], `charger_kw` float64 "
              "[kW]"),
        _var("evcharging/charge_kw", "ev step", "float32", "kW", "charging power"),
        _var("evcharging/discharge_kw", "ev step", "float32", "kW", "V2G discharge power"),
    ),
    notes="""\
With a final fleet, the group `/evcharging` also has the attributes `objective_p` [p],
`mip_gap`, `solve_time_s` [s] and `status` of its schedule (the kept fleet solved to
optimality). A zone that ends with 0 EVs has only `/step` and the attempts table.""",
)

# ---------------------------------------------------------------------------- stage 8
VALIDATION_INPUTS = FileSchema(
    key="validation_inputs", title="`validation/inputs/<net>/<kind>.h5`", level=3,
    path_pattern="validation/inputs/<net>/<kind>.h5",
    attributes_text="""\
Attributes: `network`, `case` and `kind` (both the kind: `none`, `smart` or `dumb`),
fingerprint (key: the network's stage-7 key, the kind, a hash of the caps), `stage`
(`validate-inputs`).""",
    entries=(
        TIME,
        _coord("customer", detail="load names"),
        ZONE,
        Table("inputs/customers", "customer",
              "the final customers table (`hosting/.../customers_final` columns incl. "
              "`assigned_case`) plus `ev` str (EV name or `\"\"`; `;`-joined names where a "
              "three-phase customer takes EVs of several zones) and `ev_zone` str"),
        _var("inputs/demand_kw", "time customer", "float32", "kW",
             "demand incl. heat pump of the assigned case, PF load_pf"),
        _var("inputs/pv_kw", "time customer", "float32", "kW",
             "PV output of the assigned case, PF 1"),
        _var("inputs/ev_kw", "time customer", "float32", "kW",
             "{kind} EV demand (negative: V2G export), PF ev_pf"),
        _var("inputs/v2g_discharge_kw", "time zone", "float32", "kW",
             "V2G discharge asked for by the schedule, summed over the zone's EVs"),
    ),
)

_FLAG = "any {} violation at the step"
VALIDATION_KIND = FileSchema(
    key="validation_kind", title="`validation/<net>/<kind>.h5`", level=3,
    path_pattern="validation/<net>/<kind>.h5",
    attributes_text="""\
Attributes: `network`, `case` (the kind), `stage` (`validate`), fingerprint (key
`Fingerprints.validation`: the three kinds' stitched keys and `[validate]`). Coordinates
`time`, `zone`, `phase`, `bus`, `line`. The `/zones` and `/headroom` groups have the datasets
of the stage-3 and stage-5 files above (here without `/zones/customers`); `/headroom` uses the
stage-4 limits, not refitted.""",
    entries=(
        TIME, ZONE, PHASE,
        _coord("bus", detail="bus names, engine order"),
        _coord("line", detail="line names, engine order"),
        *ZONE_SERIES,
        *HEADROOM_SERIES,
        _var("ev/net_kw", "time zone", "float32", "kW",
             "zone's net EV power (+ charging, - V2G export)"),
        _var("ev/v2g_discharge_kw", "time zone", "float32", "kW",
             "V2G discharge asked for by the schedule"),
        _var("flags/thermal", "time", "uint8", "1", _FLAG.format("thermal")),
        _var("flags/undervoltage", "time", "uint8", "1", _FLAG.format("undervoltage")),
        _var("flags/transformer", "time", "uint8", "1", _FLAG.format("transformer")),
        _var("flags/collapse", "time", "uint8", "1", _FLAG.format("collapse"),
             ": no power-flow solution (also set in `thermal`, `undervoltage`, `transformer`)"),
        _var("flags/any", "time", "uint8", "1", "any violation at the step",
             " (thermal, undervoltage or transformer, so collapse too)"),
        _var("flags/vmin_customer_pu", "time", "float32", "1", "lowest customer voltage",
             " [p.u.]"),
        _var("flags/vmin_bus_pu", "time", "float32", "1", "lowest bus voltage", " [p.u.]"),
        _var("flags/line_loading_max", "time", "float32", "1", "highest line I/rating"),
        _var("flags/tx_loading_max", "time", "float32", "1", "highest transformer |S|/rating"),
        _var("map/bus_vmin_pu", "bus", "float32", "1", "lowest voltage over phases, time",
             " (converged steps) [p.u.]"),
        _var("map/line_loading_max", "line", "float32", "1", "highest I/rating",
             " (converged steps)"),
        _var("map/line_over_steps", "line", "int64", "1", "steps over the rating",
             " (converged steps)"),
    ),
    notes="""\
`/flags` covers every step; a collapsed step is flagged in every kind. The `vmin_*` and
`*_loading_max` values of a collapsed step are those of the engine's last iteration; mask with
`/zones/converged`.""",
)

_ADDED = ("smart charging adds a {} violation to the no-EV baseline at the step, in the zone")
_PROOF = " ([validation.md](validation.md#the-proof))"
VALIDATION_REPORT = FileSchema(
    key="validation_report", title="`validation/<net>/report.h5`", level=3,
    path_pattern="validation/<net>/report.h5",
    attributes_text="""\
Attributes: `network`, `v_min_pu`, `tx_overload_factor`, `stage` (`validate`), fingerprint
(as the kind files). Coordinates `/time`, `/zone`. The group `/report` has the attribute
`proved` (int64, 1: smart charging adds no violation to the no-EV baseline), the tables
below (definitions in [validation.md](validation.md#metrics-validationmetricspy)), and
`/added` the added-violation flags:""",
    entries=(
        Table("report/summary", "one per kind (none, smart, dumb)",
              "`network` str, `kind` str, `evs` int64, `pct_thermal`, `pct_undervoltage`, "
              "`pct_tx_overload`, `pct_collapse`, `pct_any` float64 [%] (of all steps), "
              "`v_min_customer_pu` float64 [p.u.], `max_line_loading_pct` float64 [%], "
              "`v2g_requests` int64, `v2g_fulfilled_pct` float64 [%], "
              "`headroom_before_min_kva`, `headroom_after_min_kva`, "
              "`headroom_before_mean_kva`, `headroom_after_mean_kva` float64 [kVA], "
              "`negative_headroom_before_pct`, `negative_headroom_after_pct` float64 [%], "
              "`ev_energy_kwh` float64 [kWh], `ev_peak_kw` float64 [kW], `steps` int64, "
              "`nonconverged` int64"),
        Table("report/zones", "one per (kind, zone with customers)",
              "`zone` str, `kind` str, `customers` int64, `ev_energy_kwh_per_day` float64 "
              "[kWh/day], `headroom_before_min_kva`, `headroom_after_min_kva` float64 [kVA], "
              "`negative_headroom_after_pct` float64 [%], `overloaded_steps` int64, "
              "`v2g_requests` int64, `v2g_fulfilled_pct` float64 [%]"),
        Table("report/proof",
              "one per (violation kind, zone) where smart adds violations; empty: proved",
              "`network` str, `violation` str (`thermal`, `undervoltage`, `transformer`, "
              "`collapse`), `zone` str (zone id, or `network` for transformer and collapse), "
              "`steps` int64, `first`, `last` str (ISO 8601 times); the added violation "
              "furthest past its limit: `worst_element` str (customer load, line or "
              "transformer name), `worst_time` str, `worst_smart`, `worst_baseline` float64 "
              "(its value with smart charging and without EVs: [p.u.] for undervoltage, [% of "
              "rating] for thermal and transformer; NaN and \"\" for collapse)"),
        Table("report/within_tolerance",
              "one per (violation kind, zone) where smart passes a limit the baseline keeps, "
              "by no more than `validate.proof_tolerance` (not counted by the proof)",
              "the columns of `/report/proof`; the worst values are the crossing furthest "
              "past the limit itself"),
        TIME,
        ZONE,
        # the text of ``undervoltage`` keeps the article the files have always carried
        *(_var(f"added/{kind}", "time zone", "uint8", "1", _ADDED.format(kind), _PROOF)
          for kind in ("thermal", "undervoltage", "transformer", "collapse")),
    ),
    notes="""\
`validation/report.csv`: the `/report/summary` rows of every network, same columns.
`validation/proof.csv`: the `/report/proof` rows of every network, same columns (header only
when every network is proved).""",
    tables_apart=True,
)

# ---------------------------------------------------------------------------- replan
REPLAN = FileSchema(
    key="replan", title="`replan/<net>.h5`", level=3, path_pattern="replan/<net>.h5",
    attributes_text="""\
Written by `python -m agileflex_hpc.replan` and the `run` loop
([validation.md](validation.md#the-plan-validate-loop-replanpy)). Attributes: provenance
(no fingerprint), `network`, `round` (int64, the round the caps are for; 1 = the first
plan), `base` (str, the fingerprint of what stage 7 plans from and of the validation settings:
the caps count only while it matches), `cut` (float64, `validate.replan_cut`).""",
    entries=(
        _coord("direction", detail="`import`, `charge`, `discharge`"),
        ZONE,
        HORIZON_STEP,
        _var("replan/cap_kw", "direction zone step", "float64", "kW",
             "caps of the zone's EV power on the noon-to-noon horizon (NaN: none)",
             ": `[0]` its net import, `[1]` the charging and `[2]` the V2G discharge of all "
             "its EVs together"),
        Table("replan/history", "row",
              "one row per (round, zone with customers): `round` int64, `network` str, `zone` "
              "str, `violations` str (kinds added, `;`-joined, `\"\"` for none), `steps` int64 "
              "(added steps), `evs_hosted` int64, `replanned` bool, `cap_min_kw`, "
              "`export_cap_min_kw` float64 [kW] (lowest net import or charge cap, lowest "
              "discharge cap, after the round; NaN: none)"),
    ),
    notes="`replan/rounds.csv`: the history tables of every network, same columns.",
)

#: every file kind, by key
FILES: dict[str, FileSchema] = {fs.key: fs for fs in (
    MANIFEST, INPUTS, BLOCK, STITCHED, ZONES, LIMITS, HEADROOM, HOSTING, EV_ZONE,
    VALIDATION_INPUTS, VALIDATION_KIND, VALIDATION_REPORT, REPLAN)}

# ---------------------------------------------------------------------------- docs/schema.md
_INTRO = """\
# HDF5 schema of a run

<!-- generated by `python -m agileflex_hpc.schema > docs/schema.md` from
agileflex_hpc/schema.py: edit that file, not this one -->

Every result of a job lands under `<run.root>/<run.name>/` (`Data/<run>/`). This page lists
every file type, group and dataset as the code writes them: it is generated from the registry
in `agileflex_hpc/schema.py`, from which the stage writers take their dims, units and
descriptions, and `tests/test_schema.py` checks every file of a short demo run against it.
Shapes use the dimension names; `n_*` counts come from the network and config.

```
Data/<run>/
  networks/<net>/network.h5              manifest: buses, lines, ratings, feeders, customers
  networks/<net>/dss_seed<seed>/*.dss, *.txt, *.csv   embedded default network only (inputs.md)
  inputs/<net>/<case>.h5                 stage 1: customers table, demand and PV per customer
  raw/<net>/<case>/block_NNNNN.h5        stage 2: one work item (5-digit block number)
  raw/<net>/<case>.h5                    stage 2: virtual datasets over the blocks
  zones/<net>/<case>.h5                  stage 3
  headroom/<net>/limits.h5               stage 4
  headroom/<net>/<case>.h5               stage 5
  hosting/<net>.h5, hosting/<net>_summary.csv   stage 6
  ev/<net>/<zone>.h5                     stage 7
  ev/costs.csv                           stage 7 split weights: measured seconds per zone
  validation/inputs/<net>/<kind>.h5      stage 8 inputs (kind: none, smart, dumb)
  validation/raw/<net>/<kind>/block_NNNNN.h5, validation/raw/<net>/<kind>.h5   stage 8 flows
  validation/<net>/<kind>.h5, validation/<net>/report.h5   stage 8 results
  validation/report.csv, validation/proof.csv               stage 8 tables of every network
  replan/<net>.h5, replan/rounds.csv     plan-validate loop: EV import/export caps and round history
  report/index.html, report/<net>/*.png  report
```"""

_CONVENTIONS = f"""\
## Conventions

* **Coordinates** are 1-D datasets at the file root, made HDF5 dimension scales and attached
  to every dataset axis of the same name and length: `time`, `bus`, `line`, `phase`,
  `transformer`, `customer`, `zone`, `case`, `step`, `ev`, `xy` (the manifest's `bus_xy`),
  `direction` (the replan caps). `time` is int64 with
  `units = "{TIME_UNITS}"`: step starts on
  the study's naive local clock (GMT, no daylight saving). `phase` is int8 `[1, 2, 3]`.
  Name coordinates are variable-length UTF-8 strings (`str` below).
* **Data variables** carry the attributes `units`, `dims` (JSON list) and `description`.
  `units = "1"` is dimensionless (p.u. voltages, counts, flags); `""` for strings and codes.
  Booleans are stored as uint8 0/1 in data variables (the manifest's `line_is_supply` and
  table columns use h5py's bool). The description column below is the `description`
  attribute, followed by details the attribute leaves out.
* **Tables** (`h5io.write_table`, read back with `h5io.read_table` as a DataFrame) are a group
  with attribute `columns` (JSON list, column order), a dimension scale `row` (row numbers)
  and one 1-D dataset per column attached to it, without `units`/`dims`/`description`; units
  are given below.
* **Storage**: time series are chunked along time (about 2 MiB per chunk, whole along the
  other axes) and gzip level 4 with shuffle; load-flow block files follow
  `loadflow.compression` (default `none`: contiguous, uncompressed; `lzf` and `gzip` are
  chunked along time); small per-zone arrays of the
  manifest, limits and hosting files are contiguous.
* **Atomicity and completeness**: every file (HDF5, CSV, PNG, HTML) is written to an
  exclusively created `<name>.<host>.<pid>.<random>.tmp`, synced and renamed
  (`h5io.atomic_path`); the root attribute `complete = 1` is written last. Readers (`status`,
  restart checks) treat a file without it as incomplete. Temporary files of dead writers on
  the same host are removed before each write and at the start of every stage.
* **Fingerprints**: every result HDF5 file except `replan/<net>.h5` carries `fingerprint`
  (sha256 of its key) and `fingerprint_key` (JSON: input file sha256s, parsed config
  sections, seed, identity, code and engine versions;
  [index.md](index.md#fingerprints-never-stale-fingerprintpy)). Stages reuse a file only when
  its fingerprint is the one the current config and input files give it, and refuse a stale
  upstream file with a `StaleError` naming it and what changed.
* Reading with xarray: every file opens with `xarray.open_datatree(path, engine="h5netcdf")`
  and every group with `xarray.open_dataset(path, engine="h5netcdf", group=G)`, with named
  dimensions (`tests/test_xarray_outputs.py` opens every file of a demo run); block files
  keep their dims in the `dims` attribute only (unattached, for write speed).
  `agileflex_hpc.h5io.open_dataset(path, group)` also attaches the root coordinates (time
  decoded)."""

def _row(cells: tuple[str, ...]) -> str:
    """One line of a markdown table (``|`` in the cells escaped, empty cells ``| |``)."""
    return "|" + "|".join(" " + c.replace("|", r"\|") + " " if c else " " for c in cells) + "|"


def _grid(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A markdown table."""
    return "\n".join([_row(header), "|" + "---|" * len(header), *map(_row, rows)])


#: root attributes of every HDF5 file: (attribute, type, content)
PROVENANCE: tuple[tuple[str, str, str], ...] = (
    ("`schema_version`", "str", f'`"{h5io.SCHEMA_VERSION}"`'),
    ("`version`", "str", "package version (`agileflex_hpc.__version__`)"),
    ("`git_commit`", "str", "`git rev-parse HEAD` of the package's checkout, `\"\"` if none"),
    ("`created_utc`", "str", "ISO 8601, UTC, seconds"),
    ("`opendss_version`", "str", "DSS C-API / OpenDSS version string"),
    ("`versions`", "str", "JSON: `python` and the installed versions of `numpy`, `h5py`, "
     "`opendssdirect.py`, `dss-python`, `highspy`, `mpi4py`, `scipy`"),
    ("`slurm_job_id`, `array_task_id`", "str",
     "`SLURM_JOB_ID`, `SLURM_ARRAY_TASK_ID` of the writer, `\"\"` outside SLURM"),
    ("`mpi_size`", "int", "MPI world size of the writer (1 without MPI)"),
    ("`host`", "str", "writer's host name"),
    ("`config_toml`", "str", "the job TOML text (provenance only: freshness uses `fingerprint`)"),
    ("`config_sha256`", "str", "sha256 of that text"),
    ("`seed`", "int64", "`run.seed`"),
    ("`fingerprint`, `fingerprint_key`", "str",
     "the file's fingerprint and its key (JSON); every result file except `replan/<net>.h5`"),
    ("`complete`", "int64", "1, written last"),
)

def _provenance() -> str:
    return ("### Root provenance attributes (every HDF5 file)\n\n"
            + _grid(("attribute", "type", "content"), list(PROVENANCE))
            + "\n\nFile-specific attributes are listed with each file.")


_STAGES_3_6 = """\
## Stages 3-6: zones, headroom, hosting

All stage 3-6 files of a network share one fingerprint key (`Fingerprints.headroom`: every
case's stitched-file key, `[cases]`, `[headroom]`)."""

_VALIDATION_RAW = """\
### `validation/raw/<net>/<kind>/block_NNNNN.h5` and `validation/raw/<net>/<kind>.h5`

Exactly the stage-2 block and stitched layouts above (fingerprint, `data_sha256`), with
`case` = the kind and `stage = "validate"`."""

_REPORT = """\
## Report

`report/index.html` and
`report/<net>/{quantile_profiles,vmin_vs_flow,ev_headroom,min_voltage,network_map}.png`
([validation.md](validation.md#report-report)); no HDF5."""

#: the page: markdown text and file sections, in order
PAGE: tuple[str | FileSchema, ...] = (
    _INTRO, _CONVENTIONS, _provenance(),
    MANIFEST, INPUTS,
    "## Stage 2: load flows", BLOCK, STITCHED,
    _STAGES_3_6, ZONES, LIMITS, HEADROOM, HOSTING,
    EV_ZONE,
    "## Stage 8: validation", VALIDATION_INPUTS, _VALIDATION_RAW, VALIDATION_KIND,
    VALIDATION_REPORT,
    "## Plan-validate loop", REPLAN,
    _REPORT,
)


def _section(fs: FileSchema) -> str:
    """A file's section: heading, attributes, tables (apart), datasets, notes."""
    parts = [f"{'#' * fs.level} {fs.title}", fs.attributes_text]
    if fs.tables_apart:
        parts.append(_grid(("table", "rows", "columns"),
                           [(f"`/{t.name}/`", t.rows, t.columns) for t in fs.tables]))
    rows = []
    for e in fs.entries:
        if isinstance(e, Variable):
            rows.append((f"`/{e.name}`", f"({', '.join(e.dims)})", e.dtype, e.units, e.doc()))
        elif not fs.tables_apart:
            rows.append((f"`/{e.name}/`", f"table ({e.rows})", "", "", e.columns))
    parts.append(_grid(("dataset", "dims", "dtype", "units", "description"), rows))
    if fs.notes:
        parts.append(fs.notes)
    return "\n\n".join(parts)


def markdown() -> str:
    """The whole of ``docs/schema.md``."""
    return "\n\n".join(_section(p) if isinstance(p, FileSchema) else p for p in PAGE) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
