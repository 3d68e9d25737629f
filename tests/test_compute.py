"""Tests of the pure-numpy kernels in ``ophys_xr._compute``.

Reference cases come from the AllenSDK 2.16.2 test-suite (the unit tests of the functions
the kernels reproduce) and from the AllenSDK reader's output on the shipped fixture
(``tests/data/ref_tiny``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ophys_xr import _compute as C

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from load_reference import load

DEFAULT = DATA / "ref_tiny" / "default"
EYE_Z2_D4 = DATA / "ref_tiny" / "eye_z2_d4"

T, F = True, False


def _same(a: float, b: float) -> bool:
    return (a == b) or (math.isnan(a) and math.isnan(b))


# ---------------------------------------------------------------------------------------
# eye tracking (AllenSDK test_eye_tracking_processing.py)
# ---------------------------------------------------------------------------------------

AREAS = np.array(
    [[1, 1, 2], [2, 2, 1], [1, 7, 3], [1, 1, 1], [1, 3, 2], [1, 1, 1], [1, 2, 1], [2, 1, 1000]],
    dtype=float,
)


@pytest.mark.parametrize(
    ("z", "expected"),
    [
        (2.5, [F, F, F, F, F, F, F, T]),
        (2.0, [F, F, T, F, F, F, F, T]),  # confirms ddof=0
    ],
)
def test_determine_outliers(z: float, expected: list[bool]) -> None:
    out = C.outlier_mask(AREAS, z)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)


def test_outlier_mask_nan_and_constant_columns() -> None:
    areas = np.array([[np.nan, 1.0], [1.0, 1.0], [2.0, 1.0], [np.nan, 1.0]])
    np.testing.assert_array_equal(C.outlier_mask(areas, 0.5), [F, T, T, F])
    np.testing.assert_array_equal(C.outlier_mask(np.full((3, 2), np.nan), 1.0), [F, F, F])
    np.testing.assert_array_equal(C.outlier_mask(np.zeros((0, 2)), 1.0), np.zeros(0, bool))


EYE = np.array([4, 8, 3, 20, np.nan, 10, 21, 19, 42])
PUPIL = np.array([np.nan, 10, 2, 30, 99, 80, 93, 18, 777])
OUTLIERS = np.array([F] * 8 + [T])


@pytest.mark.parametrize(
    ("dilation", "expected"),
    [
        (2, [T] * 9),
        (1, [T, T, F, T, T, T, F, T, T]),
        (0, [T, F, F, F, T, F, F, F, T]),
    ],
)
def test_determine_likely_blinks(dilation: int, expected: list[bool]) -> None:
    out = C.likely_blinks(EYE, PUPIL, OUTLIERS, dilation)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"z_threshold": 0.0},
        {"z_threshold": -1.0},
        {"z_threshold": float("nan")},
        {"dilation_frames": -1},
        {"dilation_frames": 1.5},
        {"dilation_frames": True},
    ],
)
def test_blink_mask_rejects_bad_parameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="z_threshold|dilation_frames"):
        C.blink_mask(EYE, PUPIL, **kwargs)


def test_blink_mask_grows_with_dilation() -> None:
    rng = np.random.default_rng(0)
    eye = rng.normal(100, 10, 500)
    pupil = rng.normal(50, 5, 500)
    eye[rng.choice(500, 10, replace=False)] = np.nan
    pupil[rng.choice(500, 5, replace=False)] = 400.0
    for z in (1.0, 2.0, 3.0):
        previous = C.blink_mask(eye, pupil, z_threshold=z, dilation_frames=0)
        assert previous.any()
        for d in range(1, 6):
            current = C.blink_mask(eye, pupil, z_threshold=z, dilation_frames=np.int64(d))
            assert np.all(current >= previous)  # only grows
            previous = current
    # a lower threshold never removes a blink either
    np.testing.assert_array_less(
        C.blink_mask(eye, pupil, z_threshold=3.0).astype(int) - 1,
        C.blink_mask(eye, pupil, z_threshold=2.0).astype(int),
    )


def test_blink_mask_uses_only_eye_and_pupil() -> None:
    out = C.blink_mask(AREAS[:, 1], AREAS[:, 2], z_threshold=2.0, dilation_frames=0)
    np.testing.assert_array_equal(out, C.outlier_mask(AREAS[:, 1:], 2.0))


def test_blink_mask_matches_allensdk_default() -> None:
    eye = load(DEFAULT, "eye_tracking")
    out = C.blink_mask(eye["eye_area_raw"].to_numpy(), eye["pupil_area_raw"].to_numpy())
    np.testing.assert_array_equal(out, eye["likely_blink"].to_numpy())


def test_blink_mask_matches_allensdk_z2_d4() -> None:
    eye = load(EYE_Z2_D4, "BehaviorSession__from_nwb_path(z=2,d=4)__eye_tracking")
    out = C.blink_mask(
        eye["eye_area_raw"].to_numpy(),
        eye["pupil_area_raw"].to_numpy(),
        z_threshold=2.0,
        dilation_frames=4,
    )
    np.testing.assert_array_equal(out, eye["likely_blink"].to_numpy())
    default = load(DEFAULT, "eye_tracking")["likely_blink"].to_numpy()
    assert out.sum() > default.sum()


# ---------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------

WEIGHTS_SCALE_2 = [
    0.332598, 0.293517, 0.201731, 0.107979, 0.045012, 0.014613, 0.003695, 0.000728,
    0.000112, 1.3e-05, 1e-06,
] + [0.0] * 9  # fmt: skip


def test_event_filter_weights_scale_2() -> None:
    w = C.event_filter_weights(2.0)
    assert w.shape == (20,)
    np.testing.assert_allclose(w, WEIGHTS_SCALE_2, rtol=0, atol=5e-7)
    assert math.isclose(w.sum(), 1.0, rel_tol=1e-15)
    np.testing.assert_array_equal(C.event_filter_weights(2 / 31 * 31, 20), w)


@pytest.mark.parametrize(("scale", "n"), [(2.0, 20), (2 / 31 * 11, 20), (0.37, 5), (9.5, 1)])
def test_event_filter_weights_are_scipy_halfnorm(scale: float, n: int) -> None:
    """The AllenSDK's weights, ``scipy.stats.halfnorm`` (not imported when opening), to the bit."""
    import scipy.stats

    w = scipy.stats.halfnorm(loc=0, scale=scale).pdf(np.arange(n))
    np.testing.assert_array_equal(C.event_filter_weights(scale, n), w / np.sum(w))


