"""Restart safety and clear errors: half-written files, missing blocks, non-convergence."""

import json

import h5py
import numpy as np
import pytest

from agileflex_hpc.config import load_config
from agileflex_hpc.errors import ConvergenceError, ResultsError
from agileflex_hpc.gather import gather_all
from agileflex_hpc.loadflow.__main__ import main as loadflow_main
from agileflex_hpc.loadflow.run import block_path, plan
from agileflex_hpc.network.manifest import manifest_path
from agileflex_hpc.status import main as status_main
from tests.conftest import write_job

pytestmark = pytest.mark.requires_opendss

JOB = """
[run]
name = "r"
root = "out"
[time]
start = "2014-01-06"
days = 1
step_minutes = 60
block_steps = 6
[[network]]
name = "small"
[cases]
names = ["00PV25HP"]
{extra}
"""


@pytest.fixture
def job(tmp_path):
    return write_job(tmp_path, JOB.format(extra=""))


def test_half_written_block_is_recomputed(job, tmp_path):
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    cfg = load_config(job)
    items = plan(cfg)
    victim = block_path(cfg.out_dir / "raw", items[1])
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 3])  # a truncated copy, as after a crash
    (victim.parent / "block_00002.h5.123.tmp").write_bytes(b"junk")  # a dead writer's temp
    summary = tmp_path / "summary.json"
    assert loadflow_main([str(job), "--log-level", "WARNING", "--summary-json",
                          str(summary)]) == 0
    with h5py.File(victim) as f:
        assert f.attrs["complete"] == 1 and f["loadflow/v_pu"].shape[0] == 6
    (worker,) = json.loads(summary.read_text())
    # 4 items, 3 skipped, the 6 steps of the truncated block solved again
    assert (worker["items"], worker["skipped"], worker["steps"]) == (4, 3, 6)


def test_blocks_record_their_solve_time_and_the_one_compile(job):
    """Each block's ``solve_s`` is positive and below the run's wall time; ``compile_s`` is
    positive on the first block solved and exactly 0 on the rest (the network stays compiled);
    after a rerun that recomputes one block, that block pays the process's compile."""
    import time

    started = time.perf_counter()
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    wall = time.perf_counter() - started
    cfg = load_config(job)
    items = plan(cfg)

    def timing(item):
        with h5py.File(block_path(cfg.out_dir / "raw", item)) as f:
            return float(f.attrs["solve_s"]), float(f.attrs["compile_s"])

    times = [timing(it) for it in items]
    assert all(0 < solve < wall for solve, _ in times)
    assert times[0][1] > 0 and [c for _, c in times[1:]] == [0.0] * (len(items) - 1)
    block_path(cfg.out_dir / "raw", items[2]).unlink()
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    assert timing(items[2])[1] > 0 and timing(items[1]) == times[1]  # only the redone block


def test_the_engine_is_driven_from_the_solving_thread_only(job, monkeypatch):
    """Block files are filled from the kept node voltages and built in the background
    writer's thread, but everything that asks the OpenDSS engine (the provenance attributes
    hold its version) runs in the solving thread: the DSS C-API driven from two threads
    crashed the process."""
    import threading

    from agileflex_hpc import h5io
    from agileflex_hpc.network import engine

    askers, builders = set(), set()
    real_provenance, real_build = h5io.provenance, h5io.build_image

    def provenance(*args, **kwargs):
        askers.add(threading.get_ident())
        return real_provenance(*args, **kwargs)

    def build_image(*args, **kwargs):
        builders.add(threading.get_ident())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(h5io, "provenance", provenance)
    monkeypatch.setattr(h5io, "build_image", build_image)
    monkeypatch.setattr(engine.DssNetwork, "name_coords",
                        lambda self, real=engine.DssNetwork.name_coords: (
                            askers.add(threading.get_ident()), real(self))[1])
    monkeypatch.setattr(engine.DssNetwork, "fill",
                        lambda self, *a, real=engine.DssNetwork.fill: (
                            builders.add(threading.get_ident()), real(self, *a))[1])
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    assert askers == {threading.get_ident()}
    assert builders and threading.get_ident() not in builders


def test_gather_names_the_missing_block(job):
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    cfg = load_config(job)
    items = plan(cfg)
    gone = items[2]
    block_path(cfg.out_dir / "raw", gone).unlink()
    with pytest.raises(ResultsError, match=f"small/{gone.case}/block_{gone.block:05d}.h5 "
                       r"\(missing\)"):
        gather_all(cfg, items)


def test_status_lists_missing_items(job, capsys):
    assert status_main([str(job)]) == 0
    out = capsys.readouterr().out
    assert "loadflow blocks            0         4  MISSING" in out
    # how many EV zones there will be is not known before the network is compiled: not "ok"
    assert "ev zones                   0         1  MISSING" in out
    assert "small: zones not known yet (manifest missing: run the load flows)" in out
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    capsys.readouterr()
    assert status_main([str(job)]) == 0
    out = capsys.readouterr().out
    assert "loadflow blocks            4         4  ok" in out
    assert "stitched                   1         1  ok" in out
    assert status_main([str(job), "--check"]) == 3  # the later stages have not run
    # a deleted block: the stitched file over it reads NaN there, so it is not current either
    cfg = load_config(job)
    block_path(cfg.out_dir / "raw", plan(cfg)[1]).unlink()
    capsys.readouterr()
    assert status_main([str(job)]) == 0
    out = capsys.readouterr().out
    assert "loadflow blocks            3         4  MISSING" in out
    assert "stitched                   0         1  STALE" in out
    assert "(stale: a block under it is missing or stale)" in out


