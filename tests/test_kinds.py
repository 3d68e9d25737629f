"""Every kind of released file, written by the simulator through the NWB writer.

Passive sessions (no licks, no rewards, ``lick_times`` stored as one empty byte string),
ROIs without a ``cell_specimen_id``, sessions without eye tracking, both generations and
both 2021 presentation groupings: each opens, round-trips, and every AllenSDK name of
``BehaviorOphysSession`` evaluates.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr

import ophys_xr
from ophys_xr.backends import layout as L
from ophys_xr.compat import BehaviorOphysSession
from ophys_xr.testing import simulate_session, write_nwb
from ophys_xr.variables import SPECS, validate

KINDS = {
    "active-2023": {},
    "passive-2023": {"passive": True},
    "passive-2021": {"passive": True, "layout": "2021"},
    "no-eye-tracking": {"eye_tracking": False},
    "unmatched-rois": {"n_unmatched": 3},
    "2021": {"layout": "2021"},
}


@pytest.fixture(scope="module", params=list(KINDS))
def written(request, tmp_path_factory):
    kind = request.param
    expected = simulate_session(n_cells=3, minutes=1.0, seed=11, **KINDS[kind])
    path = write_nwb(expected, tmp_path_factory.mktemp(kind) / f"{kind}.nwb")
    return kind, expected, path


def test_opens_and_round_trips(written) -> None:
    _, expected, path = written
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as actual:
        validate(actual, [n for n in SPECS if n in actual.variables])
        xr.testing.assert_identical(actual.compute(), expected.compute())


def test_every_allensdk_name_evaluates(written) -> None:
    kind, _, path = written
    with BehaviorOphysSession.from_nwb_path(path) as session:
        for name in session.list_data_attributes_and_methods():
            if name.startswith("eye_tracking") and kind == "no-eye-tracking":
                with pytest.warns(UserWarning, match="no eye.tracking"):
                    assert len(getattr(session, name)) == 0
                continue
            value = getattr(session, name)
            if name == "get_cell_specimen_indices":
                value(session.get_cell_specimen_ids())
            elif callable(value) and name.startswith("get_"):
                value()


def test_passive_file_is_what_the_allensdk_writes(tmp_path) -> None:
    ds = simulate_session(n_cells=2, minutes=1.0, seed=3, passive=True)
    path = write_nwb(ds, tmp_path / "passive.nwb")
    with h5py.File(path, "r") as f:
        assert f[f"{L.TRIALS}/lick_times"][()].tolist() == [b""]
        assert not f[f"{L.TRIALS}/lick_times_index"][()].any()
        assert L.LICKS not in f
        assert L.REWARDS not in f
    with ophys_xr.open_session(path) as opened:
        assert opened.attrs["session_type"].endswith("_passive")
        assert opened.sizes["trials_lick"] == 0
        assert opened.sizes["lick"] == 0
        assert opened.sizes["reward"] == 0
        assert opened["lick_times"].dtype == np.float64
        trials = opened[["go", "miss", "catch", "correct_reject", "hit", "false_alarm",
                         "aborted", "auto_rewarded"]].to_dataframe()
        assert (trials.go == trials.miss).all()
        assert (trials.catch == trials.correct_reject).all()
        assert not trials[["hit", "false_alarm", "aborted", "auto_rewarded"]].any().any()
        blocks = set(opened["stimulus_block_name"].values.tolist())
        assert blocks == {"change_detection_passive"}


def test_passive_session_metrics_and_responses(tmp_path) -> None:
    path = write_nwb(simulate_session(n_cells=2, minutes=2.0, seed=3, passive=True),
                     tmp_path / "passive.nwb")
    with ophys_xr.open_session(path) as ds:
        perf = ds.ophys.performance()
        # the AllenSDK forces d' to 0 in passive sessions (no reward, no lick)
        assert (perf["rolling_dprime"].values[np.isfinite(perf["rolling_dprime"].values)]
                == 0).all()
        assert float(perf["mean_dprime"]) == 0.0
        assert float(perf["max_dprime"]) == 0.0
        response = ds.ophys.stimulus_response(event="changes")
        assert response.sizes["stimulus_presentations_id"] > 0
        with BehaviorOphysSession.from_dataset(ds) as session:
            licks, rewards = session.licks, session.rewards
            assert list(licks.columns) == ["timestamps", "frame"]
            assert len(licks) == 0
            assert licks.dtypes.tolist() == [np.float64, np.int64]
            assert list(rewards.columns) == ["volume", "timestamps", "auto_rewarded"]
            assert rewards.dtypes.tolist() == [np.float64, np.float64, np.bool_]
            assert all(len(v) == 0 for v in session.trials["lick_times"])
            assert session.get_performance_metrics()["mean_dprime"] == 0.0


@pytest.mark.parametrize("grouping", L.LAYOUTS["2021"].presentation_groupings)
def test_2021_presentation_groupings(tmp_path, grouping) -> None:
    expected = simulate_session(n_cells=2, minutes=1.0, seed=5, layout="2021")
    if grouping == "stimulus_name":  # the writers that grouped so had the column
        n = expected.sizes["stimulus_presentations_id"]
        expected["stimulus_name"] = ("stimulus_presentations_id",
                                     np.full(n, "Natural_Images_Lum_Matched_set_training_2017",
                                             dtype=object), SPECS["stimulus_name"].attrs())
        expected = expected[[n for n in SPECS if n in expected.data_vars]]
        missing = expected.attrs["ophys_xr_missing"].split()
        expected.attrs["ophys_xr_missing"] = " ".join(m for m in missing if m != "stimulus_name")
    path = write_nwb(expected, tmp_path / "s.nwb", presentation_grouping=grouping)
    with h5py.File(path, "r") as f:
        tables = sorted(k for k in f["intervals"] if k.endswith(L.PRESENTATIONS_SUFFIX))
    if grouping == "image_name":
        assert "omitted_presentations" in tables
        assert len(tables) > 2
    else:
        assert len(tables) == 1
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as actual:
        xr.testing.assert_identical(actual.compute(), expected.compute())


def test_unknown_grouping_is_refused(tmp_path) -> None:
    ds = simulate_session(n_cells=2, minutes=0.5, seed=5)
    with pytest.raises(ophys_xr.OptionError, match="presentation_grouping"):
        write_nwb(ds, tmp_path / "s.nwb", presentation_grouping="image_name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["index_too_long", "text_times"])
def test_damaged_lick_times_are_refused(tmp_path, damage) -> None:
    path = write_nwb(simulate_session(n_cells=2, minutes=1.0, seed=3), tmp_path / "s.nwb")
    with h5py.File(path, "r+") as f:
        g = f[L.TRIALS]
        if damage == "index_too_long":
            ends = g["lick_times_index"][()]
            del g["lick_times_index"]
            g["lick_times_index"] = ends + g["lick_times"].shape[0]
        else:
            n = g["lick_times"].shape[0]
            del g["lick_times"]
            g.create_dataset("lick_times", data=[b"x"] * n,
                             dtype=h5py.string_dtype("ascii"))
    with pytest.raises(ophys_xr.SchemaError, match="lick_times"):
        ophys_xr.open_session(path)
