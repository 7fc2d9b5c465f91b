"""PNG figures of a run, per network (matplotlib's Agg canvas; no display, no pyplot state).

Plotting functions take arrays and write one PNG each; :func:`network_plots` reads a run's
files and draws every figure of one network into ``<out>/report/<network>/``:

* ``quantile_profiles.png``  q-quantile headroom (up) and footroom (down, negated) at each time of
  day per zone, assigned case bold, other cases faint (stage 6);
* ``vmin_vs_flow.png``  Vmin against supply-cable flow per zone, all cases, with the stage-4
  line, V_lim and the chosen limit;
* ``ev_headroom.png``  headroom/footroom given to the EV stage against the zone's net EV power,
  smart and dumb, on the noon-to-noon horizon;
* ``min_voltage.png``  lowest bus voltage at each time of day, smart and dumb;
* ``network_map.png``  the network coloured by the worst voltage, smart and dumb side by side,
  overloaded lines marked (only where the manifest has bus coordinates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from agileflex_hpc import h5io
from agileflex_hpc.config import split_case_key
from agileflex_hpc.errors import AgileflexError
from agileflex_hpc.horizon import START_MINUTE, from_midnight
from agileflex_hpc.layout import layout

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from agileflex_hpc.config import Config
    from agileflex_hpc.network.manifest import NetworkManifest

__all__ = ["Plot", "plot_quantile_profiles", "plot_vmin_flow", "plot_ev_headroom",
           "plot_min_voltage", "plot_network_map", "network_plots", "KIND_COLORS"]

logger = logging.getLogger(__name__)

KIND_COLORS = {"none": "tab:gray", "smart": "tab:blue", "dumb": "tab:red"}
_KIND_LABEL = {"none": "no EVs", "smart": "smart charging", "dumb": "uncontrolled charging"}
_DPI = 90
_MAX_POINTS = 20000  # scatter points per zone (deterministic stride above this)


@dataclass(frozen=True)
class Plot:
    """One figure of the report: file (None: skipped), title and a note for the page."""

    key: str
    title: str
    path: Path | None
    note: str = ""


# ------------------------------------------------------------------------ helpers
#: feeders per row of a zone grid: more feeders wrap onto further rows of three phases, so
#: that text stays readable at 24+ zones
_FEEDERS_PER_ROW = 4


def _zone_grid(n_feeders: int, title: str, *, xlabel: str, ylabel: str
               ) -> tuple[Figure, np.ndarray]:
    """Figure with one axes per zone, ``axes[phase, feeder]`` (phases 1-3, feeders from 0);
    feeders beyond :data:`_FEEDERS_PER_ROW` continue on further rows; unused axes hidden."""
    n_feeders = max(n_feeders, 1)
    cols = min(n_feeders, _FEEDERS_PER_ROW)
    blocks = -(-n_feeders // cols)
    fig = Figure(figsize=(max(3.4 * cols, 7.0), 2.5 * 3 * blocks + 1.2), dpi=_DPI,
                 layout="constrained")
    grid = fig.subplots(3 * blocks, cols, squeeze=False, sharex=True)
    axes = np.empty((3, n_feeders), dtype=object)
    for f in range(n_feeders):
        for p in range(3):
            axes[p, f] = grid[(f // cols) * 3 + p, f % cols]
    for ax in grid.flat:
        ax.tick_params(labelsize=9)
    for b in range(blocks):  # hide the axes no feeder uses in the last block
        for c in range(cols):
            if b * cols + c >= n_feeders:
                for p in range(3):
                    grid[b * 3 + p, c].set_visible(False)
    for f in range(n_feeders):  # every block's bottom row: tick labels and the x label
        axes[2, f].tick_params(labelbottom=True)
        axes[2, f].set_xlabel(xlabel, fontsize=9)
    fig.suptitle(title, fontsize=12)
    fig.supylabel(ylabel, fontsize=10)
    return fig, axes


def _zone_title(ax: Axes, text: str) -> None:
    ax.set_title(text, fontsize=9)


def _grid_legend(fig: Figure, axes: np.ndarray) -> None:
    """One legend below the grid, from the first axes that has labelled artists."""
    for ax in axes.flat:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
                       fontsize=9, markerscale=4)
            return


def _zone_axes(axes: np.ndarray, z: int) -> Axes:
    return axes[z % 3, z // 3]


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    with h5io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=_DPI, format="png")
    logger.debug("figure written: %s", path)
    return path


def _hours(n: int, step_minutes: int, start_minute: int = 0) -> np.ndarray:
    """(n,) hours of the day of every step of a daily profile (may run past 24)."""
    return (start_minute + np.arange(n) * step_minutes) / 60.0


def _hour_ticks(ax: Axes, start_hour: int = 0) -> None:
    ticks = np.arange(start_hour, start_hour + 25, 6)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{int(t) % 24:02d}:00" for t in ticks], fontsize=8)


def _no_customers(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no customers", ha="center", va="center", transform=ax.transAxes,
            color="grey", fontsize=8)


# ------------------------------------------------------------------------ figures
def plot_quantile_profiles(path: Path, *, zone_ids: list[str], cases: list[str],
                           head_q_kva: np.ndarray, foot_q_kva: np.ndarray,
                           assigned: np.ndarray, customers: np.ndarray, step_minutes: int,
                           quantile: float) -> Path:
    """Quantile headroom/footroom daily profile per zone.

    Parameters
    ----------
    head_q_kva, foot_q_kva : ndarray, shape (case, step, zone)
        q-quantile headroom and footroom at each time of day (step 0 = 00:00). [kVA]
    assigned : ndarray of int, shape (zone,)
        Index of each zone's assigned case.
    customers : ndarray of int, shape (zone,)
        Customers per zone (0: the zone is greyed out).
    """
    fig, axes = _zone_grid(len(zone_ids) // 3, f"{quantile:g}-quantile headroom (+) and "
                           "footroom (-) per zone, by time of day",
                           xlabel="time of day", ylabel="headroom (+) / footroom (-) [kVA]")
    hours = _hours(head_q_kva.shape[1], step_minutes)
    legend_zone = next((z for z in range(len(zone_ids)) if customers[z] > 0), -1)
    for z in range(len(zone_ids)):
        ax = _zone_axes(axes, z)
        ax.axhline(0.0, color="black", lw=0.8)
        if customers[z] <= 0:
            _no_customers(ax)
            continue
        other_labelled = z != legend_zone  # the legend comes from the first zone's lines
        for k in range(len(cases)):
            bold = k == assigned[z]
            lw, alpha = (1.6, 1.0) if bold else (0.7, 0.35)
            which = "assigned case" if bold else ("other cases" if not other_labelled
                                                  else None)
            other_labelled = other_labelled or not bold
            ax.plot(hours, head_q_kva[k, :, z], color="tab:green", lw=lw, alpha=alpha,
                    label=f"headroom, {which}" if which and z == legend_zone else None)
            ax.plot(hours, -foot_q_kva[k, :, z], color="tab:purple", lw=lw, alpha=alpha,
                    label=f"footroom, {which}" if which and z == legend_zone else None)
        _zone_title(ax, f"{zone_ids[z]}: {cases[assigned[z]]}")
        _hour_ticks(ax)
    _grid_legend(fig, axes)
    return _save(fig, path)


def plot_vmin_flow(path: Path, *, zone_ids: list[str],
                   points: dict[str, tuple[np.ndarray, np.ndarray]],
                   slope: np.ndarray, intercept: np.ndarray, limit_kva: np.ndarray,
                   v_lim_pu: float, customers: np.ndarray,
                   rules: list[str] | None = None) -> Path:
    """Vmin against supply-cable flow per zone with the stage-4 fit, V_lim and the limit.

    Parameters
    ----------
    points : dict of case -> (pflow_kva, vmin_pu)
        Each an ndarray of shape (time, zone), non-converged steps NaN. [kVA], [p.u.]
    slope, intercept, limit_kva : ndarray, shape (zone,)
        Fitted line ``Vmin = slope * Pflow + intercept`` [1/kVA], [p.u.] and the limit [kVA].
    """
    fig, axes = _zone_grid(len(zone_ids) // 3, "Lowest voltage in the zone vs its supply-cable "
                           "flow, every step of every case",
                           xlabel="supply-cable flow S [kVA]",
                           ylabel="lowest voltage in the zone, Vmin [pu]")
    colors = [f"C{k}" for k in range(len(points))]
    for z in range(len(zone_ids)):
        ax = _zone_axes(axes, z)
        if customers[z] <= 0:
            _no_customers(ax)
            continue
        lo, hi = np.inf, -np.inf
        for (case, (p, v)), c in zip(points.items(), colors, strict=True):
            stride = max(1, len(p) // _MAX_POINTS)
            ax.scatter(p[::stride, z], v[::stride, z], s=2, color=c, alpha=0.3, label=case,
                       rasterized=True)
            finite = p[np.isfinite(p[:, z]), z]
            if finite.size:
                lo, hi = min(lo, finite.min()), max(hi, finite.max())
        _fit_lines(ax, lo, hi, slope[z], intercept[z], limit_kva[z], v_lim_pu)
        _zone_title(ax, f"{zone_ids[z]} (limit: {rules[z]})" if rules else zone_ids[z])
    _grid_legend(fig, axes)
    return _save(fig, path)


def _fit_lines(ax: Axes, lo: float, hi: float, m: float, c: float, limit: float,
               v_lim: float) -> None:
    """Fitted line, V_lim and the chosen limit on one zone's axes."""
    if np.isfinite(lo) and np.isfinite(m) and np.isfinite(c):
        x = np.array([min(lo, 0.0), max(hi, limit if np.isfinite(limit) else hi)])
        ax.plot(x, m * x + c, color="black", lw=1.0, label="fitted line")
    ax.axhline(v_lim, color="tab:red", lw=0.8, ls="--", label=f"voltage limit {v_lim:g} pu")
    if np.isfinite(limit):
        ax.axvline(limit, color="tab:orange", lw=1.0, ls="-.", label="flow limit [kVA]")


