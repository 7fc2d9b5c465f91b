"""Where every output of a run lives: one method per row of DESIGN's data layout.

No other module builds an output path; each asks :class:`RunLayout`::

    <run>/networks/<net>/network.h5            manifest (compiled network, topology, zones)
    <run>/inputs/<net>/<case>.h5               stage 1: per-customer injections
    <run>/raw/<net>/<case>/block_NNNNN.h5      stage 2: load-flow blocks
    <run>/raw/<net>/<case>.h5                  stage 2: stitched (gathered) flows
    <run>/zones/<net>/<case>.h5                stage 3: supply-cable flow and Vmin per zone
    <run>/headroom/<net>/limits.h5             stage 4: voltage-constrained flow limits
    <run>/headroom/<net>/<case>.h5             stage 5: headroom / footroom
    <run>/hosting/<net>.h5, <net>_summary.csv  stage 6 (+ stage 7's answer in the CSV)
    <run>/ev/<net>/<zone>.h5                   stage 7: the zone's attempts and schedule
    <run>/validation/inputs|raw/...            stage 8: injections and flows per kind
    <run>/validation/<net>/<kind>.h5, report.h5, report.csv, proof.csv
    <run>/replan/<net>.h5, rounds.csv          the plan-validate loop's caps and rounds
    <run>/report/index.html, <net>/*.png|csv   the report
    <run>/slurm/scripts, submissions.jsonl; <run>/slurm-logs/   SLURM submissions
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agileflex_hpc.config import Config

__all__ = ["RunLayout", "layout"]


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run, below its output folder ``root`` (``cfg.out_dir``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ---- network and stage 1
    def network_dir(self, network: str) -> Path:
        return self.root / "networks" / network

    def manifest(self, network: str) -> Path:
        return self.network_dir(network) / "network.h5"

    @property
    def inputs_dir(self) -> Path:
        return self.root / "inputs"

    def inputs(self, network: str, case: str) -> Path:
        return self.inputs_dir / network / f"{case}.h5"

    # ---- stage 2 (and stage 8's flows, in their own raw folder)
    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @staticmethod
    def block(raw_dir: Path, network: str, case: str, block: int) -> Path:
        return Path(raw_dir) / network / case / f"block_{block:05d}.h5"

    @staticmethod
    def stitched(raw_dir: Path, network: str, case: str) -> Path:
        return Path(raw_dir) / network / f"{case}.h5"

    # ---- stages 3-6
    def zones(self, network: str, case: str) -> Path:
        return self.root / "zones" / network / f"{case}.h5"

    def limits(self, network: str) -> Path:
        return self.root / "headroom" / network / "limits.h5"

    def headroom(self, network: str, case: str) -> Path:
        return self.root / "headroom" / network / f"{case}.h5"

    def hosting(self, network: str) -> Path:
        return self.root / "hosting" / f"{network}.h5"

    def hosting_csv(self, network: str) -> Path:
        return self.root / "hosting" / f"{network}_summary.csv"

    # ---- stage 7
    def ev_zone(self, network: str, zone: str) -> Path:
        return self.root / "ev" / network / f"{zone}.h5"

    def ev_zone_dir(self, network: str) -> Path:
        return self.root / "ev" / network

    @property
    def ev_costs(self) -> Path:
        return self.root / "ev" / "costs.csv"

    # ---- stage 8
    @property
    def validation_dir(self) -> Path:
        return self.root / "validation"

    @property
    def validation_raw_dir(self) -> Path:
        return self.validation_dir / "raw"

    def validation_inputs(self, network: str, kind: str) -> Path:
        return self.validation_dir / "inputs" / network / f"{kind}.h5"

    def validation_kind(self, network: str, kind: str) -> Path:
        return self.validation_dir / network / f"{kind}.h5"

    def validation_report(self, network: str) -> Path:
        return self.validation_dir / network / "report.h5"

    @property
    def validation_csv(self) -> Path:
        return self.validation_dir / "report.csv"

    @property
    def proof_csv(self) -> Path:
        return self.validation_dir / "proof.csv"

    # ---- the plan-validate loop
    def caps(self, network: str) -> Path:
        return self.root / "replan" / f"{network}.h5"

    @property
    def rounds_csv(self) -> Path:
        return self.root / "replan" / "rounds.csv"

    # ---- report
    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_index(self) -> Path:
        return self.report_dir / "index.html"

    def report_network_dir(self, network: str) -> Path:
        return self.report_dir / network

    def report_file(self, name: str, network: str | None = None) -> Path:
        """A figure or table of the report: ``report/<name>`` or ``report/<network>/<name>``."""
        return (self.report_dir if network is None else self.report_network_dir(network)) / name

    # ---- SLURM
    @property
    def slurm_scripts_dir(self) -> Path:
        return self.root / "slurm" / "scripts"

    @property
    def submissions(self) -> Path:
        return self.root / "slurm" / "submissions.jsonl"

    @property
    def slurm_logs_dir(self) -> Path:
        return self.root / "slurm-logs"


def layout(cfg_or_dir: Config | str | os.PathLike[str]) -> RunLayout:
    """The layout of a run, from its config (``cfg.out_dir``) or its output folder."""
    if isinstance(cfg_or_dir, (str, os.PathLike)):
        return RunLayout(Path(cfg_or_dir))
    return RunLayout(Path(cfg_or_dir.out_dir))
