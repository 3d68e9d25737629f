"""Open sessions from NWB, Zarr or netCDF; the friendly layer over the readers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from ophys_xr._atomic import write_atomically
from ophys_xr._options import (
    DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
    DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    DEFAULT_EYE_TRACKING_DILATION_FRAMES,
    DEFAULT_EYE_TRACKING_Z_THRESHOLD,
    SessionOptions,
    chunk_sizes,
)
from ophys_xr.exceptions import OptionError
from ophys_xr.formats import FORMATS, open_source

__all__ = [
    "STORE_CHUNKS",
    "open_session",
    "to_netcdf",
    "to_zarr",
]

Engine = Literal["nwb", "zarr", "netcdf"]
#: The engines of :func:`open_session` (the registry :data:`ophys_xr.formats.FORMATS`).
ENGINES: tuple[str, ...] = tuple(FORMATS)


def open_session(
    source: str | os.PathLike[str] | Any,
    *,
    chunks: Mapping[str, int] | None = None,
    engine: Engine | None = None,
    exclude_invalid_rois: bool = True,
    eye_tracking_z_threshold: float = DEFAULT_EYE_TRACKING_Z_THRESHOLD,
    eye_tracking_dilation_frames: int = DEFAULT_EYE_TRACKING_DILATION_FRAMES,
    events_filter_scale_seconds: float = DEFAULT_EVENTS_FILTER_SCALE_SECONDS,
    events_filter_n_time_steps: int = DEFAULT_EVENTS_FILTER_N_TIME_STEPS,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open one Visual Behavior Ophys session as a lazy, labeled ``xarray.Dataset``.

    Parameters
    ----------
    source
        Path or URL (``https://``, ``s3://``; read lazily with range requests) of an
        AllenSDK ``behavior_ophys_experiment_*.nwb`` or ``behavior_session_*.nwb`` file (2021
        or 2023 layout; see ``docs/kinds.md`` for every kind), or the path of a Zarr store /
        netCDF file written from a session Dataset.  Also what pynwb, h5py, fsspec and
        remfile users hold (an ``h5py.File`` of a file on disk, an ``NWBFile`` read from a
        file, a local, fsspec or remfile file object): it is opened again by its path or URL
        (:func:`ophys_xr.formats.unwrap_source`).
    chunks
        Dask chunk sizes by dimension, e.g. ``{"time": 10_000}``.  Default: chunks that
        match the file's storage (all cells × a block of frames for traces).
    engine
        ``"nwb"``, ``"zarr"`` or ``"netcdf"``; guessed from the path when None.
    exclude_invalid_rois
        Keep only ROIs whose ``valid_roi`` is True, as the AllenSDK does by default.  From a
        Zarr / netCDF store too: a store saved with every ROI gives the valid ones unless
        ``exclude_invalid_rois=False``.
    eye_tracking_z_threshold, eye_tracking_dilation_frames
        Blink-detection parameters for ``likely_blink`` (AllenSDK defaults; honoured, unlike
        in the AllenSDK's ``BehaviorOphysExperiment``).  A store whose ``likely_blink`` was
        computed with other values is blink-filtered again (lazily).
    events_filter_scale_seconds, events_filter_n_time_steps
        The causal half-normal filter of ``filtered_events`` (AllenSDK defaults: 2/31 s,
        20 frames); a store filtered otherwise is filtered again (lazily).
    storage_options
        For a URL: options of its fsspec file system, e.g. ``{"timeout": (10, 30)}``
        (connect and read timeouts in seconds; defaults in :mod:`ophys_xr.remote`) or
        ``{"anon": True}`` for ``s3://``.

    Returns
    -------
    xarray.Dataset
        Dims ``cell_specimen_id``, ``time``, ``row``, ``column``, ``eye_frame``,
        ``stimulus_frame``, ``trials_id``, ``stimulus_presentations_id``, ... (see
        ``docs/schema.md``).  Nothing large is read until used.

    Raises
    ------
    OphysXrError
        Subclasses name the path, what is wrong and what to do.

    Examples
    --------
    >>> ds = ophys_xr.open_session("behavior_ophys_experiment_123.nwb")  # doctest: +SKIP
    >>> ds.dff.sel(cell_specimen_id=1086616542).mean("time")  # doctest: +SKIP
    """
    options = SessionOptions(
        exclude_invalid_rois=exclude_invalid_rois,
        eye_tracking_z_threshold=eye_tracking_z_threshold,
        eye_tracking_dilation_frames=eye_tracking_dilation_frames,
        events_filter_scale_seconds=events_filter_scale_seconds,
        events_filter_n_time_steps=events_filter_n_time_steps,
    )
    remote: dict[str, Any] = {}
    if storage_options is not None:
        if not isinstance(source, str) or "://" not in source or not isinstance(
                storage_options, Mapping):
            msg = (f"storage_options (a dict) apply to a URL, got {source!r} and "
                   f"{storage_options!r}; leave them out for a local path")
            raise OptionError(msg)
        remote["storage_options"] = dict(storage_options)
    ds = open_source(source, options, engine=engine, **remote)
    if chunks is not None:
        try:
            sizes = chunk_sizes(chunks, ds.sizes)
        except OptionError:
            ds.close()
            raise
        if sizes:
            rechunked = ds.chunk(sizes)
            rechunked.set_close(ds.close)
            ds = rechunked
    return ds




