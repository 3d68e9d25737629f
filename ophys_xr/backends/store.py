"""Reopen session Datasets saved with ``ds.to_zarr`` or ``ds.to_netcdf``, and tell a damaged
store from a whole one.

These stores hold the session Dataset as written by xarray, so reading them is xarray's
own Zarr / netCDF engine followed by the session builder (which checks the schema and
restores the ``cell_roi_id`` index and applies the opening options on the variables, as
for every format).

Damage.  A Zarr store written by :func:`ophys_xr.to_zarr` holds a manifest
(:data:`MANIFEST`, written after every chunk): every file of the store with its size and
BLAKE2b digest.  Opening checks that every listed file is there with its size (a directory
listing and a ``stat`` per file, :func:`store_problems`); ``ophys-xr verify`` also checks
the digests (:func:`verify_store`).  A store without a manifest (plain ``ds.to_zarr``, or
one still being written) is opened only if every chunk of its coordinates and required
variables exists.  A netCDF file written by ophys_xr carries :data:`WRITER_ATTR`.  Both
marks tell :func:`is_own_output`, which ``overwrite=True`` asks before replacing anything.
A chunk that cannot be decoded when read raises :class:`InvalidSessionFileError` naming the
store and the array.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ophys_xr._atomic import permission_error
from ophys_xr._options import SessionOptions
from ophys_xr.backends._arrays import CHUNK_BYTES, SubsetArray, lazy
from ophys_xr.exceptions import InvalidSessionFileError, SessionFileNotFoundError
from ophys_xr.model import build_session_dataset
from ophys_xr.variables import METADATA_ATTRS, TABLE_DIMS, required_variables

__all__ = [
    "MANIFEST",
    "WRITER_ATTR",
    "is_own_output",
    "is_zarr_store",
    "open_store_session",
    "read_store",
    "read_store_metadata",
    "store_problems",
    "verify_store",
    "write_manifest",
]

#: The manifest of a Zarr store written by ophys_xr: the attributes of an empty child group
#: of this name (a Zarr node, so that Zarr and xarray list the store without complaint;
#: xarray opens only the root's arrays), the file ``MANIFEST/zarr.json``.
MANIFEST = "ophys_xr_manifest"
_MANIFEST_KEY = f"{MANIFEST}/zarr.json"
#: What the manifest's ``"format"`` says.
_MANIFEST_FORMAT = "ophys_xr store manifest"
#: The global attribute that marks a netCDF file written by ophys_xr (removed on reading).
WRITER_ATTR = "ophys_xr_written_by"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Errors a damaged chunk raises in the codecs / HDF5 (reported with the store and array).
_READ_ERRORS = (ValueError, TypeError, RuntimeError, OSError, KeyError, IndexError)


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a Zarr store (a folder with Zarr metadata)."""
    return path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists())


