"""Untrusted network files and names, and one clear error per bad input (no traceback)."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys

import pytest

from agileflex_hpc import h5io
from agileflex_hpc.config import load_config
from agileflex_hpc.errors import ConfigError, NetworkError
from agileflex_hpc.network.engine import DssNetwork
from tests.conftest import REPO, TINY_MASTER, write_job

MINIMAL = """
[run]
name = "{name}"
seed = {seed}
[time]
start = "2013-12-01"
[[network]]
name = "{net}"
"""


@pytest.mark.parametrize(("name", "net", "field"), [
    ("..", "default", "run.name"), (".", "default", "run.name"), ("a/b", "default", "run.name"),
    ("crash\\n", "default", "run.name"), ("ok", "..", "network.name"),
])
def test_names_must_be_plain_folder_names(tmp_path, name, net, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(write_job(tmp_path, MINIMAL.format(name=name, seed=1, net=net)))


def test_every_problem_reported_at_once(tmp_path):
    text = MINIMAL.format(name="bad run", seed=-1, net="default") + (
        "seed = -2\n[headroom]\nkwh_per_ev = inf\n[validate]\ntx_overload_factor = -1\n"
        "[ev]\nmin_kw = 9.0\n")
    text = text.replace('start = "2013-12-01"', 'start = "2013-12-01"\nstep_minutes = 7')
    with pytest.raises(ConfigError) as err:
        load_config(write_job(tmp_path, text))
    message = str(err.value)
    for field in ("run.name", "run.seed", "network[default].seed", "headroom.kwh_per_ev",
                  "validate.tx_overload_factor", "ev.min_kw", "time.step_minutes"):
        assert field in message, (field, message)


def test_type_errors_are_spelt_as_in_toml_and_name_what(tmp_path):
    """Values as the job file writes them (true, "2"), duplicates by name, negative counts
    refused, and a network's bad name reported beside its bad path."""
    text = MINIMAL.format(name="ok", seed="true", net="n/5") + (
        'path = 3\n[cases]\nnames = ["00PV00HP", "00PV00HP", 5]\n'
        "[ev]\nmax_evs = -5\n[slurm]\nmax_parallel = -2\n")
    with pytest.raises(ConfigError) as err:
        load_config(write_job(tmp_path, text))
    message = str(err.value)
    for line in ("run.seed: true is not an integer",
                 'cases.names: ["00PV00HP", "00PV00HP", 5] is not a list of strings',
                 "network[0].path: 3 is not a path string", "network.name: 'n/5' must be",
                 "ev.max_evs: -5 must be >= 0", "slurm.max_parallel: -2 must be >= 0"):
        assert line in message, (line, message)
    text = MINIMAL.format(name="ok", seed=1, net="n") + '[cases]\nnames = ["00PV00HP", ' \
        '"25PV50HP", "00PV00HP"]\n'
    with pytest.raises(ConfigError, match="cases.names: 00PV00HP listed more than once"):
        load_config(write_job(tmp_path, text))


