"""Reopen session Datasets saved with ``ds.to_zarr`` or ``ds.to_netcdf``.

These stores hold the session Dataset as written by xarray, so reading them is xarray's
own Zarr / netCDF engine followed by the session builder (which checks the schema and
restores the ``cell_roi_id`` index); the opening options are applied by
:func:`ophys_xr.formats.open_source`, as for every format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr._options import SessionOptions
from ophys_xr.backends._arrays import CHUNK_BYTES, SubsetArray, lazy
from ophys_xr.exceptions import InvalidSessionFileError, SessionFileNotFoundError
from ophys_xr.model import build_session_dataset
from ophys_xr.variables import METADATA_ATTRS, TABLE_DIMS

__all__ = ["is_zarr_store", "open_store_session", "read_store", "read_store_metadata"]


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a Zarr store (a folder with Zarr metadata)."""
    return path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists())


def _is_consolidated(path: Path) -> bool:
    """Whether a Zarr v3 store carries consolidated metadata (one read opens it)."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return (path / ".zmetadata").is_file()  # Zarr v2
    try:
        return "consolidated_metadata" in json.loads(meta.read_text())
    except (OSError, ValueError):
        return False


def _dask_chunks(var: xr.Variable) -> dict[Any, int]:
    """Dask chunks of a stored variable: whole along every dimension but the cells.

    Cells come in blocks of about :data:`CHUNK_BYTES` (whole stored chunks), so one cell's
    trace is one task that reads only that cell's chunks, a block of time is a few tasks
    (dask pushes the time slice into each read), and a computation over the whole session
    holds one block of cells at a time.  Template images keep their stored chunk (one image).
    """
    stored = var.encoding.get("preferred_chunks", {})
    chunks = {d: stored.get(d, -1) if d == "template_image_name" else -1 for d in var.dims}
    if "cell_specimen_id" in var.dims and var.size:
        n_cells = var.sizes["cell_specimen_id"]
        per_cell = var.dtype.itemsize * var.size // max(n_cells, 1)
        step = stored.get("cell_specimen_id", 1)
        block = max(step, CHUNK_BYTES // max(per_cell, 1) // step * step)
        chunks["cell_specimen_id"] = min(n_cells, block) or -1
    return chunks


def _valid_rows(var: xr.Variable, keep: np.ndarray, *, load: bool, token: object
                ) -> xr.Variable:
    """``var`` at the cells ``keep`` (increasing positions), lazy unless ``load``.

    Coordinates are small and read now; a data variable keeps reading slices of the store
    (:class:`~ophys_xr.backends._arrays.SubsetArray`), so one cell's trace is still one
    basic read of that cell's chunks.
    """
    if load:
        return var.isel(cell_specimen_id=keep).load()
    data = lazy(SubsetArray(var, "cell_specimen_id", keep, token))
    out = xr.Variable(var.dims, data, var.attrs, var.encoding)
    return out.chunk(_dask_chunks(out))


def open_store_session(
    path: str | os.PathLike[str], *, engine: str, exclude_invalid_rois: bool = False
) -> xr.Dataset:
    """Open a Zarr store or netCDF file written from a session Dataset, lazily.

    ``read_store`` with only ``exclude_invalid_rois`` of the options; the other options
    are those the store was written with.
    """
    return read_store(path, SessionOptions(exclude_invalid_rois=exclude_invalid_rois),
                      engine=engine)


def read_store(path: str | os.PathLike[str], options: SessionOptions, *, engine: str
               ) -> xr.Dataset:
    """Read a Zarr store or netCDF file written from a session Dataset, lazily.

    Parameters
    ----------
    path
        The store or file.
    options
        The opening options; only ``exclude_invalid_rois`` is used here: the ROIs whose
        ``valid_roi`` is False are left out (the segmentation mask image is then made
        again over the valid ROIs), selected before the arrays become dask arrays, so a
        later selection still reads only what it needs.
    engine
        ``"zarr"`` or ``"netcdf"``.

    Returns
    -------
    xarray.Dataset
        Dask-backed session Dataset.
    """
    exclude_invalid_rois = options.exclude_invalid_rois
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        msg = f"No such session store: {str(p)!r}. Check the path (cwd: {os.getcwd()!r})."
        raise SessionFileNotFoundError(msg)
    try:
        if engine == "zarr":
            raw = xr.open_zarr(p, chunks=None, consolidated=_is_consolidated(p))
        else:
            raw = xr.open_dataset(p, engine="h5netcdf", chunks=None)
    except (OSError, ValueError, KeyError) as err:
        msg = (
            f"Cannot open {str(p)!r} as a {engine} session store: {err}. Is it complete "
            "(an interrupted conversion leaves no store)? Convert the NWB file again."
        )
        raise InvalidSessionFileError(msg) from err
    close = raw.close  # a selection below is a new Dataset without the file's closer
    keep: np.ndarray | None = None
    token = (str(p), p.stat().st_mtime_ns)  # identity of the store's arrays for dask
    if exclude_invalid_rois and "valid_roi" in raw.coords:
        valid = np.asarray(raw["valid_roi"].values, dtype=bool)
        if not valid.all():
            keep = np.flatnonzero(valid)
            raw = raw.drop_vars("segmentation_mask_image", errors="ignore")
    # coordinates and the tables are small: read them now, as the NWB reader does; the
    # other data variables become dask arrays (see _dask_chunks)
    variables: dict[str, Any] = {}
    for name, var in raw.variables.items():
        small = name in raw.coords or set(var.dims) <= TABLE_DIMS
        if keep is not None and "cell_specimen_id" in var.dims:
            variables[name] = _valid_rows(var, keep, load=small, token=(token, name))
        elif small:
            variables[name] = var.load()
        else:
            variables[name] = var.chunk(_dask_chunks(var))
    attrs = dict(raw.attrs)
    attrs.pop("ophys_xr_missing", None)
    for key, (kind, _) in METADATA_ATTRS.items():
        # netCDF reads a one-element list attribute back as a scalar: restore the list
        value = attrs.get(key)
        if kind.startswith("list") and value is not None \
                and not isinstance(value, list | tuple | np.ndarray):
            attrs[key] = [value.item() if isinstance(value, np.generic) else value]
    ds = build_session_dataset(variables, attrs)
    ds.encoding["source"] = str(p)
    ds.set_close(close)
    return ds


def read_store_metadata(path: str | os.PathLike[str], *, engine: str) -> dict[str, Any]:
    """The session attributes of a store and its sizes (only the small tables are read).

    Returns
    -------
    dict
        The session attributes plus ``n_cells``, ``n_valid_cells`` and ``duration_s``.
    """
    with read_store(path, SessionOptions(exclude_invalid_rois=False), engine=engine) as ds:
        meta = dict(ds.attrs)
        if "cell_specimen_id" in ds.dims:
            meta["n_cells"] = int(ds.sizes["cell_specimen_id"])
            meta["n_valid_cells"] = int(ds["valid_roi"].values.sum())
        time = ds["time" if "time" in ds.coords else "stimulus_timestamps"].values
        meta["duration_s"] = float(time[-1] - time[0]) if time.size else 0.0
    return meta
