"""Behaviour performance, as the AllenSDK 2.16.2 ``BehaviorSession`` computes it.

Response latency, reward rate, rolling hit / false-alarm rates, the Macmillan & Creelman
trial-count limit, d′, the passive-session d′ override and ``get_performance_metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ophys_xr import _options
from ophys_xr._compute._helpers import (
    _as_bool_1d,
    _as_float_1d,
    _nanmax,
    _nanmean,
    _same_length,
)

__all__ = [
    "PERFORMANCE_METRIC_KEYS",
    "ROLLING_PERFORMANCE_KEYS",
    "dprime",
    "engaged",
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


def _trailing_window_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of ``values[max(0, i - window + 1) : i + 1]`` for every ``i`` (cumulative sums)."""
    csum = np.concatenate(([0], np.cumsum(values)))
    idx = np.arange(1, values.size + 1)
    return csum[idx] - csum[np.maximum(idx - window, 0)]


def response_latencies(
    change_time: np.ndarray,
    lick_times: np.ndarray,
    lick_counts: np.ndarray,
    response_window_start: float,
) -> np.ndarray:
    """Response latency per trial (AllenSDK ``calculate_response_latency_list``).

    The latencies the reward rate counts (:func:`reward_rate`).

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
    trial_window = _options.integer(trial_window, "trial_window", minimum=1)
    initial_trials = _options.integer(initial_trials, "initial_trials", minimum=0)
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
    window = _options.integer(window, "window", minimum=1)
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
    # scipy.stats.norm.ppf is scipy.special.ndtri (the same floats), whose import is much
    # cheaper than scipy.stats's (benchmarks/RESULTS.md, bench_compat)
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
