"""Picklable, lazily indexed views of HDF5 datasets.

This is the only module that imports xarray's backend internals
(``xarray.core.indexing``, ``xarray.backends.locks``), so upstream changes touch one file.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from xarray.backends import BackendArray, CachingFileManager
from xarray.backends.locks import HDF5_LOCK, SerializableLock
from xarray.core import indexing

__all__ = [
    "CHUNK_BYTES",
    "HDF5_LOCK",
    "DaskSource",
    "H5ArrayWrapper",
    "SerializableLock",
    "SubsetArray",
    "lazy",
    "memmap_info",
    "open_manager",
    "runs",
]


#: Bytes of one dask chunk of the large arrays, for every reader and writer (NWB: blocks of
#: the first stored axis; stores: blocks of cells; writes: tasks of whole stored chunks).
CHUNK_BYTES = 64 * 2**20


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
    memmap
        ``(path, offset, dtype)`` of a contiguous, unfiltered dataset in a local file: it is
        then read through a memory map of the file (no HDF5 call, no lock, no intermediate
        copy), the way pynapple and lazynwb read NWB datasets.
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
        memmap: tuple[str, int, str] | None = None,
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
        self.memmap = memmap
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
        """Read ``key``; may be a read-only view of a memory-mapped file.

        For dask, whose results are always a copy of the task outputs (one concatenation,
        or a defensive copy of a single chunk), so reading a contiguous dataset costs one
        copy, as with h5py.
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
                # an evenly spaced selection (e.g. every ROI) is a strided slice: a view of
                # memory-mapped data, no gather and no copy
                fkey[axis] = slice(int(sel[0]), int(sel[-1]) + 1, step)
            elif valid.any():
                lo, hi = int(sel[valid].min()), int(sel[valid].max())
                fkey[axis] = slice(lo, hi + 1)
                post = (axis, np.where(valid, sel - lo, 0), valid)
            else:
                fkey[axis] = slice(0, 0)
                post = (axis, None, valid)
        if self.memmap is not None:
            path, offset, dtype = self.memmap
            block = np.asarray(_file_map(path, offset, self.file_shape, dtype)[tuple(fkey)])
        else:
            with self.lock:
                dset = self.manager.acquire(needs_lock=False)[self.h5path]
                if dset.dtype.kind == "O":
                    dset = dset.asstr()
                block = np.asarray(dset[tuple(fkey)])
        if post is not None:
            axis, positions, valid = post
            if positions is None:
                shape = list(block.shape)
                shape[axis] = len(valid)
                block = np.full(shape, self.fill_value, dtype=self.dtype)
            else:
                block = np.take(block, positions, axis=axis)
                if not valid.all():
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


@functools.lru_cache(maxsize=256)
def _file_map(path: str, offset: int, shape: tuple[int, ...], dtype: str) -> np.memmap:
    """A read-only memory map of a contiguous dataset (cached per process)."""
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


def memmap_info(dset: Any, path: str) -> tuple[str, int, str] | None:
    """``(path, offset, dtype)`` if ``dset`` can be read through a memory map, else None."""
    if dset.chunks is not None or dset.dtype.kind not in "biuf" or dset.size == 0:
        return None
    if dset.id.get_create_plist().get_nfilters() or dset.external:
        return None
    offset = dset.id.get_offset()
    if offset is None:
        return None
    return (path, int(offset), dset.dtype.str)


def _free_order(order: Sequence[int], fixed: Mapping[int, int], nd: int) -> list[int]:
    """Transpose permutation once the fixed axes were dropped from the block."""
    remaining = [a for a in range(nd) if a not in fixed]
    return [remaining.index(a) for a in order]


def lazy(array: BackendArray) -> indexing.LazilyIndexedArray:
    """Wrap a backend array so that xarray indexes it lazily."""
    return indexing.LazilyIndexedArray(array)


class DaskSource:
    """Numpy-style indexing over an :class:`H5ArrayWrapper`, for ``dask.array.from_array``.

    Returns views of memory-mapped data where possible: dask copies every result once.
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
