"""Pure-numpy numeric kernels reproducing the AllenSDK 2.16.2 derived quantities.

Every function here works on plain :class:`numpy.ndarray` inputs (no xarray, no pandas)
and reproduces one AllenSDK algorithm exactly, including its quirks:

* blink detection (``determine_outliers`` / ``determine_likely_blinks``),
* the causal half-normal event filter (``filter_events_array``),
* ``is_change_event`` / ``get_flashes_since_change`` of the stimulus presentations,
* behaviour performance: response latency, reward rate, rolling hit / false-alarm rates,
  the Macmillan & Creelman trial-count limit, d′, the passive-session d′ override and
  ``get_performance_metrics``.

The xarray layer (``ophys_xr.eye``, ``ophys_xr.cells``, the NWB backend, ...) calls these
kernels; they never emit numpy ``RuntimeWarning``s (empty means, ``0/0`` and ``x/0`` are
handled explicitly).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.signal
import scipy.stats

__all__ = [
    "PERFORMANCE_METRIC_KEYS",
    "ROLLING_PERFORMANCE_KEYS",
    "blink_mask",
    "dprime",
    "engaged",
    "event_filter_weights",
    "filter_events",
    "flashes_since_change",
    "is_change_event",
    "likely_blinks",
    "outlier_mask",
    "performance_metrics",
    "response_latencies",
    "reward_rate",
    "rolling_performance",
    "rolling_rates",
    "trial_number_limit",
]

#: Columns of ``get_rolling_performance_df`` in AllenSDK order.
ROLLING_PERFORMANCE_KEYS: tuple[str, ...] = (
    "reward_rate",
    "hit_rate_raw",
    "hit_rate",
    "false_alarm_rate_raw",
    "false_alarm_rate",
    "rolling_dprime",
)

#: Keys of ``get_performance_metrics`` (AllenSDK 2.11+) in AllenSDK order.
PERFORMANCE_METRIC_KEYS: tuple[str, ...] = (
    "trial_count",
    "go_trial_count",
    "catch_trial_count",
    "hit_trial_count",
    "miss_trial_count",
    "false_alarm_trial_count",
    "correct_reject_trial_count",
    "auto_reward_count",
    "earned_reward_count",
    "total_reward_count",
    "total_reward_volume",
    "maximum_reward_rate",
    "engaged_trial_count",
    "mean_hit_rate",
    "mean_hit_rate_uncorrected",
    "mean_hit_rate_engaged",
    "mean_false_alarm_rate",
    "mean_false_alarm_rate_uncorrected",
    "mean_false_alarm_rate_engaged",
    "mean_dprime",
    "mean_dprime_engaged",
    "max_dprime",
    "max_dprime_engaged",
)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _check_int(value: Any, name: str, minimum: int) -> int:
    """Return ``value`` as a python int if it is an integer ``>= minimum``, else raise."""
    ok = (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool | np.bool_)
        and value >= minimum
    )
    if not ok:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return int(value)


def _check_positive(value: Any, name: str) -> float:
    """Return ``value`` as a python float if it is a real number ``> 0``, else raise."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and value > 0  # also rejects NaN
    )
    if not ok:
        msg = f"{name} must be a positive number, got {value!r}"
        raise ValueError(msg)
    return float(value)


def _as_bool_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        msg = f"{name} must be 1-D, got shape {arr.shape}"
        raise ValueError(msg)
    return arr.astype(bool)


def _as_float_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        msg = f"{name} must be 1-D, got shape {arr.shape}"
        raise ValueError(msg)
    return arr


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        msg = f"arrays must have the same length, got {lengths}"
        raise ValueError(msg)
    return next(iter(lengths.values()), 0)


def _nanmean(values: np.ndarray) -> float:
    """pandas ``Series.mean()``: NaN skipped, NaN for an empty/all-NaN input, no warning."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    count = values.size - int(missing.sum())
    if count == 0:
        return float("nan")
    return float(np.where(missing, 0.0, values).sum() / count)


def _nanmax(values: np.ndarray) -> float:
    """pandas ``Series.max()`` / ``np.nanmax``: NaN for an empty/all-NaN input, no warning."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return float("nan")
    return float(finite.max())


