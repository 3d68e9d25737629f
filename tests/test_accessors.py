"""The ``ds.ophys`` accessor matches the public functions it forwards to, method by method.

The methods are found by introspection, so a new method is checked without editing this file:
its function must exist with the same parameters, and it needs a call in ``CALLS`` (the
behaviour test fails until it has one).  Each call passes non-default values, so a parameter
the accessor forgets to forward shows as a different result.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")  # headless, before pyplot is imported

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from _dask import raise_if_dask_computes
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import ophys_xr
from ophys_xr import plotting
from ophys_xr.accessors import OphysDatasetAccessor
from ophys_xr.testing import simulate_session
from ophys_xr.variables import TABLE_DIMS

#: The public methods of the accessor, found by introspection.
METHODS: list[str] = sorted(
    name for name, _ in inspect.getmembers(OphysDatasetAccessor, inspect.isfunction)
    if not name.startswith("_")
)

#: Methods whose results are computed (numpy-backed results, plots, files): the function may
#: compute, and the method may compute as often as the function, not more.  Every other
#: method must not compute at all.
MUST_COMPUTE: frozenset[str] = frozenset({
    "performance", "reward_rate", "plot_dff_heatmap", "plot_performance", "plot_roi_masks",
    "plot_stimulus_response", "to_netcdf", "to_pynapple", "to_zarr",
})


def _home(name: str) -> ModuleType:
    """The namespace a method's function lives in: ``ophys_xr.plotting`` for the plots."""
    return plotting if name.startswith("plot_") else ophys_xr


def _function(name: str) -> Callable[..., Any]:
    home = _home(name)
    assert name in home.__all__, (
        f"ds.ophys.{name} has no public function {home.__name__}.{name} (not in __all__)"
    )
    function = getattr(home, name)
    assert inspect.isfunction(function), f"{home.__name__}.{name} is not a function"
    return function


def _described(parameters: list[inspect.Parameter]) -> list[tuple[str, str, Any]]:
    return [(p.name, p.kind.name, p.default) for p in parameters]


# ---- signatures -----------------------------------------------------------------------------


def test_the_accessor_has_methods() -> None:
    assert len(METHODS) >= 16, METHODS
    assert "blink_filter" in METHODS


@pytest.mark.parametrize("name", METHODS)
def test_same_parameters_as_the_function(name: str) -> None:
    """Names, kinds (positional or keyword-only) and defaults, after the Dataset argument."""
    method = getattr(OphysDatasetAccessor, name)
    function = _function(name)
    method_params = list(inspect.signature(method).parameters.values())
    function_params = list(inspect.signature(function).parameters.values())
    assert method_params[0].name == "self"
    first = function_params[0]
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, first
    assert first.default is inspect.Parameter.empty, first
    assert _described(method_params[1:]) == _described(function_params[1:])


# ---- behaviour ------------------------------------------------------------------------------


class Inputs(NamedTuple):
    session: xr.Dataset  # a simulated session, dask-backed traces, masks, images, eye tracking
    response: xr.Dataset  # a lazy stimulus_response of it, with p-values


@dataclass(frozen=True)
class Call:
    """What to call: on which Dataset, with which arguments after it."""

    obj: xr.Dataset
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _two_cells(data: Inputs, where: Path) -> Call:
    ids = data.session.cell_specimen_id.values
    return Call(data.session, ([int(ids[2]), int(ids[0])],))


