"""Stimulus presentations: change flashes and flashes since the last change.

As AllenSDK 2.16.2 ``is_change_event`` and ``get_flashes_since_change`` compute them.
"""

from __future__ import annotations

import numpy as np

from ophys_xr._compute._helpers import _as_bool_1d, _same_length

__all__ = ["flashes_since_change", "is_change_event"]


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
    none = np.array([v is None for v in names.ravel()], dtype=bool).reshape(names.shape)
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
