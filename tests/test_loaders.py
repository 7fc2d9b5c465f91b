"""ENWL profile tables and Low Carbon London smart-meter CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agileflex_hpc.errors import ConfigError, InputDataError
from agileflex_hpc.inputs.loaders import load_enwl_profiles, load_lcl_csv
from tests.conftest import SHARED, require


def _write_enwl(path: Path, table: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(row) for row in table))  # no final newline, like ENWL
    return path


def _ramp_table() -> list[list[str]]:
    """288 rows x 3 columns: column 1 = row index, column 2 = 1.5, column 3 = row % 2."""
    return [[str(r), "1.5", str(r % 2)] for r in range(288)]


def test_enwl_resampling_by_hand(tmp_path):
    path = _write_enwl(tmp_path / "p.csv", _ramp_table())
    ten = load_enwl_profiles(path, step_minutes=10, days=1)
    assert ten.shape == (144, 3) and ten.dtype == np.float32
    # 10-min step k holds 5-min rows 2k and 2k+1: mean of (2k, 2k+1) = 2k + 0.5
    np.testing.assert_array_equal(ten[:, 0], np.arange(144) * 2 + 0.5)
    np.testing.assert_array_equal(ten[:, 1], 1.5)
    np.testing.assert_array_equal(ten[:, 2], 0.5)
    thirty = load_enwl_profiles(path, step_minutes=30, days=1)
    np.testing.assert_array_equal(thirty[:3, 0], [2.5, 8.5, 14.5])  # mean of 0..5, 6..11, ...
    one = load_enwl_profiles(path, step_minutes=1, days=1)
    assert one.shape == (1440, 3) and list(one[3:7, 0]) == [0, 0, 1, 1]  # values held
    three = load_enwl_profiles(path, step_minutes=10, days=3)
    assert three.shape == (432, 3)
    np.testing.assert_array_equal(three[144:288], ten)


@pytest.mark.parametrize(("cell", "reason"), [("", "missing"), ("nan", "missing"),
                                               ("abc", "missing"), ("-0.2", "negative")])
def test_enwl_bad_value_names_file_column_row(tmp_path, cell, reason):
    table = _ramp_table()
    table[16][1] = cell  # row 17, column 2 (1-based)
    path = _write_enwl(tmp_path / "Winter_bad.csv", table)
    with pytest.raises(InputDataError) as err:
        load_enwl_profiles(path, step_minutes=10)
    msg = str(err.value)
    assert "Winter_bad.csv" in msg and "column 2" in msg and "row 17" in msg and reason in msg


def test_enwl_wrong_rows_and_step(tmp_path):
    path = _write_enwl(tmp_path / "short.csv", _ramp_table()[:200])
    with pytest.raises(InputDataError, match="200 rows"):
        load_enwl_profiles(path)
    with pytest.raises(InputDataError, match="not found"):
        load_enwl_profiles(tmp_path / "missing.csv")
    good = _write_enwl(tmp_path / "good.csv", _ramp_table())
    for step in (7, 12, 0):
        with pytest.raises(ConfigError):
            load_enwl_profiles(good, step_minutes=step)


@pytest.mark.shared
def test_real_enwl_csv_loads():
    path = SHARED / "profiles" / "enwl" / "Winter_Load_Profiles.csv"
    require(path.is_file(), f"the shared data {path}")
    kw = load_enwl_profiles(path, step_minutes=10, days=2)
    assert kw.shape == (288, 100) and kw.min() >= 0
    daily_kwh = kw[:144].sum(axis=0) / 6
    assert 3 < daily_kwh.mean() < 25  # a winter residential day


LCL_HEADER = "LCLid,stdorToU,DateTime,KWH/hh (per half hour) "


def _write_lcl(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = [LCL_HEADER] + [f"{m},Std,{t}.0000000,{v}" for m, t, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _lcl_rows(meters=("MAC000002", "MAC000003"), start="2013-01-01", days=3):
    import pandas as pd

    slots = pd.date_range(start, periods=48 * days, freq="30min")
    return [(m, t.strftime("%Y-%m-%d %H:%M:%S"), f" {0.1 * (j + 1) + 0.001 * i:.3f}")
            for j, m in enumerate(meters) for i, t in enumerate(slots)]


def test_lcl_kw_and_holding(tmp_path):
    path = _write_lcl(tmp_path / "lcl.csv", _lcl_rows())
    df = load_lcl_csv(path, start="2013-01-02", days=1, step_minutes=10)
    assert df.shape == (144, 2) and list(df.columns) == ["MAC000002", "MAC000003"]
    assert df.index[0].isoformat() == "2013-01-02T00:00:00" and df.dtypes.iloc[0] == np.float32
    # 2 Jan 00:00 is half hour 48 of the file: kWh 0.1 + 0.048 -> 0.296 kW, held 3 steps
    np.testing.assert_allclose(df.iloc[0:3, 0], 0.296, rtol=1e-6)
    np.testing.assert_allclose(df.iloc[3:6, 1], (0.2 + 0.049) * 2, rtol=1e-6)
    hourly = load_lcl_csv(path, start="2013-01-02", days=1, step_minutes=60)
    np.testing.assert_allclose(hourly.iloc[0, 0], (0.148 + 0.149), rtol=1e-6)  # mean of two
    end = load_lcl_csv(path, start="2013-01-02", days=1, step_minutes=30, label="end")
    np.testing.assert_allclose(end.iloc[0, 0], 0.298, rtol=1e-6)  # stamp 00:30 ends 00:00-00:30
    only = load_lcl_csv(path, start="2013-01-02", days=1, meters=["MAC000003"])
    assert list(only.columns) == ["MAC000003"]


@pytest.mark.parametrize(("value", "reason"), [("Null", "missing"), ("", "missing"),
                                               ("-0.05", "negative")])
def test_lcl_bad_value_names_file_meter_line(tmp_path, value, reason):
    rows = _lcl_rows()
    m, t, _ = rows[150]  # MAC000003, 1 Jan 03:00: file line 152 (line 1 is the header)
    rows[150] = (m, t, value)
    path = _write_lcl(tmp_path / "LCL-June2015v2_0.csv", rows)
    with pytest.raises(InputDataError) as err:
        load_lcl_csv(path, start="2013-01-01", days=3)
    msg = str(err.value)
    assert "LCL-June2015v2_0.csv" in msg and "MAC000003" in msg and "row 152" in msg
    assert reason in msg


def test_lcl_bad_value_outside_range_is_ignored_but_gaps_raise(tmp_path):
    rows = _lcl_rows()
    rows[5] = (rows[5][0], rows[5][1], "Null")  # 1 Jan, outside the range read below
    path = _write_lcl(tmp_path / "lcl.csv", rows)
    assert load_lcl_csv(path, start="2013-01-02", days=2).shape == (288, 2)
    del rows[100]  # MAC000002, 3 Jan 02:00
    path = _write_lcl(tmp_path / "gap.csv", rows)
    with pytest.raises(InputDataError, match=r"MAC000002.*2013-01-03 02:00"):
        load_lcl_csv(path, start="2013-01-02", days=2)
    with pytest.raises(InputDataError, match="MAC999"):
        load_lcl_csv(path, start="2013-01-02", days=1, meters=["MAC999"])


def test_lcl_bad_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,time,kwh\nA,2013-01-01 00:00:00,0.1\n")
    with pytest.raises(InputDataError, match="LCLid"):
        load_lcl_csv(path, start="2013-01-01", days=1)
