"""Never stale (DESIGN: valid means the same inputs, by content): every way of changing an input
either reproduces a fresh run's results or stops with an error naming the stale file.

A small study with every kind of input file: a network whose lines sit in ``Lines.txt``
(redirected from the master), ENWL-format demand profiles, and EV session tables.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from agileflex_hpc.__main__ import main as run_main
from agileflex_hpc.config import load_config
from agileflex_hpc.ev.__main__ import main as ev_main
from agileflex_hpc.headroom.__main__ import main as headroom_main
from agileflex_hpc.loadflow.__main__ import main as loadflow_main
from agileflex_hpc.loadflow.run import block_path, study_items
from agileflex_hpc.status import main as status_main
from agileflex_hpc.validate.__main__ import main as validate_main

pytestmark = [pytest.mark.requires_opendss, pytest.mark.slow]

MASTER = """\
Clear
New Circuit.small BasekV=11 pu=1.0 MVAsc3=1e8 MVAsc1=1e8
New LineCode.lc nphases=3 R1=0.4 X1=0.08 R0=0.4 X0=0.08 C1=0 C0=0 Units=km Normamps=150
New Transformer.TR1 Buses=[SourceBus 11] Conns=[Delta Wye] kVs=[11 0.416] kVAs=[100 100]
~ XHL=2 %Rs=[0.5 0.5]
Redirect Lines.txt
Redirect Loads.txt
Set voltagebases=[11 .416]
Calcvoltagebases
"""
LINES = """\
New Line.L1 Bus1=11 Bus2=2 phases=3 Linecode=lc Length=200 Units=m Normamps=150
New Line.L2 Bus1=2 Bus2=3 phases=3 Linecode=lc Length=200 Units=m Normamps=150
New Line.L3 Bus1=11 Bus2=4 phases=3 Linecode=lc Length=150 Units=m Normamps=150
"""
LOADS = "".join(f"New Load.C{i} Phases=1 Bus1={bus}.{ph} kV=0.23 kW=1 PF=0.95\n"
                for i, (bus, ph) in enumerate([(3, 1), (3, 2), (3, 3), (2, 1), (4, 2), (4, 3),
                                               (4, 1), (2, 2)]))
JOB = """\
[run]
name = "s"
root = "out"
seed = 1
[time]
start = "2014-01-06"
days = 2
step_minutes = 30
block_steps = 24
[[network]]
name = "small"
path = "net"
[cases]
names = ["00PV00HP", "25PV50HP"]
[profiles]
source = "enwl"
path = "profiles"
[ev]
successes_needed = 2
sessions_csv = "sessions.csv"
vehicles_csv = "vehicles.csv"
"""
SESSIONS = "name,t_in,t_out,EStart,EEnd\nA,12,38,10,18\nB,14,40,20,26\nC,13,36,5,12\n"
VEHICLES = "name,capacity(kW),battery(kWh)\nA,7.4,40\nB,3.7,60\nC,7.4,50\n"


def make_study(folder: Path, job: str = JOB) -> Path:
    """Write the study's input files and job into ``folder``; return the job path."""
    (folder / "net").mkdir(parents=True)
    (folder / "net" / "Master.dss").write_text(MASTER)
    (folder / "net" / "Lines.txt").write_text(LINES)
    (folder / "net" / "Loads.txt").write_text(LOADS)
    (folder / "profiles").mkdir()
    rng = np.random.default_rng(0)
    hour = np.arange(288) / 12
    base = 0.4 + 1.2 * np.exp(-((hour - 18.5) / 2.5) ** 2)
    table = base[:, None] * rng.uniform(0.6, 1.4, (288, 6))
    np.savetxt(folder / "profiles" / "Winter_Load_Profiles.csv", table, delimiter=",",
               fmt="%.4f")
    (folder / "sessions.csv").write_text(SESSIONS)
    (folder / "vehicles.csv").write_text(VEHICLES)
    (folder / "job.toml").write_text(job)
    return folder / "job.toml"


