"""Stage 1 from a job config: real ENWL profile tables through the inputs CLI, and a bad
value in a real table stops the stage with the file, column and row."""

import h5py
import numpy as np
import pytest

from agileflex_hpc.inputs.__main__ import main as inputs_main
from agileflex_hpc.inputs.loaders import load_enwl_profiles
from tests.conftest import write_job

pytestmark = pytest.mark.requires_opendss

JOB = """
[run]
name = "in"
root = "out"
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
[[network]]
name = "small"
[cases]
names = ["00PV00HP"]
[profiles]
source = "enwl"
path = "{path}"
"""


def test_enwl_profiles_feed_the_customers(tmp_path, shared_dir):
    csv = shared_dir / "profiles" / "enwl" / "Winter_Load_Profiles.csv"
    job = write_job(tmp_path, JOB.format(path=csv))
    assert inputs_main([str(job), "--log-level", "WARNING"]) == 0
    with h5py.File(tmp_path / "out" / "in" / "inputs" / "small" / "00PV00HP.h5") as f:
        demand = f["inputs/demand_kw"][()]
        pid = f["inputs/customers/profile_id"][()]
    pool = load_enwl_profiles(csv, step_minutes=30, days=2)  # independent: the loader alone
    assert demand.shape == (96, 150)
    np.testing.assert_allclose(demand, pool[:, pid % 100], rtol=1e-6)


def test_nan_in_a_real_table_names_file_column_row(tmp_path, capfd):
    rows = [",".join(["0.5"] * 4) for _ in range(288)]
    rows[41] = "0.5,0.5,nan,0.5"
    (tmp_path / "bad.csv").write_text("\n".join(rows))
    job = write_job(tmp_path, JOB.format(path=tmp_path / "bad.csv"))
    assert inputs_main([str(job)]) == 1
    err = capfd.readouterr().err
    assert "bad.csv" in err and "column 3" in err and "row 42" in err, err
    assert not (tmp_path / "out" / "in" / "inputs" / "small" / "00PV00HP.h5").exists()
