"""Event-locked responses (``ophys_xr.responses``).

The references are the Allen helpers' algorithms written out as plain loops here:
brain_observatory_utilities (BOU) ``get_time_array``, ``event_triggered_response`` (a
pandas ``.loc`` window slice and ``np.interp`` per cell and event, or the nearest-index
shift), ``compute_means_xr`` and ``get_p_value_from_shuffled_spontaneous``.  The response
metrics (visual_behavior_analysis ``cell_metrics``) are tested in ``test_metrics.py``.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _dask import raise_if_dask_computes

import ophys_xr
from ophys_xr import _compute as C
from ophys_xr._compute.eventlocked import TimePieces
from ophys_xr.exceptions import MissingDataError, OptionError, SchemaError
from ophys_xr.testing import simulate_session

TREL = "eventlocked_timestamps"
PRES = "stimulus_presentations_id"


# ---------------------------------------------------------------------------------------
# BOU / VBA written out as loops (the references)
# ---------------------------------------------------------------------------------------


def bou_time_array(t_start: float, t_end: float, sampling_rate: float) -> np.ndarray:
    step_size = 1 / sampling_rate
    n_steps = (t_end - t_start) / step_size
    include_endpoint = True
    if n_steps != int(n_steps):
        n_steps = int(n_steps)
        t_end_adjusted = t_start + n_steps * step_size
    else:
        t_end_adjusted = t_end
    if include_endpoint:
        n_steps += 1
    return np.linspace(t_start, t_end_adjusted, int(n_steps), endpoint=include_endpoint)


def bou_nearest(data_timestamps: np.ndarray, event_timestamps: np.ndarray) -> np.ndarray:
    insertion_ind = np.searchsorted(data_timestamps, event_timestamps)
    ind_diff = data_timestamps[insertion_ind] - event_timestamps
    ind_minus_one_diff = np.abs(
        data_timestamps[np.clip(insertion_ind - 1, 0, np.inf).astype(int)] - event_timestamps)
    return insertion_ind - (ind_diff > ind_minus_one_diff).astype(int)


def bou_interp_cube(ts, traces, events, t0, t1, rate):
    """Per cell, per event: ``np.interp`` on the pandas ``.loc`` slice (BOU)."""
    grid = bou_time_array(t0, t1, rate)
    traces = np.asarray(traces).reshape(len(ts), -1)
    out = np.empty((traces.shape[1], len(events), grid.size))
    for c in range(traces.shape[1]):
        series = pd.Series(traces[:, c], index=ts)
        for i, e in enumerate(events):
            part = series.loc[e + t0: e + t1]
            out[c, i] = np.interp(grid, part.index.values - e, part.values)
    return grid, out


def bou_nearest_cube(ts, traces, events, t0, t1):
    rate = 1 / np.diff(ts).mean()
    idx = bou_nearest(ts, events)
    start = int(t0 * rate)
    end = int(start + (t1 - t0) * rate) + 1
    all_inds = idx + np.arange(start, end)[:, None]
    traces = np.asarray(traces).reshape(len(ts), -1)
    cube = np.stack([traces[:, c][all_inds].T for c in range(traces.shape[1])])
    return np.arange(start, end) / rate, cube


def bou_means(cube: np.ndarray, grid: np.ndarray, rw: float, bw: float):
    da = xr.DataArray(cube, dims=("c", "e", TREL), coords={TREL: grid})
    return (da.loc[{TREL: slice(0, rw)}].mean(TREL).values,
            da.loc[{TREL: slice(-bw, 0)}].mean(TREL).values)


def bou_p_values(mean_responses, traces, starts, n_frames):
    """BOU ``get_p_value_from_shuffled_spontaneous`` after the frames are drawn."""
    all_inds = starts + np.arange(0, n_frames)[:, None]
    # BOU: eventlocked_traces(traces_array (n_cells, n_samples), ...) == traces_array.T[all_inds]
    spont_mean = np.asarray(traces).reshape(len(traces), -1)[all_inds].mean(axis=0)
    spont_sorted = np.sort(spont_mean, axis=0)
    if spont_sorted.ndim == 1:
        spont_sorted = spont_sorted[:, None]
    ins = np.empty(mean_responses.shape)
    for c in range(mean_responses.shape[1]):
        ins[:, c] = np.searchsorted(spont_sorted[:, c], mean_responses[:, c])
    return 1 - (ins / len(starts))


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> xr.Dataset:
    """A small simulated session, traces in memory."""
    return simulate_session(n_cells=4, minutes=2.0, seed=3).load()


@pytest.fixture(scope="module")
def sim_lazy() -> xr.Dataset:
    """The same session with its dask traces chunked along time and cells (tables in memory,
    as an opened NWB session has them)."""
    ds = simulate_session(n_cells=4, minutes=2.0, seed=3)
    chunks = {"time": 500, "cell_specimen_id": 2, "stimulus_frame": 2000, "eye_frame": 3000}
    lazy = {name: var.chunk({d: chunks[d] for d in var.dims})
            for name, var in ds.data_vars.items()
            if set(var.dims) & {"time", "stimulus_frame", "eye_frame"}}
    return ds.assign(lazy)


def _inside(ds: xr.Dataset, events: np.ndarray, window=(-0.5, 0.75)) -> np.ndarray:
    """Events whose whole window lies inside the recording (BOU has no answer for others)."""
    t = ds.time.values
    return (events + window[0] >= t[0]) & (events + window[1] <= t[-1])


def _images(ds: xr.Dataset) -> np.ndarray:
    block = np.char.find(ds.stimulus_block_name.values.astype(str), "change_detection") >= 0
    return block & (ds.omitted.values == 0)


# ---------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("t0", "t1", "rate"), [(-1, 1, 2), (-1, 0.75, 2), (-0.5, 0.75, 30),
                                                 (-5, 5, 31.0), (-0.5, 0.75, 30.885)])
def test_time_array_is_bou_get_time_array(t0: float, t1: float, rate: float) -> None:
    grid = C.eventlocked_time_array(t0, t1, rate)
    np.testing.assert_array_equal(grid, bou_time_array(t0, t1, rate))
    assert grid[0] == t0
    assert grid[-1] <= t1


def test_time_array_examples_of_the_bou_docstring() -> None:
    np.testing.assert_allclose(C.eventlocked_time_array(-1, 1, 2), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(C.eventlocked_time_array(-1, 0.75, 2), [-1, -0.5, 0, 0.5])
    assert C.eventlocked_time_array(-0.5, 0.75, 30).size == 38  # ends at 0.7333


def test_nearest_offsets_truncate_towards_zero_and_include_the_end() -> None:
    assert C.nearest_window_offsets(-0.5, 0.75, 31.0) == (-15, 24)  # int(-15.5) == -15
    assert C.nearest_window_offsets(-1.0, 1.0, 10.0) == (-10, 11)


def test_index_of_nearest_value_ties_and_edges() -> None:
    ts = np.array([0.0, 1.0, 2.0, 3.0])
    got = C.index_of_nearest_value(ts, np.array([-5.0, 0.4, 0.5, 0.6, 2.5, 3.0, 9.0]))
    np.testing.assert_array_equal(got, [0, 0, 1, 1, 3, 3, 3])  # ties go to the later sample
    inside = np.array([0.4, 0.5, 1.7, 2.5])
    np.testing.assert_array_equal(C.index_of_nearest_value(ts, inside), bou_nearest(ts, inside))


def _irregular(n: int = 4000, n_cells: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = 17.6 + np.arange(n) / 31.1 + rng.uniform(-0.004, 0.004, n)
    traces = rng.standard_normal((n, n_cells)).cumsum(axis=0) * 0.1
    events = np.sort(rng.uniform(ts[0] + 1.0, ts[-1] - 1.0, 120))
    return ts, traces, events


@pytest.mark.parametrize("rate", [30.0, 31.1, 47.3])
def test_interpolated_kernel_equals_the_bou_loop(rate: float) -> None:
    ts, traces, events = _irregular()
    grid, ref = bou_interp_cube(ts, traces, events, -0.5, 0.75, rate)
    plan = C.interpolation_plan(ts, events, grid, (-0.5, 0.75))
    cube = C.eventlocked_gather(traces.T, *plan)  # (cells, events, offsets)
    assert cube.flags.c_contiguous
    np.testing.assert_allclose(cube, ref, rtol=0, atol=1e-12)


def test_interpolated_kernel_clamps_at_the_window_edges_like_bou() -> None:
    # samples every 0.1 s; the window of an event at 0.55 s starts with the sample at
    # 0.1 s, so grid point -0.5 (0.05 s) takes that sample's value, as np.interp on BOU's slice
    ts = np.arange(0.0, 3.0, 0.1)
    y = ts**2
    first, second, weight = C.interpolation_plan(ts, np.array([0.55]), np.array([-0.5, 0.0]),
                                                 (-0.5, 0.75))
    out = C.eventlocked_gather(y, first, second, weight)[0]
    assert out[0] == pytest.approx(0.1**2)  # clamped, not the interpolated 0.05**2-ish value
    assert out[1] == pytest.approx(0.5 * (0.5**2 + 0.6**2))


def test_nan_samples_propagate_as_np_interp() -> None:
    ts, traces, events = _irregular(n_cells=2)
    traces[:, 1] = np.nan  # an ROI without an event trace
    traces[np.searchsorted(ts, events[5]), 0] = np.nan  # a sample inside one window
    grid, ref = bou_interp_cube(ts, traces, events, -0.5, 0.75, 30.0)
    cube = C.eventlocked_gather(traces.T, *C.interpolation_plan(ts, events, grid, (-0.5, 0.75)))
    np.testing.assert_allclose(cube, ref, rtol=0, atol=1e-12)
    assert np.isnan(cube[1]).all()
    assert np.isnan(cube[0]).any()


def test_nearest_kernel_equals_the_bou_shift() -> None:
    ts, traces, events = _irregular()
    rate = 1 / np.diff(ts).mean()
    grid, ref = bou_nearest_cube(ts, traces, events, -0.5, 0.75)
    start, stop = C.nearest_window_offsets(-0.5, 0.75, rate)
    np.testing.assert_array_equal(np.arange(start, stop) / rate, grid)
    cube = C.eventlocked_gather(traces.T, C.nearest_plan(ts, events, start, stop, rate))
    np.testing.assert_array_equal(cube, ref)


def test_events_at_the_session_edges_are_nan_padded() -> None:
    ts = 10.0 + np.arange(300) / 30.0  # 10 .. 19.97 s
    y = np.vstack([np.sin(ts), ts])  # (traces, time)
    events = np.array([10.2, 19.9, 40.0, np.nan])  # near start, near end, outside, missing
    grid = C.eventlocked_time_array(-0.5, 0.75, 30.0)
    cube = C.eventlocked_gather(y, *C.interpolation_plan(ts, events, grid, (-0.5, 0.75)))
    outside = (grid < ts[0] - events[:, None]) | (grid > ts[-1] - events[:, None])
    outside[2:] = True
    assert np.array_equal(np.isnan(cube[1]), outside)
    inside = ~outside
    # inside the recording the identity trace comes back as the absolute times
    np.testing.assert_allclose(cube[1][inside], (events[:, None] + grid)[inside], atol=1e-9)
    rate = 1 / np.diff(ts).mean()
    start, stop = C.nearest_window_offsets(-0.5, 0.75, rate)
    near = C.eventlocked_gather(y, C.nearest_plan(ts, events, start, stop, rate))  # no IndexError
    idx = C.index_of_nearest_value(ts, events[:2])[:, None] + np.arange(start, stop)
    np.testing.assert_array_equal(np.isnan(near[1, :2]), (idx < 0) | (idx >= ts.size))
    assert np.isnan(near[:, 2:]).all()


@pytest.mark.parametrize("interpolate", [True, False])
def test_every_layout_of_the_trace_gives_the_same_responses(interpolate: bool) -> None:
    """Rows, time-major (a (time, cell) file read), other strides, and time-major pieces
    (blocks as read, some one sample long, windows across them): identical results."""
    ts, traces, events = _irregular(n_cells=6)
    events = np.concatenate([[ts[0] - 0.3, ts[0] + 0.1], events, [ts[-1] - 0.2, np.nan]])
    grid = C.eventlocked_time_array(-0.5, 0.75, 30.0)
    if interpolate:
        plan = dict(zip(("first", "second", "weight"),
                        C.interpolation_plan(ts, events, grid, (-0.5, 0.75)), strict=True))
    else:
        rate = C.mean_sampling_rate(ts)
        start, stop = C.nearest_window_offsets(-0.5, 0.75, rate)
        plan = {"first": C.nearest_plan(ts, events, start, stop, rate), "second": None,
                "weight": None}
    kwargs = {**plan, "response": C.window_slice(grid, 0.0, 0.5, "response"),
              "baseline": C.window_slice(grid, -0.5, 0.0, "baseline"), "starts": None,
              "n_frames": 0}
    rows = np.ascontiguousarray(traces.T)
    reference = C.eventlocked_responses(rows, **kwargs)
    assert np.isnan(reference[0]).any()  # events at the edges
    assert not np.isnan(reference[0]).all()
    bounds = [0, 1, 2, 700, 701, 1500, 3999, 4000]
    layouts = {
        "time-major": traces.T,
        "strided": np.asfortranarray(np.repeat(traces, 2, axis=1))[:, ::2].T,
        "pieces": TimePieces([traces[a:b] for a, b in itertools.pairwise(bounds)]),
    }
    for name, x in layouts.items():
        for got, want in zip(C.eventlocked_responses(x, **kwargs), reference, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)
            assert got.flags.c_contiguous
    np.testing.assert_array_equal(C.eventlocked_gather(traces.T, plan["first"], plan["second"],
                                                       plan["weight"]), reference[0])


def test_window_mean_skips_nan_without_warnings() -> None:
    cube = np.array([[[1.0], [np.nan], [3.0]], [[np.nan], [np.nan], [np.nan]]])  # (2, 3, 1)
    out = C.window_mean(cube, slice(0, 3), axis=1)
    np.testing.assert_array_equal(out, [[2.0], [np.nan]])
    np.testing.assert_array_equal(C.window_mean(cube, slice(0, 1), axis=1), [[1.0], [np.nan]])


def test_null_means_and_p_values_are_the_bou_definition() -> None:
    rng = np.random.default_rng(5)
    traces = rng.standard_normal((500, 3))
    starts = rng.choice(np.arange(10, 300), 2000)
    responses = rng.standard_normal((40, 3)) * 0.5
    null = C.gray_screen_null_means(traces, starts, 15)
    all_inds = starts + np.arange(15)[:, None]
    np.testing.assert_array_equal(null, traces[all_inds].mean(axis=0))
    np.testing.assert_array_equal(C.shuffle_p_values(responses, null),
                                  bou_p_values(responses, traces, starts, 15))
    # a response above every shuffle: 0; below every shuffle: 1; NaN response: NaN
    extreme = np.array([[1e9, -1e9, np.nan]])
    np.testing.assert_array_equal(C.shuffle_p_values(extreme, null), [[0.0, 1.0, np.nan]])


def test_p_values_leave_nan_shuffles_out() -> None:
    null = np.array([[0.0], [1.0], [np.nan], [3.0]])
    np.testing.assert_allclose(C.shuffle_p_values(np.array([[0.5]]), null), [[2 / 3]])
    assert np.isnan(C.shuffle_p_values(np.array([[0.5]]), np.full((3, 1), np.nan))).all()


def test_lick_rate_is_the_bou_rolling_triangular_mean() -> None:
    frames = np.array([0, 3, 4, 20, 21, 22, 23, 90])
    licks = np.zeros(100)
    licks[frames] = 1
    bou = pd.Series(licks).rolling(window=6, min_periods=1, win_type="triang").mean().values
    np.testing.assert_allclose(C.lick_rate(frames, 100, 60.0), bou * 60.0, rtol=1e-12)
    with pytest.raises(ValueError, match="lick frames"):
        C.lick_rate(np.array([100]), 100, 60.0)


# ---------------------------------------------------------------------------------------
# stimulus_response on sessions: equal to the BOU loop
# ---------------------------------------------------------------------------------------


def test_stimulus_response_contract(sim: xr.Dataset) -> None:
    r = ophys_xr.stimulus_response(sim)
    assert r.eventlocked_traces.dims == ("cell_specimen_id", PRES, TREL)
    assert r.mean_response.dims == r.mean_baseline.dims == ("cell_specimen_id", PRES)
    assert "p_value_gray_screen" not in r
    for name in ("image_name", "is_change", "omitted", "start_time", "trials_id", "hit", "miss",
                 "cell_roi_id", "valid_roi"):
        assert name in r.coords, name
    assert "stimulus_presentations_trials_id" not in r.coords
    np.testing.assert_array_equal(r.cell_specimen_id, sim.cell_specimen_id)  # session order
    np.testing.assert_array_equal(r.cell_roi_id, sim.cell_roi_id)
    assert r.sel(cell_roi_id=int(sim.cell_roi_id[1])).cell_specimen_id == sim.cell_specimen_id[1]
    np.testing.assert_array_equal(r[PRES], sim[PRES].values[_images(sim)])
    assert r.attrs == {
        "data": "dff", "event": "images", "window": [-0.5, 0.75], "response_window": 0.5,
        "baseline_window": 0.5, "interpolate": 1,
        "sampling_rate": pytest.approx(1 / np.diff(sim.time.values).mean()),
        "data_sampling_rate": pytest.approx(1 / np.diff(sim.time.values).mean()),
        "ophys_experiment_id": sim.attrs["ophys_experiment_id"],
    }
    for value in r.attrs.values():
        assert isinstance(value, str | int | float | list)
        assert not isinstance(value, bool)
    assert r[TREL].attrs["units"] == "s"


def test_stimulus_response_equals_the_bou_loop(sim: xr.Dataset) -> None:
    r = ophys_xr.stimulus_response(sim, "dff", "images", sampling_rate=30.0)
    events = sim.start_time.values[_images(sim)]
    inside = _inside(sim, events)
    assert not inside.all()  # the last images come after the end of imaging: BOU fails there
    assert np.isnan(r.eventlocked_traces.values[:, ~inside]).any()
    r = r.isel({PRES: inside})
    grid, ref = bou_interp_cube(sim.time.values, sim.dff.values, events[inside], -0.5, 0.75,
                                30.0)
    np.testing.assert_array_equal(r[TREL].values, grid)
    np.testing.assert_allclose(r.eventlocked_traces.values, ref, rtol=0, atol=1e-12)
    mean_response, mean_baseline = bou_means(ref, grid, 0.5, 0.5)
    np.testing.assert_allclose(r.mean_response.values, mean_response, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.mean_baseline.values, mean_baseline, rtol=0, atol=1e-12)


def test_nearest_mode_equals_the_bou_shift(sim: xr.Dataset) -> None:
    r = ophys_xr.stimulus_response(sim, "events", "changes", interpolate=False)
    events = sim.start_time.values[sim.is_change.values]
    r = r.isel({PRES: _inside(sim, events)})
    events = events[_inside(sim, events)]
    grid, ref = bou_nearest_cube(sim.time.values, sim.events.values, events, -0.5, 0.75)
    np.testing.assert_array_equal(r[TREL].values, grid)
    np.testing.assert_array_equal(r.eventlocked_traces.values, ref)
    assert r.attrs["interpolate"] == 0


def test_tiny_nwb_equals_the_bou_loop(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        r = ds.ophys.stimulus_response("dff", "images").compute()
        ts, traces = ds.time.values, ds.dff.values
        block = np.char.find(ds.stimulus_block_name.values.astype(str), "change_detection") >= 0
        events = ds.start_time.values[block & (ds.omitted.values == 0)]
        running = ds.ophys.stimulus_response("running_speed", "changes").compute()
        changes = ds.start_time.values[block & ds.is_change.values]
        run_ref = bou_interp_cube(ds.stimulus_timestamps.values, ds.running_speed.values,
                                  changes, -0.5, 0.75, 1 / np.diff(ds.stimulus_timestamps).mean())
    grid, ref = bou_interp_cube(ts, traces, events, -0.5, 0.75, 1 / np.diff(ts).mean())
    np.testing.assert_allclose(r.eventlocked_traces.values, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r[TREL].values, grid)
    assert running.eventlocked_traces.dims == (PRES, TREL)  # no cell dim on the running clock
    np.testing.assert_allclose(running.eventlocked_traces.values, run_ref[1][0], rtol=0,
                               atol=1e-12)


def test_events_near_the_edges_are_nan_not_an_error(sim: xr.Dataset) -> None:
    t = sim.time.values
    times = [t[0] + 0.1, t[-1] - 0.1, t[-1] + 100.0]
    for interpolate in (True, False):
        r = ophys_xr.stimulus_response(sim, "dff", times, interpolate=interpolate)
        traces = r.eventlocked_traces.values
        rel = r[TREL].values
        assert np.isnan(traces[:, 0, rel < -0.2]).all()
        assert not np.isnan(traces[:, 0, rel > 0]).any()
        assert np.isnan(traces[:, 1, rel > 0.2]).all()
        assert not np.isnan(traces[:, 1, rel < 0]).any()
        assert np.isnan(traces[:, 2]).all()
        assert np.isnan(r.mean_response.values[:, 2]).all()
        assert not np.isnan(r.mean_response.values[:, :2]).any()  # NaN skipped in the means


def test_explicit_times_and_named_time_events(sim: xr.Dataset) -> None:
    r = ophys_xr.stimulus_response(sim, "dff", np.array([30.0, 40.5]))
    assert r.eventlocked_traces.dims == ("cell_specimen_id", "event", TREL)
    np.testing.assert_array_equal(r.event_time, [30.0, 40.5])
    assert r.attrs["event"] == "times"
    licks = sim.ophys.stimulus_response("dff", "licks")
    np.testing.assert_array_equal(licks.event_time, sim.licks_timestamps)
    np.testing.assert_array_equal(licks.licks_frame, sim.licks_frame)
    rewards = sim.ophys.stimulus_response("running_speed", "rewards")
    np.testing.assert_array_equal(rewards.rewards_volume, sim.rewards_volume)
    same = ophys_xr.stimulus_response(sim, "dff", list(sim.licks_timestamps.values))
    np.testing.assert_array_equal(same.eventlocked_traces, licks.eventlocked_traces)


def test_boolean_column_events_and_the_change_detection_block(sim: xr.Dataset) -> None:
    r = ophys_xr.stimulus_response(sim, "dff", "is_sham_change")
    np.testing.assert_array_equal(r[PRES], sim[PRES].values[sim.is_sham_change.values])
    assert r.is_sham_change.values.all()
    # rows outside the change-detection block are never events, nor is the block's gray screen
    ds = sim.copy()
    names = ds.stimulus_block_name.values.copy()
    names[:5] = "initial_gray_screen_5min"
    ds["stimulus_block_name"] = ds.stimulus_block_name.copy(data=names)
    images = ophys_xr.stimulus_response(ds, "dff", "images")
    assert not np.isin(ds[PRES].values[:5], images[PRES].values).any()
    assert images.sizes[PRES] == int(_images(ds).sum())
    everything = ophys_xr.stimulus_response(ds, "dff", "all")
    assert everything.sizes[PRES] == ds.sizes[PRES] - 5
    omissions = ophys_xr.stimulus_response(sim, "dff", "omissions")
    assert (omissions.omitted == 1.0).all()
    assert (omissions.image_name == "omitted").all()
    changes = ophys_xr.stimulus_response(sim, "dff", "changes")
    assert changes.is_change.values.all()
    # the trial outcome of a change is that of its trial
    tid = changes.trials_id.values
    hit = sim.hit.sel(trials_id=tid[tid >= 0]).values
    np.testing.assert_array_equal(changes.hit.values[tid >= 0], hit.astype(float))


def test_other_clocks_and_lick_rate(sim: xr.Dataset) -> None:
    ts = sim.stimulus_timestamps.values
    rate = 1 / np.diff(ts).mean()
    r = ophys_xr.stimulus_response(sim, "lick_rate", "changes")
    licks = C.lick_rate(sim.licks_frame.values, ts.size, rate)
    events = sim.start_time.values[sim.is_change.values]  # the stimulus clock covers them all
    _, ref = bou_interp_cube(ts, licks, events, -0.5, 0.75, rate)
    np.testing.assert_allclose(r.eventlocked_traces.values, ref[0], rtol=0, atol=1e-12)
    assert r.eventlocked_traces.attrs["units"] == "1/s"
    eye = ophys_xr.blink_filter(sim, z_threshold=2.0, dilation_frames=4)
    pupil = ophys_xr.stimulus_response(sim, eye.pupil_area, "images")
    assert pupil.attrs["data"] == "pupil_area"
    _, ref = bou_interp_cube(sim.eye_timestamps.values, eye.pupil_area.values,
                             sim.start_time.values[_images(sim)], -0.5, 0.75,
                             1 / np.diff(sim.eye_timestamps.values).mean())
    np.testing.assert_allclose(pupil.eventlocked_traces.values, ref[0], rtol=0, atol=1e-9,
                               equal_nan=True)
    assert pupil.eventlocked_traces.attrs["units"] == "pixel**2"


def test_trial_response_coordinates(sim: xr.Dataset) -> None:
    r = sim.ophys.trial_response("dff", window=(-2.0, 3.0))
    with_change = np.isfinite(sim.change_time.values)
    assert _inside(sim, sim.change_time.values[with_change], (-2.0, 3.0)).all()
    assert r.eventlocked_traces.dims == ("cell_specimen_id", "trials_id", TREL)
    np.testing.assert_array_equal(r.trials_id, sim.trials_id.values[with_change])
    for name in ("change_time", "hit", "miss", "false_alarm", "correct_reject", "aborted", "go",
                 "catch", "auto_rewarded", "change_image_name", "initial_image_name"):
        np.testing.assert_array_equal(r[name].values, sim[name].values[with_change])
    assert not r.aborted.values.any()
    _, ref = bou_interp_cube(sim.time.values, sim.dff.values,
                             sim.change_time.values[with_change], -2.0, 3.0,
                                1 / np.diff(sim.time.values).mean())
    np.testing.assert_allclose(r.eventlocked_traces.values, ref, rtol=0, atol=1e-12,
                               equal_nan=False)
    assert r.attrs["event"] == "change_time"
    assert r.attrs["window"] == [-2.0, 3.0]
    by_outcome = r.mean_response.groupby("hit").mean()
    assert set(by_outcome.hit.values) <= {False, True}


def test_groupby_image_name(sim: xr.Dataset) -> None:
    r = ophys_xr.stimulus_response(sim)
    means = r.mean_response.groupby("image_name").mean()
    name = str(means.image_name.values[0])
    manual = r.mean_response.values[:, r.image_name.values == name].mean(axis=1)
    np.testing.assert_allclose(means.sel(image_name=name).values, manual)
    traces = r.eventlocked_traces.groupby("image_name").mean()
    assert traces.dims == ("cell_specimen_id", "image_name", TREL)


def test_accessor_forwards(sim: xr.Dataset) -> None:
    a = sim.ophys.stimulus_response("events", "changes", window=(-1, 1), interpolate=False)
    b = ophys_xr.stimulus_response(sim, "events", "changes", window=(-1, 1), interpolate=False)
    xr.testing.assert_identical(a, b)


# ---------------------------------------------------------------------------------------
# laziness
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_bytes", [None, 1])
def test_lazy_on_dask_and_equal_to_numpy(sim: xr.Dataset, sim_lazy: xr.Dataset,
                                         block_bytes: int | None, monkeypatch) -> None:
    if block_bytes is not None:  # too large for one task: one cell per block
        monkeypatch.setattr(ophys_xr.responses, "_ONE_TASK_BYTES", 0)
        monkeypatch.setattr(ophys_xr.responses, "_BLOCK_BYTES", block_bytes)
    with raise_if_dask_computes():
        lazy = sim_lazy.ophys.stimulus_response("dff", "images", p_value=True, n_shuffles=500)
        trials = sim_lazy.ophys.trial_response("filtered_events", p_value=True, n_shuffles=500)
        running = sim_lazy.ophys.stimulus_response("running_speed", "changes")
        selectivity = lazy.ophys.image_selectivity()
        sparseness = lazy.ophys.lifetime_sparseness()
        reliable = lazy.ophys.reliability(by="image_name")
        fraction = lazy.ophys.fraction_significant_responses()
    n_cells = sim.sizes["cell_specimen_id"]
    assert lazy.eventlocked_traces.data.numblocks == (1 if block_bytes is None else n_cells, 1, 1)
    eager = sim.ophys.stimulus_response("dff", "images", p_value=True, n_shuffles=500)
    xr.testing.assert_identical(lazy.compute(), eager)
    xr.testing.assert_identical(
        trials.compute(), sim.ophys.trial_response("filtered_events", p_value=True,
                                                   n_shuffles=500))
    xr.testing.assert_identical(running.compute(),
                                sim.ophys.stimulus_response("running_speed", "changes"))
    xr.testing.assert_identical(selectivity.compute(), eager.ophys.image_selectivity())
    xr.testing.assert_identical(sparseness.compute(), eager.ophys.lifetime_sparseness())
    xr.testing.assert_identical(reliable.compute(), eager.ophys.reliability(by="image_name"))
    xr.testing.assert_identical(fraction.compute(), eager.ophys.fraction_significant_responses())


class _CountingSource:
    """A numpy array for ``dask.array.from_array`` that records every read (as a file)."""

    def __init__(self, values: np.ndarray, reads: list) -> None:
        self.values, self.reads = values, reads
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key):
        self.reads.append(str(key))
        return self.values[key]


@pytest.mark.parametrize(("data", "event", "window", "p_value"), [
    ("dff", "images", (-0.5, 0.75), False),  # the plan uses most samples: whole trace
    ("dff", "changes", (-1.0, 1.0), False),  # many samples: gathered from the blocks
    ("dff", [30.0, 61.5, 90.0], (-0.5, 0.75), False),  # very few: only those are copied
    ("dff", "changes", (-1.0, 1.0), True),  # p-values need the gray screen: whole trace
    ("running_speed", "changes", (-1.0, 1.0), False),  # no cell dim
    ("pupil_area", [30.0, 61.5, float("nan")], (-0.5, 0.75), False),
])
def test_a_dask_trace_that_fits_is_one_task_reading_each_block_once(
        sim: xr.Dataset, data: str, event, window, p_value: bool) -> None:
    import dask.array as dsa

    reads: list = []
    var = sim[data]
    chunks = {"time": 500, "cell_specimen_id": 3 if p_value else -1, "stimulus_frame": 2000,
              "eye_frame": 3000}  # all cells in one chunk: the blocks are gathered from
    source = dsa.from_array(_CountingSource(var.values, reads),
                            chunks=tuple(chunks[str(d)] for d in var.dims))
    lazy_ds = sim.assign({data: var.copy(data=source)})
    kwargs = {"window": window, "response_window": 0.25, "baseline_window": 0.25,
              "p_value": p_value, "n_shuffles": 200}
    for interpolate in (True, False):
        with raise_if_dask_computes():
            lazy = ophys_xr.stimulus_response(lazy_ds, data, event, **kwargs,
                                              interpolate=interpolate)
        names = {str(key[0] if isinstance(key, tuple) else key)
                 for key in lazy.eventlocked_traces.data.dask}
        assert not [name for name in names if "rechunk" in name]
        assert len([name for name in names if name.startswith("eventlocked-")]) == 1
        assert {lazy[v].data.npartitions for v in lazy.data_vars} == {1}
        reads.clear()
        computed = lazy.compute()
        assert len(reads) == source.npartitions == len(set(reads))  # each block read once
        xr.testing.assert_identical(computed, ophys_xr.stimulus_response(
            sim, data, event, **kwargs, interpolate=interpolate))


def test_building_a_response_imports_no_distributed() -> None:
    """dask's default rechunk method looks for a distributed client (0.2-0.7 s to import)."""
    code = textwrap.dedent("""
        import sys, dask, dask.array as dsa, ophys_xr
        from ophys_xr.testing import simulate_session
        import ophys_xr.responses as r
        ds = simulate_session(n_cells=3, minutes=1.0, seed=0).load(scheduler=dask.get)
        ds = ds.assign(dff=ds.dff.copy(data=dsa.from_array(ds.dff.values, chunks=(300, 2))))
        assert 'distributed' not in sys.modules, 'imported before'
        for one_task in (True, False):
            r._ONE_TASK_BYTES = r.MAX_RESPONSE_BYTES if one_task else 0
            ds.ophys.stimulus_response('dff', 'images')
        assert 'distributed' not in sys.modules, 'distributed imported'
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]


def test_lazy_nwb_session(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        with raise_if_dask_computes():
            lazy = ds.ophys.stimulus_response("dff", "images", p_value=True)
        assert lazy.eventlocked_traces.chunks is not None
        xr.testing.assert_identical(lazy.compute(), ds.load().ophys.stimulus_response(
            "dff", "images", p_value=True))


# ---------------------------------------------------------------------------------------
# gray-screen p-values
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gray() -> xr.Dataset:
    """A session whose first 120 presentations are dropped (a 90-s gray screen), with dff:
    cell 0 = noise + a large response after each remaining image, cell 1 = pure noise."""
    ds = simulate_session(n_cells=2, n_invalid=0, minutes=6.0, seed=11).load()
    ds = ds.isel(stimulus_presentations_id=slice(120, None))
    t = ds.time.values
    rng = np.random.default_rng(0)
    dff = rng.standard_normal((t.size, 2))
    onsets = ds.start_time.values[ds.omitted.values == 0]
    after = np.searchsorted(onsets, t, side="right") - 1
    responding = (after >= 0) & (t - onsets[np.maximum(after, 0)] <= 0.6)
    dff[responding, 0] += 40.0
    return ds.assign(dff=ds.dff.copy(data=dff))


def test_p_values_known_answers(gray: xr.Dataset) -> None:
    r = gray.ophys.stimulus_response("dff", "images", p_value=True, interpolate=False)
    p = r.p_value_gray_screen
    assert p.dims == ("cell_specimen_id", PRES)
    missing = np.isnan(r.mean_response.values)  # the last images, after the end of imaging
    assert missing.any()
    np.testing.assert_array_equal(np.isnan(p.values), missing)  # BOU would say 0 there
    p = p.isel({PRES: ~missing[0]})
    # huge responses: above every shuffle but the few whose window starts in the last 0.5 s
    # of the gray screen and so reaches into the first presentation (as in BOU)
    assert (p.isel(cell_specimen_id=0) < 1e-3).all()
    noise = p.isel(cell_specimen_id=1).values
    assert 0.4 < noise.mean() < 0.6
    assert abs(np.mean(noise < 0.05) - 0.05) < 0.04
    assert abs(np.mean(noise < 0.5) - 0.5) < 0.1
    fraction = r.ophys.fraction_significant_responses()
    np.testing.assert_allclose(fraction.values, [1.0, np.mean(noise < 0.05)])


def test_p_values_follow_the_bou_definition(gray: xr.Dataset) -> None:
    r = gray.ophys.stimulus_response("dff", "images", p_value=True, n_shuffles=3000, seed=7)
    ts = gray.time.values
    rate = 1 / np.diff(ts).mean()
    first = gray.start_time.values[0]  # BOU: start_time of the first change-detection row
    frames = np.arange(bou_nearest(ts, np.array([first - 240.0]))[0],
                       bou_nearest(ts, np.array([first]))[0])
    starts = np.random.default_rng(7).choice(frames, 3000)
    n_frames = round(0.5 * rate)
    expected = bou_p_values(r.mean_response.values.T, gray.dff.values, starts, n_frames).T
    ok = ~np.isnan(r.mean_response.values)
    np.testing.assert_array_equal(r.p_value_gray_screen.values[ok], expected[ok])
    assert np.isnan(r.p_value_gray_screen.values[~ok]).all()
    assert r.attrs["p_value_n_frames"] == n_frames == 15
    assert r.attrs["p_value_n_shuffles"] == 3000
    assert r.attrs["p_value_seed"] == 7
    assert r.attrs["gray_screen_interval"] == [ts[0], first]


def test_gray_screen_block_is_used_when_present(sim: xr.Dataset) -> None:
    ds = sim.copy()
    names = ds.stimulus_block_name.values.copy()
    names[:40] = "initial_gray_screen_5min"  # pretend: the first 30 s are a gray-screen block
    ds["stimulus_block_name"] = ds.stimulus_block_name.copy(data=names)
    r = ds.ophys.stimulus_response("dff", "images", p_value=True, n_shuffles=100)
    gray_start, gray_end = ds.start_time.values[39], ds.end_time.values[39]  # the last gray row
    ts = ds.time.values
    assert r.attrs["gray_screen_interval"] == [
        ts[C.index_of_nearest_value(ts, np.array([gray_start]))[0]], gray_end]


def test_no_gray_screen_is_an_error(sim: xr.Dataset) -> None:
    late = sim.isel(time=slice(200, None))  # imaging starts after the first presentation
    with pytest.raises(MissingDataError, match="no gray screen"):
        late.ophys.stimulus_response("dff", "images", p_value=True)
    late.ophys.stimulus_response("dff", "images")  # fine without p-values


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------


def test_error_messages(sim: xr.Dataset) -> None:
    with pytest.raises(MissingDataError, match=r"No data variable 'dfff'.*'dff'.*'lick_rate'"):
        ophys_xr.stimulus_response(sim, "dfff")
    with pytest.raises(OptionError, match=r"data 'roi_mask' has dims"):
        ophys_xr.stimulus_response(sim, "roi_mask")
    with pytest.raises(OptionError, match=r"unknown event 'flashes'.*'images'"):
        ophys_xr.stimulus_response(sim, "dff", "flashes")
    with pytest.raises(OptionError, match="not a boolean one"):
        ophys_xr.stimulus_response(sim, "dff", "duration")
    with pytest.raises(OptionError, match="event times"):
        ophys_xr.stimulus_response(sim, "dff", {"a": 1})
    with pytest.raises(OptionError, match="boolean array"):
        ophys_xr.stimulus_response(sim, "dff", sim.is_change.values)
    with pytest.raises(OptionError, match="non-empty"):
        ophys_xr.stimulus_response(sim, "dff", [])
    for window in ((0.75, -0.5), (0.5, 0.5), (-1,), "ab", (-1, math.inf)):
        with pytest.raises(OptionError, match="start < end"):
            ophys_xr.stimulus_response(sim, window=window)
    with pytest.raises(OptionError, match="must lie inside window"):
        ophys_xr.stimulus_response(sim, window=(-0.2, 0.75))
    with pytest.raises(OptionError, match="response_window must be a positive"):
        ophys_xr.stimulus_response(sim, response_window=0)
    with pytest.raises(OptionError, match="needs interpolate=True"):
        ophys_xr.stimulus_response(sim, interpolate=False, sampling_rate=30.0)
    with pytest.raises(OptionError, match="holds no point"):
        ophys_xr.stimulus_response(sim, sampling_rate=1.0, response_window=0.5,
                                   window=(-0.7, 0.75))
    with pytest.raises(OptionError, match="n_shuffles"):
        ophys_xr.stimulus_response(sim, p_value=True, n_shuffles=0)
    nothing = sim.assign(is_sham_change=sim.is_sham_change & False)
    with pytest.raises(MissingDataError, match="no presentation"):
        ophys_xr.stimulus_response(nothing, "dff", "is_sham_change")
    shuffled = sim.assign_coords(time=sim.time.values[::-1].copy())
    with pytest.raises(SchemaError, match="increasing"):
        ophys_xr.stimulus_response(shuffled)
    plain = ophys_xr.stimulus_response(sim)
    with pytest.raises(MissingDataError, match="p_value=True"):
        ophys_xr.fraction_significant_responses(plain)
    with pytest.raises(OptionError, match="by='nope'.*'image_name'"):
        ophys_xr.image_selectivity(plain, by="nope")
    with pytest.raises(MissingDataError, match="mean_response"):
        ophys_xr.lifetime_sparseness(sim)


def test_result_round_trips_through_netcdf(sim: xr.Dataset, tmp_path) -> None:
    r = ophys_xr.stimulus_response(sim, "dff", "changes", p_value=True, n_shuffles=100)
    path = tmp_path / "r.nc"
    r.reset_index("cell_roi_id").to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        assert back.attrs["window"].tolist() == [-0.5, 0.75]
        np.testing.assert_array_equal(back.eventlocked_traces.values, r.eventlocked_traces.values)
