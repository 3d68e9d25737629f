"""Event-locked responses (xarray layer over ``_compute``).

:func:`stimulus_response` cuts any trace of a session (ΔF/F, events, running speed, pupil
area, lick rate, ...) around events (image flashes, changes, omissions, a boolean column of
the presentations, licks, rewards or explicit times) into one labeled cube, with the mean
response and baseline of every event and, on request, the gray-screen shuffle p-value of
each response.  :func:`trial_response` does the same aligned on the trials' ``change_time``.
The metrics that take what those return (:func:`~ophys_xr.metrics.image_selectivity`,
:func:`~ophys_xr.metrics.lifetime_sparseness`, :func:`~ophys_xr.metrics.reliability`,
:func:`~ophys_xr.metrics.fraction_significant_responses`) live in :mod:`ophys_xr.metrics`;
they are re-exported here.

The definitions are those of the Allen analysis helpers — brain_observatory_utilities
(BOU) ``get_stimulus_response_xr`` / ``event_triggered_response`` and
visual_behavior_analysis (VBA) ``get_trials_response_xr`` — and each docstring states them,
with the few places where ophys_xr does something else on purpose.  The cube is built in
one vectorised gather (indices and weights computed once for all events, then applied to
all cells at once, :func:`ophys_xr._compute.eventlocked_responses`); on dask input it is
lazy: one task that reads every block of the trace once and computes the whole result
(single chunks) when the trace and the cube fit in :data:`MAX_RESPONSE_BYTES`, else one task
per block of cells with the whole time axis in each block.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr import _compute, _options
from ophys_xr._compute.eventlocked import TimePieces, copy_tiled
from ophys_xr.exceptions import MissingDataError, OptionError, SchemaError
from ophys_xr.metrics import (
    fraction_significant_responses,
    image_selectivity,
    lifetime_sparseness,
    reliability,
)
from ophys_xr.variables import CELL_DIM, PRES_DIM, SPECS, validate

__all__ = [
    "PRESENTATION_EVENTS",
    "TIME_EVENTS",
    "fraction_significant_responses",
    "image_selectivity",
    "lifetime_sparseness",
    "reliability",
    "stimulus_response",
    "trial_response",
]

#: Named presentation events (rows of the change-detection block).
PRESENTATION_EVENTS: tuple[str, ...] = ("images", "changes", "omissions", "all")
#: Named events with their own times (dim ``event``).
TIME_EVENTS: tuple[str, ...] = ("licks", "rewards")

CELL = CELL_DIM
PRES = PRES_DIM
TRIALS = "trials_id"
EVENT = "event"
TREL = "eventlocked_timestamps"

#: Clock dimension -> the variable holding its timestamps (seconds).
_CLOCKS: dict[str, str] = {
    "time": "time",
    "stimulus_frame": "stimulus_timestamps",
    "eye_frame": "eye_timestamps",
}
#: Source dim and timestamp variable of the named time events.
_TIME_EVENT_SOURCES: dict[str, tuple[str, str]] = {
    "licks": ("lick", "licks_timestamps"),
    "rewards": ("reward", "rewards_timestamps"),
}
#: Trial columns joined onto presentations through their trial (float, NaN = no trial).
_TRIAL_FLAGS = ("go", "catch", "hit", "miss", "false_alarm", "correct_reject", "aborted",
                "auto_rewarded")
_TRIAL_VALUES = ("change_time", "response_latency")
#: Target size of one output block of the cube on dask input too large for one task.
_BLOCK_BYTES = 64 * 2**20


# ---------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    window: tuple[float, float]
    response_window: float
    baseline_window: float
    interpolate: bool
    sampling_rate: float | None
    p_value: bool
    n_shuffles: int
    seed: int | None


def _check_params(
    window: Sequence[float],
    response_window: float,
    baseline_window: float,
    interpolate: bool,
    sampling_rate: float | None,
    p_value: bool,
    n_shuffles: int,
    seed: int | None,
) -> _Params:
    w0, w1 = _options.interval(window, "window", unit="seconds relative to the event",
                               example="(-0.5, 0.75)")
    for name, value in (("response_window", response_window),
                        ("baseline_window", baseline_window)):
        _options.positive_number(value, name, unit="seconds")
    if float(response_window) > w1 or -float(baseline_window) < w0:
        msg = (
            f"the response window [0, {response_window}] s and the baseline window "
            f"[-{baseline_window}, 0] s must lie inside window ({w0}, {w1}); widen the window "
            "or shorten response_window / baseline_window"
        )
        raise OptionError(msg)
    _options.boolean(interpolate, "interpolate")
    if sampling_rate is not None:
        _options.positive_number(sampling_rate, "sampling_rate", unit="Hz (or None)")
        if not interpolate:
            msg = (
                f"sampling_rate={sampling_rate!r} needs interpolate=True: nearest-sample "
                "responses (interpolate=False) keep the data's own sampling rate. Pass "
                "sampling_rate=None or interpolate=True."
            )
            raise OptionError(msg)
    _options.boolean(p_value, "p_value")
    _options.integer(n_shuffles, "n_shuffles", minimum=1)
    if seed is not None:
        _options.integer(seed, "seed (or None)", minimum=0)
    return _Params(
        window=(w0, w1), response_window=float(response_window),
        baseline_window=float(baseline_window), interpolate=bool(interpolate),
        sampling_rate=None if sampling_rate is None else float(sampling_rate),
        p_value=bool(p_value), n_shuffles=int(n_shuffles),
        seed=None if seed is None else int(seed),
    )


# ---------------------------------------------------------------------------------------
# the trace
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trace:
    data: xr.DataArray
    clock: str
    timestamps: np.ndarray
    name: str


def _usable(ds: xr.Dataset) -> list[str]:
    names = [
        str(n) for n, v in ds.data_vars.items()
        if _trace_dims_ok(v.dims) and v.dtype.kind in "biuf"
    ]
    return [*names, "lick_rate"]


def _trace_dims_ok(dims: tuple[Hashable, ...]) -> bool:
    clocks = [d for d in dims if d in _CLOCKS]
    rest = [d for d in dims if d not in _CLOCKS]
    return len(clocks) == 1 and rest in ([], [CELL])


def _lick_rate(ds: xr.Dataset) -> xr.DataArray:
    validate(ds, ("licks_frame", "stimulus_timestamps"), purpose="data='lick_rate'")
    ts = np.asarray(ds["stimulus_timestamps"].values, dtype=np.float64)
    try:
        rate = _compute.mean_sampling_rate(ts)
        values = _compute.lick_rate(np.asarray(ds["licks_frame"].values), ts.size, rate)
    except ValueError as err:
        msg = f"cannot compute the lick rate of this session: {err}"
        raise SchemaError(msg) from err
    return xr.DataArray(
        values, dims=("stimulus_frame",), coords={"stimulus_timestamps": ("stimulus_frame", ts)},
        name="lick_rate",
        attrs={"units": "1/s", "description": "Lick rate: 0/1 lick indicator per stimulus frame "
               "(licks_frame), trailing 6-frame triangular mean (BOU get_licks_df), times the "
               "stimulus frame rate"},
    )


def _trace(ds: xr.Dataset, data: str | xr.DataArray) -> _Trace:
    if isinstance(data, xr.DataArray):
        da, name = data, ("data" if data.name is None else str(data.name))
    elif not isinstance(data, str):
        msg = (f"data must be the name of a variable of the session or a DataArray, got "
               f"{type(data).__name__}")
        raise OptionError(msg)
    elif data == "lick_rate":
        da, name = _lick_rate(ds), "lick_rate"
    elif data in ds.data_vars:
        da, name = ds[data], data
    else:
        missing = str(ds.attrs.get("ophys_xr_missing", "")).split()
        why = " The source file has no such data." if data in missing else ""
        msg = (
            f"No data variable {data!r} in the session Dataset.{why} stimulus_response can cut "
            f"these (a time dimension {list(_CLOCKS)}, optionally by cell): {_usable(ds)}"
        )
        raise MissingDataError(msg)
    if not _trace_dims_ok(da.dims) or da.dtype.kind not in "biuf":
        msg = (
            f"data {name!r} has dims {da.dims} and dtype {da.dtype}; event-locked responses "
            f"need a numeric variable on one of the clocks {list(_CLOCKS)} (optionally by "
            f"{CELL!r}). Usable variables: {_usable(ds)}"
        )
        raise OptionError(msg)
    clock = next(str(d) for d in da.dims if d in _CLOCKS)
    ts_name = _CLOCKS[clock]
    if ts_name in da.coords:
        ts_var = da.coords[ts_name]
    elif ts_name in ds.variables:
        ts_var = ds[ts_name]
    else:
        msg = f"data {name!r} is on {clock!r} but there is no {ts_name!r} to give its times"
        raise MissingDataError(msg)
    ts = np.asarray(ts_var.values, dtype=np.float64)
    if ts.ndim != 1 or ts.size != da.sizes[clock]:
        msg = (f"{ts_name!r} has shape {ts.shape}, but {name!r} has {da.sizes[clock]} samples "
               f"along {clock!r}")
        raise SchemaError(msg)
    if ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) < 0):
        msg = (f"{ts_name!r} must hold at least two finite, increasing times to cut {name!r} "
               f"around events; got {ts.size} values")
        raise SchemaError(msg)
    if da.dtype.kind != "f" or da.dtype != np.float64:
        da = da.astype(np.float64)
    return _Trace(data=da, clock=clock, timestamps=ts, name=name)


# ---------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------


@dataclass
class _Events:
    dim: str
    ids: np.ndarray
    times: np.ndarray
    label: str
    coords: dict[str, xr.Variable] = field(default_factory=dict)


def _presentation_names(ds: xr.Dataset) -> list[str]:
    return [str(n) for n, v in ds.variables.items() if v.dims == (PRES,) and n != PRES]


def _change_detection_rows(ds: xr.Dataset) -> np.ndarray:
    """Rows of the change-detection block (BOU ``limit_..._to_change_detection``)."""
    validate(ds, ("start_time", "image_name", "omitted", "is_change"),
             purpose="event-locked responses")
    if "stimulus_block_name" in ds.variables:
        names = np.asarray(ds["stimulus_block_name"].values).astype(str)
        return np.char.find(names, "change_detection") >= 0
    return np.asarray(ds["image_name"].values).astype(str) != ""


def _bool_column(ds: xr.Dataset, name: str) -> np.ndarray:
    values = np.asarray(ds[name].values)
    if values.dtype.kind == "b":
        return values
    spec = SPECS.get(name)
    nullable = (spec is not None and spec.nullable_bool) or bool(
        np.all(np.isin(values[~np.isnan(values)], (0.0, 1.0))))
    if values.dtype.kind == "f" and nullable:
        return values == 1.0
    msg = (
        f"event={name!r} is a presentations column of dtype {values.dtype}, not a boolean one; "
        f"pass one of {list(PRESENTATION_EVENTS)}, a boolean column (e.g. 'is_change', "
        "'is_sham_change'), or event times"
    )
    raise OptionError(msg)


def _trial_join(ds: xr.Dataset, trial_ids: np.ndarray) -> dict[str, xr.Variable]:
    if TRIALS not in ds.indexes:
        return {}
    pos = ds.indexes[TRIALS].get_indexer(trial_ids)
    out: dict[str, xr.Variable] = {}
    for name in (*_TRIAL_FLAGS, *_TRIAL_VALUES):
        if name not in ds.variables or ds[name].dims != (TRIALS,):
            continue
        values = np.asarray(ds[name].values, dtype=np.float64)
        joined = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
        attrs = dict(SPECS[name].attrs()) if name in SPECS else {}
        attrs["description"] = (f"{attrs.get('description', name)}, of the trial the "
                                "presentation belongs to (NaN: none)")
        if name in _TRIAL_FLAGS:
            attrs["flag_values"] = "1.0 = True, 0.0 = False, NaN = missing"
        out[name] = xr.Variable((PRES,), joined, attrs)
    return out


def _presentation_events(ds: xr.Dataset, event: str) -> _Events:
    keep = _change_detection_rows(ds)
    omitted = np.asarray(ds["omitted"].values, dtype=np.float64)
    if event == "images":
        sel = omitted == 0.0
    elif event == "changes":
        sel = np.asarray(ds["is_change"].values, dtype=bool)
    elif event == "omissions":
        sel = omitted == 1.0
    elif event == "all":
        sel = np.ones(keep.shape, dtype=bool)
    else:
        sel = _bool_column(ds, event)
    rows = np.flatnonzero(keep & sel)
    if rows.size == 0:
        msg = (
            f"no presentation of the change-detection block matches event={event!r} "
            f"({int(keep.sum())} presentations in the block); nothing to cut"
        )
        raise MissingDataError(msg)
    coords: dict[str, xr.Variable] = {}
    for name in _presentation_names(ds):
        var = ds.variables[name][rows]
        coords[TRIALS if name == "stimulus_presentations_trials_id" else name] = var
    if "stimulus_presentations_trials_id" in ds.variables:
        trial_ids = np.asarray(ds["stimulus_presentations_trials_id"].values)[rows]
        coords.update(_trial_join(ds, trial_ids))
    return _Events(
        dim=PRES, ids=np.asarray(ds[PRES].values)[rows],
        times=np.asarray(ds["start_time"].values, dtype=np.float64)[rows],
        label=event, coords=coords,
    )


def _time_events(ds: xr.Dataset, event: str) -> _Events:
    dim, ts_name = _TIME_EVENT_SOURCES[event]
    validate(ds, ts_name, purpose=f"event={event!r}")
    times = np.asarray(ds[ts_name].values, dtype=np.float64)
    if times.size == 0:
        msg = f"this session has no {event} ({ts_name!r} is empty); nothing to cut"
        raise MissingDataError(msg)
    coords = {"event_time": xr.Variable((EVENT,), times, {"units": "s",
                                                          "description": f"Time of the {event}"})}
    for name, var in ds.variables.items():
        if var.dims == (dim,) and name != ts_name:
            coords[str(name)] = xr.Variable((EVENT,), var.values, var.attrs)
    return _Events(dim=EVENT, ids=np.arange(times.size), times=times, label=event,
                   coords=coords)


def _explicit_events(event: Any) -> _Events:
    if np.asarray(event.values if isinstance(event, xr.DataArray) else event).dtype.kind == "b":
        msg = (
            "event is a boolean array; pass event times in seconds, or the name of a boolean "
            "column of the presentations (e.g. 'is_change')"
        )
        raise OptionError(msg)
    try:
        times = np.asarray(event.values if isinstance(event, xr.DataArray) else event,
                           dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = (
            f"event must be one of {list(PRESENTATION_EVENTS + TIME_EVENTS)}, a boolean column "
            f"of the presentations, or event times (seconds); got {event!r}"
        )
        raise OptionError(msg) from err
    times = np.atleast_1d(times)
    if times.ndim != 1 or times.size == 0:
        msg = f"event times must be a non-empty 1-D sequence of seconds, got shape {times.shape}"
        raise OptionError(msg)
    coords = {"event_time": xr.Variable((EVENT,), times, {"units": "s",
                                                          "description": "Event time"})}
    return _Events(dim=EVENT, ids=np.arange(times.size), times=times, label="times",
                   coords=coords)


def _stimulus_events(ds: xr.Dataset, event: Any) -> _Events:
    if isinstance(event, str):
        if event in TIME_EVENTS:
            return _time_events(ds, event)
        if event in PRESENTATION_EVENTS:
            return _presentation_events(ds, event)
        if event in _presentation_names(ds):
            return _presentation_events(ds, event)
        msg = (
            f"unknown event {event!r}; choose one of {list(PRESENTATION_EVENTS + TIME_EVENTS)}, "
            f"a boolean column of the presentations (e.g. 'is_change', 'is_sham_change'), or "
            "pass event times (seconds)"
        )
        raise OptionError(msg)
    return _explicit_events(event)


def _trial_events(ds: xr.Dataset) -> _Events:
    validate(ds, ("change_time", TRIALS), purpose="trial_response")
    change = np.asarray(ds["change_time"].values, dtype=np.float64)
    rows = np.flatnonzero(np.isfinite(change))
    if rows.size == 0:
        msg = (f"none of the {change.size} trials has a change_time (all aborted?); "
               "nothing to cut" if change.size else
               "the Dataset has no trials (an empty selection of trials_id?); nothing to cut")
        raise MissingDataError(msg)
    coords = {
        str(n): v[rows] for n, v in ds.variables.items() if v.dims == (TRIALS,) and n != TRIALS
    }
    return _Events(dim=TRIALS, ids=np.asarray(ds[TRIALS].values)[rows], times=change[rows],
                   label="change_time", coords=coords)


# ---------------------------------------------------------------------------------------
# gray screen
# ---------------------------------------------------------------------------------------


def _gray_screen_interval(ds: xr.Dataset) -> tuple[float, float]:
    """(start, end) s of the gray screen before the first change-detection presentation."""
    rows = np.flatnonzero(_change_detection_rows(ds))
    if rows.size == 0:
        msg = "p_value=True needs a change-detection block to find the gray screen before it"
        raise MissingDataError(msg)
    names = np.asarray(ds["image_name"].values).astype(str)
    start_time = np.asarray(ds["start_time"].values, dtype=np.float64)
    first = rows[1] if names[rows[0]] == "omitted" and rows.size > 1 else rows[0]  # BOU
    end = float(start_time[first])
    start = -math.inf
    if "stimulus_block_name" in ds.variables and "end_time" in ds.variables:
        blocks = np.asarray(ds["stimulus_block_name"].values).astype(str)
        gray = np.flatnonzero((np.char.find(blocks, "gray_screen") >= 0) & (start_time < end))
        if gray.size:
            last = gray[-1]
            start = float(start_time[last])
            end = min(end, float(np.asarray(ds["end_time"].values, dtype=np.float64)[last]))
    return start, end


def _shuffle_starts(ds: xr.Dataset, tr: _Trace, n_frames: int, params: _Params
                    ) -> tuple[np.ndarray, tuple[float, float]]:
    g0, g1 = _gray_screen_interval(ds)
    start = max(g0, g1 - _compute.GRAY_SCREEN_SECONDS)
    ts = tr.timestamps
    f0, f1 = (int(i) for i in _compute.index_of_nearest_value(ts, np.array([start, g1])))
    frames = np.arange(f0, f1)
    if frames.size == 0 or frames[-1] + n_frames > ts.size:
        msg = (
            f"p_value=True needs gray-screen samples of {tr.name!r} before the first stimulus "
            f"presentation ({g1:.3f} s), but its samples start at {ts[0]:.3f} s ({frames.size} "
            f"samples between {start:.3f} and {g1:.3f} s). This session has no gray screen to "
            "shuffle; use p_value=False."
        )
        raise MissingDataError(msg)
    rng = np.random.default_rng(params.seed)
    starts = rng.choice(frames, params.n_shuffles)
    return starts, (float(ts[f0]), float(g1))


# ---------------------------------------------------------------------------------------
# the cube
# ---------------------------------------------------------------------------------------


#: Largest in-memory part of a response computation: the sampling plan (events × offsets;
#: 24 bytes each when interpolating) and, for data in memory, the cube itself.
MAX_RESPONSE_BYTES = 4 * 2**30
#: A dask trace whose samples and cube fit in this many bytes is computed as one task
#: (:func:`_one_task`); a larger one in blocks of cells of about :data:`_BLOCK_BYTES`.
_ONE_TASK_BYTES = MAX_RESPONSE_BYTES


def _check_size(tr: _Trace, ev: _Events, params: _Params, rate: float) -> None:
    """Refuse a window × rate × events that cannot fit, before allocating anything."""
    w0, w1 = params.window
    n_offsets = int((w1 - w0) * rate) + 1
    n_events = len(ev.times)
    need = 24 * n_events * n_offsets
    what = "the sampling plan"
    if tr.data.chunks is None:
        n_cells = tr.data.sizes.get(CELL, 1)
        need += 8 * n_cells * n_events * n_offsets
        what = "the sampling plan and the response cube (data in memory)"
    if need > MAX_RESPONSE_BYTES:
        msg = (
            f"window {params.window} s at {rate:g} Hz is {n_offsets} samples for each of "
            f"{n_events} events: {what} would need {need / 2**30:.1f} GiB (limit "
            f"{MAX_RESPONSE_BYTES / 2**30:.0f} GiB); use a shorter window, a lower "
            "sampling_rate or fewer events (select presentations or trials first)"
        )
        raise OptionError(msg)


#: When the blocks must be joined into one array anyway, only the samples the plan uses
#: are copied if it has fewer points than 1/_FEW_SAMPLES of the trace; when the kernel
#: gathers from the blocks as read, only if it has fewer than 1/_FEW_SAMPLES_PIECES (a
#: copy of nearly half the trace made the change responses of an hour-long session 3x
#: slower: benchmarks/RESULTS.md, "Response cubes: the samples copy").
_FEW_SAMPLES = 2
_FEW_SAMPLES_PIECES = 16


def _one_task(x: Any, **kernel: Any) -> tuple[Any, ...]:
    """The outputs of :func:`~ophys_xr._compute.eventlocked_responses` on the dask array
    ``x`` (..., time) as one task over all its blocks, each output one chunk (lazy).

    The task reads every block once and runs the kernel on them: the blocks along time of
    a trace by cell as they are (:class:`~ophys_xr._compute.eventlocked.TimePieces`), else
    copied into one time-major array (only the samples the plan uses when it uses few of
    them and no p-value is asked); no rechunking, no block of the cube copied into another.
    """
    import dask
    import dask.array as dsa
    from dask.base import tokenize

    first = kernel["first"]
    n_out = 3 if kernel["starts"] is None else 4
    lead = tuple(x.shape[:-1])
    name = "eventlocked-" + tokenize(x.name, *(kernel[k] for k in sorted(kernel)))
    blocks = x.to_delayed().tolist()
    task = dask.delayed(_block_responses, nout=n_out)(blocks, x.chunks, dask_key_name=name,
                                                      **kernel)
    shapes = [(*lead, *first.shape)] + [(*lead, first.shape[0])] * (n_out - 1)
    return tuple(
        dsa.from_delayed(task[i], shape, dtype=np.float64,
                         meta=np.empty((0,) * len(shape), dtype=np.float64))
        for i, shape in enumerate(shapes)
    )


def _block_responses(blocks: Any, chunks: tuple[tuple[int, ...], ...], **kernel: Any
                     ) -> tuple[np.ndarray, ...]:
    """:func:`~ophys_xr._compute.eventlocked_responses` on the trace made of ``blocks``
    (the nested list of a (..., time) dask array's blocks, ``chunks`` its chunks)."""
    one_row = len(chunks) == 1  # a trace without cells
    row_chunks, time_chunks = ((1,), chunks[0]) if one_row else chunks
    if one_row:
        blocks = [blocks]
    n_time = sum(time_chunks)
    first, second = kernel["first"], kernel["second"]
    as_read = kernel["starts"] is None and not one_row and len(row_chunks) == 1
    few = _FEW_SAMPLES_PIECES if as_read else _FEW_SAMPLES
    keep = None
    if kernel["starts"] is None and few * first.size < n_time:  # few samples used
        used = first if second is None else np.concatenate([first.ravel(), second.ravel()])
        keep = np.unique(used[used >= 0])
        kernel = {**kernel, "first": _renumber(first, keep),
                  "second": None if second is None else _renumber(second, keep)}
    if keep is None and as_read:
        # the blocks of a (time, cell) file as read: gathered from, not joined
        pieces = [np.asarray(block, dtype=np.float64).reshape(row_chunks[0], n).T
                  for block, n in zip(blocks[0], time_chunks, strict=True)]
        return _compute.eventlocked_responses(TimePieces(pieces), **kernel)
    samples = np.empty((n_time if keep is None else keep.size, sum(row_chunks)))
    r0 = 0
    for row_blocks, n_rows in zip(blocks, row_chunks, strict=True):
        t0 = 0
        for block, n in zip(row_blocks, time_chunks, strict=True):
            src = np.asarray(block, dtype=np.float64).reshape(n_rows, n).T  # (time, rows)
            if keep is None:
                copy_tiled(samples[t0:t0 + n, r0:r0 + n_rows], src)
            else:
                lo, hi = np.searchsorted(keep, (t0, t0 + n))
                samples[lo:hi, r0:r0 + n_rows] = src[keep[lo:hi] - t0]
            t0 += n
        r0 += n_rows
    return _compute.eventlocked_responses(samples[:, 0] if one_row else samples.T, **kernel)


def _renumber(index: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Sample indices (-1 = missing) as positions in the sorted samples ``keep``."""
    return np.where(index >= 0, np.searchsorted(keep, index), -1)


def _response(ds: xr.Dataset, tr: _Trace, ev: _Events, params: _Params) -> xr.Dataset:
    ts = tr.timestamps
    data_rate = _compute.mean_sampling_rate(ts)
    w0, w1 = params.window
    second: np.ndarray | None
    weight: np.ndarray | None
    rate = data_rate if params.sampling_rate is None else params.sampling_rate
    _check_size(tr, ev, params, rate)
    if params.interpolate:
        grid = _compute.eventlocked_time_array(w0, w1, rate)
        first, second, weight = _compute.interpolation_plan(ts, ev.times, grid, (w0, w1))
    else:
        rate = data_rate
        start, stop = _compute.nearest_window_offsets(w0, w1, rate)
        grid = np.arange(start, stop) / rate
        first = _compute.nearest_plan(ts, ev.times, start, stop, rate)
        second = weight = None
    response = _compute.window_slice(grid, 0.0, params.response_window, "response")
    baseline = _compute.window_slice(grid, -params.baseline_window, 0.0, "baseline")
    starts = None
    n_frames = 0
    gray: tuple[float, float] | None = None
    if params.p_value:
        n_frames = round(params.response_window * data_rate)
        if n_frames < 1:
            msg = (f"response_window={params.response_window} s is shorter than one sample of "
                   f"{tr.name!r} ({1 / data_rate:.4f} s); p-values need at least one")
            raise OptionError(msg)
        starts, gray = _shuffle_starts(ds, tr, n_frames, params)

    da = tr.data
    n_events, n_offsets = first.shape
    n_out = 4 if starts is not None else 3
    core: dict[str, Any] = {
        "input_core_dims": [[tr.clock]],
        "output_core_dims": [[ev.dim, TREL], [ev.dim], [ev.dim], [ev.dim]][:n_out],
        "kwargs": {"first": first, "second": second, "weight": weight, "response": response,
                   "baseline": baseline, "starts": starts, "n_frames": n_frames},
        "keep_attrs": False,
    }
    n_rows = math.prod(n for d, n in da.sizes.items() if d != tr.clock)
    if da.chunks is not None and 8 * n_rows * (
            da.sizes[tr.clock] + n_events * n_offsets) <= _ONE_TASK_BYTES:
        outputs = xr.apply_ufunc(_one_task, da, dask="allowed", **core)
    else:
        if da.chunks is not None:  # whole trace per block; blocks of cells (coords stay numpy)
            chunks: dict[int, int] = {da.get_axis_num(tr.clock): -1}
            if CELL in da.dims:
                per_block = max(1, _BLOCK_BYTES // (8 * n_events * n_offsets))
                chunks[da.get_axis_num(CELL)] = min(per_block, max(1, da.sizes[CELL]))
            # method="tasks": dask's default would import distributed to look for a client
            da = da.copy(data=da.data.rechunk(chunks, method="tasks"))
        outputs = xr.apply_ufunc(
            _compute.eventlocked_responses, da, dask="parallelized",
            output_dtypes=[np.float64] * n_out,
            dask_gufunc_kwargs={"output_sizes": {ev.dim: n_events, TREL: n_offsets}}, **core,
        )
    units = {"units": str(tr.data.attrs["units"])} if tr.data.attrs.get("units") else {}
    variables = {
        "eventlocked_traces": outputs[0].assign_attrs(
            description=f"{tr.name} around each event, at the times eventlocked_timestamps "
                        "from the event (NaN outside the recording)", **units),
        "mean_response": outputs[1].assign_attrs(
            description=f"Mean of eventlocked_traces over 0 <= t <= {params.response_window} s "
                        "(NaN skipped)", **units),
        "mean_baseline": outputs[2].assign_attrs(
            description=f"Mean of eventlocked_traces over -{params.baseline_window} <= t <= 0 s "
                        "(NaN skipped)", **units),
    }
    if starts is not None:
        variables["p_value_gray_screen"] = outputs[3].assign_attrs(
            description="Fraction of gray-screen shuffle means >= mean_response "
                        f"({params.n_shuffles} shuffles of {n_frames}-sample means)")
    out = xr.Dataset(variables)
    out = out.assign_coords({ev.dim: xr.Variable((ev.dim,), ev.ids),
                             TREL: xr.Variable((TREL,), grid, {"units": "s",
                                               "description": "Time from the event"})})
    out = out.assign_coords(ev.coords)
    attrs: dict[str, Any] = {
        "data": tr.name,
        "event": ev.label,
        "window": [w0, w1],
        "response_window": params.response_window,
        "baseline_window": params.baseline_window,
        "interpolate": int(params.interpolate),
        "sampling_rate": float(rate),
        "data_sampling_rate": float(data_rate),
    }
    if gray is not None:
        attrs["p_value_n_shuffles"] = params.n_shuffles
        attrs["p_value_n_frames"] = int(n_frames)
        attrs["gray_screen_interval"] = [gray[0], gray[1]]
        if params.seed is not None:
            attrs["p_value_seed"] = params.seed
    if "ophys_experiment_id" in ds.attrs:
        attrs["ophys_experiment_id"] = ds.attrs["ophys_experiment_id"]
    out.attrs = attrs
    return out


# ---------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------


def stimulus_response(
    ds: xr.Dataset,
    data: str | xr.DataArray = "dff",
    event: Any = "images",
    *,
    window: Sequence[float] = (-0.5, 0.75),
    response_window: float = 0.5,
    baseline_window: float = 0.5,
    interpolate: bool = True,
    sampling_rate: float | None = None,
    p_value: bool = False,
    n_shuffles: int = 10_000,
    seed: int | None = 0,
) -> xr.Dataset:
    """Event-locked traces, mean responses and baselines around stimulus (or other) events.

    The vectorised, lazy counterpart of BOU ``get_stimulus_response_xr`` /
    ``event_triggered_response``.

    Parameters
    ----------
    ds
        A session Dataset.
    data
        What to cut: any numeric variable on ``time`` (``"dff"``, ``"events"``,
        ``"filtered_events"``, ``"corrected_fluorescence"``, ...; by cell), on
        ``stimulus_frame`` (``"running_speed"``, ...; times ``stimulus_timestamps``), on
        ``eye_frame`` (``"pupil_area"``, NaN at likely blinks — after
        :func:`ophys_xr.blink_filter` with ``merge=True`` when other blink parameters are
        wanted; times ``eye_timestamps``), ``"lick_rate"`` (licks per second on the stimulus
        clock: the 0/1 lick indicator of ``licks_frame``, trailing 6-frame triangular mean as
        BOU ``get_licks_df``, times the frame rate), or a DataArray with one of those
        dimensions.  Data on the behaviour clocks has no cell dimension: the result is then
        (event, ``eventlocked_timestamps``).
    event
        ``"images"`` (presentations with ``omitted == 0``), ``"changes"`` (``is_change``),
        ``"omissions"`` (``omitted == 1``), ``"all"``, the name of a boolean column of the
        presentations (e.g. ``"is_sham_change"``), ``"licks"``, ``"rewards"``, or event
        times in seconds (a sequence or 1-D array; NaN times give NaN rows).  Presentation
        events are restricted to
        the change-detection block, as BOU does: rows whose ``stimulus_block_name`` contains
        ``"change_detection"``, or (files without that column) the image and omitted rows
        (``image_name != ""``); they are aligned on ``start_time``.
    window
        (start, end) seconds relative to each event.
    response_window
        ``mean_response`` averages the points ``0 <= t <= response_window`` (BOU
        ``compute_means_xr``: inclusive label slice of ``eventlocked_timestamps``).
    baseline_window
        ``mean_baseline`` averages ``-baseline_window <= t <= 0``.
    interpolate
        True: every event's samples are linearly interpolated onto one relative grid (BOU
        ``interpolate=True``).  False: each event is shifted to its nearest sample and the
        samples around it are taken as they are (BOU ``interpolate=False``).
    sampling_rate
        Rate of the interpolation grid in Hz; None = the data's own rate,
        ``1 / mean(diff(timestamps))``.  Only with ``interpolate=True``.
    p_value
        Also compute ``p_value_gray_screen`` (costs ``n_shuffles`` shuffles).
    n_shuffles
        Number of gray-screen shuffles (BOU: 10,000).
    seed
        Seed of the shuffles (``numpy.random.default_rng(seed)``); None = fresh entropy.
        BOU draws from the unseeded global generator.

    Returns
    -------
    xarray.Dataset
        Dims (``cell_specimen_id``, event dim, ``eventlocked_timestamps``), the cell dim
        absent for 1-D data; the event dim is ``stimulus_presentations_id`` for presentation
        events and ``event`` for ``"licks"``, ``"rewards"`` and times.  Variables:

        * ``eventlocked_traces`` — the cube;
        * ``mean_response``, ``mean_baseline`` (cell, event) — window means, NaN skipped
          (as xarray's ``.mean()`` in BOU), NaN when the window has no value;
        * ``p_value_gray_screen`` (cell, event), with ``p_value=True`` — one p-value per
          response, as BOU: the fraction of gray-screen shuffle means that are ``>=`` the
          response.

        Coordinates: the cell coordinates of ``data`` (``cell_roi_id``, ...);
        ``eventlocked_timestamps`` (s); on the event dim every presentations column
        (``start_time``, ``image_name``, ``is_change``, ``omitted``, ...,
        ``stimulus_presentations_trials_id`` renamed ``trials_id``) and, from the trial each
        presentation belongs to, ``go``, ``catch``, ``hit``, ``miss``, ``false_alarm``,
        ``correct_reject``, ``aborted``, ``auto_rewarded`` (float 1/0, NaN: no trial),
        ``change_time`` and ``response_latency``; for licks, rewards and times
        ``event_time`` (and ``licks_frame`` / ``rewards_volume``, ...).  So
        ``result.mean_response.groupby("image_name").mean()`` works directly.  Attributes
        (netCDF-safe): ``data``, ``event``, ``window``, ``response_window``,
        ``baseline_window``, ``interpolate`` (1/0), ``sampling_rate`` (of the grid, Hz),
        ``data_sampling_rate``, and with p-values ``p_value_n_shuffles``,
        ``p_value_n_frames``, ``gray_screen_interval`` (s), ``p_value_seed``.  Lazy on dask
        input, nothing is computed by this call: when the trace (all its samples) and the
        cube fit in :data:`MAX_RESPONSE_BYTES` together, one task reads every block of the
        trace once and computes every variable (one chunk each); larger ones are one task
        per block of cells (each with the whole trace).

    Raises
    ------
    MissingDataError
        Unknown ``data`` variable (the message lists the usable ones); no event matches;
        ``p_value=True`` but no gray-screen samples before the first presentation.
    OptionError
        Unknown ``event``; a window that is not increasing, or response / baseline windows
        outside it; ``sampling_rate`` with ``interpolate=False``; other invalid values.
    SchemaError
        Timestamps that are not finite and increasing.

    Notes
    -----
    Definitions (BOU ``general_utilities`` and ``optical_physiology.data_formatting``):

    * Interpolated grid: ``get_time_array(window[0], window[1], sampling_rate,
      include_endpoint=True)`` — steps of ``1 / sampling_rate`` from ``window[0]``; when
      the window is not a whole number of steps the grid stops at the last step before
      ``window[1]``.  For each event ``e`` the samples with ``e + window[0] <= t <= e +
      window[1]`` are interpolated with ``np.interp`` at the grid (relative times ``t -
      e``), so grid points before the first / after the last sample inside the window take
      that sample's value.  Results equal BOU's loop to rounding (1e-12).
    * Nearest sample: the event's sample is the nearest one (ties to the later one), the
      offsets are ``int(window[0] * rate) .. int(start + (window[1] - window[0]) * rate)``
      inclusive, relative times ``offset / rate`` with the data's rate.
    * p-value: the gray screen is the ``initial_gray_screen`` block when the presentations
      have one, else the time before the first change-detection presentation (the second
      one if the first is omitted, as BOU); its last 240 s are used (BOU / VBA: 4 minutes,
      to skip the first minute).  ``n_shuffles`` start samples are drawn with replacement
      from ``[nearest(start), nearest(end))``; each shuffle is the mean of
      ``round(response_window * data rate)`` consecutive samples of the data from there
      (as in BOU, the windows that start in the last ``response_window`` of the gray screen
      reach into the first presentation);
      ``p = 1 - searchsorted(sorted(shuffles), mean_response) / n_shuffles``.

    Differences from BOU, on purpose: grid points outside the recording (events near the
    session edges) are NaN — BOU repeats the edge value (interpolated) or raises
    ``IndexError`` (nearest sample); there is no bare ``except:`` turning any failure of the
    p-values into 0 ("all significant"): failures raise; the shuffle windows are
    ``response_window × data rate`` samples long (BOU's ``get_stimulus_response_xr`` passes
    the window in frames and multiplies by the rate again); the default rate is the data's
    own (BOU computes it from its tidy table of all cells, i.e. about ``n_cells ×`` the
    frame rate); behaviour data is shuffled on its own clock (BOU indexes running speed
    with ophys frames); NaN responses get NaN p-values and NaN shuffle means are left out
    (BOU: 0, and counted as larger); cells keep the session order (BOU's ``np.unique``
    sorts the cube but not the p-value traces).

    Examples
    --------
    >>> ds = ophys_xr.testing.simulate_session(n_cells=3)  # doctest: +SKIP
    >>> r = ds.ophys.stimulus_response("dff", "images")  # doctest: +SKIP
    >>> r.mean_response.groupby("image_name").mean()  # doctest: +SKIP
    """
    params = _check_params(window, response_window, baseline_window, interpolate,
                           sampling_rate, p_value, n_shuffles, seed)
    tr = _trace(ds, data)
    ev = _stimulus_events(ds, event)
    return _response(ds, tr, ev, params)


def trial_response(
    ds: xr.Dataset,
    data: str | xr.DataArray = "dff",
    *,
    window: Sequence[float] = (-5.0, 5.0),
    response_window: float = 0.5,
    baseline_window: float = 0.5,
    interpolate: bool = True,
    sampling_rate: float | None = None,
    p_value: bool = False,
    n_shuffles: int = 10_000,
    seed: int | None = 0,
) -> xr.Dataset:
    """Event-locked responses aligned on each trial's ``change_time`` (VBA trial responses).

    The counterpart of VBA ``get_trials_response_xr``.

    Every trial with a ``change_time`` (go, catch and auto-rewarded trials; aborted trials
    have none) is an event; the defaults are VBA's (window -5..5 s, response and baseline
    windows 0.5 s).

    Parameters
    ----------
    ds, data
        As :func:`stimulus_response`.
    window, response_window, baseline_window, interpolate, sampling_rate
        As :func:`stimulus_response`; the window defaults to VBA's (-5, 5) s.
    p_value, n_shuffles, seed
        As :func:`stimulus_response`.

    Returns
    -------
    xarray.Dataset
        As :func:`stimulus_response` with the event dim ``trials_id`` and every trial column
        as a coordinate: ``change_time``, ``hit``, ``miss``, ``false_alarm``,
        ``correct_reject``, ``aborted``, ``go``, ``catch``, ``auto_rewarded``,
        ``initial_image_name``, ``change_image_name``, ``response_latency``,
        ``trials_start_time``, ... (ready for ``groupby("hit")``).

    Raises
    ------
    MissingDataError, OptionError, SchemaError
        As :func:`stimulus_response`; also when no trial has a ``change_time``.

    Notes
    -----
    VBA cuts trials with the nearest-sample method and no end point (``np.arange(start,
    stop)`` without BOU's ``+ 1``); here both methods are BOU's, with ``interpolate=True``
    by default, so trial and stimulus responses share one definition.
    """
    params = _check_params(window, response_window, baseline_window, interpolate,
                           sampling_rate, p_value, n_shuffles, seed)
    tr = _trace(ds, data)
    ev = _trial_events(ds)
    return _response(ds, tr, ev, params)
