"""Typed job configuration, loaded from TOML and validated on load.

A job config is one TOML file (see ``jobs/demo.toml``). :func:`load_config` reads it with
:mod:`tomllib`, checks every key and value, and returns a frozen :class:`Config`. All problems
are collected into one :class:`~agileflex_hpc.errors.ConfigError` whose lines name the field
(``time.step_minutes``) and the reason; an unknown key lists the valid keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agileflex_hpc.errors import ConfigError

__all__ = [
    "Config",
    "RunConfig",
    "TimeConfig",
    "NetworkConfig",
    "CasesConfig",
    "ProfilesConfig",
    "LoadflowConfig",
    "HeadroomConfig",
    "EvConfig",
    "ValidateConfig",
    "SlurmConfig",
    "load_config",
    "parse_config",
    "CASE_PATTERN",
    "parse_case",
    "case_key",
    "split_case_key",
]

logger = logging.getLogger(__name__)

CASE_PATTERN = re.compile(r"^(\d{2,3})PV(\d{2,3})HP$")
_SAMPLE_SUFFIX = re.compile(r"_s(\d+)$")
MAX_SAMPLES = 1000
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


def case_key(case: str, sample: int) -> str:
    """The name of one (case, sample): the case itself for sample 0 (so a run of one sample
    keeps the names and files it always had), else ``<case>_s<sample>``, e.g. ``25PV50HP_s3``."""
    return case if sample == 0 else f"{case}_s{int(sample)}"


def split_case_key(key: str) -> tuple[str, int]:
    """Inverse of :func:`case_key`: ``"25PV50HP_s3"`` -> ``("25PV50HP", 3)``."""
    m = _SAMPLE_SUFFIX.search(key) if isinstance(key, str) else None
    return (key, 0) if m is None else (key[:m.start()], int(m.group(1)))


def parse_case(name: str) -> tuple[int, int]:
    """PV and HP percentages of a case name ``XXPVYYHP`` (or of one of its sample keys,
    :func:`case_key`), e.g. ``25PV50HP`` or ``25PV50HP_s3`` -> (25, 50).

    Raises
    ------
    ConfigError
        If the name does not match or a percentage exceeds 100.
    """
    name = split_case_key(name)[0] if isinstance(name, str) else name
    m = CASE_PATTERN.match(name) if isinstance(name, str) else None
    if m is None:
        raise ConfigError(f"case {name!r}: expected 'XXPVYYHP' (PV % and HP % of customers, "
                          "2-3 digits each, e.g. '25PV50HP')")
    pv, hp = int(m.group(1)), int(m.group(2))
    if pv > 100 or hp > 100:
        raise ConfigError(f"case {name!r}: percentages must be within 0..100 (PV {pv}, HP {hp})")
    return pv, hp


def _name_problem(field: str, name: str) -> list[str]:
    """A run or network name must be one plain path component (it names output folders)."""
    if not _NAME_PATTERN.fullmatch(name) or set(name) == {"."}:
        return [f"{field}: {name!r} must be a plain folder name: letters, digits, '_', '.', "
                "'-', not only dots"]
    return []


@dataclass(frozen=True)
class RunConfig:
    """Run identity and output location; outputs go to ``<root>/<name>/``."""

    name: str
    root: Path = Path("Data")  # given: relative to the TOML; omitted: ./Data of the caller
    seed: int = 1
    # share of non-converged steps (voltage collapse) above which stage 2 fails; None: no
    # limit (collapse is a finding, flagged and counted, never fatal unless asked for)
    max_failure_fraction: float | None = None

    def _check(self) -> list[str]:
        errs = []
        errs += _name_problem("run.name", self.name)
        if self.seed < 0:
            errs.append(f"run.seed: {self.seed} must be >= 0")
        limit = self.max_failure_fraction
        if limit is not None and not 0.0 <= limit <= 1.0:
            errs.append("run.max_failure_fraction: must be within [0, 1]")
        return errs


@dataclass(frozen=True)
class TimeConfig:
    """Study period: ``days`` days of ``step_minutes`` steps from ``start`` (local midnight)."""

    start: dt.date
    days: int = 7
    step_minutes: int = 10
    block_steps: int = 144

    @property
    def steps_per_day(self) -> int:
        return 1440 // self.step_minutes

    @property
    def n_steps(self) -> int:
        return self.days * self.steps_per_day

    @property
    def step_hours(self) -> float:
        return self.step_minutes / 60.0

    @property
    def n_blocks(self) -> int:
        return -(-self.n_steps // self.block_steps)

    def _check(self) -> list[str]:
        errs = []
        if self.days < 1:
            errs.append(f"time.days: {self.days} must be >= 1")
        if self.step_minutes < 1 or 1440 % self.step_minutes:
            errs.append(f"time.step_minutes: {self.step_minutes} must divide 1440 (a day)")
        if self.block_steps < 1:
            errs.append(f"time.block_steps: {self.block_steps} must be >= 1")
        return errs


@dataclass(frozen=True)
class NetworkConfig:
    """One network: a folder with an OpenDSS master file, or the embedded default."""

    name: str
    path: Path | None = None  # None: the embedded synthetic default network
    master: str = "Master.dss"
    seed: int = 0  # embedded default only: the generator's seed
    # the rating of lines whose network files give none (no NormAmps on the line or its
    # LineCode) [A]; None: such lines are an error (OpenDSS would silently use 400 A)
    unrated_rating_a: float | None = None
    # steps per work item of this network; None: [time] block_steps. A small feeder solves a
    # day in about the time its block file takes to write: longer blocks amortise the file
    block_steps: int | None = None

    def _check(self) -> list[str]:
        errs = []
        errs += _name_problem("network.name", self.name)
        if self.block_steps is not None and self.block_steps < 1:
            errs.append(f"network[{self.name}].block_steps: {self.block_steps} must be >= 1")
        if self.seed < 0:
            errs.append(f"network[{self.name}].seed: {self.seed} must be >= 0")
        if self.unrated_rating_a is not None and not self.unrated_rating_a > 0:
            errs.append(f"network[{self.name}].unrated_rating_a: {self.unrated_rating_a} must "
                        "be a positive number of amperes")
        if self.path is not None and not (self.path / self.master).is_file():
            errs.append(f"network[{self.name}].path: no {self.master} in {self.path}")
        return errs


@dataclass(frozen=True)
class CasesConfig:
    """Penetration cases ``XXPVYYHP``: XX % of customers with PV, YY % with a heat pump."""

    names: tuple[str, ...] = ("00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP")
    samples: int = 1  # Monte Carlo draws of who gets HP/PV and which profile, per case

    @property
    def keys(self) -> tuple[str, ...]:
        """Every (case, sample) the load flows run, case-major: ``case_key(case, s)``."""
        return tuple(case_key(c, s) for c in self.names for s in range(self.samples))

    def _check(self) -> list[str]:
        errs = []
        if not 1 <= self.samples <= MAX_SAMPLES:
            errs.append(f"cases.samples: must be within 1..{MAX_SAMPLES}")
        if not self.names:
            errs.append("cases.names: needs at least one case")
        for name in self.names:
            try:
                if _SAMPLE_SUFFIX.search(name):
                    raise ConfigError(name)
                parse_case(name)
            except ConfigError:
                errs.append(f"cases.names: {name!r} is not XXPVYYHP with percentages 0-100")
        if len(set(self.names)) != len(self.names):
            twice = sorted({n for n in self.names if self.names.count(n) > 1})
            errs.append(f"cases.names: {', '.join(twice)} listed more than once")
        return errs


@dataclass(frozen=True)
class ProfilesConfig:
    """Where customer demand, heat-pump and PV series come from."""

    source: Literal["synthetic", "enwl", "lcl"] = "synthetic"
    path: Path | None = None  # enwl: folder with the ENWL CSVs; lcl: a smart-meter CSV
    hp_path: Path | None = None  # enwl: heat-pump profiles CSV (default: synthetic HP)
    pv_path: Path | None = None  # enwl: PV profiles CSV (default: synthetic PV)

    def _check(self) -> list[str]:
        errs = []
        if self.source != "synthetic" and self.path is None:
            errs.append(f"profiles.path: required when profiles.source = {self.source!r}")
        for name in ("path", "hp_path", "pv_path"):
            p = getattr(self, name)
            if p is not None and not p.exists():
                errs.append(f"profiles.{name}: {p} does not exist")
        return errs


@dataclass(frozen=True)
class LoadflowConfig:
    """Power-flow settings."""

    tolerance: float = 1e-4  # OpenDSS convergence tolerance [p.u.]
    max_iterations: int = 100
    load_pf: float = 0.95  # power factor of customer demand (lagging)
    ev_pf: float = 0.98  # power factor of EV charging (lagging)
    # block files: "none" writes fastest (gzip costs about half a solve per step and saves
    # ~25 % on power-flow data), "lzf" is a middle way, "gzip" the smallest and most portable
    compression: Literal["none", "lzf", "gzip"] = "none"

    def _check(self) -> list[str]:
        errs = []
        if not 0 < self.tolerance < 1:
            errs.append("loadflow.tolerance: must be within (0, 1)")
        if self.max_iterations < 1:
            errs.append("loadflow.max_iterations: must be >= 1")
        for name in ("load_pf", "ev_pf"):
            if not 0 < getattr(self, name) <= 1:
                errs.append(f"loadflow.{name}: must be within (0, 1]")
        return errs


@dataclass(frozen=True)
class HeadroomConfig:
    """Stages 3-6: voltage limit, headroom and hosting (DESIGN.md defaults)."""

    v_lim_pu: float = 0.94
    fallback_factor: float = 0.6
    thermal_factor: float = 0.9
    v_ll_kv: float = 0.416
    quantile: float = 0.02
    efficiency: float = 0.98
    kwh_per_ev: float = 14.2
    v2g_energy_kwh: float = 120.0

    def _check(self) -> list[str]:
        errs = []
        if not 0 < self.v_lim_pu < 1.2:
            errs.append("headroom.v_lim_pu: must be within (0, 1.2)")
        for name in ("fallback_factor", "thermal_factor", "efficiency"):
            if not 0 < getattr(self, name) <= 1:
                errs.append(f"headroom.{name}: must be within (0, 1]")
        if not 0 <= self.quantile <= 1:
            errs.append("headroom.quantile: must be within [0, 1]")
        for name in ("kwh_per_ev", "v_ll_kv", "v2g_energy_kwh"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                errs.append(f"headroom.{name}: {value} must be a finite number > 0")
        return errs


@dataclass(frozen=True)
class EvConfig:
    """Stage 7: EV fleets and the charging MILP (DESIGN.md defaults)."""

    model: Literal["milp", "lp"] = "milp"
    mip_gap: float = 1e-3
    # deterministic solver limit: branch-and-bound nodes per MILP solve (a solve stopped by it
    # without a proof is retried with twice the nodes, then counts as unknown)
    max_nodes: int = 2000
    # wall-clock safety per solve [s]: hitting it makes the answer machine-dependent, so it
    # is logged and the zone is flagged unconfirmed
    time_limit_s: float = 300.0
    threads: int = 1
    successes_needed: int = 10
    max_attempts: int = 2000  # safety cap on the attempts of one zone (unconfirmed if hit)
    max_evs: int = 0  # most EVs a zone may host (0: its customers)
    v2g: Literal["auto", "always", "never"] = "auto"  # auto: where hosting relies on V2G
    sessions_csv: Path | None = None  # real sessions (name,t_in,t_out,EStart,EEnd) to draw
    vehicles_csv: Path | None = None  # from, with their vehicles (name,capacity(kW),...)
    min_kw: float = 1.38  # 6 A at 230 V
    efficiency: float = 0.95
    footroom_factor: float = 0.7
    v2g_premium: float = 17.5  # [p/kWh] where headroom is negative
    green: float = 0.8  # DUoS [p/kWh] 00:00-06:00
    amber: float = 2.1
    red: float = 10.4  # 06:00-09:00 and 16:00-19:00
    energy: float = 3.2

    def _check(self) -> list[str]:
        errs = []
        if not 0 <= self.mip_gap < 1:
            errs.append("ev.mip_gap: must be within [0, 1)")
        if self.time_limit_s <= 0 or self.threads < 1:
            errs.append("ev.time_limit_s and ev.threads: must be > 0")
        if self.max_nodes < 1 or self.max_attempts < 1:
            errs.append("ev.max_nodes and ev.max_attempts: must be >= 1")
        if self.successes_needed < 1:
            errs.append("ev.successes_needed: must be >= 1")
        if self.max_evs < 0:
            errs.append(f"ev.max_evs: {self.max_evs} must be >= 0 (0: a zone's customers)")
        if not 0 < self.efficiency <= 1:
            errs.append("ev.efficiency: must be within (0, 1]")
        if not (math.isfinite(self.min_kw) and 0 <= self.min_kw <= 3.7):
            errs.append(f"ev.min_kw: {self.min_kw} must be within [0, 3.7] kW (at most the "
                        "smallest charger; 1.38 kW is 6 A at 230 V)")
        if not 0 <= self.footroom_factor <= 1:
            errs.append("ev.footroom_factor: must be within [0, 1]")
        for name in ("v2g_premium", "green", "amber", "red", "energy"):
            if not math.isfinite(getattr(self, name)):
                errs.append(f"ev.{name}: must be a finite price [p/kWh]")
        if (self.sessions_csv is None) != (self.vehicles_csv is None):
            errs.append("ev.sessions_csv and ev.vehicles_csv: give both or neither")
        for name in ("sessions_csv", "vehicles_csv"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                errs.append(f"ev.{name}: {path} does not exist")
        return errs


@dataclass(frozen=True)
class ValidateConfig:
    """Stage 8: validation load flows."""

    v_min_pu: float = 0.9  # statutory minimum (216 V at 240 V nominal)
    tx_overload_factor: float = 1.0  # transformer overload above factor x rating
    max_rounds: int = 5  # plan-validate rounds (1: plan and validate once); stops when proved
    replan_cut: float = 0.5  # share of an unproved zone's EV power cut at offending times
    # the proof counts a violation smart charging adds only where it is past the limit by more
    # than this: p.u. below v_min_pu, a fraction of the rating above a line's or transformer's
    # rating (default: the resolution of the stage-2 flows the plan is made from); crossings
    # within it are listed beside the proof, not counted
    proof_tolerance: float = 1e-4
    # the validation load flows' OpenDSS convergence tolerance [p.u.]: well under the proof's,
    # so that the two flows it compares are each solved far closer than the margin it allows
    tolerance: float = 1e-6
    # the draw the plan is validated on: "fresh" (sample cases.samples, never planned on), or
    # a sample index; default: "fresh" when cases.samples > 1, else 0 (the planning draw)
    sample: Literal["fresh"] | int | None = None

    def _check(self) -> list[str]:
        errs = []
        if not 0 < self.v_min_pu < 1.2:
            errs.append("validate.v_min_pu: must be within (0, 1.2)")
        if not 0 < self.tx_overload_factor < 10:
            errs.append("validate.tx_overload_factor: must be within (0, 10)")
        if self.max_rounds < 1:
            errs.append("validate.max_rounds: must be >= 1")
        if not 0 < self.replan_cut <= 1:
            errs.append("validate.replan_cut: must be within (0, 1]")
        if not 0 <= self.proof_tolerance < 0.1:
            errs.append("validate.proof_tolerance: must be within [0, 0.1)")
        if not 0 < self.tolerance < 1:
            errs.append("validate.tolerance: must be within (0, 1)")
        if isinstance(self.sample, int) and not 0 <= self.sample <= MAX_SAMPLES:
            errs.append(f"validate.sample: a sample index must be within 0..{MAX_SAMPLES}")
        return errs


@dataclass(frozen=True)
class SlurmConfig:
    """Defaults used by ``slurm/pipeline.sh`` (command-line flags override)."""

    workers: int = 4  # array tasks per array stage
    max_parallel: int = 0  # 0: no limit (the %N of --array)

    def _check(self) -> list[str]:
        errs = [] if self.workers >= 1 else ["slurm.workers: must be >= 1"]
        if self.max_parallel < 0:
            errs.append(f"slurm.max_parallel: {self.max_parallel} must be >= 0 (0: no limit)")
        return errs


@dataclass(frozen=True)
class Config:
    """A whole job: every section, plus the TOML text and where it came from."""

    run: RunConfig
    time: TimeConfig
    networks: tuple[NetworkConfig, ...]
    cases: CasesConfig = field(default_factory=CasesConfig)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    loadflow: LoadflowConfig = field(default_factory=LoadflowConfig)
    headroom: HeadroomConfig = field(default_factory=HeadroomConfig)
    ev: EvConfig = field(default_factory=EvConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    source: Path | None = None
    toml_text: str = ""

    @property
    def out_dir(self) -> Path:
        """``<root>/<name>``: where every stage writes."""
        return self.run.root / self.run.name

    @property
    def sha256(self) -> str:
        """Hash of the TOML text, stored as provenance in every output file."""
        return hashlib.sha256(self.toml_text.encode()).hexdigest()

    @property
    def fresh_validation(self) -> bool:
        """Stage 8 validates on fresh draws (``validate.sample = "fresh"``, the default when
        ``cases.samples > 1``): see :attr:`validation_sample`."""
        chosen = self.validate.sample
        return chosen == "fresh" or (chosen is None and self.cases.samples > 1)

    def validation_draw(self, round_: int = 1) -> int:
        """The sample stage 8 validates the plan of round ``round_`` of the plan-validate loop
        on (``validate.sample``). Fresh: ``cases.samples + round_ - 1``, a draw no stage
        planned on (round r's caps come from round r's draw, so round r + 1 needs another);
        else the index given in every round, or 0 (the one planning draw)."""
        if self.fresh_validation:
            return self.cases.samples + round_ - 1
        return int(self.validate.sample or 0)

    @property
    def validation_sample(self) -> int:
        """The sample stage 8 validates the first plan on: :meth:`validation_draw` (1)."""
        return self.validation_draw(1)

    def network(self, name: str) -> NetworkConfig:
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)

    def block_steps(self, name: str) -> int:
        """Steps per block (work item) of network ``name``: its own ``block_steps``, else
        ``[time] block_steps``."""
        return self.network(name).block_steps or self.time.block_steps


_SECTIONS: dict[str, type] = {
    "run": RunConfig,
    "time": TimeConfig,
    "cases": CasesConfig,
    "profiles": ProfilesConfig,
    "loadflow": LoadflowConfig,
    "headroom": HeadroomConfig,
    "ev": EvConfig,
    "validate": ValidateConfig,
    "slurm": SlurmConfig,
}


def load_config(path: str | Path) -> Config:
    """Read and validate a job TOML file; relative paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}): save the job as "
                          "UTF-8") from None
    return parse_config(text, base_dir=path.resolve().parent, source=path)


