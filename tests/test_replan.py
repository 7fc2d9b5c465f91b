"""The plan-validate loop: import caps from a round's validation, by hand and end to end."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from agileflex_hpc.replan import tighten_caps


def test_caps_cut_what_the_responsible_zones_imported():
    """Three zones (feeders 0, 0, 1), four steps on a 2-step horizon (two days).

    Rule 1 caps the charging (row 1 of the caps).
    step 0 (horizon 0): zone 0 flagged and importing 8 kW -> cap 6 (cut 0.25).
    step 1 (horizon 1): zone 1 flagged but not importing; zone 0 (same feeder) imports 4 kW
                        -> blamed instead: cap 3. Zone 2 (other feeder) imports, untouched.
    step 2 (horizon 0): zone 0 flagged again, importing 10 kW -> 7.5, but 6 is lower: stays 6.
    step 3 (horizon 1): a network-wide flag (transformer) on zone 2 only importing -> 0.75 x 2.
    """
    added = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], bool)
    imp = np.array([[8.0, 0, 3], [4, 0, 5], [10, 0, 0], [0, 0, 2]])
    caps = np.full((3, 3, 2), np.nan)
    none = np.zeros_like(imp)
    new, blamed = tighten_caps(caps, added, imp, none, np.array([0, 0, 1]),
                               np.array([0, 1, 0, 1]), cut=0.25)
    np.testing.assert_allclose(new[1], [[6.0, 3.0], [np.nan, np.nan], [np.nan, 1.5]])
    assert np.isnan(new[[0, 2]]).all() and blamed.tolist() == [True, False, True]
    # an existing lower cap is kept; unflagged steps change nothing
    old = np.full((3, 3, 2), np.nan)
    old[1] = [[5.0, np.nan], [np.nan, 1.0], [np.nan, np.nan]]
    again, _ = tighten_caps(old, added[:1], imp[:1], none[:1], np.array([0, 0, 1]),
                            np.array([0]), cut=0.25)
    np.testing.assert_allclose(again, old)


def test_an_undervoltage_with_no_import_on_its_feeder_cuts_the_feeders_export():
    """ENWL network_1: V2G export on phases 1 and 3 of a feeder pulls phase 2 under 0.9 p.u.
    (neutral shift) while nothing imports there: the exporting zones' export is cut."""
    added = np.array([[0, 1, 0, 0]], bool)
    charge = np.array([[0.0, 0.0, 0.0, 5.0]])  # zone 3 (another feeder) imports
    discharge = np.array([[26.0, 0.0, 14.8, 0.0]])
    new, blamed = tighten_caps(np.full((3, 4, 3), np.nan), added, charge, discharge,
                               np.array([0, 0, 0, 1]), np.array([2]), cut=0.25)
    np.testing.assert_allclose(new[2, :, 2], [0.75 * 26.0, np.nan, 0.75 * 14.8, np.nan])
    assert np.isnan(new[:2]).all() and blamed.tolist() == [True, False, True, False]


def test_a_zone_charging_one_ev_from_another_is_importing():
    """enwl-lvns network_3 Feeder_4: in the flagged zone one EV discharges 3.7 kW while
    another charges 3.7 kW (net 0). Its charging is what is cut: the zone is importing."""
    added = np.array([[0, 0, 1]], bool)
    new, blamed = tighten_caps(np.full((3, 3, 2), np.nan), added, np.array([[0.0, 0.0, 3.7]]),
                               np.array([[0.0, 0.0, 3.7]]), np.array([0, 0, 0]), np.array([1]),
                               cut=0.5)
    np.testing.assert_allclose(new[1, 2], [np.nan, 1.85])  # its charging, not its net
    assert np.isnan(new[[0, 2]]).all() and blamed.tolist() == [False, False, True]


def test_a_zone_exporting_more_than_it_charges_is_exporting():
    """enwl-lvns network_12 Feeder_3 at 18:50: all three zones of the feeder are flagged,
    two export 58 and 36 kW net while a few of their EVs charge (66.6 kW discharged against
    8.6). Their export is cut, not the small charging, which the loop cut four rounds running
    without effect; the first zone, charging nothing, exports too."""
    added = np.array([[1, 1, 1]], bool)
    charge = np.array([[0.0, 8.6, 8.2]])
    discharge = np.array([[12.3, 66.6, 44.4]])
    new, blamed = tighten_caps(np.full((3, 3, 2), np.nan), added, charge, discharge,
                               np.array([0, 0, 0]), np.array([1]), cut=0.5)
    np.testing.assert_allclose(new[2, :, 1], [6.15, 33.3, 22.2])
    assert np.isnan(new[:2]).all() and blamed.all()


def test_nothing_to_tighten_when_proved():
    caps = np.full((3, 2, 4), np.nan)
    new, blamed = tighten_caps(caps, np.zeros((8, 2), bool), np.ones((8, 2)), np.ones((8, 2)),
                               np.array([0, 0]), np.arange(8) % 4)
    assert np.isnan(new).all() and not blamed.any()


