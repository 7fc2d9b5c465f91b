"""Config loading: defaults, path resolution and error messages naming field and reason."""

import datetime as dt
from pathlib import Path

import pytest

from agileflex_hpc.config import load_config
from agileflex_hpc.errors import ConfigError
from tests.conftest import REPO, write_job

MINIMAL = """
[run]
name = "t"
[time]
start = "2013-12-01"
[[network]]
name = "default"
"""


def test_minimal_config_gets_documented_defaults(tmp_path):
    cfg = load_config(write_job(tmp_path, MINIMAL))
    assert cfg.time.start == dt.date(2013, 12, 1)
    assert (cfg.time.days, cfg.time.step_minutes, cfg.time.block_steps) == (7, 10, 144)
    assert cfg.time.n_steps == 7 * 144 and cfg.time.n_blocks == 7
    assert cfg.cases.names == ("00PV00HP", "00PV25HP", "25PV50HP", "25PV75HP", "50PV100HP")
    assert cfg.headroom.v_lim_pu == 0.94 and cfg.headroom.quantile == 0.02
    assert cfg.out_dir == Path.cwd() / "Data" / "t"  # no root given: ./Data of the caller
    assert cfg.networks[0].path is None


def test_demo_job_loads():
    cfg = load_config(REPO / "jobs" / "demo.toml")
    assert cfg.run.name == "demo" and cfg.out_dir.resolve() == (REPO / "Data" / "demo")


def test_paths_resolve_relative_to_the_toml(tmp_path):
    net = tmp_path / "nets" / "a"
    net.mkdir(parents=True)
    (net / "Master.dss").write_text("! empty\n")
    sub = tmp_path / "jobs"
    sub.mkdir()
    cfg = load_config(write_job(sub, MINIMAL.replace('name = "default"',
                                                     'name = "a"\npath = "../nets/a"')))
    assert cfg.networks[0].path.resolve() == net.resolve()


@pytest.mark.parametrize("patch, needle", [
    (("[time]", "[time]\nstep_minute = 10"), "time.step_minute: unknown key; valid keys: start"),
    (("[time]", "[time]\nstep_minutes = 7"), "time.step_minutes: 7 must divide 1440"),
    (("[time]", "[time]\ndays = 'seven'"), 'time.days: "seven" is not an integer'),
    (('start = "2013-12-01"', 'start = "2013-13-01"'), 'time.start: "2013-13-01" is not a date'),
    (("[run]", "[run]\nseed = 1.5"), "run.seed: 1.5 is not an integer"),
    (("[[network]]", "[cases]\nnames = ['10PV']\n[[network]]"), "cases.names: '10PV' is not"),
    (("[[network]]", "[profile]\n[[network]]"), "profile: unknown section; valid sections"),
    (('name = "default"', 'name = "x"\npath = "nowhere"'), "network[x].path: no Master.dss"),
    (("[[network]]", "[ev]\nmodel = 'qp'\n[[network]]"),
     'ev.model: "qp" is not one of "milp", "lp"'),
    (("[[network]]", "[validate]\nproof_tolerance = -1e-4\n[[network]]"),
     "validate.proof_tolerance: must be within [0, 0.1)"),
])
def test_bad_config_names_field_and_reason(tmp_path, patch, needle):
    with pytest.raises(ConfigError) as err:
        load_config(write_job(tmp_path, MINIMAL.replace(*patch)))
    assert needle in str(err.value)


def test_all_problems_reported_at_once(tmp_path):
    text = MINIMAL.replace("[time]", "[time]\ndays = 0\nstep_minutes = 7")
    with pytest.raises(ConfigError) as err:
        load_config(write_job(tmp_path, text))
    assert len(err.value.problems) == 2


def test_missing_sections_and_file(tmp_path):
    with pytest.raises(ConfigError, match="run: required section is missing"):
        load_config(write_job(tmp_path, "[time]\nstart = '2013-12-01'\n[[network]]\nname='a'\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_job(tmp_path, "[run\n"))