def _is_consolidated(path: Path) -> bool:
    """Whether a Zarr v3 store carries consolidated metadata (one read opens it)."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return (path / ".zmetadata").is_file()  # Zarr v2
    try:
        return "consolidated_metadata" in json.loads(meta.read_text())
    except (OSError, ValueError):
        return False


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        while block := f.read(8 * 2**20):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> Iterator[tuple[str, int]]:
    """Every file under ``root`` (not the manifest) as (``/``-separated key, size)."""
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                key = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), key + "/"))
                elif key != _MANIFEST_KEY:
                    yield key, entry.stat(follow_symlinks=False).st_size


def write_manifest(store: Path) -> Path:
    """Write :data:`MANIFEST` into a complete Zarr store: every file, its size and digest.

    Call it after every chunk is written: a store without it is incomplete or not written
    by ophys_xr.
    """
    from ophys_xr import __version__

    keys = dict(_files(store))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        digests = dict(zip(keys, pool.map(lambda k: _digest(store / k), keys), strict=True))
    manifest = {
        "format": _MANIFEST_FORMAT,
        "version": 1,
        "written_by": f"ophys_xr {__version__}",
        "digest": "blake2b-128",
        "files": {k: [keys[k], digests[k]] for k in sorted(keys)},
    }
    node = {"zarr_format": 3, "node_type": "group", "attributes": {MANIFEST: manifest}}
    (store / MANIFEST).mkdir()
    (store / _MANIFEST_KEY).write_text(json.dumps(node, indent=0))
    return store / _MANIFEST_KEY


def _manifest(store: Path) -> dict[str, list[Any]] | None:
    """The files of the store's manifest, None without one.

    Raises
    ------
    InvalidSessionFileError
        The manifest is there but unreadable or not ophys_xr's.
    """
    path = store / _MANIFEST_KEY
    if not path.is_file():
        return None
    try:
        node = json.loads(path.read_text())
    except ValueError:
        node = None
    attributes = node.get("attributes") if isinstance(node, dict) else None
    manifest = attributes.get(MANIFEST) if isinstance(attributes, dict) else None
    if not isinstance(manifest, dict):
        manifest = {}
    files = manifest.get("files")
    if manifest.get("format") != _MANIFEST_FORMAT or not isinstance(files, dict):
        msg = (f"the manifest {str(path)!r} is damaged or not ophys_xr's; the store cannot "
               "be checked: convert the NWB file again")
        raise InvalidSessionFileError(msg)
    return files


def is_own_output(path: Path) -> bool:
    """Whether ``path`` is a Zarr store or netCDF file written by ophys_xr, as written.

    A store must hold its manifest and no file the manifest does not list (nothing added
    since); a file must carry :data:`WRITER_ATTR`.  ``overwrite=True`` replaces nothing else.
    """
    if path.is_dir():
        try:
            files = _manifest(path)
        except InvalidSessionFileError:
            return False
        return files is not None and all(key in files for key, _ in _files(path))
    if not path.is_file():
        return False
    with path.open("rb") as f:
        if f.read(8) != _HDF5_MAGIC:
            return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return WRITER_ATTR in f.attrs
    except OSError:
        return False


def store_problems(path: Path, *, digests: bool = False) -> list[str] | None:
    """The damage of a Zarr store written by ophys_xr, one line each (empty: whole).

    Every file of the manifest must exist with its size; with ``digests``, also with its
    digest (reads every byte), and no file may be unlisted.

    Returns
    -------
    list of str or None
        None for a store without manifest (it cannot be checked this way).
    """
    files = _manifest(path)
    if files is None:
        return None
    found = dict(_files(path))
    problems = []
    for key, (size, digest) in files.items():
        if key not in found:
            problems.append(f"{str(path)!r}: {key} is missing")
        elif found[key] != size:
            problems.append(f"{str(path)!r}: {key} has {found[key]} bytes, {size} were written")
        elif digests and _digest(path / key) != digest:
            problems.append(f"{str(path)!r}: {key} differs from what was written (digest)")
    if digests:
        problems += [f"{str(path)!r}: {key} is not in the manifest (added after writing?)"
                     for key in sorted(set(found) - set(files))]
    return problems


#: Dimensions sampled in time: a chunk of NaN along one of them is never a real recording.
_SAMPLED_DIMS = frozenset({"time", "stimulus_frame", "eye_frame"})


def _must_be_written(name: str, var: xr.Variable, raw: xr.Dataset, required: set[str]
                     ) -> bool:
    """Whether a missing chunk of this array is damage even in a store without manifest.

    xarray leaves out a chunk of fill values only (``write_empty_chunks=False``), so a
    missing chunk is told from an empty one only where fill values are never right: the
    dimension coordinates and the ROI ids and ``valid_roi`` (zeros / False: duplicate ids,
    no valid ROI), float coordinates (NaN timestamps) and the required float arrays along a
    sampled dimension (NaN traces).  A flag or count of zeros may be true, and is not checked.
    """
    if name in raw.dims or name in ("cell_roi_id", "valid_roi"):
        return True
    if var.dtype.kind != "f":
        return False
    return name in raw.coords or (name in required and bool(set(var.dims) & _SAMPLED_DIMS))


def _may_be_one_fill_value(name: str, array: Any, raw: xr.Dataset) -> bool:
    """Whether the chunks of an integer dimension coordinate hold one label each, which may
    be the fill value (``trials_id == [0]``: xarray leaves that chunk out).  Labels are
    unique, so a chunk of two or more can never be all fill values."""
    if name not in raw.dims or array.dtype.kind not in "iu" or array.ndim != 1:
        return False
    return min(int(array.chunks[0]), int(array.shape[0])) < 2


def _missing_chunks(path: Path, raw: xr.Dataset) -> list[str]:
    """Arrays of a store without manifest that lack chunks (:func:`_must_be_written`)."""
    import zarr

    group = zarr.open_group(path, mode="r")
    required = set(required_variables(str(raw.attrs.get("session_kind", "behavior_ophys"))))
    problems = []
    for name, var in raw.variables.items():
        if not _must_be_written(str(name), var, raw, required):
            continue
        array = group.get(str(name))
        if not isinstance(array, zarr.Array) or _may_be_one_fill_value(str(name), array, raw):
            continue
        if array.nchunks_initialized < array.nchunks:
            missing = array.nchunks - array.nchunks_initialized
            problems.append(f"{name}: {missing} of {array.nchunks} chunks missing")
    return problems


class _CheckedArray(SubsetArray):
    """A store variable read as slices, a read error named with the store and the array."""

    def __init__(self, variable: Any, dim: str, indices: np.ndarray, token: object, *,
                 store: str, name: str) -> None:
        super().__init__(variable, dim, indices, token)
        self.store = store
        self.name = name

    def _read(self, key: tuple[Any, ...], part: int | slice) -> np.ndarray:
        try:
            return super()._read(key, part)
        except _READ_ERRORS as err:
            raise _damaged(self.store, self.name, err) from err


def _damaged(store: str, name: str, err: BaseException) -> InvalidSessionFileError:
    msg = (f"cannot read {name!r} from {store!r}: {type(err).__name__}: {err}. The store is "
           f"damaged (check it with `ophys-xr verify {store}`); convert the NWB file again")
    return InvalidSessionFileError(msg)


def _dask_chunks(var: xr.Variable) -> dict[Any, int]:
    """Dask chunks of a stored variable: whole along every dimension but the cells.

    Cells come in blocks of about :data:`CHUNK_BYTES` (whole stored chunks), so one cell's
    trace is one task that reads only that cell's chunks, a block of time is a few tasks
    (dask pushes the time slice into each read), and a computation over the whole session
    holds one block of cells at a time.  Template images keep their stored chunk (one image).
    """
    stored = var.encoding.get("preferred_chunks", {})
    chunks = {d: stored.get(d, -1) if d == "template_image_name" else -1 for d in var.dims}
    if "cell_specimen_id" in var.dims and var.size:
        n_cells = var.sizes["cell_specimen_id"]
        per_cell = var.dtype.itemsize * var.size // max(n_cells, 1)
        step = stored.get("cell_specimen_id", 1)
        block = max(step, CHUNK_BYTES // max(per_cell, 1) // step * step)
        chunks["cell_specimen_id"] = min(n_cells, block) or -1
    return chunks


def _rows(var: xr.Variable, keep: np.ndarray | None, *, load: bool, token: object,
          store: str, name: str) -> xr.Variable:
    """``var`` at the cells ``keep`` (increasing positions; None: all), lazy unless ``load``.

    Coordinates and tables are small and read now; a data variable keeps reading slices of
    the store (:class:`_CheckedArray`), so one cell's trace is still one basic read of that
    cell's chunks, and a chunk that cannot be decoded raises an error naming the array.
    """
    try:
        if load:
            return (var if keep is None else var.isel(cell_specimen_id=keep)).load()
    except _READ_ERRORS as err:
        raise _damaged(store, name, err) from err
    if var.ndim == 0:
        return var.load()
    dim = "cell_specimen_id" if keep is not None else str(var.dims[0])
    indices = keep if keep is not None else np.arange(var.sizes[dim])
    data = lazy(_CheckedArray(var, dim, indices, token, store=store, name=name))
    out = xr.Variable(var.dims, data, var.attrs, var.encoding)
    return out.chunk(_dask_chunks(out))


def open_store_session(
    path: str | os.PathLike[str], *, engine: str, exclude_invalid_rois: bool = False
) -> xr.Dataset:
    """Open a Zarr store or netCDF file written from a session Dataset, lazily.

    ``read_store`` with only ``exclude_invalid_rois`` of the options; the other options
    are those the store was written with.
    """
    return read_store(path, SessionOptions(exclude_invalid_rois=exclude_invalid_rois),
                      engine=engine, derive=False)


def read_store(path: str | os.PathLike[str], options: SessionOptions, *, engine: str,
               derive: bool = True) -> xr.Dataset:
    """Read a Zarr store or netCDF file written from a session Dataset, lazily.

    Parameters
    ----------
    path
        The store or file.
    options
        The opening options.  With ``exclude_invalid_rois``, the ROIs whose
        ``valid_roi`` is False are left out (the segmentation mask image is then made
        again over the valid ROIs), selected before the arrays become dask arrays, so a
        later selection still reads only what it needs.
    engine
        ``"zarr"`` or ``"netcdf"``.
    derive
        Apply the other options too (``likely_blink``, ``filtered_events`` made again
        where the store holds them for other values); False keeps what the store holds.

    Returns
    -------
    xarray.Dataset
        Dask-backed session Dataset.
    """
    exclude_invalid_rois = options.exclude_invalid_rois
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        msg = f"No such session store: {str(p)!r}. Check the path (cwd: {os.getcwd()!r})."
        raise SessionFileNotFoundError(msg)
    raw = _open_raw(p, engine)
    close = raw.close  # a selection below is a new Dataset without the file's closer
    try:
        ds = build_session_dataset(_variables(p, raw, exclude_invalid_rois),
                                   _attrs(raw.attrs), options if derive else None)
    except BaseException:
        close()
        raise
    ds.encoding["source"] = str(p)
    ds.set_close(close)
    return ds


def _attrs(stored: dict[Any, Any]) -> dict[str, Any]:
    """The session attributes of a store: the written lists restored, ophys_xr's marks out."""
    attrs = {str(k): v for k, v in stored.items()}
    attrs.pop("ophys_xr_missing", None)
    attrs.pop(WRITER_ATTR, None)
    for key, (kind, _) in METADATA_ATTRS.items():
        # netCDF reads a one-element list attribute back as a scalar: restore the list
        value = attrs.get(key)
        if kind.startswith("list") and value is not None \
                and not isinstance(value, list | tuple | np.ndarray):
            attrs[key] = [value.item() if isinstance(value, np.generic) else value]
    return attrs


