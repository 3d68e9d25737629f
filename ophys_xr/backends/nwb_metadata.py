"""What an NWB session file says about itself, read with h5py alone (no xarray, no dask).

The checks and the opening of a file (local or URL), the session attributes
(:func:`read_nwb_metadata`, for ``catalog``) and the sizes and missing variables that
``ophys-xr info`` prints (:func:`read_nwb_summary`) come from here, so that neither needs
the libraries of the lazy Dataset.  :mod:`ophys_xr.backends.nwb` reads the session itself
and uses the same opening and attributes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ophys_xr.backends import layout as L
from ophys_xr.exceptions import (
    InvalidSessionFileError,
    NotAnOphysSessionError,
    OphysXrError,
    RemoteReadError,
    SchemaError,
    SessionFileNotFoundError,
)
from ophys_xr.formats import is_url
from ophys_xr.variables import (
    SPECS,
    check_time_labels,
    check_unique_labels,
    optional_variables,
)

__all__ = ["read_nwb_metadata", "read_nwb_summary"]

SEG = L.SEG
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: Block size of remote reads: HDF5 metadata is scattered, so blocks stay small.
REMOTE_BLOCK_SIZE = 512 * 2**10


def _remote_file(url: str, block_size: int = REMOTE_BLOCK_SIZE,
                 storage_options: dict[str, Any] | None = None) -> Any:
    from ophys_xr.remote import open_remote

    return open_remote(url, storage_options, block_size=block_size)


def _h5py_remote(url: str, mode: str = "r", storage_options: dict[str, Any] | None = None) -> Any:
    """The h5py file of ``url``; a file h5py cannot read raises a named error."""
    import h5py

    fobj = _remote_file(url, storage_options=storage_options)
    try:
        return h5py.File(fobj, mode)
    except OphysXrError:  # a failed or checked read of the remote file, already named
        fobj.close()
        raise
    except OSError as err:
        fobj.close()
        msg = (
            f"Cannot read {url!r} as HDF5: {err}. The file on the server is probably truncated "
            "or corrupt (an incomplete upload?); check the URL, or download it with "
            "ophys_xr.datasets.fetch(url, path) and check its hash."
        )
        raise InvalidSessionFileError(msg) from err


def _check_url(url: str, storage_options: dict[str, Any] | None = None) -> None:
    try:
        with _remote_file(url, block_size=2**10, storage_options=storage_options) as fobj:
            head = fobj.read(8)
    except OphysXrError:
        raise
    except FileNotFoundError as err:
        msg = f"No such session file: {url!r} (the server answered 'not found'). Check the URL."
        raise SessionFileNotFoundError(msg) from err
    except (OSError, ValueError) as err:
        msg = f"Cannot read {url!r}: {err}. Check the URL and your network."
        raise RemoteReadError(msg) from err
    if head != _HDF5_MAGIC:
        msg = f"{url!r} is not an HDF5/NWB file (it does not start with the HDF5 signature)."
        raise InvalidSessionFileError(msg)


def _hashable(storage_options: Any) -> Any:
    """``storage_options`` as part of a file manager's key (None stays None)."""
    from ophys_xr.remote import HashableOptions

    return None if storage_options is None else HashableOptions(storage_options)


def _check_path(path: Path) -> None:
    if not path.exists():
        msg = f"No such session file: {str(path)!r}. Check the path (cwd: {os.getcwd()!r})."
        raise SessionFileNotFoundError(msg)
    if path.is_dir():
        msg = (
            f"{str(path)!r} is a directory, not an NWB file. Pass the .nwb file itself, or a "
            "Zarr store written by ophys_xr."
        )
        raise InvalidSessionFileError(msg)
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except PermissionError as err:
        from ophys_xr._atomic import permission_error

        raise permission_error(err, path, reading=True) or err from err
    if head != _HDF5_MAGIC:
        msg = (
            f"{str(path)!r} is not an HDF5/NWB file (it does not start with the HDF5 "
            "signature). Pass an AllenSDK behavior_ophys_experiment_*.nwb file."
        )
        raise InvalidSessionFileError(msg)


