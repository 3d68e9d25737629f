"""Reopen session Datasets saved with ``ds.to_zarr`` or ``ds.to_netcdf``.

These stores hold the session Dataset as written by xarray, so reading them is xarray's
own Zarr / netCDF engine followed by the session builder (which checks the schema and
restores the ``cell_roi_id`` index).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr.backends._arrays import CHUNK_BYTES, SubsetArray, lazy
from ophys_xr.exceptions import InvalidSessionFileError, SessionFileNotFoundError
from ophys_xr.model import METADATA_ATTRS, create_session_dataset
from ophys_xr.variables import TABLE_DIMS

__all__ = ["open_store_session"]


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

    Parameters
    ----------
    path
        The store or file.
    engine
        ``"zarr"`` or ``"netcdf"``.
    exclude_invalid_rois
        Leave out the ROIs whose ``valid_roi`` is False (the segmentation mask image is then
        summed again over the valid ROIs).  Selected before the arrays become dask arrays,
        so a later selection still reads only what it needs.

    Returns
    -------
    xarray.Dataset
        Dask-backed session Dataset.
    """
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
    ds = create_session_dataset(variables, attrs, derive=keep is not None)
    ds.encoding["source"] = str(p)
    ds.set_close(close)
    return ds
