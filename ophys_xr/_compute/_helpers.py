"""Input checks and NaN-aware reductions shared by the kernels of ``ophys_xr._compute``."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_bool_1d(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D bool array; ``ValueError`` naming ``name`` if not 1-D."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        msg = f"{name} must be 1-D, got shape {arr.shape}"
        raise ValueError(msg)
    return arr.astype(bool)


def _as_float_1d(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; ``ValueError`` naming ``name`` if not 1-D."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        msg = f"{name} must be 1-D, got shape {arr.shape}"
        raise ValueError(msg)
    return arr


def _same_length(**arrays: np.ndarray) -> int:
    """The common length of the named arrays (0 for none); ``ValueError`` if they differ."""
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