def _open_raw(p: Path, engine: str) -> xr.Dataset:
    """xarray's Dataset of the store, lazily, once the store is known to be whole.

    Raises
    ------
    InvalidSessionFileError
        Damaged (a file of the manifest missing or of another size; without a manifest, a
        chunk of a coordinate or required variable missing) or not a session store.
    PermissionDeniedError
        The store may not be read.
    """
    try:
        problems = store_problems(p) if engine == "zarr" and p.is_dir() else []
        if problems:
            msg = (f"{str(p)!r} is damaged: {'; '.join(problems[:3])}"
                   f"{f' (and {len(problems) - 3} more)' if len(problems) > 3 else ''}. "
                   "Convert the NWB file again (`ophys-xr verify` lists every problem)")
            raise InvalidSessionFileError(msg)
        if engine == "zarr":
            raw = xr.open_zarr(p, chunks=None, consolidated=_is_consolidated(p))
        else:
            raw = xr.open_dataset(p, engine="h5netcdf", chunks=None)
    except (OSError, ValueError, KeyError) as err:
        if isinstance(err, InvalidSessionFileError):
            raise
        denied = permission_error(err, p, reading=True) if isinstance(err, OSError) else None
        if denied is not None:
            raise denied from err
        msg = (
            f"Cannot open {str(p)!r} as a {engine} session store: {err}. Is it complete "
            "(an interrupted conversion leaves no store)? Convert the NWB file again."
        )
        raise InvalidSessionFileError(msg) from err
    if problems is None:  # no manifest: its coordinates and required variables must be whole
        try:
            missing = _missing_chunks(p, raw)
        except BaseException:
            raw.close()
            raise
        if missing:
            raw.close()
            msg = (f"{str(p)!r} is incomplete or damaged: {'; '.join(missing)}. It has no "
                   f"{MANIFEST} (written by plain ds.to_zarr, or still being written): wait "
                   "for the write to finish, or write it again with ophys_xr.to_zarr (plain "
                   "ds.to_zarr leaves out chunks of fill values, e.g. a valid_roi that is all "
                   "False, which cannot be told from lost ones)")
            raise InvalidSessionFileError(msg)
    return raw


