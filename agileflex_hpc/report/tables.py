"""The report's tables as a planner reads them: column names in words with units, codes
spelled out, wide tables split by topic, and a glossary of the terms used.

Every function takes the run's table (as the stages write it, machine names) and returns a new
DataFrame for display; the CSV downloads keep the machine names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["BINDING", "RULE", "KIND", "hosting_view", "violations_view", "extremes_view",
           "headroom_view", "zones_view", "collapse_view", "rounds_view", "proof_view",
           "overview_view", "spread_view", "GLOSSARY"]

BINDING = {"c": "cable (thermal)", "v": "voltage", "t": "transformer"}
RULE = {"all_ok": "every case fits", "best_ok": "most HPs that fit", "v2g": "relies on V2G",
        "none": "no case fits"}
KIND = {"none": "no EVs (baseline)", "smart": "smart charging", "dumb": "uncontrolled"}
SEARCH = {"up": "up", "down": "down", "": "-"}


def _rename(df: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The columns of ``names`` that ``df`` has, in that order, renamed."""
    cols = [c for c in names if c in df.columns]
    return df[cols].rename(columns=names)


def _yes_no(x: object) -> str:
    if pd.isna(x):
        return "-"
    return "yes" if str(x).lower() in ("true", "1") else "no"


def hosting_view(df: pd.DataFrame) -> pd.DataFrame:
    """Stage 6/7 per zone: heat pumps, EVs hosted beside the estimate, what binds."""
    out = df.copy()
    out["binding"] = out["binding"].map(lambda b: BINDING.get(str(b), str(b)))
    if "rule" in out:
        out["rule"] = out["rule"].map(lambda r: RULE.get(str(r), str(r)))
    for col in ("confirmed", "v2g"):
        if col in out:
            out[col] = out[col].map(_yes_no)
    if "searched" in out:
        out["searched"] = out["searched"].fillna("").map(lambda s: SEARCH.get(str(s), str(s)))
    return _rename(out, {
        "zone": "Zone", "customers": "Customers", "case": "Heat-pump / PV case",
        "hps": "Heat pumps", "evs_hosted": "EVs hosted", "evs_estimate": "EVs estimated",
        "confirmed": "Confirmed", "searched": "Searched from the estimate",
        "binding": "Binding limit", "worst_headroom_kva": "Worst headroom [kVA]",
        "worst_time": "at (time of day)", "rule": "Case rule",
        "v2g_requested_kwh": "V2G requested [kWh]",
        "v2g_delivered_kwh": "V2G delivered [kWh]"})


def spread_view(df: pd.DataFrame) -> pd.DataFrame | None:
    """With samples: per zone the pooled plan beside the plans of single samples (None
    without samples)."""
    if "evs_min" not in df:
        return None
    return _rename(df, {
        "zone": "Zone", "case": "Heat-pump / PV case (pooled)",
        "case_min": "Case, lowest sample", "case_median": "Case, median sample",
        "case_max": "Case, highest sample", "evs_estimate": "EVs estimated (pooled)",
        "evs_min": "Estimate, lowest sample", "evs_median": "Estimate, median sample",
        "evs_max": "Estimate, highest sample", "evs_hosted": "EVs hosted"})


