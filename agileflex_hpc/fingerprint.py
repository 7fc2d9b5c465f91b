"""Content fingerprints: what every output file was computed from (DESIGN: "valid means the
same inputs, by content").

A file's **key** is a flat mapping of everything it depends on, transitively: the bytes
(sha256) of every input file (network files, profile CSVs, EV session tables), the parsed config
sections that matter to it (a comment in the TOML changes nothing), the seed, its identity
(network, case, block, zone, kind) and the code and engine versions. Its **fingerprint** is the
sha256 of the key. Every writer stores both (``fingerprint``, ``fingerprint_key``); every
reader computes the fingerprint the current config and input files give the file and refuses
a file that differs, naming what changed (:func:`require_fresh`). Because keys are computed from
the config and the input files alone, a stage can check its upstream without reading or
rewriting it.

One :class:`Fingerprints` per process and config: file hashes are cached by (path, size,
mtime), so a file is hashed once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from agileflex_hpc import __version__, h5io
from agileflex_hpc.errors import StaleError

if TYPE_CHECKING:
    from agileflex_hpc.config import Config

__all__ = ["Key", "Fingerprints", "digest", "attrs", "explain", "file_sha256", "network_files",
           "require_fresh", "freshness", "stored_key"]

logger = logging.getLogger(__name__)

Key = dict[str, str]

# OpenDSS commands that read another file: Redirect/Compile (scripts), BusCoords (coordinates);
# an argument may be quoted "..", '..', (..) or [..], as OpenDSS's parser allows
_ARG = r"""(?:"([^"]*)"|'([^']*)'|\(([^)]*)\)|\[([^\]]*)\]|([^\s,)\]]+))"""
_FILE_COMMANDS = ("redirect", "compile", "buscoords", "latlongcoords")
_FILE_COMMAND = re.compile(r"^\s*(?:" + "|".join(_FILE_COMMANDS) + r")\s+" + _ARG, re.I)
_FILE_PROPERTY = re.compile(r"\b(?:sng|dbl|csv|pq)?file\s*=\s*" + _ARG, re.I)