def parse_config(text: str, *, base_dir: Path, source: Path | None = None) -> Config:
    """Parse and validate TOML text; every problem is reported at once."""
    where = str(source) if source else "<string>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=where) from None
    errs: list[str] = []
    valid = sorted([*_SECTIONS, "network"])
    for key in raw:
        if key not in _SECTIONS and key != "network":
            errs.append(f"{key}: unknown section; valid sections: {', '.join(valid)}")
    sections: dict[str, Any] = {}
    for key, cls in _SECTIONS.items():
        table = raw.get(key, {})
        if key in ("run", "time") and key not in raw:
            errs.append(f"{key}: required section is missing")
            continue
        sections[key] = _build(cls, key, table, base_dir, errs)
    networks = _build_networks(raw.get("network"), base_dir, errs)
    if sections.get("run") is not None and "root" not in raw.get("run", {}):
        # the default data root is Data/ under the directory the job is started from
        sections["run"] = dataclasses.replace(sections["run"], root=Path.cwd() / "Data")
    for obj in [*sections.values(), *networks]:
        if obj is not None:
            errs.extend(obj._check())
    if errs:
        raise ConfigError(errs, source=where)
    return Config(networks=tuple(networks), source=source, toml_text=text, **sections)


def _build_networks(raw: Any, base_dir: Path, errs: list[str]) -> list[NetworkConfig]:
    if raw is None:
        errs.append("network: at least one [[network]] table is required")
        return []
    if not isinstance(raw, list):
        errs.append("network: must be an array of tables ([[network]])")
        return []
    nets = [_build(NetworkConfig, f"network[{i}]", t, base_dir, errs) for i, t in enumerate(raw)]
    for net, table in zip(nets, raw):  # a table other errors stopped: its name is checked too
        if net is None and isinstance(table, dict) and isinstance(table.get("name"), str):
            errs += _name_problem("network.name", table["name"])
    nets = [n for n in nets if n is not None]
    names = [n.name for n in nets]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        errs.append(f"network.name: {dup!r} is used by more than one network")
    return nets