@pytest.mark.parametrize(
    ("scale", "n"), [(2.0, 0), (2.0, -3), (0.0, 20), (-1.0, 20), (float("nan"), 20)]
)
def test_event_filter_weights_rejects_bad_parameters(scale: float, n: int) -> None:
    with pytest.raises(ValueError, match="n_time_steps|scale_timesteps"):
        C.event_filter_weights(scale, n)


def test_event_filter_single_step_is_identity() -> None:
    x = np.random.default_rng(1).random((3, 50))
    np.testing.assert_array_equal(C.filter_events(x, C.event_filter_weights(1.3, 1)), x)


@pytest.mark.parametrize("shape", [(200,), (4, 200), (2, 3, 57), (5, 7)])
def test_filter_events_equals_convolve(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.exponential(size=shape) * (rng.random(shape) < 0.1)
    w = C.event_filter_weights(2.0)
    out = C.filter_events(x, w)
    assert out.shape == x.shape
    assert out.dtype == np.float64
    rows = x.reshape(-1, shape[-1])
    expected = np.stack([np.convolve(r, w)[: r.size] for r in rows]).reshape(shape)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-14)


def test_filter_events_nan_propagation_and_empty() -> None:
    w = C.event_filter_weights(2.0, 5)
    x = np.zeros((3, 12))
    x[1] = np.nan
    x[2, 3] = np.nan
    out = C.filter_events(x, w)
    np.testing.assert_array_equal(out[0], 0.0)
    assert np.isnan(out[1]).all()
    np.testing.assert_array_equal(np.isnan(out[2]), [F, F, F, T, T, T, T, T, F, F, F, F])
    assert C.filter_events(np.zeros((0, 10)), w).shape == (0, 10)
    assert C.filter_events(np.zeros((4, 0)), w).shape == (4, 0)