def _variables(p: Path, raw: xr.Dataset, exclude_invalid_rois: bool) -> dict[str, Any]:
    """The variables of the session: coordinates and tables read, the rest lazy."""
    keep: np.ndarray | None = None
    token = (str(p), p.stat().st_mtime_ns)  # identity of the store's arrays for dask
    if exclude_invalid_rois and "valid_roi" in raw.coords:
        try:
            valid = np.asarray(raw["valid_roi"].values, dtype=bool)
        except _READ_ERRORS as err:
            raise _damaged(str(p), "valid_roi", err) from err
        if not valid.all():
            keep = np.flatnonzero(valid)
            raw = raw.drop_vars("segmentation_mask_image", errors="ignore")
    # coordinates and the tables are small: read them now, as the NWB reader does; the
    # other data variables become dask arrays (see _dask_chunks)
    variables: dict[str, Any] = {}
    for name, var in raw.variables.items():
        small = name in raw.coords or set(var.dims) <= TABLE_DIMS
        rows = keep if "cell_specimen_id" in var.dims else None
        variables[str(name)] = _rows(var, rows, load=small, token=(token, name),
                                     store=str(p), name=str(name))
    return variables


def verify_store(path: str | os.PathLike[str]) -> tuple[list[str], str]:
    """Check a Zarr store or netCDF file fully.

    A Zarr store written by ophys_xr: every file of its manifest is there with its size and
    digest, and no file was added; then it must open as a session.  A store without
    manifest, or a netCDF file: it must open as a session (every chunk of its coordinates
    and required variables present) and every array must read.

    Returns
    -------
    problems : list of str
        One line per problem; empty when the store is whole.
    checked : str
        What was checked, for a report.

    Raises
    ------
    SessionFileNotFoundError
        ``path`` does not exist.
    """
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        msg = f"No such session store: {str(p)!r}. Check the path (cwd: {os.getcwd()!r})."
        raise SessionFileNotFoundError(msg)
    engine = "zarr" if is_zarr_store(p) else "netcdf"
    try:
        problems = store_problems(p, digests=True) if engine == "zarr" else None
    except InvalidSessionFileError as err:
        return [str(err)], "the manifest"
    if problems:
        return problems, "the manifest"
    manifest = problems is not None
    if manifest:
        checked = f"every file of {MANIFEST} (size and digest)"
    else:
        checked = ("no manifest (not written by ophys_xr.to_zarr): every array read"
                   if engine == "zarr" else "every array read")
    problems = []
    try:
        with read_store(p, SessionOptions(exclude_invalid_rois=False), engine=engine) as ds:
            for var in ({} if manifest else ds.variables).values():
                try:
                    var.load()
                except InvalidSessionFileError as err:  # names the array already
                    problems.append(str(err))
    except (InvalidSessionFileError, OSError, ValueError) as err:
        problems.append(str(err))
    return problems, checked


def read_store_metadata(path: str | os.PathLike[str], *, engine: str) -> dict[str, Any]:
    """The session attributes of a store and its sizes (only the small tables are read).

    Returns
    -------
    dict
        The session attributes plus ``n_cells``, ``n_valid_cells`` and ``duration_s``.
    """
    with read_store(path, SessionOptions(exclude_invalid_rois=False), engine=engine) as ds:
        meta = dict(ds.attrs)
        if "cell_specimen_id" in ds.dims:
            meta["n_cells"] = int(ds.sizes["cell_specimen_id"])
            meta["n_valid_cells"] = int(ds["valid_roi"].values.sum())
        time = ds["time" if "time" in ds.coords else "stimulus_timestamps"].values
        meta["duration_s"] = float(time[-1] - time[0]) if time.size else 0.0
    return meta
