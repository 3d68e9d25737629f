"""The AllenSDK session API over the session Dataset.

:class:`BehaviorSession` has every public name of AllenSDK 2.16.2's ``BehaviorSession``
(the behavior of any session file, behavior sessions without imaging included);
:class:`BehaviorOphysSession` (alias :data:`BehaviorOphysExperiment`) adds every public
name of AllenSDK 2.16.2's ``BehaviorOphysExperiment`` plus the seed-era helpers that
2.16 removed (``get_roi_masks``, ``deserialize_image``, ``get_max_projection``,
``get_average_projection``, ``running_data_df``, ``cache_clear``).  Each name returns the
type and the values that AllenSDK 2.16.2 returns for the same file, built from the lazy
session Dataset on first use and cached: opening reads only metadata and the small
tables, and a property reads only the variables it needs.

Where the AllenSDK is wrong (``neuropil_traces`` returning demixed traces, eye-tracking
thresholds ignored, ``metadata`` of 2021 files losing the container id and the imaging
depth, ...) this class does the right thing; ``docs/differences.md`` lists every
difference.

Examples
--------
>>> from ophys_xr.compat import BehaviorOphysSession
>>> path = "behavior_ophys_experiment_1.nwb"
>>> with BehaviorOphysSession.from_nwb_path(path) as session:  # doctest: +SKIP
...     dff = session.dff_traces
...     metrics = session.get_performance_metrics()
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import numbers
import os
import uuid
import warnings
from collections.abc import Hashable, Iterable, Iterator
from types import TracebackType
from typing import Any, NamedTuple, Self

import numpy as np
import pandas as pd
import xarray as xr

from ophys_xr import behavior
from ophys_xr._options import (
    DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
    DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    SessionOptions,
)
from ophys_xr.exceptions import (
    MissingDataError,
    NotAnOphysSessionError,
    OptionError,
    SessionClosedError,
)
from ophys_xr.model import apply_session_options
from ophys_xr.variables import (
    CELL_DIM as CELL,
    INT_NULL,
    PRES_DIM as PRES,
    SPECS,
    TRIAL_COLUMNS,
    validate,
)

__all__ = [
    "EYE_TRACKING_COLUMNS",
    "STIMULUS_PRESENTATIONS_COLUMN_PRIORITY",
    "BehaviorOphysExperiment",
    "BehaviorOphysSession",
    "BehaviorSession",
    "Image",
]

#: Bytes of one piece when a trace matrix read straight from its file becomes one array per
#: cell (:func:`_rows_by_cell`).
_PIECE_BYTES = 8 * 2**20

#: ``enforce_df_column_order`` priority list of AllenSDK 2.16.2's ``stimulus_presentations``;
#: the other columns follow in alphabetical order (the AllenSDK's order of those depends on
#: the string hash seed of the process).
STIMULUS_PRESENTATIONS_COLUMN_PRIORITY = (
    "stimulus_block", "stimulus_block_name", "image_index", "image_name",
    "movie_frame_index", "duration", "start_time", "end_time", "stop_time", "start_frame",
    "end_frame", "is_change", "is_image_novel", "omitted", "movie_repeat",
    "flashes_since_change", "trials_id",
)

#: Columns of ``eye_tracking``, in AllenSDK order (all float64 but ``likely_blink``).
EYE_TRACKING_COLUMNS = (
    "timestamps", "cr_area", "eye_area", "pupil_area", "likely_blink", "pupil_area_raw",
    "cr_area_raw", "eye_area_raw",
    "cr_center_x", "cr_center_y", "cr_width", "cr_height", "cr_phi",
    "eye_center_x", "eye_center_y", "eye_width", "eye_height", "eye_phi",
    "pupil_center_x", "pupil_center_y", "pupil_width", "pupil_height", "pupil_phi",
)


#: ``cell_specimen_table`` columns before ``roi_mask``, in AllenSDK order.
_CELL_COLUMNS = (
    "cell_roi_id", "height", "mask_image_plane", "max_correction_down", "max_correction_left",
    "max_correction_right", "max_correction_up", "valid_roi", "width", "x", "y",
)


# ---------------------------------------------------------------------------------------
# value conversions


def _datetime(text: str) -> _dt.datetime:
    value = _dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.UTC)


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):  # a one-item list read back from a netCDF attribute
        return [value]
    return [str(v) for v in value]


#: ``metadata`` keys in AllenSDK 2.16.2 order with the type the AllenSDK returns.
_METADATA = (
    ("equipment_name", str), ("sex", str), ("age_in_days", int),
    ("stimulus_frame_rate", np.float64), ("session_type", str),
    ("date_of_acquisition", _datetime), ("reporter_line", str), ("cre_line", str),
    ("behavior_session_uuid", _uuid), ("driver_line", _str_list), ("mouse_id", str),
    ("project_code", str), ("full_genotype", str), ("behavior_session_id", np.int64),
    ("indicator", str), ("emission_lambda", np.float64), ("excitation_lambda", np.float64),
    ("ophys_container_id", np.int64), ("field_of_view_height", np.int64),
    ("field_of_view_width", np.int64), ("imaging_depth", np.int64),
    ("targeted_imaging_depth", np.int64), ("imaging_plane_group", np.int64),
    ("imaging_plane_group_count", int), ("ophys_experiment_id", int),
    ("ophys_frame_rate", np.float64), ("ophys_session_id", np.int64),
    ("targeted_structure", str),
)

#: The first keys of :data:`_METADATA`: those of a behavior session (``BehaviorSession``).
_N_BEHAVIOR_METADATA = 14

#: ``get_performance_metrics()`` counts returned as python ints (``len(...)``); the other
#: counts are numpy int64 (pandas ``sum()`` of a bool column).
_PY_INT_METRICS = {"trial_count", "total_reward_count"}
#: Metrics that are numpy float64 even when NaN (``np.nanmax``, ``Series.sum``).
_NP_FLOAT_METRICS = {"total_reward_volume", "maximum_reward_rate"}


def _metric_value(key: str, value: float) -> Any:
    """A metric with the type AllenSDK 2.16.2 (pandas 1.5.3) returns."""
    if key in _PY_INT_METRICS:
        return int(value)
    if key.endswith("_count"):
        return np.int64(value)
    if key in _NP_FLOAT_METRICS:
        return np.float64(value)
    # pandas mean()/max() over no values returns the python float nan, else numpy float64
    return float("nan") if np.isnan(value) else np.float64(value)


def _object_column(items: Iterable[Any], index: pd.Index) -> pd.Series:
    """A Series of dtype object holding ``items`` as they are (arrays stay arrays)."""
    items = list(items)
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return pd.Series(out, index=index, dtype=object, copy=False)


def _strings(values: np.ndarray, index: pd.Index, *, empty_as_nan: bool = False) -> pd.Series:
    """A string column of dtype object, as pandas 1.5.3 gives (not pandas 3's ``str``)."""
    out = np.asarray(values, dtype=object).copy()
    if empty_as_nan:
        out[out == ""] = np.nan
    return pd.Series(out, index=index, dtype=object, copy=False)


def _rows_by_cell(*arrays: xr.DataArray) -> list[np.ndarray]:
    """(time, cell) trace matrices as C-ordered (cell, time) float64 arrays.

    Dask input is computed in one ``dask.array.store``: each piece is written straight into
    the results (transposed in tiles) as soon as it is computed, then dropped, so the peak
    memory is the results plus the pieces in flight (one with the synchronous scheduler).
    An array read straight from its file goes in pieces of about ``_PIECE_BYTES``
    (:func:`_read_straight`); any other (``filtered_events``, a selection of cells) goes a
    whole dask block at a time, as a piece of such a block would recompute all of it.
    Arrays of the same chunks are computed together, so a block they derive from
    (``events`` for ``filtered_events``) is read once.  With no scheduler configured and
    ``distributed`` not imported, dask's synchronous scheduler is named
    (:func:`_local_scheduler`).
    """
    import dask.array as da

    from ophys_xr._compute.eventlocked import copy_tiled

    datas = [a.transpose("time", CELL).data for a in arrays]
    outs = [np.empty(d.shape[::-1], dtype=np.float64) for d in datas]
    groups: dict[tuple, list[tuple[Any, np.ndarray]]] = {}
    for data, out in zip(datas, outs, strict=True):
        if getattr(data, "chunks", None) is None:
            copy_tiled(out, np.asarray(data).T)
        else:
            groups.setdefault(data.chunks, []).append((data, out))
    sources: list[Any] = []
    targets: list[Any] = []
    regions: list[tuple[slice, slice]] = []
    for chunks, members in groups.items():
        piece_bytes = _PIECE_BYTES if len(members) == 1 and _read_straight(members[0][0]) \
            else None
        for t, c in _pieces(chunks, piece_bytes):
            for data, out in members:
                sources.append(data[t, c])
                targets.append(_IntoRows(out))
                regions.append((t, c))
    if sources:  # one compute: each piece is written as soon as it is read, then dropped
        da.store(sources, targets, regions=regions, lock=False, scheduler=_local_scheduler())
    return outs


class _IntoRows:
    """``dask.array.store`` target: (time, cell) pieces written into a (cell, time) array."""

    def __init__(self, out: np.ndarray) -> None:
        self.out = out
        self.shape = out.shape[::-1]
        self.dtype = out.dtype
        self.ndim = out.ndim
        self.token = uuid.uuid4().hex

    def __dask_tokenize__(self) -> object:
        return ("_IntoRows", self.token)  # not the contents: dask would hash them per piece

    def __setitem__(self, key: tuple[slice, slice], value: Any) -> None:
        from ophys_xr._compute.eventlocked import copy_tiled

        t, c = key
        copy_tiled(self.out[c, t], np.asarray(value, dtype=np.float64).T)


def _local_scheduler() -> Any:
    """dask's synchronous scheduler when no distributed client can exist, else None (dask
    picks).

    Without a scheduler, every ``dask.compute`` looks for a distributed client, which
    imports ``distributed`` (0.2-0.7 s, once per process) even when nothing could have
    started one: not imported, and no scheduler configured.  Synchronous: the pieces are
    read one after the other (as when each was its own compute), so one is in memory at a
    time; two threads read no faster (measured on the hour-long session).
    """
    import sys

    import dask

    if "distributed" in sys.modules or dask.config.get("scheduler", None) is not None:
        return None
    import dask.local

    return dask.local.get_sync


def _read_straight(data: Any) -> bool:
    """Whether a dask array is one ``from_array`` read (its source and its read layer), so
    dask reads a slice of a block without reading the rest of the block."""
    return len(data.dask.layers) <= 2


def _pieces(chunks: tuple[tuple[int, ...], tuple[int, ...]], piece_bytes: int | None
            ) -> Iterator[tuple[slice, slice]]:
    """``(time, cell)`` slices covering (time, cell) dask ``chunks`` block by block, each
    block split into pieces of about ``piece_bytes`` float64 (None: whole blocks) along the
    chunked axis: time, or the cells when time is one chunk (a store's layout)."""
    time_chunks, cell_chunks = chunks
    along_time = len(time_chunks) > 1 or len(cell_chunks) == 1
    t_starts = np.cumsum((0, *time_chunks[:-1])).tolist()
    c_starts = np.cumsum((0, *cell_chunks[:-1])).tolist()
    for t0, t_size in zip(t_starts, time_chunks, strict=True):
        for c0, c_size in zip(c_starts, cell_chunks, strict=True):
            parts = -(-t_size * c_size * 8 // piece_bytes) if piece_bytes else 1
            start, length = (t0, t_size) if along_time else (c0, c_size)
            step = max(1, -(-length // max(parts, 1)))
            for lo in range(start, start + length, step):
                part = slice(lo, min(lo + step, start + length))
                if along_time:
                    yield part, slice(c0, c0 + c_size)
                else:
                    yield slice(t0, t0 + t_size), part


def _empty_table(columns: Iterable[str]) -> pd.DataFrame:
    """The AllenSDK's table of an absent module: ``DataFrame`` of empty lists (float64 columns
    under pandas 1.5.3, which AllenSDK 2.16.2 pins), RangeIndex."""
    return pd.DataFrame({c: np.zeros(0, dtype=np.float64) for c in columns})


def _pixel_spacing(ds: xr.Dataset) -> tuple[float, float]:
    spacing = ds.attrs.get("pixel_spacing")
    if spacing is None or len(spacing) != 2:
        msg = (
            "the session Dataset has no ds.attrs['pixel_spacing'] (the (column, row) pixel "
            f"size read from the NWB images' 'resolution'); got {spacing!r}"
        )
        raise MissingDataError(msg)
    return (float(spacing[0]), float(spacing[1]))


# ---------------------------------------------------------------------------------------
# images


class Image(NamedTuple):
    """An image and its pixel size, as the AllenSDK's ``Image``.

    Attributes
    ----------
    data
        The pixels, shape (rows, columns), dtype as stored in the file.
    spacing
        Physical size of one pixel in ``(x, y)`` = ``(column, row)`` order (the SimpleITK
        order the AllenSDK uses).
    unit
        Unit of ``spacing`` (``"mm"``).
    """

    data: np.ndarray
    spacing: tuple[float, ...]
    unit: str = "mm"

    def __eq__(self, other: object) -> bool:
        """Same pixels (``np.array_equal``), spacing and unit, as the AllenSDK compares."""
        if not isinstance(other, Image):
            return NotImplemented
        return (
            bool(np.array_equal(self.data, other.data))
            and tuple(self.spacing) == tuple(other.spacing)
            and self.unit == other.unit
        )

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(image)`` gives the pixels."""
        return np.array(self.data, dtype=dtype)


# holds an ndarray, as the AllenSDK's Image: not hashable
Image.__hash__ = None  # type: ignore[assignment,method-assign]


# ---------------------------------------------------------------------------------------
# the session


class BehaviorSession:
    """A behavior session with the AllenSDK 2.16.2 ``BehaviorSession`` API.

    The behavior of any session file: a behavior session without imaging
    (``behavior_session_*.nwb``) or the behavior part of an imaging experiment.  Build it
    with :meth:`from_nwb_path` (an NWB file, a Zarr store or a netCDF file) or
    :meth:`from_dataset` (an open session Dataset).  Every data attribute is computed from
    the lazy Dataset on first use, reading only what it needs, and cached;
    :meth:`cache_clear` drops the cache.  A session from :meth:`from_nwb_path` owns its
    file: close it with :meth:`close` or use it as a context manager.  After ``close()``
    every data attribute raises :class:`~ophys_xr.exceptions.SessionClosedError`.

    Parameters
    ----------
    dataset
        A session Dataset (``ophys_xr.open_session``), used as it is.
    """

    #: ``metadata`` keys and value types.
    _metadata_keys: tuple[tuple[str, Any], ...] = _METADATA[:_N_BEHAVIOR_METADATA]

    def __init__(self, dataset: xr.Dataset) -> None:
        if not isinstance(dataset, xr.Dataset):
            msg = (
                f"{type(self).__name__} needs a session xarray.Dataset, got "
                f"{type(dataset).__name__}; use {type(self).__name__}.from_nwb_path(path) for "
                "a file"
            )
            raise OptionError(msg)
        self._check_kind(dataset)
        self._ds: xr.Dataset | None = dataset
        self._owned: xr.Dataset | None = None

    def _check_kind(self, dataset: xr.Dataset) -> None:
        """Every session kind has the behavior data: nothing to check."""

    # ---- construction and life cycle --------------------------------------------------

    @classmethod
    def from_nwb_path(
        cls,
        nwb_path: str | os.PathLike[str],
        *,
        eye_tracking_z_threshold: float = 3.0,
        eye_tracking_dilation_frames: int = 2,
        events_filter_scale_seconds: float = DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
        events_filter_n_time_steps: int = DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
        exclude_invalid_rois: bool = True,
    ) -> Self:
        """Open a session file lazily (AllenSDK ``BehaviorOphysExperiment.from_nwb_path``).

        Parameters
        ----------
        nwb_path
            An AllenSDK session file (2021 or 2023 layout, or a URL): any kind for
            :class:`BehaviorSession`, an imaging experiment for
            :class:`BehaviorOphysSession`; or a Zarr store / netCDF file written from a
            session Dataset.
        eye_tracking_z_threshold, eye_tracking_dilation_frames
            Blink detection of ``eye_tracking`` (honoured, unlike in AllenSDK 2.14+).
        events_filter_scale_seconds, events_filter_n_time_steps
            The causal half-normal filter of ``events['filtered_events']``.
        exclude_invalid_rois
            Keep only the ROIs whose ``valid_roi`` is True.

        Returns
        -------
        BehaviorOphysSession
            Owns the file; close it with :meth:`close` (or ``with ... as session``).

        Raises
        ------
        OphysXrError
            The file cannot be opened (see ``ophys_xr.open_session``) or an option is
            invalid.
        """
        from ophys_xr.io import open_session

        opened = open_session(
            nwb_path,
            exclude_invalid_rois=exclude_invalid_rois,
            eye_tracking_z_threshold=eye_tracking_z_threshold,
            eye_tracking_dilation_frames=eye_tracking_dilation_frames,
            events_filter_scale_seconds=events_filter_scale_seconds,
            events_filter_n_time_steps=events_filter_n_time_steps,
        )
        try:
            session = cls(opened)
        except BaseException:
            opened.close()
            raise
        session._owned = opened
        return session

    @classmethod
    def from_dataset(
        cls,
        ds: xr.Dataset,
        *,
        eye_tracking_z_threshold: float | None = None,
        eye_tracking_dilation_frames: int | None = None,
        events_filter_scale_seconds: float | None = None,
        events_filter_n_time_steps: int | None = None,
    ) -> Self:
        """Wrap an open session Dataset (not copied, never modified, not closed).

        Parameters
        ----------
        ds
            A session Dataset (``ophys_xr.open_session``, ``simulate_session``, ...).
        eye_tracking_z_threshold, eye_tracking_dilation_frames
            Recompute ``likely_blink`` with these (None: as in ``ds``).
        events_filter_scale_seconds, events_filter_n_time_steps
            Recompute ``filtered_events`` with these (None: as in ``ds``).

        Returns
        -------
        BehaviorOphysSession
            Does not own ``ds``: :meth:`close` leaves it open.
        """
        if not isinstance(ds, xr.Dataset):
            msg = (
                f"from_dataset needs a session xarray.Dataset, got {type(ds).__name__}; "
                "use BehaviorOphysSession.from_nwb_path(path) for a file"
            )
            raise OptionError(msg)
        options = SessionOptions.recorded(
            ds.attrs,
            eye_tracking_z_threshold=eye_tracking_z_threshold,
            eye_tracking_dilation_frames=eye_tracking_dilation_frames,
            events_filter_scale_seconds=events_filter_scale_seconds,
            events_filter_n_time_steps=events_filter_n_time_steps,
        )
        return cls(apply_session_options(ds, options))

    def close(self) -> None:
        """Drop the cache and close the file if this session opened it (idempotent)."""
        self.cache_clear()
        if self._owned is not None:
            self._owned.close()
            self._owned = None
        self._ds = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._ds is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._ds is None:
            return f"<{type(self).__name__} (closed)>"
        bsid = self._ds.attrs.get("behavior_session_id")
        return f"<{type(self).__name__} behavior_session_id={bsid}>"

    def cache_clear(self) -> None:
        """Forget every computed attribute; the next access recomputes it from the Dataset."""
        for klass in type(self).__mro__:
            for name, value in vars(klass).items():
                if isinstance(value, functools.cached_property):
                    self.__dict__.pop(name, None)

    def list_data_attributes_and_methods(self) -> list[str]:
        """Names of the attributes and methods that give data (AllenSDK convenience).

        Returns
        -------
        list of str
            Sorted; every name of AllenSDK 2.16.2's list plus the seed-era helpers.
        """
        skip = {"cache_clear", "close", "closed", "dataset", "from_dataset", "from_nwb_path",
                "list_data_attributes_and_methods"}
        return sorted(n for n in dir(type(self)) if not n.startswith("_") and n not in skip)

    @property
    def dataset(self) -> xr.Dataset:
        """The lazy session Dataset behind this object (the ``ophys_xr`` way in)."""
        return self._data()

    def _data(self) -> xr.Dataset:
        if self._ds is None:
            name = type(self).__name__
            msg = (
                f"this {name} was closed, so its data is no longer available; keep the "
                "DataFrames you took from it before close(), or open the file again with "
                f"{name}.from_nwb_path(path)"
            )
            raise SessionClosedError(msg)
        return self._ds

    # ---- ids and metadata -----------------------------------------------------------------

    @functools.cached_property
    def behavior_session_id(self) -> np.int64:
        """Behavior session id (numpy int64)."""
        return np.int64(self._attr("behavior_session_id"))

    def _attr(self, key: str) -> Any:
        ds = self._data()
        if key not in ds.attrs:
            msg = (
                f"the session Dataset has no attribute {key!r}; attributes present: "
                f"{sorted(ds.attrs)}"
            )
            raise MissingDataError(msg)
        return ds.attrs[key]

    @functools.cached_property
    def metadata(self) -> dict[str, Any]:
        """Session metadata: the keys, order and value types of AllenSDK 2.16.2.

        ``date_of_acquisition`` is a timezone-aware ``datetime``, ``behavior_session_uuid``
        a ``uuid.UUID``; keys the file has no value for are None.  2021 files: the
        container id (stored as ``experiment_container_id``) and the imaging depth are
        returned (the AllenSDK returns None for both).
        """
        attrs = self._data().attrs
        out: dict[str, Any] = {}
        for key, kind in self._metadata_keys:
            value = attrs.get(key)
            out[key] = None if value is None else kind(value)
        if "imaging_plane_group_count" not in out:
            return out
        count = int(attrs.get("imaging_plane_group_count", 0))
        multiplane = count > 1
        out["imaging_plane_group_count"] = np.int64(count) if multiplane else 0
        if not multiplane:
            out["imaging_plane_group"] = None
        return out

    @functools.cached_property
    def task_parameters(self) -> dict[str, Any]:
        """Task parameters (keys in alphabetical order, as the AllenSDK)."""
        return json.loads(self._attr("task_parameters"))

    @functools.cached_property
    def eye_tracking_rig_geometry(self) -> dict[str, Any]:
        """Eye-tracking rig geometry; positions and rotations as lists (x, y, z).

        ``{}`` with a warning when the file has none (as the AllenSDK).
        """
        ds = self._data()
        if "eye_tracking_rig_geometry" not in ds.attrs:
            warnings.warn(
                "this session has no eye-tracking rig geometry (NWB group "
                "processing/eye_tracking_rig_metadata); eye_tracking_rig_geometry is {}",
                UserWarning,
                stacklevel=2,
            )
            return {}
        return json.loads(ds.attrs["eye_tracking_rig_geometry"])

    # ---- timestamps ------------------------------------------------------------------------

    @functools.cached_property
    def stimulus_timestamps(self) -> np.ndarray:
        """Stimulus (vsync) frame times without monitor delay, s (float64)."""
        ds = self._data()
        validate(ds, "stimulus_timestamps", purpose="stimulus_timestamps")
        return np.asarray(ds["stimulus_timestamps"].values, dtype=np.float64)

    # ---- eye tracking ------------------------------------------------------------------------

    @functools.cached_property
    def eye_tracking(self) -> pd.DataFrame:
        """Eye tracking per camera frame, blink-filtered with this session's thresholds.

        Index ``frame``; the AllenSDK's 23 columns (:data:`EYE_TRACKING_COLUMNS`).  An empty
        table with a warning when the session has no eye tracking (as the AllenSDK).
        """
        ds = self._data()
        names = list(EYE_TRACKING_COLUMNS[1:])
        if "eye_area_raw" not in ds:
            warnings.warn(
                "this session has no eye tracking (NWB group acquisition/EyeTracking); "
                "eye_tracking is an empty table",
                UserWarning,
                stacklevel=2,
            )
            empty = {c: np.zeros(0, dtype=bool if c == "likely_blink" else np.float64)
                     for c in EYE_TRACKING_COLUMNS}
            return pd.DataFrame(empty, index=pd.Index(np.zeros(0, dtype=np.int64), name="frame"))
        validate(ds, ("eye_frame", "eye_timestamps", *names), purpose="eye_tracking")
        values = ds[names].compute()  # one pass: the blink mask is computed once
        data = {"timestamps": np.asarray(ds["eye_timestamps"].values, dtype=np.float64)}
        data.update({c: np.asarray(values[c].values) for c in names})
        return pd.DataFrame(data, index=pd.Index(np.asarray(ds["eye_frame"].values),
                                                 name="frame"))

    # ---- running -----------------------------------------------------------------------------

    def _speed(self, var: str) -> pd.DataFrame:
        ds = self._data()
        validate(ds, (var, "stimulus_timestamps"), purpose=var)
        return pd.DataFrame({"timestamps": self.stimulus_timestamps,
                             "speed": np.asarray(ds[var].values, dtype=np.float64)})

    @functools.cached_property
    def running_speed(self) -> pd.DataFrame:
        """Low-pass filtered running speed, cm/s: columns ``timestamps``, ``speed``."""
        return self._speed("running_speed")

    @functools.cached_property
    def raw_running_speed(self) -> pd.DataFrame:
        """Unfiltered running speed, cm/s: columns ``timestamps``, ``speed``."""
        return self._speed("raw_running_speed")

    def _running_df(self, var: str) -> pd.DataFrame:
        ds = self._data()
        validate(ds, (var, "stimulus_timestamps"), purpose="running_data_df")
        names = [var] + [n for n in ("dx", "v_sig", "v_in") if n in ds]
        values = ds[names].compute()
        data = {("speed" if n == var else n): np.asarray(values[n].values) for n in names}
        return pd.DataFrame(data, index=pd.Index(self.stimulus_timestamps, name="timestamps"))

    @functools.cached_property
    def running_data_df(self) -> pd.DataFrame:
        """The signals behind running speed by timestamp (seed era): ``speed`` (filtered),
        ``dx``, ``v_sig``, ``v_in`` (those the file has)."""
        return self._running_df("running_speed")

    @functools.cached_property
    def raw_running_data_df(self) -> pd.DataFrame:
        """As :attr:`running_data_df` with the unfiltered ``speed`` (seed era)."""
        return self._running_df("raw_running_speed")

    # ---- behavior tables ---------------------------------------------------------------------

    @functools.cached_property
    def licks(self) -> pd.DataFrame:
        """Licks: ``timestamps`` (s) and stimulus ``frame``.

        Without licks (passive sessions: the file has no licking module) both columns are
        empty float64, as AllenSDK 2.16.2 builds the table from empty lists.
        """
        ds = self._data()
        validate(ds, ("licks_timestamps", "licks_frame"), purpose="licks")
        if ds.sizes["lick"] == 0:
            return _empty_table(("timestamps", "frame"))
        return pd.DataFrame({
            "timestamps": np.asarray(ds["licks_timestamps"].values, dtype=np.float64),
            "frame": np.asarray(ds["licks_frame"].values, dtype=np.int64),
        })

    @functools.cached_property
    def rewards(self) -> pd.DataFrame:
        """Rewards: ``volume`` (mL), ``timestamps`` (s), ``auto_rewarded``.

        Without rewards (passive sessions: the file has no rewards module) every column is
        empty float64, as AllenSDK 2.16.2 builds the table from empty lists.
        """
        ds = self._data()
        validate(ds, ("rewards_volume", "rewards_timestamps", "rewards_auto_rewarded"),
                 purpose="rewards")
        if ds.sizes["reward"] == 0:
            return _empty_table(("volume", "timestamps", "auto_rewarded"))
        return pd.DataFrame({
            "volume": np.asarray(ds["rewards_volume"].values, dtype=np.float64),
            "timestamps": np.asarray(ds["rewards_timestamps"].values, dtype=np.float64),
            "auto_rewarded": np.asarray(ds["rewards_auto_rewarded"].values, dtype=bool),
        })

    @functools.cached_property
    def trials(self) -> pd.DataFrame:
        """The trials table: index ``trials_id``, the AllenSDK 2.16.2 columns.

        ``lick_times`` holds one float64 array per trial; string columns are dtype object.
        """
        ds = self._data()
        validate(ds, [v for _, v in TRIAL_COLUMNS if v != "lick_times"] + ["trials_id"],
                 purpose="trials")
        index = pd.Index(np.asarray(ds["trials_id"].values, dtype=np.int64), name="trials_id")
        times, counts = behavior.trial_licks(ds)
        data: dict[str, Any] = {}
        for column, var in TRIAL_COLUMNS:
            if var == "lick_times":
                data[column] = _object_column(np.split(times, np.cumsum(counts)[:-1]), index)
                continue
            values = np.asarray(ds[var].values)
            data[column] = _strings(values, index) if values.dtype.kind in "OUT" else values
        return pd.DataFrame(data, index=index)

    @functools.cached_property
    def stimulus_presentations(self) -> pd.DataFrame:
        """Stimulus presentations: index ``stimulus_presentations_id``.

        Columns: :data:`STIMULUS_PRESENTATIONS_COLUMN_PRIORITY` (those present) first, the
        others in alphabetical order.  ``is_image_novel`` and ``omitted`` are pandas
        ``boolean`` (2021 files: ``omitted`` numpy bool and ``end_frame`` float64 with NaN
        for omitted flashes, as stored); a missing string (a stimulus without images) is
        NaN.
        """
        ds = self._data()
        validate(ds, (PRES, "start_time", "end_time"), purpose="stimulus_presentations")
        index = pd.Index(np.asarray(ds[PRES].values, dtype=np.int64), name=PRES)
        layout = str(ds.attrs.get("nwb_layout", "2023"))
        columns: dict[str, Any] = {}
        for name, var in ds.data_vars.items():
            if var.dims != (PRES,):
                continue
            key = "trials_id" if name == "stimulus_presentations_trials_id" else str(name)
            values = np.asarray(var.values)
            spec = SPECS.get(str(name))
            if spec is not None and spec.nullable_bool:
                missing = np.isnan(values)
                if layout == "2021" and not missing.any():
                    columns[key] = values == 1.0
                else:
                    columns[key] = pd.arrays.BooleanArray(values == 1.0, missing)
            elif values.dtype.kind in "OUT":
                columns[key] = _strings(values, index, empty_as_nan=True)
            elif layout == "2021" and key == "end_frame":
                # stored as float64, NaN for omitted flashes (their table has no end_frame)
                columns[key] = np.where(values == INT_NULL, np.nan, values.astype(np.float64))
            else:
                columns[key] = values
        first = [c for c in STIMULUS_PRESENTATIONS_COLUMN_PRIORITY if c in columns]
        rest = sorted(c for c in columns if c not in STIMULUS_PRESENTATIONS_COLUMN_PRIORITY)
        return pd.DataFrame({c: columns[c] for c in first + rest}, index=index)

    @functools.cached_property
    def stimulus_templates(self) -> pd.DataFrame | None:
        """Template images: index ``image_name``, columns ``unwarped``, ``warped`` (arrays).

        ``.name`` is the image set.  None if the file has no image templates (as the
        AllenSDK).
        """
        ds = self._data()
        if "stimulus_template_warped" not in ds:
            return None
        validate(ds, ("template_image_name", "stimulus_template_warped",
                      "stimulus_template_unwarped"), purpose="stimulus_templates")
        index = pd.Index(_strings(ds["template_image_name"].values,
                                  pd.RangeIndex(ds.sizes["template_image_name"])),
                         name="image_name", dtype=object)
        both = ds[["stimulus_template_unwarped", "stimulus_template_warped"]].compute()
        df = pd.DataFrame({
            "unwarped": _object_column(np.asarray(both["stimulus_template_unwarped"].values),
                                       index),
            "warped": _object_column(np.asarray(both["stimulus_template_warped"].values),
                                     index),
        }, index=index)
        df.name = str(ds.attrs.get("stimulus_templates_image_set", ""))
        return df

    # ---- performance -------------------------------------------------------------------------

    def get_reward_rate(self) -> np.ndarray:
        """Rewards per minute per trial (float64, NaN for the first 10 trials)."""
        return np.asarray(behavior.reward_rate(self._data()).values, dtype=np.float64)

    def get_rolling_performance_df(self) -> pd.DataFrame:
        """Rolling reward rate, hit / false-alarm rates and d′, indexed by ``trials_id``."""
        perf = behavior.performance(self._data())
        return pd.DataFrame(
            {k: np.asarray(perf[k].values, dtype=np.float64)
             for k in behavior.ROLLING_PERFORMANCE_KEYS},
            index=pd.Index(np.asarray(perf["trials_id"].values, dtype=np.int64),
                           name="trials_id"),
        )

    def get_performance_metrics(self, engaged_trial_reward_rate_threshold: float = 2.0
                                ) -> dict[str, Any]:
        """The AllenSDK 2.16.2 performance metrics (keys, order and value types).

        Parameters
        ----------
        engaged_trial_reward_rate_threshold
            A trial is engaged when its reward rate is strictly above this (rewards/min).

        Returns
        -------
        dict
            ``trial_count``/``total_reward_count`` python ints, the other counts numpy
            int64, rates numpy float64 (python float NaN for a mean over no trials).
        """
        perf = behavior.performance(
            self._data(), engaged_trial_reward_rate_threshold=engaged_trial_reward_rate_threshold)
        return {k: _metric_value(k, perf[k].item()) for k in behavior.PERFORMANCE_METRIC_KEYS}


class BehaviorOphysSession(BehaviorSession):
    """An ophys experiment with the AllenSDK 2.16.2 ``BehaviorOphysExperiment`` API.

    Everything of :class:`BehaviorSession` plus the cells, traces, images and imaging
    metadata.  Build it with :meth:`from_nwb_path` (an NWB file, a Zarr store or a netCDF
    file) or :meth:`from_dataset` (an open session Dataset); a behavior session without
    imaging is refused (open it as :class:`BehaviorSession`).

    Parameters
    ----------
    dataset
        A session Dataset of an imaging experiment (``ophys_xr.open_session``), used as it
        is.
    """

    _metadata_keys = _METADATA

    def _check_kind(self, dataset: xr.Dataset) -> None:
        if dataset.attrs.get("session_kind", "behavior_ophys") != "behavior_ophys":
            source = dataset.encoding.get("source", "the Dataset")
            msg = (
                f"{source!r} is a behavior session without imaging (no cells or traces); "
                "open it with ophys_xr.BehaviorSession.from_nwb_path (the AllenSDK's "
                "BehaviorSession API)"
            )
            raise NotAnOphysSessionError(msg)

    @classmethod
    def from_lims(cls, ophys_experiment_id: int, eye_tracking_z_threshold: float = 3.0,
                  eye_tracking_dilation_frames: int = 2, *, cache: Any = None) -> Self:
        """Open an experiment of the public release by its id (AllenSDK ``from_lims``).

        LIMS is the Allen Institute's internal database, reachable only from inside the
        Institute; the AllenSDK's ``from_lims`` reads from it.  This reads the released
        experiment instead: the file that the release's manifest names for the id,
        streamed lazily by URL (only what is used is transferred).

        Parameters
        ----------
        ophys_experiment_id
            A row of the release's ``ophys_experiment_table``.
        eye_tracking_z_threshold, eye_tracking_dilation_frames
            Blink detection of ``eye_tracking`` (honoured).
        cache
            An :class:`ophys_xr.ProjectCache`; default
            ``ProjectCache.from_s3_cache(ophys_xr.cache.default_cache_dir())`` (the public
            bucket; the manifest and metadata tables are downloaded there once).

        Returns
        -------
        BehaviorOphysSession
            Owns the opened file; close it with :meth:`close`.

        Raises
        ------
        OptionError
            The id is not an experiment of the release.
        """
        from ophys_xr.cache import ProjectCache, default_cache_dir

        if cache is None:
            cache = ProjectCache.from_s3_cache(default_cache_dir())
        return cls.from_nwb_path(cache.experiment_source(ophys_experiment_id),
                                 eye_tracking_z_threshold=eye_tracking_z_threshold,
                                 eye_tracking_dilation_frames=eye_tracking_dilation_frames)

    def __repr__(self) -> str:
        if self._ds is None:
            return f"<{type(self).__name__} (closed)>"
        oeid = self._ds.attrs.get("ophys_experiment_id")
        return (f"<{type(self).__name__} ophys_experiment_id={oeid} "
                f"({self._ds.sizes.get(CELL, 0)} cells)>")

    @functools.cached_property
    def ophys_experiment_id(self) -> int:
        """Ophys experiment id (python int)."""
        return int(self._attr("ophys_experiment_id"))

    @functools.cached_property
    def ophys_session_id(self) -> np.int64:
        """Ophys session id (numpy int64)."""
        return np.int64(self._attr("ophys_session_id"))

    def update_targeted_imaging_depth(self, ophys_experiment_ids: Iterable[int],
                                      lims_db: Any = None) -> None:
        """Recompute the container's targeted imaging depth: needs the AllenSDK's LIMS.

        Raises
        ------
        MissingDataError
            Always: the value needs the imaging depths of the container's other experiments,
            which only the Allen Institute's internal database (LIMS) has.  The file's value
            is ``metadata['targeted_imaging_depth']``.
        """
        del lims_db
        ids = list(ophys_experiment_ids)
        msg = (
            f"update_targeted_imaging_depth({ids}) needs the imaging depths of the other "
            "experiments of the container from LIMS (the Allen Institute's internal "
            "database), which ophys_xr does not use; the value stored in this file is "
            "metadata['targeted_imaging_depth']"
        )
        raise MissingDataError(msg)

    @functools.cached_property
    def ophys_timestamps(self) -> np.ndarray:
        """Ophys frame times, s (float64)."""
        ds = self._data()
        validate(ds, "time", purpose="ophys_timestamps")
        return np.asarray(ds["time"].values, dtype=np.float64)

    # ---- cells -----------------------------------------------------------------------------

    @functools.cached_property
    def _cell_index(self) -> pd.Index:
        """The AllenSDK ``cell_specimen_id`` index: -1 becomes None (object) if any."""
        ds = self._data()
        validate(ds, (CELL, "cell_roi_id"), purpose="the cell tables")
        ids = np.asarray(ds[CELL].values, dtype=np.int64)
        if (ids == -1).any():
            return pd.Index([None if v == -1 else int(v) for v in ids], dtype=object, name=CELL)
        return pd.Index(ids, name=CELL)

    @functools.cached_property
    def cell_specimen_table(self) -> pd.DataFrame:
        """The ROIs: index ``cell_specimen_id``, AllenSDK columns, ``roi_mask`` per ROI.

        Reads every ROI mask (a full-field-of-view bool array per row).
        """
        ds = self._data()
        validate(ds, (*_CELL_COLUMNS, "roi_mask"), purpose="cell_specimen_table")
        index = self._cell_index
        data: dict[str, Any] = {c: np.asarray(ds[c].values) for c in _CELL_COLUMNS}
        data["roi_mask"] = _object_column(np.asarray(ds["roi_mask"].values), index)
        return pd.DataFrame(data, index=index)

    @functools.cached_property
    def roi_masks(self) -> pd.DataFrame:
        """``cell_specimen_table[['cell_roi_id', 'roi_mask']]``."""
        return self.cell_specimen_table[["cell_roi_id", "roi_mask"]]

    def _positions(self, cell_specimen_ids: Any) -> np.ndarray:
        """Row positions of cell ids (None or -1 select every unmatched ROI)."""
        index = self._cell_index
        if cell_specimen_ids is None:
            return np.arange(len(index))
        if isinstance(cell_specimen_ids, numbers.Integral):
            wanted: list[Any] = [cell_specimen_ids]
        else:
            wanted = list(cell_specimen_ids)
        raw = np.asarray(self._data()[CELL].values, dtype=np.int64)
        positions: list[np.ndarray] = []
        unknown: list[Any] = []
        for value in wanted:
            key = -1 if value is None else value
            if isinstance(key, bool) or not isinstance(key, numbers.Integral):
                unknown.append(value)
                continue
            found = np.flatnonzero(raw == int(key))
            if found.size == 0:
                unknown.append(value)
            positions.append(found)
        if unknown:
            msg = (
                f"cell_specimen_id {unknown[:10]} not in this session, which has "
                f"{len(index)} ROIs (cell_specimen_table.index); unmatched ROIs are None"
            )
            raise MissingDataError(msg)
        return np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)

    def get_cell_specimen_ids(self) -> np.ndarray:
        """``cell_specimen_table.index.values`` (legacy AllenSDK helper).

        Raises
        ------
        MissingDataError
            No ROI has a cell_specimen_id (the AllenSDK raises ValueError).
        """
        ids = self._cell_index.values
        if len(ids) and np.isnan(ids.astype(float)).all():
            msg = (
                f"cell_specimen_id values not assigned for {self.ophys_experiment_id}: no ROI "
                "of this session is matched to a cell; use cell_specimen_table.cell_roi_id"
            )
            raise MissingDataError(msg)
        return ids

    def get_cell_specimen_indices(self, cell_specimen_ids: Iterable[Hashable]) -> list[Any]:
        """Row positions of ``cell_specimen_ids`` in ``cell_specimen_table`` (legacy).

        Returns
        -------
        list
            ``cell_specimen_table.index.get_loc(id)`` of each id (an int; a slice or a bool
            mask for an id that several ROIs share, e.g. None).

        Raises
        ------
        MissingDataError
            An id is not in the table.
        """
        index = self._cell_index
        out = []
        for csid in cell_specimen_ids:
            try:
                out.append(index.get_loc(csid))
            except KeyError as err:
                msg = (
                    f"cell_specimen_id {csid!r} not in this session's cell_specimen_table "
                    f"({len(index)} ROIs)"
                )
                raise MissingDataError(msg) from err
        return out

    def get_roi_masks(self, cell_specimen_ids: Any = None) -> xr.DataArray:
        """ROI masks as the seed-era (AllenSDK 2.3-2.6) DataArray.

        Parameters
        ----------
        cell_specimen_ids
            One id, a list of ids (in this order), or None for every ROI.

        Returns
        -------
        xarray.DataArray
            uint8 0/1 with dims (``cell_specimen_id``, ``row``, ``column``); ``row`` and
            ``column`` are pixel centres in mm; attrs ``spacing`` ((x, y), mm) and
            ``unit``.  A single ROI is squeezed to (``row``, ``column``).
        """
        ds = self._data()
        validate(ds, "roi_mask", purpose="get_roi_masks")
        positions = self._positions(cell_specimen_ids)
        masks = np.asarray(ds["roi_mask"].isel({CELL: positions}).values).astype(np.uint8)
        sx, sy = _pixel_spacing(ds)
        height, width = masks.shape[1:]
        out = xr.DataArray(
            masks,
            dims=(CELL, "row", "column"),
            coords={
                CELL: self._cell_index.values[positions],
                "row": np.arange(height) * sy + sy / 2,
                "column": np.arange(width) * sx + sx / 2,
            },
            attrs={"spacing": (sx, sy), "unit": str(ds.attrs.get("pixel_spacing_unit", "mm"))},
        )
        return out.squeeze(drop=True)

    # ---- traces ----------------------------------------------------------------------------

    def _trace_table(self, var: str, column: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
        ds = self._data()
        validate(ds, (var, "cell_roi_id"), purpose=f"the {column} table")
        index = self._cell_index
        data: dict[str, Any] = {
            "cell_roi_id": np.asarray(ds["cell_roi_id"].values),
            column: _object_column(_rows_by_cell(ds[var])[0], index),
        }
        for name in extra:
            if name in ds:
                data[name] = np.asarray(ds[name].values)
        return pd.DataFrame(data, index=index)

    @functools.cached_property
    def dff_traces(self) -> pd.DataFrame:
        """ΔF/F: index ``cell_specimen_id``, columns ``cell_roi_id``, ``dff`` (array per cell)."""
        return self._trace_table("dff", "dff")

    @functools.cached_property
    def corrected_fluorescence_traces(self) -> pd.DataFrame:
        """Corrected fluorescence (+ ``r``, ``RMSE`` in 2023 files) per cell.

        In 2021 files the stored trace is the demixed trace (as in the AllenSDK).
        """
        return self._trace_table("corrected_fluorescence", "corrected_fluorescence",
                                 ("r", "RMSE"))

    @functools.cached_property
    def demixed_traces(self) -> pd.DataFrame | None:
        """Demixed traces per cell; None if the file has none (2021 files)."""
        if "demixed_trace" not in self._data():
            return None
        return self._trace_table("demixed_trace", "demixed_trace")

    @functools.cached_property
    def neuropil_traces(self) -> pd.DataFrame | None:
        """Neuropil traces per cell (column ``neuropil_trace``); None if the file has none.

        AllenSDK 2.16.2 returns the demixed traces here (a bug); this is the neuropil trace.
        """
        if "neuropil_trace" not in self._data():
            return None
        return self._trace_table("neuropil_trace", "neuropil_trace")

    @functools.cached_property
    def events(self) -> pd.DataFrame:
        """Detected and filtered events of the ROIs that have an event trace.

        Columns ``cell_roi_id``, ``events``, ``filtered_events`` (arrays), ``lambda``,
        ``noise_std``; ROIs without event data are left out, as in the AllenSDK.
        """
        ds = self._data()
        validate(ds, ("events", "filtered_events", "lambda", "noise_std", "cell_roi_id"),
                 purpose="events")
        has_events = ~np.isnan(np.asarray(ds["lambda"].values, dtype=np.float64))
        keep = np.flatnonzero(has_events)
        sub = ds[["events", "filtered_events", "lambda", "noise_std"]]
        if not has_events.all():  # (a selection of every cell would stop dask's slicing)
            sub = sub.isel({CELL: keep})
        index = self._cell_index[keep]
        events, filtered = _rows_by_cell(sub["events"], sub["filtered_events"])
        data = {
            "cell_roi_id": np.asarray(sub["cell_roi_id"].values),
            "events": _object_column(events, index),
            "filtered_events": _object_column(filtered, index),
            "lambda": np.asarray(sub["lambda"].values),
            "noise_std": np.asarray(sub["noise_std"].values),
        }
        return pd.DataFrame(data, index=index)

    def get_dff_traces(self, cell_specimen_ids: Iterable[Hashable] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """``(ophys_timestamps, dff)`` with dff (n_cells, n_frames), in table order (legacy).

        Raises
        ------
        MissingDataError
            Some ids are not cells of this session (the AllenSDK fails an assert).
        """
        ds = self._data()
        validate(ds, "dff", purpose="get_dff_traces")
        ids = list(self.get_cell_specimen_ids() if cell_specimen_ids is None
                   else cell_specimen_ids)
        index = self._cell_index
        keep = np.flatnonzero(index.isin(ids))
        if keep.size != len(ids):
            unknown = [i for i in ids if not index.isin([i]).any()]
            msg = (
                f"get_dff_traces: {len(ids)} ids asked but {keep.size} ROIs match "
                f"(unknown ids: {unknown[:10]}); pass distinct cell_specimen_ids of this "
                "session (None matches every unmatched ROI)"
            )
            raise MissingDataError(msg)
        (traces,) = _rows_by_cell(ds["dff"].isel({CELL: keep}))
        return self.ophys_timestamps, traces

    # ---- images and motion -------------------------------------------------------------------

    def _image(self, var: str) -> Image:
        ds = self._data()
        validate(ds, var, purpose=var)
        return Image(np.asarray(ds[var].values), _pixel_spacing(ds),
                     str(ds.attrs.get("pixel_spacing_unit", "mm")))

    @functools.cached_property
    def max_projection(self) -> Image:
        """Maximum-intensity projection (dtype as stored)."""
        return self._image("max_projection")

    @functools.cached_property
    def average_projection(self) -> Image:
        """Average projection (dtype as stored)."""
        return self._image("average_projection")

    @functools.cached_property
    def segmentation_mask_image(self) -> Image:
        """1 where any (selected) ROI covers the pixel, int64, spacing of the projections."""
        return self._image("segmentation_mask_image")

    def get_max_projection(self) -> Image:
        """``max_projection`` (seed-era method)."""
        return self.max_projection

    def get_average_projection(self) -> Image:
        """``average_projection`` (seed-era method)."""
        return self.average_projection

    def get_segmentation_mask_image(self) -> Image:
        """``segmentation_mask_image``."""
        return self.segmentation_mask_image

    def deserialize_image(self, image: Image | np.ndarray, spacing: Iterable[float] | None = None,
                          unit: str = "mm") -> Image:
        """An :class:`Image` from an ``Image`` or a 2-D numpy array (seed-era helper).

        The AllenSDK takes a SimpleITK image here; SimpleITK is not a dependency of
        ophys_xr, so this takes what it returns instead.

        Parameters
        ----------
        image
            An ``Image`` (returned with a copy of its pixels) or a 2-D array.
        spacing
            Pixel size (x, y) for an array; default this session's pixel spacing.
        unit
            Unit of ``spacing`` for an array.

        Returns
        -------
        Image

        Raises
        ------
        OptionError
            ``image`` is neither an Image nor a 2-D array.
        """
        if isinstance(image, Image):
            return Image(np.array(image.data), tuple(float(s) for s in image.spacing),
                         str(image.unit))
        if isinstance(image, np.ndarray) and image.ndim == 2:
            size = _pixel_spacing(self._data()) if spacing is None else tuple(spacing)
            if len(size) != 2:
                msg = f"spacing must be (x, y), got {spacing!r}"
                raise OptionError(msg)
            return Image(np.array(image), tuple(float(s) for s in size), str(unit))
        msg = (
            f"deserialize_image takes an ophys_xr.compat.Image or a 2-D numpy array, got "
            f"{type(image).__name__}{getattr(image, 'shape', '')}; SimpleITK images are not "
            "supported (convert with SimpleITK.GetArrayFromImage(img) and pass "
            "spacing=img.GetSpacing())"
        )
        raise OptionError(msg)

    @functools.cached_property
    def motion_correction(self) -> pd.DataFrame:
        """Rigid motion-correction shifts ``x``, ``y`` per ophys frame (dtype as stored)."""
        ds = self._data()
        validate(ds, ("motion_correction_x", "motion_correction_y"),
                 purpose="motion_correction")
        both = ds[["motion_correction_x", "motion_correction_y"]].compute()
        return pd.DataFrame({"x": np.asarray(both["motion_correction_x"].values),
                             "y": np.asarray(both["motion_correction_y"].values)})


#: The AllenSDK 2.10+ name of the same class.
BehaviorOphysExperiment = BehaviorOphysSession
