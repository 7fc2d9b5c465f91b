"""Stage 5 (headroom): thermal rate, binding constraint and the transformer equal share."""

import numpy as np
import pytest

from agileflex_hpc.errors import InputDataError
from agileflex_hpc.headroom import compute_headroom, thermal_rate_kva
from agileflex_hpc.headroom.rates import transformer_share


def test_thermal_rate_by_hand():
    # 2 feeders: supply cables 400 A (zones A1-A3) and 300 A (B1-B3).
    # Busbar t0 = [1.02, 0.98, 1.00] pu, t1 = [1.00, 1.01, 0.99] pu.
    # 0.416 kV / sqrt(3) = 0.2401777 kV; 0.9 * 400 A * 0.2401777 = 86.46398 kVA at 1 pu,
    # 0.9 * 300 A * 0.2401777 = 64.84798 kVA at 1 pu; times the phase's busbar voltage.
    busbar = np.array([[1.02, 0.98, 1.00], [1.00, 1.01, 0.99]], dtype=np.float32)
    got = thermal_rate_kva([400, 400, 400, 300, 300, 300], busbar, [1, 2, 3, 1, 2, 3])
    expected = [
        [88.193256, 84.734697, 86.463976, 66.144942, 63.551023, 64.847982],
        [86.463976, 87.328616, 85.599337, 64.847982, 65.496462, 64.199502],
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_thermal_rate_options():
    # 1.0 * 100 A * 1 pu * 0.4 kV / sqrt(3) = 23.094011 kVA
    got = thermal_rate_kva([100.0], [[1.0, 1.0, 1.0]], [2], thermal_factor=1.0, v_ll_kv=0.4)
    np.testing.assert_allclose(got, [[23.094011]], rtol=1e-7)


def test_thermal_rate_rejects_bad_phase():
    with pytest.raises(InputDataError, match="zone_phase"):
        thermal_rate_kva([100.0], [[1.0, 1.0, 1.0]], [4])


def _case():
    # zones: 0 and 1 have customers, 2 has none.
    thermal = np.array([[100.0, 80.0, 50.0], [100.0, 80.0, 50.0]])
    vlim = np.array([60.0, np.nan, 40.0])  # zone 1: no voltage limit
    pflow = np.array([[20.0, 10.0, 0.0], [50.0, -30.0, 5.0]])
    s_tx = np.array([200.0, 100.0])
    return pflow, thermal, vlim, s_tx


def test_headroom_with_transformer_share_by_hand():
    pflow, thermal, vlim, s_tx = _case()
    got = compute_headroom(
        pflow, thermal, vlim, s_tx_kva=s_tx, tx_rating_kva=300.0, has_customers=[True, True, False]
    )
    # rate = [min(100, 60) = 60 'v', 80 'c' (no limit), min(50, 40) = 40 'v'] at both steps
    np.testing.assert_array_equal(got.rate_kva, [[60, 80, 40], [60, 80, 40]])
    # footroom = rate + P: t0 [80, 90, 40], t1 [110, 50, 45]
    np.testing.assert_array_equal(got.footroom_kva, [[80, 90, 40], [110, 50, 45]])
    # transformer headroom = 300 - [200, 100] = [100, 200]
    np.testing.assert_array_equal(got.tx_headroom_kva, [100, 200])
    # t0: rate - P = [40, 70, 40]; zones with customers sum 40 + 70 = 110 > 100 -> excess 10,
    #     5 off zones 0 and 1 -> [35, 65], zone 2 untouched (40), flags t, t, v.
    # t1: rate - P = [10, 110, 35]; 10 + 110 = 120 <= 200 -> unchanged.
    np.testing.assert_array_equal(got.headroom_kva, [[35, 65, 40], [10, 110, 35]])
    np.testing.assert_array_equal(got.tx_excess_kva, [10, 0])
    assert got.binding.dtype == np.dtype("S1")
    assert got.binding.tolist() == [[b"t", b"t", b"v"], [b"v", b"c", b"v"]]


def test_transformer_share_default_all_zones_and_negative_headroom():
    pflow, thermal, vlim, s_tx = _case()
    # all three share: t0 sum 40 + 70 + 40 = 150 > 100 -> 50 / 3 each off;
    # t1 sum 10 + 110 + 35 = 155 <= 200 -> none.
    got = compute_headroom(pflow, thermal, vlim, s_tx_kva=s_tx, tx_rating_kva=300.0)
    np.testing.assert_allclose(
        got.headroom_kva, [[40 - 50 / 3, 70 - 50 / 3, 40 - 50 / 3], [10, 110, 35]]
    )
    # overloaded transformer: rating 150, t0 import 200 -> H = -50: both customer zones
    # (40, 70) go to 0, then each takes H / 2 = -25. t1: H = 50 < 10 + 110: water level 60
    # (110 - 60 = 50 = H), so zone 0 stops at 0 (not -50) and zone 1 keeps 50.
    got = compute_headroom(
        pflow, thermal, vlim, s_tx_kva=s_tx, tx_rating_kva=150.0, has_customers=[True, True, False]
    )
    np.testing.assert_allclose(got.headroom_kva, [[-25, -25, 40], [0, 50, 35]])
    np.testing.assert_allclose(got.tx_excess_kva, [110 + 50, 70])
    assert got.binding.tolist() == [[b"t", b"t", b"v"], [b"t", b"t", b"v"]]


@pytest.mark.parametrize(
    ("tx_headroom", "expected"),
    [
        (200.0, [-10, 30, 50, 0]),  # H large: nothing to share
        (40.0, [-10, 10, 30, 0]),  # between: cut 20 off the positives (10 + 30 = 40)
        (15.0, [-10, 0, 15, 0]),  # cut 35: zone 1 stops at 0, zone 2 keeps 15 = H
        (0.0, [-10, 0, 0, 0]),  # nothing left: positives to 0, negatives kept
        (-30.0, [-17.5, -7.5, -7.5, -7.5]),  # overloaded: positives to 0, then -30 / 4 each
    ],
)
def test_transformer_share_water_filling_by_hand(tx_headroom, expected):
    h = np.array([[-10.0, 30.0, 50.0, 0.0]])
    got = transformer_share(h, np.array([tx_headroom]))
    np.testing.assert_allclose(got, [expected])


def test_transformer_share_never_promises_more_than_the_transformer():
    rng = np.random.default_rng(5)
    h = rng.normal(5, 20, (500, 9))
    cap = rng.normal(20, 60, 500)
    got = transformer_share(h, cap)
    assert np.all(np.clip(got, 0, None).sum(axis=1) <= np.clip(cap, 0, None) + 1e-9)
    assert np.all(got[cap < 0] < 0)
    fits = np.clip(h, 0, None).sum(axis=1) <= cap
    np.testing.assert_array_equal(got[fits], h[fits])  # untouched where it fits
    assert np.all(got <= h + 1e-12)  # never raised
    # where it binds with H >= 0, the positives are filled exactly to H
    binds = ~fits & (cap >= 0)
    np.testing.assert_allclose(np.clip(got[binds], 0, None).sum(axis=1), cap[binds])


def test_collapsed_steps_stay_nan_and_take_no_share():
    got = compute_headroom([[np.nan, np.nan], [10.0, 10.0]], [[50.0, 50.0], [50.0, 50.0]],
                           [np.nan, np.nan], s_tx_kva=[np.nan, 60.0], tx_rating_kva=100.0)
    assert np.isnan(got.headroom_kva[0]).all()
    np.testing.assert_allclose(got.headroom_kva[1], [20, 20])  # 40 + 40 > 40: cut 20 each


def test_export_raises_transformer_headroom_and_tie_is_cable():
    # s_tx = -50 (export): tx headroom = 100 + 50 = 150. Voltage limit == thermal -> 'c'.
    got = compute_headroom(
        [[-20.0, 30.0]], [[70.0, 70.0]], [70.0, np.nan], s_tx_kva=[-50.0], tx_rating_kva=100.0
    )
    # headroom = [70 + 20, 70 - 30] = [90, 40]; sum 130 <= 150 -> unchanged
    np.testing.assert_array_equal(got.tx_headroom_kva, [150.0])
    np.testing.assert_array_equal(got.headroom_kva, [[90.0, 40.0]])
    np.testing.assert_array_equal(got.footroom_kva, [[50.0, 100.0]])
    assert got.binding.tolist() == [[b"c", b"c"]]


def test_compute_headroom_rejects_bad_shapes():
    pflow, thermal, vlim, s_tx = _case()
    with pytest.raises(InputDataError, match="voltage_limit_kva"):
        compute_headroom(pflow, thermal, vlim[:2], s_tx_kva=s_tx, tx_rating_kva=300.0)
    with pytest.raises(InputDataError, match="s_tx_kva"):
        compute_headroom(pflow, thermal, vlim, s_tx_kva=s_tx[:1], tx_rating_kva=300.0)
    with pytest.raises(InputDataError, match="tx_rating_kva"):
        compute_headroom(pflow, thermal, vlim, s_tx_kva=s_tx, tx_rating_kva=0.0)
