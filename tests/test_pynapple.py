"""``ophys_xr.to_pynapple`` / ``ds.ophys.to_pynapple``: a session as pynapple objects."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import ophys_xr
from ophys_xr.exceptions import MissingDataError, MissingDependencyError, SchemaError
from ophys_xr.testing import simulate_session

nap = pytest.importorskip("pynapple")

TRACES = ["dff", "corrected_fluorescence", "demixed_trace", "neuropil_trace", "events",
          "filtered_events"]


@pytest.fixture(scope="module")
def session() -> xr.Dataset:
    return simulate_session(n_cells=3, minutes=1.0, seed=5, n_unmatched=1, chunk_frames=500)


def test_traces_are_tsdframes_by_cell_specimen_id_with_the_cells_as_metadata(session) -> None:
    out = ophys_xr.to_pynapple(session)
    assert [k for k in out if k in TRACES] == TRACES
    dff = out["dff"]
    assert isinstance(dff, nap.TsdFrame)
    np.testing.assert_array_equal(dff.t, session.time.values)
    np.testing.assert_array_equal(dff.values, session.dff.values)
    np.testing.assert_array_equal(dff.columns, session.cell_specimen_id.values)
    assert -1 in dff.columns  # an unmatched ROI keeps its column
    for name in ("cell_roi_id", "valid_roi", "x", "y", "width", "height", "noise_std"):
        np.testing.assert_array_equal(dff.metadata[name].values, session[name].values)


def test_trials_and_presentations_are_interval_sets_with_their_columns(session) -> None:
    out = session.ophys.to_pynapple(traces=[])
    assert not set(TRACES) & set(out)
    trials = out["trials"]
    assert isinstance(trials, nap.IntervalSet)
    np.testing.assert_array_equal(trials.start, session.trials_start_time.values)
    np.testing.assert_array_equal(trials.end, session.trials_stop_time.values)
    np.testing.assert_array_equal(trials.metadata["is_change"].values,
                                  session.trials_is_change.values)
    np.testing.assert_array_equal(trials.metadata["trials_id"].values, session.trials_id.values)
    assert "lick_times" not in trials.metadata.columns
    pres = out["stimulus_presentations"]
    assert len(pres) == session.sizes["stimulus_presentations_id"]
    np.testing.assert_array_equal(pres.start, session.start_time.values)
    np.testing.assert_array_equal(pres.end, session.end_time.values)
    assert list(pres.metadata["image_name"]) == list(session.image_name.values)
    np.testing.assert_array_equal(pres.metadata["omitted"].values, session.omitted.values)


def test_running_licks_rewards_and_eye_tracking(session) -> None:
    out = ophys_xr.to_pynapple(session, traces="dff")
    assert [k for k in out if k in TRACES] == ["dff"]
    np.testing.assert_array_equal(out["running_speed"].values, session.running_speed.values)
    np.testing.assert_array_equal(out["running_speed"].t, session.stimulus_timestamps.values)
    np.testing.assert_array_equal(out["licks"].t, session.licks_timestamps.values)
    np.testing.assert_array_equal(out["rewards"]["volume"].values,
                                  session.rewards_volume.values)
    eye = out["eye_tracking"]
    np.testing.assert_array_equal(eye.t, session.eye_timestamps.values)
    np.testing.assert_array_equal(eye["pupil_area"].values, session.pupil_area.values)


def test_from_an_opened_file(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        out = ds.ophys.to_pynapple(traces=("dff", "events"))
        np.testing.assert_array_equal(out["dff"].values, ds.dff.values)
        np.testing.assert_array_equal(out["events"].values, ds.events.values)
        assert len(out["trials"]) == ds.sizes["trials_id"]


def test_a_behavior_session_has_no_traces() -> None:
    ds = simulate_session(minutes=1.0, seed=2, behavior_only=True)
    out = ophys_xr.to_pynapple(ds)
    assert not set(TRACES) & set(out)
    assert {"trials", "stimulus_presentations", "running_speed", "licks"} <= set(out)
    with pytest.raises(MissingDataError, match="'dff' is not a cell trace"):
        ophys_xr.to_pynapple(ds, traces="dff")


def test_intervals_that_touch_end_one_microsecond_earlier(session) -> None:
    ends = session.end_time.values.copy()
    ends[:-1] = session.start_time.values[1:]
    touching = session.assign(end_time=("stimulus_presentations_id", ends))
    pres = ophys_xr.to_pynapple(touching, traces=[])["stimulus_presentations"]  # no warning
    assert len(pres) == session.sizes["stimulus_presentations_id"]
    np.testing.assert_allclose(pres.end[:-1], ends[:-1] - 1e-6, rtol=0, atol=1e-9)
    assert "image_name" in pres.metadata.columns


@pytest.mark.parametrize(("change", "match"), [
    (lambda s, e: (s, e + 1.0), "before the previous row's end_time"),
    (lambda s, e: (s, np.where(np.arange(e.size) == 3, np.nan, e)), "missing start_time"),
    (lambda s, e: (s, np.where(np.arange(e.size) == 3, s, e)), "end_time not after"),
])
def test_intervals_pynapple_would_merge_or_drop_are_refused(session, change, match) -> None:
    starts, ends = change(session.start_time.values, session.end_time.values)
    bad = session.assign(start_time=("stimulus_presentations_id", starts),
                         end_time=("stimulus_presentations_id", ends))
    with pytest.raises(SchemaError, match=match):
        ophys_xr.to_pynapple(bad, traces=[])


def test_an_unknown_trace_is_refused(session) -> None:
    with pytest.raises(MissingDataError, match="'pupil_area' is not a cell trace"):
        ophys_xr.to_pynapple(session, traces=["dff", "pupil_area"])


def test_without_pynapple_a_named_error_says_what_to_install(session, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynapple", None)
    with pytest.raises(MissingDependencyError, match=r"pip install \"ophys_xr\[pynapple\]\""):
        session.ophys.to_pynapple()
    assert issubclass(MissingDependencyError, ImportError)


def test_importing_ophys_xr_does_not_import_pynapple() -> None:
    code = "import sys, ophys_xr; print('pynapple' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