def contents(out: Path) -> dict[str, bytes]:
    """Every dataset of every result file under ``out``, by path (attributes and measured
    solve times aside)."""
    found: dict[str, bytes] = {}
    for path in sorted(out.rglob("*.h5")):
        rel = path.relative_to(out)
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visit(names.append)
            for name in names:
                obj = f[name]
                if (isinstance(obj, h5py.Dataset) and not obj.is_virtual
                        and not name.endswith("solve_time_s")):
                    data = np.asarray(obj[()])
                    found[f"{rel}:{name}"] = ("\x00".join(map(str, data.ravel())).encode()
                                              if data.dtype == object else data.tobytes())
    return found


def file_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.h5"))}


@pytest.fixture
def study(tmp_path):
    """A complete run of the study (every stage), and its job."""
    job = make_study(tmp_path / "a")
    assert run_main(["run", str(job), "--log-level", "WARNING"]) == 0
    return job


def _fresh_run(tmp_path: Path, edit) -> dict[str, bytes]:
    """Contents of a fresh run of the study with ``edit(folder)`` applied to its inputs."""
    job = make_study(tmp_path / "fresh")
    edit(job.parent)
    assert run_main(["run", str(job), "--log-level", "WARNING"]) == 0
    return contents(load_config(job).out_dir)


def _stage_alone_fails(main, job: Path, capfd, *needles: str) -> str:
    capfd.readouterr()
    assert main([str(job), "--log-level", "WARNING"]) == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _edit_rating(folder: Path) -> None:
    path = folder / "net" / "Lines.txt"
    path.write_text(path.read_text().replace("Length=200 Units=m Normamps=150\nNew Line.L2",
                                             "Length=200 Units=m Normamps=40\nNew Line.L2"))


def _double_profiles(folder: Path) -> None:
    path = folder / "profiles" / "Winter_Load_Profiles.csv"
    np.savetxt(path, 2 * np.loadtxt(path, delimiter=","), delimiter=",", fmt="%.4f")


def _edit_sessions(folder: Path) -> None:
    (folder / "sessions.csv").write_text(SESSIONS.replace("A,12,38,10,18", "A,10,30,4,20"))


@pytest.mark.parametrize(("edit", "what"), [
    (_edit_rating, "Lines.txt changed"),
    (_double_profiles, "Winter_Load_Profiles.csv changed"),
])
def test_edited_input_file_is_refused_then_recomputed(study, tmp_path, capfd, edit, what):
    """An input file edited in place: every later stage run alone refuses the stale upstream
    (naming the file and the change); the whole pipeline then equals a fresh run."""
    edit(study.parent)
    _stage_alone_fails(headroom_main, study, capfd, "is stale", what)
    _stage_alone_fails(ev_main, study, capfd, "hosting/small.h5 is stale", what)
    _stage_alone_fails(validate_main, study, capfd, "is stale", what)
    assert run_main(["run", str(study), "--log-level", "WARNING"]) == 0
    assert contents(load_config(study).out_dir) == _fresh_run(tmp_path, edit)


def test_edited_session_table_reruns_the_ev_zones(study, tmp_path, capfd):
    _edit_sessions(study.parent)
    _stage_alone_fails(validate_main, study, capfd, "is stale", "sessions.csv changed")
    capfd.readouterr()
    assert status_main([str(study)]) == 0
    out = capfd.readouterr().out
    assert "ev zones" in out and "STALE" in out and "sessions.csv changed" in out
    assert ev_main([str(study), "--log-level", "WARNING"]) == 0
    assert validate_main([str(study), "--log-level", "WARNING"]) == 0
    assert contents(load_config(study).out_dir).items() >= {
        k: v for k, v in _fresh_run(tmp_path, _edit_sessions).items()
        if "report/" not in k}.items()


def test_comment_in_the_job_recomputes_nothing(study, capfd):
    out = load_config(study).out_dir
    before = file_bytes(out)
    study.write_text("# a comment changes nothing\n" + study.read_text().replace(
        "seed = 1", "seed = 1   # the study's seed"))
    assert run_main(["run", str(study), "--log-level", "WARNING"]) == 0
    assert file_bytes(out) == before  # not one result file rewritten
    capfd.readouterr()
    assert status_main([str(study)]) == 0
    assert "STALE" not in capfd.readouterr().out