def test_filtered_events_match_allensdk() -> None:
    events = load(DEFAULT, "events")
    metadata = load(DEFAULT, "metadata")
    scale = 2 / 31 * metadata["ophys_frame_rate"]
    raw = np.stack(events["events"].to_numpy())
    expected = np.stack(events["filtered_events"].to_numpy())
    out = C.filter_events(raw, C.event_filter_weights(scale))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------
# stimulus presentations
# ---------------------------------------------------------------------------------------


def _flashes_loop(names: np.ndarray, omitted: np.ndarray, is_change: np.ndarray) -> np.ndarray:
    """Literal port of AllenSDK ``get_flashes_since_change``."""
    out = np.zeros(len(names), dtype=int)
    for i in range(len(names)):
        om = False if np.isnan(omitted[i]) else bool(omitted[i])
        if names[i] == "omitted" or om:
            out[i] = out[i - 1]
        elif is_change[i] or i == 0:
            out[i] = 0
        else:
            out[i] = out[i - 1] + 1
    return out


def test_change_and_flashes_match_allensdk() -> None:
    pres = load(DEFAULT, "stimulus_presentations")
    names = pres["image_name"].to_numpy(dtype=object)
    omitted = pres["omitted"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    is_change = C.is_change_event(names, omitted)
    np.testing.assert_array_equal(is_change, pres["is_change"].to_numpy())
    fsc = C.flashes_since_change(names, omitted, is_change)
    assert fsc.dtype == np.int64
    np.testing.assert_array_equal(fsc, pres["flashes_since_change"].to_numpy())
    # bool omitted gives the same answer
    np.testing.assert_array_equal(C.is_change_event(names, omitted == 1.0), is_change)


def test_is_change_event_semantics() -> None:
    nan = np.nan
    names = np.array(
        ["a", "a", "omitted", "b", "b", "", "", "b", "c", "c", None, "c"], dtype=object
    )
    omitted = np.array([0, 0, 1, 0, 0, nan, nan, 0, 0, 0, 0, 0], dtype=float)
    expected = [F, F, F, T, F, F, F, F, T, F, T, T]
    np.testing.assert_array_equal(C.is_change_event(names, omitted), expected)
    fsc = C.flashes_since_change(names, omitted, np.array(expected))
    np.testing.assert_array_equal(fsc, [0, 1, 1, 0, 1, 2, 3, 4, 0, 1, 0, 0])
    np.testing.assert_array_equal(fsc, _flashes_loop(names, omitted, np.array(expected)))
    # the first participating row is never a change, even after excluded rows
    np.testing.assert_array_equal(
        C.is_change_event(np.array(["", "x", "y"], dtype=object), np.array([nan, 0, 0])),
        [F, F, T],
    )
    assert C.is_change_event(np.array([], dtype=object), np.array([])).shape == (0,)
    assert C.flashes_since_change(np.array([], dtype=object), np.array([]), np.array([])).size == 0


def test_flashes_since_change_matches_loop_on_random_sequences() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(1, 80))
        names = rng.choice(
            np.array(["a", "b", "omitted", ""], dtype=object), n, p=[0.4, 0.4, 0.1, 0.1]
        )
        omitted = np.where(names == "omitted", 1.0, np.where(names == "", np.nan, 0.0))
        is_change = C.is_change_event(names, omitted)
        np.testing.assert_array_equal(
            C.flashes_since_change(names, omitted, is_change),
            _flashes_loop(names, omitted, is_change),
        )


# ---------------------------------------------------------------------------------------
# behaviour performance: AllenSDK unit cases (test_dprime.py, test_trials_processing.py)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hr", "far", "expected"),
    [
        (1.0, 1.0, 0.0),
        (0.5, 0.5, 0.0),
        (0.25, 0.5, -0.6744897501960817),
        (0.5, 0.25, 0.6744897501960817),
    ],
)
def test_dprime_table(hr: float, far: float, expected: float) -> None:
    assert math.isclose(float(C.dprime(hr, far)), expected, rel_tol=1e-12, abs_tol=1e-12)


