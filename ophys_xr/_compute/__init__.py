"""Pure-numpy numeric kernels reproducing the AllenSDK 2.16.2 derived quantities.

Every function here works on plain :class:`numpy.ndarray` inputs (no xarray, no pandas)
and reproduces one AllenSDK (or Allen analysis helper) algorithm exactly, including its
quirks.  One module per domain:

* :mod:`~ophys_xr._compute.eye` — blink detection (``determine_outliers`` /
  ``determine_likely_blinks``);
* :mod:`~ophys_xr._compute.events` — the causal half-normal event filter
  (``filter_events_array``);
* :mod:`~ophys_xr._compute.presentations` — ``is_change_event`` /
  ``get_flashes_since_change`` of the stimulus presentations;
* :mod:`~ophys_xr._compute.performance` — behaviour performance: response latency, reward
  rate, rolling hit / false-alarm rates, the Macmillan & Creelman trial-count limit, d′,
  the passive-session d′ override and ``get_performance_metrics``;
* :mod:`~ophys_xr._compute.eventlocked` — event-locked traces, window means, gray-screen
  shuffle p-values and the lick rate (brain_observatory_utilities);
* :mod:`~ophys_xr._compute.metrics` — response metrics (visual_behavior_analysis
  ``cell_metrics``).

The xarray layer (``ophys_xr.eye``, ``ophys_xr.cells``, ``ophys_xr.responses``,
``ophys_xr.metrics``, the NWB backend, ...) calls these kernels; they never emit numpy
``RuntimeWarning``s (empty means, ``0/0`` and ``x/0`` are handled explicitly).  Invalid
option values raise :class:`~ophys_xr.exceptions.OptionError` (a ``ValueError``) through
:mod:`ophys_xr._options`.  scipy is imported where it is used: ``import ophys_xr`` stays
fast.
"""

from __future__ import annotations

from ophys_xr._compute.eventlocked import (
    GRAY_SCREEN_SECONDS,
    eventlocked_gather,
    eventlocked_responses,
    eventlocked_time_array,
    gray_screen_null_means,
    index_of_nearest_value,
    interpolation_plan,
    lick_rate,
    mean_sampling_rate,
    nearest_plan,
    nearest_window_offsets,
    shuffle_p_values,
    window_mean,
    window_slice,
)
from ophys_xr._compute.events import event_filter_weights, filter_events
from ophys_xr._compute.eye import blink_mask, likely_blinks, outlier_mask
from ophys_xr._compute.metrics import (
    fraction_significant,
    group_labels,
    group_sums,
    grouped_lifetime_sparseness,
    grouped_reliability,
    image_preference,
    lifetime_sparseness,
    reliability,
    selectivity_index,
)
from ophys_xr._compute.performance import (
    PERFORMANCE_METRIC_KEYS,
    ROLLING_PERFORMANCE_KEYS,
    dprime,
    engaged,
    performance_metrics,
    response_latencies,
    reward_rate,
    rolling_performance,
    rolling_rates,
    trial_number_limit,
)
from ophys_xr._compute.presentations import flashes_since_change, is_change_event

__all__ = [
    "GRAY_SCREEN_SECONDS",
    "PERFORMANCE_METRIC_KEYS",
    "ROLLING_PERFORMANCE_KEYS",
    "blink_mask",
    "dprime",
    "engaged",
    "event_filter_weights",
    "eventlocked_gather",
    "eventlocked_responses",
    "eventlocked_time_array",
    "filter_events",
    "flashes_since_change",
    "fraction_significant",
    "gray_screen_null_means",
    "group_labels",
    "group_sums",
    "grouped_lifetime_sparseness",
    "grouped_reliability",
    "image_preference",
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
    "window_slice",
]
