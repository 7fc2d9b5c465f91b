"""Stage 4 (voltage limits): every rule against hand-computed least-squares fits."""

import numpy as np
import pytest

from agileflex_hpc.errors import InputDataError
from agileflex_hpc.headroom import fit_voltage_limit, fit_voltage_limits


def test_rule_fit_exact_line():
    # Vmin = 1.0 - 0.002 * P exactly: m = -0.002, c = 1.0, limit = (0.94 - 1.0) / -0.002 = 30.
    # Only P = 40 (V = 0.92) is below 0.94 and 40 > 30 -> the fit stands.
    # Share: points with P <= 30 are P = 0, 10, 20, 30 (V 1.0 .. 0.94, none < 0.94) -> 0.
    p = np.array([0.0, 10, 20, 30, 40])
    got = fit_voltage_limit(p, 1.0 - 0.002 * p)
    assert got.rule == "fit"
    assert got.slope_pu_per_kva == pytest.approx(-0.002)
    assert got.intercept_pu == pytest.approx(1.0)
    assert got.limit_kva == pytest.approx(30.0)
    assert got.share_below == 0.0
    assert got.n_points == 5


def test_rule_fallback_factor_wins():
    # V = 1.0, 0.99, 0.98 at P = 0, 10, 20: m = -0.001, c = 1.0, fitted = 0.06 / 0.001 = 60.
    # No point below 0.94 -> limit = max(0.6 * 60, max P = 20) = 36.
    got = fit_voltage_limit([0.0, 10, 20], [1.0, 0.99, 0.98])
    assert got.rule == "fallback"
    assert got.limit_kva == pytest.approx(36.0)
    assert got.share_below == 0.0


def test_rule_fallback_max_flow_wins():
    # V = 1.0, 0.95 at P = 0, 100: m = -0.0005, c = 1.0, fitted = 0.06 / 0.0005 = 120.
    # 0.6 * 120 = 72 < max P = 100 -> limit = 100.
    got = fit_voltage_limit([0.0, 100], [1.0, 0.95])
    assert got.rule == "fallback"
    assert got.limit_kva == pytest.approx(100.0)


def test_rule_observed_by_hand():
    # P = 0, 10, 20, 30; V = 1.00, 0.93, 0.99, 0.95.
    # mean P = 15, dP = -15, -5, 5, 15, Sxx = 225 + 25 + 25 + 225 = 500
    # mean V = 3.87 / 4 = 0.9675, dV = 0.0325, -0.0375, 0.0225, -0.0175
    # Sxy = -0.4875 + 0.1875 + 0.1125 - 0.2625 = -0.45 -> m = -0.0009
    # c = 0.9675 + 0.0009 * 15 = 0.981; fitted = (0.94 - 0.981) / -0.0009 = 45.56
    # P = 10 has V = 0.93 < 0.94 and 10 < 45.56 -> limit = min P with V <= 0.94 = 10.
    # Share: P <= 10 -> (0, 1.00), (10, 0.93) -> 1 of 2 below -> 0.5.
    got = fit_voltage_limit([0.0, 10, 20, 30], [1.00, 0.93, 0.99, 0.95])
    assert got.slope_pu_per_kva == pytest.approx(-0.0009)
    assert got.intercept_pu == pytest.approx(0.981)
    assert got.rule == "observed"
    assert got.limit_kva == pytest.approx(10.0)
    assert got.share_below == pytest.approx(0.5)


def test_rule_nofit_observed_positive_slope_and_equality():
    # P = 0, 5, 10, 30; V = 1.00, 0.94, 0.93, 0.99.
    # mean P = 11.25, dP = -11.25, -6.25, -1.25, 18.75; mean V = 0.965,
    # dV = 0.035, -0.025, -0.035, 0.025; Sxy = -0.39375 + 0.15625 + 0.04375 + 0.46875 = 0.275 > 0
    # -> no usable fit; P = 10 is below 0.94 -> limit = min P with V <= 0.94 = 5 (V == 0.94 counts).
    # Share: P <= 5 -> V 1.00, 0.94, none strictly below -> 0.
    got = fit_voltage_limit([0.0, 5, 10, 30], [1.00, 0.94, 0.93, 0.99])
    assert got.slope_pu_per_kva == pytest.approx(0.275 / 518.75)
    assert got.rule == "nofit_observed"
    assert got.limit_kva == pytest.approx(5.0)
    assert got.share_below == 0.0


