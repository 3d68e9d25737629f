"""Behavior performance on the session Dataset (xarray layer over ``_compute``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from ophys_xr import _compute, _options
from ophys_xr.exceptions import OptionError
from ophys_xr.variables import validate

__all__ = [
    "PERFORMANCE_METRIC_KEYS",
    "ROLLING_PERFORMANCE_KEYS",
    "performance",
    "reward_rate",
    "trial_licks",
]

PERFORMANCE_METRIC_KEYS = _compute.PERFORMANCE_METRIC_KEYS
ROLLING_PERFORMANCE_KEYS = _compute.ROLLING_PERFORMANCE_KEYS

_TRIAL_VARS = ("trials_start_time", "change_time", "go",
               "catch", "hit", "miss", "false_alarm", "correct_reject", "aborted",
               "auto_rewarded", "reward_volume")

_DESCRIPTIONS = {
    "reward_rate": (
        ("Rewards per minute in a centred window of 50 trials (AllenSDK get_reward_rate; NaN "
        "for the first 10 trials)"),
        "1/min",
    ),
    "hit_rate_raw": ("Hit rate over the last 100 non-aborted trials", ""),
    "hit_rate": ("Hit rate bounded to [1/2N, 1-1/2N] (trial-count corrected)", ""),
    "false_alarm_rate_raw": ("False-alarm rate over the last 100 non-aborted trials", ""),
    "false_alarm_rate": ("False-alarm rate bounded to [1/2N, 1-1/2N]", ""),
    "rolling_dprime": ("d' of the corrected hit and false-alarm rates (0 in passive sessions)",
                       ""),
    "engaged": ("reward_rate above the engagement threshold", ""),
}


def _response_window_start(ds: xr.Dataset) -> float:
    try:
        params = json.loads(ds.attrs["task_parameters"])
        return float(params["response_window_sec"][0])
    except (KeyError, TypeError, ValueError, IndexError) as err:
        msg = (
            "performance needs task_parameters['response_window_sec'] in ds.attrs "
            f"['task_parameters'] (JSON); got {ds.attrs.get('task_parameters')!r}"
        )
        raise OptionError(msg) from err


def trial_licks(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The licks of the Dataset's trials as a contiguous ragged array, in trial order.

    Uses ``lick_times_trials_id``, so it stays right after selecting trials
    (``ds.isel(trials_id=...)``) or licks.

    Returns
    -------
    lick_times, counts
        Flat lick times ordered by trial, and how many belong to each trial.
    """
    validate(ds, ("lick_times", "lick_times_trials_id", "trials_id"), purpose="trial licks")
    trial_ids = np.asarray(ds["trials_id"].values)
    position = pd.Index(trial_ids).get_indexer(np.asarray(ds["lick_times_trials_id"].values))
    keep = position >= 0
    order = np.argsort(position[keep], kind="stable")
    times = np.asarray(ds["lick_times"].values)[keep][order]
    counts = np.bincount(position[keep], minlength=trial_ids.size).astype(np.int64)
    return times, counts


def _rolling(ds: xr.Dataset) -> dict[str, np.ndarray]:
    validate(ds, _TRIAL_VARS, purpose="performance")
    t = {name: np.asarray(ds[name].values) for name in _TRIAL_VARS}
    lick_times, lick_counts = trial_licks(ds)
    return _compute.rolling_performance(
        hit=t["hit"], miss=t["miss"], false_alarm=t["false_alarm"],
        correct_reject=t["correct_reject"], aborted=t["aborted"], change_time=t["change_time"],
        lick_times=lick_times, lick_counts=lick_counts,
        start_time=t["trials_start_time"], reward_volume=t["reward_volume"],
        response_window_start=_response_window_start(ds),
    )


def reward_rate(ds: xr.Dataset) -> xr.DataArray:
    """Reward rate per trial, as the AllenSDK's ``get_reward_rate()``.

    Returns
    -------
    xarray.DataArray
        float64 along ``trials_id``, rewards per minute.
    """
    rolling = _rolling(ds)
    text, units = _DESCRIPTIONS["reward_rate"]
    return xr.DataArray(rolling["reward_rate"], dims=("trials_id",),
                        coords={"trials_id": ds["trials_id"].values}, name="reward_rate",
                        attrs={"description": text, "units": units})


def performance(
    ds: xr.Dataset, *, engaged_trial_reward_rate_threshold: float = 2.0
) -> xr.Dataset:
    """Behavior performance: the AllenSDK's performance metrics and rolling performance.

    Parameters
    ----------
    ds
        A session Dataset (its trials, rewards and task parameters are used).
    engaged_trial_reward_rate_threshold
        A trial is engaged when its reward rate is strictly above this (rewards/min).

    Returns
    -------
    xarray.Dataset
        Every key of ``get_performance_metrics()`` as a 0-d variable of the same name, and
        along ``trials_id`` the columns of ``get_rolling_performance_df()``
        (``reward_rate``, ``hit_rate_raw``, ``hit_rate``, ``false_alarm_rate_raw``,
        ``false_alarm_rate``, ``rolling_dprime``) plus ``engaged``.  Passive sessions (no
        rewards, no licks) get ``rolling_dprime`` 0, as in the AllenSDK.
    """
    threshold = _options.number(engaged_trial_reward_rate_threshold,
                                "engaged_trial_reward_rate_threshold")
    rolling = _rolling(ds)
    validate(ds, "rewards_volume", purpose="performance")
    flags = {name: np.asarray(ds[name].values) for name in
             ("go", "catch", "hit", "miss", "false_alarm", "correct_reject", "auto_rewarded")}
    metrics = _compute.performance_metrics(
        rolling=rolling, rewards_volume=np.asarray(ds["rewards_volume"].values),
        engaged_trial_reward_rate_threshold=float(threshold), **flags,
    )
    coords = {"trials_id": ds["trials_id"].values}
    out = xr.Dataset(coords=coords)
    for key in ROLLING_PERFORMANCE_KEYS:
        text, units = _DESCRIPTIONS[key]
        attrs = {"description": text} | ({"units": units} if units else {})
        out[key] = xr.DataArray(rolling[key], dims=("trials_id",), attrs=attrs)
    out["engaged"] = xr.DataArray(
        _compute.engaged(rolling["reward_rate"], float(threshold)), dims=("trials_id",),
        attrs={"description": _DESCRIPTIONS["engaged"][0]})
    for key, value in metrics.items():
        dtype = np.int64 if isinstance(value, int) else np.float64
        out[key] = xr.DataArray(np.asarray(value, dtype=dtype),
                                attrs={"description": f"AllenSDK get_performance_metrics()"
                                                      f"['{key}']"})
    out.attrs["engaged_trial_reward_rate_threshold"] = float(threshold)
    return out
