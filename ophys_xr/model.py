"""The one place that builds a session Dataset.

The NWB backend, the Zarr/netCDF reader and the test-data simulator all hand their
arrays to :func:`create_session_dataset`, which looks every name up in the schema
(:mod:`ophys_xr.variables`), checks dims and dtypes, stamps units and descriptions,
completes the variables that the AllenSDK computes on read (filtered events, blink
filtering, segmentation mask image) when they are not given, checks that the session
attributes are netCDF-safe, and indexes ``cell_roi_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr import _options
from ophys_xr.exceptions import SchemaError
from ophys_xr.variables import GROUPS, SPECS, dtype_ok

__all__ = [
    "DEFAULT_EVENTS_FILTER_N_TIME_STEPS",
    "DEFAULT_EVENTS_FILTER_SCALE_SECONDS",
    "METADATA_ATTRS",
    "apply_session_options",
    "create_session_dataset",
    "missing_variables",
]

#: AllenSDK 2.16 defaults of ``BehaviorOphysExperiment.from_nwb``.
DEFAULT_EVENTS_FILTER_SCALE_SECONDS = 2.0 / 31.0
DEFAULT_EVENTS_FILTER_N_TIME_STEPS = 20

#: Session attributes: name -> (type, meaning).  The AllenSDK ``metadata`` keys come first.
METADATA_ATTRS: dict[str, tuple[str, str]] = {
    "equipment_name": ("str", "Rig name, e.g. CAM2P.5 or MESO.1"),
    "sex": ("str", "Sex of the mouse"),
    "age_in_days": ("int", "Age of the mouse in days"),
    "stimulus_frame_rate": ("float", "Stimulus monitor frame rate, Hz"),
    "session_type": ("str", "Session type, e.g. OPHYS_1_images_A"),
    "date_of_acquisition": ("str", "ISO-8601 date and time of acquisition, with UTC offset"),
    "reporter_line": ("str", "Reporter line"),
    "cre_line": ("str", "Cre line (parsed from the genotype)"),
    "behavior_session_uuid": ("str", "UUID of the behavior session"),
    "driver_line": ("list of str", "Driver lines, sorted"),
    "mouse_id": ("str", "LabTracks id of the mouse"),
    "project_code": ("str", "Project code, e.g. VisualBehavior"),
    "full_genotype": ("str", "Full genotype"),
    "behavior_session_id": ("int", "Behavior session id"),
    "indicator": ("str", "Calcium indicator (parsed from the reporter line)"),
    "emission_lambda": ("float", "Emission wavelength, nm"),
    "excitation_lambda": ("float", "Excitation wavelength, nm"),
    "ophys_container_id": ("int", "Container id (2021 files: experiment_container_id)"),
    "field_of_view_height": ("int", "Field of view height, pixels"),
    "field_of_view_width": ("int", "Field of view width, pixels"),
    "imaging_depth": ("int", "Imaging depth, µm"),
    "targeted_imaging_depth": ("int", "Targeted imaging depth of the container, µm"),
    "imaging_plane_group": ("int", "Mesoscope plane group (absent if not multiplane)"),
    "imaging_plane_group_count": ("int", "Number of plane groups (0 if not multiplane)"),
    "ophys_experiment_id": ("int", "Ophys experiment id"),
    "ophys_frame_rate": ("float", "Imaging frame rate, Hz"),
    "ophys_session_id": ("int", "Ophys session id"),
    "targeted_structure": ("str", "Targeted brain structure, e.g. VISp"),
    "task_parameters": ("str (JSON)", "The AllenSDK task_parameters dict, as JSON"),
    "eye_tracking_rig_geometry": ("str (JSON)", "Eye-tracking rig geometry dict, as JSON"),
    "stimulus_templates_image_set": ("str", "Name of the stimulus template image set"),
    "pixel_spacing": ("list of float", "Pixel size (column, row) of the field of view"),
    "pixel_spacing_unit": ("str", "Unit of pixel_spacing (mm)"),
    "nwb_layout": ("str", "AllenSDK NWB file generation: '2023' or '2021'"),
    "ophys_xr_missing": ("str", "Space-separated optional variables the source did not have"),
    "events_filter_scale_seconds": ("float", "Scale of the half-normal filter of filtered_events"),
    "events_filter_n_time_steps": ("int", "Length of the filter of filtered_events, frames"),
    "eye_tracking_z_threshold": ("float", "z-score threshold used for likely_blink"),
    "eye_tracking_dilation_frames": ("int", "Dilation (frames) used for likely_blink"),
}

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


def missing_variables(present: Mapping[str, object] | xr.Dataset) -> list[str]:
    """Optional schema variables that are not in ``present``."""
    names = set(present.variables) if isinstance(present, xr.Dataset) else set(present)
    return [n for n, s in SPECS.items() if not s.required and n not in names]


def create_session_dataset(
    variables: Mapping[str, Any],
    attrs: Mapping[str, Any],
    *,
    derive: bool = True,
    eye_tracking_z_threshold: float = 3.0,
    eye_tracking_dilation_frames: int = 2,
    events_filter_scale_seconds: float = DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    events_filter_n_time_steps: int = DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
) -> xr.Dataset:
    """Build the session Dataset from arrays named as in the schema.

    Parameters
    ----------
    variables
        Variable name -> array (numpy, dask, a lazily indexed backend array wrapped in an
        ``xarray.Variable``, or an ``xarray.Variable``/``DataArray``).  Dims come from the
        schema; every required variable must be present.
    attrs
        Session attributes (see :data:`METADATA_ATTRS`); ``None`` values are dropped.
    derive
        Complete the variables that the AllenSDK computes on read, when they are absent:
        ``filtered_events`` from ``events``; ``likely_blink`` and the blink-masked eye
        variables from the ``*_area_raw`` areas; ``segmentation_mask_image`` from
        ``roi_mask``.  All stay lazy on dask input.
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
    """
    unknown = [n for n in variables if n not in SPECS]
    if unknown:
        msg = f"{unknown} are not session variables; known variables: {sorted(SPECS)}"
        raise SchemaError(msg)
    required = [n for n, s in SPECS.items() if s.required and n not in variables]
    derivable = (
        {"filtered_events", "segmentation_mask_image", "lick_times_trials_id"} if derive else set()
    )
    required = [n for n in required if n not in derivable]
    if required:
        msg = f"required session variables missing: {required}"
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
    try:
        ds = xr.Dataset(data_vars, coords=coords, attrs=clean_attrs)
    except ValueError as err:
        msg = f"session variables have inconsistent dimension sizes: {err}"
        raise SchemaError(msg) from err

    if derive:
        ds = _derive(
            ds,
            eye_tracking_z_threshold=eye_tracking_z_threshold,
            eye_tracking_dilation_frames=eye_tracking_dilation_frames,
            events_filter_scale_seconds=events_filter_scale_seconds,
            events_filter_n_time_steps=events_filter_n_time_steps,
        )
    for name in ("row", "column"):
        if "pixel_spacing" in ds.attrs:
            spacing = ds.attrs["pixel_spacing"]
            ds[name].attrs["spacing"] = float(spacing[1] if name == "row" else spacing[0])
            ds[name].attrs["unit"] = ds.attrs.get("pixel_spacing_unit", "mm")
    ds.attrs["ophys_xr_missing"] = " ".join(missing_variables(ds))
    ds = ds[_ordered(ds)]
    return ds.set_xindex("cell_roi_id")


def _check_filter_options(scale: object, steps: object) -> None:
    """Raise OptionError unless the filtered-events options are valid."""
    _options.positive_number(scale, "events_filter_scale_seconds", unit="seconds")
    _options.integer(steps, "events_filter_n_time_steps", minimum=1)


def _ordered(ds: xr.Dataset) -> list[str]:
    """Data variables in schema order (so every reader gives the same order)."""
    order = {n: i for i, n in enumerate(SPECS)}
    return sorted(ds.data_vars, key=lambda n: order[str(n)])


def _derive(
    ds: xr.Dataset,
    *,
    eye_tracking_z_threshold: float,
    eye_tracking_dilation_frames: int,
    events_filter_scale_seconds: float,
    events_filter_n_time_steps: int,
) -> xr.Dataset:
    from ophys_xr import cells, eye

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
    if "events" in ds and "filtered_events" not in ds:
        _check_filter_options(events_filter_scale_seconds, events_filter_n_time_steps)
        rate = float(ds.attrs["ophys_frame_rate"])
        ds["filtered_events"] = cells.filter_events(
            ds["events"],
            scale_timesteps=events_filter_scale_seconds * rate,
            n_time_steps=events_filter_n_time_steps,
        )
        ds["filtered_events"].attrs = SPECS["filtered_events"].attrs()
        ds.attrs["events_filter_scale_seconds"] = float(events_filter_scale_seconds)
        ds.attrs["events_filter_n_time_steps"] = int(events_filter_n_time_steps)
    if "eye_area_raw" in ds and "likely_blink" not in ds:
        ds = eye.blink_filter(
            ds,
            z_threshold=eye_tracking_z_threshold,
            dilation_frames=eye_tracking_dilation_frames,
            merge=True,
        )
    if "roi_mask" in ds and "segmentation_mask_image" not in ds:
        ds["segmentation_mask_image"] = cells.segmentation_mask_image(ds["roi_mask"])
    return ds


def apply_session_options(
    ds: xr.Dataset,
    *,
    exclude_invalid_rois: bool = False,
    eye_tracking_z_threshold: float | None = None,
    eye_tracking_dilation_frames: int | None = None,
    events_filter_scale_seconds: float | None = None,
    events_filter_n_time_steps: int | None = None,
) -> xr.Dataset:
    """Make a built session Dataset match the opening options (lazily; a new object).

    The NWB reader applies the options while it builds the Dataset; a Dataset reopened from
    a Zarr or netCDF store (or handed over by a caller) holds what it was built with, so
    the options are re-applied here where they differ: invalid ROIs are dropped (and the
    segmentation mask image summed again), ``likely_blink`` and the blink-masked eye
    variables are recomputed, ``filtered_events`` is filtered again.

    Parameters
    ----------
    ds
        A session Dataset; not modified.
    exclude_invalid_rois
        Drop the ROIs whose ``valid_roi`` is False.
    eye_tracking_z_threshold, eye_tracking_dilation_frames
        Blink detection (None: as recorded in ``ds.attrs``).
    events_filter_scale_seconds, events_filter_n_time_steps
        Filter of ``filtered_events`` (None: as recorded in ``ds.attrs``).

    Returns
    -------
    xarray.Dataset
        ``ds`` itself when nothing differs, else a new Dataset.

    Raises
    ------
    OptionError
        An invalid option value.
    """
    from ophys_xr import cells, eye

    if exclude_invalid_rois and "valid_roi" in ds.coords:
        valid = np.asarray(ds["valid_roi"].values, dtype=bool)
        if not valid.all():
            ds = ds.isel(cell_specimen_id=np.flatnonzero(valid))
            if "roi_mask" in ds:
                ds = ds.assign(segmentation_mask_image=cells.segmentation_mask_image(
                    ds["roi_mask"]))
    if "eye_area_raw" in ds and (
        eye_tracking_z_threshold is not None or eye_tracking_dilation_frames is not None
    ):
        z = (ds.attrs.get("eye_tracking_z_threshold", 3.0) if eye_tracking_z_threshold is None
             else eye_tracking_z_threshold)
        d = (ds.attrs.get("eye_tracking_dilation_frames", 2)
             if eye_tracking_dilation_frames is None else eye_tracking_dilation_frames)
        same = (
            "likely_blink" in ds
            and ds.attrs.get("eye_tracking_z_threshold") == z
            and ds.attrs.get("eye_tracking_dilation_frames") == d
        )
        if not same:
            ds = eye.blink_filter(ds, z_threshold=z, dilation_frames=d, merge=True)
    if "events" in ds and (
        events_filter_scale_seconds is not None or events_filter_n_time_steps is not None
    ):
        scale = (ds.attrs.get("events_filter_scale_seconds", DEFAULT_EVENTS_FILTER_SCALE_SECONDS)
                 if events_filter_scale_seconds is None else events_filter_scale_seconds)
        steps = (ds.attrs.get("events_filter_n_time_steps", DEFAULT_EVENTS_FILTER_N_TIME_STEPS)
                 if events_filter_n_time_steps is None else events_filter_n_time_steps)
        _check_filter_options(scale, steps)
        same = (
            "filtered_events" in ds
            and ds.attrs.get("events_filter_scale_seconds") == float(scale)
            and ds.attrs.get("events_filter_n_time_steps") == int(steps)
        )
        if not same:
            rate = float(ds.attrs["ophys_frame_rate"])
            filtered = cells.filter_events(ds["events"], scale_timesteps=float(scale) * rate,
                                           n_time_steps=int(steps))
            ds = ds.assign(filtered_events=filtered)
            ds.attrs["events_filter_scale_seconds"] = float(scale)
            ds.attrs["events_filter_n_time_steps"] = int(steps)
    return ds
