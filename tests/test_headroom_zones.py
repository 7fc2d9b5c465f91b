"""Stage 3 (zones) against a hand-built 2-feeder network.

Network (6 buses, 6 lines)::

    bus 0 (LV busbar)
     |-- line 0 (400 A, supply A) -- bus 1 -- line 1 (200 A) -- bus 2 -- line 2 (100 A) -- bus 3
     |-- line 3 (300 A, supply B) -- bus 4 -- line 4 (150 A) -- bus 5
     `-- line 5 (50 A, spare cable, no feeder)

Feeder B has no phase 3 (NaN voltages and currents), so zone (B, 3) has NaN Vmin.
Zones, feeder-major: A1 A2 A3 B1 B2 B3.
"""

import numpy as np
import pytest

from agileflex_hpc.errors import InputDataError
from agileflex_hpc.headroom import zone_index, zone_series

NAN = np.nan
FEEDER_BUSES = [np.array([1, 2, 3]), np.array([4, 5])]
FEEDER_LINES = [np.array([0, 1, 2]), np.array([3, 4])]
SUPPLY_LINES = [np.array([0]), np.array([3])]  # one cable per feeder
RATING_A = np.array([400.0, 200.0, 100.0, 300.0, 150.0, 50.0])


def _network():
    v = np.full((2, 6, 3), NAN, dtype=np.float32)
    v[:, 0] = 1.02  # busbar: not part of any feeder
    #               t0                    t1
    v[0, 1], v[1, 1] = [1.01, 1.00, 0.99], [0.96, 0.97, 1.00]
    v[0, 2], v[1, 2] = [0.99, 0.985, 0.97], [0.95, 0.975, 1.01]
    v[0, 3], v[1, 3] = [0.97, 0.99, 0.95], [0.93, 0.98, 1.03]
    v[0, 4], v[1, 4] = [1.00, 0.99, NAN], [0.99, 1.00, NAN]
    v[0, 5], v[1, 5] = [0.98, 0.995, NAN], [1.01, 0.99, NAN]

    s = np.full((2, 6, 3), 999.0, dtype=np.float32)  # non-supply lines: must not be picked
    s[0, 0], s[1, 0] = [30, 20, -10], [40, -5, 12]
    s[0, 3], s[1, 3] = [15, 5, NAN], [-8, 6, NAN]

    i = np.zeros((2, 6, 3), dtype=np.float32)
    i[:, 3:5, 2] = NAN  # feeder B has no phase 3
    i[0, 0] = [410, 100, 100]  # ph1 > 400
    i[0, 1] = [210, 199, 200]  # ph1 > 200; ph3 == rating is not an overload
    i[0, 2] = [50, 101, 20]  # ph2 > 100
    i[0, 3] = [301, 10, NAN]  # ph1 > 300
    i[0, 4] = [151, 151, NAN]  # ph1, ph2 > 150
    i[:, 5] = 1000  # spare line: not in any feeder, never counted
    i[1, 2] = [0, 0, 150]  # t1: ph3 > 100
    return v, i, s


def _series():
    v, i, s = _network()
    return zone_series(
        v, i, s,
        feeder_buses=FEEDER_BUSES, feeder_lines=FEEDER_LINES,
        supply_lines=SUPPLY_LINES, line_rating_a=RATING_A,
    )


def test_zone_index_is_feeder_major():
    feeder, phase = zone_index(2)
    assert feeder.tolist() == [0, 0, 0, 1, 1, 1]
    assert phase.tolist() == [1, 2, 3, 1, 2, 3]


def test_vmin_by_hand():
    # A1 t0: min(1.01, 0.99, 0.97) = 0.97; A2: min(1.00, 0.985, 0.99) = 0.985;
    # A3: min(0.99, 0.97, 0.95) = 0.95; B1: min(1.00, 0.98) = 0.98; B2: min(0.99, 0.995) = 0.99
    # t1: A1 min(.96,.95,.93)=.93; A2 min(.97,.975,.98)=.97; A3 min(1.00,1.01,1.03)=1.00;
    #     B1 min(.99, 1.01)=.99; B2 min(1.00, .99)=.99; B3: no bus on phase 3 -> NaN
    expected = np.array(
        [[0.97, 0.985, 0.95, 0.98, 0.99, NAN], [0.93, 0.97, 1.00, 0.99, 0.99, NAN]],
        dtype=np.float32,
    )
    got = _series()
    assert got.vmin_pu.shape == (2, 6)
    assert got.vmin_pu.dtype == np.float32
    np.testing.assert_array_equal(got.vmin_pu, expected)


