"""Eye tracking: blink detection and filtering (xarray layer over ``_compute``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr import _compute, _options
from ophys_xr.exceptions import MissingDataError
from ophys_xr.variables import GROUPS, SPECS

__all__ = ["BLINK_MASKED", "EYE_VARIABLES", "blink_filter", "blink_updates"]

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
    updates = blink_updates(ds.variables, z_threshold, dilation_frames)
    out = ds.assign(updates)
    out.attrs["eye_tracking_z_threshold"] = float(z_threshold)
    out.attrs["eye_tracking_dilation_frames"] = int(dilation_frames)
    if merge:
        return out
    eye_vars = [n for n in EYE_VARIABLES if n in out.data_vars]
    return out[eye_vars]


def _blink_data(eye: Any, pupil: Any, z: float, d: int) -> Any:
    """``likely_blink`` of the raw eye and pupil areas (1-D, numpy or dask); on dask one
    task over the whole session (the z-scores need every frame)."""
    if hasattr(eye, "dask") or hasattr(pupil, "dask"):
        import dask.array as da

        eye, pupil = da.asarray(eye).rechunk(-1), da.asarray(pupil).rechunk(-1)
        return da.map_blocks(_blink_kernel, eye, pupil, z=z, d=d, dtype=bool,
                             meta=np.array((), dtype=bool))
    return _blink_kernel(np.asarray(eye), np.asarray(pupil), z=z, d=d)


def _where(keep: Any, data: Any) -> Any:
    """``data`` where ``keep``, else NaN; dask if either is (one elementwise task a block)."""
    if hasattr(keep, "dask") or hasattr(data, "dask"):
        import dask.array as da

        return da.where(keep, data, np.nan)
    return np.where(keep, data, np.nan)


def blink_updates(variables: Mapping[Any, xr.Variable], z_threshold: float,
                  dilation_frames: int) -> dict[str, xr.Variable]:
    """``likely_blink`` and the blink-masked eye variables, from the session's variables.

    The variable-level core of :func:`blink_filter`, also used by the session builder
    (:mod:`ophys_xr.model`) before it makes the Dataset; parameters already checked.

    Parameters
    ----------
    variables
        The session's variables (``ds.variables`` or the builder's mapping), with
        ``eye_area_raw``, ``pupil_area_raw``, ``cr_area_raw`` and the variables of
        :data:`BLINK_MASKED`.
    z_threshold, dilation_frames
        Blink-detection parameters.

    Returns
    -------
    dict
        Name -> new ``xarray.Variable`` (schema attrs, no encoding); lazy on dask input.
    """
    eye, pupil = variables["eye_area_raw"], variables["pupil_area_raw"]
    blink = xr.Variable(eye.dims, _blink_data(eye.data, pupil.data, float(z_threshold),
                                              int(dilation_frames)))
    keep = ~blink.data
    dims = blink.dims
    updates: dict[str, xr.Variable] = {"likely_blink": xr.Variable(dims, blink.data)}
    for part in ("cr", "eye", "pupil"):
        updates[f"{part}_area"] = xr.Variable(
            dims, _where(keep, variables[f"{part}_area_raw"].data))
    for name in BLINK_MASKED:
        if not name.endswith("_area"):
            updates[name] = xr.Variable(dims, _where(keep, variables[name].data))
    for name, value in updates.items():
        value.attrs = SPECS[name].attrs()
    return updates
