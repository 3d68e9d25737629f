"""ophys_xr.backends.nwb and backends._arrays: lazy NWB reading, pickling to dask.distributed
workers, the ``engine="ophys"`` xarray entry point, chunks of compressed event blocks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr
from _dask import raise_if_dask_computes
from xarray.core import indexing

import ophys_xr
from ophys_xr.backends._arrays import H5ArrayWrapper


def test_open_and_select_compute_nothing(tiny_path) -> None:
    with raise_if_dask_computes():
        ds = ophys_xr.open_session(tiny_path)
        sub = ds.sel(cell_specimen_id=ds.cell_specimen_id[:2]).isel(time=slice(100, 200))
        sub = sub.sel(eye_frame=slice(10, 20))
        _ = ds.ophys.blink_filter(z_threshold=2.0)
        _ = ds.ophys.roi_masks([int(ds.cell_specimen_id[0])])
    assert sub.dff.shape == (100, 2)
    ds.close()


def test_open_reads_no_large_array(tiny_path, monkeypatch) -> None:
    def fail(self, key):
        msg = f"read of {self.h5path} at open"
        raise AssertionError(msg)

    monkeypatch.setattr(H5ArrayWrapper, "_raw", fail)
    with ophys_xr.open_session(tiny_path) as ds:
        sub = ds.isel(time=slice(0, 5))
        assert sub.dff.shape == (5, 4)


def test_large_variables_are_dask(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        for name in ("dff", "events", "filtered_events", "roi_mask", "max_projection",
                     "pupil_area", "likely_blink", "running_speed", "segmentation_mask_image"):
            assert ds[name].chunks is not None, name
        assert ds.dff.encoding["preferred_chunks"]["time"] >= 1


def test_lazy_values_equal_eager(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path, chunks={"time": 500, "cell_specimen_id": 3}) as ds:
        chunked = ds.filtered_events.compute()
        reference = ophys_xr.filter_events(ds.events.compute(), scale_timesteps=2.0)
        xr.testing.assert_allclose(chunked, reference, rtol=0, atol=1e-13)
        np.testing.assert_array_equal(ds.dff[7:900:3, 1:3].values, ds.dff.values[7:900:3, 1:3])
        np.testing.assert_array_equal(ds.dff[-5:, 2].values, ds.dff.values[-5:, 2])
        picked = ds.dff.isel(time=[3, 7, 100], cell_specimen_id=[0, 2]).values
        np.testing.assert_array_equal(picked, ds.dff.values[[3, 7, 100]][:, [0, 2]])
        assert ds.dff.values.flags.writeable


def test_pickle_open_dataset(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        restored = pickle.loads(pickle.dumps(ds))
        xr.testing.assert_identical(restored.dff.compute(), ds.dff.compute())
        restored.close()


def test_xarray_engine(tiny_path) -> None:
    with (
        xr.open_dataset(tiny_path, engine="ophys", chunks={}) as a,
        xr.open_dataset(tiny_path, engine="ophys") as lazy,
        ophys_xr.open_session(tiny_path) as b,
    ):
        xr.testing.assert_identical(a, b)
        assert a.dff.chunks is not None
        xr.testing.assert_identical(lazy, b)
    with xr.open_dataset(tiny_path, engine="ophys", exclude_invalid_rois=False) as c:
        assert c.sizes["cell_specimen_id"] == 5


def test_guess_can_open() -> None:
    from ophys_xr.backends.nwb import OphysBackendEntrypoint

    entry = OphysBackendEntrypoint()
    assert entry.guess_can_open("x.nwb")
    assert not entry.guess_can_open("x.nc")
    assert not entry.guess_can_open(object())


@pytest.mark.slow
def test_distributed_local_cluster(tiny_path) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
        ophys_xr.open_session(tiny_path, chunks={"time": 1000}) as ds,
    ):
        mean = ds.dff.mean("time")
        blinks = ds.ophys.blink_filter(z_threshold=2.0).likely_blink.sum()
        got_mean, got_blinks = client.compute([mean, blinks], sync=True)
        expected = ds.dff.compute(scheduler="sync").mean("time")
        xr.testing.assert_allclose(got_mean, expected)
        assert int(got_blinks) > 0


def test_every_roi_is_read_without_a_gather(tiny_path) -> None:
    """All ROIs (an evenly spaced selection) are read as a slice: no gather."""
    import h5py

    from ophys_xr.backends._arrays import DaskSource

    with h5py.File(tiny_path, "r") as f:
        expected = f["processing/ophys/dff/traces/data"][()]
    with ophys_xr.open_session(tiny_path, exclude_invalid_rois=False) as ds:
        (source,) = [v for v in dict(ds.dff.data.dask).values() if isinstance(v, DaskSource)]
        block = source[10:20, :]
        np.testing.assert_array_equal(block, expected[10:20])
        np.testing.assert_array_equal(source[:, 1:4:2], expected[:, 1:4:2])
        np.testing.assert_array_equal(ds.dff.values, expected)
    with ophys_xr.open_session(tiny_path) as ds:  # valid ROIs: the first four columns, a view
        (source,) = [v for v in dict(ds.dff.data.dask).values() if isinstance(v, DaskSource)]
        np.testing.assert_array_equal(ds.dff.values, expected[:, :4])


@pytest.mark.parametrize("columns", [[0, 2, 3], [4, 1], [3], [0, -1, 2], [-1]])
def test_selected_columns_are_gathered(tiny_path, columns) -> None:
    """Unevenly spaced, reordered or missing (-1, filled with NaN) columns are gathered."""
    import h5py

    from ophys_xr.backends._arrays import H5ArrayWrapper, open_manager, raw_location

    name = "processing/ophys/dff/traces/data"
    with h5py.File(tiny_path, "r") as f:
        stored = f[name][()]
        located = raw_location(f[name], str(tiny_path))
    expected = np.where(np.asarray(columns) >= 0, stored[:, columns], np.nan)
    manager = open_manager(h5py.File, str(tiny_path))
    try:
        for raw in (located, None):  # positioned reads, and h5py
            array = H5ArrayWrapper(manager, name, stored.shape, np.dtype("f8"),
                                   take=(1, np.asarray(columns)), raw=raw)
            got = array[indexing.BasicIndexer((slice(5, 50), slice(None)))]
            np.testing.assert_array_equal(got, expected[5:50])
    finally:
        manager.close()


def test_compressed_events_come_in_small_blocks_of_cells(tmp_path, monkeypatch) -> None:
    """The event traces are gzip-chunked in AllenSDK files: dask blocks of whole storage
    chunks, a few cells wide, so one cell's (filtered) events decompress only its chunks."""
    import h5py

    from ophys_xr.backends._arrays import H5ArrayWrapper
    from ophys_xr.testing import write_session_nwb

    path = write_session_nwb(tmp_path / "s.nwb", n_cells=60, n_invalid=0, minutes=3.0,
                             seed=1)
    with h5py.File(path, "r") as f:
        stored = f["processing/ophys/event_detection/data"].chunks
    assert stored[1] < 32
    with ophys_xr.open_session(path) as ds:
        cells = ds.events.chunksizes["cell_specimen_id"]
        assert len(cells) > 1
        assert all(c % stored[1] == 0 and c >= 32 for c in cells[:-1])
        reads: list[tuple] = []
        raw = H5ArrayWrapper._raw

        def spy(self, key):
            if self.h5path.endswith("event_detection/data"):
                reads.append(key)
            return raw(self, key)

        monkeypatch.setattr(H5ArrayWrapper, "_raw", spy)
        one = ds.filtered_events.isel(cell_specimen_id=3).values
        monkeypatch.undo()
        np.testing.assert_array_equal(one, ds.filtered_events.values[:, 3])
        assert reads
        assert all(k[1] == slice(0, cells[0]) or k[1] == 3 for k in reads), reads


