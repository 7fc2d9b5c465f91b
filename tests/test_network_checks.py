"""Network data the files do not give, or the engine will not honour: found, refused or
named, never silently invented.

OpenDSS rates a line without ``NormAmps`` (on the line or its LineCode) 400 A and a transformer
without ``kVA`` 1000 kVA, silently; the ENWL LVNS feeders rate no line at all. The thermal and
transformer headroom and every overload count would rest on those invented numbers, so such
lines are an error unless the job gives ``unrated_rating_a`` (and the report says which lines
carry it), and such transformers are an error. An LV base other than ``headroom.v_ll_kv`` is
refused; control elements, which never act here, are named.
"""

from __future__ import annotations

import pytest

from agileflex_hpc.config import load_config
from agileflex_hpc.errors import ConfigError, NetworkError
from agileflex_hpc.network.engine import DssNetwork
from agileflex_hpc.network.manifest import (
    build_manifest,
    manifest_path,
    read_manifest,
    write_manifest,
)
from tests.conftest import write_job

pytestmark = pytest.mark.requires_opendss

# feeder 1: A (rated LineCode) -> D (no LineCode, no NormAmps) -> F (NormAmps then an unrated
# LineCode, which overrides it); feeder 2: B (unrated LineCode) -> C (unrated LineCode, then
# its own NormAmps) -> E (no LineCode, own NormAmps)
MIXED_MASTER = """\
Clear
New Circuit.mixed BasekV=11 pu=1.0 MVAsc3=1e8 MVAsc1=1e8
New LineCode.rated nphases=3 R1=0.5 X1=0.08 R0=0.5 X0=0.08 C1=0 C0=0 Units=km Normamps=180
New LineCode.bare nphases=3 R1=1.0 X1=0.08 R0=1.0 X0=0.08 C1=0 C0=0 Units=km
New Transformer.TR1 Buses=[SourceBus 11] Conns=[Delta Wye] kVs=[11 0.416] kVAs=[200 200]
~ XHL=4 %Rs=[0.5 0.5]
New Line.A Bus1=11 Bus2=2 phases=3 Linecode=rated Length=100 Units=m
New Line.B Bus1=11 Bus2=3 phases=3 Linecode=bare Length=100 Units=m
New Line.C Bus1=3 Bus2=4 phases=3 Linecode=bare Length=50 Units=m Normamps=95
New Line.D Bus1=2 Bus2=5 phases=3 R1=0.3 X1=0.05 R0=0.3 X0=0.05 C1=0 C0=0 Length=0.05 Units=km
New Line.E Bus1=4 Bus2=6 phases=3 R1=0.3 X1=0.05 R0=0.3 X0=0.05 C1=0 C0=0 Length=0.05 Units=km
~ Normamps=60
New Line.F Bus1=5 Bus2=7 phases=3 Normamps=70 Linecode=bare Length=30 Units=m
New Load.C1 Phases=1 Bus1=7.1 kV=0.23 kW=1 PF=0.95
New Load.C2 Phases=1 Bus1=6.2 kV=0.23 kW=1 PF=0.95
Set voltagebases=[11 .416]
Calcvoltagebases
"""

#: line -> (rating given in the files, rating OpenDSS uses [A], LineCode)
EXPECTED = {"a": (True, 180.0, "rated"), "b": (False, 400.0, "bare"), "c": (True, 95.0, "bare"),
            "d": (False, 400.0, ""), "e": (True, 60.0, ""), "f": (False, 400.0, "bare")}


@pytest.fixture
def mixed(tmp_path):
    (tmp_path / "mixed").mkdir()
    master = tmp_path / "mixed" / "Master.dss"
    master.write_text(MIXED_MASTER)
    return master


def test_the_engine_tells_given_ratings_from_opendss_defaults(mixed):
    net = DssNetwork(mixed)
    given, codes = net.line_ratings_origin()
    found = {str(n): (bool(g), float(a), str(c))
             for n, g, a, c in zip(net.line_names, given, net.line_rating_a, codes)}
    assert found == EXPECTED


