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
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from agileflex_hpc import h5io

__all__ = ["Plot", "plot_quantile_profiles", "plot_vmin_flow", "plot_ev_headroom",
           "plot_min_voltage", "plot_network_map", "network_plots", "KIND_COLORS"]

logger = logging.getLogger(__name__)

KIND_COLORS = {"smart": "tab:blue", "dumb": "tab:red"}
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
def _zone_grid(n_feeders: int, title: str) -> tuple[Figure, np.ndarray]:
    """Figure with axes (phase, feeder): rows phases 1-3, columns feeders."""
    fig = Figure(figsize=(max(3.0 * n_feeders, 6.0), 7.5), dpi=_DPI)
    axes = fig.subplots(3, n_feeders, squeeze=False, sharex=True)
    fig.suptitle(title)
    for f in range(n_feeders):
        axes[0, f].set_title(f"feeder {f + 1}", fontsize=9)
    for p in range(3):
        axes[p, 0].set_ylabel(f"phase {p + 1}", fontsize=9)
    return fig, axes


def _zone_axes(axes: np.ndarray, z: int):
    return axes[z % 3, z // 3]


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    logger.debug("figure written: %s", path)
    return path


def _hours(n: int, step_minutes: int, start_minute: int = 0) -> np.ndarray:
    """(n,) hours of the day of every step of a daily profile (may run past 24)."""
    return (start_minute + np.arange(n) * step_minutes) / 60.0


def _hour_ticks(ax, start_hour: int = 0) -> None:
    ticks = np.arange(start_hour, start_hour + 25, 6)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{int(t) % 24:02d}" for t in ticks], fontsize=8)


def _no_customers(ax) -> None:
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
                           "footroom (-) per zone [kVA]; assigned case bold")
    hours = _hours(head_q_kva.shape[1], step_minutes)
    for z in range(len(zone_ids)):
        ax = _zone_axes(axes, z)
        ax.axhline(0.0, color="black", lw=0.8)
        if customers[z] <= 0:
            _no_customers(ax)
            continue
        for k, case in enumerate(cases):
            bold = k == assigned[z]
            kw = dict(lw=1.6, alpha=1.0) if bold else dict(lw=0.7, alpha=0.35)
            ax.plot(hours, head_q_kva[k, :, z], color="tab:green", **kw,
                    label="headroom" if bold else None)
            ax.plot(hours, -foot_q_kva[k, :, z], color="tab:purple", **kw,
                    label="-footroom" if bold else None)
        ax.set_title(f"{zone_ids[z]}: {cases[assigned[z]]}", fontsize=8, loc="right")
        _hour_ticks(ax)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_vmin_flow(path: Path, *, zone_ids: list[str], points: dict[str, tuple],
                   slope: np.ndarray, intercept: np.ndarray, limit_kva: np.ndarray,
                   v_lim_pu: float, customers: np.ndarray) -> Path:
    """Vmin against supply-cable flow per zone with the stage-4 fit, V_lim and the limit.

    Parameters
    ----------
    points : dict of case -> (pflow_kva, vmin_pu)
        Each an ndarray of shape (time, zone), non-converged steps NaN. [kVA], [p.u.]
    slope, intercept, limit_kva : ndarray, shape (zone,)
        Fitted line ``Vmin = slope * Pflow + intercept`` [1/kVA], [p.u.] and the limit [kVA].
    """
    fig, axes = _zone_grid(len(zone_ids) // 3, "Vmin vs supply-cable flow per zone, all cases")
    colors = [f"C{k}" for k in range(len(points))]
    for z in range(len(zone_ids)):
        ax = _zone_axes(axes, z)
        if customers[z] <= 0:
            _no_customers(ax)
            continue
        lo, hi = np.inf, -np.inf
        for (case, (p, v)), c in zip(points.items(), colors):
            stride = max(1, len(p) // _MAX_POINTS)
            ax.scatter(p[::stride, z], v[::stride, z], s=2, color=c, alpha=0.3, label=case,
                       rasterized=True)
            finite = p[np.isfinite(p[:, z]), z]
            if finite.size:
                lo, hi = min(lo, finite.min()), max(hi, finite.max())
        _fit_lines(ax, lo, hi, slope[z], intercept[z], limit_kva[z], v_lim_pu)
        ax.set_title(zone_ids[z], fontsize=8, loc="right")
    axes[0, 0].legend(fontsize=6, markerscale=4, loc="lower left")
    axes[-1, 0].set_xlabel("Pflow [kVA]")
    return _save(fig, path)


def _fit_lines(ax, lo: float, hi: float, m: float, c: float, limit: float, v_lim: float) -> None:
    """Fitted line, V_lim and the chosen limit on one zone's axes."""
    if np.isfinite(lo) and np.isfinite(m) and np.isfinite(c):
        x = np.array([min(lo, 0.0), max(hi, limit if np.isfinite(limit) else hi)])
        ax.plot(x, m * x + c, color="black", lw=1.0, label="fit")
    ax.axhline(v_lim, color="tab:red", lw=0.8, ls="--", label="V_lim")
    if np.isfinite(limit):
        ax.axvline(limit, color="tab:orange", lw=1.0, ls="-.", label="limit")


def plot_ev_headroom(path: Path, *, zone_ids: list[str], head_kw: np.ndarray,
                     foot_kw: np.ndarray, ev_kw: dict[str, np.ndarray], customers: np.ndarray,
                     step_minutes: int, footroom_factor: float) -> Path:
    """Headroom/footroom given to the EV stage against the zones' net EV power.

    Parameters
    ----------
    head_kw, foot_kw : ndarray, shape (step, zone)
        Headroom and footroom on the noon-to-noon horizon (step 0 = 12:00). [kW]
    ev_kw : dict of kind -> ndarray, shape (step, zone)
        Net EV power of the zone per kind (smart, dumb). [kW]
    footroom_factor : float
        The EV stage's lower bound is ``-footroom_factor * footroom``. [-]
    """
    fig, axes = _zone_grid(len(zone_ids) // 3, "EV stage headroom / footroom vs the zone's net "
                           "EV power [kW], noon to noon")
    hours = _hours(head_kw.shape[0], step_minutes, start_minute=720)
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
                    lw=1.1, label=f"{kind} EVs")
        ax.set_title(zone_ids[z], fontsize=8, loc="right")
        _hour_ticks(ax, start_hour=12)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_min_voltage(path: Path, *, vmin_pu: dict[str, np.ndarray], steps_per_day: int,
                     step_minutes: int, v_min_pu: float) -> Path:
    """Lowest bus voltage at each time of day (noon to noon) per kind; each day faint.

    Parameters
    ----------
    vmin_pu : dict of kind -> ndarray, shape (time,)
        Lowest bus voltage at each study step (study starts at 00:00). [p.u.]
    """
    fig = Figure(figsize=(9, 4.5), dpi=_DPI)
    ax = fig.subplots()
    half = steps_per_day // 2
    hours = _hours(steps_per_day, step_minutes, start_minute=720)
    for kind, v in vmin_pu.items():
        n_days = len(v) // steps_per_day
        days = np.roll(np.asarray(v[:n_days * steps_per_day], float).reshape(n_days, -1), -half,
                       axis=1)
        color = KIND_COLORS.get(kind, "grey")
        for d in days:
            ax.plot(hours, d, color=color, lw=0.5, alpha=0.25)
        ax.plot(hours, np.fmin.reduce(days, axis=0), color=color, lw=1.8,
                label=f"{kind}: lowest over days")
    ax.axhline(v_min_pu, color="black", ls="--", lw=1.0, label=f"v_min {v_min_pu:g} pu")
    ax.set_xlabel("time of day (noon to noon)")
    ax.set_ylabel("min bus voltage [pu]")
    ax.set_title("Minimum voltage over the network's buses, validation load flows")
    _hour_ticks(ax, start_hour=12)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_network_map(path: Path, *, bus_names: np.ndarray, bus_xy: np.ndarray,
                     line_bus1: np.ndarray, line_bus2: np.ndarray,
                     bus_vmin_pu: dict[str, np.ndarray], line_over: dict[str, np.ndarray],
                     v_min_pu: float) -> Path | None:
    """Network map per kind, coloured by each element's worst voltage; overloads marked.

    Parameters
    ----------
    bus_xy : ndarray, shape (bus, 2)
        Coordinates; NaN where unknown. Returns None (no file) if no bus has any.
    bus_vmin_pu : dict of kind -> ndarray, shape (bus,)
        Lowest voltage of each bus over phases and time. [p.u.]
    line_over : dict of kind -> ndarray of bool, shape (line,)
        Lines over their rating at some step.
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
    lo = min(v_min_pu - 0.02, float(np.nanmin(values))) if np.isfinite(values).any() else 0.85
    fig = Figure(figsize=(6.5 * len(bus_vmin_pu), 6.0), dpi=_DPI)
    axes = fig.subplots(1, len(bus_vmin_pu), squeeze=False)[0]
    for ax, kind in zip(axes, bus_vmin_pu):
        mappable = _map_panel(ax, xy, i1[drawn], i2[drawn], bus_vmin_pu[kind], known,
                              line_over[kind][drawn], lo)
        ax.set_title(f"{kind}: worst voltage, {int(line_over[kind].sum())} lines overloaded",
                     fontsize=10)
    fig.colorbar(mappable, ax=list(axes), label="lowest voltage [pu]", shrink=0.8)
    return _save(fig, path)


def _map_panel(ax, xy, i1, i2, vbus, known, over, lo: float):
    """Lines coloured by their lower end's worst voltage, overloads black and thick."""
    segs = np.stack([xy[i1], xy[i2]], axis=1)
    vline = np.fmin(vbus[i1], vbus[i2])
    lc = LineCollection(segs, array=vline, cmap="RdYlGn", linewidths=1.6)
    lc.set_clim(lo, 1.05)
    ax.add_collection(lc)
    if over.any():
        ax.add_collection(LineCollection(segs[over], colors="black", linewidths=3.5,
                                         label="overloaded"))
        ax.legend(fontsize=8, loc="best")
    ax.scatter(xy[known, 0], xy[known, 1], c=vbus[known], cmap="RdYlGn", vmin=lo, vmax=1.05,
               s=8, zorder=3)
    ax.autoscale()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    return lc


# ------------------------------------------------------------------------ a run's figures
def network_plots(cfg, network: str, out_dir: Path) -> list[Plot]:
    """Every figure of one network that the run's files allow; missing inputs give notes."""
    from agileflex_hpc.report import loaders

    out_dir = Path(out_dir)
    m = loaders.manifest(cfg, network)
    plots = [_try(loaders.hosting_plot, cfg, m, out_dir),
             _try(loaders.vmin_flow_plot, cfg, m, out_dir),
             _try(loaders.ev_headroom_plot, cfg, m, out_dir),
             _try(loaders.min_voltage_plot, cfg, m, out_dir),
             _try(loaders.map_plot, cfg, m, out_dir)]
    return plots


def _try(fn, cfg, m, out_dir: Path) -> Plot:
    """Run one figure builder; a missing input file becomes a note, not a failure."""
    try:
        return fn(cfg, m, out_dir)
    except FileNotFoundError as exc:
        key = fn.__name__.removesuffix("_plot")
        logger.warning("%s: figure %s skipped: %s", m.name, key, exc)
        return Plot(key, key.replace("_", " "), None, f"not drawn: {exc}")


def read_complete(path: Path) -> h5py.File:
    """Open a complete result file for reading, else raise FileNotFoundError naming it."""
    if not h5io.is_complete(path):
        raise FileNotFoundError(f"{path} is missing or incomplete")
    return h5py.File(path, "r")
