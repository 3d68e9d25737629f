"""The ``ds.ophys`` accessor: a thin, stateless forwarder to the public functions."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path

import xarray as xr

from ophys_xr import behavior, cells, eye, io

__all__ = ["OphysDatasetAccessor"]


@xr.register_dataset_accessor("ophys")
class OphysDatasetAccessor:
    """Visual Behavior Ophys functions on a session Dataset (``ds.ophys``).

    Every method forwards to a public function of :mod:`ophys_xr` with the same name and
    returns a new object; the accessor keeps no state.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def roi_masks(self, cell_specimen_ids: Iterable[Hashable] | None = None) -> xr.DataArray:
        """Boolean ROI masks; see :func:`ophys_xr.roi_masks`."""
        return cells.roi_masks(self._ds, cell_specimen_ids)

    def blink_filter(self, z_threshold: float = 3.0, dilation_frames: int = 2) -> xr.Dataset:
        """Blink-filtered eye tracking; see :func:`ophys_xr.blink_filter`."""
        return eye.blink_filter(self._ds, z_threshold=z_threshold, dilation_frames=dilation_frames)

    def performance(self, engaged_trial_reward_rate_threshold: float = 2.0) -> xr.Dataset:
        """Behavior performance metrics; see :func:`ophys_xr.performance`."""
        return behavior.performance(
            self._ds, engaged_trial_reward_rate_threshold=engaged_trial_reward_rate_threshold
        )

    def reward_rate(self) -> xr.DataArray:
        """Reward rate per trial; see :func:`ophys_xr.reward_rate`."""
        return behavior.reward_rate(self._ds)

    def to_zarr(
        self,
        store: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        chunks: Mapping[str, int] | None = None,
        progress: bool = False,
    ) -> Path:
        """Save as Zarr with the analysis chunk layout, atomically; see :func:`ophys_xr.to_zarr`."""
        return io.to_zarr(self._ds, store, overwrite=overwrite, chunks=chunks, progress=progress)

    def to_netcdf(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, progress: bool = False
    ) -> Path:
        """Save as netCDF-4, atomically; see :func:`ophys_xr.to_netcdf`."""
        return io.to_netcdf(self._ds, path, overwrite=overwrite, progress=progress)