def test_dprime_is_scipy_norm_ppf() -> None:
    """The AllenSDK's ``norm.ppf(hr) - norm.ppf(far)``, to the bit, without scipy.stats."""
    import scipy.stats

    rng = np.random.default_rng(4)
    hr, far = rng.random(500), rng.random(500)
    clip = lambda x: np.clip(x, 0.01, 0.99)
    expected = scipy.stats.norm.ppf(clip(hr)) - scipy.stats.norm.ppf(clip(far))
    np.testing.assert_array_equal(C.dprime(hr, far), expected)


def test_dprime_flips_sign_and_propagates_nan() -> None:
    rng = np.random.default_rng(3)
    hr, far = rng.random(100), rng.random(100)
    hr[::7] = np.nan
    d = C.dprime(hr, far)
    np.testing.assert_array_equal(np.isnan(d), np.isnan(hr))
    np.testing.assert_allclose(C.dprime(far, hr), -d, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        C.dprime(np.array([0.0, 1.0]), np.array([0.001, 0.5])),
        C.dprime(np.array([0.01, 0.99]), np.array([0.01, 0.5])),
    )
    with pytest.raises(ValueError, match="limits"):
        C.dprime(hr, far, limits=(0.0, 0.99))


def test_get_hit_and_false_alarm_rate() -> None:
    hit = np.array([0, 1, 0, 0, 0, 1], bool)
    miss = np.array([1, 0, 0, 0, 1, 0], bool)
    aborted = np.array([0, 0, 1, 1, 0, 0], bool)
    none = np.zeros(6, bool)
    expected = [0.0, 0.5, 1 / 3, 2 / 3]
    rates = C.rolling_rates(hit, miss, none, none, aborted, window=3)
    np.testing.assert_allclose(rates["hit_rate_raw"][~aborted], expected, rtol=1e-15)
    assert np.isnan(rates["hit_rate_raw"][aborted]).all()
    fa = C.rolling_rates(none, none, hit, miss, aborted, window=3)
    np.testing.assert_allclose(fa["false_alarm_rate_raw"][~aborted], expected, rtol=1e-15)
    assert np.isnan(fa["hit_rate_raw"]).all()


def test_rolling_dprime_unit_uncorrected() -> None:
    hit = np.array([0, 0, 1, 0, 0, 1], bool)
    miss = np.array([1, 1, 0, 0, 0, 0], bool)
    fa = np.zeros(6, bool)
    cr = np.array([0, 0, 0, 1, 1, 0], bool)
    rates = C.rolling_rates(hit, miss, fa, cr, np.zeros(6, bool), window=3)
    d = C.dprime(rates["hit_rate_raw"], rates["false_alarm_rate_raw"])
    np.testing.assert_allclose(
        d, [np.nan, np.nan, np.nan, 2.326348, 4.652696, 4.652696], rtol=0, atol=1e-6
    )


def test_trial_number_limit() -> None:
    p = np.array([0.0, 1.0, 0.5, np.nan, 0.3, 0.0, 0.9])
    n = np.array([1.0, 4.0, 0.0, 3.0, 10.0, 0.0, 100.0])
    np.testing.assert_array_equal(
        C.trial_number_limit(p, n), [0.5, 0.875, np.nan, np.nan, 0.3, np.nan, 0.9]
    )