def test_unrated_lines_are_an_error_naming_them(mixed):
    with pytest.raises(NetworkError) as err:
        build_manifest("mixed", DssNetwork(mixed))
    text = str(err.value)
    assert "3 of 6 lines have no rating (NormAmps)" in text
    assert "LineCodes bare, -" in text and "lines b, d, f" in text
    assert "unrated_rating_a" in text and "400 A" in text


def test_unrated_lines_take_the_jobs_rating_everywhere(mixed, tmp_path):
    m = build_manifest("mixed", DssNetwork(mixed), unrated_rating_a=250.0)
    rating = dict(zip(m.line_names, m.line_rating_a))
    expected = {n: a if g else 250.0 for n, (g, a, _) in EXPECTED.items()}
    assert rating == expected
    # the thermal headroom reads the supply cables' rating: A (180 A) and B (unrated: 250 A)
    supply = [sorted(m.line_names[s]) for s in m.topology.supply_lines]
    assert supply == [["a"], ["b"]]
    assert m.topology.supply_rating_a.tolist() == [180.0, 250.0]
    path = tmp_path / "network.h5"
    write_manifest(path, m)
    back = read_manifest(path)
    assert back.line_rating_given.tolist() == [EXPECTED[n][0] for n in back.line_names]
    assert back.line_rating_a.tolist() == m.line_rating_a.tolist()
    assert back.topology.supply_rating_a.tolist() == [180.0, 250.0]


JOB = """
[run]
name = "mixed"
root = "out"
[time]
start = "2013-12-02"
days = 1
step_minutes = 60
block_steps = 24
[[network]]
name = "mixed"
path = "mixed"
{extra}
[cases]
names = ["00PV00HP"]
"""


def test_the_stage_fails_clearly_and_the_report_says_what_was_assumed(mixed, tmp_path, capsys):
    from agileflex_hpc.loadflow.__main__ import main as loadflow_main
    from agileflex_hpc.report import _assumed_ratings

    job = write_job(tmp_path, JOB.format(extra=""))
    assert loadflow_main([str(job)]) != 0
    err = capsys.readouterr().err
    assert "3 of 6 lines have no rating" in err and "Traceback" not in err
    cfg = load_config(job)
    assert not manifest_path(cfg.out_dir, "mixed").exists()  # nothing written

    job = write_job(tmp_path, JOB.format(extra="unrated_rating_a = 250"))
    assert loadflow_main([str(job), "--no-gather"]) == 0
    assumed = _assumed_ratings(load_config(job), "mixed")
    assert assumed is not None
    note, count = assumed
    assert note.startswith("3 of 6 lines (1 of 2 supply cables) have no rating")
    assert "rated 250 A" in note and "thermal headroom" in note
    assert count == "3 of 6 (250 A), supply cables too"


def test_a_fully_rated_network_needs_no_setting_and_gets_no_note(tmp_path, tiny_master):
    from agileflex_hpc.loadflow.run import ensure_manifests
    from agileflex_hpc.report import _assumed_ratings

    job = write_job(tmp_path, JOB.format(extra="").replace('path = "mixed"', 'path = "tiny"'))
    cfg = load_config(job)
    ensure_manifests(cfg)
    assert read_manifest(manifest_path(cfg.out_dir, "mixed")).line_rating_given.all()
    assert _assumed_ratings(cfg, "mixed") is None


@pytest.mark.parametrize("value", ["0", "-5", '"400"'])
def test_the_setting_must_be_a_positive_current(tmp_path, mixed, value):
    job = write_job(tmp_path, JOB.format(extra=f"unrated_rating_a = {value}"))
    with pytest.raises(ConfigError, match="unrated_rating_a"):
        load_config(job)


@pytest.mark.shared
def test_every_enwl_lvns_line_is_unrated(shared_dir):
    """The shared ENWL LVNS feeders carry no NormAmps at all (the reason for the setting)."""
    master = shared_dir / "networks" / "enwl-lvns" / "network_9" / "Feeder_2" / "Master.dss"
    given, _ = DssNetwork(master).line_ratings_origin()
    assert given.size > 0 and not given.any()


