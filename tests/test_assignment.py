"""Customer assignment per (network, case) and the customers' series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agileflex_hpc.errors import ConfigError, InputDataError
from agileflex_hpc.inputs.assignment import assign_customers, build_profiles, parse_case
from agileflex_hpc.inputs.profiles import heat_pump_demand, make_times, smart_meter_demand


def _loads(n: int = 150) -> pd.DataFrame:
    return pd.DataFrame({
        "load": [f"LOAD{i}" for i in range(1, n + 1)],
        "bus": [str(100 + i) for i in range(n)],
        "phase": [i % 3 + 1 for i in range(n)],
        "feeder": [i % 4 + 1 for i in range(n)],
        "zone": [f"F{i % 4 + 1}P{i % 3 + 1}" for i in range(n)],
    })


@pytest.mark.parametrize(("name", "expected"), [("00PV00HP", (0, 0)), ("25PV50HP", (25, 50)),
                                                 ("50PV100HP", (50, 100)), ("100PV05HP", (100, 5))])
def test_parse_case(name, expected):
    assert parse_case(name) == expected


@pytest.mark.parametrize("name", ["25PV", "25pv50hp", "PV25HP50", "5PV50HP", "125PV00HP",
                                  "25PV50HP ", "", None])
def test_parse_case_rejects(name):
    with pytest.raises(ConfigError, match="case"):
        parse_case(name)


def test_counts_round_half_up():
    loads = _loads(150)
    # 25 % of 150 = 37.5 -> 38; 75 % = 112.5 -> 113
    for case, (n_pv, n_hp) in {"00PV00HP": (0, 0), "00PV25HP": (0, 38), "25PV50HP": (38, 75),
                               "25PV75HP": (38, 113), "50PV100HP": (75, 150)}.items():
        c = assign_customers(loads, network="net", case=case, seed=1)
        assert int(c["has_hp"].sum()) == n_hp and int((c["pv_kwp"] > 0).sum()) == n_pv


def test_nested_across_cases_and_case_independent_fields():
    loads = _loads(97)
    cases = ["00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP"]
    tabs = [assign_customers(loads, network="net", case=c, seed=5) for c in cases]
    for small, big in zip(tabs, tabs[1:]):
        assert not (small["has_hp"] & ~big["has_hp"]).any()
        assert not ((small["pv_kwp"] > 0) & ~(big["pv_kwp"] > 0)).any()
    for t in tabs[1:]:
        pd.testing.assert_series_equal(t["group"], tabs[0]["group"])
        pd.testing.assert_series_equal(t["profile_id"], tabs[0]["profile_id"])
    both = (tabs[2]["pv_kwp"] > 0) & (tabs[4]["pv_kwp"] > 0)
    np.testing.assert_array_equal(tabs[2]["pv_kwp"][both], tabs[4]["pv_kwp"][both])


def test_seeded_and_independent_of_row_order():
    loads = _loads(120)
    a = assign_customers(loads, network="net", case="25PV50HP", seed=2)
    b = assign_customers(loads, network="net", case="25PV50HP", seed=2)
    pd.testing.assert_frame_equal(a, b)
    shuffled = loads.sample(frac=1.0, random_state=0)
    c = assign_customers(shuffled, network="net", case="25PV50HP", seed=2)
    pd.testing.assert_frame_equal(c.loc[a.index], a)
    for other in (dict(network="net", seed=3), dict(network="other", seed=2)):
        d = assign_customers(loads, case="25PV50HP", **other)
        assert not d["has_hp"].equals(a["has_hp"])


def test_columns_values_and_group_shares():
    loads = _loads(3000)
    c = assign_customers(loads, network="big", case="50PV50HP", seed=0)
    assert list(c.columns[:5]) == ["load", "bus", "phase", "feeder", "zone"]
    assert c["has_hp"].dtype == bool and c["profile_id"].dtype == np.int64
    assert (c["profile_id"] >= 0).all() and c["profile_id"].is_unique
    kwp = c.loc[c["pv_kwp"] > 0, "pv_kwp"]
    assert kwp.between(1.0, 4.0).all() and kwp.nunique() >= 5
    shares = c["group"].value_counts(normalize=True)
    assert set(shares.index) == {"Adversity", "Comfortable", "Affluent"}
    assert (shares > 0.2).all()
    custom = assign_customers(_loads(300), network="n", case="00PV00HP", seed=0,
                              group_shares={"Affluent": 1.0})
    assert (custom["group"] == "Affluent").all()


def test_bad_tables():
    with pytest.raises(InputDataError, match="zone"):
        assign_customers(_loads(5).drop(columns="zone"), network="n", case="00PV00HP", seed=0)
    dup = _loads(5)
    dup.loc[3, "load"] = "LOAD1"
    with pytest.raises(InputDataError, match="LOAD1"):
        assign_customers(dup, network="n", case="00PV00HP", seed=0)
    with pytest.raises(ConfigError):
        assign_customers(_loads(5), network="n", case="50PV", seed=0)


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return assign_customers(_loads(30), network="net", case="50PV50HP", seed=4)


def test_build_profiles_synthetic(customers):
    times = make_times("2024-01-20", days=2)
    out = build_profiles(customers, times, network="net", seed=4)
    demand, pv = out["demand_kw"], out["pv_kw"]
    assert demand.shape == pv.shape == (288, 30)
    assert demand.dtype == pv.dtype == np.float32 and demand.min() >= 0 and pv.min() >= 0
    assert (pv[:, customers["pv_kwp"].to_numpy() == 0] == 0).all()
    assert (pv <= customers["pv_kwp"].to_numpy() + 1e-6).all()
    hp = customers["has_hp"].to_numpy()
    assert demand[:, hp].mean() > demand[:, ~hp].mean() + 0.3
    k = int(np.flatnonzero(hp)[0])
    row = customers.iloc[k]
    direct = (smart_meter_demand(times, [row["group"]], [row["profile_id"]], network="net",
                                 seed=4)
              + heat_pump_demand(times, [row["profile_id"]], network="net", seed=4))
    np.testing.assert_allclose(demand[:, k], direct[:, 0], rtol=1e-6)


def test_build_profiles_independent_of_split(customers):
    times = make_times("2024-01-20", days=1)
    full = build_profiles(customers, times, network="net", seed=4)
    part = build_profiles(customers.iloc[10:20], times, network="net", seed=4)
    for key in ("demand_kw", "pv_kw"):
        assert part[key].tobytes() == np.ascontiguousarray(full[key][:, 10:20]).tobytes()


def test_build_profiles_enwl_pool(tmp_path, customers):
    pool = np.array([[0.1 * (c + 1) + 0.001 * r for c in range(3)] for r in range(288)])
    (tmp_path / "Winter_Load_Profiles.csv").write_text(
        "\n".join(",".join(f"{v:.3f}" for v in row) for row in pool))
    times = make_times("2024-01-20", days=2)
    none = customers.assign(has_hp=False, pv_kwp=0.0)
    out = build_profiles(none, times, network="net", seed=4, source="enwl", path=tmp_path)
    cols = none["profile_id"].to_numpy() % 3
    daily = pool.reshape(144, 2, 3).mean(axis=1)  # 10-min means of the 5-min rows
    np.testing.assert_allclose(out["demand_kw"], np.tile(daily, (2, 1))[:, cols], rtol=1e-6)
    with pytest.raises(ConfigError, match="path"):
        build_profiles(none, times, network="net", seed=4, source="enwl")


def _pv_table(path, first_hour: float, last_hour: float) -> None:
    """A one-day, 5-minute PV table of 2 columns: a half-sine from ``first_hour`` to
    ``last_hour`` (GMT), peaks 2 and 3 kW."""
    hours = (np.arange(288) + 0.5) / 12
    day = np.clip(np.sin(np.pi * (hours - first_hour) / (last_hour - first_hour)), 0, None)
    day[(hours < first_hour) | (hours > last_hour)] = 0
    path.write_text("\n".join(f"{2 * v:.4f},{3 * v:.4f}" for v in day))


def test_a_pv_table_is_scaled_to_each_customers_kwp(tmp_path, customers):
    """A winter day's PV (09:00-15:00 GMT in January at 53.5 N): each customer's series is its
    column scaled to a 1 kWp peak, times its kWp."""
    _pv_table(tmp_path / "pv.csv", 9.0, 15.0)
    times = make_times("2024-01-20", days=1)
    out = build_profiles(customers, times, network="net", seed=4, pv_path=tmp_path / "pv.csv")
    kwp = customers["pv_kwp"].to_numpy()
    peak = out["pv_kw"].max(axis=0)
    np.testing.assert_allclose(peak[kwp > 0], kwp[kwp > 0], rtol=0.02)  # 10-min means
    assert (out["pv_kw"][:, kwp == 0] == 0).all()


def test_pv_output_while_the_sun_is_down_is_refused(tmp_path, customers):
    """The ENWL summer table yields from 03:40 to 20:40: in a December study that output would
    fall on the dark evening peak. Sunset at 53.5 N, 2.2 W on 2013-12-02 is about 15:50 GMT."""
    _pv_table(tmp_path / "summer.csv", 3.7, 20.7)
    times = make_times("2013-12-02", days=2)
    with pytest.raises(InputDataError, match=r"summer.csv: \d+% of the PV profiles' output falls "
                                             r"at steps when the sun is below the horizon"):
        build_profiles(customers, times, network="net", seed=4, pv_path=tmp_path / "summer.csv")
    # in June the sun is up from about 03:40 to 20:40 GMT there: the same table passes
    build_profiles(customers, make_times("2024-06-20", days=1), network="net", seed=4,
                   pv_path=tmp_path / "summer.csv")