def test_non_utf8_config_is_a_clear_error(tmp_path):
    path = tmp_path / "job.toml"
    path.write_bytes(MINIMAL.format(name="t", seed=1, net="default").encode() + b"# \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


@pytest.mark.requires_opendss
@pytest.mark.parametrize("line", ["Show Voltages", "Set Editor=/bin/sh", "set datapath=/tmp",
                                  "Export Currents", "Plot Circuit", "DOScmd rm -rf x",
                                  "Expo voltages /tmp/x.csv", "Set datap=/tmp", "Sav circuit",
                                  "Sho v", "Totals"])
def test_network_files_cannot_run_programs_or_write_files(tmp_path, line):
    """A command that starts a program or writes a file, in the master or a redirected file,
    stops the compile with the file and line named; nothing runs, nothing is written."""
    folder = tmp_path / "net"
    folder.mkdir()
    (folder / "Master.dss").write_text(TINY_MASTER + "Redirect extra.dss\n")
    (folder / "extra.dss").write_text(f"! harmless comment: Show Voltages\n{line}\n")
    with pytest.raises(NetworkError, match=r"extra\.dss, line 2: .* not allowed"):
        DssNetwork(folder / "Master.dss")
    assert sorted(p.name for p in folder.iterdir()) == ["Master.dss", "extra.dss"]


@pytest.mark.requires_opendss
def test_engine_editor_and_output_are_sandboxed(tiny_master):
    import opendssdirect as dss

    DssNetwork(tiny_master)
    assert not dss.Basic.AllowEditor() and not dss.Basic.AllowDOScmd()
    assert "agileflex-dss-" in dss.Basic.DataPath()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("args", "env", "needle"), [
    (("agileflex_hpc.loadflow", "jobs/demo.toml", "--workers", "0", "--worker", "0"), None,
     "must be >= 1"),
    (("agileflex_hpc.loadflow", "jobs/demo.toml", "--worker", "0"), {"AGILEFLEX_WORKERS": "abc"},
     "AGILEFLEX_WORKERS"),
    (("agileflex_hpc", "run", "jobs/demo.toml", "--log-level", "foo"), None,
     "invalid choice: 'FOO'"),
])
def test_bad_command_lines_are_one_message(args, env, needle):
    res = _cli(*args, env=env)
    assert res.returncode != 0 and needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_status_into_a_closed_pipe_is_quiet(tmp_path):
    job = write_job(tmp_path, MINIMAL.format(name="t", seed=1, net="default"))
    res = subprocess.run(f"{sys.executable} -m agileflex_hpc.status {job} | head -1", shell=True,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("run 't'")
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr


def test_writers_never_follow_planted_links_and_clean_dead_temp_files(tmp_path):
    """A link planted at any temporary name is neither followed nor installed; temporary files
    of dead writers (killed, or zombies) are removed, those of live ones kept."""
    import os

    import pandas as pd

    from agileflex_hpc import h5io

    target = tmp_path / "outside.txt"
    target.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    for pid in range(os.getpid(), os.getpid() + 50):  # every name a writer of ours could pick
        (out / f"report.csv.{h5io.HOST}.{pid}.tmp").symlink_to(target)
    h5io.write_csv_atomic(pd.DataFrame({"a": [1]}), out / "report.csv")
    assert target.read_text() == "precious"
    assert not (out / "report.csv").is_symlink() and "a" in (out / "report.csv").read_text()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exits, not reaped: a zombie
    import time

    time.sleep(0.5)
    live = out / f"x.h5.{h5io.HOST}.{os.getpid()}.abc.tmp"
    for pid, name in ((dead.pid, "a.h5"), (zombie.pid, "b.csv")):
        (out / f"{name}.{h5io.HOST}.{pid}.xyz.tmp").write_text("junk")
    (out / f"dss_seed0.{h5io.HOST}.{dead.pid}.tmp").mkdir()
    live.write_text("mine")
    other_host = out / f"c.h5.otherhost.{dead.pid}.tmp"
    other_host.write_text("theirs")
    n = h5io.remove_stale_temp_files(out, recursive=True)
    zombie.wait()
    assert n == 3 and live.exists() and other_host.exists()
    assert not list(out.glob("*.xyz.tmp")) and not list(out.glob("dss_seed0.*"))


def test_status_clean_removes_dead_writers_temp_files(tmp_path):
    from agileflex_hpc import h5io
    from agileflex_hpc.__main__ import main

    job = write_job(tmp_path, MINIMAL.format(name="t", seed=1, net="default").replace(
        '[run]\nname = "t"', '[run]\nname = "t"\nroot = "Data"'))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / "Data" / "t" / "hosting" / f"x.csv.{h5io.HOST}.{dead.pid}.a1.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("junk")
    assert main(["status", str(job)]) == 0 and leftover.exists()  # status alone only reads
    assert main(["status", str(job), "--clean"]) == 0 and not leftover.exists()


def test_quoted_and_binary_file_references_are_checked_and_fingerprinted(tmp_path):
    from agileflex_hpc.fingerprint import network_files
    from agileflex_hpc.network.safety import check_network_files

    (tmp_path / "Master.dss").write_text('Redirect "my lines.dss"\n'
                                         "New Loadshape.x npts=2 mult=(sngfile=shape.sng)\n")
    (tmp_path / "my lines.dss").write_text("Show voltages\n")
    (tmp_path / "shape.sng").write_bytes(b"\0\0\0\0")
    files = network_files(tmp_path / "Master.dss")
    assert [p.name for p in files] == ["Master.dss", "my lines.dss", "shape.sng"]
    with pytest.raises(NetworkError, match=r"my lines\.dss, line 1"):
        check_network_files(files)


def test_every_kind_of_file_reference_is_followed(tmp_path):
    """The four file commands (any case, indented), every ``*file=`` property, and nothing in a
    comment or in a line that only mentions a file name."""
    from agileflex_hpc.fingerprint import network_files

    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "Master.dss").write_text(
        "New Circuit.c\n"
        "  REDIRECT lines.dss\n"
        "Compile sub/more.dss ! a comment naming redirect gone.dss\n"
        "BusCoords xy.csv\n"
        "latlongcoords ll.csv\n"
        "New Loadshape.a npts=2 mult=(File=a.csv) qmult=(dblfile=b.dbl)\n"
        "New Loadshape.b npts=2 pqcsvfile=nope.csv mult=(csvfile=c.csv)\n"
        "// redirect commented.dss\n"
        "New Line.l1 bus1=a bus2=b ! file=commented.csv\n"
        "New Line.profile_file bus1=a bus2=b\n")
    (tmp_path / "lines.dss").write_text("New Line.l2 bus1=b bus2=c\n")
    (sub / "more.dss").write_text("redirect inner.dss\n")
    (sub / "inner.dss").write_text("New Load.x bus1=c\n")
    for name in ("xy.csv", "ll.csv", "a.csv", "b.dbl", "c.csv", "gone.dss", "commented.dss",
                 "commented.csv", "nope.csv"):
        (tmp_path / name).write_text("0\n")
    files = network_files(tmp_path / "Master.dss")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == [
        "Master.dss", "a.csv", "b.dbl", "c.csv", "lines.dss", "ll.csv", "sub/inner.dss",
        "sub/more.dss", "xy.csv"]