@pytest.mark.parametrize("definition, kva", [
    ("kVs=[11 0.416] XHL=4", None),  # no kVA: OpenDSS's 1000 kVA would stand in
    ("kVs=[11 0.416] kVAs=[300 300] XHL=4", 300.0),
    ("XfmrCode=tc", 250.0),  # rated through its XfmrCode
])
def test_a_transformer_without_a_kva_rating_is_an_error(tmp_path, definition, kva):
    from tests.conftest import TINY_MASTER

    text = TINY_MASTER.replace(
        "New Transformer.TR1 Buses=[SourceBus 11] Conns=[Delta Wye] kVs=[11 0.416] kVAs=[100 100]\n"
        "~ XHL=2 %Rs=[0.5 0.5]",
        "New XfmrCode.tc phases=3 windings=2 conns=[delta wye] kVs=[11 0.416] kVAs=[250 250] "
        f"XHL=4\nNew Transformer.TR1 Buses=[SourceBus 11] Conns=[Delta Wye] {definition}")
    assert "XfmrCode.tc" in text
    (tmp_path / "Master.dss").write_text(text)
    if kva is None:
        with pytest.raises(NetworkError, match="tr1 have no kVA rating"):
            DssNetwork(tmp_path / "Master.dss")
    else:
        assert DssNetwork(tmp_path / "Master.dss").transformer_kva.tolist() == [kva]


@pytest.mark.parametrize("lv_kv, v_ll_kv, ok", [
    (0.416, 0.416, True), (0.433, 0.416, False), (0.433, 0.433, True), (0.4, 0.416, False)])
def test_the_thermal_rate_refuses_another_lv_voltage(tmp_path, lv_kv, v_ll_kv, ok):
    """thermal = 0.9 x A x p.u. x headroom.v_ll_kv / sqrt 3 takes p.u. of the busbar's own base:
    an 11/0.433 kV network under the default 0.416 kV would be rated 4 % low."""
    from agileflex_hpc.config import parse_config
    from agileflex_hpc.headroom.stage import check_lv_voltage
    from tests.conftest import TINY_MASTER

    folder = tmp_path / "lv"
    folder.mkdir()
    (folder / "Master.dss").write_text(TINY_MASTER.replace("kVs=[11 0.416]", f"kVs=[11 {lv_kv}]")
                                       .replace("voltagebases=[11 .416]",
                                                f"voltagebases=[11 {lv_kv}]"))
    m = build_manifest("lv", DssNetwork(folder / "Master.dss"))
    write_manifest(tmp_path / "network.h5", m)
    assert read_manifest(tmp_path / "network.h5").busbar_kv == pytest.approx(lv_kv, rel=1e-9)
    cfg = parse_config(JOB.format(extra="").replace('path = "mixed"', 'path = "lv"')
                       + f"[headroom]\nv_ll_kv = {v_ll_kv}\n", base_dir=tmp_path)
    if ok:
        check_lv_voltage(cfg, m)
    else:
        with pytest.raises(ConfigError, match=f"base of {lv_kv:g} kV, but headroom.v_ll_kv is "
                                              f"{v_ll_kv:g} kV"):
            check_lv_voltage(cfg, m)


def test_control_elements_are_named_as_never_acting(tmp_path, caplog):
    """A RegControl would move taps between solves; the snapshots run with controls off, so
    the manifest's build says which elements will never act."""
    import logging

    from tests.conftest import TINY_MASTER

    text = TINY_MASTER.replace("Set voltagebases", "New RegControl.reg1 Transformer=TR1 winding=2 "
                               "vreg=125 band=2\nSet voltagebases")
    (tmp_path / "Master.dss").write_text(text)
    net = DssNetwork(tmp_path / "Master.dss")
    assert net.control_elements() == ["RegControl.reg1"]
    with caplog.at_level(logging.WARNING, logger="agileflex_hpc.network.manifest"):
        build_manifest("reg", net)
    assert "1 control element(s) (RegControl.reg1) never act" in caplog.text
