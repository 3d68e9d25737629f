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

import xarray as xr

from ophys_xr.exceptions import InvalidSessionFileError, SessionFileNotFoundError
from ophys_xr.model import create_session_dataset

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


def open_store_session(path: str | os.PathLike[str], *, engine: str) -> xr.Dataset:
    """Open a Zarr store or netCDF file written from a session Dataset, lazily.

    Parameters
    ----------
    path
        The store or file.
    engine
        ``"zarr"`` or ``"netcdf"``.

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
    # coordinates are small: read them now (they are indexed); data variables become dask
    # arrays of all cells over the stored chunks (a block of time is one concurrent read)
    variables: dict[str, Any] = {}
    for name, var in raw.variables.items():
        if name in raw.coords:
            variables[name] = var.load()
        else:
            stored = var.encoding.get("preferred_chunks", {})
            chunks = {d: (-1 if d == "cell_specimen_id" else stored.get(d, -1)) for d in var.dims}
            variables[name] = var.chunk(chunks)
    attrs = dict(raw.attrs)
    attrs.pop("ophys_xr_missing", None)
    ds = create_session_dataset(variables, attrs, derive=False)
    ds.encoding["source"] = str(p)
    ds.set_close(raw.close)
    return ds