@contextlib.contextmanager
def _tmpfs(mnt, options: str):
    """A tmpfs mounted at ``mnt`` with ``options`` (needs root, as in CI), unmounted after."""
    from tests.conftest import require

    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    require(res.returncode == 0, f"mounting a tmpfs -o {options} ({res.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: the output root of a job that needs more."""
    with _tmpfs(tmp_path / "disk", "size=3m") as mnt:
        yield mnt


@pytest.mark.requires_opendss
def test_full_disk_is_one_clear_error_and_leaves_no_partial_file(tmp_path, small_disk):
    job = write_job(tmp_path, f"""
[run]
name = "full"
root = "{small_disk}"
[time]
start = "2014-01-06"
days = 7
step_minutes = 10
block_steps = 144
[[network]]
name = "default"
[cases]
names = ["00PV00HP", "25PV50HP"]
""")
    res = _cli("agileflex_hpc.loadflow", str(job))
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "Segmentation" not in res.stderr
    assert "cannot write" in res.stderr and "MB free" in res.stderr, res.stderr[-2000:]
    assert not list(small_disk.rglob("*.tmp"))
    from agileflex_hpc import h5io

    for path in small_disk.rglob("*.h5"):
        assert h5io.is_complete(path), path  # whatever was installed is whole


SMALL_JOB = """
[run]
name = "h"
root = "{root}"
[time]
start = "2014-01-06"
days = 1
step_minutes = 60
block_steps = 24
[[network]]
name = "{net}"
{path}
[cases]
names = ["00PV00HP", "00PV100HP"]
{extra}
"""


@pytest.mark.requires_opendss
def test_output_root_that_is_a_file_is_one_message(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    job = write_job(tmp_path, SMALL_JOB.format(root="afile", net="default", path="", extra=""))
    res = _cli("agileflex_hpc.loadflow", str(job))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "cannot write" in res.stderr and "afile" in res.stderr


@pytest.mark.requires_opendss
def test_zero_rated_line_is_named_at_compile(tmp_path, tiny_master):
    tiny_master.write_text(tiny_master.read_text().replace(
        "Linecode=lc Length=50 Units=m", "Linecode=lc Length=50 Units=m Normamps=0"))
    with pytest.raises(NetworkError, match=r"Master\.dss: 1 line\(s\) without a positive .*l2"):
        DssNetwork(tiny_master)


@pytest.mark.requires_opendss
def test_bad_heat_pump_profile_stops_before_any_inputs_file(tmp_path):
    import numpy as np

    table = np.full((288, 3), 1.5)
    table[200, 2] = np.nan
    np.savetxt(tmp_path / "hp.csv", table, delimiter=",", fmt="%.3f")
    job = write_job(tmp_path, SMALL_JOB.format(root="out", net="default", path="",
                                               extra='[profiles]\nhp_path = "hp.csv"'))
    res = _cli("agileflex_hpc.loadflow", str(job))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "hp.csv" in res.stderr and "row" in res.stderr, res.stderr[-1500:]
    assert not list((tmp_path / "out").rglob("inputs/*/*.h5"))


@pytest.mark.requires_opendss
def test_truncated_files_read_by_a_stage_alone_are_named(tmp_path):
    job = write_job(tmp_path, SMALL_JOB.format(root="out", net="default", path="", extra=""))
    assert _cli("agileflex_hpc.loadflow", str(job)).returncode == 0
    block = next((tmp_path / "out" / "h" / "raw" / "default").rglob("block_00000.h5"))
    block.write_bytes(block.read_bytes()[:500])
    res = _cli("agileflex_hpc.headroom", str(job))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert str(block) in res.stderr and "incomplete" in res.stderr
    manifest = tmp_path / "out" / "h" / "networks" / "default" / "network.h5"
    manifest.write_bytes(manifest.read_bytes()[:300])
    res = _cli("agileflex_hpc.headroom", str(job))
    assert res.returncode == 1 and str(manifest) in res.stderr and "Traceback" not in res.stderr


@pytest.mark.requires_opendss
def test_truncated_inputs_hosting_and_empty_report_csv(tmp_path):
    job = write_job(tmp_path, SMALL_JOB.format(root="out", net="default", path="", extra=""))
    out = tmp_path / "out" / "h"
    assert _cli("agileflex_hpc", "run", str(job), "--stages", "loadflow,headroom").returncode == 0
    hosting = out / "hosting" / "default.h5"
    hosting.write_bytes(hosting.read_bytes()[:400])
    res = _cli("agileflex_hpc.ev", str(job))
    assert res.returncode == 1 and str(hosting) in res.stderr and "Traceback" not in res.stderr
    inputs = out / "inputs" / "default" / "00PV00HP.h5"
    inputs.write_bytes(inputs.read_bytes()[:400])
    res = _cli("agileflex_hpc.headroom", str(job))
    assert res.returncode == 1 and str(inputs) in res.stderr and "Traceback" not in res.stderr
    (out / "validation").mkdir(parents=True, exist_ok=True)
    (out / "validation" / "report.csv").write_text("")
    res = _cli("agileflex_hpc.report", str(job))  # no validation yet: noted on the page
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-1500:]


@pytest.mark.requires_opendss
def test_read_only_output_root_is_one_message(tmp_path):
    """A read-only file system as the output root (root itself cannot write there)."""
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as mnt:
        job = write_job(tmp_path, SMALL_JOB.format(root=mnt, net="default", path="", extra=""))
        res = _cli("agileflex_hpc.loadflow", str(job))
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert "cannot write" in res.stderr and str(mnt) in res.stderr


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_results_are_readable_as_the_umask_allows(tmp_path, mask):
    """Results are written through a private temporary (mkstemp: 0600); once installed they
    have the mode any new file has (0666 & ~umask), so colleagues on a cluster can read a
    report where the umask lets them."""
    import pandas as pd

    old = os.umask(mask)
    try:
        h5io.write_bytes_atomic(b"x" * 10, tmp_path / "small.bin")
        h5io.write_bytes_atomic(b"x" * (h5io.DIRECT_MIN_BYTES + 5), tmp_path / "large.bin")
        h5io.write_csv_atomic(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
        with h5io.atomic_h5(tmp_path / "f.h5") as f:
            f["x"] = 1
    finally:
        os.umask(old)
    for name in ("small.bin", "large.bin", "t.csv", "f.h5"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


@pytest.mark.requires_opendss
def test_a_misspelt_command_is_named_as_one(tmp_path):
    """``Redirct`` is no command at all: the error says so (not that it could start
    programs), and lists what a network file may use."""
    folder = tmp_path / "net"
    folder.mkdir()
    (folder / "Master.dss").write_text(TINY_MASTER + "Redirct extra.dss\n")
    with pytest.raises(NetworkError) as err:
        DssNetwork(folder / "Master.dss")
    text = str(err.value)
    assert "Master.dss, line 12: the command 'Redirct' is not allowed" in text
    assert "misspelt? Allowed: batchedit, buscoords" in text and "redirect" in text
    assert "start programs" not in text


def test_an_unchanged_file_an_earlier_version_left_private_is_opened_up(tmp_path):
    """A CSV whose text is unchanged is not rewritten (its time stays); one that an earlier
    version left at 0600 gets the mode a new file gets, and a user's own mode is kept."""
    path = tmp_path / "t.csv"
    h5io.write_text_atomic("a\n1\n", path)
    os.chmod(path, 0o600)
    before = path.stat().st_mtime_ns
    old = os.umask(0o022)
    try:
        assert h5io.write_text_atomic("a\n1\n", path) is False
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert path.stat().st_mtime_ns == before
        os.chmod(path, 0o640)  # chosen by the user: left alone
        h5io.write_text_atomic("a\n1\n", path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_status_says_when_slurm_cannot_be_asked(tmp_path):
    """With no controller to ask (no SLURM here, or SLURM_CONF pointing nowhere) a recorded
    job's state is unknown for that reason, not because SLURM forgot it."""
    import json

    job = write_job(tmp_path, MINIMAL.format(name="q", seed=1, net="default")
                    .replace("[time]", 'root = "out"\n[time]'))
    cfg = load_config(job)
    record = cfg.out_dir / "slurm" / "submissions.jsonl"
    assert tmp_path in record.parents
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"batch": "b", "name": "report", "stage": "report",
                                  "job_id": "999999", "tasks": None, "n_workers": None}) + "\n")
    env = {**os.environ, "SLURM_CONF": str(tmp_path / "no-such-slurm.conf")}
    res = subprocess.run([sys.executable, "-m", "agileflex_hpc", "status", str(job)], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "report                     999999  UNKNOWN" in res.stdout
    assert "SLURM could not be queried from here" in res.stdout