def plot_ev_headroom(path: Path, *, zone_ids: list[str], head_kw: np.ndarray,
                     foot_kw: np.ndarray, ev_kw: dict[str, np.ndarray], customers: np.ndarray,
                     step_minutes: int, footroom_factor: float,
                     n_evs: np.ndarray | None = None) -> Path:
    """Headroom/footroom given to the EV stage against the zones' net EV power.

    Parameters
    ----------
    head_kw, foot_kw : ndarray, shape (step, zone)
        Headroom and footroom on the noon-to-noon horizon (step 0 = 12:00). [kW]
    ev_kw : dict of kind -> ndarray, shape (step, zone)
        Net EV power of the zone per kind (smart, dumb). [kW]
    footroom_factor : float
        The EV stage's lower bound is ``-footroom_factor * footroom``. [-]
    n_evs : ndarray of int, shape (zone,), optional
        EVs hosted per zone (in the zone titles; a zone with none says so).
    """
    fig, axes = _zone_grid(len(zone_ids) // 3, "Room given to the EVs vs the zones' net EV "
                           "power, one day noon to noon",
                           xlabel="time of day (noon to noon)",
                           ylabel="power [kW] (+ charging, - V2G discharge)")
    hours = _hours(head_kw.shape[0], step_minutes, start_minute=START_MINUTE)
    for z in range(len(zone_ids)):
        ax = _zone_axes(axes, z)
        ax.axhline(0.0, color="black", lw=0.8)
        if customers[z] <= 0:
            _no_customers(ax)
            continue
        ax.fill_between(hours, -footroom_factor * foot_kw[:, z], head_kw[:, z], step="post",
                        color="tab:green", alpha=0.15, label="allowed band")
        ax.step(hours, head_kw[:, z], where="post", color="tab:green", lw=1.0, label="headroom")
        for kind, arr in ev_kw.items():
            ax.step(hours, arr[:, z], where="post", color=KIND_COLORS.get(kind, "grey"),
                    lw=1.1, label=_KIND_LABEL.get(kind, kind))
        if n_evs is not None:
            _zone_title(ax, f"{zone_ids[z]}: {int(n_evs[z])} EVs")
            if n_evs[z] == 0:
                ax.text(0.5, 0.85, "0 EVs hosted: no room at some time of day",
                        ha="center", transform=ax.transAxes, fontsize=8, color="grey")
        else:
            _zone_title(ax, zone_ids[z])
        _hour_ticks(ax, start_hour=12)
    _grid_legend(fig, axes)
    return _save(fig, path)


