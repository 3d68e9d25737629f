"""Reopen session Datasets saved with ``ds.to_zarr`` or ``ds.to_netcdf``.

These stores hold the session Dataset as written by xarray, so reading them is xarray's
own Zarr / netCDF engine followed by the session builder (which checks the schema and
restores the ``cell_roi_id`` index).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from ophys_xr.exceptions import InvalidSessionFileError, SessionFileNotFoundError
from ophys_xr.model import create_session_dataset

__all__ = ["open_store_session"]


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
            # dask chunks of all cells over the on-disk chunks of a few cells
            raw = xr.open_zarr(p, chunks={"cell_specimen_id": -1}, consolidated=False)
            plain = xr.open_zarr(p, chunks=None, consolidated=False)
        else:
            raw = xr.open_dataset(p, engine="h5netcdf", chunks={})
            plain = xr.open_dataset(p, engine="h5netcdf", chunks=None)
    except (OSError, ValueError, KeyError) as err:
        msg = (
            f"Cannot open {str(p)!r} as a {engine} session store: {err}. Is it complete "
            "(an interrupted conversion leaves no store)? Convert the NWB file again."
        )
        raise InvalidSessionFileError(msg) from err
    # coordinates are small: read them directly (not through dask) so they can be indexed
    variables: dict[str, Any] = {
        name: plain.variables[name].load() if name in raw.coords else var
        for name, var in raw.variables.items()
    }
    plain.close()
    attrs = dict(raw.attrs)
    attrs.pop("ophys_xr_missing", None)
    ds = create_session_dataset(variables, attrs, derive=False)
    ds.encoding["source"] = str(p)
    ds.set_close(raw.close)
    return ds