def _build(cls: type, where: str, table: Any, base_dir: Path, errs: list[str]) -> Any:
    """Make a section dataclass from a TOML table, type-checking every field."""
    if not isinstance(table, dict):
        errs.append(f"{where}: must be a table")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    n_errs = len(errs)
    for key, value in table.items():
        if key not in fields:
            errs.append(f"{where}.{key}: unknown key; valid keys: {', '.join(fields)}")
            continue
        ok, converted = _convert(hints[key], value, base_dir)
        if not ok:
            errs.append(f"{where}.{key}: {_toml(value)} is not {_describe(hints[key])}")
        else:
            kwargs[key] = converted
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in table:
            errs.append(f"{where}.{name}: required key is missing")
    if len(errs) > n_errs:
        return None
    return cls(**kwargs)


def _convert(hint: Any, value: Any, base_dir: Path) -> tuple[bool, Any]:
    """Check ``value`` against a type hint and convert it (paths, dates, tuples)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is not type(None):
                ok, converted = _convert(arg, value, base_dir)
                if ok:
                    return ok, converted
        return False, None
    if origin is Literal:
        return value in typing.get_args(hint), value
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list):
            return False, None
        items = [_convert(item, v, base_dir) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if hint is Path:
        ok = isinstance(value, str)
        return ok, (base_dir / value).resolve() if ok else None
    if hint is dt.date:
        return _convert_date(value)
    if hint is float:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value))
        return ok, float(value) if ok else None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, hint), value


def _convert_date(value: Any) -> tuple[bool, Any]:
    if isinstance(value, dt.datetime):
        return False, None
    if isinstance(value, dt.date):
        return True, value
    if isinstance(value, str):
        try:
            return True, dt.date.fromisoformat(value)
        except ValueError:
            return False, None
    return False, None


def _toml(value: Any) -> str:
    """A TOML value as the job file spells it (``true``, ``"text"``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return repr(value)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(_toml(a) for a in typing.get_args(hint))
    names = {Path: "a path string", dt.date: "a date (YYYY-MM-DD)", float: "a finite number",
             int: "an integer", str: "a string", bool: "true or false"}
    if origin is tuple:
        plural = {Path: "path strings", str: "strings", int: "integers", float: "numbers"}
        return f"a list of {plural.get(typing.get_args(hint)[0], 'values')}"
    return names.get(hint, str(hint))
