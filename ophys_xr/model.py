"""The one place that builds a session Dataset.

The NWB reader, the Zarr/netCDF reader and the test-data simulator hand their arrays to
:func:`build_session_dataset`, which looks every name up in the schema
(:mod:`ophys_xr.variables`), checks dims and dtypes, stamps units and descriptions,
completes what follows from the data alone (the trial of each lick time, the
segmentation mask image), applies the opening options (:class:`~ophys_xr._options.
SessionOptions`: the ROIs kept, ``likely_blink``, ``filtered_events``), checks that the
session attributes are netCDF-safe, and indexes ``cell_roi_id`` -- all on the variables,
making the Dataset once at the end (each Dataset-level step copies every variable, which
made up a third of the open).  :func:`apply_session_options` brings an already built
Dataset to other options with the same functions; :func:`create_session_dataset` is the
builder with keyword options.
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
from ophys_xr.cells import filter_events_data, segmentation_mask_data
from ophys_xr.exceptions import SchemaError
from ophys_xr.eye import blink_updates
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


def build_session_dataset(variables: Mapping[str, Any], attrs: Mapping[str, Any],
                          options: SessionOptions | None = None) -> xr.Dataset:
    """Build the session Dataset from arrays named as in the schema.

    Everything happens on the variables, and the Dataset is made once at the end: the
    checks, what follows from the data alone (the trial of each lick time, the
    segmentation mask image) and, when ``options`` are given, what they derive (as
    :func:`apply_session_options` does for a Dataset).

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
    options
        The opening options to apply (ROIs kept, ``likely_blink``, ``filtered_events``);
        None applies none.

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

    out = {name: _as_variable(name, value) for name, value in variables.items()}
    clean_attrs = {k: _check_attr(k, v) for k, v in attrs.items() if v is not None}
    clean_attrs["session_kind"] = kind
    _check_sizes(out)
    _check_indexes(out)
    if options is None:
        _complete(out)
    else:
        _apply(out, clean_attrs, options)
    pixel_unit = clean_attrs.get("pixel_spacing_unit", "mm")
    for name in ("row", "column"):
        if "pixel_spacing" in clean_attrs and name in out:
            spacing = clean_attrs["pixel_spacing"]
            out[name].attrs["spacing"] = float(spacing[1] if name == "row" else spacing[0])  # type: ignore[index]
            out[name].attrs["unit"] = pixel_unit
    return _dataset(out, clean_attrs)


def _check_sizes(variables: Mapping[str, xr.Variable]) -> None:
    """Refuse variables that disagree on the size of a dimension."""
    sizes: dict[str, tuple[int, str]] = {}
    for name, var in variables.items():
        for dim, n in zip(var.dims, var.shape, strict=True):
            seen = sizes.setdefault(str(dim), (n, name))
            if seen[0] != n:
                msg = (
                    f"session variables have inconsistent dimension sizes: {dim!r} is "
                    f"{seen[0]} in {seen[1]!r} but {n} in {name!r}"
                )
                raise SchemaError(msg)


def _dataset(variables: Mapping[Any, xr.Variable], attrs: Mapping[str, Any]) -> xr.Dataset:
    """The Dataset of checked variables: data variables in schema order, an index for
    each dimension coordinate and for ``cell_roi_id``; the list of missing optional
    variables in the attrs."""
    attrs = dict(attrs)
    attrs["ophys_xr_missing"] = " ".join(
        missing_variables(variables, str(attrs.get("session_kind", "behavior_ophys"))))
    coords = {n: v for n, v in variables.items() if SPECS[n].role == "coord"}
    data_vars = {n: variables[n] for n in _ordered(variables)}
    try:
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    except ValueError as err:
        msg = f"session variables have inconsistent dimension sizes: {err}"
        raise SchemaError(msg) from err
    if "cell_roi_id" in ds.coords and "cell_roi_id" not in ds.indexes:
        ds = ds.set_xindex("cell_roi_id")
    return ds


def _check_indexes(variables: Mapping[str, xr.Variable]) -> None:
    """Refuse labels that would make selections wrong: cheap, on the in-memory coordinates
    (:func:`~ophys_xr.variables.check_time_labels`, ``check_unique_labels``)."""
    if "time" in variables:
        check_time_labels(variables["time"].values)
    for name in UNIQUE_LABELS:
        if name in variables:
            check_unique_labels(name, variables[name].values)


