"""Cell-level computations on the session Dataset (xarray layer over ``_compute``)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr import _compute
from ophys_xr.exceptions import MissingDataError, OptionError
from ophys_xr.variables import SPECS, validate

__all__ = [
    "filter_events",
    "filter_events_data",
    "roi_masks",
    "segmentation_mask_data",
    "segmentation_mask_image",
]


def _filter_block(block: np.ndarray, *, weights: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(block, axis, -1)
    return np.moveaxis(_compute.filter_events(moved, weights), -1, axis)


def filter_events(
    events: xr.DataArray, *, scale_timesteps: float, n_time_steps: int = 20
) -> xr.DataArray:
    """Smooth event traces with the AllenSDK's causal half-normal filter.

    Parameters
    ----------
    events
        Event traces with a ``time`` dimension (numpy or dask backed).
    scale_timesteps
        Scale of the half-normal filter in frames (AllenSDK: 2/31 s × frame rate).
    n_time_steps
        Filter length in frames.

    Returns
    -------
    xarray.DataArray
        ``filtered_events``, same dims and coords; lazy on dask input (blocks overlap by
        ``n_time_steps - 1`` frames along ``time``, so the result does not depend on the
        chunking).
    """
    if "time" not in events.dims:
        msg = f"filter_events needs a 'time' dimension; got dims {events.dims}"
        raise OptionError(msg)
    out = filter_events_data(events.data, events.get_axis_num("time"),
                             scale_timesteps=scale_timesteps, n_time_steps=n_time_steps)
    result = events.copy(data=out)
    result.name = "filtered_events"
    result.attrs = SPECS["filtered_events"].attrs()
    return result


def filter_events_data(data: Any, axis: int, *, scale_timesteps: float,
                       n_time_steps: int) -> Any:
    """The array core of :func:`filter_events`: filter ``data`` (numpy or dask) along
    ``axis``; on dask, blocks overlap by ``n_time_steps - 1`` along ``axis``."""
    weights = _compute.event_filter_weights(scale_timesteps, n_time_steps)
    if not hasattr(data, "map_overlap"):
        return _filter_block(np.asarray(data), weights=weights, axis=axis)
    depth = n_time_steps - 1
    if depth and len(data.chunks[axis]) > 1 and min(data.chunks[axis]) < depth:
        data = data.rechunk({axis: max(depth, max(data.chunks[axis]))})
    if depth and len(data.chunks[axis]) == 1:
        # one block along time: no overlap to exchange
        return data.map_blocks(_filter_block, weights=weights, axis=axis, dtype=np.float64,
                               meta=np.array((), dtype=np.float64))
    return data.map_overlap(
        _filter_block,
        depth={axis: (depth, 0)} if depth else 0,
        boundary="none",
        weights=weights,
        axis=axis,
        dtype=np.float64,
        meta=np.array((), dtype=np.float64),
    )


def segmentation_mask_data(roi_mask: Any, axis: int = 0) -> Any:
    """The array core of :func:`segmentation_mask_image`: int64 union of the masks along
    ``axis`` (numpy or dask)."""
    covered = roi_mask if roi_mask.dtype == bool else roi_mask != 0
    return covered.any(axis=axis).astype(np.int64)


def segmentation_mask_image(roi_mask: xr.DataArray) -> xr.DataArray:
    """The union of the ROI masks: 1 where any ROI covers the pixel, 0 elsewhere.

    As the AllenSDK's ``segmentation_mask_image`` (2.7+), which adds the boolean masks with
    numpy, that is a logical OR: a pixel covered by several ROIs is 1, not a count.

    Parameters
    ----------
    roi_mask
        Boolean masks (``cell_specimen_id``, ``row``, ``column``); nonzero values count as
        True.

    Returns
    -------
    xarray.DataArray
        int64 (``row``, ``column``) holding 0 and 1, named ``segmentation_mask_image`` with
        the schema's attrs; lazy on dask input.
    """
    data = segmentation_mask_data(roi_mask.data, roi_mask.get_axis_num("cell_specimen_id"))
    dims = tuple(d for d in roi_mask.dims if d != "cell_specimen_id")
    coords = {d: roi_mask[d] for d in dims if d in roi_mask.coords}
    return xr.DataArray(data, dims=dims, coords=coords, name="segmentation_mask_image",
                        attrs=SPECS["segmentation_mask_image"].attrs())


def roi_masks(ds: xr.Dataset, cell_specimen_ids: Iterable[Hashable] | None = None) -> xr.DataArray:
    """Boolean ROI masks (``cell_specimen_id``, ``row``, ``column``), 1 where the ROI is.

    Parameters
    ----------
    ds
        A session Dataset.
    cell_specimen_ids
        Cells to return, in this order; all cells if None; none (masks of 0 cells) if
        empty.  ``-1`` stands for every ROI without a cell_specimen_id (select one of them
        with ``ds.sel(cell_roi_id=...)``).

    Returns
    -------
    xarray.DataArray
        A lazy selection of ``ds.roi_mask``.

    Raises
    ------
    MissingDataError
        An id is not a cell of this session (the message says how many ids exist).
    """
    validate(ds, "roi_mask", purpose="roi_masks")
    masks = ds["roi_mask"]
    if cell_specimen_ids is None:
        return masks
    ids = np.atleast_1d(np.asarray(list(cell_specimen_ids) if not np.isscalar(cell_specimen_ids)
                                    else [cell_specimen_ids]))
    known = ds.indexes["cell_specimen_id"]
    unknown = [i for i in ids.tolist() if i not in known]
    if unknown:
        msg = (
            f"cell_specimen_id {unknown[:10]} not in this session, which has {known.size} "
            f"cells (ds.cell_specimen_id); ROIs without a cell_specimen_id (-1) are selected "
            "with ds.sel(cell_roi_id=...)"
        )
        raise MissingDataError(msg)
    # by position: the index is not unique when several ROIs are unmatched (-1), and
    # asking for -1 gives every unmatched ROI
    values = np.asarray(ds["cell_specimen_id"].values)
    positions = np.concatenate([np.flatnonzero(values == i) for i in ids.tolist()]
                               + [np.zeros(0, dtype=np.int64)])
    return masks.isel(cell_specimen_id=positions)
