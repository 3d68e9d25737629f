"""Picklable, lazily indexed views of HDF5 datasets.

Contiguous, unfiltered datasets of a local file are read with positioned reads
(``os.preadv``) of the descriptor that the session's file manager holds, the others by
h5py; nothing is memory-mapped, so closing the manager releases the file, and a file
replaced, truncated or rewritten under an open session raises a named error (its identity
is checked after every read) instead of giving other data or killing the process.

This is the only module that imports xarray's backend internals
(``xarray.core.indexing``, ``xarray.backends.locks``), so upstream changes touch one file.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from xarray.backends import BackendArray, CachingFileManager
from xarray.backends.locks import HDF5_LOCK, SerializableLock
from xarray.core import indexing

from ophys_xr.exceptions import InvalidSessionFileError, SessionFileNotFoundError

__all__ = [
    "CHUNK_BYTES",
    "HDF5_LOCK",
    "DaskSource",
    "FileIdentity",
    "H5ArrayWrapper",
    "RawLocation",
    "SerializableLock",
    "SubsetArray",
    "check_identity",
    "check_path_identity",
    "file_identity",
    "lazy",
    "open_manager",
    "raw_location",
    "read_raw",
    "runs",
]


#: Bytes of one dask chunk of the large arrays, for every reader and writer (NWB: blocks of
#: the first stored axis; stores: blocks of cells; writes: tasks of whole stored chunks).
CHUNK_BYTES = 64 * 2**20

#: Bytes of one positioned read when a block is not read straight into its output (a
#: selection of columns, a step): the read lands in a small buffer that stays in the CPU
#: cache and the selection is copied out of it, so a block costs one output allocation
#: (benchmarks/RESULTS.md, "bench_read_floor: first read").
_PIECE_BYTES = 2**20

_HOST = platform.node()


class FileIdentity(NamedTuple):
    """What tells one file from another at the same path, taken when it was opened.

    ``host`` qualifies ``dev``: device numbers differ between the machines of a shared file
    system (dask workers), so ``dev`` is compared only on the host that took it.
    """

    host: str
    dev: int
    ino: int
    size: int
    mtime_ns: int


def file_identity(fd: int) -> FileIdentity:
    """The identity of the open file ``fd`` (``os.fstat``)."""
    st = os.fstat(fd)
    return FileIdentity(_HOST, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _changed(path: str, was: FileIdentity, now: FileIdentity | None) -> str:
    """One-line message: ``path`` is not the file it was when opened."""
    if now is None:
        what = "it was deleted"
    elif now.ino != was.ino or (now.host == was.host and now.dev != was.dev):
        what = "another file was put in its place"
    elif now.size != was.size:
        what = f"its size went from {was.size} to {now.size} bytes"
    else:
        what = "it was rewritten"
    return (f"{path!r}: the file changed since it was opened ({what}); open it again to read "
            "its new content, or restore the original file")


def _same(was: FileIdentity, now: FileIdentity) -> bool:
    if (now.ino, now.size, now.mtime_ns) != (was.ino, was.size, was.mtime_ns):
        return False
    return now.host != was.host or now.dev == was.dev


def check_identity(fd: int, expected: FileIdentity, path: str) -> None:
    """Raise :class:`InvalidSessionFileError` unless the open file ``fd`` is still
    the file ``expected`` describes (same inode, size and modification time)."""
    now = file_identity(fd)
    if not _same(expected, now):
        raise InvalidSessionFileError(_changed(path, expected, now))


def check_path_identity(path: str, expected: FileIdentity) -> None:
    """Raise a named error unless ``path`` is still the file ``expected`` describes."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as err:
        raise SessionFileNotFoundError(_changed(path, expected, None)) from err
    try:
        check_identity(fd, expected, path)
    finally:
        os.close(fd)


class RawLocation(NamedTuple):
    """Where a contiguous, unfiltered dataset's bytes are in its local file."""

    path: str
    offset: int
    dtype: str