def test_pflow_is_supply_cable_per_phase():
    expected = np.array([[30, 20, -10, 15, 5, NAN], [40, -5, 12, -8, 6, NAN]], dtype=np.float32)
    np.testing.assert_array_equal(_series().pflow_kva, expected)


def test_overloaded_line_count_by_hand():
    # t0: A1 lines 0, 1 -> 2; A2 line 2 -> 1; A3 none (200 == 200 A) -> 0;
    #     B1 lines 3, 4 -> 2; B2 line 4 -> 1; B3 NaN currents -> 0; spare line 5 never counted.
    # t1: only line 2 phase 3 (150 > 100 A) -> A3 = 1.
    got = _series()
    assert got.n_overloaded.tolist() == [[2, 1, 0, 2, 1, 0], [0, 0, 1, 0, 0, 0]]
    assert got.zone_phase.tolist() == [1, 2, 3, 1, 2, 3]
    assert got.zone_feeder.tolist() == [0, 0, 0, 1, 1, 1]


def test_zone_series_matches_brute_force_on_random_arrays():
    rng = np.random.default_rng(3)
    v = rng.uniform(0.9, 1.05, (7, 6, 3))
    i = rng.uniform(0, 450, (7, 6, 3))
    s = rng.normal(0, 50, (7, 6, 3))
    got = zone_series(v, i, s, feeder_buses=FEEDER_BUSES, feeder_lines=FEEDER_LINES,
                      supply_lines=SUPPLY_LINES, line_rating_a=RATING_A)
    for t in range(7):
        for f in range(2):
            for ph in range(3):
                k = 3 * f + ph
                assert got.vmin_pu[t, k] == min(v[t, b, ph] for b in FEEDER_BUSES[f])
                assert got.pflow_kva[t, k] == s[t, SUPPLY_LINES[f][0], ph]
                n = sum(i[t, ln, ph] > RATING_A[ln] for ln in FEEDER_LINES[f])
                assert got.n_overloaded[t, k] == n


def test_parallel_and_reversed_supply_cables_are_summed_into_the_feeder():
    """Feeder A fed by two parallel cables, one of them defined towards the busbar: the
    import is the first cable's flow minus the reversed one's, by brute force."""
    rng = np.random.default_rng(5)
    v = rng.uniform(0.9, 1.05, (4, 6, 3))
    i = rng.uniform(0, 50, (4, 6, 3))
    s = rng.normal(0, 50, (4, 6, 3))
    got = zone_series(v, i, s, feeder_buses=FEEDER_BUSES, feeder_lines=FEEDER_LINES,
                      supply_lines=[np.array([0, 1]), np.array([3])],
                      supply_sign=[np.array([1.0, -1.0]), np.array([1.0])],
                      line_rating_a=RATING_A)
    for t in range(4):
        for ph in range(3):
            assert got.pflow_kva[t, ph] == s[t, 0, ph] - s[t, 1, ph]
            assert got.pflow_kva[t, 3 + ph] == s[t, 3, ph]
    assert got.pflow_kva.dtype == np.float64


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(v_pu=np.ones((2, 6, 2))), "v_pu"),
        (dict(feeder_buses=[np.array([1, 9]), np.array([4])]), "bus index"),
        (dict(feeder_lines=[np.array([0]), np.array([])]), "no buses or no lines"),
        (dict(supply_lines=[np.array([0])]), "same number"),
        (dict(supply_lines=[np.array([0]), np.array([7])]), "supply_lines index"),
        (dict(supply_sign=[np.array([1.0, 1.0]), np.array([1.0])]), "one sign per supply"),
        (dict(line_rating_a=np.array([400.0, 0, 100, 300, 150, 50])), "positive"),
    ],
)
def test_zone_series_rejects_bad_input(change, match):
    v, i, s = _network()
    kwargs = dict(v_pu=v, i_a=i, s_kva=s, feeder_buses=FEEDER_BUSES, feeder_lines=FEEDER_LINES,
                  supply_lines=SUPPLY_LINES, line_rating_a=RATING_A)
    kwargs.update(change)
    with pytest.raises(InputDataError, match=match):
        zone_series(kwargs.pop("v_pu"), kwargs.pop("i_a"), kwargs.pop("s_kva"), **kwargs)
