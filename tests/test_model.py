"""ophys_xr.model: create_session_dataset checks its variables and attributes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import ophys_xr
from ophys_xr.model import create_session_dataset


def test_builder_rejects_bad_input() -> None:
    with pytest.raises(ophys_xr.SchemaError, match="are not session variables"):
        create_session_dataset({"nonsense": np.zeros(3)}, {})
    missing = "required variables of a behavior_ophys session missing"
    with pytest.raises(ophys_xr.SchemaError, match=missing):
        create_session_dataset({"time": np.zeros(3)}, {})


def test_builder_rejects_unsafe_attrs(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        variables = {name: var for name, var in ds.variables.items()}
        with pytest.raises(ophys_xr.SchemaError, match="netCDF"):
            create_session_dataset(variables, {**ds.attrs, "flag": True}, derive=False)
        with pytest.raises(ophys_xr.SchemaError, match="netCDF"):
            create_session_dataset(variables, {**ds.attrs, "d": {"a": 1}}, derive=False)
        bad = dict(variables)
        bad["dff"] = xr.Variable(("cell_specimen_id", "time"), np.zeros((4, 3859)))
        with pytest.raises(ophys_xr.SchemaError, match="dims"):
            create_session_dataset(bad, ds.attrs, derive=False)


def test_behavior_session_with_imaging_attributes_builds() -> None:
    """A behavior session keeps attributes such as the pixel size (no row/column to label)."""
    from ophys_xr.testing import simulate_session

    ds = simulate_session(minutes=0.5, seed=1, behavior_only=True)
    attrs = {**ds.attrs, "pixel_spacing": [0.00078125, 0.00078125], "pixel_spacing_unit": "mm"}
    built = create_session_dataset(dict(ds.variables), attrs)
    assert built.attrs["session_kind"] == "behavior"
    assert built.attrs["pixel_spacing"] == [0.00078125, 0.00078125]


@pytest.mark.parametrize("kind", [
    {},                                       # imaging, eye tracking, an invalid ROI
    {"n_invalid": 0, "n_unmatched": 2},       # every ROI valid, ROIs without specimen ids
    {"eye_tracking": False, "passive": True},  # no eye tracking, passive
    {"behavior_only": True},                  # no imaging
    {"layout": "2021", "chunk_frames": 40},   # the 2021 layout, traces in several blocks
])
@pytest.mark.parametrize("options", [
    {},
    {"exclude_invalid_rois": False, "eye_tracking_z_threshold": 2.0,
     "eye_tracking_dilation_frames": 0, "events_filter_scale_seconds": 0.1,
     "events_filter_n_time_steps": 5},
])
def test_options_on_the_variables_equal_options_on_the_dataset(kind, options) -> None:
    """The builder applies the options on the variables, making the Dataset once; the result
    is identical to building first and applying them to the Dataset (as for a store written
    with other options), on every kind of session."""
    from ophys_xr._options import SessionOptions
    from ophys_xr.model import apply_session_options, build_session_dataset
    from ophys_xr.testing import simulate_session

    sim = simulate_session(minutes=1.0, seed=5, **kind)
    derived = ("likely_blink", "filtered_events", "segmentation_mask_image",
               "lick_times_trials_id")  # the rest as a reader hands them over
    raw = {str(n): v for n, v in sim.variables.items() if n not in derived}
    attrs = {k: v for k, v in sim.attrs.items()
             if k not in ("ophys_xr_missing", "eye_tracking_z_threshold",
                          "eye_tracking_dilation_frames", "events_filter_scale_seconds",
                          "events_filter_n_time_steps")}
    opts = SessionOptions(**options)
    at_once = build_session_dataset(raw, attrs, opts)
    in_two = apply_session_options(build_session_dataset(raw, attrs), opts)
    xr.testing.assert_identical(at_once.compute(), in_two.compute())
    assert list(at_once.data_vars) == list(in_two.data_vars)
    if opts.exclude_invalid_rois and "valid_roi" in at_once.coords:
        assert bool(at_once.valid_roi.all())
    if "eye_area_raw" in raw:
        assert at_once.attrs["eye_tracking_z_threshold"] == opts.eye_tracking_z_threshold
    if "events" in raw:
        assert at_once.attrs["events_filter_n_time_steps"] == opts.events_filter_n_time_steps