@pytest.mark.parametrize(("mean", "flipped"), [(-5.0, True), (-0.5, False), (np.nan, False)])
def test_running_speed_polarity(tmp_path, mean, flipped) -> None:
    """AllenSDK ``RunningSpeed._fix_polarity``: a series whose mean is below -1 is negated
    (an encoder wired the other way); the series read lazily, the flip decided on all of it
    (NaN samples left out of the mean; an all-NaN series is not flipped)."""
    import shutil

    import h5py

    from ophys_xr.testing import write_session_nwb

    src = write_session_nwb(tmp_path / "s.nwb", n_cells=3, minutes=1.0, seed=2)
    path = shutil.copy(src, tmp_path / "reversed.nwb")
    with h5py.File(path, "r+") as f:
        speed = f["processing/running/speed/data"]
        values = speed[()]
        values = values - np.nanmean(values) + mean if np.isfinite(mean) \
            else np.full_like(values, np.nan)
        values[::7] = np.nan if np.isfinite(mean) else values[::7]
        speed[...] = values
    with ophys_xr.open_session(path) as ds:
        with raise_if_dask_computes():
            speed = ds.running_speed.isel(stimulus_frame=slice(10, 20))
        np.testing.assert_array_equal(ds.running_speed.values,
                                      -values if flipped else values)
        np.testing.assert_array_equal(speed.values, (-values if flipped else values)[10:20])


@pytest.mark.parametrize("key", [
    (slice(None), slice(None)),          # whole rows: read straight into one block
    (slice(3, 29000), slice(1, 90, 2)),  # a selection: pieces copied into one block
])
@pytest.mark.parametrize("take", [None, [0, 5, 6, 7, 99, 40, *range(10, 40)],
                                  list(range(2, 80))])
def test_large_positioned_reads(tmp_path, key, take) -> None:
    """Reads of several MB, whole rows or pieces through the small buffer, with or without
    a gather of columns: the same values as h5py, writable, independent of each other."""
    import h5py

    from ophys_xr.backends._arrays import H5ArrayWrapper, open_manager, raw_location

    path = tmp_path / "big.h5"
    stored = np.random.default_rng(0).random((30_000, 100))  # 24 MB, contiguous
    with h5py.File(path, "w") as f:
        f["x"] = stored
    with h5py.File(path, "r") as f:
        located = raw_location(f["x"], str(path))
    assert located is not None
    expected = stored if take is None else stored[:, take]
    expected = expected[key[0]][:, key[1]]
    manager = open_manager(h5py.File, str(path))
    try:
        array = H5ArrayWrapper(manager, "x", stored.shape, np.dtype("f8"), raw=located,
                               take=None if take is None else (1, np.asarray(take)))
        first = array[indexing.BasicIndexer(key)]
        second = array[indexing.BasicIndexer(key)]
        np.testing.assert_array_equal(first, expected)
        assert first.flags.writeable
        first[...] = -1.0  # a block is nobody else's
        np.testing.assert_array_equal(second, expected)
    finally:
        manager.close()
