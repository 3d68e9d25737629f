"""The one place that builds a session Dataset.

The NWB reader, the Zarr/netCDF reader and the test-data simulator hand their arrays to
:func:`build_session_dataset`, which looks every name up in the schema
(:mod:`ophys_xr.variables`), checks dims and dtypes, stamps units and descriptions,
completes what follows from the data alone (the trial of each lick time, the
segmentation mask image), checks that the session attributes are netCDF-safe, and indexes
``cell_roi_id``.  What depends on the opening options (:class:`~ophys_xr._options.
SessionOptions`: the ROIs kept, ``likely_blink``, ``filtered_events``) is then applied,
for every source alike, by :func:`apply_session_options`.
:func:`create_session_dataset` is the two in one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr._options import (
    DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
    DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    DEFAULT_EYE_TRACKING_DILATION_FRAMES,
    DEFAULT_EYE_TRACKING_Z_THRESHOLD,
    SessionOptions,
)
from ophys_xr.cells import filter_events, segmentation_mask_image
from ophys_xr.exceptions import SchemaError
from ophys_xr.eye import blink_filter
from ophys_xr.variables import (
    GROUPS,
    METADATA_ATTRS,
    SESSION_KINDS,
    SPECS,
    UNIQUE_LABELS,
    check_time_labels,
    check_unique_labels,
    dtype_ok,
    is_imaging,
    optional_variables,
    required_variables,
)

__all__ = [
    "DEFAULT_EVENTS_FILTER_N_TIME_STEPS",
    "DEFAULT_EVENTS_FILTER_SCALE_SECONDS",
    "METADATA_ATTRS",
    "SessionOptions",
    "apply_session_options",
    "build_session_dataset",
    "create_session_dataset",
    "missing_variables",
]

_SAFE_SCALARS = (str, int, float, np.integer, np.floating)


def _check_attr(key: str, value: object) -> object:
    """Return a netCDF-safe version of ``value`` or raise SchemaError."""
    if isinstance(value, bool | np.bool_):
        msg = f"session attribute {key!r} is a bool ({value!r}); netCDF cannot store bools"
        raise SchemaError(msg)
    if isinstance(value, _SAFE_SCALARS):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
        if items and all(isinstance(v, str) for v in items):
            return items
        if items and all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
            return items
    msg = (
        f"session attribute {key!r} = {value!r} ({type(value).__name__}) is not netCDF-safe; "
        "use str, int, float or a non-empty list of str or numbers (encode dicts as JSON)"
    )
    raise SchemaError(msg)


def _as_variable(name: str, value: Any) -> xr.Variable:
    spec = SPECS.get(name)
    if spec is None:
        msg = f"{name!r} is not a session variable; known variables: {sorted(SPECS)}"
        raise SchemaError(msg)
    if isinstance(value, xr.Variable | xr.DataArray):
        var = value.variable if isinstance(value, xr.DataArray) else value
        if var.dims != spec.dims:
            msg = f"variable {name!r} has dims {var.dims}, the schema expects {spec.dims}"
            raise SchemaError(msg)
        data = var.data
        encoding = dict(var.encoding)
    else:
        data = value
        encoding = {}
        if not hasattr(data, "ndim") or not hasattr(data, "dtype"):
            data = np.asarray(data)
        if data.ndim != len(spec.dims):
            msg = (
                f"variable {name!r} has {data.ndim} dimensions, the schema expects "
                f"{len(spec.dims)} {spec.dims}"
            )
            raise SchemaError(msg)
    dtype = np.dtype(data.dtype)
    if spec.dtype == "O" and dtype.kind in "UT":
        data = data.astype(object)
    elif not dtype_ok(spec, dtype):
        target = np.dtype(spec.dtype) if spec.dtype not in ("O", "numeric") else None
        if target is None or not np.can_cast(dtype, target, casting="same_kind"):
            msg = f"variable {name!r} has dtype {dtype}, the schema expects {spec.dtype}"
            raise SchemaError(msg)
        data = data.astype(target)
    return xr.Variable(spec.dims, data, attrs=spec.attrs(), encoding=encoding)


def missing_variables(present: Mapping[str, object] | xr.Dataset,
                      kind: str = "behavior_ophys") -> list[str]:
    """Optional schema variables of a session of ``kind`` that are not in ``present``."""
    names = set(present.variables) if isinstance(present, xr.Dataset) else set(present)
    return [n for n in optional_variables(kind) if n not in names]


def _kind(variables: Mapping[str, object], attrs: Mapping[str, Any]) -> str:
    """The session kind: ``attrs["session_kind"]``, else imaging if there are cells."""
    kind = attrs.get("session_kind")
    if kind is None:
        kind = "behavior_ophys" if any(n in variables for n in ("dff", "cell_specimen_id",
                                                                  "time")) else "behavior"
    if kind not in SESSION_KINDS:
        msg = f"session_kind must be one of {list(SESSION_KINDS)}, got {kind!r}"
        raise SchemaError(msg)
    return str(kind)


def build_session_dataset(variables: Mapping[str, Any], attrs: Mapping[str, Any]
                          ) -> xr.Dataset:
    """Build the session Dataset from arrays named as in the schema (no options applied).

    Parameters
    ----------
    variables
        Variable name -> array (numpy, dask, an ``xarray.Variable``/``DataArray``).  Dims
        come from the schema; every required variable must be present, except
        ``lick_times_trials_id`` and ``segmentation_mask_image``, which are computed from
        ``lick_times_count`` and ``roi_mask`` when absent.
    attrs
        Session attributes (see :data:`~ophys_xr.variables.METADATA_ATTRS`); ``None``
        values are dropped.

    Returns
    -------
    xarray.Dataset
        The session Dataset, lazy where the input is.

    Raises
    ------
    SchemaError
        An unknown name, a required variable missing, wrong dims/dtype, inconsistent
        dimension sizes, or an attribute that is not netCDF-safe.
    """
    unknown = [n for n in variables if n not in SPECS]
    if unknown:
        msg = f"{unknown} are not session variables; known variables: {sorted(SPECS)}"
        raise SchemaError(msg)
    kind = _kind(variables, attrs)
    computed = {"segmentation_mask_image", "lick_times_trials_id"}
    required = [n for n in required_variables(kind) if n not in variables and n not in computed]
    if required:
        msg = f"required variables of a {kind} session missing: {required}"
        raise SchemaError(msg)
    if kind == "behavior":
        imaging = [n for n in variables if is_imaging(n)]
        if imaging:
            msg = f"a behavior session (no imaging) cannot hold imaging variables {imaging}"
            raise SchemaError(msg)
    for group, names in GROUPS.items():
        base = [n for n in names if n in variables]
        if base and group == "stimulus_templates" and len(base) != len(names):
            msg = f"stimulus templates need all of {list(names)}, got only {base}"
            raise SchemaError(msg)

    coords: dict[str, xr.Variable] = {}
    data_vars: dict[str, xr.Variable] = {}
    for name, value in variables.items():
        var = _as_variable(name, value)
        (coords if SPECS[name].role == "coord" else data_vars)[name] = var

    clean_attrs = {k: _check_attr(k, v) for k, v in attrs.items() if v is not None}
    clean_attrs["session_kind"] = kind
    try:
        ds = xr.Dataset(data_vars, coords=coords, attrs=clean_attrs)
    except ValueError as err:
        msg = f"session variables have inconsistent dimension sizes: {err}"
        raise SchemaError(msg) from err
    _check_indexes(ds)
    ds = _complete(ds)
    for name in ("row", "column"):
        if "pixel_spacing" in ds.attrs and name in ds.coords:
            spacing = ds.attrs["pixel_spacing"]
            ds[name].attrs["spacing"] = float(spacing[1] if name == "row" else spacing[0])
            ds[name].attrs["unit"] = ds.attrs.get("pixel_spacing_unit", "mm")
    return _finish(ds)


def _check_indexes(ds: xr.Dataset) -> None:
    """Refuse labels that would make selections wrong: cheap, on the in-memory coordinates
    (:func:`~ophys_xr.variables.check_time_labels`, ``check_unique_labels``)."""
    if "time" in ds.coords:
        check_time_labels(ds["time"].values)
    for name in UNIQUE_LABELS:
        if name in ds.coords:
            check_unique_labels(name, ds[name].values)


def _finish(ds: xr.Dataset) -> xr.Dataset:
    """Schema order, the list of missing optional variables and the ``cell_roi_id`` index."""
    ds.attrs["ophys_xr_missing"] = " ".join(
        missing_variables(ds, str(ds.attrs.get("session_kind", "behavior_ophys"))))
    ds = ds[_ordered(ds)]
    if "cell_roi_id" not in ds.coords or "cell_roi_id" in ds.indexes:
        return ds
    return ds.set_xindex("cell_roi_id")


def _complete(ds: xr.Dataset) -> xr.Dataset:
    """Add what follows from the data alone: lick trials, the segmentation mask image."""
    if "lick_times" in ds and "lick_times_trials_id" not in ds.coords:
        counts = np.asarray(ds["lick_times_count"].values)
        if counts.sum() != ds.sizes["trials_lick"]:
            msg = (
                f"lick_times_count sums to {counts.sum()} but lick_times has "
                f"{ds.sizes['trials_lick']} entries"
            )
            raise SchemaError(msg)
        ids = np.repeat(np.asarray(ds["trials_id"].values), counts)
        ds = ds.assign_coords(lick_times_trials_id=_as_variable("lick_times_trials_id", ids))
    if "roi_mask" in ds and "segmentation_mask_image" not in ds:
        ds["segmentation_mask_image"] = segmentation_mask_image(ds["roi_mask"])
    return ds


def create_session_dataset(
    variables: Mapping[str, Any],
    attrs: Mapping[str, Any],
    *,
    derive: bool = True,
    eye_tracking_z_threshold: float = DEFAULT_EYE_TRACKING_Z_THRESHOLD,
    eye_tracking_dilation_frames: int = DEFAULT_EYE_TRACKING_DILATION_FRAMES,
    events_filter_scale_seconds: float = DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    events_filter_n_time_steps: int = DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
) -> xr.Dataset:
    """Build the session Dataset from arrays named as in the schema, options applied.

    :func:`build_session_dataset` followed, when ``derive``, by
    :func:`apply_session_options` (every ROI kept).

    Parameters
    ----------
    variables
        Variable name -> array (numpy, dask, a lazily indexed backend array wrapped in an
        ``xarray.Variable``, or an ``xarray.Variable``/``DataArray``).  Dims come from the
        schema; every required variable must be present.
    attrs
        Session attributes (see :data:`~ophys_xr.variables.METADATA_ATTRS`); ``None``
        values are dropped.
    derive
        Complete the variables that the AllenSDK computes on read, when they are absent
        or were computed with other options: ``filtered_events`` from ``events``;
        ``likely_blink`` and the blink-masked eye variables from the ``*_area_raw``
        areas.  All stay lazy on dask input.
    eye_tracking_z_threshold, eye_tracking_dilation_frames
        Blink-detection parameters used when deriving ``likely_blink``.
    events_filter_scale_seconds, events_filter_n_time_steps
        Filter used when deriving ``filtered_events`` (scale in seconds, multiplied by
        ``attrs['ophys_frame_rate']`` to give time steps).

    Returns
    -------
    xarray.Dataset
        The session Dataset.

    Raises
    ------
    SchemaError
        An unknown name, a required variable missing, wrong dims/dtype, inconsistent
        dimension sizes, or an attribute that is not netCDF-safe.
    OptionError
        An invalid option value.
    """
    options = SessionOptions(
        exclude_invalid_rois=False,
        eye_tracking_z_threshold=eye_tracking_z_threshold,
        eye_tracking_dilation_frames=eye_tracking_dilation_frames,
        events_filter_scale_seconds=events_filter_scale_seconds,
        events_filter_n_time_steps=events_filter_n_time_steps,
    )
    ds = build_session_dataset(variables, attrs)
    return apply_session_options(ds, options) if derive else ds


def _ordered(ds: xr.Dataset) -> list[str]:
    """Data variables in schema order (so every reader gives the same order)."""
    order = {n: i for i, n in enumerate(SPECS)}
    return sorted(map(str, ds.data_vars), key=lambda n: order[n])


def apply_session_options(ds: xr.Dataset, options: SessionOptions) -> xr.Dataset:
    """Make a built session Dataset match the opening options (lazily; a new object).

    Every source ends here, once: invalid ROIs are dropped (and the segmentation mask
    image made again), ``likely_blink`` and the blink-masked eye variables are computed
    where absent or recorded with other values, ``filtered_events`` likewise.

    Parameters
    ----------
    ds
        A session Dataset; not modified.
    options
        The options (:meth:`SessionOptions.recorded` gives those recorded in ``ds``).

    Returns
    -------
    xarray.Dataset
        ``ds`` itself when nothing differs, else a new Dataset.
    """
    out = ds
    if options.exclude_invalid_rois and "valid_roi" in out.coords:
        valid = np.asarray(out["valid_roi"].values, dtype=bool)
        if not valid.all():
            out = out.isel(cell_specimen_id=np.flatnonzero(valid))
            if "roi_mask" in out:
                out = out.assign(segmentation_mask_image=segmentation_mask_image(
                    out["roi_mask"]))
    z, d = options.eye_tracking_z_threshold, options.eye_tracking_dilation_frames
    if "eye_area_raw" in out and not (
        "likely_blink" in out
        and out.attrs.get("eye_tracking_z_threshold") == z
        and out.attrs.get("eye_tracking_dilation_frames") == d
    ):
        out = blink_filter(out, z_threshold=z, dilation_frames=d, merge=True)
    scale, steps = options.events_filter_scale_seconds, options.events_filter_n_time_steps
    if "events" in out and not (
        "filtered_events" in out
        and out.attrs.get("events_filter_scale_seconds") == scale
        and out.attrs.get("events_filter_n_time_steps") == steps
    ):
        rate = float(out.attrs["ophys_frame_rate"])
        filtered = filter_events(out["events"], scale_timesteps=scale * rate,
                                 n_time_steps=steps)
        filtered.attrs = SPECS["filtered_events"].attrs()
        out = out.assign(filtered_events=filtered)
        out.attrs["events_filter_scale_seconds"] = scale
        out.attrs["events_filter_n_time_steps"] = steps
    if out is ds:
        return ds
    return _finish(out)