#: Chunk sizes of the saved arrays, by dimension (-1: whole).  Every cell's trace is its
#: own chunk holding up to 2**17 frames (71 min at 31 Hz, 1 MiB of float64): one cell's
#: whole trace is one small read, where the NWB file (time-major, unchunked) reads the
#: whole matrix, and a computation over the session reads the fewest chunks.  A block of
#: time for all cells reads every cell's chunk; for time-block work pass
#: ``chunks={"time": 16384, "cell_specimen_id": 4}`` (faster for a minute of all cells,
#: slower for one cell: benchmarks/RESULTS.md, "Zarr layouts compared").  ROI masks group
#: cells up to :data:`IMAGE_CHUNK_BYTES` unless ``chunks`` names ``cell_specimen_id``.
STORE_CHUNKS: dict[str, int] = {
    "cell_specimen_id": 1,
    "time": 2**17,
    "row": -1,
    "column": -1,
    "eye_frame": -1,
    "stimulus_frame": -1,
    "template_image_name": 1,
}
_BACKEND_ENCODING = ("preferred_chunks", "chunks", "chunksizes", "source", "original_shape",
                     "compressors", "compressor", "filters", "serializer", "zlib", "complevel",
                     "shuffle", "fletcher32", "contiguous", "dtype", "_FillValue")

#: Float traces are noise-like and barely compress; stored raw they read several times faster.
_RAW_TRACES = ("dff", "corrected_fluorescence", "demixed_trace", "neuropil_trace")


#: Stored chunk of the per-cell images (ROI masks) by default: cells grouped up to about this
#: many bytes.  Masks are read all together (mask plots, the segmentation image) and
#: compress to almost nothing, so one chunk per cell would only add reads.
IMAGE_CHUNK_BYTES = 4 * 2**20

#: At most this many stored chunks (files of a Zarr store) in one output: a chunking that
#: would write more (e.g. ``{"time": 1}``) is refused; the default layout of a 60-minute,
#: 300-cell session writes about 2,500.
MAX_STORED_CHUNKS = 100_000