def _open_h5(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        msg = (
            f"Cannot read {str(path)!r} as HDF5: {err}. The file is probably truncated or "
            "corrupt (an interrupted download?); download it again."
        )
        raise InvalidSessionFileError(msg) from err


def _str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _str(value[()])
    return str(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _metadata(f: Any, layout: L.Layout, kind: str) -> dict[str, Any]:
    meta = {k: _scalar(v) for k, v in f[L.METADATA].attrs.items()}
    subject = f[L.SUBJECT]
    genotype = _str(subject["genotype"][()]) if "genotype" in subject else None
    reporter = _str(subject.attrs["reporter_line"]) if "reporter_line" in subject.attrs else None
    if reporter == "None":
        reporter = None
    driver = subject.attrs.get("driver_line")
    age = _str(subject["age"][()]) if "age" in subject else "null"
    age_match = re.search(r"\d+", age) if age.startswith("P") else None
    uuid = _str(meta.get("behavior_session_uuid", "None"))
    indicator = None
    for key, value in (("GCaMP6f", "GCaMP6f"), ("GC6f", "GCaMP6f"), ("GCaMP6s", "GCaMP6s")):
        if reporter is not None and key in reporter:
            indicator = value
            break
    container = meta.get(layout.container_id_key)
    group = meta.get("imaging_plane_group", -1)
    group_count = int(meta.get("imaging_plane_group_count", 0))
    out: dict[str, Any] = {
        "equipment_name": _str(meta["equipment_name"]),
        "sex": _str(subject["sex"][()]),
        "age_in_days": int(age_match.group()) if age_match else None,
        "stimulus_frame_rate": float(meta["stimulus_frame_rate"]),
        "session_type": _str(meta["session_type"]),
        "date_of_acquisition": _str(f["session_start_time"][()]),
        "reporter_line": reporter,
        "cre_line": genotype.split(";")[0].replace("/wt", "") if genotype and ";" in genotype
        else None,
        "behavior_session_uuid": None if uuid == "None" else uuid,
        "driver_line": sorted(_str(d) for d in driver) if driver is not None else None,
        "mouse_id": _str(subject["subject_id"][()]),
        "project_code": _str(meta.get("project_code", "Not Available")),
        "full_genotype": genotype,
        "behavior_session_id": int(meta["behavior_session_id"]),
    }
    if kind == "behavior_ophys":
        plane = f[L.PLANE]
        out.update({
            "indicator": indicator,
            "emission_lambda": float(plane["channel_1/emission_lambda"][()]),
            "excitation_lambda": float(plane["excitation_lambda"][()]),
            "ophys_container_id": int(container) if container is not None else None,
            "field_of_view_height": int(meta["field_of_view_height"]),
            "field_of_view_width": int(meta["field_of_view_width"]),
            "imaging_depth": int(meta["imaging_depth"]),
            "targeted_imaging_depth": int(meta["targeted_imaging_depth"])
            if "targeted_imaging_depth" in meta else None,
            "imaging_plane_group": int(group) if group_count > 1 and int(group) >= 0 else None,
            "imaging_plane_group_count": group_count,
            "ophys_experiment_id": int(_str(f["identifier"][()])),
            "ophys_frame_rate": float(plane["imaging_rate"][()]),
            "ophys_session_id": int(meta["ophys_session_id"]),
            "targeted_structure": _str(plane["location"][()]),
        })
    out["nwb_layout"] = layout.name
    out["session_kind"] = kind
    out["task_parameters"] = json.dumps(_task_parameters(f, out["session_type"]))
    if L.RIG in f:
        g = f[L.RIG]
        geometry = {
            "camera_position_mm": g["camera_position"][()].tolist(),
            "camera_rotation_deg": g["camera_rotation"][()].tolist(),
            "equipment": _str(g.attrs["equipment"]),
            "led_position": g["led_position"][()].tolist(),
            "monitor_position_mm": g["monitor_position"][()].tolist(),
            "monitor_rotation_deg": g["monitor_rotation"][()].tolist(),
        }
        out["eye_tracking_rig_geometry"] = json.dumps(geometry)
    return out


def _task_parameters(f: Any, session_type: str) -> dict[str, Any]:
    attrs = {k: _scalar(v) for k, v in f[L.TASK].attrs.items()
             if k not in ("namespace", "neurodata_type", "object_id")}
    params: dict[str, Any] = {}
    for key in ("blank_duration_sec", "response_window_sec"):
        params[key] = [float(_str(v)) for v in np.atleast_1d(attrs[key])]
    for key in ("auto_reward_volume", "omitted_flash_fraction", "reward_volume",
                "stimulus_duration_sec"):
        if key in attrs:
            params[key] = float(attrs[key])
    params["n_stimulus_frames"] = int(attrs["n_stimulus_frames"])
    params["session_type"] = _str(attrs.get("session_type", attrs.get("stage", session_type)))
    for key in ("stimulus", "stimulus_distribution", "task"):
        params[key] = _str(attrs[key])
    params["stimulus_name"] = _str(attrs["stimulus_name"]) if "stimulus_name" in attrs else None
    parts = params["session_type"].split("_")
    if len(parts) > 3 and parts[2] == "images":
        params["image_set"] = "images_" + parts[3]
    elif len(parts) > 2 and parts[2] == "gratings":
        params["image_set"] = "gratings"
    else:
        params["image_set"] = None
    return dict(sorted(params.items()))


def _open_file(path: str | os.PathLike[str],
               storage_options: Any = None) -> tuple[Path | str, Any]:
    """The checked source (a URL stays a string) and its open h5py file."""
    if is_url(path):
        url = str(path)
        _check_url(url, storage_options)
        return url, _h5py_remote(url, storage_options=storage_options)
    p = Path(os.fspath(path)).expanduser()
    _check_path(p)
    return p, _open_h5(p)


def read_nwb_metadata(path: str | os.PathLike[str], *,
                      storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The session attributes of an NWB file and its sizes, without reading any trace.

    ``storage_options`` are those of :func:`read_nwb`, for a URL.

    Returns
    -------
    dict
        The session attributes plus ``n_cells``, ``n_valid_cells`` and ``duration_s``.
    """
    p, f = _open_file(path, storage_options)
    try:
        layout = L.detect(f, str(p))
        kind = L.session_kind(f, str(p))
        meta = _metadata(f, layout, kind)
        if kind == "behavior_ophys":
            valid = f[f"{SEG}/valid_roi"][()]
            meta["n_cells"] = int(valid.size)
            meta["n_valid_cells"] = int(valid.sum())
            ts = f[f"{L.TRACE_SERIES['dff'][1]}/traces/timestamps"]
        else:
            ts = f[f"{L.STIMULUS_TIMESTAMPS}/timestamps"]
        meta["duration_s"] = float(ts[-1] - ts[0]) if ts.shape[0] else 0.0
    except KeyError as err:
        msg = f"{str(p)!r} lacks an item every AllenSDK Visual Behavior NWB file has ({err})"
        raise NotAnOphysSessionError(msg) from err
    finally:
        f.close()
    return meta


def check_trace_dataset(path: Path | str, name: str, dset: Any, cols: np.ndarray) -> None:
    """A trace dataset must be 2-D (frames, ROIs), numeric, with a column for every ROI read."""
    where = f"{name} in {str(path)!r}"
    if dset.ndim != 2:
        msg = (f"{where} has shape {dset.shape}; traces are 2-D (frames, ROIs). The file is "
               "damaged or not written by the AllenSDK")
        raise SchemaError(msg)
    if dset.dtype.kind not in "fiu":
        msg = (f"{where} holds {dset.dtype} values, not numbers. The file is damaged or not "
               "written by the AllenSDK")
        raise SchemaError(msg)
    if cols.size and int(cols.max()) >= dset.shape[1]:
        msg = (f"{where} has {dset.shape[1]} ROI columns but the ROI table needs column "
               f"{int(cols.max())}: the traces do not match the ROI table. The file is damaged")
        raise SchemaError(msg)


def read_nwb_summary(path: str | os.PathLike[str], *, exclude_invalid_rois: bool = True,
                     storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The attributes, sizes and missing variables of the session Dataset an NWB file opens
    as, read from the file's structure (the small index columns, no table or trace).

    The same figures as the opened Dataset gives (``ophys-xr info`` prints them):
    ``tests/test_cli.py`` compares the two on every kind of file.

    Parameters
    ----------
    path
        Local path or URL of the NWB file.
    exclude_invalid_rois
        Count only the ROIs that ``valid_roi`` marks valid (the opening default).
    storage_options
        fsspec options of a URL.

    Returns
    -------
    dict
        The session attributes plus ``sizes`` (dimension -> length, as ``ds.sizes``),
        ``n_valid_cells``, ``duration_s`` and ``missing`` (the optional variables the
        Dataset lacks, as ``ds.attrs["ophys_xr_missing"]`` lists them).
    """
    p, f = _open_file(path, storage_options)
    try:
        layout = L.detect(f, str(p))
        kind = L.session_kind(f, str(p))
        meta = _metadata(f, layout, kind)
        sizes: dict[str, int] = {}
        present: set[str] = set()
        if kind == "behavior_ophys":
            valid = f[f"{SEG}/valid_roi"][()].astype(bool)
            n_valid = int(valid.sum())
            sizes["cell_specimen_id"] = n_valid if exclude_invalid_rois else int(valid.size)
            meta["n_valid_cells"] = n_valid
            clock = f[f"{L.TRACE_SERIES['dff'][1]}/traces/timestamps"]
            dff = f"{L.TRACE_SERIES['dff'][1]}/traces"
            sizes["time"] = int(f[f"{dff}/data"].shape[0])
            _check_labels(f, p, valid if exclude_invalid_rois else np.ones_like(valid), dff)
            present |= {name for name, (_, group) in L.TRACE_SERIES.items()
                        if f"{group}/traces" in f}
            if L.EVENTS in f:
                present |= {"events", "filtered_events", *L.EVENT_VALUES}
            present |= {var for var, series in L.FIT_SERIES.items() if f"{series}/data" in f}
        else:
            clock = f[f"{L.STIMULUS_TIMESTAMPS}/timestamps"]
            sizes["stimulus_frame"] = int(clock.shape[0])
        n = clock.shape[0]
        meta["duration_s"] = (float(np.float64(clock[n - 1]) - np.float64(clock[0]))
                              if n else 0.0)
        if L.EYE in f:
            sizes["eye_frame"] = int(f[L.EYE_TIMESTAMPS].shape[0])
            present |= {"eye_frame", "eye_timestamps", "likely_blink",
                        *(f"{part}_area" for part in L.EYE_PARTS),
                        *(f"{part}_{field}" for part in L.EYE_PARTS for field in L.EYE_FIELDS)}
        present |= {name for name, series in L.RUNNING_SERIES.items() if f"{series}/data" in f}
        sizes["trials_id"] = int(f[f"{L.TRIALS}/id"].shape[0])
        sizes["lick"] = int(f[f"{L.LICKS}/timestamps"].shape[0]) if L.LICKS in f else 0
        sizes["reward"] = (int(f[f"{L.REWARDS}/autorewarded/timestamps"].shape[0])
                           if f"{L.REWARDS}/volume" in f else 0)
        sizes["stimulus_presentations_id"], columns = _presentation_columns(f)
        present |= columns
        if "stimulus_block" in columns:
            present.add("is_sham_change")
        present |= _template_variables(f, str(p))
    except KeyError as err:
        msg = f"{str(p)!r} lacks an item every AllenSDK Visual Behavior NWB file has ({err})"
        raise NotAnOphysSessionError(msg) from err
    finally:
        f.close()
    meta["sizes"] = sizes
    meta["missing"] = [n for n in optional_variables(kind) if n not in present]
    return meta


def _check_labels(f: Any, path: Path | str, rows: np.ndarray, dff: str) -> None:
    """The checks the reader makes at open on what labels a session (the ophys timestamps,
    the ids of the ROIs read, the ΔF/F dataset), so that ``ophys-xr info`` refuses what
    ``open_session`` refuses: a :class:`SchemaError` naming the path."""
    try:
        check_time_labels(f[f"{dff}/timestamps"][()])
        table = f[SEG]
        csid = table["cell_specimen_id"][()]
        if csid.dtype.kind == "f":
            csid = np.where(np.isnan(csid), -1, csid)
        check_unique_labels("cell_specimen_id", csid.astype(np.int64)[rows])
        check_unique_labels("cell_roi_id", table["id"][()][rows])
        check_unique_labels("trials_id", f[f"{L.TRIALS}/id"][()])
    except SchemaError as err:
        msg = (f"{str(path)!r} does not hold a consistent session: {err}. Download or "
               "convert it again")
        raise SchemaError(msg) from err
    region = f[f"{dff}/rois"][()] if f"{dff}/rois" in f else np.arange(rows.size)
    check_trace_dataset(path, f"{dff}/data", f[f"{dff}/data"], np.arange(len(region)))


def _presentation_columns(f: Any) -> tuple[int, set[str]]:
    """The number of stimulus presentations and the session variables their columns give."""
    groups = [g for name, g in f["intervals"].items() if name.endswith(L.PRESENTATIONS_SUFFIX)]
    if not groups:
        msg = f"{f.filename!r} has no intervals/*_presentations tables"
        raise NotAnOphysSessionError(msg)
    n = 0
    names: set[str] = set()
    for g in groups:
        n += int(g["id"].shape[0])
        for col in g:
            key = L.PRESENTATION_RENAME.get(col, col)
            if (col in L.PRESENTATION_SKIP or col in L.PRESENTATION_DROP or key not in SPECS
                    or SPECS[key].dims != ("stimulus_presentations_id",)):
                continue
            item = g[col]
            if hasattr(item, "dtype") and _str(item.attrs.get("neurodata_type", "")) != \
                    "VectorIndex":
                names.add(key)
    return n, names


def _template_variables(f: Any, path: str) -> set[str]:
    """The stimulus-template variables of the file (checked as the reader checks them)."""
    if L.TEMPLATES not in f:
        return set()
    names = [k for k in f[L.TEMPLATES] if "movie" not in k]
    if not names:
        return set()
    if len(names) > 1:
        msg = f"{path!r} has several image template sets {names}; expected one"
        raise SchemaError(msg)
    if "unwarped" not in f[f"{L.TEMPLATES}/{names[0]}"]:
        msg = f"{L.TEMPLATES}/{names[0]} in {path!r} has no 'unwarped' images"
        raise SchemaError(msg)
    return {"template_image_name", "stimulus_template_warped", "stimulus_template_unwarped"}
