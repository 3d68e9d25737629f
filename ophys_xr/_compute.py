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
handled explicitly).  scipy is imported where it is used: ``import ophys_xr`` stays fast.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "GRAY_SCREEN_SECONDS",
    "PERFORMANCE_METRIC_KEYS",
    "ROLLING_PERFORMANCE_KEYS",
    "blink_mask",
    "dprime",
    "engaged",
    "event_filter_weights",
    "eventlocked_gather",
    "eventlocked_time_array",
    "filter_events",
    "flashes_since_change",
    "gray_screen_null_means",
    "group_sums",
    "index_of_nearest_value",
    "interpolation_plan",
    "is_change_event",
    "lick_rate",
    "lifetime_sparseness",
    "likely_blinks",
    "mean_sampling_rate",
    "nearest_plan",
    "nearest_window_offsets",
    "outlier_mask",
    "performance_metrics",
    "reliability",
    "response_latencies",
    "reward_rate",
    "rolling_performance",
    "rolling_rates",
    "selectivity_index",
    "shuffle_p_values",
    "trial_number_limit",
    "window_mean",
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
        import scipy.ndimage

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
    # scipy.stats.halfnorm(loc=0, scale).pdf, operation for operation (the same floats),
    # without importing scipy.stats (0.3 s) when a session is opened
    y = (np.arange(n_time_steps) - 0.0) / scale
    w = np.sqrt(2.0 / np.pi) * np.exp(-y * y / 2.0) / scale
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
    import scipy.signal

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
    # scipy.stats.norm.ppf is scipy.special.ndtri (the same floats), whose import is a
    # third of scipy.stats's
    from scipy.special import ndtri as ppf

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


# =======================================================================================
# event-locked responses and response metrics (issue 6)
#
# Definitions follow brain_observatory_utilities (BOU) ``general_utilities`` /
# ``optical_physiology.data_formatting`` and visual_behavior_analysis (VBA)
# ``response_processing`` / ``cell_metrics``; where they differ from those helpers on
# purpose, the docstring says so.  Everything here is plain numpy and warning-free.
# =======================================================================================

#: Length of the gray-screen period used for the shuffle p-values (BOU / VBA
#: ``get_spontaneous_frames``: the last 4 minutes before the first stimulus).
GRAY_SCREEN_SECONDS = 240.0

