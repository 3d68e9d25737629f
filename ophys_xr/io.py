"""Open sessions from NWB, Zarr or netCDF; the friendly layer over the readers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import xarray as xr

from ophys_xr.exceptions import OptionError

__all__ = ["open_session"]

Engine = Literal["nwb", "zarr", "netcdf"]
ENGINES: tuple[str, ...] = ("nwb", "zarr", "netcdf")


def _guess_engine(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".zarr" or (path.is_dir() and (path / "zarr.json").exists()):
        return "zarr"
    if suffix in (".nc", ".nc4", ".netcdf"):
        return "netcdf"
    return "nwb"


def open_session(
    source: str | os.PathLike[str],
    *,
    chunks: Mapping[str, int] | None = None,
    engine: Engine | None = None,
    exclude_invalid_rois: bool = True,
    eye_tracking_z_threshold: float = 3.0,
    eye_tracking_dilation_frames: int = 2,
) -> xr.Dataset:
    """Open one Visual Behavior Ophys session as a lazy, labeled ``xarray.Dataset``.

    Parameters
    ----------
    source
        Path of an AllenSDK ``behavior_ophys_experiment_*.nwb`` file (2021 or 2023
        layout), or of a Zarr store / netCDF file written from a session Dataset.
    chunks
        Dask chunk sizes by dimension, e.g. ``{"time": 10_000}``.  Default: chunks that
        match the file's storage (all cells × a block of frames for traces).
    engine
        ``"nwb"``, ``"zarr"`` or ``"netcdf"``; guessed from the path when None.
    exclude_invalid_rois
        Keep only ROIs whose ``valid_roi`` is True, as the AllenSDK does by default.
    eye_tracking_z_threshold, eye_tracking_dilation_frames
        Blink-detection parameters for ``likely_blink`` (AllenSDK defaults).

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
    path = Path(os.fspath(source)).expanduser()
    if engine is None:
        engine = _guess_engine(path)  # type: ignore[assignment]
    if engine not in ENGINES:
        msg = f"unknown engine {engine!r}; choose one of {list(ENGINES)} (or None to guess)"
        raise OptionError(msg)
    if engine == "nwb":
        from ophys_xr.backends.nwb import open_nwb_session

        ds = open_nwb_session(
            path,
            exclude_invalid_rois=exclude_invalid_rois,
            eye_tracking_z_threshold=eye_tracking_z_threshold,
            eye_tracking_dilation_frames=eye_tracking_dilation_frames,
        )
    else:
        from ophys_xr.backends.store import open_store_session

        ds = open_store_session(path, engine=engine)
    if chunks:
        unknown = [d for d in chunks if d not in ds.dims]
        if unknown:
            msg = f"chunks names unknown dimensions {unknown}; dimensions: {list(ds.dims)}"
            raise OptionError(msg)
        rechunked = ds.chunk(dict(chunks))
        rechunked.set_close(ds.close)
        ds = rechunked
    return ds