def _kind(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["kind"] = out["kind"].map(lambda k: KIND.get(str(k), str(k)))
    return out


def violations_view(summary: pd.DataFrame) -> pd.DataFrame:
    """Share of time steps with each kind of violation, per charging kind."""
    return _rename(_kind(summary), {
        "kind": "Charging", "evs": "EVs", "pct_thermal": "Thermal [% of steps]",
        "pct_undervoltage": "Undervoltage [% of steps]",
        "pct_tx_overload": "Transformer [% of steps]", "pct_collapse": "Collapse [% of steps]",
        "pct_any": "Any [% of steps]"})


def extremes_view(summary: pd.DataFrame) -> pd.DataFrame:
    """Worst voltage and loading, EV energy and peak, V2G."""
    return _rename(_kind(summary), {
        "kind": "Charging", "v_min_customer_pu": "Lowest customer voltage [pu]",
        "max_line_loading_pct": "Highest line loading [%]",
        "ev_energy_kwh": "EV energy [kWh]", "ev_peak_kw": "EV peak [kW]",
        "v2g_requests": "V2G requests [zone-steps]", "v2g_fulfilled_pct": "V2G fulfilled [%]"})


def headroom_view(summary: pd.DataFrame) -> pd.DataFrame:
    """Headroom before (no EVs) and after charging, over zones and steps."""
    return _rename(_kind(summary), {
        "kind": "Charging", "headroom_before_min_kva": "Min before [kVA]",
        "headroom_after_min_kva": "Min after [kVA]",
        "headroom_before_mean_kva": "Mean before [kVA]",
        "headroom_after_mean_kva": "Mean after [kVA]",
        "negative_headroom_before_pct": "Negative before [% of zone-steps]",
        "negative_headroom_after_pct": "Negative after [% of zone-steps]"})


def zones_view(zones: pd.DataFrame) -> pd.DataFrame:
    """Stage 8 per zone and charging kind."""
    return _rename(_kind(zones), {
        "zone": "Zone", "kind": "Charging", "customers": "Customers",
        "ev_energy_kwh_per_day": "EV energy [kWh/day]",
        "headroom_before_min_kva": "Min headroom before [kVA]",
        "headroom_after_min_kva": "Min headroom after [kVA]",
        "negative_headroom_after_pct": "Negative headroom after [% of steps]",
        "overloaded_steps": "Steps with an overloaded line", "v2g_requests": "V2G requests",
        "v2g_fulfilled_pct": "V2G fulfilled [%]"})


def collapse_view(df: pd.DataFrame) -> pd.DataFrame:
    return _rename(df, {"case": "Case", "collapsed_steps": "Steps without a solution",
                        "of_steps": "of steps"})


def rounds_view(df: pd.DataFrame) -> pd.DataFrame:
    return _rename(df, {"round": "Round", "zones_unproved": "Zones with added violations",
                        "zones_replanned": "Zones re-planned",
                        "violation_zone_steps": "Added violations [zone-steps]",
                        "evs_hosted": "EVs hosted"})


def proof_view(df: pd.DataFrame) -> pd.DataFrame:
    """The proof rows, the worst added violation's values in the unit of its kind."""
    df = df.copy()
    unit = np.where(df["violation"] == "undervoltage", "pu", "% of rating")
    for col in ("worst_smart", "worst_baseline"):
        df[col] = ["" if not np.isfinite(v) else f"{v:.5f}" if u == "pu" else f"{v:.3f}"
                   for v, u in zip(df[col].astype(float), unit)]
    df["unit"] = np.where(df["worst_smart"] == "", "", unit)
    return _rename(df, {"violation": "Violation", "zone": "Zone", "steps": "Steps",
                        "first": "First", "last": "Last", "worst_element": "Worst at",
                        "worst_time": "Worst time", "worst_smart": "Worst, smart charging",
                        "worst_baseline": "Same, no EVs", "unit": "Unit"})


def overview_view(df: pd.DataFrame) -> pd.DataFrame:
    """One row per network: the answer in numbers."""
    return _rename(df, {
        "network": "Network", "customers": "Customers", "zones": "Zones with customers",
        "hps": "Heat pumps hosted", "evs_hosted": "EVs hosted",
        "evs_estimate": "EVs estimated", "unconfirmed": "Zones unconfirmed",
        "binding": "Binding limits (zones)", "collapse_steps": "Collapse steps",
        "proof": "Smart charging vs no-EV baseline", "rounds": "Rounds",
        "assumed_ratings": "Lines rated by assumption"})


GLOSSARY: dict[str, str] = {
    "Zone": "One phase of one feeder (F2P3: feeder 2, phase 3); the unit the hosting answer "
            "is given for.",
    "Headroom / footroom": "How much more demand (headroom) or generation (footroom) a zone "
                           "can take at a time step before its binding limit is reached, in "
                           "kVA; negative headroom means the limit is already exceeded.",
    "Quantile profile": "The headroom at each time of day that the zone keeps on all but the "
                        "worst share of days (the job's headroom.quantile, 2 % by default).",
    "Binding limit": "What limits the zone: cable (the supply cable's thermal rating), "
                     "voltage (the flow at which the voltage fit of stage 4 reaches its "
                     "limit) or transformer (the zone's share of the transformer rating).",
    "Lines rated by assumption": "Lines whose network files give no rating (NormAmps): the "
                                 "job's network.unrated_rating_a stands in for it (shown in "
                                 "brackets). Where a supply cable is among them, the cable "
                                 "limit of its zones is that assumption, not data.",
    "Heat-pump / PV case": "The penetration case assigned to the zone: 25PV50HP means 25 % of "
                           "customers with PV and 50 % with a heat pump.",
    "Case rule": "How the case was chosen: every case fits (the top case), most HPs that fit "
                 "(the most heat pumps whose quantile headroom is never negative), relies on "
                 "V2G (negative at times, allowed because the day's energy room is large and "
                 "EVs can discharge then), or no case fits.",
    "EVs estimated / hosted": "The estimate is stage 6's energy bound; hosted is what the EV "
                              "optimisation (stage 7) can schedule within the headroom, found "
                              "by a search up or down from the estimate.",
    "Samples": "With cases.samples > 1, each sample redraws which customers have a heat "
               "pump or PV and which demand profile each has. The plan pools the days of "
               "all samples in its quantile profile, taking at each time of day the worst "
               "2 % of all (sample, day) pairs, so its answer can be below every single "
               "sample's; the lowest, median and highest sample columns are the plan made "
               "from one sample alone, and the plan is validated on a further sample it "
               "never saw (out of sample).",
    "Confirmed": "The EV search proved the hosted number (no attempt stopped by a solver "
                 "limit); unconfirmed zones are lower bounds.",
    "Charging": "No EVs (the baseline with the same heat pumps), smart (the optimised "
                "schedules) or uncontrolled (the same EVs charging on arrival).",
    "Collapse": "A time step whose power flow has no solution (voltage collapse); it counts "
                "as a violation of every kind.",
    "V2G request / fulfilled": "A zone-step where the smart schedule discharges; fulfilled "
                               "when the validation flow shows the zone exporting and its "
                               "recomputed headroom is not negative.",
    "Negative headroom after": "The share of zone-steps whose headroom, recomputed on the "
                               "validation flow, is below zero. Smart charging is planned to "
                               "fill the headroom it is given, so the headroom left after it "
                               "is smaller by design and a zone can end a step just below "
                               "zero without any limit being exceeded; whether limits are "
                               "exceeded is what the violation columns and the proof count.",
    "Proved": "Smart charging adds no violation (thermal, undervoltage, transformer or "
              "collapse) to the no-EV baseline at any zone and step; where it does, the "
              "plan-validate loop lowers those zones' EV bounds and validates again. An "
              "added violation counts where it is past its limit by more than the proof "
              "tolerance (run parameters: 1e-4 is 0.024 V at 240 V, or 0.01 % of a rating); "
              "the crossings within it are listed beside the proof, not counted.",
}
