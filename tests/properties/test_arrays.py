"""The lazy-array helpers of the backends: slices from positions, subsets read as slices."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, strategies as st
from xarray.core import indexing

from ophys_xr.backends._arrays import SubsetArray, runs

positions = st.sets(st.integers(0, 40), min_size=1).map(lambda s: np.array(sorted(s)))


@given(positions)
def test_runs_cover_the_positions_in_order(indices) -> None:
    parts = runs(indices)
    joined = np.concatenate([np.arange(p.start, p.stop, p.step or 1) for p in parts])
    np.testing.assert_array_equal(joined, indices)
    assert len(parts) <= 1 + int(np.count_nonzero(np.diff(indices) != 1))


def test_runs_of_evenly_spaced_positions_is_one_strided_slice() -> None:
    assert runs(np.array([1, 4, 7, 10])) == [slice(1, 11, 3)]
    assert runs(np.array([0, 1, 2, 5, 6])) == [slice(0, 3), slice(5, 7)]


class CountingArray(indexing.ExplicitlyIndexedNDArrayMixin):
    """A backend array that records each key it is read with (basic keys only)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.keys: list[tuple] = []

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    def __getitem__(self, key):
        assert isinstance(key, indexing.BasicIndexer), key
        self.keys.append(key.tuple)
        return self.array[key.tuple]


@given(positions, st.data())
def test_subset_reads_equal_numpy(indices, data) -> None:
    values = np.arange(5 * 41, dtype=float).reshape(5, 41)
    source = CountingArray(values)
    var = xr.Variable(("time", "cell"), indexing.LazilyIndexedArray(source))
    subset = SubsetArray(var, "cell", indices, token="t")
    assert subset.shape == (5, indices.size)
    n = indices.size
    key = data.draw(st.one_of(
        st.integers(0, n - 1),
        st.builds(slice, st.integers(0, n), st.integers(0, n), st.sampled_from([None, 1, 2])),
        st.lists(st.integers(0, n - 1), min_size=1, max_size=6).map(np.array),
    ))
    lazy = xr.Variable(("time", "cell"), indexing.LazilyIndexedArray(subset))
    np.testing.assert_array_equal(lazy[:, key].values, values[:, indices][:, key])
    assert all(isinstance(k, slice | int | np.integer) for keys in source.keys for k in keys)


def test_subset_pickles_and_tokenizes() -> None:
    from dask.base import tokenize

    var = xr.Variable(("time", "cell"), np.arange(12.0).reshape(3, 4))
    subset = SubsetArray(var, "cell", np.array([0, 2, 3]), token=("store", "dff"))
    again = pickle.loads(pickle.dumps(subset))
    np.testing.assert_array_equal(again[indexing.BasicIndexer((slice(None), slice(None)))],
                                  var.values[:, [0, 2, 3]])
    assert tokenize(subset) == tokenize(again)
    other = SubsetArray(var, "cell", np.array([0, 3]), token=("store", "dff"))
    assert tokenize(subset) != tokenize(other)


def test_subset_of_one_axis_only() -> None:
    var = xr.Variable(("cell", "row"), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="frame"):
        SubsetArray(var, "frame", np.array([0]), token=None)