def _trailing_window_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of ``values[max(0, i - window + 1) : i + 1]`` for every ``i`` (cumulative sums)."""
    csum = np.concatenate(([0], np.cumsum(values)))
    idx = np.arange(1, values.size + 1)
    return csum[idx] - csum[np.maximum(idx - window, 0)]


# ---------------------------------------------------------------------------------------
# eye tracking (§8.3)
# ---------------------------------------------------------------------------------------


def outlier_mask(areas: np.ndarray, z_threshold: float) -> np.ndarray:
    """Frames where any area column is a z-score outlier (AllenSDK ``determine_outliers``).

    Parameters
    ----------
    areas : numpy.ndarray
        Shape ``(n_frames, k)`` (a 1-D array is one column).  NaN marks a missing value.
    z_threshold : float
        Frames with ``|z| > z_threshold`` (strict) in any column are outliers.

    Returns
    -------
    numpy.ndarray
        Bool, shape ``(n_frames,)``.

    Notes
    -----
    Per column ``z = (x - nanmean(x)) / nanstd(x, ddof=0)`` over the whole array
    (``scipy.stats.zscore(nan_policy='omit')``).  NaN z-scores (missing values, constant or
    all-NaN columns) compare False.
    """
    a = np.asarray(areas, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, np.newaxis]
    if a.ndim != 2:
        msg = f"areas must have shape (n_frames, k), got {a.shape}"
        raise ValueError(msg)
    valid = ~np.isnan(a)
    count = valid.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(valid, a, 0.0).sum(axis=0) / count
        dev = np.where(valid, a - mean, 0.0)
        std = np.sqrt((dev * dev).sum(axis=0) / count)
        z = (a - mean) / std
        return np.any(np.abs(z) > z_threshold, axis=1)


def likely_blinks(
    eye_area: np.ndarray,
    pupil_area: np.ndarray,
    outliers: np.ndarray,
    dilation_frames: int,
) -> np.ndarray:
    """Likely blinks (AllenSDK ``determine_likely_blinks``).

    Parameters
    ----------
    eye_area, pupil_area : numpy.ndarray
        1-D raw areas (NaN = not tracked).
    outliers : numpy.ndarray
        1-D bool, e.g. from :func:`outlier_mask`.
    dilation_frames : int
        Number of frames marked on each side of every blink frame (``>= 0``).

    Returns
    -------
    numpy.ndarray
        Bool, ``isnan(eye) | isnan(pupil) | outliers`` dilated with
        ``scipy.ndimage.binary_dilation(iterations=dilation_frames)`` (3-frame structuring
        element, frames outside the array count as not blinking); no dilation for 0.
    """
    dilation_frames = _check_int(dilation_frames, "dilation_frames", 0)
    eye = _as_float_1d(eye_area, "eye_area")
    pupil = _as_float_1d(pupil_area, "pupil_area")
    out = _as_bool_1d(outliers, "outliers")
    _same_length(eye_area=eye, pupil_area=pupil, outliers=out)
    blinks = np.isnan(eye) | np.isnan(pupil) | out
    if dilation_frames > 0 and blinks.size:
        blinks = scipy.ndimage.binary_dilation(blinks, iterations=dilation_frames)
    return np.asarray(blinks, dtype=bool)


def blink_mask(
    eye_area_raw: np.ndarray,
    pupil_area_raw: np.ndarray,
    *,
    z_threshold: float = 3.0,
    dilation_frames: int = 2,
) -> np.ndarray:
    """AllenSDK 2.16.2 ``likely_blink`` from the raw eye and pupil areas.

    Parameters
    ----------
    eye_area_raw, pupil_area_raw : numpy.ndarray
        1-D raw areas of the whole session (the z-scores use every frame).
    z_threshold : float, default 3.0
        Outlier threshold on ``|z|`` (strict ``>``); must be ``> 0``.
    dilation_frames : int, default 2
        Blink dilation in frames on each side; must be an integer ``>= 0``.

    Returns
    -------
    numpy.ndarray
        Bool ``likely_blink`` per frame.

    Raises
    ------
    ValueError
        For a non-positive ``z_threshold`` or a negative / non-integer
        ``dilation_frames``.
    """
    z_threshold = _check_positive(z_threshold, "z_threshold")
    dilation_frames = _check_int(dilation_frames, "dilation_frames", 0)
    eye = _as_float_1d(eye_area_raw, "eye_area_raw")
    pupil = _as_float_1d(pupil_area_raw, "pupil_area_raw")
    _same_length(eye_area_raw=eye, pupil_area_raw=pupil)
    outliers = outlier_mask(np.column_stack((eye, pupil)), z_threshold)
    return likely_blinks(eye, pupil, outliers, dilation_frames)


# ---------------------------------------------------------------------------------------
# events (§3.3)
# ---------------------------------------------------------------------------------------


def event_filter_weights(scale_timesteps: float, n_time_steps: int = 20) -> np.ndarray:
    """Normalised half-normal filter weights of the AllenSDK ``filtered_events``.

    Parameters
    ----------
    scale_timesteps : float
        Scale of the half-normal distribution in frames (2.16.2: ``2/31 s × frame rate``,
        2.0 at 31 Hz); must be ``> 0``.
    n_time_steps : int, default 20
        Filter length (``>= 1``).

    Returns
    -------
    numpy.ndarray
        ``w = halfnorm(loc=0, scale).pdf(arange(n_time_steps)); w / w.sum()``.

    Raises
    ------
    ValueError
        For ``n_time_steps < 1`` or ``scale_timesteps <= 0``.
    """
    n_time_steps = _check_int(n_time_steps, "n_time_steps", 1)
    scale = _check_positive(scale_timesteps, "scale_timesteps")
    w = scipy.stats.halfnorm(loc=0, scale=scale).pdf(np.arange(n_time_steps))
    return w / np.sum(w)


def filter_events(events: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Causal FIR filter along the last axis (AllenSDK ``filter_events_array``).

    Parameters
    ----------
    events : numpy.ndarray
        Any shape; time is the last axis.
    weights : numpy.ndarray
        1-D filter weights, e.g. from :func:`event_filter_weights`.

    Returns
    -------
    numpy.ndarray
        float64, same shape: ``out[..., t] = sum_{k=0}^{min(t, n-1)} w[k] * events[..., t-k]``,
        i.e. ``np.convolve(row, w)[:n_frames]`` for every row.

    Notes
    -----
    Implemented with ``scipy.signal.lfilter(weights, [1.0], events, axis=-1)``, which for a
    pure FIR filter is a row-wise ``np.convolve`` (bit-identical to the AllenSDK).  NaN
    propagates: a NaN at frame ``t`` makes frames ``t .. t + len(weights) - 1`` of its row
    NaN, so an all-NaN row stays all-NaN.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        msg = f"weights must be a non-empty 1-D array, got shape {w.shape}"
        raise ValueError(msg)
    x = np.asarray(events, dtype=np.float64)
    if x.ndim == 0:
        msg = "events must have at least one dimension (time is the last axis)"
        raise ValueError(msg)
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.float64)
    return np.asarray(scipy.signal.lfilter(w, [1.0], x, axis=-1), dtype=np.float64)


# ---------------------------------------------------------------------------------------
# stimulus presentations (§6.4)
# ---------------------------------------------------------------------------------------


def _omitted_state(omitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a nullable ``omitted`` column into ``(is_true, is_false)`` bool arrays.

    Accepts bool, float ``1.0/0.0/NaN`` (NaN = missing) or object arrays of
    ``True/False/None``.
    """
    arr = np.asarray(omitted)
    if arr.ndim != 1:
        msg = f"omitted must be 1-D, got shape {arr.shape}"
        raise ValueError(msg)
    if arr.dtype.kind == "b":
        return arr.copy(), ~arr
    f = np.asarray(arr, dtype=np.float64)  # None -> NaN for object input
    return f == 1.0, f == 0.0


