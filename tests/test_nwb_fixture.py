"""The session Dataset of tiny.nwb equals what AllenSDK 2.16.2's reader returns (ref_tiny/)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ophys_xr
import ophys_xr.behavior


@pytest.fixture(scope="module")
def ds(tiny_path):
    with ophys_xr.open_session(tiny_path) as ds:
        yield ds


@pytest.fixture(scope="module")
def ds_all(tiny_path):
    with ophys_xr.open_session(tiny_path, exclude_invalid_rois=False) as ds:
        yield ds


def assert_array(actual, expected, *, exact=True) -> None:
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    if exact:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("config", "fixture"), [("default", "ds"), ("all_rois", "ds_all")])
def test_cell_table(config, fixture, request, ref) -> None:
    ds = request.getfixturevalue(fixture)
    table = ref(config, "cell_specimen_table")
    assert_array(ds.cell_specimen_id, table.index)
    for col in table.columns:
        if col == "roi_mask":
            assert_array(ds.roi_mask, np.stack(table[col].to_list()))
        else:
            assert ds[col].dtype == table[col].dtype, col
            assert_array(ds[col], table[col])


@pytest.mark.parametrize(("config", "fixture"), [("default", "ds"), ("all_rois", "ds_all")])
def test_traces(config, fixture, request, ref) -> None:
    ds = request.getfixturevalue(fixture)
    for prop, col, var in [
        ("dff_traces", "dff", "dff"),
        ("corrected_fluorescence_traces", "corrected_fluorescence", "corrected_fluorescence"),
        ("demixed_traces", "demixed_trace", "demixed_trace"),
        ("_cell_specimens.neuropil_traces", "neuropil_trace", "neuropil_trace"),
        ("events", "events", "events"),
        ("events", "filtered_events", "filtered_events"),
    ]:
        table = ref(config, prop)
        assert_array(ds.cell_specimen_id, table.index)
        assert_array(ds.cell_roi_id, table.cell_roi_id)
        assert ds[var].dims == ("time", "cell_specimen_id")
        assert_array(ds[var].T, np.stack(table[col].to_list()), exact=var != "filtered_events")
    fl = ref(config, "corrected_fluorescence_traces")
    assert_array(ds.r, fl.r)
    assert_array(ds.RMSE, fl.RMSE)
    ev = ref(config, "events")
    assert_array(ds["lambda"], ev["lambda"])
    assert_array(ds.noise_std, ev.noise_std)


def test_timestamps_and_motion(ds, ref) -> None:
    assert_array(ds.time, ref("default", "ophys_timestamps"))
    assert_array(ds.stimulus_timestamps, ref("default", "stimulus_timestamps"))
    mc = ref("default", "motion_correction")
    assert_array(ds.motion_correction_x, mc.x)
    assert_array(ds.motion_correction_y, mc.y)
    assert ds.motion_correction_x.dtype == mc.x.dtype


def test_images(ds, ref) -> None:
    for var, name in [("max_projection", "max_projection"),
                      ("average_projection", "average_projection"),
                      ("segmentation_mask_image", "segmentation_mask_image")]:
        image = ref("default", name)
        assert ds[var].dtype == image["data"].dtype
        assert_array(ds[var], image["data"])
        assert list(ds.attrs["pixel_spacing"]) == list(image["spacing"])
        assert ds.attrs["pixel_spacing_unit"] == image["unit"]
    assert ds.row.attrs["spacing"] == 0.00078125
    assert ds.column.attrs["unit"] == "mm"



def test_segmentation_mask_all_rois(ds_all, ref) -> None:
    image = ref("all_rois", "get_segmentation_mask_image")
    assert_array(ds_all.segmentation_mask_image, image["data"])
    assert int(ds_all.segmentation_mask_image.max()) >= 1


def test_eye_tracking(ds, ref) -> None:
    eye = ref("default", "eye_tracking")
    assert_array(ds.eye_frame, eye.index)
    assert_array(ds.eye_timestamps, eye.timestamps)
    for col in eye.columns.drop("timestamps"):
        assert ds[col].dtype == eye[col].dtype, col
        assert_array(ds[col], eye[col])


def test_eye_tracking_thresholds(ds, ref) -> None:
    eye = ref("eye_z2_d4", "BehaviorSession__from_nwb_path(z=2,d=4)__eye_tracking")
    out = ds.ophys.blink_filter(z_threshold=2.0, dilation_frames=4)
    assert int(out.likely_blink.sum()) > int(ds.likely_blink.sum())
    for col in eye.columns.drop("timestamps"):
        assert_array(out[col], eye[col])


def test_running(ds, ref) -> None:
    for var, name in [("running_speed", "running_speed"),
                      ("raw_running_speed", "raw_running_speed")]:
        table = ref("default", name)
        assert_array(ds.stimulus_timestamps, table.timestamps)
        assert_array(ds[var], table.speed)


def test_licks_rewards(ds, ref) -> None:
    licks = ref("default", "licks")
    assert_array(ds.licks_timestamps, licks.timestamps)
    assert_array(ds.licks_frame, licks.frame)
    rewards = ref("default", "rewards")
    assert_array(ds.rewards_timestamps, rewards.timestamps)
    assert_array(ds.rewards_volume, rewards.volume)
    assert_array(ds.rewards_auto_rewarded, rewards.auto_rewarded)


TRIAL_NAMES = {"start_time": "trials_start_time", "stop_time": "trials_stop_time",
               "is_change": "trials_is_change"}


def test_trials(ds, ref) -> None:
    trials = ref("default", "trials")
    assert_array(ds.trials_id, trials.index)
    for col in trials.columns:
        if col == "lick_times":
            counts = [len(v) for v in trials[col]]
            assert_array(ds.lick_times_count, counts)
            assert_array(ds.lick_times, np.concatenate(trials[col].to_list()))
            continue
        var = TRIAL_NAMES.get(col, col)
        expected = trials[col]
        if expected.dtype == object or pd.api.types.is_string_dtype(expected):
            assert ds[var].values.tolist() == expected.tolist(), col
        else:
            assert ds[var].dtype == expected.dtype, col
            assert_array(ds[var], expected)


def test_stimulus_presentations(ds, ref) -> None:
    pres = ref("default", "stimulus_presentations")
    assert_array(ds.stimulus_presentations_id, pres.index)
    for col in pres.columns:
        var = {"trials_id": "stimulus_presentations_trials_id"}.get(col, col)
        expected = pres[col]
        if expected.dtype == object or pd.api.types.is_string_dtype(expected):
            assert ds[var].values.tolist() == expected.tolist(), col
        elif isinstance(expected.dtype, pd.BooleanDtype):
            assert_array(ds[var], expected.astype(float).to_numpy())
        else:
            assert ds[var].dtype == expected.dtype, col
            assert_array(ds[var], expected)


def test_metadata(ds, ref) -> None:
    meta = ref("default", "metadata")
    for key, value in meta.items():
        if value is None:
            assert key not in ds.attrs, key
        else:
            assert ds.attrs[key] == value, key
    assert json.loads(ds.attrs["task_parameters"]) == ref("default", "task_parameters")
    assert json.loads(ds.attrs["eye_tracking_rig_geometry"]) == ref(
        "default", "eye_tracking_rig_geometry")
    assert ds.attrs["nwb_layout"] == "2023"
    assert ds.attrs["ophys_xr_missing"].split() == [
        "template_image_name", "stimulus_template_warped", "stimulus_template_unwarped"]


def test_dims(ds) -> None:
    assert dict(ds.sizes) == {
        "cell_specimen_id": 4, "time": 3859, "row": 512, "column": 452, "eye_frame": 7380,
        "stimulus_frame": 7194, "lick": 82, "reward": 2, "trials_id": 30, "trials_lick": 72,
        "stimulus_presentations_id": 159,
    }


def test_select_by_cell_roi_id(ds_all) -> None:
    one = ds_all.sel(cell_roi_id=1080699977)
    assert int(one.cell_specimen_id) == 1086658197
    assert not bool(one.valid_roi)
    xr.testing.assert_identical(one.dff, ds_all.dff.isel(cell_specimen_id=4))


def test_trial_selection_keeps_licks_with_their_trials(ds, ref) -> None:
    full = ophys_xr.performance(ds)
    sub = ds.isel(trials_id=slice(5, None))
    times, counts = ophys_xr.behavior.trial_licks(sub)
    trials = ref("default", "trials").iloc[5:]
    assert counts.tolist() == [len(v) for v in trials.lick_times]
    np.testing.assert_array_equal(times, np.concatenate(trials.lick_times.to_list()))
    assert int(ophys_xr.performance(sub).trial_count) == int(full.trial_count) - 5
