"""Eye tracking: likely blinks.

As AllenSDK 2.16.2 ``determine_outliers`` / ``determine_likely_blinks`` compute them.
"""

from __future__ import annotations

import numpy as np

from ophys_xr import _options
from ophys_xr._compute._helpers import _as_bool_1d, _as_float_1d, _same_length

__all__ = ["blink_mask", "likely_blinks", "outlier_mask"]


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
    dilation_frames = _options.integer(dilation_frames, "dilation_frames", minimum=0)
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
        Outlier threshold on ``|z|`` (strict ``>``); must be a finite number ``> 0``.
    dilation_frames : int, default 2
        Blink dilation in frames on each side; must be an integer ``>= 0``.

    Returns
    -------
    numpy.ndarray
        Bool ``likely_blink`` per frame.

    Raises
    ------
    ophys_xr.exceptions.OptionError
        (A ``ValueError``.)  For a ``z_threshold`` that is not a finite number ``> 0`` or
        a negative / non-integer ``dilation_frames``.
    """
    z_threshold = _options.positive_number(z_threshold, "z_threshold")
    dilation_frames = _options.integer(dilation_frames, "dilation_frames", minimum=0)
    eye = _as_float_1d(eye_area_raw, "eye_area_raw")
    pupil = _as_float_1d(pupil_area_raw, "pupil_area_raw")
    _same_length(eye_area_raw=eye, pupil_area_raw=pupil)
    outliers = outlier_mask(np.column_stack((eye, pupil)), z_threshold)
    return likely_blinks(eye, pupil, outliers, dilation_frames)