def _missing_name(image_name: np.ndarray) -> np.ndarray:
    """True where an image name is missing: ``''``, ``None`` or a float NaN."""
    names = np.asarray(image_name, dtype=object)
    if names.size == 0:
        return np.zeros(names.shape, dtype=bool)
    empty = np.asarray(np.equal(names, ""), dtype=bool)
    none = np.asarray(np.equal(names, None), dtype=bool)
    nan = np.asarray(np.not_equal(names, names), dtype=bool)  # only NaN != itself
    return empty | none | nan


def is_change_event(image_name: np.ndarray, omitted: np.ndarray) -> np.ndarray:
    """Change flashes (AllenSDK ``is_change_event``).

    Parameters
    ----------
    image_name : numpy.ndarray
        Object array of str per presentation, in presentation order; ``''`` or ``None``
        (or NaN) means "no image" (the AllenSDK's NaN).
    omitted : numpy.ndarray
        Bool, or float ``1.0/0.0/NaN`` (NaN = missing, the AllenSDK's ``pd.NA``).

    Returns
    -------
    numpy.ndarray
        Bool.  Only rows with ``omitted`` exactly False take part (omitted and NA rows are
        False); among them a row is a change when its image name differs from the previous
        participating row's, the first participating row never is.

    Notes
    -----
    As in pandas, a missing name compares unequal to everything, itself included, so a
    participating row with no image (and the row after it) counts as a change.  In VBO
    files such rows have ``omitted`` NA and are excluded.
    """
    names = np.asarray(image_name, dtype=object)
    if names.ndim != 1:
        msg = f"image_name must be 1-D, got shape {names.shape}"
        raise ValueError(msg)
    _, shown = _omitted_state(omitted)
    _same_length(image_name=names, omitted=shown)
    idx = np.flatnonzero(shown)
    out = np.zeros(names.size, dtype=bool)
    if idx.size < 2:
        return out
    sub = names[idx]
    missing = _missing_name(sub)
    differs = np.asarray(sub[1:] != sub[:-1], dtype=bool)
    out[idx[1:]] = differs | missing[1:] | missing[:-1]
    return out