def test_exceedance_derates_the_whole_day_of_a_responsible_zone():
    """A 3 % transformer overload at step 0 (horizon 0) caused by zone 0: its net import
    bound is derated by 2 x 3 % at every time of day (row 0), and its charging cut to 0.75 x
    what it drew where it was seen (row 1)."""
    bound = np.array([[10.0, 20.0, 0.0], [10.0, 10.0, 10.0]])
    added = np.array([[1, 1], [0, 0]], bool)
    imp = np.array([[9.0, 0.0], [5.0, 5.0]])
    new, blamed = tighten_caps(np.full((3, 2, 3), np.nan), added, imp, np.zeros_like(imp),
                               np.array([0, 1]), np.array([0, 1]), bound_kw=bound,
                               exceedance=np.array([0.03, 0.0]), cut=0.25)
    np.testing.assert_allclose(new[0, 0], [0.94 * 10.0, 0.94 * 20.0, 0.0])
    np.testing.assert_allclose(new[1, 0], [0.75 * 9.0, np.nan, np.nan])
    assert np.isnan(new[:, 1]).all() and blamed.tolist() == [True, False]


# ------------------------------------------------------------------------ end to end

def _loop_job(tmp_path, extra: str = "") -> Path:
    """The demo on 2 days of 10-minute steps: the first plan fills the transformer overnight
    and the losses the zonal model leaves out overload it; the loop must then prove it."""
    from tests.conftest import SHORT_DEMO, write_job

    text = SHORT_DEMO.replace("step_minutes = 30", "step_minutes = 10").replace(
        "block_steps = 48", "block_steps = 144")
    return write_job(tmp_path, text + extra)


@pytest.mark.slow
def test_loop_tightens_the_unproved_plan_then_proves_it(tmp_path):
    from agileflex_hpc.__main__ import main

    job = _loop_job(tmp_path)
    assert main(["run", str(job), "--log-level", "WARNING"]) == 0
    out = tmp_path / "Data" / "demo_short"
    rounds = pd.read_csv(out / "replan" / "rounds.csv")
    first, last = rounds[rounds["round"] == 1], rounds[rounds["round"] == rounds["round"].max()]
    assert (first["steps"] > 0).any() and first["replanned"].any()  # round 1 not proved
    assert rounds["round"].max() == 2 and (last["steps"] == 0).all()  # round 2 proved
    assert pd.read_csv(out / "validation" / "proof.csv").empty
    assert last["evs_hosted"].sum() <= first["evs_hosted"].sum()  # the loop's cost in EVs
    # the final answer is the last round's
    answer = pd.read_csv(out / "hosting" / "default_summary.csv")
    assert answer["evs_hosted"].tolist() == last["evs_hosted"].tolist()
    # a rerun finds everything current: no file is rewritten
    before = {p: p.read_bytes() for p in out.rglob("*.h5")}
    assert main(["run", str(job), "--log-level", "WARNING"]) == 0
    assert {p: p.read_bytes() for p in out.rglob("*.h5")} == before


@pytest.mark.slow
def test_loop_stops_at_max_rounds_and_names_the_unproved_zones(tmp_path):
    from agileflex_hpc.__main__ import main

    job = _loop_job(tmp_path, "[validate]\nmax_rounds = 1\n")
    assert main(["run", str(job), "--log-level", "WARNING"]) == 0
    out = tmp_path / "Data" / "demo_short"
    rounds = pd.read_csv(out / "replan" / "rounds.csv")
    assert rounds["round"].unique().tolist() == [1] and not rounds["replanned"].any()
    proof = pd.read_csv(out / "validation" / "proof.csv")
    assert not proof.empty and set(proof["violation"]) == {"transformer"}


@pytest.mark.slow
def test_a_zone_without_a_new_cap_is_untouched(tmp_path):
    """Cap one zone only: the EV stage recomputes that zone; every other zone's file keeps
    its bytes, and the validation inputs (which see every zone) are recomputed."""
    from agileflex_hpc.__main__ import main
    from agileflex_hpc.config import load_config
    from agileflex_hpc.ev.__main__ import main as ev_main
    from agileflex_hpc.replan import _write, read_caps

    job = _loop_job(tmp_path, "[validate]\nmax_rounds = 1\n")
    assert main(["run", str(job), "--log-level", "WARNING"]) == 0
    cfg = load_config(job)
    zones = cfg.out_dir / "ev" / "default"
    before = {p.name: p.read_bytes() for p in zones.glob("*.h5")}
    caps, _, history = read_caps(cfg, "default")
    caps = np.full((3, 12, cfg.time.steps_per_day), np.nan)
    caps[0, 0, :] = 5.0  # zone F1P1: at most 5 kW of EV import at any time
    _write(cfg, "default", caps, 1, history)
    assert ev_main([str(job), "--log-level", "WARNING"]) == 0
    after = {p.name: p.read_bytes() for p in zones.glob("*.h5")}
    assert after["F1P1.h5"] != before["F1P1.h5"]
    assert {k: v for k, v in after.items() if k != "F1P1.h5"} == \
        {k: v for k, v in before.items() if k != "F1P1.h5"}
    with h5py.File(zones / "F1P1.h5", "r") as f:
        net = f["evcharging/charge_kw"][()].sum(0) - f["evcharging/discharge_kw"][()].sum(0)
    assert net.max() <= 5.0 + 1e-6
