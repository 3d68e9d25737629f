"""Event-locked traces, window means, gray-screen shuffle p-values and the lick rate.

Definitions follow brain_observatory_utilities (BOU) ``general_utilities`` /
``optical_physiology.data_formatting`` and visual_behavior_analysis (VBA)
``response_processing``; where they differ from those helpers on purpose, the docstring
says so.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ophys_xr import _options
from ophys_xr._compute._helpers import _as_float_1d
from ophys_xr.exceptions import OptionError

__all__ = [
    "GRAY_SCREEN_SECONDS",
    "TimePieces",
    "copy_tiled",
    "eventlocked_gather",
    "eventlocked_responses",
    "eventlocked_time_array",
    "gray_screen_null_means",
    "index_of_nearest_value",
    "interpolation_plan",
    "lick_rate",
    "mean_sampling_rate",
    "nearest_plan",
    "nearest_window_offsets",
    "shuffle_p_values",
    "window_mean",
    "window_slice",
]


#: Length of the gray-screen period used for the shuffle p-values (BOU / VBA
#: ``get_spontaneous_frames``: the last 4 minutes before the first stimulus).
GRAY_SCREEN_SECONDS = 240.0

#: Output elements processed at once by :func:`eventlocked_gather` (about 512 kB: the
#: temporaries stay in cache).
_GATHER_ELEMENTS = 2**16
#: Cube elements of the block of events that :func:`eventlocked_responses` gathers, then
#: averages while it is still in cache (8 MB).
_MEAN_BLOCK_ELEMENTS = 2**20


def mean_sampling_rate(timestamps: np.ndarray) -> float:
    """``1 / mean(diff(timestamps))``: the sampling rate BOU and VBA infer from timestamps.

    Parameters
    ----------
    timestamps : numpy.ndarray
        1-D, sorted, at least two samples.

    Returns
    -------
    float
        Samples per second.
    """
    ts = _as_float_1d(timestamps, "timestamps")
    if ts.size < 2 or not ts[-1] > ts[0]:
        msg = f"need at least two increasing timestamps to infer a sampling rate, got {ts.size}"
        raise ValueError(msg)
    return float(1.0 / np.diff(ts).mean())


def eventlocked_time_array(t_start: float, t_end: float, sampling_rate: float) -> np.ndarray:
    """The common relative time grid of interpolated responses (BOU ``get_time_array``).

    Parameters
    ----------
    t_start, t_end : float
        Window relative to the event, seconds (``t_start < t_end``).
    sampling_rate : float
        Samples per second of the grid.

    Returns
    -------
    numpy.ndarray
        ``get_time_array(t_start, t_end, sampling_rate=sampling_rate,
        include_endpoint=True)``: ``n = (t_end - t_start) * step⁻¹`` steps of
        ``1 / sampling_rate``; when ``n`` is not an integer it is rounded down and the grid
        ends at ``t_start + n / sampling_rate``; ``np.linspace(t_start, end, n + 1)``.
    """
    rate = _options.positive_number(sampling_rate, "sampling_rate")
    if not t_end > t_start:
        msg = f"t_end must be greater than t_start, got ({t_start!r}, {t_end!r})"
        raise ValueError(msg)
    step = 1 / rate
    n_steps: float = (t_end - t_start) / step
    if n_steps != int(n_steps):
        n_steps = int(n_steps)
        end = t_start + n_steps * step
    else:
        end = t_end
    return np.linspace(t_start, end, int(n_steps) + 1, endpoint=True)


def nearest_window_offsets(t_start: float, t_end: float, sampling_rate: float) -> tuple[int, int]:
    """Frame offsets of a nearest-sample window (BOU ``slice_inds_and_offsets``).

    Parameters
    ----------
    t_start, t_end : float
        Window relative to the event, seconds.
    sampling_rate : float
        The data's sampling rate.

    Returns
    -------
    (int, int)
        ``start = int(t_start * rate)`` (truncated towards zero, as BOU) and
        ``stop = int(start + (t_end - t_start) * rate) + 1`` (BOU's ``include_endpoint=True``);
        the relative times are ``np.arange(start, stop) / rate``.
    """
    rate = _options.positive_number(sampling_rate, "sampling_rate")
    if not t_end > t_start:
        msg = f"t_end must be greater than t_start, got ({t_start!r}, {t_end!r})"
        raise ValueError(msg)
    start = int(t_start * rate)
    stop = int(start + (t_end - t_start) * rate) + 1
    return start, stop


def index_of_nearest_value(timestamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the nearest sample to each time (BOU / VBA ``index_of_nearest_value``).

    Parameters
    ----------
    timestamps : numpy.ndarray
        Sorted 1-D sample times.
    times : numpy.ndarray
        Query times.

    Returns
    -------
    numpy.ndarray
        int64, same shape as ``times``.  Ties go to the later sample, as in BOU.  Times
        after the last sample give the last index (BOU raises ``IndexError``); NaN times
        give the last index too (callers mask them).
    """
    ts = _as_float_1d(timestamps, "timestamps")
    t = np.asarray(times, dtype=np.float64)
    n = ts.size
    if n == 0:
        msg = "timestamps is empty"
        raise ValueError(msg)
    ins = np.searchsorted(ts, t)
    after = ts[np.minimum(ins, n - 1)] - t
    before = np.abs(ts[np.maximum(ins - 1, 0)] - t)
    idx = ins - (after > before).astype(np.int64)
    return np.where(ins >= n, n - 1, idx).astype(np.int64)


def interpolation_plan(
    timestamps: np.ndarray,
    event_times: np.ndarray,
    relative_times: np.ndarray,
    window: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of BOU's interpolated event-locked traces, for all events at once.

    BOU (``event_triggered_response(interpolate=True)``) takes, per event ``e``, the samples
    with ``e + window[0] <= t <= e + window[1]`` (pandas ``.loc`` label slice) and calls
    ``np.interp(relative_times, t - e, y)`` on them.  This returns, for every event and
    relative time, the two samples and the weight that ``np.interp`` uses, so that
    ``y[first] + weight * (y[second] - y[first])`` is that value for every trace at once:

    * relative times computed as ``t - e`` (as BOU, so results agree to rounding);
    * between two window samples: linear interpolation;
    * before the first / after the last sample of the window: that sample's value (what
      ``np.interp`` does on BOU's window slice), ``weight = 0``;
    * **not as BOU:** grid points outside the recording (``e + x`` before the first or after
      the last timestamp), events whose window holds no sample, and NaN event times are
      marked missing (``first == -1``) and become NaN; BOU repeats the edge value there or
      raises (empty window).

    Parameters
    ----------
    timestamps : numpy.ndarray
        Sorted sample times of the trace (n_time,).
    event_times : numpy.ndarray
        (n_events,).
    relative_times : numpy.ndarray
        (n_offsets,) grid, e.g. :func:`eventlocked_time_array`.
    window : (float, float)
        The window that selects the samples of each event.

    Returns
    -------
    first, second : numpy.ndarray
        int64 (n_events, n_offsets) sample indices; -1 where missing.
    weight : numpy.ndarray
        float64 (n_events, n_offsets), 0 where missing.
    """
    ts = _as_float_1d(timestamps, "timestamps")
    ev = _as_float_1d(event_times, "event_times")
    x = _as_float_1d(relative_times, "relative_times")
    n = ts.size
    if n == 0:
        msg = "timestamps is empty"
        raise ValueError(msg)
    w0, w1 = float(window[0]), float(window[1])
    e = ev[:, np.newaxis]
    lo = np.searchsorted(ts, ev + w0, side="left")[:, np.newaxis]
    hi = np.searchsorted(ts, ev + w1, side="right")[:, np.newaxis] - 1
    j = np.searchsorted(ts, e + x, side="right") - 1

    def rel(idx: np.ndarray) -> np.ndarray:
        return ts[np.clip(idx, 0, n - 1)] - e

    # fix the few indices where the absolute and the relative comparisons disagree
    for _ in range(4):
        down = (j >= 0) & (rel(j) > x)
        up = (j + 1 < n) & (rel(j + 1) <= x)
        if not (down.any() or up.any()):
            break
        j = j - down + (up & ~down)
    missing = (x < ts[0] - e) | (x > ts[-1] - e) | (hi < lo) | np.isnan(e)
    rel_j = rel(j)
    interior = (j >= lo) & (j < hi) & (rel_j != x)
    clamped = np.clip(j, lo, hi)
    first = np.where(interior, j, clamped)
    second = np.where(interior, j + 1, clamped)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(interior, (x - rel_j) / (rel(j + 1) - rel_j), 0.0)
    first = np.where(missing, -1, first).astype(np.int64)
    second = np.where(missing, -1, second).astype(np.int64)
    weight = np.where(missing, 0.0, weight)
    return first, second, weight


def nearest_plan(
    timestamps: np.ndarray,
    event_times: np.ndarray,
    start_offset: int,
    stop_offset: int,
    sampling_rate: float,
) -> np.ndarray:
    """Sample indices of BOU's nearest-sample event-locked traces (``interpolate=False``).

    Parameters
    ----------
    timestamps : numpy.ndarray
        Sorted sample times (n_time,).
    event_times : numpy.ndarray
        (n_events,).
    start_offset, stop_offset : int
        From :func:`nearest_window_offsets`.
    sampling_rate : float
        The data's sampling rate.

    Returns
    -------
    numpy.ndarray
        int64 (n_events, stop - start): ``nearest(e) + offset`` (BOU
        ``eventlocked_traces``), -1 where missing.  **Not as BOU:** indices before the first
        or after the last sample (events near the session edges), NaN event times, and
        events farther than one sample interval from their nearest sample (outside the
        recording) are missing (NaN) instead of an ``IndexError`` or wrapped-around data.
    """
    ts = _as_float_1d(timestamps, "timestamps")
    ev = _as_float_1d(event_times, "event_times")
    rate = _options.positive_number(sampling_rate, "sampling_rate")
    idx = index_of_nearest_value(ts, ev)
    far = ~(np.abs(ts[idx] - ev) <= 1.0 / rate)  # also NaN event times
    out = idx[:, np.newaxis] + np.arange(int(start_offset), int(stop_offset))[np.newaxis, :]
    bad = (out < 0) | (out >= ts.size) | far[:, np.newaxis]
    return np.where(bad, -1, out).astype(np.int64)


def eventlocked_gather(
    trace: np.ndarray,
    first: np.ndarray,
    second: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Event-locked traces of every row of ``trace`` from a plan, in one vectorised pass.

    Parameters
    ----------
    trace : numpy.ndarray
        (..., n_time) with time last: one trace per row (e.g. (n_cells, n_time)); any
        memory layout, e.g. the transposed view of a C-ordered (n_time, n_cells) array.
    first : numpy.ndarray
        int (n_events, n_offsets) sample indices, -1 = missing.
    second, weight : numpy.ndarray, optional
        From :func:`interpolation_plan`; without them the values at ``first`` are taken
        (nearest-sample plan).

    Returns
    -------
    numpy.ndarray
        float64 (..., n_events, n_offsets), C-ordered: ``y[first] + weight * (y[second] -
        y[first])`` (NaN where missing, or where a sample used is NaN).  Rows stored one
        after the other are gathered each on its own (it stays in cache); a time-major
        trace (time the outer axis in memory, as a (time, cell) file is read) is gathered
        whole samples (every row) at a time, without transposing it; any other layout is
        copied to rows first (:func:`copy_tiled`).  The values are the same whatever the
        path: every point is ``y0 + (y1 - y0) * w`` of the same samples.
    """
    samples = _Samples(trace)
    first = np.asarray(first)
    out = np.empty((samples.n_rows, first.size), dtype=np.float64)
    samples.gather_into(out, first, second, weight)
    return out.reshape(*samples.lead, *first.shape)


class TimePieces(NamedTuple):
    """A time-major (n_time, n_rows) trace as consecutive C-ordered pieces along time (the
    blocks of a (time, cell) file as read), gathered from without joining them."""

    pieces: list[np.ndarray]


class _Samples:
    """A trace (..., n_time) as rows (C-ordered (n_rows, n_time)) or as time-major samples
    (C-ordered (n_time, n_rows), or :class:`TimePieces` of them), whichever it is already
    (other layouts: copied to rows)."""

    def __init__(self, trace: np.ndarray | TimePieces) -> None:
        if isinstance(trace, TimePieces):
            pieces = [np.ascontiguousarray(p, dtype=np.float64) for p in trace.pieces]
            if not pieces or any(p.ndim != 2 or p.shape[1] != pieces[0].shape[1]
                                 for p in pieces):
                msg = "TimePieces must hold 2-D (n_time_k, n_rows) pieces of one n_rows"
                raise ValueError(msg)
            self.n_rows = pieces[0].shape[1]
            self.lead: tuple[int, ...] = (self.n_rows,)
            self.n_time = sum(p.shape[0] for p in pieces)
            self.time_major = True
            self.data: np.ndarray | list[np.ndarray] = pieces
            return
        y = np.asarray(trace, dtype=np.float64)
        if y.ndim == 0:
            msg = "trace must have a time axis (last)"
            raise ValueError(msg)
        self.lead = y.shape[:-1]
        self.n_time = y.shape[-1]
        rows = y.reshape(-1, self.n_time)
        self.n_rows = rows.shape[0]
        self.time_major = not rows.flags.c_contiguous and rows.T.flags.c_contiguous
        if not (self.time_major or rows.flags.c_contiguous):
            rows = copy_tiled(np.empty(rows.shape, dtype=np.float64), rows)
        self.data = [rows.T] if self.time_major else rows

    def gather_into(self, out: np.ndarray, first: np.ndarray, second: np.ndarray | None,
                    weight: np.ndarray | None) -> None:
        """``out`` (n_rows, first.size) = the plan's points of every row (NaN: missing)."""
        a = np.asarray(first).reshape(-1)
        missing = a < 0
        b = None if second is None else np.asarray(second).reshape(-1)
        if missing.any():  # any valid sample will do: the nearest one before keeps locality
            at = np.where(missing, 0, np.arange(a.size))
            np.maximum.accumulate(at, out=at)
            at[:int(np.argmax(~missing))] = int(np.argmax(~missing))
            a = np.where(missing, 0, a[at])
            b = None if b is None else np.where(missing, 0, b[at])
        w = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
        if self.n_time == 0:
            out.fill(np.nan)
            return
        if isinstance(self.data, list):
            _gather_time_major(out, self.data, a, b, w)
        else:
            _gather_rows(out, self.data, a, b, w)
        if missing.any():
            out[:, missing] = np.nan


def _gather_rows(out: np.ndarray, rows: np.ndarray, a: np.ndarray, b: np.ndarray | None,
                 w: np.ndarray | None) -> None:
    """Each row on its own (it stays in cache), a piece of the plan at a time."""
    other = np.empty(min(a.size, _GATHER_ELEMENTS), dtype=np.float64)
    for row, out_row in zip(rows, out, strict=True):
        for s0 in range(0, a.size, _GATHER_ELEMENTS):
            s1 = min(a.size, s0 + _GATHER_ELEMENTS)
            o = out_row[s0:s1]
            np.take(row, a[s0:s1], out=o, mode="clip")  # indices are valid: no check
            if b is not None and w is not None:
                y1 = other[:s1 - s0]
                np.take(row, b[s0:s1], out=y1, mode="clip")
                y1 -= o
                y1 *= w[s0:s1]
                o += y1


def _gather_time_major(out: np.ndarray, pieces: list[np.ndarray], a: np.ndarray,
                       b: np.ndarray | None, w: np.ndarray | None) -> None:
    """Whole samples (every row) gathered a block of points at a time from C-ordered
    (n_time_k, n_rows) consecutive ``pieces``, each block transposed into ``out``."""
    starts = np.cumsum([0, *(p.shape[0] for p in pieces)])
    step = max(1, _GATHER_ELEMENTS // pieces[0].shape[1])
    for s0 in range(0, a.size, step):
        s1 = min(a.size, s0 + step)
        ia = a[s0:s1]
        ib = None if b is None or w is None else b[s0:s1]
        src, base = pieces[0], 0
        if len(pieces) > 1:
            src, base = _span(pieces, starts, int(ia.min()), int((ia if ib is None else ib).max()))
        y0 = np.take(src, ia - base, axis=0, mode="clip")
        if ib is not None and w is not None:
            y1 = np.take(src, ib - base, axis=0, mode="clip")
            y1 -= y0
            y1 *= w[s0:s1, np.newaxis]
            y0 += y1
        out[:, s0:s1] = y0.T


def _span(pieces: list[np.ndarray], starts: np.ndarray, lo: int, hi: int
          ) -> tuple[np.ndarray, int]:
    """Samples ``lo..hi`` of consecutive ``pieces`` (first samples at ``starts``): a piece
    holding them all (and where it starts), or a copy of just those samples (and ``lo``)."""
    k = int(np.searchsorted(starts, lo, side="right")) - 1
    if hi < starts[k + 1]:
        return pieces[k], int(starts[k])
    parts = [p[max(lo - s0, 0):hi + 1 - s0]
             for p, s0 in zip(pieces, starts[:-1].tolist(), strict=True)
             if s0 <= hi and s0 + p.shape[0] > lo]
    return np.concatenate(parts, axis=0), lo


#: Samples of every row copied at once by :func:`copy_tiled` (a tile of a few hundred
#: rows stays in cache while it is transposed).
_TILE = 256


def copy_tiled(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst[...] = src`` for 2-D arrays of one shape, a tile of columns at a time.

    A transposing copy (``src`` a transposed view of a C-ordered array, ``dst`` C-ordered,
    or the reverse) done in one piece walks one of them across memory a cache line per
    element; tiles of :data:`_TILE` columns keep both in cache.  Returns ``dst``.
    """
    if dst.shape != src.shape or dst.ndim != 2:
        msg = f"copy_tiled: shapes {dst.shape} and {src.shape} must be equal and 2-D"
        raise ValueError(msg)
    for c0 in range(0, src.shape[1], _TILE):
        dst[:, c0:c0 + _TILE] = src[:, c0:c0 + _TILE]
    return dst


def window_slice(grid: np.ndarray, lo: float, hi: float, what: str) -> slice:
    """The points of a relative time grid with ``lo <= t <= hi``, as a slice.

    BOU ``compute_means_xr`` averages an inclusive label slice of the event-locked times;
    the grid is sorted, so those points are one contiguous run.

    Parameters
    ----------
    grid : numpy.ndarray
        Sorted relative times (n_offsets,), e.g. :func:`eventlocked_time_array`.
    lo, hi : float
        Window bounds in seconds, both included.
    what : str
        Name of the window in the error message (``"response"``, ``"baseline"``).

    Returns
    -------
    slice
        From the first to one past the last grid point inside the window.

    Raises
    ------
    ophys_xr.exceptions.OptionError
        No grid point lies in the window.
    """
    inside = np.flatnonzero((grid >= lo) & (grid <= hi))
    if inside.size == 0:
        msg = (f"the {what} window [{lo}, {hi}] s holds no point of the time grid "
               f"{grid[0]:.4f} .. {grid[-1]:.4f} s (step {np.diff(grid).mean():.4f} s); "
               "make it longer or raise sampling_rate")
        raise OptionError(msg)
    return slice(int(inside[0]), int(inside[-1]) + 1)


def window_mean(values: np.ndarray, selection: slice, axis: int) -> np.ndarray:
    """Mean over ``values[selection]`` along ``axis``, NaN skipped (xarray ``.mean()``).

    Parameters
    ----------
    values : numpy.ndarray
        Any shape.
    selection : slice
        The points of ``axis`` to average.
    axis : int
        Axis to reduce.

    Returns
    -------
    numpy.ndarray
        float64; NaN where every selected value is NaN (or the selection is empty).
    """
    v = np.asarray(values, dtype=np.float64)
    axis = axis % v.ndim
    index: list[Any] = [slice(None)] * v.ndim
    index[axis] = selection
    sub = v[tuple(index)]
    n = sub.shape[axis]
    if n == 0:
        return np.full(sub.shape[:axis] + sub.shape[axis + 1:], np.nan)
    # numpy reduces every output element on its own: the same values whatever the other
    # dims (dask blocks), and numpy's own summation, as xarray's ``.mean()`` of the cube
    total = sub.sum(axis=axis)
    out = total / n
    bad = np.isnan(total)
    if bad.any():  # recompute the few means that saw a NaN, skipping NaN
        ok = ~np.isnan(sub)
        count = ok.sum(axis=axis)
        part = np.where(ok, sub, 0.0).sum(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            skip = np.where(count > 0, part / count, np.nan)
        out = np.where(bad, skip, out)
    return out


def gray_screen_null_means(
    trace: np.ndarray, start_frames: np.ndarray, n_frames: int
) -> np.ndarray:
    """Means of ``n_frames`` consecutive samples after each shuffled start frame.

    BOU / VBA ``get_p_value_from_shuffled_spontaneous``: ``eventlocked_traces(trace,
    start_frames, 0, n_frames).mean(axis=0)``.

    Parameters
    ----------
    trace : numpy.ndarray
        (n_time, ...) time first.
    start_frames : numpy.ndarray
        int (n_shuffles,), with ``start + n_frames <= n_time``.
    n_frames : int
        Samples averaged per shuffle (>= 1).

    Returns
    -------
    numpy.ndarray
        float64 (n_shuffles, ...).
    """
    n_frames = _options.integer(n_frames, "n_frames", minimum=1)
    y = np.asarray(trace, dtype=np.float64)
    starts = np.asarray(start_frames, dtype=np.int64)
    if starts.size and (starts.min() < 0 or starts.max() + n_frames > y.shape[0]):
        msg = (f"shuffle windows of {n_frames} frames from frames {starts.min()}..{starts.max()} "
               f"do not fit in a trace of {y.shape[0]} frames")
        raise ValueError(msg)
    y2 = y.reshape(y.shape[0], -1)
    out = np.empty((starts.size, y2.shape[1]), dtype=np.float64)
    # sequential sum over the window, then / n_frames: numpy's mean over axis 0 of BOU's
    # (n_frames, n_shuffles, n_cells) array, without building it
    step = max(1, 16 * _GATHER_ELEMENTS // max(1, y2.shape[1]))
    for s0 in range(0, starts.size, step):
        first = starts[s0:s0 + step]
        total = y2[first]
        for k in range(1, n_frames):
            total += y2[first + k]
        out[s0:s0 + step] = total / n_frames
    return out.reshape(starts.size, *y.shape[1:])


def shuffle_p_values(responses: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Fraction of null (gray-screen) means at least as large as each response.

    BOU / VBA: ``1 - searchsorted(sort(null), response) / n_shuffles`` per cell, i.e. the
    fraction of shuffles ``>= response``.  **Not as BOU:** NaN null means are left out
    (``n_shuffles`` counts the finite ones; BOU sorts NaN last, which counts them as
    larger), and a NaN response gets a NaN p-value (BOU: 0, "significant").

    Parameters
    ----------
    responses : numpy.ndarray
        (n_events, ...) mean responses.
    null : numpy.ndarray
        (n_shuffles, ...) from :func:`gray_screen_null_means`; trailing shapes equal.

    Returns
    -------
    numpy.ndarray
        float64 (n_events, ...); NaN where the response is NaN or no null mean is finite.
    """
    r = np.asarray(responses, dtype=np.float64)
    z = np.asarray(null, dtype=np.float64)
    if r.shape[1:] != z.shape[1:]:
        msg = f"responses {r.shape} and null {z.shape} differ after the first axis"
        raise ValueError(msg)
    r2 = r.reshape(r.shape[0], -1)
    z2 = z.reshape(z.shape[0], -1)
    out = np.full(r2.shape, np.nan)
    for col in range(r2.shape[1]):
        finite = np.sort(z2[:, col][~np.isnan(z2[:, col])])
        if finite.size == 0:
            continue
        k = np.searchsorted(finite, r2[:, col], side="left")
        out[:, col] = np.where(np.isnan(r2[:, col]), np.nan, 1 - (k / finite.size))
    return out.reshape(r.shape)


def eventlocked_responses(
    x: np.ndarray | TimePieces,
    *,
    first: np.ndarray,
    second: np.ndarray | None,
    weight: np.ndarray | None,
    response: slice,
    baseline: slice,
    starts: np.ndarray | None,
    n_frames: int,
) -> tuple[np.ndarray, ...]:
    """Event-locked traces, window means and shuffle p-values of a block of traces.

    The kernel of ``ophys_xr.stimulus_response`` / ``trial_response`` (called on the whole
    trace, or through ``xarray.apply_ufunc`` once per block of cells): the gather of
    :func:`eventlocked_gather` with the plan and :func:`window_mean` over the response and
    the baseline points, a block of events at a time (its means taken while it is in
    cache), and with ``starts`` :func:`gray_screen_null_means` and
    :func:`shuffle_p_values`.

    Parameters
    ----------
    x : numpy.ndarray or TimePieces
        (..., n_time) traces, time last (``apply_ufunc`` puts the core dim last), any
        memory layout; or the (n_time, n_rows) trace as :class:`TimePieces` along time (then
        the results are (n_rows, ...), and ``starts`` must be None).
    first : numpy.ndarray
        int (n_events, n_offsets) sample indices, -1 = missing (:func:`interpolation_plan`
        or :func:`nearest_plan`).
    second, weight : numpy.ndarray or None
        From :func:`interpolation_plan`; None for a nearest-sample plan.
    response, baseline : slice
        Points of the relative time grid averaged into the mean response and the mean
        baseline (:func:`window_slice`).
    starts : numpy.ndarray or None
        Start samples of the gray-screen shuffles; None computes no p-values.
    n_frames : int
        Samples averaged per shuffle (used with ``starts`` only).

    Returns
    -------
    tuple of numpy.ndarray
        float64 ``(cube, mean_response, mean_baseline)``, and ``p_value`` with ``starts``:
        the cube is (..., n_events, n_offsets), C-ordered so that dask joins the blocks
        with plain copies; the others are (..., n_events).
    """
    samples = _Samples(x)
    if starts is not None and isinstance(x, TimePieces):
        msg = "p-values (starts) need the whole trace as one array, not TimePieces"
        raise ValueError(msg)
    first = np.asarray(first)
    n_events, n_offsets = first.shape
    cube = np.empty((samples.n_rows, n_events * n_offsets), dtype=np.float64)
    mean_response = np.empty((samples.n_rows, n_events), dtype=np.float64)
    mean_baseline = np.empty((samples.n_rows, n_events), dtype=np.float64)
    # a block of events at a time: its means are taken while it is in cache
    step = max(1, _MEAN_BLOCK_ELEMENTS // max(1, samples.n_rows * n_offsets))
    for e0 in range(0, n_events, step):
        e1 = min(n_events, e0 + step)
        block = cube[:, e0 * n_offsets:e1 * n_offsets]
        samples.gather_into(block, first[e0:e1],
                            None if second is None else np.asarray(second)[e0:e1],
                            None if weight is None else np.asarray(weight)[e0:e1])
        events = block.reshape(samples.n_rows, e1 - e0, n_offsets)
        mean_response[:, e0:e1] = window_mean(events, response, axis=-1)
        mean_baseline[:, e0:e1] = window_mean(events, baseline, axis=-1)
    lead = samples.lead
    out = [cube.reshape(*lead, n_events, n_offsets), mean_response.reshape(*lead, n_events),
           mean_baseline.reshape(*lead, n_events)]
    mean_response = out[1]
    if starts is not None:
        null = gray_screen_null_means(np.moveaxis(np.asarray(x), -1, 0), starts, n_frames)
        p = shuffle_p_values(np.moveaxis(mean_response, -1, 0), null)
        out.append(np.moveaxis(p, 0, -1))
    return tuple(out)


def lick_rate(lick_frames: np.ndarray, n_frames: int, frame_rate: float) -> np.ndarray:
    """Lick rate on the stimulus clock (BOU ``get_licks_df``), in licks per second.

    Parameters
    ----------
    lick_frames : numpy.ndarray
        Stimulus frame of each lick (``licks_frame``), each in ``[0, n_frames)``.
    n_frames : int
        Number of stimulus frames.
    frame_rate : float
        Stimulus frames per second.

    Returns
    -------
    numpy.ndarray
        float64 (n_frames,): BOU's ``licks.rolling(window=6, min_periods=1,
        win_type='triang').mean()`` of the 0/1 lick indicator (a trailing 6-frame
        triangular mean; the first frames use the weights of the frames available), times
        ``frame_rate``.  **Not as BOU:** BOU's column is that mean without the factor (licks
        per frame, although its docstring says "licks / 100 ms").
    """
    n_frames = _options.integer(n_frames, "n_frames", minimum=0)
    rate = _options.positive_number(frame_rate, "frame_rate")
    frames = np.asarray(lick_frames, dtype=np.int64).reshape(-1)
    if frames.size and (frames.min() < 0 or frames.max() >= n_frames):
        msg = (f"lick frames must lie in [0, {n_frames}) (the stimulus frames), got "
               f"{frames.min()}..{frames.max()}")
        raise ValueError(msg)
    licks = np.zeros(n_frames)
    licks[frames] = 1.0
    import scipy.signal

    weights = scipy.signal.windows.triang(6)
    num = np.convolve(licks, weights)[:n_frames]
    den = np.convolve(np.ones(n_frames), weights)[:n_frames]
    return num / den * rate