def test_status_reads_no_stale_manifest(job, capsys):
    """A manifest of an older release (here: one attribute fewer, another key) is stale, and
    status says so instead of reading it."""
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    cfg = load_config(job)
    with h5py.File(manifest_path(cfg.out_dir, "small"), "r+") as f:
        del f.attrs["busbar_kv"]
        f.attrs["fingerprint"] = "0" * 64  # another release's key
    capsys.readouterr()
    assert status_main([str(job)]) == 0
    out = capsys.readouterr().out
    assert "manifests                  0         1  STALE" in out
    assert "small: zones not known yet (manifest stale: run the load flows)" in out


def test_non_convergence_is_counted_and_fails_only_where_asked(tmp_path, capfd):
    extra = "[loadflow]\ntolerance = 1e-12\nmax_iterations = 1"
    counted = write_job(tmp_path, JOB.format(extra=extra), "counted.toml")
    assert loadflow_main([str(counted)]) == 0  # collapse is a finding, not a crash
    err = capfd.readouterr().err
    assert "small/00PV25HP: 24 steps have no power-flow solution" in err
    assert "small/00PV25HP 24" in err  # the summary's collapse line
    job = write_job(tmp_path, JOB.format(extra=extra).replace(
        'root = "out"', 'root = "out2"\nmax_failure_fraction = 0.01'))
    assert loadflow_main([str(job)]) == 1
    err = capfd.readouterr().err
    assert "24 of 24 power flows did not converge" in err
    assert "small/00PV25HP/block_00000 (6 of 6 steps)" in err
    # a rerun skips the complete blocks but still counts their failures: it fails again
    assert loadflow_main([str(job)]) == 1
    err = capfd.readouterr().err
    assert "24 of 24 power flows did not converge" in err and " total      4       4" in err
    cfg = load_config(job)
    with h5py.File(block_path(cfg.out_dir / "raw", plan(cfg)[0])) as f:
        assert not f["loadflow/converged"][()].any()  # written, flagged, not hidden
        assert np.isfinite(f["loadflow/v_pu"][()]).any()
    with pytest.raises(ConvergenceError):
        from agileflex_hpc.loadflow.run import WorkerSummary, check_failures
        check_failures(cfg, [WorkerSummary(0, checked_steps=10, nonconverged=1)])


def test_gather_refuses_blocks_from_another_config(job, tmp_path):
    assert loadflow_main([str(job), "--log-level", "WARNING"]) == 0
    changed = write_job(tmp_path, JOB.format(extra="[loadflow]\nload_pf = 0.9"))
    cfg = load_config(changed)
    with pytest.raises(ResultsError, match=r"stale: config \[loadflow\] changed"):
        gather_all(cfg, plan(cfg))


def test_array_tasks_build_shared_inputs_from_different_ends(tmp_path, caplog):
    """Array tasks of one network need every case's inputs file; each builds its own part of
    the list first (else all would build the same file at once), then the others' from their
    ends, and skips a file another task has written meanwhile."""
    import logging

    from agileflex_hpc.cli import Workers
    from agileflex_hpc.inputs.stage import inputs_path
    from agileflex_hpc.loadflow.run import prepare_inputs, rotated

    body = JOB.format(extra="").replace('["00PV25HP"]', '["00PV25HP", "25PV50HP", "50PV100HP"]')
    cfg = load_config(write_job(tmp_path, body))
    items = plan(cfg)
    cases = list(dict.fromkeys(it.case for it in items))
    assert [rotated(cases, w, 3)[0] for w in range(3)] == cases  # each task starts elsewhere
    assert rotated(cases, 0, 1) == cases and rotated(cases, 0, 3) == [cases[0]] + cases[:0:-1]

    def written() -> list[str]:
        return [r.getMessage().rsplit("/", 1)[-1] for r in caplog.records
                if r.getMessage().startswith("inputs written")]

    with caplog.at_level(logging.INFO, logger="agileflex_hpc.inputs.stage"):
        prepare_inputs(cfg, items, Workers(2, 3, source="flags"), None)
        first = written()
        caplog.clear()
        mtimes = {c: inputs_path(cfg.out_dir, "small", c).stat().st_mtime_ns for c in cases}
        prepare_inputs(cfg, items, Workers(0, 3, source="flags"), None)
    assert first == [f"{c}.h5" for c in cases[::-1]]  # its own, then task 1's, task 0's
    assert written() == []  # task 0 found every file current
    assert {c: inputs_path(cfg.out_dir, "small", c).stat().st_mtime_ns for c in cases} == mtimes