def _complete(variables: dict[str, xr.Variable]) -> None:
    """Add what follows from the data alone: lick trials, the segmentation mask image."""
    if "lick_times" in variables and "lick_times_trials_id" not in variables:
        counts = np.asarray(variables["lick_times_count"].values)
        n_licks = variables["lick_times"].shape[0]
        if counts.sum() != n_licks:
            msg = f"lick_times_count sums to {counts.sum()} but lick_times has {n_licks} entries"
            raise SchemaError(msg)
        ids = np.repeat(np.asarray(variables["trials_id"].values), counts)
        variables["lick_times_trials_id"] = _as_variable("lick_times_trials_id", ids)
    if "roi_mask" in variables and "segmentation_mask_image" not in variables:
        mask = variables["roi_mask"]
        variables["segmentation_mask_image"] = xr.Variable(
            ("row", "column"), segmentation_mask_data(mask.data, mask.get_axis_num(
                "cell_specimen_id")), attrs=SPECS["segmentation_mask_image"].attrs())


def _apply(variables: dict[str, xr.Variable], attrs: dict[str, Any],
           options: SessionOptions) -> bool:
    """Bring ``variables`` and ``attrs`` (changed in place) to ``options``: the invalid ROIs
    left out (the segmentation mask image made again), what follows from the data
    completed, and what the options derive (:func:`_derived`).  Whether anything changed."""
    changed = False
    if options.exclude_invalid_rois and "valid_roi" in variables:
        valid = np.asarray(variables["valid_roi"].values, dtype=bool)
        if not valid.all():
            keep = np.flatnonzero(valid)
            for name, var in list(variables.items()):
                if "cell_specimen_id" in var.dims:
                    variables[name] = var.isel(cell_specimen_id=keep)
            variables.pop("segmentation_mask_image", None)
            changed = True
    _complete(variables)
    updates, new_attrs = _derived(variables, attrs, options)
    variables.update(updates)
    attrs.update(new_attrs)
    return changed or bool(updates)


def _derived(variables: Mapping[Any, xr.Variable], attrs: Mapping[str, Any],
             options: SessionOptions) -> tuple[dict[str, xr.Variable], dict[str, Any]]:
    """The variables and attrs that ``options`` derive and ``variables`` lack or hold for
    other values: ``likely_blink`` with the blink-masked eye variables, ``filtered_events``.
    """
    updates: dict[str, xr.Variable] = {}
    new_attrs: dict[str, Any] = {}
    z, d = options.eye_tracking_z_threshold, options.eye_tracking_dilation_frames
    if "eye_area_raw" in variables and not (
        "likely_blink" in variables
        and attrs.get("eye_tracking_z_threshold") == z
        and attrs.get("eye_tracking_dilation_frames") == d
    ):
        updates.update(blink_updates(variables, z, d))
        new_attrs["eye_tracking_z_threshold"] = float(z)
        new_attrs["eye_tracking_dilation_frames"] = int(d)
    scale, steps = options.events_filter_scale_seconds, options.events_filter_n_time_steps
    if "events" in variables and not (
        "filtered_events" in variables
        and attrs.get("events_filter_scale_seconds") == scale
        and attrs.get("events_filter_n_time_steps") == steps
    ):
        events = variables["events"]
        rate = float(attrs["ophys_frame_rate"])
        data = filter_events_data(events.data, events.get_axis_num("time"),
                                  scale_timesteps=scale * rate, n_time_steps=steps)
        updates["filtered_events"] = xr.Variable(events.dims, data,
                                                 attrs=SPECS["filtered_events"].attrs())
        new_attrs["events_filter_scale_seconds"] = scale
        new_attrs["events_filter_n_time_steps"] = steps
    return updates, new_attrs


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
    return build_session_dataset(variables, attrs, options if derive else None)


def _ordered(variables: Mapping[Any, xr.Variable]) -> list[str]:
    """Data variables in schema order (so every reader gives the same order)."""
    order = {n: i for i, n in enumerate(SPECS)}
    names = [str(n) for n in variables if SPECS[str(n)].role != "coord"]
    return sorted(names, key=lambda n: order[n])


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
    variables = {str(name): var for name, var in ds.variables.items()}
    attrs = dict(ds.attrs)
    if not _apply(variables, attrs, options):
        return ds
    return _dataset(variables, attrs)