def raw_location(dset: Any, path: str) -> RawLocation | None:
    """Where the bytes of ``dset`` are, if they can be read without HDF5, else None.

    Only a contiguous, unfiltered, numeric dataset of a local file (h5py's default
    ``sec2`` driver) qualifies.
    """
    if not hasattr(os, "preadv") or dset.file.driver != "sec2":
        return None
    if dset.chunks is not None or dset.dtype.kind not in "biuf" or dset.size == 0:
        return None
    if dset.id.get_create_plist().get_nfilters() or dset.external:
        return None
    offset = dset.id.get_offset()
    if offset is None:
        return None
    return RawLocation(path, int(offset), dset.dtype.str)


def _pread_into(fd: int, buf: np.ndarray, offset: int, path: str) -> None:
    """Fill the byte buffer ``buf`` from ``offset`` of ``fd``; a short read raises."""
    view = buf.data.cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            size = os.fstat(fd).st_size
            msg = (f"{path!r}: the file changed since it was opened (it ends at byte {size}, "
                   f"inside a dataset at bytes {offset}-{offset + len(view)}); open it again "
                   "to read its new content, or restore the original file")
            raise InvalidSessionFileError(msg)
        done += got


def read_raw(
    fd: int,
    raw: RawLocation,
    shape: Sequence[int],
    key: Sequence[slice],
    gather: tuple[int, np.ndarray] | None = None,
) -> np.ndarray:
    """Read ``key`` (one slice per axis) of a contiguous C-order dataset of shape ``shape``
    with positioned reads of the open file ``fd``.

    ``gather = (axis, positions)`` then takes these positions of ``axis`` of the block (as
    ``np.take``; in range).  Whole rows of the first axis are read straight into the
    result; anything else goes through a small buffer, piece by piece, into one result
    array.  The result is writable and owned by no one else.
    """
    dtype = np.dtype(raw.dtype)
    ranges = [range(*k.indices(n)) for k, n in zip(key, shape, strict=True)]
    out_shape = [len(r) for r in ranges]
    if gather is not None:
        out_shape[gather[0]] = len(gather[1])
    if not shape:
        buf = np.empty(dtype.itemsize, np.uint8)
        _pread_into(fd, buf, raw.offset, raw.path)
        return buf.view(dtype).reshape(())
    if 0 in out_shape or any(len(r) == 0 for r in ranges):
        return np.empty(out_shape, dtype)
    rows = ranges[0]
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    whole_rows = all(r == range(n) for r, n in zip(ranges[1:], shape[1:], strict=True))
    if whole_rows and rows.step == 1 and (gather is None or gather[0] == 0):
        buf = np.empty(len(rows) * row_bytes, np.uint8)
        _pread_into(fd, buf, raw.offset + rows.start * row_bytes, raw.path)
        block = buf.view(dtype).reshape([len(rows), *shape[1:]])
        return block if gather is None else np.take(block, gather[1], axis=0)
    if gather is not None and gather[0] == 0:
        return np.take(read_raw(fd, raw, shape, key), gather[1], axis=0)
    out = np.empty(out_shape, dtype)
    copies = None if gather is None else _block_copies(gather[1])
    per_piece = max(1, _PIECE_BYTES // (row_bytes * rows.step))
    scratch = np.empty(((per_piece - 1) * rows.step + 1) * row_bytes, np.uint8)
    inner = (slice(None, None, rows.step), *key[1:])
    for i in range(0, len(rows), per_piece):
        n = min(per_piece, len(rows) - i)
        span = (n - 1) * rows.step + 1
        part = scratch[: span * row_bytes]
        _pread_into(fd, part, raw.offset + rows[i] * row_bytes, raw.path)
        piece = part.view(dtype).reshape([span, *shape[1:]])[inner]
        if gather is None:
            out[i : i + n] = piece
        elif copies is not None:
            lead = (slice(None),) * (gather[0] - 1)
            for dst, src in copies:
                out[(slice(i, i + n), *lead, dst)] = piece[(slice(None), *lead, src)]
        else:
            # mode="clip": the positions are in range; "raise" would buffer the output
            np.take(piece, gather[1], axis=gather[0], out=out[i : i + n], mode="clip")
    return out


def _block_copies(positions: np.ndarray) -> list[tuple[slice, slice]] | None:
    """``(destination, source)`` slices that gather increasing ``positions`` as a few block
    copies (about twice as fast as ``np.take`` for e.g. every valid ROI), or None."""
    if positions.size == 0 or bool(np.any(np.diff(positions) <= 0)):
        return None
    parts = runs(positions)
    if len(parts) > max(4, positions.size // 8):
        return None
    pairs = []
    at = 0
    for part in parts:
        n = len(range(part.start, part.stop, part.step or 1))
        pairs.append((slice(at, at + n), part))
        at += n
    return pairs


def open_manager(opener: Any, path: str, **kwargs: Any) -> CachingFileManager:
    """A picklable, per-process cached handle of an HDF5 file opened read-only."""
    return CachingFileManager(opener, path, mode="r", kwargs=kwargs)


class H5ArrayWrapper(BackendArray):
    """One HDF5 dataset (or a view of it), read on indexing.

    Holds the file manager, the dataset path and how to map the presented axes onto
    the stored ones; never an open h5py object, so it pickles to dask workers.

    Parameters
    ----------
    manager
        ``CachingFileManager`` of the file.
    h5path
        Path of the dataset in the file.
    file_shape
        Shape of the stored dataset.
    dtype
        dtype presented (values are cast on read).
    lock
        Lock held while reading (HDF5 is not thread-safe).
    order
        Stored axes in presented order (``(1, 0)`` presents a (time, roi) dataset as
        (roi, time)).  Default: stored order.
    take
        ``(stored_axis, indices)``: present only these positions of a stored axis, in this
        order; ``-1`` presents ``fill_value``.
    fixed
        ``{stored_axis: index}``: stored axes fixed at one position (not presented).
    fill_value
        Value for ``-1`` entries of ``take``.
    token
        Deterministic identity for dask (path, modification time, dataset, view).
    raw
        Where a contiguous, unfiltered dataset's bytes are in a local file
        (:func:`raw_location`): it is then read with positioned reads of the descriptor of
        the file the manager holds open, straight into the result (no HDF5 call, no
        intermediate copy); nothing is memory-mapped, so the manager's ``close`` releases
        everything and a file truncated under an open session raises.
    identity
        The file's identity when it was opened (:func:`file_identity`): checked after every
        read of a local file, so that a file replaced, truncated or rewritten since raises
        :class:`~ophys_xr.exceptions.InvalidSessionFileError` instead of giving other data.
    """

    def __init__(
        self,
        manager: Any,
        h5path: str,
        file_shape: Sequence[int],
        dtype: np.dtype,
        *,
        lock: Any = HDF5_LOCK,
        order: Sequence[int] | None = None,
        take: tuple[int, np.ndarray] | None = None,
        fixed: Mapping[int, int] | None = None,
        fill_value: Any = np.nan,
        token: object = None,
        raw: RawLocation | None = None,
        identity: FileIdentity | None = None,
    ) -> None:
        self.manager = manager
        self.h5path = h5path
        self.file_shape = tuple(int(n) for n in file_shape)
        self.fixed = dict(fixed or {})
        free = [a for a in range(len(self.file_shape)) if a not in self.fixed]
        self.order = tuple(order) if order is not None else tuple(free)
        if sorted(self.order) != free:
            msg = f"order {self.order} must be a permutation of the free axes {free}"
            raise ValueError(msg)
        self.take = (int(take[0]), np.asarray(take[1], dtype=np.int64)) if take else None
        self.fill_value = fill_value
        self.lock = lock
        # native byte order: h5py reports e.g. '<f4' explicitly, which netCDF4 warns about
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.token = token
        self.raw = RawLocation(*raw) if raw is not None else None
        self.identity = identity
        sizes = dict(enumerate(self.file_shape))
        if self.take is not None:
            sizes[self.take[0]] = len(self.take[1])
        self.shape = tuple(sizes[a] for a in self.order)

    def __dask_tokenize__(self) -> object:
        return (type(self).__name__, self.token, self.h5path, self.order, self.fixed,
                None if self.take is None else (self.take[0], self.take[1].tobytes()))

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        """Read ``key``; always an owned, writable array (xarray's lazy indexing path)."""
        out = self.view(key)
        return out if out.flags.writeable else out.copy()

    def view(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        """Read ``key``; may be a view of a larger block read (e.g. whole rows).

        For dask, whose results are always a copy of the task outputs (one concatenation,
        or a defensive copy of a single chunk).
        """
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw
        )

    def _raw(self, key: tuple[Any, ...]) -> np.ndarray:
        nd = len(self.file_shape)
        fkey: list[Any] = [slice(None)] * nd
        squeeze: list[int] = []
        for axis, index in self.fixed.items():
            fkey[axis] = slice(index, index + 1)
        for pos, k in enumerate(key):
            if isinstance(k, int | np.integer):
                squeeze.append(pos)
                k = slice(int(k), int(k) + 1)
            fkey[self.order[pos]] = k
        post: tuple[int, np.ndarray | None, np.ndarray] | None = None
        if self.take is not None:
            axis, indices = self.take
            sel = indices[fkey[axis]]
            valid = sel >= 0
            step = _constant_step(sel)
            if step is not None:
                # an evenly spaced selection (e.g. every ROI) is a strided slice: read
                # straight into the result when it spans whole rows, no gather
                fkey[axis] = slice(int(sel[0]), int(sel[-1]) + 1, step)
            elif valid.any():
                lo, hi = int(sel[valid].min()), int(sel[valid].max())
                fkey[axis] = slice(lo, hi + 1)
                post = (axis, np.where(valid, sel - lo, 0), valid)
            else:
                fkey[axis] = slice(0, 0)
                post = (axis, None, valid)
        gather = None if post is None or post[1] is None else (post[0], post[1])
        block = self._read(tuple(fkey), gather)
        if post is not None:
            axis, positions, valid = post
            if positions is None:
                shape = list(block.shape)
                shape[axis] = len(valid)
                block = np.full(shape, self.fill_value, dtype=self.dtype)
            elif not valid.all():
                block = block.astype(self.dtype, copy=False)
                where: list[Any] = [slice(None)] * nd
                where[axis] = ~valid
                block[tuple(where)] = self.fill_value
        if self.fixed:
            block = block[tuple(0 if a in self.fixed else slice(None) for a in range(nd))]
        block = np.transpose(block, _free_order(self.order, self.fixed, nd))
        if squeeze:
            block = block[tuple(0 if p in squeeze else slice(None) for p in range(block.ndim))]
        return block.astype(self.dtype, copy=False)

    def _read(self, fkey: tuple[slice, ...], gather: tuple[int, np.ndarray] | None) -> np.ndarray:
        """The stored block ``fkey``, then ``np.take`` of ``gather`` if given."""
        if self.raw is not None:
            with contextlib.ExitStack() as stack:
                with self.lock:  # opening the file is an HDF5 call
                    f = stack.enter_context(self.manager.acquire_context(needs_lock=False))
                    fd = f.id.get_vfd_handle()
                # positioned reads: no HDF5 call, no lock; the context keeps the file open
                block = read_raw(fd, self.raw, self.file_shape, fkey, gather)
                if self.identity is not None:
                    check_identity(fd, self.identity, self.raw.path)
            return block
        with self.lock:
            f = self.manager.acquire(needs_lock=False)
            dset = f[self.h5path]
            if dset.dtype.kind == "O":
                dset = dset.asstr()
            try:
                block = np.asarray(dset[fkey])
            except OSError as err:
                if self.identity is None:  # a remote file: the remote reader names it
                    raise
                check_identity(f.id.get_vfd_handle(), self.identity, f.filename)
                msg = (f"{f.filename!r}: cannot read {self.h5path} ({err}); the file is "
                       "damaged, download or copy it again")
                raise InvalidSessionFileError(msg) from err
            if self.identity is not None:
                check_identity(f.id.get_vfd_handle(), self.identity, f.filename)
        return block if gather is None else np.take(block, gather[1], axis=gather[0])


def _constant_step(sel: np.ndarray) -> int | None:
    """The step if ``sel`` is a non-empty, increasing, evenly spaced run of valid indices."""
    if sel.size == 0 or sel[0] < 0:
        return None
    if sel.size == 1:
        return 1
    steps = np.diff(sel)
    step = int(steps[0])
    if step <= 0 or not bool(np.all(steps == step)):
        return None
    return step


def _free_order(order: Sequence[int], fixed: Mapping[int, int], nd: int) -> list[int]:
    """Transpose permutation once the fixed axes were dropped from the block."""
    remaining = [a for a in range(nd) if a not in fixed]
    return [remaining.index(a) for a in order]


def lazy(array: BackendArray) -> indexing.LazilyIndexedArray:
    """Wrap a backend array so that xarray indexes it lazily."""
    return indexing.LazilyIndexedArray(array)


class DaskSource:
    """Numpy-style indexing over an :class:`H5ArrayWrapper`, for ``dask.array.from_array``.

    Returns views of the blocks read where possible: dask copies every result once.
    """

    def __init__(self, array: H5ArrayWrapper) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = len(array.shape)

    def __dask_tokenize__(self) -> object:
        return self.array.__dask_tokenize__()

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(isinstance(k, np.ndarray | list) for k in key):
            outer = tuple(np.asarray(k) if isinstance(k, np.ndarray | list) else k for k in key)
            return self.array.view(indexing.OuterIndexer(outer))
        return self.array.view(indexing.BasicIndexer(key))



def runs(indices: np.ndarray) -> list[slice]:
    """``indices`` (non-negative) as the fewest slices, in order: ``[0, 1, 2, 5, 6]`` is
    ``[slice(0, 3), slice(5, 7)]``; an evenly spaced selection is one strided slice."""
    indices = np.asarray(indices, dtype=np.int64)
    step = _constant_step(indices)
    if step is not None:
        return [slice(int(indices[0]), int(indices[-1]) + 1, step)]
    gaps = np.flatnonzero(np.diff(indices) != 1) + 1
    return [slice(int(run[0]), int(run[-1]) + 1) for run in np.split(indices, gaps)]


class SubsetArray(BackendArray):
    """Some positions of one axis of a lazily read :class:`xarray.Variable`, read as slices.

    xarray passes an integer-array selection of a store variable on to the store as
    orthogonal indexing, which Zarr reads many times slower than a slice.  This presents
    positions ``indices`` of ``dim`` and reads every request as the fewest basic (slice)
    selections of ``variable``, joined in memory.

    Parameters
    ----------
    variable
        A lazily indexed Variable (as opened by xarray with ``chunks=None``); picklable.
    dim
        The dimension to select along.
    indices
        Increasing positions along ``dim``.
    token
        Deterministic identity for dask (e.g. the store's path and the variable's name).
    """

    def __init__(self, variable: Any, dim: str, indices: np.ndarray, token: object) -> None:
        self.variable = variable
        self.axis = variable.get_axis_num(dim)
        self.indices = np.asarray(indices, dtype=np.int64)
        shape = list(variable.shape)
        shape[self.axis] = self.indices.size
        self.shape = tuple(shape)
        self.dtype = variable.dtype
        self.token = token

    def __dask_tokenize__(self) -> object:
        return (type(self).__name__, self.token, self.axis, self.indices.tobytes())

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw
        )

    def _raw(self, key: tuple[Any, ...]) -> np.ndarray:
        key = key + (slice(None),) * (len(self.shape) - len(key))
        picked = self.indices[key[self.axis]]
        if picked.ndim == 0:  # one position: the axis is dropped
            return self._read(key, int(picked))
        if picked.size == 0:
            empty = list(key)
            empty[self.axis] = slice(0, 0)
            return self._read(tuple(empty), slice(0, 0))
        blocks = [self._read(key, part) for part in runs(picked)]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=self.axis)

    def _read(self, key: tuple[Any, ...], part: int | slice) -> np.ndarray:
        full = list(key)
        full[self.axis] = part
        return np.asarray(self.variable[tuple(full)].values)