@pytest.mark.parametrize(
    ("licks", "rw0", "expected"),
    [
        ([[1.1], [2.1, 2.2], [3.3, 3.4], [4.4]], 0.0, [0.1, 0.1, 0.3, 0.4]),
        ([[1.1], [], [3.3, 3.4], [4.4]], 0.0, [0.1, np.inf, 0.3, 0.4]),
        ([[1.1], [], [3.3, 3.4], [4.4]], 0.15, [np.inf, np.inf, 0.3, 0.4]),
        # not in the AllenSDK suite: the second lick of trial 2 is 0.2 s > 0.15 s late
        ([[1.1], [2.1, 2.2], [3.3, 3.4], [4.4]], 0.15, [np.inf, 0.2, 0.3, 0.4]),
    ],
)
def test_calculate_response_latency_list(
    licks: list[list[float]], rw0: float, expected: list[float]
) -> None:
    change = np.array([1.0, 2.0, 3.0, 4.0])
    flat = np.array([t for trial in licks for t in trial])
    counts = np.array([len(trial) for trial in licks])
    out = C.response_latencies(change, flat, counts, rw0)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_response_latency_first_in_list_order_and_nan_change() -> None:
    out = C.response_latencies(
        np.array([0.0, np.nan, 10.0]),
        np.array([0.9, 0.3, 1.0, 10.05]),
        np.array([2, 1, 1]),
        0.15,
    )
    np.testing.assert_array_equal(out, [0.9, np.inf, np.inf])
    with pytest.raises(ValueError, match="lick_counts"):
        C.response_latencies(np.zeros(2), np.zeros(3), np.array([1, 1]), 0.0)


@pytest.mark.parametrize(
    ("thresh", "expected"),
    [(-1.0, [T, T, T, T]), (1.0, [F, F, T, T]), (3.0, [F, F, F, F])],
)
def test_trial_masks_reward_rate(thresh: float, expected: list[bool]) -> None:
    np.testing.assert_array_equal(C.engaged(np.array([0.0, 1.0, 2.0, 3.0]), thresh), expected)


def test_engaged_nan_is_false() -> None:
    np.testing.assert_array_equal(C.engaged(np.array([np.nan, 5.0]), 2.0), [F, T])


def _reward_rate_loop(
    latency: np.ndarray,
    start: np.ndarray,
    window: float = 0.75,
    trial_window: int = 25,
    initial_trials: int = 10,
) -> np.ndarray:
    """Literal port of AllenSDK ``calculate_reward_rate`` (warnings silenced)."""
    rr = np.zeros(len(latency))
    rr[:initial_trials] = np.inf
    for k in range(initial_trials, len(latency)):
        lo, hi = max(0, k - trial_window), min(k + trial_window, len(latency))
        correct = int(np.sum(latency[lo:hi] < window))
        with np.errstate(divide="ignore", invalid="ignore"):
            rr[k] = correct / np.float64(start[hi - 1] - start[lo]) * 60
    rr[np.isinf(rr)] = np.nan
    return rr


@pytest.mark.parametrize("trial_window", [1, 5, 15, 25, 300])
def test_reward_rate_matches_loop(trial_window: int) -> None:
    rng = np.random.default_rng(trial_window)
    n = 200
    latency = np.where(rng.random(n) < 0.4, rng.random(n) * 1.2, np.inf)
    latency[rng.random(n) < 0.1] = np.nan
    start = np.cumsum(rng.uniform(2, 9, n))
    out = C.reward_rate(latency, start, trial_window=trial_window)
    np.testing.assert_array_equal(out, _reward_rate_loop(latency, start, trial_window=trial_window))
    assert np.isnan(out[:10]).all()


def test_reward_rate_zero_elapsed_gives_nan_without_warning() -> None:
    start = np.zeros(14)
    latency = np.r_[np.full(7, 0.2), np.full(7, np.inf)]
    out = C.reward_rate(latency, start, trial_window=2, initial_trials=0)
    assert np.isnan(out).all()  # x/0 -> inf -> NaN, 0/0 -> NaN
    assert C.reward_rate(np.zeros(0), np.zeros(0)).shape == (0,)
    assert np.isnan(C.reward_rate(np.zeros(5), np.arange(5.0))).all()


