"""Every bad input gets a named ophys_xr error that names the path and what to do."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import ophys_xr
from ophys_xr import (
    InvalidSessionFileError,
    MissingDataError,
    NotAnOphysSessionError,
    NotNwbFileError,
    OphysXrError,
    OptionError,
    SchemaError,
    SessionFileNotFoundError,
)


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


def test_bad_blink_parameters(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        with pytest.raises(OptionError, match="z_threshold"):
            ds.ophys.blink_filter(z_threshold=-1)
        with pytest.raises(OptionError, match="dilation_frames"):
            ds.ophys.blink_filter(dilation_frames=1.5)


def test_no_eye_tracking(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        no_eye = ds.drop_dims("eye_frame")
        with pytest.raises(MissingDataError, match="no eye tracking"):
            no_eye.ophys.blink_filter()


def test_unknown_roi(tiny_path) -> None:
    with (
        ophys_xr.open_session(tiny_path) as ds,
        pytest.raises(MissingDataError, match="which has 4 cells"),
    ):
        ds.ophys.roi_masks([123])


def test_all_errors_share_a_base() -> None:
    for cls in (SessionFileNotFoundError, InvalidSessionFileError, NotNwbFileError,
                NotAnOphysSessionError, SchemaError, MissingDataError, OptionError):
        assert issubclass(cls, OphysXrError)


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


def test_every_exception_derives_from_the_base() -> None:
    from ophys_xr import exceptions

    defined = {name for name, obj in vars(exceptions).items()
               if isinstance(obj, type) and issubclass(obj, BaseException)
               and obj.__module__ == exceptions.__name__}
    assert sorted(defined) == sorted(exceptions.__all__)
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), OphysXrError), name


def test_every_exception_is_exported_at_top_level() -> None:
    from ophys_xr import exceptions

    missing = [name for name in exceptions.__all__ if name not in ophys_xr.__all__]
    assert missing == [], f"export {missing} from ophys_xr (ophys_xr/__init__.py)"
    for name in exceptions.__all__:
        assert getattr(ophys_xr, name) is getattr(exceptions, name), name


def test_download_error() -> None:
    """Defined with the other exceptions; still importable from ``ophys_xr.datasets``."""
    from ophys_xr import datasets, exceptions

    assert datasets.DownloadError is exceptions.DownloadError
    assert "DownloadError" in datasets.__all__
    assert issubclass(exceptions.DownloadError, OphysXrError)
    assert issubclass(exceptions.DownloadError, OSError)
