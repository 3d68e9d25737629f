"""ophys_xr.cells: the segmentation mask image is the 0/1 union of the ROI masks; roi_masks."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _dask import raise_if_dask_computes

import ophys_xr
from ophys_xr import MissingDataError
from ophys_xr.testing import simulate_session
from ophys_xr.variables import SPECS


def _two_overlapping_rois(*, lazy: bool) -> xr.DataArray:
    """Two valid ROIs on a 5 x 6 field of view that share the pixels (1, 2) and (1, 3)."""
    masks = np.zeros((2, 5, 6), dtype=bool)
    masks[0, 0:2, 1:4] = True  # rows 0-1, columns 1-3
    masks[1, 1:4, 2:5] = True  # rows 1-3, columns 2-4
    data = da.from_array(masks, chunks=(1, 3, 6)) if lazy else masks
    return xr.DataArray(
        data,
        dims=("cell_specimen_id", "row", "column"),
        coords={
            "cell_specimen_id": [1086613265, 1086613823],
            "cell_roi_id": ("cell_specimen_id", [1080740882, 1080740888]),
            "valid_roi": ("cell_specimen_id", [True, True]),
            "row": np.arange(5),
            "column": np.arange(6),
        },
        name="roi_mask",
    )


EXPECTED = np.array([
    [0, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 1, 0],  # (1, 2) and (1, 3) are in both ROIs: 1, not 2
    [0, 0, 1, 1, 1, 0],
    [0, 0, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0],
])


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
def test_segmentation_mask_image_is_the_union(lazy: bool) -> None:
    roi_mask = _two_overlapping_rois(lazy=lazy)
    assert int(roi_mask.sum("cell_specimen_id").max()) == 2  # the ROIs do overlap
    with raise_if_dask_computes():
        image = ophys_xr.segmentation_mask_image(roi_mask)
    assert isinstance(image.data, da.Array) is lazy
    assert image.name == "segmentation_mask_image"
    assert image.dims == SPECS["segmentation_mask_image"].dims
    assert image.dtype == np.dtype(SPECS["segmentation_mask_image"].dtype)
    assert image.attrs == SPECS["segmentation_mask_image"].attrs()
    assert set(image.coords) == {"row", "column"}
    np.testing.assert_array_equal(image.values, EXPECTED)
    assert image.dtype == np.int64  # after computing too


def test_segmentation_mask_image_as_the_allensdk() -> None:
    """The AllenSDK sums its column of boolean masks (numpy adds bools as a logical OR)."""
    roi_mask_column = pd.Series(list(_two_overlapping_rois(lazy=False).values))
    allensdk = np.sum(roi_mask_column).astype(int)
    np.testing.assert_array_equal(allensdk, EXPECTED)
    np.testing.assert_array_equal(
        ophys_xr.segmentation_mask_image(_two_overlapping_rois(lazy=False)).values, allensdk)


def test_segmentation_mask_image_without_rois() -> None:
    roi_mask = _two_overlapping_rois(lazy=True).isel(cell_specimen_id=slice(0, 0))
    image = ophys_xr.segmentation_mask_image(roi_mask)
    np.testing.assert_array_equal(image.values, np.zeros((5, 6), dtype=np.int64))


def test_session_segmentation_mask_image() -> None:
    """A built session derives its segmentation_mask_image as the union too."""
    ds = simulate_session(n_cells=4, minutes=0.5, seed=0)
    masks = ds.roi_mask.values
    assert masks.sum(0).max() == 2  # this session has overlapping ROIs
    np.testing.assert_array_equal(ds.segmentation_mask_image.values,
                                  masks.any(0).astype(np.int64))
    assert ds.segmentation_mask_image.dtype == np.int64


def test_unknown_roi(tiny_path) -> None:
    with (
        ophys_xr.open_session(tiny_path) as ds,
        pytest.raises(MissingDataError, match="which has 4 cells"),
    ):
        ds.ophys.roi_masks([123])


def test_roi_masks_with_unmatched_rois() -> None:
    """Several ROIs share cell_specimen_id -1: selecting cells still works, by position."""
    from ophys_xr.testing import simulate_session

    ds = simulate_session(n_cells=5, n_invalid=0, n_unmatched=2, seed=4)
    ids = ds.cell_specimen_id.values
    matched = [int(i) for i in ids if i != -1]
    got = ophys_xr.roi_masks(ds, [matched[1], matched[0]])
    assert got.cell_specimen_id.values.tolist() == [matched[1], matched[0]]
    np.testing.assert_array_equal(got.values, ds.roi_mask.values[[list(ids).index(matched[1]),
                                                                  list(ids).index(matched[0])]])
    unmatched = ophys_xr.roi_masks(ds, [-1])
    assert unmatched.sizes["cell_specimen_id"] == 2
    assert set(unmatched.cell_roi_id.values) == set(ds.cell_roi_id.values[ids == -1])
