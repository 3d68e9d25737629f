"""ophys_xr.io: opening (bad files, HTTP, a light import) and saving and reopening: Zarr and
netCDF round trips, lazily, with plain xarray calls."""

from __future__ import annotations

import json
import shutil
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr
from _dask import raise_if_dask_computes
from _http import serve

import ophys_xr
from ophys_xr import (
    InvalidSessionFileError,
    NotAnOphysSessionError,
    NotNwbFileError,
    OptionError,
    SchemaError,
    SessionFileNotFoundError,
)


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
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
        ophys_xr.open_session(path) as reopened,
    ):
        assert reopened.sizes["cell_specimen_id"] < ds.sizes["cell_specimen_id"]
        got = client.compute(reopened.dff.mean("time"), sync=True)
        expected = ds.dff.sel(cell_specimen_id=reopened.cell_specimen_id).mean("time")
        xr.testing.assert_allclose(got, expected.compute())


def test_missing_path(tmp_path) -> None:
    path = tmp_path / "nope.nwb"
    with pytest.raises(SessionFileNotFoundError, match=r"No such session file.*nope\.nwb"):
        ophys_xr.open_session(path)
    with pytest.raises(FileNotFoundError):
        ophys_xr.open_session(path)


def test_directory(tmp_path) -> None:
    with pytest.raises(InvalidSessionFileError, match="is a directory"):
        ophys_xr.open_session(tmp_path, engine="nwb")


def test_not_hdf5(tmp_path) -> None:
    path = tmp_path / "x.nwb"
    path.write_text("hello")
    with pytest.raises(InvalidSessionFileError, match=r"not an HDF5/NWB file.*x\.nwb|x\.nwb.*not"):
        ophys_xr.open_session(path)


def test_hdf5_not_nwb(tmp_path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(NotNwbFileError, match="not an NWB file"):
        ophys_xr.open_session(path)


def _copy_and_edit(tiny_path, tmp_path, edit):
    path = tmp_path / "edited.nwb"
    shutil.copyfile(tiny_path, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def test_behavior_only_session(tiny_path, tmp_path) -> None:
    path = _copy_and_edit(tiny_path, tmp_path, lambda f: f.__delitem__("processing/ophys"))
    with pytest.raises(NotAnOphysSessionError, match="behavior-only"):
        ophys_xr.open_session(path)


def test_truncated_file(tiny_path, tmp_path) -> None:
    path = tmp_path / "truncated.nwb"
    data = tiny_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidSessionFileError, match="truncated or corrupt"):
        ophys_xr.open_session(path)


def test_trace_length_disagrees_with_timestamps(tiny_path, tmp_path) -> None:
    def edit(f):
        ts = f["processing/ophys/dff/traces/timestamps"][:-10]
        del f["processing/ophys/dff/traces/timestamps"]
        f["processing/ophys/dff/traces/timestamps"] = ts

    path = _copy_and_edit(tiny_path, tmp_path, edit)
    with pytest.raises(SchemaError, match="3859 frames but 3849 timestamps"):
        ophys_xr.open_session(path)


def test_running_length_disagrees(tiny_path, tmp_path) -> None:
    def edit(f):
        data = f["processing/running/speed/data"][:-1]
        del f["processing/running/speed/data"]
        f["processing/running/speed/data"] = data

    path = _copy_and_edit(tiny_path, tmp_path, edit)
    with pytest.raises(SchemaError, match="stimulus timestamps"):
        ophys_xr.open_session(path)


def test_unknown_engine(tiny_path) -> None:
    with pytest.raises(OptionError, match=r"unknown engine 'hdf'.*\['nwb', 'zarr', 'netcdf'\]"):
        ophys_xr.open_session(tiny_path, engine="hdf")


def test_unknown_chunk_dim(tiny_path) -> None:
    with pytest.raises(OptionError, match="unknown dimensions"):
        ophys_xr.open_session(tiny_path, chunks={"frames": 10})


def test_open_over_http(tiny_path) -> None:
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        with ophys_xr.open_session(url) as remote, ophys_xr.open_session(tiny_path) as local:
            opened = server.bytes_sent
            assert opened < tiny_path.stat().st_size
            xr.testing.assert_identical(remote, local)


def test_open_missing_url(tiny_path) -> None:
    with serve(tiny_path.parent) as server, pytest.raises(ophys_xr.SessionFileNotFoundError):
        ophys_xr.open_session(f"{server.url}/nothing.nwb")


def test_import_is_light() -> None:
    """``import ophys_xr`` leaves the heavy modules to first use (fast CLI and workers)."""
    import subprocess
    import sys

    heavy = ("scipy.signal", "scipy.stats", "scipy.ndimage", "h5py", "zarr", "matplotlib",
             "distributed", "pynwb")
    code = f"import sys, ophys_xr; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_opening_imports_no_analysis_module(tiny_path) -> None:
    """Opening a session imports only what reading needs (scipy.stats alone costs 0.3 s)."""
    import subprocess
    import sys

    heavy = ("scipy.signal", "scipy.stats", "scipy.ndimage", "matplotlib", "distributed",
             "pynwb")
    code = (f"import sys, ophys_xr; ophys_xr.open_session({str(tiny_path)!r}); "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
