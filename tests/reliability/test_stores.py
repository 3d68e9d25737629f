"""Promises about the Zarr stores and netCDF files the package writes and reopens.

- ``overwrite=True`` replaces only an output that ophys_xr wrote and left as written (a
  Zarr store with its manifest and no file added, a netCDF file with its mark); an
  ordinary folder, a folder with other files, a plain ``ds.to_zarr`` store, a file ophys_xr
  did not write: ``OutputExistsError``, nothing deleted.  The replacement is atomic: the old
  output is removed only after the new one is in place, and no temporary name is left.
- A store written by ``to_zarr`` holds every chunk, all-NaN and all-False ones too, and a
  manifest of every file (size, digest) written after them.  A store with a lost or
  truncated file is refused on open (``InvalidSessionFileError`` naming the store and the
  file); ``verify_store`` / ``ophys-xr verify`` also finds a changed byte and added files.
- A store without manifest (plain ``ds.to_zarr``, or one still being written) never opens
  as a session when a coordinate or required array lacks a chunk: no NaN times, no ids of
  0, no 0-cell session.  A chunk that cannot be decoded when read raises
  ``InvalidSessionFileError`` naming the store and the array, not a codec error.
- ``chunks`` of ``to_zarr`` / ``to_netcdf``: positive integers or -1 for known dimensions
  (``OptionError``), and no layout of more than ``MAX_STORED_CHUNKS`` chunks; nothing is
  written then.
- A read-only output folder or an unreadable input: ``PermissionDeniedError`` naming the
  user's path, never a hidden temporary name.
- A write that fails part-way (a chunk of the source cannot be read) raises, and leaves
  nothing behind once it has raised: no temporary file or folder (not even one that a
  write still running in another thread would make again), no file left open.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import ophys_xr
from ophys_xr.backends.store import MANIFEST, verify_store
from ophys_xr.exceptions import (
    InvalidSessionFileError,
    OptionError,
    OutputExistsError,
    PermissionDeniedError,
)


@pytest.fixture(scope="module")
def ds(tiny_path) -> xr.Dataset:
    """The tiny session with every ROI, in memory (the file closed)."""
    with ophys_xr.open_session(tiny_path, exclude_invalid_rois=False) as opened:
        return opened.load()


@pytest.fixture(scope="module")
def own_store(ds, tmp_path_factory) -> Path:
    """A store written by ophys_xr; tests damage copies of it."""
    return ophys_xr.to_zarr(ds, tmp_path_factory.mktemp("own") / "s.zarr")


@pytest.fixture(scope="module")
def plain_store(ds, tmp_path_factory) -> Path:
    """A store written by plain ``ds.to_zarr`` (no manifest)."""
    path = tmp_path_factory.mktemp("plain") / "plain.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # consolidated metadata not in v3 spec
        ds.to_zarr(path)
    return path


def _copy(store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(store, tmp_path / store.name))


def _chunks(store: Path, name: str) -> list[Path]:
    return sorted(p for p in (store / name / "c").rglob("*") if p.is_file())


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- overwrite


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_overwrite_never_deletes_a_folder_ophys_xr_did_not_write(ds, tiny_path, tmp_path,
                                                                  fmt) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copyfile(tiny_path, folder / "session.nwb")
    (folder / "notes.txt").write_text("years of analysis")
    before = _tree(folder)
    write = getattr(ophys_xr, f"to_{fmt}")
    with pytest.raises(OutputExistsError, match="did not write.*nothing was deleted"):
        write(ds, folder, overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OutputExistsError, match=str(empty)):
        write(ds, empty, overwrite=True)
    assert _tree(folder) == before
    assert empty.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "empty"]


def test_overwrite_never_deletes_a_plain_store_or_file(ds, plain_store, tmp_path) -> None:
    plain = _copy(plain_store, tmp_path)
    before = _tree(plain)
    with pytest.raises(OutputExistsError, match="did not write"):
        ophys_xr.to_zarr(ds, plain, overwrite=True)
    assert _tree(plain) == before
    for name, content in (("other.nc", None), ("notes.nc", b"not a netCDF file")):
        path = tmp_path / name
        if content is None:
            ds[["dff"]].to_netcdf(path)  # a netCDF file, but not written by ophys_xr
        else:
            path.write_bytes(content)
        data = path.read_bytes()
        with pytest.raises(OutputExistsError, match="did not write"):
            ophys_xr.to_netcdf(ds, path, overwrite=True)
        assert path.read_bytes() == data


def test_overwrite_refuses_an_own_store_with_files_added(ds, own_store, tmp_path) -> None:
    store = _copy(own_store, tmp_path)
    (store / "my_results.csv").write_text("cell,value\n")
    with pytest.raises(OutputExistsError, match="files added"):
        ophys_xr.to_zarr(ds, store, overwrite=True)
    assert (store / "my_results.csv").exists()


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_overwrite_replaces_an_output_of_ophys_xr_atomically(ds, tmp_path, fmt) -> None:
    write = getattr(ophys_xr, f"to_{fmt}")
    path = write(ds, tmp_path / ("s.zarr" if fmt == "zarr" else "s.nc"))
    short = ds.isel(time=slice(0, 10))
    write(short, path, overwrite=True)
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as reopened:
        assert reopened.sizes["time"] == 10
    write(ds, path, overwrite=True)  # a replaced output is recognised again
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


# ---------------------------------------------------------------- every chunk, manifest


def test_every_chunk_is_written_even_all_nan(ds, tmp_path) -> None:
    nan_cell = ds.copy()
    dff = nan_cell.dff.values.copy()
    dff[:, 0] = np.nan
    nan_cell["dff"] = nan_cell.dff.copy(data=dff)
    store = ophys_xr.to_zarr(nan_cell, tmp_path / "s.zarr")
    assert len(_chunks(store, "dff")) == ds.sizes["cell_specimen_id"]
    assert not ds.auto_rewarded.any()  # all False: a chunk of fill values only
    assert len(_chunks(store, "auto_rewarded")) == 1
    assert (store / MANIFEST / "zarr.json").is_file()
    assert verify_store(store)[0] == []


@pytest.mark.parametrize("damage", ["delete", "truncate"])
@pytest.mark.parametrize("name", ["dff", "time", "cell_specimen_id", "valid_roi"])
def test_damaged_own_store_is_refused_on_open(own_store, tmp_path, damage, name) -> None:
    store = _copy(own_store, tmp_path)
    chunk = _chunks(store, name)[-1]
    if damage == "delete":
        chunk.unlink()
    else:
        with chunk.open("r+b") as f:
            f.truncate(chunk.stat().st_size // 2)
    key = str(chunk.relative_to(store))
    for exclude in (True, False):
        with pytest.raises(InvalidSessionFileError, match=f"{store}.*damaged.*{key}"):
            ophys_xr.open_session(store, exclude_invalid_rois=exclude)
    problems, _ = verify_store(store)
    assert len(problems) == 1
    assert problems[0].startswith(f"{str(store)!r}: {key} ")
    assert ("is missing" if damage == "delete" else "were written") in problems[0]


def test_verify_finds_a_changed_byte_and_added_files(own_store, tmp_path) -> None:
    store = _copy(own_store, tmp_path)
    chunk = _chunks(store, "dff")[0]  # uncompressed: a changed byte still opens
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF
    chunk.write_bytes(bytes(data))
    (store / "extra.txt").write_text("x")
    with ophys_xr.open_session(store) as reopened:  # the cheap check looks at sizes only
        assert reopened.sizes["cell_specimen_id"] == 4
    problems, _ = verify_store(store)
    key = str(chunk.relative_to(store))
    assert problems == [f"{str(store)!r}: {key} differs from what was written (digest)",
                        (f"{str(store)!r}: extra.txt is not in the manifest (added after "
                         "writing?)")]


def test_damaged_manifest_is_refused(own_store, tmp_path) -> None:
    store = _copy(own_store, tmp_path)
    (store / MANIFEST / "zarr.json").write_text("{not json")
    with pytest.raises(InvalidSessionFileError, match="manifest.*damaged"):
        ophys_xr.open_session(store)


# ---------------------------------------------------------------- stores without manifest


@pytest.mark.parametrize("name", ["cell_specimen_id", "valid_roi", "time", "cell_roi_id",
                                  "dff"])
def test_plain_store_with_a_lost_chunk_never_opens(plain_store, tmp_path, name) -> None:
    store = _copy(plain_store, tmp_path)
    _chunks(store, name)[0].unlink()
    for exclude in (True, False):
        with pytest.raises(InvalidSessionFileError, match=f"{store}.*{name}: 1 of"):
            ophys_xr.open_session(store, exclude_invalid_rois=exclude)


def test_plain_store_still_being_written_never_opens(ds, tmp_path) -> None:
    """``to_zarr(compute=False)`` writes the metadata, the coordinates and no data chunk:
    what a reader sees while a plain write runs."""
    store = tmp_path / "writing.zarr"
    lazy = ds.assign({n: v.chunk() for n, v in ds.data_vars.items() if v.dtype != object})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lazy.to_zarr(store, compute=False)
    with pytest.raises(InvalidSessionFileError, match="still being written"):
        ophys_xr.open_session(store)
    for name in ("cell_specimen_id", "valid_roi"):  # the coordinates lost too
        for chunk in _chunks(store, name):
            chunk.unlink()
    with pytest.raises(InvalidSessionFileError, match="cell_specimen_id: 1 of 1"):
        ophys_xr.open_session(store)


def test_plain_store_with_all_false_flags_opens(plain_store, ds) -> None:
    """xarray leaves out chunks of fill values: a whole plain store still opens."""
    assert not _chunks(plain_store, "auto_rewarded")
    with ophys_xr.open_session(plain_store, exclude_invalid_rois=False) as reopened:
        xr.testing.assert_identical(reopened.compute(), ds)


@pytest.mark.parametrize("exclude", [True, False])
def test_undecodable_chunk_is_named_when_read(plain_store, tmp_path, exclude) -> None:
    store = _copy(plain_store, tmp_path)
    chunk = _chunks(store, "roi_mask")[0]
    with chunk.open("r+b") as f:
        f.truncate(50)
    with ophys_xr.open_session(store, exclude_invalid_rois=exclude) as reopened, \
            pytest.raises(InvalidSessionFileError,
                          match=f"cannot read 'roi_mask' from '{store}'.*verify"):
        reopened.roi_mask.values  # noqa: B018
    problems, checked = verify_store(store)
    assert "every array read" in checked
    assert len(problems) == 1
    assert "roi_mask" in problems[0]


# ---------------------------------------------------------------- chunks


@pytest.mark.parametrize("chunks", [{"time": 0}, {"time": -5}, {"time": "abc"},
                                    {"time": 1.5}, {"time": True}, 5])
@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_bad_chunks_are_refused(ds, tmp_path, chunks, fmt) -> None:
    write = getattr(ophys_xr, f"to_{fmt}")
    with pytest.raises(OptionError, match="chunks"):
        write(ds, tmp_path / "out", chunks=chunks)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_a_layout_of_too_many_chunks_is_refused(ds, tmp_path, fmt) -> None:
    write = getattr(ophys_xr, f"to_{fmt}")
    with pytest.raises(OptionError, match="would store .* chunks .* more than 100,000"):
        write(ds, tmp_path / "out", chunks={"time": 1, "eye_frame": 1})
    assert list(tmp_path.iterdir()) == []
    write(ds, tmp_path / "out", chunks={"time": -1, "cell_specimen_id": 2})  # fine


# ---------------------------------------------------------------- permissions


@contextmanager
def _unprivileged() -> Iterator[None]:
    """Run the body as a user without rights on others' files (as root: euid nobody)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def locked(tmp_path) -> Iterator[Path]:
    """A folder this test may not write, reachable by the unprivileged user."""
    folder = Path(tempfile.mkdtemp(prefix="ophys_xr_locked_"))
    try:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP
                     | stat.S_IROTH | stat.S_IXOTH)
        yield folder
    finally:
        folder.chmod(stat.S_IRWXU)
        shutil.rmtree(folder)


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_read_only_folder_names_the_users_path(ds, locked, tmp_path, fmt) -> None:
    write = getattr(ophys_xr, f"to_{fmt}")
    out = locked / ("s.zarr" if fmt == "zarr" else "s.nc")
    write(ds.isel(time=slice(0, 5)), tmp_path / "warm.out")  # every import done
    with _unprivileged(), pytest.raises(PermissionDeniedError) as info:
        write(ds, out)
    message = str(info.value)
    assert message.startswith(f"cannot write {str(out)!r}")
    assert ".partial-" not in message
    assert isinstance(info.value, PermissionError)
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("fmt", ["nwb", "zarr", "netcdf"])
def test_unreadable_input_names_its_path(ds, tiny_path, locked, fmt) -> None:
    folder = locked.parent / (locked.name + "_in")
    folder.mkdir()
    try:
        path = folder / {"nwb": "s.nwb", "zarr": "s.zarr", "netcdf": "s.nc"}[fmt]
        if fmt == "nwb":
            shutil.copyfile(tiny_path, path)
        else:
            getattr(ophys_xr, f"to_{fmt}")(ds, path)
        folder.chmod(0o755)
        path.chmod(0)
        with _unprivileged(), pytest.raises(PermissionDeniedError) as info:
            ophys_xr.open_session(path)
        assert str(info.value).startswith(f"cannot read {str(path)!r}")
    finally:
        shutil.rmtree(folder)


