"""What ``open_session`` accepts besides a path or URL: the objects pynwb, h5py, fsspec and
remfile users already hold, opened again by their path or URL (so the session stays lazy and
picklable); objects without one are refused by name."""

from __future__ import annotations

import io
import shutil
import warnings
from pathlib import Path

import fsspec
import h5py
import numpy as np
import pytest
from _http import serve

import ophys_xr
from ophys_xr.exceptions import OptionError
from ophys_xr.formats import unwrap_source


def _same_dff(ds, tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path) as expected:
        np.testing.assert_array_equal(ds.dff.values, expected.dff.values)


def test_an_open_h5py_file(tiny_path: Path) -> None:
    with h5py.File(tiny_path, "r") as f, ophys_xr.open_session(f) as ds:
        _same_dff(ds, tiny_path)
        assert ds.encoding["source"] == str(tiny_path)
    # ophys_xr opened its own handle: the user's file stays theirs, and is closed by them


def test_an_h5py_group_is_its_file(tiny_path: Path) -> None:
    with h5py.File(tiny_path, "r") as f:
        assert unwrap_source(f["processing"]) == (str(tiny_path), None)


def test_an_h5py_file_on_a_file_object_is_refused(tiny_path: Path) -> None:
    with tiny_path.open("rb") as raw, h5py.File(raw, "r") as f, \
            pytest.raises(OptionError, match="pass that file object"):
        ophys_xr.open_session(f)


def test_a_pynwb_nwbfile_read_from_a_file(tiny_path: Path) -> None:
    pynwb = pytest.importorskip("pynwb")
    with pynwb.NWBHDF5IO(str(tiny_path), "r", load_namespaces=True) as nwb_io:
        with warnings.catch_warnings():  # pynwb deprecates the AllenSDK's Device fields
            warnings.filterwarnings("ignore", "The 'manufacturer' field", DeprecationWarning)
            nwbfile = nwb_io.read()
        with ophys_xr.open_session(nwbfile) as ds:
            _same_dff(ds, tiny_path)


def test_a_pynwb_nwbfile_in_memory_is_refused() -> None:
    pynwb = pytest.importorskip("pynwb")
    from datetime import UTC, datetime

    nwbfile = pynwb.NWBFile("d", "id", datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(OptionError, match="not read from a file"):
        ophys_xr.open_session(nwbfile)


def test_a_local_file_object(tiny_path: Path) -> None:
    with tiny_path.open("rb") as f, ophys_xr.open_session(f) as ds:
        _same_dff(ds, tiny_path)


def test_an_fsspec_local_file(tiny_path: Path) -> None:
    with fsspec.open(str(tiny_path), "rb") as f, ophys_xr.open_session(f) as ds:
        _same_dff(ds, tiny_path)


def test_an_fsspec_http_file_is_read_by_its_url(tiny_path: Path, tmp_path: Path) -> None:
    shutil.copyfile(tiny_path, tmp_path / "s.nwb")
    with serve(tmp_path) as server:
        url = f"{server.url}/s.nwb"
        fs = fsspec.filesystem("http", block_size=2**20)
        with fs.open(url, "rb") as f:
            assert unwrap_source(f)[0] == url
            with ophys_xr.open_session(f) as ds:
                _same_dff(ds, tiny_path)


class _RemFileLike(io.RawIOBase):
    """What DANDI users stream with: remfile.File keeps its URL in ``_url``."""

    def __init__(self, url: str) -> None:
        self._url = url

    def readable(self) -> bool:
        return True


def test_a_remfile_stream_is_read_by_its_url(tiny_path: Path, tmp_path: Path) -> None:
    shutil.copyfile(tiny_path, tmp_path / "s.nwb")
    with serve(tmp_path) as server:
        stream = _RemFileLike(f"{server.url}/s.nwb")
        with ophys_xr.open_session(stream) as ds:
            _same_dff(ds, tiny_path)


def test_an_in_memory_buffer_is_refused(tiny_path: Path) -> None:
    with pytest.raises(OptionError, match="no path or URL"):
        ophys_xr.open_session(io.BytesIO(tiny_path.read_bytes()))
