"""Eye tracking: blink detection and filtering (xarray layer over ``_compute``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ophys_xr import _compute, _options
from ophys_xr.exceptions import MissingDataError
from ophys_xr.variables import GROUPS, SPECS

__all__ = ["BLINK_MASKED", "EYE_VARIABLES", "blink_filter"]

#: Variables set to NaN at likely blinks (AllenSDK 2.14+ ``filter_on_blinks``).
BLINK_MASKED = (
    "eye_area", "pupil_area", "cr_area",
    "eye_width", "eye_height", "eye_phi",
    "pupil_width", "pupil_height", "pupil_phi",
)
#: The eye-tracking variables, in AllenSDK column order.
EYE_VARIABLES = GROUPS["eye_tracking"]


def _blink_kernel(eye_raw: np.ndarray, pupil_raw: np.ndarray, *, z: float, d: int) -> np.ndarray:
    return _compute.blink_mask(eye_raw, pupil_raw, z_threshold=z, dilation_frames=d)


def blink_filter(
    ds: xr.Dataset,
    *,
    z_threshold: float = 3.0,
    dilation_frames: int = 2,
    merge: bool = False,
) -> xr.Dataset:
    """Recompute ``likely_blink`` and mask the eye-tracking variables at blinks.

    As the AllenSDK's ``EyeTrackingTable.from_nwb``: z-scores of the raw eye and pupil
    areas over the whole session, frames with any ``|z| > z_threshold`` or a missing
    area are blinks, dilated by ``dilation_frames`` frames on each side.  Areas are
    taken from the ``*_area_raw`` variables and set to NaN at blinks; eye and pupil
    widths, heights and angles are set to NaN at blinks too.  Centres and the corneal
    reflection's width, height and angle are not masked.

    Parameters
    ----------
    ds
        A session Dataset with eye tracking.
    z_threshold
        Outlier threshold on the z-scored areas (> 0).
    dilation_frames
        Frames added before and after each blink (>= 0).
    merge
        Return the whole session with the eye variables replaced (True) or only the
        eye-tracking variables (False).

    Returns
    -------
    xarray.Dataset
        New object; lazy on dask input.  ``attrs`` record the parameters.

    Raises
    ------
    MissingDataError
        The session has no eye tracking.
    OptionError
        Invalid parameter values.
    """
    z_threshold = _options.positive_number(z_threshold, "z_threshold")
    dilation_frames = _options.integer(dilation_frames, "dilation_frames", minimum=0)
    if "eye_area_raw" not in ds or "pupil_area_raw" not in ds:
        msg = (
            "This session has no eye tracking (no NWB group acquisition/EyeTracking), so there "
            "is nothing to blink-filter. Check ds.attrs['ophys_xr_missing']."
        )
        raise MissingDataError(msg)
    blink = xr.apply_ufunc(
        _blink_kernel,
        ds["eye_area_raw"],
        ds["pupil_area_raw"],
        input_core_dims=[["eye_frame"], ["eye_frame"]],
        output_core_dims=[["eye_frame"]],
        dask="parallelized",
        output_dtypes=[bool],
        dask_gufunc_kwargs={"allow_rechunk": True},
        kwargs={"z": float(z_threshold), "d": int(dilation_frames)},
    )
    # masked as xarray Variables (one eye_frame dimension, nothing to align): the same
    # where as on DataArrays, without their coordinate handling, then one assign
    not_blink = ~blink.variable
    updates: dict[str, xr.Variable] = {"likely_blink": blink.variable.copy(deep=False)}
    for part in ("cr", "eye", "pupil"):
        updates[f"{part}_area"] = ds[f"{part}_area_raw"].variable.where(not_blink)
    for name in BLINK_MASKED:
        if not name.endswith("_area"):
            updates[name] = ds[name].variable.where(not_blink)
    for name, value in updates.items():
        value.attrs = SPECS[name].attrs()
        value.encoding = {}
    out = ds.assign(updates)
    out.attrs["eye_tracking_z_threshold"] = float(z_threshold)
    out.attrs["eye_tracking_dilation_frames"] = int(dilation_frames)
    if merge:
        return out
    eye_vars = [n for n in EYE_VARIABLES if n in out.data_vars]
    return out[eye_vars]
