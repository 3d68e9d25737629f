"""Read AllenSDK Visual Behavior Ophys NWB files (2021 and 2023 layouts) with h5py.

Opening reads the metadata and the small tables (cells, trials, presentations, licks,
rewards, timestamps); traces, ROI masks, projections, eye tracking, running and
stimulus templates stay in the file behind :class:`~ophys_xr.backends._arrays.H5ArrayWrapper`
and become dask arrays.  Where things are in the file, per generation, is the table of
:mod:`ophys_xr.backends.layout`; the writer (:mod:`ophys_xr.backends.nwb_writer`) is the
inverse over the same table.  The variables end in
:func:`ophys_xr.model.build_session_dataset`; the opening options are applied by
:func:`ophys_xr.formats.open_source`, as for every format.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendEntrypoint

from ophys_xr import _compute
from ophys_xr._options import (
    DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
    DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    DEFAULT_EYE_TRACKING_DILATION_FRAMES,
    DEFAULT_EYE_TRACKING_Z_THRESHOLD,
    SessionOptions,
)
from ophys_xr.backends import layout as L
from ophys_xr.backends._arrays import (
    CHUNK_BYTES,
    HDF5_LOCK,
    DaskSource,
    FileIdentity,
    H5ArrayWrapper,
    check_identity,
    check_path_identity,
    file_identity,
    open_manager,
    raw_location,
)
from ophys_xr.backends.nwb_metadata import (
    _h5py_remote,
    _hashable,
    _metadata,
    _open_file,
    _str,
    check_trace_dataset,
    read_nwb_metadata,
)
from ophys_xr.exceptions import (
    InvalidSessionFileError,
    NotAnOphysSessionError,
    SchemaError,
    UnsupportedLayoutError,
)
from ophys_xr.formats import open_source
from ophys_xr.model import build_session_dataset
from ophys_xr.variables import INT_NULL, SPECS

__all__ = [
    "OphysBackendEntrypoint",
    "detect_layout",
    "open_nwb_session",
    "read_nwb",
    "read_nwb_metadata",
]

OPHYS = L.OPHYS
SEG = L.SEG


# --------------------------------------------------------------------------------------
# opening and checking the file


#: Dask blocks of chunked (compressed) datasets, e.g. the event traces: about this many
#: bytes of whole storage chunks, at least _CELLS_PER_BLOCK cells wide.  Every read
#: decompresses whole chunks, so narrow blocks keep a selection of a few cells small, at
#: some cost to reading every cell; narrower blocks cost more, wider ones save less
#: (benchmarks/RESULTS.md, "bench_compat" and "bench_open", the chunked-events entries).
_CHUNKED_BLOCK_BYTES = CHUNK_BYTES // 8
_CELLS_PER_BLOCK = 32

def detect_layout(f: Any, path: str = "<file>") -> str:
    """Tell the AllenSDK NWB generation of an open h5py file: ``"2023"`` or ``"2021"``.

    Raises
    ------
    NotNwbFileError, UnsupportedLayoutError, NotAnOphysSessionError
    """
    layout = L.detect(f, path)
    L.session_kind(f, path)
    return layout.name


# --------------------------------------------------------------------------------------
# small helpers


def _read(f: Any, path: str) -> np.ndarray:
    return _values(f[path])


def _values(dset: Any) -> np.ndarray:
    """All of a small dataset; strings as an object array of ``str``.

    Raises
    ------
    InvalidSessionFileError
        Stored strings that are not UTF-8 (the file is damaged).
    """
    if dset.dtype.kind == "O" or h5_is_str(dset):
        try:
            return _decoded(dset[()])
        except UnicodeDecodeError as err:
            msg = (f"{dset.name} in {dset.file.filename!r} holds text that is not UTF-8 "
                   f"({err}); the file is damaged: download or copy it again")
            raise InvalidSessionFileError(msg) from err
    return np.asarray(dset[()])


def _decoded(stored: Any) -> np.ndarray:
    """Stored strings (``bytes`` or ``str`` items) as an object array of ``str``; each
    distinct value decoded once (table columns repeat a few names thousands of times)."""
    stored = np.asarray(stored, dtype=object)
    out = np.empty(stored.shape, dtype=object)
    seen: dict[Any, str] = {}
    flat = out.reshape(-1)
    for i, item in enumerate(stored.reshape(-1)):
        text = seen.get(item)
        if text is None:
            text = seen[item] = item.decode("utf-8") if isinstance(item, bytes) else str(item)
        flat[i] = text
    return out


def h5_is_str(dset: Any) -> bool:
    import h5py

    return h5py.check_string_dtype(dset.dtype) is not None


class _Reader:
    """Reads one file: small things eagerly, large ones as lazy variables."""

    def __init__(self, path: Path | str, f: Any, layout: str, *, lock: Any,
                 storage_options: Any = None) -> None:
        self.path = path
        self.f = f
        self.layout = layout
        self.lock = lock
        self.identity: FileIdentity | None = None  # of a local file
        self._dsets: dict[str, Any] = {}
        if isinstance(path, str):
            self.manager = open_manager(_h5py_remote, path,
                                        storage_options=_hashable(storage_options))
            self.token: tuple[Any, ...] = (path, f.id.get_filesize())
        else:
            # the identity of the file opened (not of whatever the path names now): every
            # later reopening and read checks it, so a replaced file raises, never mixes
            self.identity = file_identity(f.id.get_vfd_handle())
            self.manager = open_manager(_h5py_file, str(path), identity=self.identity)
            self.token = (str(path.resolve()), self.identity.ino, self.identity.mtime_ns,
                          self.identity.size)

    def dset(self, h5path: str) -> Any:
        """The h5py dataset at ``h5path``, looked up once per open (lookups cost)."""
        found = self._dsets.get(h5path)
        if found is None:
            found = self._dsets[h5path] = self.f[h5path]
        return found

    def wrapper(self, h5path: str, dtype: Any, **kwargs: Any) -> H5ArrayWrapper:
        dset = self.dset(h5path)
        raw = raw_location(dset, str(self.path)) if isinstance(self.path, Path) else None
        return H5ArrayWrapper(self.manager, h5path, dset.shape, np.dtype(dtype),
                              lock=self.lock, token=self.token, raw=raw,
                              identity=self.identity, **kwargs)

    def variable(
        self, name: str, array: H5ArrayWrapper, chunks: dict[str, int] | None = None
    ) -> xr.Variable:
        """A dask-backed variable over ``array`` with deterministic chunk names.

        Chunks follow the HDF5 storage (whole storage chunks, blocks of the first axis for a
        contiguous dataset), about :data:`CHUNK_BYTES` each, unless ``chunks`` are given.
        """
        import dask.array as da
        from dask.base import tokenize

        dims = SPECS[name].dims
        if chunks is None:
            chunk_tuple = self._storage_chunks(array)
        else:
            chunk_tuple = tuple(chunks.get(d, -1) for d in dims)
        token = tokenize(self.token, name, array, chunk_tuple)
        data = da.from_array(
            # default getter options: dask then pushes slices into the read (a slice of a
            # chunk reads only that slice)
            DaskSource(array), chunks=chunk_tuple, name=f"ophys-{name}-{token}",
            meta=np.array((), dtype=array.dtype),
        )
        preferred = dict(zip(dims, data.chunksize, strict=True))
        return xr.Variable(dims, data, encoding={"preferred_chunks": preferred})

    def _storage_chunks(self, array: H5ArrayWrapper) -> tuple[int, ...]:
        storage = self.dset(array.h5path).chunks
        per_axis = []
        for pos, axis in enumerate(array.order):
            taken = array.take is not None and array.take[0] == axis
            if storage is None or (taken and pos == 0):
                per_axis.append(array.shape[pos])
            elif taken:
                # ROIs of a chunked (compressed) dataset: blocks of whole storage chunks of
                # at least _CELLS_PER_BLOCK cells, so a few cells decompress only theirs
                cells = -(-_CELLS_PER_BLOCK // storage[axis]) * storage[axis]
                per_axis.append(min(array.shape[pos], cells))
            else:
                per_axis.append(min(storage[axis], array.shape[pos]))
        if not per_axis:
            return ()
        row_bytes = array.dtype.itemsize * int(np.prod(per_axis[1:], dtype=np.int64))
        step = per_axis[0] if storage is not None else 1
        budget = CHUNK_BYTES if storage is None else _CHUNKED_BLOCK_BYTES
        rows = max(step, budget // max(row_bytes, 1) // step * step)
        per_axis[0] = min(array.shape[0], rows)
        return tuple(max(1, c) for c in per_axis)


def _h5py_file(path: str, mode: str = "r", identity: FileIdentity | None = None,
               **kwargs: Any) -> Any:
    """Open a local file with h5py; with ``identity``, only if it is still that file."""
    import h5py

    try:
        f = h5py.File(path, mode, **kwargs)
    except OSError as err:
        if identity is None:
            raise
        check_path_identity(path, identity)
        msg = f"Cannot read {path!r} as HDF5 again: {err}. The file is damaged; restore it"
        raise InvalidSessionFileError(msg) from err
    if identity is not None:
        try:
            check_identity(f.id.get_vfd_handle(), identity, path)
        except InvalidSessionFileError:
            f.close()
            raise
    return f


# --------------------------------------------------------------------------------------
# metadata


# --------------------------------------------------------------------------------------
# cells, traces, images


def _cells(r: _Reader, exclude_invalid_rois: bool, meta: dict[str, Any]) -> dict[str, Any]:
    f = r.f
    seg = f[SEG]
    roi_ids = seg["id"][()].astype(np.int64)
    valid = seg["valid_roi"][()].astype(bool)
    rows = np.flatnonzero(valid) if exclude_invalid_rois else np.arange(len(roi_ids))
    out: dict[str, Any] = {}
    csid = seg["cell_specimen_id"][()]
    if csid.dtype.kind == "f":
        csid = np.where(np.isnan(csid), -1, csid)
    out["cell_specimen_id"] = csid.astype(np.int64)[rows]
    out["cell_roi_id"] = roi_ids[rows]
    for name in ("valid_roi", "x", "y", "width", "height", "mask_image_plane",
                 "max_correction_up", "max_correction_down", "max_correction_left",
                 "max_correction_right"):
        out[name] = seg[name][()][rows]
    dff_series = f"{L.TRACE_SERIES['dff'][1]}/traces"
    n_frames = f[f"{dff_series}/data"].shape[0]

    def column_map(series: str) -> np.ndarray:
        """Stored column of each selected table row (-1: not in this series)."""
        region = f[f"{series}/rois"][()].astype(np.int64) if f"{series}/rois" in f \
            else np.arange(len(roi_ids))
        if region.size and (region.min() < 0 or region.max() >= len(roi_ids)):
            msg = (f"{series}/rois in {str(r.path)!r} refers to ROI rows outside the ROI "
                   f"table (0..{len(roi_ids) - 1}); the file is damaged")
            raise SchemaError(msg)
        col_of_row = np.full(len(roi_ids), -1, dtype=np.int64)
        col_of_row[region] = np.arange(len(region))
        return col_of_row[rows]

    traces = {name: f"{group}/traces" for name, (_, group) in L.TRACE_SERIES.items()}
    traces["events"] = L.EVENTS
    for name, series in traces.items():
        if series not in f:
            if name in ("dff", "corrected_fluorescence"):
                msg = f"{str(r.path)!r} has no {series}, which every ophys session has"
                raise NotAnOphysSessionError(msg)
            continue
        cols = column_map(series) if name == "events" else column_map(
            traces["dff"] if "rois" not in f[series] else series)
        if name != "events" and (cols < 0).any():
            missing = out["cell_roi_id"][cols < 0].tolist()
            msg = f"{series} in {str(r.path)!r} has no trace for ROIs {missing}"
            raise SchemaError(msg)
        dset = r.dset(f"{series}/data")
        shape = dset.shape
        check_trace_dataset(r.path, f"{series}/data", dset, cols)
        if shape[0] != n_frames:
            msg = (
                f"{series}/data in {str(r.path)!r} has {shape[0]} frames but "
                f"{dff_series}/data has {n_frames}; the file is inconsistent"
            )
            raise SchemaError(msg)
        arr = r.wrapper(f"{series}/data", np.float64, take=(1, cols))
        out[name] = r.variable(name, arr)
        if name == "events":
            for var, ds_name in L.EVENT_VALUES.items():
                values = f[f"{series}/{ds_name}"][()].astype(np.float64)
                out[var] = np.where(cols >= 0, values[np.maximum(cols, 0)], np.nan)
    for var, series in L.FIT_SERIES.items():
        p = f"{series}/data"
        if p in f:
            cols = column_map(traces["corrected_fluorescence"])
            out[var] = f[p][()].astype(np.float64)[cols]
    for var, series in L.MOTION_SERIES.items():
        p = f"{series}/data"
        if p not in f:
            msg = f"{str(r.path)!r} has no {p}, which every ophys session has"
            raise NotAnOphysSessionError(msg)
        dset = r.dset(p)
        if dset.shape[0] != n_frames:
            msg = (
                f"{p} in {str(r.path)!r} has {dset.shape[0]} frames but the traces have "
                f"{n_frames}; the file is inconsistent"
            )
            raise SchemaError(msg)
        out[var] = r.variable(var, r.wrapper(p, dset.dtype), {"time": -1})
    # ROI masks and images
    mask = r.dset(f"{SEG}/image_mask")
    if mask.dtype.kind == "f":
        msg = f"{str(r.path)!r} stores float ROI masks at the origin (2019 layout), not supported"
        raise UnsupportedLayoutError(msg)
    height, width = mask.shape[1:]
    out["row"] = np.arange(height, dtype=np.int64)
    out["column"] = np.arange(width, dtype=np.int64)
    out["roi_mask"] = r.variable("roi_mask", r.wrapper(f"{SEG}/image_mask", bool, take=(0, rows)))
    for name in ("max_projection", "average_projection"):
        path = f"{L.IMAGES}/{L.IMAGE_DATASETS[name]}"
        dset = r.dset(path)
        out[name] = r.variable(name, r.wrapper(path, dset.dtype), {})
        resolution = float(dset.attrs["resolution"])
        meta["pixel_spacing"] = [resolution * 10, resolution * 10]
        meta["pixel_spacing_unit"] = "mm"
    return out


def _ophys_time(r: _Reader) -> np.ndarray:
    f = r.f
    series = f"{L.TRACE_SERIES['dff'][1]}/traces"
    ts = f[f"{series}/timestamps"][()].astype(np.float64)
    n_frames = f[f"{series}/data"].shape[0]
    if len(ts) != n_frames:
        msg = (
            f"{str(r.path)!r}: {series} has {n_frames} frames but {len(ts)} "
            "timestamps; the file is inconsistent (the AllenSDK silently truncates extra "
            "timestamps; ophys_xr refuses to guess)"
        )
        raise SchemaError(msg)
    return ts


# --------------------------------------------------------------------------------------
# eye tracking, running, licks, rewards


def _eye(r: _Reader) -> dict[str, Any]:
    f = r.f
    if L.EYE not in f:
        return {}
    ts = f[L.EYE_TIMESTAMPS][()].astype(np.float64)
    n = len(ts)
    out: dict[str, Any] = {"eye_frame": np.arange(n, dtype=np.int64), "eye_timestamps": ts}
    chunks = {"eye_frame": -1}
    for part, group in L.EYE_PARTS.items():
        base = f"{L.EYE}/{group}"
        for field, (stored, column) in L.EYE_FIELDS.items():
            name = f"{part}_{field}"
            path = f"{base}/{stored}"
            if stored == "area_raw" and path not in f:  # files written before area_raw
                path = f"{base}/area"
            kwargs = {} if column is None else {"fixed": {1: column}}
            if r.dset(path).shape[0] != n:
                msg = (
                    f"{path} in {str(r.path)!r} has {r.dset(path).shape[0]} frames but the eye "
                    f"tracking timestamps have {n}; the file is inconsistent"
                )
                raise SchemaError(msg)
            out[name] = r.variable(name, r.wrapper(path, np.float64, **kwargs), chunks)
    return out


def _flip_block(block: np.ndarray) -> np.ndarray:
    finite = block[~np.isnan(block)]
    return -block if finite.size and finite.mean() < -1 else block


def _fix_polarity(data: Any) -> Any:
    """AllenSDK 2.16 ``RunningSpeed._fix_polarity``: flip if the mean speed is < -1.

    One task over the whole (one-block) series: the mean needs every sample anyway.
    """
    if data.numblocks != (1,):
        data = data.rechunk(-1)
    return data.map_blocks(_flip_block, dtype=data.dtype, meta=np.array((), data.dtype))


def _running(r: _Reader) -> dict[str, Any]:
    f = r.f
    ts = f[f"{L.STIMULUS_TIMESTAMPS}/timestamps"][()].astype(np.float64)
    out: dict[str, Any] = {"stimulus_frame": np.arange(len(ts), dtype=np.int64),
                           "stimulus_timestamps": ts}
    for name, path in L.RUNNING_SERIES.items():
        if f"{path}/data" not in f:
            if SPECS[name].required:
                msg = f"{str(r.path)!r} has no {path}, which every session has"
                raise NotAnOphysSessionError(msg)
            continue
        n = f[f"{path}/data"].shape[0]
        if n != len(ts):
            msg = (
                f"{path}/data in {str(r.path)!r} has {n} samples but there are {len(ts)} "
                f"stimulus timestamps ({L.STIMULUS_TIMESTAMPS}); the file is inconsistent"
            )
            raise SchemaError(msg)
        var = r.variable(name, r.wrapper(f"{path}/data", np.float64), {"stimulus_frame": -1})
        if name in ("running_speed", "raw_running_speed"):
            var = var.copy(data=_fix_polarity(var.data))
        out[name] = var
    return out


def _licks_rewards(f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lick = L.LICKS
    if lick in f:
        out["licks_timestamps"] = f[f"{lick}/timestamps"][()].astype(np.float64)
        out["licks_frame"] = f[f"{lick}/data"][()].astype(np.int64)
    else:
        out["licks_timestamps"] = np.zeros(0)
        out["licks_frame"] = np.zeros(0, dtype=np.int64)
    rew = L.REWARDS
    if f"{rew}/volume" in f:
        out["rewards_volume"] = f[f"{rew}/volume/data"][()].astype(np.float64)
        out["rewards_timestamps"] = f[f"{rew}/autorewarded/timestamps"][()].astype(np.float64)
        out["rewards_auto_rewarded"] = f[f"{rew}/autorewarded/data"][()].astype(bool)
    else:
        out["rewards_volume"] = np.zeros(0)
        out["rewards_timestamps"] = np.zeros(0)
        out["rewards_auto_rewarded"] = np.zeros(0, dtype=bool)
    return out


# --------------------------------------------------------------------------------------
# trials and stimulus presentations


def _table_columns(group: Any, skip: Iterable[str],
                   wanted: Callable[[str], bool] = lambda name: True,
                   ) -> tuple[dict[str, np.ndarray], list[str]]:
    """The columns of an NWB table that are ``wanted`` (read), and the names of the other
    columns (not read); ``skip`` and the ragged columns' indexes are neither."""
    cols: dict[str, np.ndarray] = {}
    others: list[str] = []
    for name, item in group.items():
        if name in skip or not hasattr(item, "dtype"):
            continue
        if name.endswith("_index") and \
                _str(item.attrs.get("neurodata_type", "")) == "VectorIndex":
            continue
        if wanted(name):
            cols[name] = _values(item)
        else:
            others.append(name)
    return cols, others


