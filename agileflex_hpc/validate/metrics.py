"""Stage 8 metrics: violations, V2G fulfilment and headroom statistics (pure numpy, no I/O).

Definitions (per network and EV kind; a "step" is one study timestep):

* **thermal violation** at a step: any line's current on any phase exceeds its normal rating
  (strictly; a NaN current, i.e. a phase the line lacks, never counts).
* **undervoltage** at a step: any customer's voltage is below ``v_min_pu``; a customer's
  voltage is its bus's voltage on its phase (a three-phase customer: the lowest of its phases).
* **transformer overload** at a step: any transformer's ``|s_tx|`` exceeds ``factor x rating``.
* **collapse** at a step: the power flow has no solution (not converged). A collapsed step is a
  violation of every kind (DESIGN: Collapse); percentages count every step.
* **added violation** (the proof): a (step, zone) where smart charging has a violation of a kind
  that the no-EV baseline of the same HP assignment does not. Thermal and undervoltage are per
  zone (a feeder line over its rating on the zone's phase; a customer of the zone under
  ``v_min_pu``), transformer overload and collapse per step (every zone of the network). The
  smart flow's violation must be clear of the limit by more than ``validate.proof_tolerance``
  (p.u. below ``v_min_pu``; a fraction of a line's or the transformer's rating above it), a
  materiality margin at the resolution of the stage-2 flows the plan is made from: a line at
  200.009 A on a 200 A rating against 199.987 A in the baseline (moved by EVs on another
  feeder) is not counted, but listed (:func:`within_tolerance`).
* **V2G request**: a (zone, step) at which the optimised schedule discharges (the zone's
  summed V2G discharge > ``tol_kw``). It is **fulfilled** when, in the validation load flow,
  (a) the zone's net EV power is an export (< ``-tol_kw``: the discharge is not cancelled by
  other EVs charging at the same time) and (b) the zone's recomputed headroom is >= 0 (the
  export kept the zone within its rate, which is what V2G was asked for). Non-converged steps
  are neither requests nor fulfilled. No requests: NaN.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["line_loading", "customer_voltage_pu", "transformer_loading", "violation_flags",
           "percent_of_steps", "zone_weights", "v2g_fulfilment", "headroom_stats",
           "zone_of_customers", "violation_state", "added_violations", "within_tolerance",
           "KINDS_OF_VIOLATION"]

KINDS_OF_VIOLATION = ("thermal", "undervoltage", "transformer", "collapse")

logger = logging.getLogger(__name__)


def line_loading(i_a: np.ndarray, rating_a: np.ndarray) -> np.ndarray:
    """Worst phase's current over the line's rating.

    Parameters
    ----------
    i_a : ndarray, shape (time, line, phase)
        Line current per phase; NaN where the line has no such phase. [A]
    rating_a : ndarray, shape (line,)
        Normal rating. [A]

    Returns
    -------
    ndarray, shape (time, line)
        ``max over phases of i / rating``; NaN where every phase is NaN. [-]
    """
    rating = np.asarray(rating_a, dtype=np.float64)[None, :, None]
    return np.fmax.reduce(np.asarray(i_a, dtype=np.float64) / rating, axis=2)


def customer_voltage_pu(v_pu: np.ndarray, bus_index: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Voltage at every customer's connection.

    Parameters
    ----------
    v_pu : ndarray, shape (time, bus, phase)
        Bus voltages per phase. [p.u.]
    bus_index : ndarray of int, shape (customer,)
        Bus of each customer (index into the bus axis).
    phase : ndarray of int, shape (customer,)
        Phase 1..3 of each customer; 0 for a three-phase customer (lowest phase taken).

    Returns
    -------
    ndarray, shape (time, customer)
        Voltage on the customer's phase. [p.u.]
    """
    v = np.asarray(v_pu, dtype=np.float64)[:, np.asarray(bus_index), :]
    phase = np.asarray(phase)
    single = np.take_along_axis(v, np.maximum(phase - 1, 0)[None, :, None], axis=2)[:, :, 0]
    return np.where(phase[None, :] > 0, single, np.fmin.reduce(v, axis=2))


def transformer_loading(s_tx_kva: np.ndarray, rating_kva: np.ndarray) -> np.ndarray:
    """``|s_tx| / rating`` per transformer.

    Parameters
    ----------
    s_tx_kva : ndarray, shape (time, transformer)
        Signed transformer apparent power. [kVA]
    rating_kva : ndarray, shape (transformer,)
        Rating. [kVA]

    Returns
    -------
    ndarray, shape (time, transformer)
        Loading. [-]
    """
    return np.abs(np.asarray(s_tx_kva, dtype=np.float64)) / np.asarray(rating_kva, dtype=float)