def flashes_since_change(
    image_name: np.ndarray, omitted: np.ndarray, is_change: np.ndarray
) -> np.ndarray:
    """Flashes since the last change (AllenSDK ``get_flashes_since_change``).

    Parameters
    ----------
    image_name : numpy.ndarray
        Object array of str per presentation (``'omitted'`` marks an omitted flash).
    omitted : numpy.ndarray
        Bool or float ``1.0/0.0/NaN`` (NaN = missing, treated as not omitted).
    is_change : numpy.ndarray
        Bool, e.g. from :func:`is_change_event`.

    Returns
    -------
    numpy.ndarray
        int64.  Row 0 is 0; an omitted row (``omitted`` True or name ``'omitted'``) repeats
        the previous value; a change row is 0; any other row (including non-image rows such
        as spontaneous or movie frames) is the previous value + 1.
    """
    names = np.asarray(image_name, dtype=object)
    if names.ndim != 1:
        msg = f"image_name must be 1-D, got shape {names.shape}"
        raise ValueError(msg)
    om_true, _ = _omitted_state(omitted)
    change = _as_bool_1d(is_change, "is_change")
    n = _same_length(image_name=names, omitted=om_true, is_change=change)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    hold = om_true | (names == "omitted")
    reset = ~hold & change
    reset[0] = True  # row 0 is always 0 (AllenSDK: out[0] = out[-1] = 0 when omitted)
    inc = ~hold & ~reset
    csum = np.cumsum(inc, dtype=np.int64)
    last_reset = np.maximum.accumulate(np.where(reset, np.arange(n), 0))
    return csum - csum[last_reset]