def test_deleted_swapped_and_corrupted_blocks_are_named(study, capfd):
    cfg = load_config(study)
    raw = cfg.out_dir / "raw"
    items = study_items(cfg)
    first, second = block_path(raw, items[0]), block_path(raw, items[1])
    other_case = block_path(raw, next(it for it in items if it.case != items[0].case
                                      and it.start == 0))  # block 0 of the other case
    saved = first.read_bytes()
    first.unlink()
    _stage_alone_fails(headroom_main, study, capfd, str(first), "missing")
    shutil.copy(other_case, first)  # a block of another case in its place
    _stage_alone_fails(headroom_main, study, capfd, str(first), "stale", "case")
    first.write_bytes(saved)
    with h5py.File(second, "r+") as f:  # bytes overwritten inside a block, attrs untouched
        f["loadflow/v_pu"][3, 0, 0] = 0.5
    _stage_alone_fails(headroom_main, study, capfd, str(second), "checksum")
    # the load-flow stage recomputes exactly that block; then everything is current again
    assert loadflow_main([str(study), "--log-level", "WARNING"]) == 0
    assert headroom_main([str(study), "--log-level", "WARNING"]) == 0


def test_partial_worker_rerun_under_a_new_seed_is_refused(study, capfd):
    study.write_text(study.read_text().replace("seed = 1", "seed = 2"))
    assert loadflow_main([str(study), "--worker", "0", "--workers", "2",
                          "--log-level", "WARNING"]) == 0
    _stage_alone_fails(headroom_main, study, capfd, "stale", "seed 1 -> 2")


def test_failed_rerun_leaves_nothing_mixed(study, capfd):
    """A rerun that fails (a NaN in the profiles) writes nothing that later stages accept;
    with the file restored, the earlier results are current again (content, not time)."""
    path = study.parent / "profiles" / "Winter_Load_Profiles.csv"
    good = path.read_text()
    lines = good.splitlines()
    lines[5] = ",".join(["nan"] + lines[5].split(",")[1:])
    path.write_text("\n".join(lines) + "\n")
    out = load_config(study).out_dir
    before = file_bytes(out)
    capfd.readouterr()
    assert loadflow_main([str(study), "--log-level", "WARNING"]) == 1
    assert "Winter_Load_Profiles.csv" in capfd.readouterr().err
    _stage_alone_fails(headroom_main, study, capfd, "stale", "Winter_Load_Profiles.csv")
    path.write_text(good)
    assert headroom_main([str(study), "--log-level", "WARNING"]) == 0
    assert file_bytes(out) == before


def test_new_seed_of_the_embedded_network_is_a_new_network(tmp_path, capfd):
    job = tmp_path / "job.toml"
    text = ('[run]\nname = "e"\nroot = "out"\n[time]\nstart = "2014-01-06"\ndays = 1\n'
            'step_minutes = 60\nblock_steps = 24\n[[network]]\nname = "default"\nseed = 0\n'
            '[cases]\nnames = ["00PV00HP"]\n')
    job.write_text(text)
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    out = load_config(job).out_dir
    with h5py.File(out / "networks" / "default" / "network.h5", "r") as f:
        buses0 = f["bus"][()].tolist()
    job.write_text(text.replace("seed = 0", "seed = 5"))
    _stage_alone_fails(headroom_main, job, capfd, "stale", "embedded_seed 0 -> 5")
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    with h5py.File(out / "networks" / "default" / "network.h5", "r") as f:
        assert f["bus"][()].tolist() != buses0  # the other seed's network, not relabelled
    assert headroom_main([str(job), "--log-level", "WARNING"]) == 0


def test_the_loops_caps_are_explained_in_words(tmp_path):
    """`status` said ``ev_caps - -> ab9e...``; the reason is now the loop's round."""
    import h5py

    from agileflex_hpc import fingerprint

    path = tmp_path / "f.h5"
    for old, new, words in [({}, {"ev_caps": "ab"}, "has set EV caps since"),
                            ({"ev_caps": "ab"}, {"ev_caps": "cd"}, "EV caps changed"),
                            ({"ev_caps": "ab"}, {}, "caps are gone")]:
        with h5py.File(path, "w") as f:
            f.attrs.update(fingerprint.attrs({"x": "1", **old}))
        assert words in fingerprint.explain(path, {"x": "1", **new})