def violation_flags(loading: np.ndarray, v_customer_pu: np.ndarray, tx_loading: np.ndarray, *,
                    converged: np.ndarray | None = None, v_min_pu: float = 0.9,
                    tx_factor: float = 1.0) -> dict[str, np.ndarray]:
    """Steps with any thermal, undervoltage, transformer violation or collapse.

    Parameters
    ----------
    loading : ndarray, shape (time, line)
        Line loading from :func:`line_loading`. [-]
    v_customer_pu : ndarray, shape (time, customer)
        Customer voltages from :func:`customer_voltage_pu`. [p.u.]
    tx_loading : ndarray, shape (time, transformer)
        Transformer loading from :func:`transformer_loading`. [-]
    converged : ndarray of bool, shape (time,), optional
        Converged steps; default all. A collapsed step is flagged in every kind.
    v_min_pu : float
        Statutory minimum voltage. [p.u.]
    tx_factor : float
        Overload threshold as a multiple of the rating. [-]

    Returns
    -------
    dict of str -> ndarray of bool, shape (time,)
        ``thermal``, ``undervoltage``, ``transformer``, ``collapse`` and ``any``. A NaN
        value never counts by itself.
    """
    loading = np.asarray(loading)
    ok = np.ones(loading.shape[0], bool) if converged is None else np.asarray(converged, bool)
    collapse = ~ok
    flags = {"thermal": (loading > 1.0).any(axis=1) | collapse,
             "undervoltage": (np.asarray(v_customer_pu) < v_min_pu).any(axis=1) | collapse,
             "transformer": (np.asarray(tx_loading) > tx_factor).any(axis=1) | collapse,
             "collapse": collapse}
    flags["any"] = flags["thermal"] | flags["undervoltage"] | flags["transformer"]
    return flags