def _store_chunks(var: xr.Variable | xr.DataArray, chunks: Mapping[str, int], *,
                  cells_given: bool = False) -> dict[Any, int]:
    """The stored chunk of a variable.

    Per-cell values (r, lambda, ...) are one chunk; per-cell images group cells up to
    :data:`IMAGE_CHUNK_BYTES` unless ``cells_given`` (the caller chose the cell chunk).
    """
    out: dict[Any, int] = {}
    for dim in var.dims:
        size = var.sizes[dim]
        want = -1 if var.dims == ("cell_specimen_id",) else chunks.get(str(dim), -1)
        out[dim] = max(1, size if want == -1 else min(want, size))
    if ("cell_specimen_id" in var.dims and "time" not in var.dims and var.ndim > 1
            and not cells_given):
        per_cell = var.dtype.itemsize * var.size // max(var.sizes["cell_specimen_id"], 1)
        out["cell_specimen_id"] = max(1, min(var.sizes["cell_specimen_id"],
                                             IMAGE_CHUNK_BYTES // max(per_cell, 1)))
    return out


def _prepared(ds: xr.Dataset, chunks: Mapping[str, int] | None, fmt: str) -> xr.Dataset:
    """A shallow copy with backend encoding dropped, chunked for writing.

    Every data variable gets its stored chunk shape (:data:`STORE_CHUNKS`, overridden by
    ``chunks``) in its encoding, and dask chunks of whole stored chunks, cells grouped up
    to about ``CHUNK_BYTES`` a task (no two tasks write to one stored chunk).
    """
    from ophys_xr.backends._arrays import CHUNK_BYTES

    given = chunk_sizes({} if chunks is None else chunks, ds.sizes)
    wanted = {**STORE_CHUNKS, **given}
    out = ds.copy(deep=False)
    for variable in out.variables.values():
        variable.encoding = {k: v for k, v in variable.encoding.items()
                             if k not in _BACKEND_ENCODING}
    rechunked = {}
    n_stored = {}
    for name, var in out.data_vars.items():
        stored = _store_chunks(var, wanted, cells_given="cell_specimen_id" in given)
        shape = tuple(stored[d] for d in var.dims)
        n_stored[str(name)] = int(np.prod([-(-var.sizes[d] // stored[d]) for d in var.dims]))
        if fmt == "zarr":
            var.encoding["chunks"] = shape
            if name in _RAW_TRACES:
                var.encoding["compressors"] = None
        elif var.size and var.ndim:
            var.encoding["chunksizes"] = shape
        if var.chunks is None:
            continue
        task = dict(stored)
        if "cell_specimen_id" in var.dims and var.ndim > 1:
            chunk_bytes = var.dtype.itemsize * int(np.prod(shape))
            task["cell_specimen_id"] *= max(1, CHUNK_BYTES // max(chunk_bytes, 1))
        rechunked[name] = var.chunk(task)
    _check_chunk_count(n_stored, given)
    return out.assign(rechunked)


def _check_chunk_count(n_stored: Mapping[str, int], given: Mapping[str, int]) -> None:
    """Refuse a layout of more than :data:`MAX_STORED_CHUNKS` stored chunks."""
    total = sum(n_stored.values())
    if total > MAX_STORED_CHUNKS:
        worst = max(n_stored, key=lambda k: n_stored[k])
        msg = (f"chunks={dict(given)} would store {total:,} chunks ({n_stored[worst]:,} of "
               f"{worst!r}), more than {MAX_STORED_CHUNKS:,}; pass larger chunks, or none "
               f"for the default layout {STORE_CHUNKS}")
        raise OptionError(msg)


def _zarr_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Per-variable Zarr encoding: the chunks (and compressors) set by :func:`_prepared`."""
    return {
        str(name): {k: var.encoding[k] for k in ("chunks", "compressors") if k in var.encoding}
        for name, var in ds.data_vars.items()
    }


def _write_zarr(out: xr.Dataset, tmp: Path, progress: bool) -> None:
    """Write the store, every chunk (all-NaN ones too), then its manifest."""
    import warnings

    from ophys_xr.backends.store import write_manifest

    with warnings.catch_warnings():
        # consolidated metadata (one read instead of one per array when reopening) is not
        # in the Zarr v3 spec yet; zarr says so with a warning on every write
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        # every chunk is written, even one of fill values only, so that a missing chunk is
        # always damage (the manifest lists them all)
        with _computed_here(threads=True), _progress(progress):
            out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=True,
                        encoding=_zarr_encoding(out), write_empty_chunks=True)
    write_manifest(tmp)


def _write_netcdf(out: xr.Dataset, tmp: Path, progress: bool) -> None:
    """Write the file, marked as ophys_xr's (:data:`ophys_xr.backends.store.WRITER_ATTR`)."""
    from ophys_xr import __version__
    from ophys_xr.backends.store import WRITER_ATTR

    marked = out.copy(deep=False)
    marked.attrs = {**out.attrs, WRITER_ATTR: f"ophys_xr {__version__}"}
    # one task at a time: when one fails, xarray closes the file at once, and a write
    # already started in another thread would open it again (and leave it open); HDF5
    # writes take one lock anyway
    with _computed_here(threads=False), _progress(progress):
        marked.to_netcdf(tmp, engine="h5netcdf")


def _write_atomically(
    out: xr.Dataset,
    path: Path,
    write: Callable[[xr.Dataset, Path, bool], None],
    *,
    overwrite: bool,
    progress: bool,
) -> Path:
    """Write ``out`` with ``write(out, tmp, progress)`` to a temporary sibling, then rename
    it; an existing output is replaced only if ophys_xr wrote it."""
    from ophys_xr.backends.store import is_own_output

    return write_atomically(path, lambda tmp: write(out, tmp, progress),
                            overwrite=overwrite, owned=is_own_output)


@contextlib.contextmanager
def _computed_here(*, threads: bool) -> Iterator[None]:
    """Compute the dask tasks of a write in this process, every started task finished
    before the write returns or raises.

    dask's threaded scheduler raises at the first failed task while the others already
    started go on; those would write into the temporary output after it was removed (a
    stray folder) or after the file was closed (opening it again).  ``threads``: on a pool
    of this call's own, shut down (waiting for its started tasks, dropping the queued ones)
    before the failure goes on to the clean-up; else one task at a time.  A dask.distributed
    client is not used for writes: the output is a local path of this process.
    """
    import dask

    if not threads:
        with dask.config.set(scheduler="synchronous"):
            yield
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                              thread_name_prefix="ophys_xr-write")
    try:
        with dask.config.set(scheduler=pool):
            yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _progress(show: bool) -> contextlib.AbstractContextManager[Any]:
    """A progress bar of the dask tasks computed inside, if ``show``."""
    if not show:
        return contextlib.nullcontext()
    from tqdm.dask import TqdmCallback

    return TqdmCallback(desc="writing", unit="chunk")


def to_zarr(
    ds: xr.Dataset,
    store: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunks: Mapping[str, int] | None = None,
    progress: bool = False,
) -> Path:
    """Save a session Dataset as a Zarr (format 3) store, atomically.

    ``ds.to_zarr(store)`` works as it is; this function adds the chunk layout chosen for
    analysis (:data:`STORE_CHUNKS`: one chunk per cell trace, so one cell's whole trace is
    one small read; ROI masks in chunks of several cells), writes to a temporary sibling
    and renames it at the end, so an interrupted write never leaves a store that looks
    complete.  Every chunk is written (all-NaN ones too) and then a manifest of every file
    with its size and digest, so that opening finds a lost or truncated chunk and
    ``ophys-xr verify`` any change.  The caller's Dataset is not modified.

    Parameters
    ----------
    ds
        A session Dataset.
    store
        Directory of the new store.
    overwrite
        Replace an existing store written by ophys_xr (and left as written).  Anything
        else at ``store`` (a folder, a store written otherwise) is never deleted.
    chunks
        Stored chunk sizes by dimension overriding :data:`STORE_CHUNKS`, e.g.
        ``{"time": 16384, "cell_specimen_id": 4}`` for work on blocks of time.
    progress
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The store.

    Raises
    ------
    OutputExistsError
        ``store`` exists and ``overwrite`` is False, or it is not a store of ophys_xr.
    OutputFolderError
        The folder of ``store`` does not exist or is a file.
    PermissionDeniedError
        The folder of ``store`` may not be written.
    OptionError
        ``chunks`` names a dimension the Dataset does not have, a size that is not a
        positive integer or -1, or a layout of more than :data:`MAX_STORED_CHUNKS` chunks.
    """
    return _write_atomically(
        _prepared(ds, chunks, "zarr"),
        Path(os.fspath(store)).expanduser(),
        _write_zarr,
        overwrite=overwrite,
        progress=progress,
    )


def to_netcdf(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunks: Mapping[str, int] | None = None,
    progress: bool = False,
) -> Path:
    """Save a session Dataset as a netCDF-4 file (h5netcdf), atomically.

    ``ds.to_netcdf(path)`` works as it is; this function stores the arrays in HDF5 chunks
    of the same layout as :func:`to_zarr` (one chunk per cell), writes to a temporary
    sibling and renames it at the end, so an interrupted write never leaves a
    complete-looking file.

    Parameters
    ----------
    ds
        A session Dataset.
    path
        The new file.
    overwrite
        Replace an existing file written by ophys_xr.  Anything else at ``path`` is
        never deleted.
    chunks
        Stored chunk sizes overriding :data:`STORE_CHUNKS`.
    progress
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The file.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False, or it is not a file of ophys_xr.
    OutputFolderError
        The folder of ``path`` does not exist or is a file.
    PermissionDeniedError
        The folder of ``path`` may not be written.
    OptionError
        ``chunks`` names a dimension the Dataset does not have, a size that is not a
        positive integer or -1, or a layout of more than :data:`MAX_STORED_CHUNKS` chunks.
    """
    return _write_atomically(
        _prepared(ds, chunks, "netcdf"),
        Path(os.fspath(path)).expanduser(),
        _write_netcdf,
        overwrite=overwrite,
        progress=progress,
    )
