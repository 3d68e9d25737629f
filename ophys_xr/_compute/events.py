"""Filtered events: the causal half-normal event filter.

As AllenSDK 2.16.2 ``filter_events_array`` computes it.
"""

from __future__ import annotations

import numpy as np

from ophys_xr import _options

__all__ = ["event_filter_weights", "filter_events"]


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
    ophys_xr.exceptions.OptionError
        (A ``ValueError``.)  For ``n_time_steps < 1`` or a ``scale_timesteps`` that is
        not a finite number ``> 0``.
    """
    n_time_steps = _options.integer(n_time_steps, "n_time_steps", minimum=1)
    scale = _options.positive_number(scale_timesteps, "scale_timesteps")
    # scipy.stats.halfnorm(loc=0, scale).pdf, operation for operation (the same floats),
    # without importing scipy.stats when a session is opened (the cost of that import:
    # benchmarks/RESULTS.md, bench_open)
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