def _trials(f: Any) -> dict[str, Any]:
    g = f[L.TRIALS]
    cols, _ = _table_columns(g, L.TRIAL_DROP,
                             lambda name: L.TRIAL_RENAME.get(name, name) in SPECS)
    n = len(g["id"])
    out: dict[str, Any] = {"trials_id": g["id"][()].astype(np.int64)}
    for name, values in cols.items():
        key = L.TRIAL_RENAME.get(name, name)
        if key not in SPECS:
            continue
        out[key] = values
    if "change_frame" in out:
        cf = out["change_frame"]
        if cf.dtype.kind == "f":
            cf = np.where(np.isnan(cf), INT_NULL, cf)
        out["change_frame"] = cf.astype(np.int64)
    out["lick_times"], out["lick_times_count"] = _ragged_times(g, "lick_times", n)
    return out


def _ragged_times(g: Any, name: str, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A ragged float column of a table: (flat values, count per row).

    hdmf writes a ragged column that holds no value at all (the lick times of a passive
    session) as one empty byte string with every row's index 0; that is read as no values.
    """
    where = f"{g.name}/{name}"
    if f"{name}_index" not in g:
        if name in g and g[name].shape[0]:
            msg = f"{where} in {g.file.filename!r} has values but no {name}_index"
            raise SchemaError(msg)
        return np.zeros(0), np.zeros(n_rows, dtype=np.int64)
    ends = g[f"{name}_index"][()].astype(np.int64)
    counts = np.diff(np.concatenate([[0], ends]))
    total = int(ends[-1]) if len(ends) else 0
    stored = g.get(name)
    n_stored = stored.shape[0] if stored is not None else 0
    if len(ends) != n_rows or (counts < 0).any() or total > n_stored:
        msg = (
            f"{where}_index in {g.file.filename!r} does not index {where} row by row "
            f"({len(ends)} index entries for {n_rows} rows, {total} of {n_stored} values); "
            "the file is inconsistent"
        )
        raise SchemaError(msg)
    if total == 0:
        return np.zeros(0), counts
    assert stored is not None  # total > 0 and total <= n_stored
    if stored.dtype.kind not in "fiu":
        msg = f"{where} in {g.file.filename!r} holds {stored.dtype} values, not times"
        raise SchemaError(msg)
    return stored[:total].astype(np.float64), counts


def _presentations(f: Any, trials: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    groups = [g for name, g in f["intervals"].items() if name.endswith(L.PRESENTATIONS_SUFFIX)]
    if not groups:
        msg = f"{f.filename!r} has no intervals/*_presentations tables"
        raise NotAnOphysSessionError(msg)
    read = [_table_columns(g, L.PRESENTATION_SKIP, _presentation_column) for g in groups]
    tables = [cols for cols, _ in read]
    unread: list[str] = []
    for _, others in read:
        unread += [c for c in others if c not in unread and c not in L.PRESENTATION_DROP]
    lengths = [len(g["id"]) for g in groups]
    names: list[str] = []
    for t in tables:
        names += [c for c in t if c not in names]
    merged: dict[str, np.ndarray] = {}
    for col in names:
        parts = []
        kinds = {t[col].dtype.kind for t in tables if col in t}
        for t, n in zip(tables, lengths, strict=True):
            if col in t:
                v = t[col]
                if v.dtype.kind == "O":
                    v = np.where(v == "N/A", "", v).astype(object)
                parts.append(v)
            elif "O" in kinds:
                parts.append(np.full(n, "", dtype=object))
            elif kinds <= {"i", "u"} and \
                    L.PRESENTATION_RENAME.get(col, col) in L.PRESENTATION_INT_NULL:
                parts.append(np.full(n, INT_NULL, dtype=np.int64))
            else:
                parts.append(np.full(n, np.nan))
        merged[col] = np.concatenate(parts)
    order = np.argsort(merged["start_time"], kind="stable")
    out: dict[str, Any] = {}
    for col, values in merged.items():
        key = L.PRESENTATION_RENAME.get(col, col)
        values = values[order]
        spec = SPECS[key]
        if spec.dtype == "b1" and values.dtype.kind == "f":
            values = values == 1.0
        elif spec.dtype == "i8" and values.dtype.kind == "f":
            # 2021 files: end_frame is float with NaN for omitted flashes
            values = np.where(np.isnan(values), INT_NULL, values).astype(np.int64)
        out[key] = values
    n = len(order)
    out["stimulus_presentations_id"] = np.arange(n, dtype=np.int64)
    image = out.get("image_name", np.full(n, "", dtype=object))
    omitted = out.get("omitted", np.full(n, np.nan))
    out["omitted"] = omitted.astype(np.float64)
    if "is_image_novel" in out:
        out["is_image_novel"] = out["is_image_novel"].astype(np.float64)
    out["is_change"] = _compute.is_change_event(image, out["omitted"])
    out["flashes_since_change"] = _compute.flashes_since_change(
        image, out["omitted"], out["is_change"]).astype(np.int64)
    _add_trial_links(out, trials)
    for name, spec in SPECS.items():
        if spec.dims == ("stimulus_presentations_id",) and name not in out and spec.required:
            if spec.dtype == "O":
                out[name] = np.full(n, "", dtype=object)
            elif spec.dtype == "i8":
                out[name] = np.full(n, INT_NULL, dtype=np.int64)
            elif spec.dtype == "b1":
                out[name] = np.zeros(n, dtype=bool)
            else:
                out[name] = np.full(n, np.nan)
    return out, unread


def _presentation_column(name: str) -> bool:
    """Whether a stored presentation column is a variable of the Dataset."""
    if name in L.PRESENTATION_DROP:
        return False
    spec = SPECS.get(L.PRESENTATION_RENAME.get(name, name))
    return spec is not None and spec.dims == ("stimulus_presentations_id",)


def _add_trial_links(out: dict[str, Any], trials: dict[str, Any]) -> None:
    """AllenSDK ``add_active_flag`` / ``compute_trials_id_for_stimulus`` (2021 files)."""
    start = out["start_time"]
    has_image = np.array([bool(v) for v in out.get("image_name", np.full(len(start), ""))])
    t_start, t_stop = trials["trials_start_time"], trials["trials_stop_time"]
    if "active" not in out:
        active = (start > t_start.min()) & (start < t_stop.max()) & has_image
        if "stimulus_block" in out:
            blocks = np.unique(out["stimulus_block"][active])
            active = np.isin(out["stimulus_block"], blocks)
        out["active"] = active
    if "stimulus_presentations_trials_id" not in out:
        ids = np.full(len(start), INT_NULL, dtype=np.int64)
        in_range = (start < t_stop.max()) & has_image
        which = np.searchsorted(t_start, start, side="left") - 1
        ok = in_range & (which >= 0)
        ids[ok] = trials["trials_id"][which[ok]]
        out["stimulus_presentations_trials_id"] = ids
    if "is_sham_change" not in out and "stimulus_block" in out:
        catch = trials["catch"].astype(bool)
        frames = trials["change_frame"][catch]
        out["is_sham_change"] = np.isin(out["start_frame"], frames[frames != INT_NULL])


# --------------------------------------------------------------------------------------
# stimulus templates


def _templates(r: _Reader, meta: dict[str, Any]) -> dict[str, Any]:
    f = r.f
    if L.TEMPLATES not in f:
        return {}
    names = [k for k in f[L.TEMPLATES] if "movie" not in k]
    if not names:
        return {}
    if len(names) > 1:
        msg = f"{str(r.path)!r} has several image template sets {names}; expected one"
        raise SchemaError(msg)
    g = f[f"{L.TEMPLATES}/{names[0]}"]
    meta["stimulus_templates_image_set"] = names[0]
    out: dict[str, Any] = {"template_image_name": _read(g, "control_description")}
    chunks = {"template_image_name": 1}
    out["stimulus_template_warped"] = r.variable(
        "stimulus_template_warped", r.wrapper(g["data"].name, np.uint8), chunks)
    if "unwarped" in g:
        out["stimulus_template_unwarped"] = r.variable(
            "stimulus_template_unwarped", r.wrapper(g["unwarped"].name, np.float64), chunks)
    else:
        msg = f"{g.name} in {str(r.path)!r} has no 'unwarped' images"
        raise SchemaError(msg)
    return out


# --------------------------------------------------------------------------------------
# public entry points


def read_nwb(
    path: str | os.PathLike[str], options: SessionOptions, *, lock: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Read an AllenSDK NWB file into a lazy session Dataset, the opening options not applied.

    The ROIs that ``options`` leave out are not read at all; the options that derive
    variables (``likely_blink``, ``filtered_events``) are applied by
    :func:`ophys_xr.formats.open_source`, as for every format.

    Parameters
    ----------
    path
        Local path or URL of a ``behavior_ophys_experiment_*.nwb`` or
        ``behavior_session_*.nwb`` file.
    options
        The opening options.
    lock
        Lock serialising HDF5 reads (default: xarray's shared ``HDF5_LOCK``).
    storage_options
        fsspec options of a URL (e.g. ``{"timeout": (connect_s, read_s)}``, see
        :mod:`ophys_xr.remote`).

    Returns
    -------
    xarray.Dataset
        Dask-backed; closing it closes the file.
    """
    p, f = _open_file(path, storage_options)
    try:
        layout = L.detect(f, str(p))
        kind = L.session_kind(f, str(p))
        r = _Reader(p, f, layout.name, lock=lock or HDF5_LOCK, storage_options=storage_options)
        meta = _metadata(f, layout, kind)
        variables: dict[str, Any] = {}
        if kind == "behavior_ophys":
            variables["time"] = _ophys_time(r)
            variables.update(_cells(r, options.exclude_invalid_rois, meta))
        variables.update(_eye(r))
        variables.update(_running(r))
        variables.update(_licks_rewards(f))
        trials = _trials(f)
        variables.update(trials)
        pres, unread = _presentations(f, trials)
        variables.update(pres)
        variables.update(_templates(r, meta))
    except KeyError as err:
        msg = (
            f"{str(p)!r} lacks an item every AllenSDK Visual Behavior NWB file has ({err}); "
            "the file is incomplete or not a Visual Behavior (Ophys) session file"
        )
        raise NotAnOphysSessionError(msg) from err
    finally:
        f.close()
    if unread:
        meta["ophys_xr_unread_presentation_columns"] = " ".join(unread)
    ds = build_session_dataset(variables, meta, options)
    ds.encoding["source"] = str(p)
    ds.set_close(r.manager.close)
    return ds


def open_nwb_session(
    path: str | os.PathLike[str],
    *,
    exclude_invalid_rois: bool = True,
    eye_tracking_z_threshold: float = DEFAULT_EYE_TRACKING_Z_THRESHOLD,
    eye_tracking_dilation_frames: int = DEFAULT_EYE_TRACKING_DILATION_FRAMES,
    events_filter_scale_seconds: float = DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    events_filter_n_time_steps: int = DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
    lock: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Open an AllenSDK Visual Behavior Ophys NWB file as a lazy session Dataset.

    Parameters
    ----------
    path
        Local path or URL (``https://``, ``s3://`` through fsspec) of a
        ``behavior_ophys_experiment_*.nwb`` file (2021 or 2023 layout).  Remote files are
        read lazily with range requests, touching only the bytes needed.
    exclude_invalid_rois
        Keep only ROIs with ``valid_roi`` True (the AllenSDK default).
    eye_tracking_z_threshold, eye_tracking_dilation_frames
        Blink detection parameters (AllenSDK defaults 3.0 and 2; honoured, unlike in
        ``BehaviorOphysExperiment``).
    events_filter_scale_seconds, events_filter_n_time_steps
        The causal half-normal filter of ``filtered_events`` (AllenSDK defaults).
    lock
        Lock serialising HDF5 reads (default: xarray's shared ``HDF5_LOCK``).
    storage_options
        fsspec options of a URL, e.g. ``{"timeout": (connect_s, read_s)}``.

    Returns
    -------
    xarray.Dataset
        Dask-backed session Dataset; the file is opened read-only.
    """
    options = SessionOptions(
        exclude_invalid_rois=exclude_invalid_rois,
        eye_tracking_z_threshold=eye_tracking_z_threshold,
        eye_tracking_dilation_frames=eye_tracking_dilation_frames,
        events_filter_scale_seconds=events_filter_scale_seconds,
        events_filter_n_time_steps=events_filter_n_time_steps,
    )
    return open_source(path, options, engine="nwb", lock=lock, storage_options=storage_options)


class OphysBackendEntrypoint(BackendEntrypoint):
    """xarray backend: ``xr.open_dataset(path, engine="ophys")``."""

    description = "AllenSDK Visual Behavior Ophys NWB sessions (ophys_xr)"
    url = "https://github.com/ophys-xr/ophys_xr"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "exclude_invalid_rois",
        "eye_tracking_z_threshold",
        "eye_tracking_dilation_frames",
        "events_filter_scale_seconds",
        "events_filter_n_time_steps",
    )

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        exclude_invalid_rois: bool = True,
        eye_tracking_z_threshold: float = DEFAULT_EYE_TRACKING_Z_THRESHOLD,
        eye_tracking_dilation_frames: int = DEFAULT_EYE_TRACKING_DILATION_FRAMES,
        events_filter_scale_seconds: float = DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
        events_filter_n_time_steps: int = DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
    ) -> xr.Dataset:
        ds = open_nwb_session(
            filename_or_obj,
            exclude_invalid_rois=exclude_invalid_rois,
            eye_tracking_z_threshold=eye_tracking_z_threshold,
            eye_tracking_dilation_frames=eye_tracking_dilation_frames,
            events_filter_scale_seconds=events_filter_scale_seconds,
            events_filter_n_time_steps=events_filter_n_time_steps,
        )
        if drop_variables is not None:
            ds = ds.drop_vars(drop_variables, errors="ignore")
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            return Path(os.fspath(filename_or_obj)).suffix.lower() == ".nwb"
        except TypeError:
            return False