# ---------------------------------------------------------------------------------------
# behaviour performance (§9)
# ---------------------------------------------------------------------------------------


def response_latencies(
    change_time: np.ndarray,
    lick_times: np.ndarray,
    lick_counts: np.ndarray,
    response_window_start: float,
) -> np.ndarray:
    """Response latency per trial for the reward rate (AllenSDK §9.1).

    Parameters
    ----------
    change_time : numpy.ndarray
        Change (or sham-change) time per trial; NaN for aborted trials.
    lick_times : numpy.ndarray
        Flat concatenation of every trial's lick times (contiguous ragged array).
    lick_counts : numpy.ndarray
        Number of licks of each trial in ``lick_times`` (non-negative integers).
    response_window_start : float
        ``response_window_sec[0]`` of the task parameters.

    Returns
    -------
    numpy.ndarray
        float64 per trial: ``lick - change_time`` of the first lick (in the trial's own
        order) with ``lick - change_time > response_window_start`` (strict), else ``+inf``
        (also for a NaN change time or a trial without licks).
    """
    change = _as_float_1d(change_time, "change_time")
    licks = _as_float_1d(lick_times, "lick_times")
    counts = np.asarray(lick_counts)
    if counts.ndim != 1 or counts.size != change.size:
        msg = (
            f"lick_counts must be 1-D with one entry per trial ({change.size}), "
            f"got shape {counts.shape}"
        )
        raise ValueError(msg)
    integral = counts.dtype.kind in "iub" or (
        counts.dtype.kind == "f" and bool(np.all(np.isfinite(counts) & (counts % 1 == 0)))
    )
    if not integral or (counts.size and counts.min() < 0):
        msg = "lick_counts must be non-negative integers"
        raise ValueError(msg)
    counts = counts.astype(np.int64)
    if int(counts.sum()) != licks.size:
        msg = f"lick_counts sum to {int(counts.sum())} but there are {licks.size} lick_times"
        raise ValueError(msg)
    out = np.full(change.size, np.inf)
    trial = np.repeat(np.arange(change.size), counts)
    rel = licks - change[trial]
    valid = np.flatnonzero(rel > response_window_start)  # NaN compares False
    if valid.size:
        vt = trial[valid]
        first = np.concatenate(([True], vt[1:] != vt[:-1]))
        out[vt[first]] = rel[valid[first]]
    return out


def reward_rate(
    latency: np.ndarray,
    start_time: np.ndarray,
    *,
    window: float = 0.75,
    trial_window: int = 25,
    initial_trials: int = 10,
) -> np.ndarray:
    """Rewards per minute in a centred trial window (AllenSDK ``calculate_reward_rate``).

    Parameters
    ----------
    latency : numpy.ndarray
        Response latency per trial (:func:`response_latencies`; inf/NaN = no response).
    start_time : numpy.ndarray
        Trial start times in seconds.
    window : float, default 0.75
        A trial is "correct" when ``latency < window``.
    trial_window : int, default 25
        Half-width: trial ``k`` uses trials ``max(0, k - trial_window) .. min(k +
        trial_window, n) - 1``.
    initial_trials : int, default 10
        The first ``initial_trials`` trials are NaN.

    Returns
    -------
    numpy.ndarray
        float64 ``correct / (start[hi-1] - start[lo]) * 60``; NaN for the initial trials and
        wherever the value is ±inf or ``0/0`` (no warnings emitted).
    """
    trial_window = _check_int(trial_window, "trial_window", 1)
    initial_trials = _check_int(initial_trials, "initial_trials", 0)
    lat = _as_float_1d(latency, "latency")
    start = _as_float_1d(start_time, "start_time")
    n = _same_length(latency=lat, start_time=start)
    k = np.arange(n)
    lo = np.maximum(k - trial_window, 0)
    hi = np.minimum(k + trial_window, n)
    csum = np.concatenate(([0], np.cumsum(lat < window)))
    correct = (csum[hi] - csum[lo]).astype(np.float64)
    elapsed = start[hi - 1] - start[lo] if n else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = correct / elapsed * 60
    rr[:initial_trials] = np.nan
    rr[np.isinf(rr)] = np.nan
    return rr