def _rolling_pandas(
    hit: np.ndarray, miss: np.ndarray, aborted: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    resp = np.full(int((~aborted).sum()), np.nan)
    resp[hit[~aborted]] = 1
    resp[miss[~aborted]] = 0
    roll = pd.Series(resp).rolling(window=window, min_periods=0)
    return roll.mean().to_numpy(), roll.count().to_numpy()


@pytest.mark.parametrize("window", [1, 3, 10, 100])
def test_rolling_rates_match_pandas(window: int) -> None:
    rng = np.random.default_rng(window)
    n = 400
    kind = rng.choice(5, n, p=[0.3, 0.3, 0.1, 0.1, 0.2])  # hit, miss, fa, cr, other
    aborted = rng.random(n) < 0.3
    hit, miss, fa, cr = (kind == i for i in range(4))
    rates = C.rolling_rates(hit, miss, fa, cr, aborted, window=window)
    assert list(rates) == ["hit_rate_raw", "hit_rate", "false_alarm_rate_raw", "false_alarm_rate"]
    for name, yes, no in (("hit_rate", hit, miss), ("false_alarm_rate", fa, cr)):
        raw, count = _rolling_pandas(yes, no, aborted, window)
        np.testing.assert_array_equal(rates[f"{name}_raw"][~aborted], raw)
        np.testing.assert_array_equal(rates[name][~aborted], C.trial_number_limit(raw, count))
        assert np.isnan(rates[name][aborted]).all()


def _trial_arrays(trials: pd.DataFrame) -> dict[str, np.ndarray]:
    licks = [np.asarray(x, dtype=float) for x in trials["lick_times"]]
    return {
        "hit": trials["hit"].to_numpy(),
        "miss": trials["miss"].to_numpy(),
        "false_alarm": trials["false_alarm"].to_numpy(),
        "correct_reject": trials["correct_reject"].to_numpy(),
        "aborted": trials["aborted"].to_numpy(),
        "change_time": trials["change_time"].to_numpy(),
        "lick_times": np.concatenate(licks) if licks else np.zeros(0),
        "lick_counts": np.array([x.size for x in licks], dtype=np.int64),
        "start_time": trials["start_time"].to_numpy(),
        "reward_volume": trials["reward_volume"].to_numpy(),
    }


@pytest.mark.parametrize("is_passive", [True, False])
def test_construct_rolling_performance_df(is_passive: bool) -> None:
    """AllenSDK ``trials_example``: passive -> every rolling_dprime is 0."""
    none = np.zeros(4, bool)
    out = C.rolling_performance(
        hit=none,
        miss=np.array([T, F, T, T]),
        false_alarm=none,
        correct_reject=np.array([F, T, F, F]),
        aborted=none,
        change_time=np.array([1.0, 2.0, 3.0, 4.0]),
        lick_times=np.zeros(0),
        lick_counts=np.zeros(4, np.int64),
        start_time=np.array(
            [368.305066913832, 378.0631642451044, 386.31999971927144, 394.57686825376004]
        ),
        reward_volume=np.zeros(4) if is_passive else np.array([0, 0.25, 0, 0]),
        response_window_start=0.15,
    )
    if is_passive:
        assert np.all(out["rolling_dprime"] == 0.0)
    else:
        assert not np.all(out["rolling_dprime"] == 0.0)


def test_passive_override_keeps_aborted_nan() -> None:
    n = 30
    rng = np.random.default_rng(11)
    kind = rng.choice(4, n)
    aborted = np.zeros(n, bool)
    aborted[[2, 5, 17]] = True
    common = {
        "hit": kind == 0, "miss": kind == 1, "false_alarm": kind == 2,
        "correct_reject": kind == 3, "aborted": aborted,
        "change_time": np.arange(n) * 5.0 + 1, "start_time": np.arange(n) * 5.0,
        "response_window_start": 0.15,
    }  # fmt: skip
    passive = C.rolling_performance(
        **common, lick_times=np.zeros(0), lick_counts=np.zeros(n, int),
        reward_volume=np.zeros(n),
    )  # fmt: skip
    assert list(passive) == list(C.ROLLING_PERFORMANCE_KEYS)
    np.testing.assert_array_equal(passive["rolling_dprime"][~aborted], 0.0)
    assert np.isnan(passive["rolling_dprime"][aborted]).all()
    assert np.isnan(passive["reward_rate"][:10]).all()
    np.testing.assert_array_equal(passive["reward_rate"][10:], 0.0)  # no licks, no "correct"
    active = C.rolling_performance(
        **common, lick_times=np.array([1.3]), lick_counts=np.r_[1, np.zeros(n - 1, int)],
        reward_volume=np.zeros(n),
    )  # fmt: skip
    assert not np.all(active["rolling_dprime"][~aborted] == 0)


# ---------------------------------------------------------------------------------------
# behaviour performance: AllenSDK reference on the fixture
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_rolling() -> dict[str, np.ndarray]:
    trials = load(DEFAULT, "trials")
    rw0 = load(DEFAULT, "task_parameters")["response_window_sec"][0]
    return C.rolling_performance(**_trial_arrays(trials), response_window_start=rw0)


def test_reward_rate_matches_allensdk(tiny_rolling: dict[str, np.ndarray]) -> None:
    expected = load(DEFAULT, "get_reward_rate")
    np.testing.assert_array_equal(np.isnan(tiny_rolling["reward_rate"]), np.isnan(expected))
    np.testing.assert_allclose(tiny_rolling["reward_rate"], expected, rtol=0, atol=1e-12)


def test_rolling_performance_matches_allensdk(tiny_rolling: dict[str, np.ndarray]) -> None:
    expected = load(DEFAULT, "get_rolling_performance_df")
    assert list(tiny_rolling) == list(expected.columns) == list(C.ROLLING_PERFORMANCE_KEYS)
    for col in expected.columns:
        ref = expected[col].to_numpy(dtype=float)
        got = tiny_rolling[col]
        assert got.shape == ref.shape
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=col)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, err_msg=col)