def digest(key: Key) -> str:
    """The fingerprint of a key: sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (cached by path, size and modification time)."""
    st = os.stat(path)
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _source_sha256() -> str:
    """sha256 of every module of the package (a code change makes every result stale)."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def network_files(master: Path) -> list[Path]:
    """The master and every file it reads (Redirect/Compile/BusCoords/``file=``), recursively,
    plus ``XY_Position.csv`` beside it (read for bus coordinates); sorted, existing files."""
    master = Path(master).resolve()
    seen: set[Path] = set()
    todo = [master]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        if path.suffix.lower() == ".csv":
            continue
        for ref in _referenced(path):
            for base in (path.parent, master.parent):
                if (base / ref).is_file():
                    todo.append((base / ref).resolve())
                    break
    xy = master.parent / "XY_Position.csv"
    if xy.is_file():
        seen.add(xy.resolve())
    return sorted(seen)


def _referenced(path: Path) -> list[str]:
    """File names an OpenDSS script names in file-reading commands and ``file=`` values."""
    refs = []
    text = path.read_text(errors="replace")
    for line in text.splitlines():
        low = line.lower()
        if "file" not in low and not low.lstrip().startswith(_FILE_COMMANDS):
            continue  # neither pattern can match (most lines: New Line..., New Load...)
        line = re.split(r"!|//", line, maxsplit=1)[0]
        m = _FILE_COMMAND.match(line)
        if m:
            refs.append(next(g for g in m.groups() if g is not None).strip())
        refs += [next(g for g in groups if g).strip() for groups in _FILE_PROPERTY.findall(line)
                 if any(groups)]
    return refs


def _section(obj: object) -> str:
    """Hash of a parsed config section (its dataclass repr: values, not TOML text)."""
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def _files(paths: list[Path], prefix: str) -> Key:
    """``{"<prefix>:<path>": sha256}`` of files; a folder counts as every file in it."""
    out: Key = {}
    for path in paths:
        path = Path(path)
        members = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for p in members:
            out[f"{prefix}:{p.resolve()}"] = file_sha256(p)
    return out


@dataclass
class Fingerprints:
    """Keys of every output file of one job, from its config and input files."""

    cfg: Config
    _cache: dict[tuple[str, ...], Key] = field(default_factory=dict, repr=False)
    _plans: dict[str, tuple[np.ndarray | None, int]] = field(default_factory=dict, repr=False)

    def _memo(self, name: tuple[str, ...], build: Callable[[], Key]) -> Key:
        if name not in self._cache:
            self._cache[name] = build()
        return dict(self._cache[name])

    # ------------------------------------------------------------ stage 1-2
    def code(self) -> Key:
        """The package's source (every module's bytes) and the engine and library versions."""
        from agileflex_hpc.h5io import library_versions
        from agileflex_hpc.network.engine import engine_version

        return {"code": f"agileflex_hpc {__version__} {_source_sha256()[:16]}; OpenDSS "
                        f"{engine_version()}", "libraries": json.dumps(library_versions())}

    def network(self, network: str) -> Key:
        """The compiled network: its files' bytes (or the embedded generator's seed)."""
        def build() -> Key:
            net = self.cfg.network(network)
            # the block length shapes the flows alone (the stitched key holds it)
            entry = dataclasses.replace(net, block_steps=None)
            key = {**self.code(), "network": network, "config:network": _section(entry)}
            if net.path is None:
                key["embedded_seed"] = str(net.seed)
                return key
            files = network_files(Path(net.path) / net.master)
            return {**key, **_files(files, "network_file")}
        return self._memo(("network", network), build)

    def inputs(self, network: str, case: str) -> Key:
        """Stage 1: customers table and demand/PV series of (network, case)."""
        def build() -> Key:
            cfg = self.cfg
            pc = cfg.profiles
            paths = [p for p in (pc.path, pc.hp_path, pc.pv_path) if p is not None]
            return {**self.network(network), "seed": str(cfg.run.seed),
                    "config:time": _section(dataclasses.replace(cfg.time, block_steps=0)),
                    "config:profiles": _section(pc),
                    **_files(paths, "profile_file"), "case": case}
        return self._memo(("inputs", network, case), build)

    def block(self, network: str, case: str, start: int, stop: int) -> Key:
        """Stage 2: one block of load flows."""
        return {**self.inputs(network, case), "config:loadflow": _section(self.cfg.loadflow),
                "steps": f"{start}-{stop}"}

    def stitched(self, network: str, case: str) -> Key:
        """Stage 2: the virtual-dataset file over every block of (network, case). Its flows
        depend on where blocks start (each starts cold), so the key holds the block length;
        a block's own key holds its steps."""
        return {**self.inputs(network, case), "config:loadflow": _section(self.cfg.loadflow),
                "steps": f"0-{self.cfg.time.n_steps}",
                "block_steps": str(self.cfg.block_steps(network))}

    # ------------------------------------------------------------ stages 3-8
    def headroom(self, network: str) -> Key:
        """Stages 3-6 of a network (zones, limits, headroom, hosting): every case's flows."""
        def build() -> Key:
            cfg = self.cfg
            key: Key = {}
            for case in cfg.cases.keys:
                key.update(self.stitched(network, case))
            key.pop("case", None)
            return {**key, "config:cases": _section(cfg.cases),
                    "config:headroom": _section(cfg.headroom)}
        return self._memo(("headroom", network), build)

    def ev(self, network: str) -> Key:
        """What every stage-7 zone file of a network depends on (the zone id aside)."""
        def build() -> Key:
            ev = self.cfg.ev
            paths = [p for p in (ev.sessions_csv, ev.vehicles_csv) if p is not None]
            return {**self.headroom(network), "config:ev": _section(ev),
                    "network_index": str([n.name for n in self.cfg.networks].index(network)),
                    **_files(paths, "session_file")}
        return self._memo(("ev", network), build)

    def _plan(self, network: str) -> tuple[np.ndarray | None, int]:
        """The plan-validate loop's caps of a network (or None) and their round, read once."""
        if network not in self._plans:
            from agileflex_hpc.replan import read_caps

            caps, round_, _ = read_caps(self.cfg, network)
            self._plans[network] = (caps, round_)
        return self._plans[network]

    def _caps(self, network: str) -> np.ndarray | None:
        """The plan-validate loop's import caps of a network (zone, step), or None."""
        return self._plan(network)[0]

    def ev_zone(self, network: str, zone: str) -> Key:
        """Stage 7: one zone's attempts and schedule (with its import cap, if re-planned)."""
        key = {**self.ev(network), "zone": zone}
        caps = self._caps(network)
        if caps is not None:
            from agileflex_hpc.network.topology import zone_position

            row = np.ascontiguousarray(caps[:, zone_position(zone)])
            if np.isfinite(row).any():
                key["ev_caps"] = hashlib.sha256(row.tobytes()).hexdigest()[:16]
        return key

    def validation_inputs(self, network: str, kind: str) -> Key:
        """Stage 8 inputs of (network, kind): the final assignment and every zone's EVs (the
        no-EV baseline, kind ``none``, only the assignment), and the draw validated on."""
        sample = self.cfg.validation_draw(self._plan(network)[1])
        drawn = {} if sample == 0 else {"validation_sample": str(sample)}
        if kind == "none":
            return {**self.headroom(network), "kind": kind, **drawn}
        key = {**self.ev(network), "kind": kind, **drawn}
        caps = self._caps(network)
        if caps is not None:
            key["ev_caps"] = hashlib.sha256(caps.tobytes()).hexdigest()[:16]
        return key

    def validation_block(self, network: str, kind: str, start: int, stop: int) -> Key:
        """Stage 8: one block of validation flows (solved at ``validate.tolerance``)."""
        lf = dataclasses.replace(self.cfg.loadflow, tolerance=self.cfg.validate.tolerance)
        return {**self.validation_inputs(network, kind),
                "config:loadflow": _section(lf), "steps": f"{start}-{stop}"}

    def validation_stitched(self, network: str, kind: str) -> Key:
        return {**self.validation_block(network, kind, 0, self.cfg.time.n_steps),
                "block_steps": str(self.cfg.block_steps(network))}

    def validation(self, network: str) -> Key:
        """Stage 8 analysis of a network (kind files and the report)."""
        from agileflex_hpc.validate.inputs import KINDS

        key: Key = {}
        for kind in KINDS:
            key.update(self.validation_stitched(network, kind))
        key.pop("kind", None)
        vc = self.cfg.validate  # the loop's settings (max_rounds, replan_cut) judge nothing here
        judged = (vc.v_min_pu, vc.tx_overload_factor, vc.proof_tolerance)
        return {**key, "config:validate": _section(judged)}