#: Output elements processed at once by :func:`eventlocked_gather` (about 512 kB: the
#: temporaries stay in cache).
_GATHER_ELEMENTS = 2**16


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
    rate = _check_positive(sampling_rate, "sampling_rate")
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
    rate = _check_positive(sampling_rate, "sampling_rate")
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
    rate = _check_positive(sampling_rate, "sampling_rate")
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
        (..., n_time) with time last: one trace per row (e.g. (n_cells, n_time)).
    first : numpy.ndarray
        int (n_events, n_offsets) sample indices, -1 = missing.
    second, weight : numpy.ndarray, optional
        From :func:`interpolation_plan`; without them the values at ``first`` are taken
        (nearest-sample plan).

    Returns
    -------
    numpy.ndarray
        float64 (..., n_events, n_offsets), C-ordered: ``y[first] + weight * (y[second] -
        y[first])`` (NaN where missing, or where a sample used is NaN).  Each trace is
        gathered on its own (it stays in cache) in pieces that keep temporaries small.
    """
    y = np.asarray(trace, dtype=np.float64)
    if y.ndim == 0:
        msg = "trace must have a time axis (last)"
        raise ValueError(msg)
    lead = y.shape[:-1]
    rows = np.ascontiguousarray(y.reshape(-1, y.shape[-1]))
    first = np.asarray(first)
    shape = first.shape
    a = first.reshape(-1)
    missing = a < 0
    a = np.where(missing, 0, a)
    b = None if second is None else np.where(missing, 0, np.asarray(second).reshape(-1))
    w = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    out = np.empty((rows.shape[0], a.size), dtype=np.float64)
    if rows.shape[1] == 0 and a.size:
        out.fill(np.nan)
        return out.reshape(*lead, *shape)
    for row, out_row in zip(rows, out, strict=True):
        for s0 in range(0, a.size, _GATHER_ELEMENTS):
            s1 = min(a.size, s0 + _GATHER_ELEMENTS)
            o = out_row[s0:s1]
            np.take(row, a[s0:s1], out=o)
            if b is not None and w is not None:
                y1 = np.take(row, b[s0:s1])
                y1 -= o
                y1 *= w[s0:s1]
                o += y1
    if missing.any():
        out[:, missing] = np.nan
    return out.reshape(*lead, *shape)


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
    n_frames = _check_int(n_frames, "n_frames", 1)
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
    n_frames = _check_int(n_frames, "n_frames", 0)
    rate = _check_positive(frame_rate, "frame_rate")
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


def group_sums(values: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of the non-NaN values of each group along the last axis.

    Parameters
    ----------
    values : numpy.ndarray
        (..., n_events).
    codes : numpy.ndarray
        int (n_events,) group of each event in ``[0, n_groups)``; -1 = in no group.
    n_groups : int
        Number of groups.

    Returns
    -------
    sums, counts : numpy.ndarray
        float64 / int64 (..., n_groups).
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(codes, dtype=np.int64)
    sums = np.zeros(v.shape[:-1] + (n_groups,))
    counts = np.zeros(v.shape[:-1] + (n_groups,), dtype=np.int64)
    ok = ~np.isnan(v)
    for g in range(n_groups):
        sel = c == g
        # C order: the sum runs along a contiguous last axis whatever the leading dims
        part = np.ascontiguousarray(np.where(ok[..., sel], v[..., sel], 0.0))
        sums[..., g] = part.sum(axis=-1)
        counts[..., g] = ok[..., sel].sum(axis=-1)
    return sums, counts


def lifetime_sparseness(image_means: np.ndarray) -> np.ndarray:
    """Lifetime sparseness over the image-mean responses, last axis (VBA ``cell_metrics``).

    ``(1 - (1/N) (Σ r)² / Σ r²) / (1 - 1/N)`` with ``N`` images (VBA
    ``compute_lifetime_sparseness``, Vinje & Gallant 2000 / Froudarakis et al. 2014).

    Parameters
    ----------
    image_means : numpy.ndarray
        (..., n_images) mean response of each image.

    Returns
    -------
    numpy.ndarray
        float64 (...).  NaN image means are left out (N counts the others); NaN when fewer
        than two images remain or every response is 0 (VBA: NaN with a warning).
    """
    r = np.asarray(image_means, dtype=np.float64)
    ok = ~np.isnan(r)
    n = ok.sum(axis=-1).astype(np.float64)
    s = np.where(ok, r, 0.0).sum(axis=-1)
    s2 = np.where(ok, r * r, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = (1 - (1 / n) * (s * s / s2)) / (1 - (1 / n))
    return np.where((n >= 2) & (s2 > 0), ls, np.nan)


def selectivity_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` (VBA image selectivity index); NaN where ``a + b == 0``."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (x - y) / (x + y)
    return np.where(x + y == 0, np.nan, out)


def reliability(traces: np.ndarray, min_events: int = 6) -> np.ndarray:
    """Mean pairwise Pearson correlation between event-locked traces (VBA ``reliability``).

    VBA ``compute_reliability_vectorized``: ``nanmean`` of the lower triangle of
    ``np.corrcoef(traces)``, NaN unless there are more than 5 traces.  Computed without the
    n_events² matrix: with each trace centred and scaled to unit norm (``u_i``), the sum of
    the pairwise correlations is ``(|Σ u_i|² - n) / 2``.

    Parameters
    ----------
    traces : numpy.ndarray
        (..., n_events, n_points): one row per event, the response-window points.
    min_events : int, default 6
        NaN with fewer events (VBA: ``traces.shape[0] > 5``).

    Returns
    -------
    numpy.ndarray
        float64 (...).  Traces with a NaN or with zero variance have NaN correlations in
        ``np.corrcoef``; ``nanmean`` skips them, and so does this (only the other traces'
        pairs count).  NaN when fewer than two such traces remain.  Every sum runs along a
        contiguous last axis, so the result does not depend on the leading dimensions
        (blocks of cells give the same values as all cells at once).
    """
    min_events = _check_int(min_events, "min_events", 2)
    x = np.ascontiguousarray(traces, dtype=np.float64)
    if x.ndim < 2:
        msg = f"traces must be (..., n_events, n_points), got shape {x.shape}"
        raise ValueError(msg)
    n_events, n_points = x.shape[-2:]
    centred = x - (x.sum(axis=-1) / n_points)[..., np.newaxis]
    norm = np.sqrt((centred * centred).sum(axis=-1))
    valid = np.isfinite(norm) & (norm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(valid[..., np.newaxis], centred / norm[..., np.newaxis], 0.0)
    total = np.ascontiguousarray(np.swapaxes(unit, -1, -2)).sum(axis=-1)  # (..., n_points)
    n = valid.sum(axis=-1).astype(np.float64)
    pairs = (total * total).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (pairs - n) / (n * (n - 1))
    return np.where((n >= 2) & (n_events >= min_events), out, np.nan)