def percent_of_steps(flag: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Share of the valid steps that are flagged.

    Parameters
    ----------
    flag : ndarray of bool, shape (time,)
        Steps with a violation.
    valid : ndarray of bool, shape (time,), optional
        Steps to count (e.g. converged); default all.

    Returns
    -------
    float
        ``100 * flagged valid steps / valid steps``; NaN without valid steps. [%]
    """
    flag = np.asarray(flag, dtype=bool)
    valid = np.ones_like(flag) if valid is None else np.asarray(valid, dtype=bool)
    n = int(valid.sum())
    return 100.0 * int((flag & valid).sum()) / n if n else float("nan")


def zone_weights(load_zone: np.ndarray, load_phase: np.ndarray, n_zones: int) -> np.ndarray:
    """How each customer's power splits over the zones (a three-phase one: 1/3 to each phase).

    Parameters
    ----------
    load_zone : ndarray of int, shape (customer,)
        Zone index of each customer (a three-phase one: its feeder's phase-1 zone).
    load_phase : ndarray of int, shape (customer,)
        Phase 1..3, 0 for three-phase.
    n_zones : int
        Number of zones.

    Returns
    -------
    ndarray, shape (customer, zone)
        Weights; ``p_customer @ W`` gives per-zone sums. [-]
    """
    load_zone, load_phase = np.asarray(load_zone), np.asarray(load_phase)
    w = np.zeros((len(load_zone), n_zones))
    single = load_phase > 0
    w[np.flatnonzero(single), load_zone[single]] = 1.0
    for k in range(3):
        w[np.flatnonzero(~single), load_zone[~single] + k] = 1.0 / 3.0
    return w


def v2g_fulfilment(discharge_kw: np.ndarray, net_ev_kw: np.ndarray, headroom_kva: np.ndarray,
                   converged: np.ndarray, *, tol_kw: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """V2G requests and which of them were fulfilled (see the module docstring).

    Parameters
    ----------
    discharge_kw : ndarray, shape (time, zone)
        V2G discharge the schedule asks for, summed over the zone's EVs. [kW]
    net_ev_kw : ndarray, shape (time, zone)
        Zone's net EV power in the validation load flow (+ charging). [kW]
    headroom_kva : ndarray, shape (time, zone)
        Zone headroom recomputed from the validation load flow (NaN: not converged). [kVA]
    converged : ndarray of bool, shape (time,)
        Converged validation steps.
    tol_kw : float
        Power below which nothing is asked for or delivered. [kW]

    Returns
    -------
    requested, fulfilled : ndarray of bool, shape (time, zone)
    """
    requested = (np.asarray(discharge_kw) > tol_kw) & np.asarray(converged, bool)[:, None]
    delivered = np.asarray(net_ev_kw) < -tol_kw
    within = np.nan_to_num(np.asarray(headroom_kva, dtype=float), nan=-np.inf) >= 0.0
    return requested, requested & delivered & within


def headroom_stats(headroom_kva: np.ndarray, zones: np.ndarray | None = None) -> dict[str, float]:
    """Minimum, mean and share of negative values of a headroom array.

    Parameters
    ----------
    headroom_kva : ndarray, shape (time, zone)
        Headroom; NaN (non-converged steps) is left out. [kVA]
    zones : ndarray of bool, shape (zone,), optional
        Zones to include (e.g. those with customers); default all.

    Returns
    -------
    dict
        ``min_kva``, ``mean_kva`` [kVA] and ``negative_pct`` (zone-steps < 0) [%]; NaN if
        no finite value.
    """
    h = np.asarray(headroom_kva, dtype=np.float64)
    if zones is not None:
        h = h[:, np.asarray(zones, dtype=bool)]
    h = h[np.isfinite(h)]
    if not h.size:
        return {"min_kva": float("nan"), "mean_kva": float("nan"), "negative_pct": float("nan")}
    return {"min_kva": float(h.min()), "mean_kva": float(h.mean()),
            "negative_pct": 100.0 * float((h < 0).mean())}


def zone_of_customers(flags: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per (step, zone): any flagged customer of the zone.

    Parameters
    ----------
    flags : ndarray of bool, shape (time, customer)
    weights : ndarray, shape (customer, zone)
        Customer-to-zone weights from :func:`zone_weights` (> 0: the customer is in the zone).

    Returns
    -------
    ndarray of bool, shape (time, zone)
    """
    member = (np.asarray(weights) > 0).astype(np.float64)
    return np.asarray(flags, dtype=np.float64) @ member > 0


def violation_state(n_overloaded: np.ndarray, customer_under: np.ndarray,
                    step_flags: dict[str, np.ndarray],
                    clear: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """What the proof compares of one validation flow.

    Parameters
    ----------
    n_overloaded : ndarray of int, shape (time, zone)
        Feeder lines over their rating on the zone's phase (stage 3).
    customer_under : ndarray of bool, shape (time, customer)
        Customers under ``v_min_pu``.
    step_flags : dict of str -> ndarray of bool, shape (time,)
        :func:`violation_flags` of the flow (``transformer`` and ``collapse`` are used).
    clear : dict, optional
        The same three (``thermal``, ``undervoltage``, ``transformer``) past the limit by more
        than the proof's tolerance (``validate.proof_tolerance``); default: the above.

    Returns
    -------
    dict
        ``thermal`` (time, zone) counts, ``undervoltage`` (time, customer), ``transformer``
        and ``collapse`` (time,); ``clear_thermal``, ``clear_undervoltage`` and
        ``clear_transformer`` likewise.
    """
    state = {"thermal": np.asarray(n_overloaded),
             "undervoltage": np.asarray(customer_under, bool),
             "transformer": np.asarray(step_flags["transformer"], bool),
             "collapse": np.asarray(step_flags["collapse"], bool)}
    for kind in ("thermal", "undervoltage", "transformer"):
        state[f"clear_{kind}"] = np.asarray((clear or state)[kind], state[kind].dtype)
    return state


def added_violations(baseline: dict[str, np.ndarray], smart: dict[str, np.ndarray],
                     weights: np.ndarray) -> dict[str, np.ndarray]:
    """(step, zone) violations smart charging adds to the no-EV baseline (the proof).

    Thermal: more feeder lines clearly over their rating on the zone's phase than the
    baseline has over it at all. Undervoltage: a customer of the zone clearly under the limit
    who is not under it in the baseline. Transformer: a clear overload where the baseline has
    none (every zone). Collapse: a step that collapses only with smart charging (every zone,
    and every kind, at that step). "Clearly": past the limit by more than the proof's
    tolerance (the ``clear_*`` entries of :func:`violation_state`); the crossings by less
    are :func:`within_tolerance`'s.

    Parameters
    ----------
    baseline, smart : dict
        :func:`violation_state` of the baseline and of smart charging.
    weights : ndarray, shape (customer, zone)
        From :func:`zone_weights`.

    Returns
    -------
    dict of str -> ndarray of bool, shape (time, zone)
        One entry per :data:`KINDS_OF_VIOLATION`.
    """
    collapse = smart["collapse"] & ~baseline["collapse"]
    ok_both = ~smart["collapse"] & ~baseline["collapse"]
    n_zone = np.shape(smart["thermal"])[1]
    every = np.ones((1, n_zone), dtype=bool)
    thermal = (smart["clear_thermal"] > baseline["thermal"]) & ok_both[:, None]
    under = zone_of_customers(smart["clear_undervoltage"] & ~baseline["undervoltage"], weights)
    tx = smart["clear_transformer"] & ~baseline["transformer"] & ok_both
    return {"thermal": thermal | collapse[:, None],
            "undervoltage": (under & ok_both[:, None]) | collapse[:, None],
            "transformer": (tx | collapse)[:, None] & every,
            "collapse": collapse[:, None] & every}


def within_tolerance(baseline: dict[str, np.ndarray], smart: dict[str, np.ndarray],
                     weights: np.ndarray, counted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(step, zone) where smart charging passes a limit the baseline keeps, but by no more
    than the proof's tolerance: what the strict comparison would add and the proof does not
    count (reported beside the proof, so that nothing it leaves out is hidden).

    Parameters and returns as :func:`added_violations`, plus ``counted``: its result for
    the same flows (``collapse`` is all False here).
    """
    strict = dict(smart)
    for kind in ("thermal", "undervoltage", "transformer"):
        strict[f"clear_{kind}"] = smart[kind]
    loose = added_violations(baseline, strict, weights)
    near = {kind: loose[kind] & ~counted[kind] for kind in KINDS_OF_VIOLATION}
    near["collapse"] = np.zeros_like(near["collapse"])
    return near
