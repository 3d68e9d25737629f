"""Saving and reopening: Zarr and netCDF round trips, lazily, with plain xarray calls."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr
from _dask import raise_if_dask_computes

import ophys_xr


@pytest.fixture(scope="module")
def ds(tiny_path):
    with ophys_xr.open_session(tiny_path, exclude_invalid_rois=False) as ds:
        yield ds


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_round_trip_identical(ds, tmp_path, fmt) -> None:
    path = tmp_path / ("s.zarr" if fmt == "zarr" else "s.nc")
    before = {name: dict(var.encoding) for name, var in ds.variables.items()}
    getattr(ds.ophys, f"to_{fmt}")(path)
    assert {name: dict(var.encoding) for name, var in ds.variables.items()} == before
    with raise_if_dask_computes():
        reopened = ophys_xr.open_session(path, exclude_invalid_rois=False)
    with reopened:
        xr.testing.assert_identical(reopened, ds)
        assert {n: v.dtype for n, v in reopened.variables.items()} == {
            n: v.dtype for n, v in ds.variables.items()}
        assert reopened.dff.chunks is not None
        assert reopened.attrs == ds.attrs
        # the accessor works the same on the reopened session
        xr.testing.assert_identical(reopened.ophys.performance(), ds.ophys.performance())
        xr.testing.assert_identical(reopened.ophys.blink_filter(z_threshold=2.0).compute(),
                                    ds.ophys.blink_filter(z_threshold=2.0).compute())
        assert reopened.sel(cell_roi_id=1080699977).cell_specimen_id == 1086658197


def test_plain_xarray_calls(ds, tmp_path) -> None:
    ds.to_netcdf(tmp_path / "plain.nc")
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec (xarray's default)
        warnings.simplefilter("ignore", UserWarning)
        ds.to_zarr(tmp_path / "plain.zarr")
        with xr.open_zarr(tmp_path / "plain.zarr") as raw:
            assert json.loads(raw.attrs["task_parameters"])["task"] == "change detection"
    for name in ("plain.nc", "plain.zarr"):
        with ophys_xr.open_session(tmp_path / name, exclude_invalid_rois=False) as reopened:
            xr.testing.assert_identical(reopened, ds)


def test_zarr_layout_is_for_analysis(ds, tmp_path) -> None:
    """One chunk per cell by default (one cell's trace is one read); overridable."""
    n_time = ds.sizes["time"]
    path = ophys_xr.to_zarr(ds, tmp_path / "s.zarr")
    with xr.open_zarr(path, consolidated=False) as raw:
        assert raw.dff.encoding["chunks"] == (n_time, 1)
        assert raw.dff.encoding["compressors"] == ()
        assert raw.events.encoding["chunks"] == (n_time, 1)
        # masks: cells grouped up to IMAGE_CHUNK_BYTES (here all 5 of 231 kB)
        assert raw.roi_mask.encoding["chunks"] == (5, 512, 452)
        assert raw["lambda"].encoding["chunks"] == (5,)  # per-cell values: one chunk
        assert raw.pupil_area_raw.encoding["chunks"] == (ds.sizes["eye_frame"],)
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as reopened:
        # whole time in each task (one cell = one task), cells in blocks of whole chunks
        assert reopened.dff.chunksizes == {"time": (n_time,), "cell_specimen_id": (5,)}
        assert reopened.roi_mask.chunksizes["row"] == (512,)
    blocks = ophys_xr.to_zarr(ds, tmp_path / "blocks.zarr",
                              chunks={"time": 1000, "cell_specimen_id": 4})
    with xr.open_zarr(blocks, consolidated=False) as raw:
        assert raw.dff.encoding["chunks"] == (1000, 4)
        assert raw.roi_mask.encoding["chunks"] == (4, 512, 452)
    with pytest.raises(ophys_xr.OptionError, match="unknown dimensions"):
        ophys_xr.to_zarr(ds, tmp_path / "bad.zarr", chunks={"frame": 10})
    assert not (tmp_path / "bad.zarr").exists()


def test_netcdf_layout(ds, tmp_path) -> None:
    import h5py

    path = ophys_xr.to_netcdf(ds, tmp_path / "s.nc")
    with h5py.File(path, "r") as f:
        assert f["dff"].chunks == (ds.sizes["time"], 1)
        assert f["roi_mask"].chunks == (5, 512, 452)


def test_reopened_cells_come_in_blocks(ds, tmp_path, monkeypatch) -> None:
    from ophys_xr.backends import store

    monkeypatch.setattr(store, "CHUNK_BYTES", 2 * ds.sizes["time"] * 8)  # two cells a block
    path = ophys_xr.to_zarr(ds, tmp_path / "s.zarr")
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as reopened:
        assert reopened.dff.chunksizes["cell_specimen_id"] == (2, 2, 1)
        xr.testing.assert_identical(reopened.dff.compute(), ds.dff.compute())


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_reopening_applies_the_options(ds, tiny_path, tmp_path, fmt) -> None:
    """The opening options mean the same for a store as for the NWB file."""
    path = getattr(ophys_xr, f"to_{fmt}")(ds, tmp_path / ("s.zarr" if fmt == "zarr" else "s.nc"))
    options = {"eye_tracking_z_threshold": 2.0, "eye_tracking_dilation_frames": 4,
               "events_filter_n_time_steps": 5}
    for kwargs in ({}, options):
        with ophys_xr.open_session(tiny_path, **kwargs) as expected:
            with raise_if_dask_computes():
                reopened = ophys_xr.open_session(path, **kwargs)
            with reopened:
                assert reopened.sizes["cell_specimen_id"] == 4  # the invalid ROI is left out
                xr.testing.assert_identical(reopened.compute(), expected.compute())
    with pytest.raises(ophys_xr.OptionError, match="events_filter_n_time_steps"):
        ophys_xr.open_session(path, events_filter_n_time_steps=0)


def test_refuses_to_overwrite(ds, tmp_path) -> None:
    path = ophys_xr.to_zarr(ds, tmp_path / "s.zarr")
    with pytest.raises(ophys_xr.OutputExistsError, match="overwrite=True"):
        ophys_xr.to_zarr(ds, path)
    ophys_xr.to_zarr(ds.isel(time=slice(0, 10)), path, overwrite=True)
    with ophys_xr.open_session(path) as reopened:
        assert reopened.sizes["time"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_output_folder_must_exist(ds, tmp_path, fmt) -> None:
    write = getattr(ophys_xr, f"to_{fmt}")
    with pytest.raises(ophys_xr.OutputFolderError, match="does not exist"):
        write(ds, tmp_path / "missing" / "s.out")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ophys_xr.OutputFolderError, match="is a file, not a folder"):
        write(ds, tmp_path / "file" / "s.out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert (tmp_path / "file").read_text() == "not a folder"


def test_failed_write_leaves_nothing(ds, tmp_path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        msg = "disk full"
        raise OSError(msg)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(OSError, match="disk full"):
        ophys_xr.to_netcdf(ds, tmp_path / "s.nc")
    assert list(tmp_path.iterdir()) == []


def test_reopen_missing_store(tmp_path) -> None:
    with pytest.raises(ophys_xr.SessionFileNotFoundError):
        ophys_xr.open_session(tmp_path / "nothing.zarr")


def test_reopened_valid_rois_read_only_what_is_selected(ds, tmp_path, monkeypatch) -> None:
    """Leaving out the invalid ROIs of a store composes with later selections: one cell's
    trace reads only that cell's chunks."""
    import zarr.storage

    path = ophys_xr.to_zarr(ds, tmp_path / "s.zarr")
    read: list[str] = []
    original = zarr.storage.LocalStore.get

    async def get(self, key, *args, **kwargs):
        read.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get)
    with ophys_xr.open_session(path) as reopened:
        assert reopened.sizes["cell_specimen_id"] == 4
        read.clear()
        one = reopened.dff.isel(cell_specimen_id=0).values
    np.testing.assert_array_equal(one, ds.dff.isel(cell_specimen_id=0).values)
    assert sorted(k for k in read if k.startswith("dff/")) == ["dff/c/0/0"]


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_reopened_valid_rois_read_slices(ds, tmp_path, monkeypatch, fmt) -> None:
    """Leaving out invalid ROIs reads the store with slices only: Zarr reads an
    integer-array (orthogonal) selection 10-20 times slower."""
    import zarr

    path = getattr(ophys_xr, f"to_{fmt}")(ds, tmp_path / ("s.zarr" if fmt == "zarr" else "s.nc"))

    arrays: list[tuple] = []
    original = zarr.Array.get_orthogonal_selection

    def spy(self, selection, *args, **kwargs):
        if self.ndim > 1 and any(isinstance(k, np.ndarray | list) for k in selection):
            arrays.append((self.path, selection))
        return original(self, selection, *args, **kwargs)

    monkeypatch.setattr(zarr.Array, "get_orthogonal_selection", spy)
    with ophys_xr.open_session(path) as reopened:
        assert bool(reopened.valid_roi.all())
        assert reopened.sizes["cell_specimen_id"] < ds.sizes["cell_specimen_id"]
        expected = ds.sel(cell_specimen_id=reopened.cell_specimen_id)
        for name in ("dff", "events", "roi_mask", "corrected_fluorescence"):
            np.testing.assert_array_equal(reopened[name].values, expected[name].values)
            np.testing.assert_array_equal(
                reopened[name].isel(cell_specimen_id=[0, 3, 1]).values,
                expected[name].isel(cell_specimen_id=[0, 3, 1]).values,
            )
        block = reopened.dff.isel(time=slice(3, 40), cell_specimen_id=slice(None, None, 2))
        np.testing.assert_array_equal(
            block.values,
            expected.dff.isel(time=slice(3, 40), cell_specimen_id=slice(None, None, 2)).values,
        )
    assert arrays == []


@pytest.mark.parametrize("fmt", ["nwb", "zarr", "netcdf"])
def test_tables_are_read_on_open_from_every_source(ds, tiny_path, tmp_path, fmt) -> None:
    """The small tables (TABLE_DIMS) are numpy after opening, whatever the source, so table
    work (performance, trials) costs no dask computation; the rest stays lazy."""
    from ophys_xr.variables import TABLE_DIMS

    path = tiny_path if fmt == "nwb" else getattr(ophys_xr, f"to_{fmt}")(
        ds, tmp_path / ("s.zarr" if fmt == "zarr" else "s.nc"))
    with ophys_xr.open_session(path) as opened:
        for name, var in opened.data_vars.items():
            assert (var.chunks is None) == (set(var.dims) <= TABLE_DIMS), name
        with raise_if_dask_computes():
            opened.ophys.performance()


@pytest.mark.slow
def test_reopened_store_computes_on_a_local_cluster(ds, tmp_path) -> None:
    """The store's lazy arrays, the valid-ROI subset included, pickle to worker processes."""
    distributed = pytest.importorskip("distributed")
    path = ophys_xr.to_zarr(ds, tmp_path / "s.zarr")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
        ophys_xr.open_session(path) as reopened,
    ):
        assert reopened.sizes["cell_specimen_id"] < ds.sizes["cell_specimen_id"]
        got = client.compute(reopened.dff.mean("time"), sync=True)
        expected = ds.dff.sel(cell_specimen_id=reopened.cell_specimen_id).mean("time")
        xr.testing.assert_allclose(got, expected.compute())
