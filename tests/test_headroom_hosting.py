"""Stage 6 (hosting): reshaping, quantiles, energy, EVs, HP case choice, final customers."""

import math

import numpy as np
import pandas as pd
import pytest

from agileflex_hpc.errors import ConfigError, InputDataError
from agileflex_hpc.headroom import (
    NO_CASE,
    assign_hp_case,
    daily_energy_kwh,
    daily_profiles,
    evs_estimate,
    final_customers,
    quantile_profile,
)


def test_daily_profiles_match_loop_over_days_and_steps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3 * 4, 2))
    got = daily_profiles(x, 4)
    assert got.shape == (3, 4, 2)
    for d in range(3):
        for s in range(4):
            np.testing.assert_array_equal(got[d, s], x[d * 4 + s])


def test_daily_profiles_rejects_partial_day():
    with pytest.raises(InputDataError, match="13 steps"):
        daily_profiles(np.zeros((13, 2)), 4)
    with pytest.raises(ConfigError):
        daily_profiles(np.zeros((12, 2)), 0)


def _linear_quantile(values, q):
    """Brute force: sort, then interpolate linearly at position q * (n - 1)."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def test_quantile_profile_by_hand():
    # 5 days at one step: sorted [0, 5, 10, 15, 20]; q = 0.02 -> position 0.08 -> 0 + 0.08 * 5
    daily = np.array([10.0, 0, 5, 20, 15]).reshape(5, 1, 1)
    np.testing.assert_allclose(quantile_profile(daily), [[0.4]])
    # q = 0.5 -> position 2 -> 10
    np.testing.assert_allclose(quantile_profile(daily, q=0.5), [[10.0]])


def test_quantile_profile_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(10, 5, size=(7 * 6, 3))
    daily = daily_profiles(x, 6)
    got = quantile_profile(daily, q=0.1)
    assert got.shape == (6, 3)
    for s in range(6):
        for z in range(3):
            days = [x[d * 6 + s, z] for d in range(7)]
            assert got[s, z] == pytest.approx(_linear_quantile(days, 0.1))


def test_collapsed_days_rank_as_minus_infinity():
    # 7 days; step 0 collapsed (NaN) on day 3. q = 0.02 -> position 0.12: between the -inf day
    # and the next -> -inf (the time of day has no headroom). q = 0.5 -> position 3 of
    # [-inf, 1, 2, 4, 5, 6, 7] -> 4: one collapsed day in seven does not reach the median.
    daily = np.array([1.0, 2, 4, np.nan, 5, 6, 7]).reshape(7, 1, 1)
    daily = np.concatenate([daily, np.ones((7, 1, 1))], axis=1)  # step 1 never collapses
    got = quantile_profile(daily)
    assert got[0, 0] == -np.inf and got[1, 0] == pytest.approx(1.0)
    assert quantile_profile(daily, q=0.5)[0, 0] == pytest.approx(4.0)
    # the daily energy is then -inf and the zone hosts no EVs (no V2G escape)
    energy = daily_energy_kwh(got, step_hours=1 / 6)
    assert energy[0] == -np.inf
    assert evs_estimate(energy, np.array([10]))[0] == 0


def test_daily_energy_by_hand():
    # zone 0: [10, 20, -5, 0] kW, 10-min steps:
    #   (30 * 0.98 - 5 / 0.98) / 6 = (29.4 - 5.1020408) / 6 = 4.0496599 kWh
    # zone 1: [-1, -1, -1, -1]: -4 / 0.98 / 6 = -0.6802721 kWh
    profile = np.array([[10.0, -1], [20, -1], [-5, -1], [0, -1]])
    got = daily_energy_kwh(profile, step_hours=1 / 6)
    np.testing.assert_allclose(got, [4.0496599, -0.6802721], rtol=1e-7)
    # efficiency 1, 1-h steps: plain sum
    np.testing.assert_allclose(daily_energy_kwh(profile, step_hours=1.0, efficiency=1.0), [25, -4])


def test_evs_hosted_by_hand():
    # 30 / 14.2 = 2.11 -> 2; 100 / 14.2 = 7.04 -> 7, capped at 5 customers;
    # -5 -> floor(-0.35) = -1 -> 0; 1000 / 14.2 = 70.4 -> 70, capped at 20; NaN -> 0;
    # 28.4 / 14.2 = 2 exactly -> 2; 0 customers -> 0.
    energy = [30.0, 100.0, -5.0, 1000.0, np.nan, 28.4, 50.0]
    customers = [5, 5, 5, 20, 3, 9, 0]
    assert evs_estimate(energy, customers).tolist() == [2, 5, 0, 20, 0, 2, 0]
    assert evs_estimate([30.0], [5], kwh_per_ev=10.0).tolist() == [3]


HP_PCT = np.array([0.0, 25, 50, 75, 100])


def _hp_inputs():
    """6 zones x 5 cases, 2 steps a day; profiles give the sign, energies given directly."""
    ok, neg = [5.0, 0.0], [5.0, -1.0]  # 0 is not negative
    # zone:       0        1        2          3        4        5
    signs = [
        [ok, ok, neg, ok, ok, ok],  # case 0: 0 % HP
        [ok, ok, neg, ok, ok, neg],  # case 1: 25 %
        [ok, ok, neg, neg, ok, neg],  # case 2: 50 %
        [ok, neg, neg, neg, neg, ok],  # case 3: 75 %
        [ok, neg, neg, neg, neg, neg],  # case 4: 100 %
    ]
    profiles = np.array(signs).transpose(0, 2, 1)  # (case, step, zone)
    energy = np.full((5, 6), 50.0)
    energy[3, 3] = 150.0  # zone 3, 75 % case: negative but > 120 kWh -> V2G allowed
    energy[4, 3] = 100.0  # zone 3, 100 % case: negative, 100 kWh -> not allowed
    energy[3, 4] = 120.0  # zone 4: exactly 120 kWh does not exceed 120 -> not allowed
    return profiles, energy


def test_assign_hp_case_every_branch():
    profiles, energy = _hp_inputs()
    got = assign_hp_case(HP_PCT, profiles, energy)
    # zone 0: none negative -> top case 4; zone 1: cases 0-2 ok -> 2; zone 2: all negative,
    # low energy -> none (-1); zone 3: case 3 via V2G; zone 4: 120 kWh not enough -> 2;
    # zone 5: case 3 ok although cases 1, 2 are negative -> 3 (most HPs among non-negative).
    assert got.case_index.tolist() == [4, 2, NO_CASE, 3, 2, 3]
    assert got.v2g.tolist() == [False, False, False, True, False, False]
    assert got.rule.tolist() == ["all_ok", "best_ok", "none", "v2g", "best_ok", "best_ok"]
    # "no HPs" reported as the 0 % HP case when asked
    assert assign_hp_case(HP_PCT, profiles, energy, none_case=0).case_index[2] == 0


def test_assign_hp_case_v2g_threshold_and_nan():
    profiles, energy = _hp_inputs()
    # threshold 99: zone 3's 100 % case (100 kWh) now allowed via V2G
    got = assign_hp_case(HP_PCT, profiles, energy, v2g_energy_kwh=99.0)
    assert got.case_index[3] == 4 and got.v2g[3]
    # a NaN profile value counts as negative
    profiles[4, 0, 0] = np.nan
    assert assign_hp_case(HP_PCT, profiles, energy).case_index[0] == 3


def test_assign_hp_case_rejects_bad_shapes():
    profiles, energy = _hp_inputs()
    with pytest.raises(InputDataError, match="daily_energy"):
        assign_hp_case(HP_PCT, profiles, energy[:, :2])


def _customers():
    base = pd.DataFrame(
        {"load": ["l1", "l2", "l3", "l4"], "zone": ["1A", "2A", "1A", "1B"],
         "has_hp": [False] * 4, "pv_kwp": [0.0] * 4}
    )
    high = base.assign(has_hp=[True, True, False, True], pv_kwp=[2.0, 0.0, 3.0, 1.0])
    return {"00PV00HP": base, "25PV50HP": high}


def test_final_customers_picks_assigned_case_rows():
    got = final_customers(_customers(), {"1A": "25PV50HP", "2A": "00PV00HP", "1B": "25PV50HP"})
    assert got["load"].tolist() == ["l1", "l2", "l3", "l4"]
    assert got["assigned_case"].tolist() == ["25PV50HP", "00PV00HP", "25PV50HP", "25PV50HP"]
    assert got["has_hp"].tolist() == [True, False, False, True]
    assert got["pv_kwp"].tolist() == [2.0, 0.0, 3.0, 1.0]


def test_final_customers_rejects_missing_zone_and_unknown_case():
    with pytest.raises(InputDataError, match="1B"):
        final_customers(_customers(), {"1A": "25PV50HP", "2A": "00PV00HP"})
    with pytest.raises(InputDataError, match="50PV100HP"):
        final_customers(_customers(), {"1A": "50PV100HP", "2A": "00PV00HP", "1B": "00PV00HP"})
    tables = _customers()
    tables["25PV50HP"] = tables["25PV50HP"].iloc[::-1]
    with pytest.raises(InputDataError, match="same customers"):
        final_customers(tables, {"1A": "00PV00HP", "2A": "00PV00HP", "1B": "00PV00HP"})