def trial_number_limit(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Bound rates to ``[1/(2N), 1 - 1/(2N)]`` (AllenSDK ``trial_number_limit``, vectorised).

    Parameters
    ----------
    p : numpy.ndarray
        Rates (NaN allowed).
    n : numpy.ndarray
        Number of trials each rate is based on.

    Returns
    -------
    numpy.ndarray
        float64: NaN where ``n == 0``, NaN where ``p`` is NaN, else ``p`` clipped to
        ``[1/(2n), 1 - 1/(2n)]``.
    """
    p = np.asarray(p, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = 1.0 / (2 * n)
        out = np.minimum(np.maximum(p, lower), 1 - lower)
    return np.where(n == 0, np.nan, out)


def rolling_rates(
    hit: np.ndarray,
    miss: np.ndarray,
    false_alarm: np.ndarray,
    correct_reject: np.ndarray,
    aborted: np.ndarray,
    *,
    window: int = 100,
) -> dict[str, np.ndarray]:
    """Rolling hit and false-alarm rates over non-aborted trials (AllenSDK ``dprime.py``).

    Parameters
    ----------
    hit, miss, false_alarm, correct_reject, aborted : numpy.ndarray
        Bool per trial.
    window : int, default 100
        Trailing window in non-aborted trials, the current one included.

    Returns
    -------
    dict of str to numpy.ndarray
        ``hit_rate_raw``, ``hit_rate``, ``false_alarm_rate_raw``, ``false_alarm_rate``, each
        float64 of length n_trials and NaN at aborted trials.  Go responses are 1 (hit),
        0 (miss) or missing (other trials); the raw rate is the mean of the non-missing
        responses in the window (NaN if there are none, as pandas
        ``rolling(window, min_periods=0).mean()``); the corrected rate applies
        :func:`trial_number_limit` with the number of non-missing responses.  Same for
        catch responses (false alarm 1, correct reject 0).
    """
    window = _check_int(window, "window", 1)
    h = _as_bool_1d(hit, "hit")
    m = _as_bool_1d(miss, "miss")
    fa = _as_bool_1d(false_alarm, "false_alarm")
    cr = _as_bool_1d(correct_reject, "correct_reject")
    ab = _as_bool_1d(aborted, "aborted")
    n = _same_length(hit=h, miss=m, false_alarm=fa, correct_reject=cr, aborted=ab)
    keep = ~ab
    out: dict[str, np.ndarray] = {}
    for name, yes, no in (("hit_rate", h, m), ("false_alarm_rate", fa, cr)):
        # AllenSDK: responses = NaN; responses[yes] = 1; responses[no] = 0 (no wins)
        yes_k, no_k = yes[keep], no[keep]
        count = _trailing_window_sum(yes_k | no_k, window).astype(np.float64)
        ones = _trailing_window_sum(yes_k & ~no_k, window).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.where(count > 0, ones / count, np.nan)
        corrected = trial_number_limit(raw, count)
        for key, values in ((f"{name}_raw", raw), (name, corrected)):
            full = np.full(n, np.nan)
            full[keep] = values
            out[key] = full
    return {
        k: out[k] for k in ("hit_rate_raw", "hit_rate", "false_alarm_rate_raw", "false_alarm_rate")
    }


def dprime(
    hit_rate: np.ndarray,
    false_alarm_rate: np.ndarray,
    *,
    limits: tuple[float, float] = (0.01, 0.99),
) -> np.ndarray:
    """d′ = Z(clip(hit_rate)) - Z(clip(false_alarm_rate)) (AllenSDK ``get_dprime``).

    Parameters
    ----------
    hit_rate, false_alarm_rate : numpy.ndarray
        Rates (broadcast together); NaN allowed.
    limits : tuple of float, default (0.01, 0.99)
        Clip bounds, ``0 < lower < upper < 1`` (the AllenSDK always uses
        ``1/100, 1 - 1/100``, whatever the rolling window).

    Returns
    -------
    numpy.ndarray
        float64, NaN where either rate is NaN.
    """
    lo, hi = (float(v) for v in limits)
    if not 0.0 < lo < hi < 1.0:
        msg = f"limits must satisfy 0 < lower < upper < 1, got {limits!r}"
        raise ValueError(msg)
    hr = np.asarray(hit_rate, dtype=np.float64)
    far = np.asarray(false_alarm_rate, dtype=np.float64)
    hr, far = np.broadcast_arrays(hr, far)
    ppf = scipy.stats.norm.ppf
    out = np.asarray(ppf(np.clip(hr, lo, hi)) - ppf(np.clip(far, lo, hi)), dtype=np.float64)
    return np.where(np.isnan(hr) | np.isnan(far), np.nan, out)


def rolling_performance(
    *,
    hit: np.ndarray,
    miss: np.ndarray,
    false_alarm: np.ndarray,
    correct_reject: np.ndarray,
    aborted: np.ndarray,
    change_time: np.ndarray,
    lick_times: np.ndarray,
    lick_counts: np.ndarray,
    start_time: np.ndarray,
    reward_volume: np.ndarray,
    response_window_start: float,
) -> dict[str, np.ndarray]:
    """The AllenSDK ``get_rolling_performance_df`` columns.

    Parameters
    ----------
    hit, miss, false_alarm, correct_reject, aborted : numpy.ndarray
        Bool per trial.
    change_time, start_time : numpy.ndarray
        Per trial, seconds.
    lick_times, lick_counts : numpy.ndarray
        Licks of all trials as a contiguous ragged array (see :func:`response_latencies`).
    reward_volume : numpy.ndarray
        Per trial, mL.
    response_window_start : float
        ``response_window_sec[0]``.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys :data:`ROLLING_PERFORMANCE_KEYS` in AllenSDK column order, float64 of length
        n_trials: ``reward_rate`` (every trial, :func:`reward_rate`), the four rolling rates
        (:func:`rolling_rates`) and ``rolling_dprime`` (:func:`dprime` of the
        trial-count-corrected rates), the last five NaN at aborted trials.

    Notes
    -----
    Passive override (AllenSDK 2.14+): when every ``reward_volume == 0`` and no trial has a
    lick, ``rolling_dprime`` is 0 for every non-aborted trial.  Aborted trials stay NaN: the
    AllenSDK builds ``zeros(n_non_aborted)`` and assigns it by index to the non-aborted
    trials only.
    """
    latency = response_latencies(change_time, lick_times, lick_counts, response_window_start)
    rr = reward_rate(latency, start_time)
    rates = rolling_rates(hit, miss, false_alarm, correct_reject, aborted)
    volume = _as_float_1d(reward_volume, "reward_volume")
    _same_length(reward_volume=volume, reward_rate=rr)
    ab = _as_bool_1d(aborted, "aborted")
    passive = bool(np.all(volume == 0)) and not np.any(np.asarray(lick_counts) > 0)
    if passive:
        d = np.where(ab, np.nan, 0.0)
    else:
        d = dprime(rates["hit_rate"], rates["false_alarm_rate"])
    return {"reward_rate": rr, **rates, "rolling_dprime": d}


def engaged(reward_rate: np.ndarray, threshold: float) -> np.ndarray:
    """Engaged trials: ``reward_rate > threshold`` (strict; NaN → False).

    Parameters
    ----------
    reward_rate : numpy.ndarray
        Reward rate per trial (:func:`reward_rate`).
    threshold : float
        Rewards per minute.

    Returns
    -------
    numpy.ndarray
        Bool per trial (AllenSDK ``trial_masks.reward_rate`` / engagement mask).
    """
    return np.asarray(reward_rate, dtype=np.float64) > threshold


def performance_metrics(
    *,
    rolling: Mapping[str, np.ndarray],
    go: np.ndarray,
    catch: np.ndarray,
    hit: np.ndarray,
    miss: np.ndarray,
    false_alarm: np.ndarray,
    correct_reject: np.ndarray,
    auto_rewarded: np.ndarray,
    rewards_volume: np.ndarray,
    engaged_trial_reward_rate_threshold: float = 2.0,
) -> dict[str, float | int]:
    """The AllenSDK 2.16.2 ``get_performance_metrics`` dictionary.

    Parameters
    ----------
    rolling : mapping of str to numpy.ndarray
        The output of :func:`rolling_performance`.
    go, catch, hit, miss, false_alarm, correct_reject, auto_rewarded : numpy.ndarray
        Bool per trial.
    rewards_volume : numpy.ndarray
        Volume of each row of the rewards table (earned and auto rewards), mL.
    engaged_trial_reward_rate_threshold : float, default 2.0
        A trial is engaged when its reward rate is strictly above this.

    Returns
    -------
    dict of str to int or float
        Keys :data:`PERFORMANCE_METRIC_KEYS` in AllenSDK order; counts are python ints, all
        other values python floats (NaN for a mean / max over no values).
    """
    flags = {
        "go": _as_bool_1d(go, "go"),
        "catch": _as_bool_1d(catch, "catch"),
        "hit": _as_bool_1d(hit, "hit"),
        "miss": _as_bool_1d(miss, "miss"),
        "false_alarm": _as_bool_1d(false_alarm, "false_alarm"),
        "correct_reject": _as_bool_1d(correct_reject, "correct_reject"),
        "auto_rewarded": _as_bool_1d(auto_rewarded, "auto_rewarded"),
    }
    roll = {k: _as_float_1d(rolling[k], k) for k in ROLLING_PERFORMANCE_KEYS}
    n = _same_length(**flags, **roll)
    volume = _as_float_1d(rewards_volume, "rewards_volume")
    eng = engaged(roll["reward_rate"], engaged_trial_reward_rate_threshold)
    counts = {k: int(np.count_nonzero(v)) for k, v in flags.items()}
    return {
        "trial_count": n,
        "go_trial_count": counts["go"],
        "catch_trial_count": counts["catch"],
        "hit_trial_count": counts["hit"],
        "miss_trial_count": counts["miss"],
        "false_alarm_trial_count": counts["false_alarm"],
        "correct_reject_trial_count": counts["correct_reject"],
        "auto_reward_count": counts["auto_rewarded"],
        "earned_reward_count": counts["hit"],
        "total_reward_count": int(volume.size),
        "total_reward_volume": float(np.where(np.isnan(volume), 0.0, volume).sum()),
        "maximum_reward_rate": _nanmax(roll["reward_rate"]),
        "engaged_trial_count": int(np.count_nonzero(eng)),
        "mean_hit_rate": _nanmean(roll["hit_rate"]),
        "mean_hit_rate_uncorrected": _nanmean(roll["hit_rate_raw"]),
        "mean_hit_rate_engaged": _nanmean(roll["hit_rate"][eng]),
        "mean_false_alarm_rate": _nanmean(roll["false_alarm_rate"]),
        "mean_false_alarm_rate_uncorrected": _nanmean(roll["false_alarm_rate_raw"]),
        "mean_false_alarm_rate_engaged": _nanmean(roll["false_alarm_rate"][eng]),
        "mean_dprime": _nanmean(roll["rolling_dprime"]),
        "mean_dprime_engaged": _nanmean(roll["rolling_dprime"][eng]),
        "max_dprime": _nanmax(roll["rolling_dprime"]),
        "max_dprime_engaged": _nanmax(roll["rolling_dprime"][eng]),
    }