def plot_min_voltage(path: Path, *, vmin_pu: dict[str, np.ndarray], steps_per_day: int,
                     step_minutes: int, v_min_pu: float) -> Path:
    """Lowest bus voltage at each time of day (noon to noon) per kind; each day faint.

    Parameters
    ----------
    vmin_pu : dict of kind -> ndarray, shape (time,)
        Lowest bus voltage at each study step (study starts at 00:00). [p.u.]
    """
    fig = Figure(figsize=(9, 4.5), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    hours = _hours(steps_per_day, step_minutes, start_minute=START_MINUTE)
    for kind, v in vmin_pu.items():
        n_days = len(v) // steps_per_day
        days = from_midnight(np.asarray(v[:n_days * steps_per_day], float).reshape(n_days, -1))
        color = KIND_COLORS.get(kind, "grey")
        for d in days:
            ax.plot(hours, d, color=color, lw=0.5, alpha=0.25)
        ax.plot(hours, np.fmin.reduce(days, axis=0), color=color, lw=1.8,
                label=f"{_KIND_LABEL.get(kind, kind)}: lowest over the days")
    ax.axhline(v_min_pu, color="black", ls="--", lw=1.0,
               label=f"undervoltage limit {v_min_pu:g} pu")
    ax.set_xlabel("time of day (noon to noon); faint lines: single days")
    ax.set_ylabel("lowest bus voltage [pu]")
    ax.set_title("Minimum voltage over the network's buses, validation load flows")
    _hour_ticks(ax, start_hour=12)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_network_map(path: Path, *, bus_names: np.ndarray, bus_xy: np.ndarray,
                     line_bus1: np.ndarray, line_bus2: np.ndarray,
                     bus_vmin_pu: dict[str, np.ndarray], line_over: dict[str, np.ndarray],
                     v_min_pu: float, busbar: str | None = None,
                     feeder_buses: tuple[np.ndarray, ...] = ()) -> Path | None:
    """Network map per kind, coloured by each element's worst voltage; overloads marked.

    Parameters
    ----------
    bus_xy : ndarray, shape (bus, 2)
        Coordinates; NaN where unknown. Returns None (no file) if no bus has any.
    bus_vmin_pu : dict of kind -> ndarray, shape (bus,)
        Lowest voltage of each bus over phases and time. [p.u.]
    line_over : dict of kind -> ndarray of bool, shape (line,)
        Lines over their rating at some step.
    busbar : str, optional
        The substation's LV busbar (marked with a square).
    feeder_buses : tuple of ndarray of int
        Bus indices of each feeder (labelled F1, F2, ... at their farthest bus).
    """
    xy = np.asarray(bus_xy, dtype=float)
    known = np.isfinite(xy).all(axis=1)
    if not known.any():
        return None
    pos = {str(b): i for i, b in enumerate(bus_names)}
    i1 = np.array([pos[str(b)] for b in line_bus1])
    i2 = np.array([pos[str(b)] for b in line_bus2])
    drawn = known[i1] & known[i2]
    values = np.concatenate([v[known] for v in bus_vmin_pu.values()])
    finite = values[np.isfinite(values)]
    lo = min(v_min_pu - 0.02, float(finite.min())) if finite.size else v_min_pu - 0.02
    hi = max(1.0, float(finite.max())) if finite.size else 1.05
    fig = Figure(figsize=(6.0 * len(bus_vmin_pu) + 1.0, 6.0), dpi=_DPI, layout="constrained")
    axes = fig.subplots(1, len(bus_vmin_pu), squeeze=False)[0]
    sub = pos.get(str(busbar)) if busbar is not None else None
    for ax, kind in zip(axes, bus_vmin_pu, strict=True):
        v = bus_vmin_pu[kind]
        mappable = _map_panel(ax, xy, i1[drawn], i2[drawn], v, known,
                              line_over[kind][drawn], (lo, hi))
        low = known & (v < v_min_pu)
        if low.any():
            ax.scatter(xy[low, 0], xy[low, 1], s=40, facecolors="none", edgecolors="black",
                       linewidths=1.0, zorder=4, label=f"below {v_min_pu:g} pu")
        if sub is not None and known[sub]:
            ax.scatter(*xy[sub], marker="s", s=110, color="black", zorder=5,
                       label="substation")
        _feeder_labels(ax, xy, known, sub, feeder_buses)
        ax.margins(0.08)  # room for the feeder labels at the outermost buses
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        ax.set_title(f"{_KIND_LABEL.get(kind, kind)}: {int(low.sum())} buses below "
                     f"{v_min_pu:g} pu, {int(line_over[kind].sum())} lines overloaded",
                     fontsize=10)
    bar = fig.colorbar(mappable, ax=list(axes), label="lowest voltage over the study [pu]",
                       shrink=0.8)
    if lo <= v_min_pu <= hi:
        bar.ax.axhline(v_min_pu, color="black", lw=2)
        bar.ax.text(-0.15, v_min_pu, f"{v_min_pu:g}", transform=bar.ax.get_yaxis_transform(),
                    va="center", ha="right", fontsize=8)  # left: the ticks are on the right
    return _save(fig, path)


def _feeder_labels(ax: Axes, xy: np.ndarray, known: np.ndarray, sub: int | None,
                   feeder_buses: tuple[np.ndarray, ...]) -> None:
    """``F<n>`` at each feeder's bus farthest from the substation (or from its first bus)."""
    for f, buses in enumerate(feeder_buses):
        buses = np.asarray(buses, dtype=int)
        buses = buses[known[buses]] if buses.size else buses
        if not buses.size:
            continue
        origin = xy[sub] if sub is not None and known[sub] else xy[buses[0]]
        far = buses[np.argmax(np.hypot(*(xy[buses] - origin).T))]
        ax.annotate(f"F{f + 1}", xy[far], fontsize=9, fontweight="bold",
                    xytext=(4, 4), textcoords="offset points")


def _map_panel(ax: Axes, xy: np.ndarray, i1: np.ndarray, i2: np.ndarray, vbus: np.ndarray,
               known: np.ndarray, over: np.ndarray,
               clim: tuple[float, float]) -> LineCollection:
    """Lines coloured by their lower end's worst voltage, overloads black and thick."""
    segs = np.stack([xy[i1], xy[i2]], axis=1)
    vline = np.fmin(vbus[i1], vbus[i2])
    # an (n, 2, 2) array is a sequence of n segments; the stubs only accept a Sequence
    lc = LineCollection(segs, array=vline, cmap="RdYlGn",  # type: ignore[arg-type]
                        linewidths=1.6)
    lc.set_clim(*clim)
    ax.add_collection(lc)
    if over.any():
        ax.add_collection(LineCollection(segs[over], colors="black", linewidths=3.5,
                                         label="overloaded line"))
    ax.scatter(xy[known, 0], xy[known, 1], c=vbus[known], cmap="RdYlGn", vmin=clim[0],
               vmax=clim[1], s=8, zorder=3)
    ax.autoscale()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    return lc


# ------------------------------------------------------------------------ a run's figures
def network_plots(cfg: Config, network: str) -> list[Plot]:
    """Every figure of one network that the run's files allow; missing inputs give notes.

    Parameters
    ----------
    cfg : Config
        The job.
    network : str
        Network name.
    """
    from agileflex_hpc.fingerprint import Fingerprints, freshness
    from agileflex_hpc.headroom.stage import hosting_path
    from agileflex_hpc.network.manifest import manifest_path, read_manifest
    from agileflex_hpc.validate.stage import report_h5_path

    if freshness(manifest_path(cfg.out_dir, network), Fingerprints(cfg).network(network)) != "ok":
        return [Plot("figures", "Figures", None, "no figures: the network's manifest "
                     f"{manifest_path(cfg.out_dir, network)} is missing or stale (run the "
                     "load-flow stage)")]
    m = read_manifest(manifest_path(cfg.out_dir, network))
    fps = Fingerprints(cfg)
    sources = {"hosting": (hosting_path(cfg.out_dir, network), fps.headroom(network)),
               "validation": (report_h5_path(cfg.out_dir, network), fps.validation(network))}
    current = {k: freshness(path, key) == "ok" for k, (path, key) in sources.items()}
    builders = [(hosting_plot, "hosting"), (vmin_flow_plot, "hosting"),
                (ev_headroom_plot, "hosting"), (min_voltage_plot, "validation"),
                (map_plot, "validation")]
    if cfg.cases.samples > 1:
        builders.insert(1, (spread_plot, "hosting"))
    return [_try(fn, cfg, m) if current[src] else
            _not_current(fn, sources[src][0]) for fn, src in builders]


def _not_current(fn: Callable[[Config, NetworkManifest], Plot], path: Path) -> Plot:
    key = fn.__name__.removesuffix("_plot")
    return Plot(key, key.replace("_", " "), None,
                f"not drawn: {path} is missing or was computed from other inputs (rerun)")


def _try(fn: Callable[[Config, NetworkManifest], Plot], cfg: Config,
         m: NetworkManifest) -> Plot:
    """Run one figure builder; a missing, unreadable or stale input file becomes a note on the
    page, not a failure."""
    try:
        return fn(cfg, m)
    except (OSError, AgileflexError) as exc:
        key = fn.__name__.removesuffix("_plot")
        logger.warning("%s: figure %s skipped: %s", m.name, key, exc)
        return Plot(key, key.replace("_", " "), None, f"not drawn: {exc}")


def _require(path: Path) -> Path:
    """``path`` if it is a complete result file, else raise FileNotFoundError naming it."""
    if not h5io.is_complete(path):
        raise FileNotFoundError(f"{path} is missing or incomplete")
    return Path(path)


def _open(path: Path) -> h5py.File:
    return h5py.File(_require(path), "r")


def hosting_plot(cfg: Config, m: NetworkManifest) -> Plot:
    """Quantile headroom/footroom profiles from ``hosting/<network>.h5``."""
    from agileflex_hpc.headroom.stage import hosting_path

    with _open(hosting_path(cfg.out_dir, m.name)) as f:
        cases = h5io.decode_strings(f["case"][()])
        g = f["hosting"]
        head, foot = g["headroom_q_kva"][()], g["footroom_q_kva"][()]
        assigned, customers = g["case_index"][()], g["customers"][()]
    out = layout(cfg).report_file("quantile_profiles.png", m.name)
    path = plot_quantile_profiles(out, zone_ids=m.zone_ids,
                                  cases=cases, head_q_kva=head, foot_q_kva=foot,
                                  assigned=assigned, customers=customers,
                                  step_minutes=cfg.time.step_minutes,
                                  quantile=cfg.headroom.quantile)
    return Plot("quantile_profiles", "Quantile headroom / footroom per zone (stage 6)", path,
                f"The headroom each zone keeps at each time of day on all but the worst "
                f"{cfg.headroom.quantile:.0%} of days, for every heat-pump/PV case; the bold "
                "line is the case assigned to the zone (title). Below zero: the zone's limit is "
                "exceeded at that time on those days.")


def vmin_flow_plot(cfg: Config, m: NetworkManifest) -> Plot:
    """Vmin vs flow from ``zones/<network>/<case>.h5`` (all cases) and ``limits.h5``."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c: [] for c in cfg.cases.names}
    for key in cfg.cases.keys:  # every sample of a case: one colour
        with _open(layout(cfg).zones(m.name, key)) as f:
            ok = f["zones/converged"][()].astype(bool)[:, None]
            parts[split_case_key(key)[0]].append(
                (np.where(ok, f["zones/pflow_kva"][()], np.nan),
                 np.where(ok, f["zones/vmin_pu"][()], np.nan)))
    points = {c: (np.concatenate([p for p, _ in xs]), np.concatenate([v for _, v in xs]))
              for c, xs in parts.items()}
    with _open(layout(cfg).limits(m.name)) as f:
        g = f["limits"]
        fit = {k: g[k][()] for k in ("slope_pu_per_kva", "intercept_pu", "limit_kva")}
        rules = h5io.decode_strings(g["rule"][()])
        v_lim = float(f.attrs.get("v_lim_pu", cfg.headroom.v_lim_pu))
    out = layout(cfg).report_file("vmin_vs_flow.png", m.name)
    path = plot_vmin_flow(out, zone_ids=m.zone_ids, points=points,
                          slope=fit["slope_pu_per_kva"], intercept=fit["intercept_pu"],
                          limit_kva=fit["limit_kva"], v_lim_pu=v_lim,
                          customers=m.topology.zone_customers, rules=rules)
    return Plot("vmin_vs_flow", "Lowest voltage vs supply-cable flow, fitted line and flow "
                "limit (stage 4)", path,
                "Each dot is one step of one case; the flow is the supply cable's apparent "
                "power, signed + towards the customers. The flow limit (orange) sets the "
                "zone's voltage headroom; how it was found is in each title: fit (where the "
                "fitted line reaches the voltage limit, red), fallback (no step went below "
                "the limit: a share of the fitted flow, at least the largest flow seen), "
                "observed (the smallest flow already seen below the limit, where the data "
                "contradict the fit).")


def plot_sample_spread(path: Path, *, zone_ids: list[str], sample_evs: np.ndarray,
                       pooled_evs: np.ndarray, hosted: np.ndarray | None,
                       customers: np.ndarray) -> Path:
    """EVs per zone: the range of the estimates made from each sample alone, their median,
    the pooled estimate and (where stage 7 ran) the EVs hosted.

    Parameters
    ----------
    sample_evs : ndarray of int, shape (sample, zone)
        EV estimate of the plan made from one sample. [-]
    pooled_evs : ndarray of int, shape (zone,)
        EV estimate from all samples pooled (the plan's). [-]
    hosted : ndarray, shape (zone,), optional
        EVs hosted by stage 7 (NaN where not known). [-]
    """
    with_customers = np.flatnonzero(customers > 0)
    x = np.arange(with_customers.size)
    fig = Figure(figsize=(max(7.0, 0.45 * x.size + 2), 4.4), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    est = sample_evs[:, with_customers]
    ax.vlines(x, est.min(axis=0), est.max(axis=0), color="tab:blue", lw=6, alpha=0.35,
              label=f"range over {sample_evs.shape[0]} samples")
    ax.plot(x, np.median(est, axis=0), "_", color="tab:blue", ms=14, mew=2,
            label="median of the samples")
    ax.plot(x, pooled_evs[with_customers], "x", color="black", ms=7,
            label="pooled estimate (the plan's)")
    if hosted is not None:
        ax.plot(x, hosted[with_customers], "o", color="tab:green", ms=5, label="EVs hosted")
    ax.set_xticks(x, [zone_ids[z] for z in with_customers], rotation=90, fontsize=8)
    ax.set_xlabel("zone (feeder F, phase P)")
    ax.set_ylabel("EVs per zone [-]")
    ax.set_ylim(bottom=0)
    ax.set_title("EV hosting per zone across Monte Carlo samples")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def spread_plot(cfg: Config, m: NetworkManifest) -> Plot:
    """The per-sample spread of the EV estimate from ``hosting/<network>.h5`` (samples > 1)."""
    from agileflex_hpc.ev.stage import hosting_answer
    from agileflex_hpc.headroom.stage import hosting_path

    with _open(hosting_path(cfg.out_dir, m.name)) as f:
        g = f["hosting"]
        sample_evs, pooled = g["sample_evs_estimate"][()], g["evs_estimate"][()]
    answer = hosting_answer(cfg, m.name).set_index("zone")["evs_hosted"]
    hosted = np.array([answer.get(z, np.nan) for z in m.zone_ids], dtype=float)
    out = layout(cfg).report_file("sample_spread.png", m.name)
    path = plot_sample_spread(out, zone_ids=m.zone_ids, sample_evs=sample_evs,
                              pooled_evs=pooled, hosted=None if np.isnan(hosted).all()
                              else hosted, customers=m.topology.zone_customers)
    return Plot("sample_spread", "EV hosting across samples of who has heat pumps and PV "
                "(stage 6)", path,
                f"Each of the {cfg.cases.samples} samples redraws which customers have a heat "
                "pump or PV and which demand profile each has. The bar spans the EV estimates "
                "made from one sample alone; the plan pools the days of all samples in its "
                "quantile (cross), and stage 7 tests it (dot). A long bar: one draw would "
                "have been an anecdote for that zone. The pooled profile takes, at each time "
                "of day, the worst days of whichever samples are worst then, so the cross can "
                "sit below the whole bar.")


def ev_headroom_plot(cfg: Config, m: NetworkManifest) -> Plot:
    """EV-stage headroom/footroom against smart and dumb net EV power, from the zone files."""
    from agileflex_hpc.ev.stage import read_zone, zone_path, zone_profiles
    from agileflex_hpc.validate.inputs import KINDS, zone_ev_kw

    t, n_zone = cfg.time, len(m.zone_ids)
    head = np.full((t.steps_per_day, n_zone), np.nan)
    foot = np.full_like(head, np.nan)
    kinds = [k for k in KINDS if k != "none"]  # the baseline has no EV power to draw
    ev = {kind: np.zeros_like(head) for kind in kinds}
    n_evs = np.zeros(n_zone, dtype=int)
    for z, zid in enumerate(m.zone_ids):
        if m.topology.zone_customers[z] <= 0:
            continue
        head[:, z], foot[:, z] = zone_profiles(cfg, m.name, z)
        zone = read_zone(_require(zone_path(cfg.out_dir, m.name, zid)))
        n_evs[z] = int(zone["attrs"]["n_evs"])
        for kind in kinds:
            net_kw, _ = zone_ev_kw(zone, kind, steps=t.steps_per_day,
                                   step_minutes=t.step_minutes, efficiency=cfg.ev.efficiency)
            ev[kind][:, z] = net_kw.sum(axis=0)
    out = layout(cfg).report_file("ev_headroom.png", m.name)
    path = plot_ev_headroom(out, zone_ids=m.zone_ids, head_kw=head,
                            foot_kw=foot, ev_kw=ev, customers=m.topology.zone_customers,
                            step_minutes=t.step_minutes,
                            footroom_factor=cfg.ev.footroom_factor, n_evs=n_evs)
    return Plot("ev_headroom", "Room given to the EVs vs their net power, smart and "
                "uncontrolled (stage 7)", path,
                "Green band: what the EV optimisation may use, from headroom down to "
                f"-{cfg.ev.footroom_factor:g} x footroom (V2G), in kW: the stage-6 kVA profiles "
                f"times the EV power factor ({cfg.loadflow.ev_pf:g}). The smart schedule minimises "
                "the charging cost under the time-of-use tariff, so it may discharge (below "
                "0) in expensive hours even where headroom is positive, and charges where "
                "power is cheap, within the band. Uncontrolled charging starts on arrival and "
                "can leave the band. A zone with 0 EVs had no room at some time of day.")


def _kind_arrays(cfg: Config, m: NetworkManifest,
                 names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Datasets ``names`` of every validation kind file, by kind."""
    from agileflex_hpc.validate.inputs import KINDS
    from agileflex_hpc.validate.stage import kind_path

    out = {}
    for kind in KINDS:
        with _open(kind_path(cfg.out_dir, m.name, kind)) as f:
            out[kind] = {n: f[n][()] for n in names}
    return out


def min_voltage_plot(cfg: Config, m: NetworkManifest) -> Plot:
    """Lowest bus voltage per time of day, smart vs dumb, from ``validation/<network>/``."""
    data = _kind_arrays(cfg, m, ["flags/vmin_bus_pu", "zones/converged"])
    vmin = {k: np.where(d["zones/converged"].astype(bool), d["flags/vmin_bus_pu"], np.nan)
            for k, d in data.items()}
    out = layout(cfg).report_file("min_voltage.png", m.name)
    path = plot_min_voltage(out, vmin_pu=vmin,
                            steps_per_day=cfg.time.steps_per_day,
                            step_minutes=cfg.time.step_minutes, v_min_pu=cfg.validate.v_min_pu)
    return Plot("min_voltage", "Lowest voltage over the day: no EVs, smart and uncontrolled "
                "charging (stage 8)", path,
                "The lowest bus voltage of the network at each time of day over the "
                "validation period; below the dashed line is undervoltage.")


def map_plot(cfg: Config, m: NetworkManifest) -> Plot:
    """Network map coloured by worst voltage, overloaded lines marked (stage 8)."""
    data = _kind_arrays(cfg, m, ["map/bus_vmin_pu", "map/line_over_steps"])
    out = layout(cfg).report_file("network_map.png", m.name)
    path = plot_network_map(out, bus_names=m.bus_names,
                            bus_xy=m.bus_xy, line_bus1=m.line_bus1, line_bus2=m.line_bus2,
                            bus_vmin_pu={k: d["map/bus_vmin_pu"] for k, d in data.items()},
                            line_over={k: d["map/line_over_steps"] > 0 for k, d in data.items()},
                            v_min_pu=cfg.validate.v_min_pu, busbar=m.topology.busbar,
                            feeder_buses=m.topology.feeder_buses)
    title = ("Network map: lowest voltage and overloaded lines, no EVs, smart and "
             "uncontrolled charging (stage 8)")
    if path is None:
        return Plot("network_map", title, None, "no bus coordinates in the network: map skipped")
    return Plot("network_map", title, path,
                "Lines and buses coloured by the lowest voltage they see over the study; "
                "circled buses go below the undervoltage limit, thick black lines exceed "
                "their rating at some step; the square is the substation, F1.. label the "
                "feeders' far ends.")