#: One call per method: ``(inputs, a folder for this side's outputs) -> Call``.
CALLS: dict[str, Callable[[Inputs, Path], Call]] = {
    "roi_masks": _two_cells,
    "blink_filter": lambda d, _: Call(
        d.session, kwargs={"z_threshold": 2.0, "dilation_frames": 4, "merge": True}),
    "performance": lambda d, _: Call(
        d.session, kwargs={"engaged_trial_reward_rate_threshold": 1.0}),
    "reward_rate": lambda d, _: Call(d.session),
    "stimulus_response": lambda d, _: Call(
        d.session, ("events", "changes"),
        {"window": (-0.25, 0.5), "response_window": 0.25, "baseline_window": 0.25,
         "interpolate": True, "sampling_rate": 20.0, "p_value": True, "n_shuffles": 20,
         "seed": 3}),
    "trial_response": lambda d, _: Call(
        d.session, ("dff",),
        {"window": (-1.0, 1.0), "response_window": 0.25, "baseline_window": 0.25,
         "interpolate": False, "sampling_rate": None, "p_value": True, "n_shuffles": 20,
         "seed": 4}),
    "image_selectivity": lambda d, _: Call(d.response, kwargs={"by": "image_name"}),
    "lifetime_sparseness": lambda d, _: Call(d.response, kwargs={"by": "image_index"}),
    "reliability": lambda d, _: Call(d.response, kwargs={"by": "image_name", "min_events": 10}),
    "fraction_significant_responses": lambda d, _: Call(
        d.response, kwargs={"alpha": 0.2, "by": "image_name"}),
    "plot_roi_masks": lambda d, _: Call(
        d.session, ([int(d.session.cell_specimen_id[1])],),
        {"image": "average_projection", "cmap": "viridis", "alpha": 0.3, "outline": True,
         "linewidth": 2.0}),
    "plot_dff_heatmap": lambda d, _: Call(
        d.session, kwargs={"data": "events", "sort": "max", "time": (25.0, 55.0),
                           "events": ("changes", "licks"), "cmap": "viridis", "vmin": 0.0,
                           "vmax": 1.0, "colorbar": False, "max_columns": 64}),
    "plot_performance": lambda d, _: Call(
        d.session, kwargs={"engaged_trial_reward_rate_threshold": 1.0}),
    "plot_stimulus_response": lambda d, _: Call(
        d.response, kwargs={"by": "image_name", "ci": 0.5,
                            "cell_specimen_id": int(d.response.cell_specimen_id[0])}),
    "to_zarr": lambda d, where: Call(
        d.session, (where / "session.zarr",),
        {"overwrite": True, "chunks": {"time": 600}, "progress": False}),
    "to_netcdf": lambda d, where: Call(
        d.session, (where / "session.nc",),
        {"overwrite": True, "chunks": {"time": 600}, "progress": False}),
    "to_pynapple": lambda d, _: Call(d.session, kwargs={"traces": ["events", "dff"]}),
}


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    session = simulate_session(n_cells=3, minutes=1.0, seed=5, chunk_frames=500)
    # as an opened file: the tables in memory, everything else (masks, images, eye tracking,
    # running, templates; the traces already are) dask-backed
    lazy = {name: var.chunk() for name, var in session.data_vars.items()
            if not set(var.dims) <= TABLE_DIMS and not isinstance(var.data, da.Array)}
    assert "roi_mask" in lazy
    session = session.assign(lazy)
    response = ophys_xr.stimulus_response(session, p_value=True, n_shuffles=50)
    return Inputs(session, response)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _figure_data(obj: Axes | Figure) -> list[dict[str, Any]]:
    """What a plot shows: per Axes, its texts, images, lines and collections."""
    fig = obj if isinstance(obj, Figure) else obj.figure
    fig.canvas.draw()
    return [
        {
            "texts": [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()],
            "limits": [ax.get_xlim(), ax.get_ylim()],
            "images": [(np.asarray(image.get_array()), image.get_extent(), image.get_alpha(),
                        image.get_cmap().name) for image in ax.images],
            "lines": [(line.get_xydata(), line.get_color(), line.get_linewidth())
                      for line in ax.lines],
            "collections": [(type(c).__name__, c.get_label(), c.get_linewidths(),
                             c.get_facecolors(), c.get_edgecolors()) for c in ax.collections],
            "patches": len(ax.patches),
        }
        for ax in fig.axes
    ]


def _reopened(path: Path) -> xr.Dataset:
    """The store as written, in dask blocks of its storage chunks."""
    if path.suffix == ".zarr":
        return xr.open_zarr(path)
    return xr.open_dataset(path, engine="h5netcdf", chunks={})


def _pynapple_data(obj: Any) -> dict[str, Any]:
    """What a pynapple object holds: its times, values, intervals, columns and metadata."""
    parts: dict[str, Any] = {"type": type(obj).__name__}
    for name in ("t", "d", "start", "end", "columns"):
        if name in dir(obj):
            parts[name] = np.asarray(getattr(obj, name))
    if "metadata" in dir(obj):
        parts["metadata"] = obj.metadata.to_dict("list")
    return parts


def _assert_same(by_method: Any, by_function: Any) -> None:
    assert type(by_method) is type(by_function)
    if isinstance(by_method, xr.DataArray | xr.Dataset):
        xr.testing.assert_identical(by_method, by_function)
    elif isinstance(by_method, Axes | Figure):
        np.testing.assert_equal(_figure_data(by_method), _figure_data(by_function))
    elif isinstance(by_method, Path):
        assert by_method.name == by_function.name
        with _reopened(by_method) as a, _reopened(by_function) as b:
            xr.testing.assert_identical(a, b)
            assert {k: v.chunks for k, v in a.variables.items()} == {
                k: v.chunks for k, v in b.variables.items()}
    elif isinstance(by_method, dict):  # to_pynapple: pynapple objects by name
        assert list(by_method) == list(by_function)
        np.testing.assert_equal({k: _pynapple_data(v) for k, v in by_method.items()},
                                {k: _pynapple_data(v) for k, v in by_function.items()})
    else:  # pragma: no cover - a new kind of result needs a comparison here
        pytest.fail(f"no comparison for results of type {type(by_method).__name__}")


@pytest.mark.parametrize("name", METHODS)
def test_same_result_as_the_function(name: str, inputs: Inputs, tmp_path: Path) -> None:
    if name not in CALLS:
        pytest.fail(f"ds.ophys.{name} has no call in CALLS of {__name__}; add one")
    function = _function(name)
    (tmp_path / "function").mkdir()
    (tmp_path / "method").mkdir()
    by_function_call = CALLS[name](inputs, tmp_path / "function")
    by_method_call = CALLS[name](inputs, tmp_path / "method")

    allowed = sys.maxsize if name in MUST_COMPUTE else 0
    with raise_if_dask_computes(max_computes=allowed) as counted:
        by_function = function(by_function_call.obj, *by_function_call.args,
                               **by_function_call.kwargs)
    # the method computes no more than the function (and nothing when the function is lazy)
    with raise_if_dask_computes(max_computes=counted.total_computes):
        accessor = by_method_call.obj.ophys
        by_method = getattr(accessor, name)(*by_method_call.args, **by_method_call.kwargs)

    assert by_method is not by_method_call.obj
    assert set(vars(accessor)) == {"_ds"}, "the accessor keeps no state"
    _assert_same(by_method, by_function)


def test_every_call_is_of_a_method() -> None:
    assert sorted(set(CALLS) - set(METHODS)) == []