@pytest.mark.parametrize(
    ("threshold", "name"),
    [
        (2.0, "get_performance_metrics"),
        (1, "get_performance_metrics(engaged_trial_reward_rate_threshold=1)"),
        (3, "get_performance_metrics(engaged_trial_reward_rate_threshold=3)"),
    ],
)
def test_performance_metrics_match_allensdk(
    tiny_rolling: dict[str, np.ndarray], threshold: float, name: str
) -> None:
    trials = load(DEFAULT, "trials")
    rewards = load(DEFAULT, "rewards")
    expected = load(DEFAULT, name)
    flags = ("go", "catch", "hit", "miss", "false_alarm", "correct_reject", "auto_rewarded")
    got = C.performance_metrics(
        rolling=tiny_rolling,
        **{f: trials[f].to_numpy() for f in flags},
        rewards_volume=rewards["volume"].to_numpy(),
        engaged_trial_reward_rate_threshold=threshold,
    )
    assert list(got) == list(expected) == list(C.PERFORMANCE_METRIC_KEYS)
    for key, value in got.items():
        ref = expected[key]
        if key.endswith("_count"):
            assert type(value) is int, key
            assert value == ref, key
        else:
            assert type(value) is float, key
            assert _same(value, ref) or math.isclose(value, ref, abs_tol=1e-12), key


def test_performance_metrics_empty_selections() -> None:
    n = 4
    rolling = {k: np.full(n, np.nan) for k in C.ROLLING_PERFORMANCE_KEYS}
    no = np.zeros(n, bool)
    got = C.performance_metrics(
        rolling=rolling, go=no, catch=no, hit=no, miss=no, false_alarm=no,
        correct_reject=no, auto_rewarded=no, rewards_volume=np.zeros(0),
    )  # fmt: skip
    assert got["trial_count"] == n
    assert got["total_reward_count"] == 0
    assert got["total_reward_volume"] == 0.0
    assert got["engaged_trial_count"] == 0
    for key in C.PERFORMANCE_METRIC_KEYS[11:]:
        if key != "engaged_trial_count":
            assert math.isnan(got[key]), key
    empty = {k: np.zeros(0) for k in C.ROLLING_PERFORMANCE_KEYS}
    none = np.zeros(0, bool)
    got = C.performance_metrics(
        rolling=empty, go=none, catch=none, hit=none, miss=none, false_alarm=none,
        correct_reject=none, auto_rewarded=none, rewards_volume=np.zeros(0),
    )  # fmt: skip
    assert got["trial_count"] == 0
    assert math.isnan(got["maximum_reward_rate"])