def test_rule_nofit_max_positive_slope():
    # Slope +0.001 >= 0 and no point below 0.94 -> limit = max P = 20.
    got = fit_voltage_limit([0.0, 10, 20], [0.97, 0.98, 0.99])
    assert got.rule == "nofit_max"
    assert got.slope_pu_per_kva == pytest.approx(0.001)
    assert got.limit_kva == pytest.approx(20.0)


def test_all_flows_equal_and_single_point():
    same = fit_voltage_limit([5.0, 5, 5], [0.96, 0.97, 0.95])
    assert same.rule == "nofit_max" and same.limit_kva == 5.0
    assert np.isnan(same.slope_pu_per_kva) and np.isnan(same.intercept_pu)
    one_ok = fit_voltage_limit([7.0], [0.95])
    assert (one_ok.rule, one_ok.limit_kva, one_ok.share_below) == ("nofit_max", 7.0, 0.0)
    one_low = fit_voltage_limit([7.0], [0.93])
    assert (one_low.rule, one_low.limit_kva, one_low.share_below) == ("nofit_observed", 7.0, 1.0)


def test_no_points_gives_no_limit():
    got = fit_voltage_limit(np.array([]), np.array([]))
    assert got.rule == "no_data" and np.isnan(got.limit_kva) and got.n_points == 0


def test_custom_v_lim_and_factor():
    # Same exact line as test_rule_fit, V_lim 0.90: fitted = 0.10 / 0.002 = 50; no V < 0.90
    # (min 0.92) -> fallback with factor 0.5: max(25, 40) = 40.
    p = np.array([0.0, 10, 20, 30, 40])
    got = fit_voltage_limit(p, 1.0 - 0.002 * p, v_lim=0.90, fallback_factor=0.5)
    assert got.rule == "fallback" and got.limit_kva == pytest.approx(40.0)


@pytest.mark.parametrize(
    "p, v", [([0.0, np.nan], [1.0, 0.95]), ([0.0, 1.0], [1.0]), ([[0.0, 1.0]], [[1.0, 0.9]])]
)
def test_fit_rejects_bad_points(p, v):
    with pytest.raises(InputDataError):
        fit_voltage_limit(p, v)


def test_wrapper_over_zones():
    # zone 0: observed example (as above) + a non-converged point (masked, would be 'fit' data).
    # zone 1: exact line of test_rule_fit on P = 0..30 (4 points) + a NaN-Vmin point dropped.
    # zone 2: no customers. zone 3: all Vmin NaN (no bus on that phase) but customers -> no_data.
    p = np.array([[0.0, 0, 1, 0], [10, 10, 2, 0], [20, 20, 3, 0], [30, 30, 4, 0], [500, 40, 5, 0]])
    v = np.array(
        [
            [1.00, 1.00, 1.0, np.nan],
            [0.93, 0.98, 1.0, np.nan],
            [0.99, 0.96, 1.0, np.nan],
            [0.95, 0.94, 1.0, np.nan],
            [0.10, np.nan, 1.0, np.nan],
        ]
    )
    valid = np.array([True, True, True, True, False])
    got = fit_voltage_limits(p, v, [True, True, False, True], valid=valid)
    assert got.rule.tolist() == ["observed", "fallback", "no_customers", "no_data"]
    # zone 1: m = -0.002, c = 1, fitted 30, no V < 0.94 -> max(0.6 * 30, 30) = 30
    np.testing.assert_allclose(got.limit_kva[:2], [10.0, 30.0])
    assert np.isnan(got.limit_kva[2:]).all()
    assert got.n_points.tolist() == [4, 4, 0, 0]
    np.testing.assert_allclose(got.slope_pu_per_kva[:2], [-0.0009, -0.002])


def test_wrapper_rejects_shape_mismatch():
    with pytest.raises(InputDataError, match="has_customers"):
        fit_voltage_limits(np.zeros((3, 2)), np.ones((3, 2)), [True])