# ---------------------------------------------------------------- failed writes


class _FailingSource:
    """A source array for dask whose first block raises and whose others are slow."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key):
        import time

        first_cell = key[1].start if isinstance(key[1], slice) else key[1]
        if not first_cell:
            msg = "the disk is gone"
            raise OSError(msg)
        time.sleep(0.2)  # still running when the failure reaches the writer
        return self.values[key]


def _open_under(folder: Path) -> list[str]:
    """Files under ``folder`` that this process holds open."""
    fds = Path("/proc/self/fd")
    names = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith(str(folder)):
            names.append(target)
    return names


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_a_failed_write_leaves_nothing_behind(ds, tmp_path, fmt) -> None:
    import gc
    import time

    import dask.array as dsa

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    n_cells = 4 * ds.sizes["cell_specimen_id"]  # several blocks of cells
    big = ds.isel(cell_specimen_id=np.arange(n_cells) % ds.sizes["cell_specimen_id"])
    ids = np.arange(n_cells)
    big = big.assign_coords(cell_specimen_id=ids + 1, cell_roi_id=ids + 1000)
    values = big.dff.transpose("time", "cell_specimen_id").values
    source = dsa.from_array(_FailingSource(values), chunks=(-1, 1))  # one cell a block
    big = big.assign(dff=(("time", "cell_specimen_id"), source, big.dff.attrs))
    write = ophys_xr.to_zarr if fmt == "zarr" else ophys_xr.to_netcdf
    with pytest.raises(OSError, match="the disk is gone"):
        write(big, out_dir / f"s.{'zarr' if fmt == 'zarr' else 'nc'}")
    time.sleep(0.6)  # a write still running elsewhere would be done by now
    assert list(out_dir.iterdir()) == []
    gc.collect()
    assert _open_under(out_dir) == []