def stored_key(path: Path) -> Key | None:
    """The key a file was written with, or None (no such attribute)."""
    with h5py.File(path, "r") as f:
        text = f.attrs.get("fingerprint_key")
    if text is None:
        return None
    return json.loads(h5io.attr_text(text))


def freshness(path: Path, key: Key) -> str:
    """``"ok"``, ``"missing"``, ``"incomplete"`` or ``"stale"`` for a result file."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            if int(f.attrs.get("complete", 0)) != 1:
                return "incomplete"
            stored = f.attrs.get("fingerprint")
    except (OSError, KeyError, ValueError):
        return "incomplete"
    return "ok" if h5io.attr_text(stored) == digest(key) else "stale"


def explain(path: Path, key: Key) -> str:
    """What differs between the key a file was written with and ``key`` (one line)."""
    try:
        old = stored_key(path) or {}
    except (OSError, ValueError):
        old = {}
    changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
    if not old:
        return "it carries no fingerprint (written by an older version)"
    parts = []
    for k in changed[:6]:
        kind, _, name = k.partition(":")
        if kind.endswith("_file"):
            what = f"{kind.replace('_', ' ')} {name}"
            parts.append(f"{what} {'changed' if k in old and k in key else 'added or removed'}")
        elif kind == "config":
            parts.append(f"config [{name}] changed")
        elif k == "code":
            parts.append(_code_change(str(old.get(k, "")), str(key.get(k, ""))))
        elif k == "libraries":
            parts.append(_library_change(old.get(k, "{}"), key.get(k, "{}")))
        elif k == "ev_caps":
            parts.append(_caps_change(k in old, k in key))
        else:
            parts.append(f"{k} {old.get(k, '-')!s:.20} -> {key.get(k, '-')!s:.20}")
    more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
    return "; ".join(parts) + more


def _caps_change(had: bool, has: bool) -> str:
    """The plan-validate loop's EV caps, in words."""
    if had and has:
        return "the plan-validate loop's EV caps changed (a later round)"
    if has:
        return "the plan-validate loop has set EV caps since (a later round)"
    return "the plan-validate loop's EV caps are gone (its inputs changed: it starts over)"


def _code_change(old: str, new: str) -> str:
    """``package source 1a2b.. -> 3c4d..`` and/or ``OpenDSS <a> -> <b>``: the parts that differ."""
    (pkg_a, _, dss_a), (pkg_b, _, dss_b) = old.partition("; "), new.partition("; ")
    parts = []
    if pkg_a != pkg_b:
        parts.append(f"package source changed ({pkg_a or '-'} -> {pkg_b or '-'})")
    if dss_a != dss_b:
        parts.append(f"engine changed ({dss_a or '-'} -> {dss_b or '-'})")
    return "; ".join(parts) or "code changed"


def _library_change(old: str, new: str) -> str:
    """``libraries numpy 1.26.4 -> 2.0.0, ...`` from two JSON version maps."""
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return "library versions changed"
    diff = [f"{n} {a.get(n, '-')} -> {b.get(n, '-')}" for n in sorted(set(a) | set(b))
            if a.get(n) != b.get(n)]
    return "libraries " + ", ".join(diff) if diff else "library versions changed"


def require_fresh(path: Path, key: Key, *, producer: str) -> None:
    """Raise :class:`StaleError` unless ``path`` is complete and matches ``key``.

    ``producer`` names the stage to rerun (e.g. ``"loadflow"``).
    """
    state = freshness(path, key)
    if state == "ok":
        return
    if state == "stale":
        raise StaleError(f"{path} is stale: {explain(path, key)}; rerun the {producer} stage "
                         "(python -m agileflex_hpc run CONFIG recomputes what changed)")
    raise StaleError(f"{path} is {state}: run the {producer} stage first")


def attrs(key: Key) -> dict[str, str]:
    """The two attributes a writer stores: the fingerprint and its key (JSON)."""
    return {"fingerprint": digest(key), "fingerprint_key": json.dumps(key, sort_keys=True)}
