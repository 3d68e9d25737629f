"""The ``ds.ophys`` accessor: a thin, stateless forwarder to the public functions."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import xarray as xr

from ophys_xr import cells, eye

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
