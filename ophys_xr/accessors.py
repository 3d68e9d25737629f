"""The ``ds.ophys`` accessor: a thin, stateless forwarder to the public functions."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

# the functions' modules are looked up on each call (``ophys_xr`` loads them on first use):
# this module is imported the moment xarray is, and must import nothing else
import ophys_xr

if TYPE_CHECKING:  # matplotlib is optional and imported by the plots, not here
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = ["OphysDatasetAccessor"]


@xr.register_dataset_accessor("ophys")
class OphysDatasetAccessor:
    """Visual Behavior Ophys functions on a session Dataset (``ds.ophys``).

    Every method forwards to the public function of the same name (of :mod:`ophys_xr`, or of
    :mod:`ophys_xr.plotting` for the plots), with the same parameters after the Dataset, and
    returns a new object; the accessor keeps no state.  ``tests/test_accessors.py`` checks
    both for every method.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def roi_masks(self, cell_specimen_ids: Iterable[Hashable] | None = None) -> xr.DataArray:
        """Boolean ROI masks; see :func:`ophys_xr.roi_masks`."""
        return ophys_xr.cells.roi_masks(self._ds, cell_specimen_ids)

    def blink_filter(
        self, *, z_threshold: float = 3.0, dilation_frames: int = 2, merge: bool = False
    ) -> xr.Dataset:
        """Blink-filtered eye tracking; see :func:`ophys_xr.blink_filter`."""
        return ophys_xr.eye.blink_filter(self._ds, z_threshold=z_threshold,
                                dilation_frames=dilation_frames, merge=merge)

    def performance(self, *, engaged_trial_reward_rate_threshold: float = 2.0) -> xr.Dataset:
        """Behavior performance metrics; see :func:`ophys_xr.performance`."""
        return ophys_xr.behavior.performance(
            self._ds, engaged_trial_reward_rate_threshold=engaged_trial_reward_rate_threshold
        )

    def reward_rate(self) -> xr.DataArray:
        """Reward rate per trial; see :func:`ophys_xr.reward_rate`."""
        return ophys_xr.behavior.reward_rate(self._ds)

    def stimulus_response(
        self,
        data: str | xr.DataArray = "dff",
        event: Any = "images",
        *,
        window: Sequence[float] = (-0.5, 0.75),
        response_window: float = 0.5,
        baseline_window: float = 0.5,
        interpolate: bool = True,
        sampling_rate: float | None = None,
        p_value: bool = False,
        n_shuffles: int = 10_000,
        seed: int | None = 0,
    ) -> xr.Dataset:
        """Event-locked responses; see :func:`ophys_xr.stimulus_response`."""
        return ophys_xr.responses.stimulus_response(
            self._ds, data, event, window=window, response_window=response_window,
            baseline_window=baseline_window, interpolate=interpolate,
            sampling_rate=sampling_rate, p_value=p_value, n_shuffles=n_shuffles, seed=seed,
        )

    def trial_response(
        self,
        data: str | xr.DataArray = "dff",
        *,
        window: Sequence[float] = (-5.0, 5.0),
        response_window: float = 0.5,
        baseline_window: float = 0.5,
        interpolate: bool = True,
        sampling_rate: float | None = None,
        p_value: bool = False,
        n_shuffles: int = 10_000,
        seed: int | None = 0,
    ) -> xr.Dataset:
        """Responses aligned on the trials' change_time; see :func:`ophys_xr.trial_response`."""
        return ophys_xr.responses.trial_response(
            self._ds, data, window=window, response_window=response_window,
            baseline_window=baseline_window, interpolate=interpolate,
            sampling_rate=sampling_rate, p_value=p_value, n_shuffles=n_shuffles, seed=seed,
        )

    def image_selectivity(self, *, by: Hashable = "image_name") -> xr.Dataset:
        """Preferred image, selectivity indices; see :func:`ophys_xr.image_selectivity`."""
        return ophys_xr.responses.image_selectivity(self._ds, by=by)

    def lifetime_sparseness(self, *, by: Hashable = "image_name") -> xr.DataArray:
        """Lifetime sparseness of a response; see :func:`ophys_xr.lifetime_sparseness`."""
        return ophys_xr.responses.lifetime_sparseness(self._ds, by=by)

    def reliability(self, *, by: Hashable | None = None, min_events: int = 6) -> xr.DataArray:
        """Trial-to-trial reliability of a response; see :func:`ophys_xr.reliability`."""
        return ophys_xr.responses.reliability(self._ds, by=by, min_events=min_events)

    def fraction_significant_responses(
        self, *, alpha: float = 0.05, by: Hashable | None = None
    ) -> xr.DataArray:
        """Significant fraction; see :func:`ophys_xr.fraction_significant_responses`."""
        return ophys_xr.responses.fraction_significant_responses(self._ds, alpha=alpha, by=by)

    # ---- plots (matplotlib is imported on the first call, not with ophys_xr) -----------

    def plot_roi_masks(
        self,
        cell_specimen_ids: Iterable[Hashable] | None = None,
        *,
        ax: Axes | None = None,
        image: Literal["max_projection", "average_projection"] = "max_projection",
        cmap: str | Colormap = "tab10",
        alpha: float = 0.5,
        outline: bool = False,
        linewidth: float = 1.0,
        physical_units: bool = False,
    ) -> Axes:
        """ROI masks over the max projection; see :func:`ophys_xr.plotting.plot_roi_masks`."""
        return ophys_xr.plotting.plot_roi_masks(
            self._ds, cell_specimen_ids, ax=ax, image=image, cmap=cmap, alpha=alpha,
            outline=outline, linewidth=linewidth, physical_units=physical_units,
        )

    def plot_dff_heatmap(
        self,
        *,
        data: str = "dff",
        sort: str | None = "mean",
        time: slice | tuple[float, float] | None = None,
        events: Iterable[str] | None = ("changes", "rewards", "licks", "omissions"),
        ax: Axes | None = None,
        cmap: str | Colormap = "magma",
        vmin: float | None = None,
        vmax: float | None = None,
        colorbar: bool = True,
        max_columns: int | None = 4096,
    ) -> Axes:
        """Sorted ΔF/F heatmap; see :func:`ophys_xr.plotting.plot_dff_heatmap`."""
        return ophys_xr.plotting.plot_dff_heatmap(
            self._ds, data=data, sort=sort, time=time, events=events, ax=ax, cmap=cmap,
            vmin=vmin, vmax=vmax, colorbar=colorbar, max_columns=max_columns,
        )

    def plot_performance(
        self,
        *,
        ax: Sequence[Axes] | None = None,
        engaged_trial_reward_rate_threshold: float | None = None,
    ) -> Figure:
        """Rolling performance; see :func:`ophys_xr.plotting.plot_performance`."""
        return ophys_xr.plotting.plot_performance(
            self._ds, ax=ax,
            engaged_trial_reward_rate_threshold=engaged_trial_reward_rate_threshold,
        )

    def plot_stimulus_response(
        self,
        *,
        by: Hashable | None = "image_name",
        ci: float | None = 0.95,
        ax: Axes | None = None,
        cell_specimen_id: Hashable | None = None,
    ) -> Axes:
        """Event-locked means; see :func:`ophys_xr.plotting.plot_stimulus_response`."""
        return ophys_xr.plotting.plot_stimulus_response(
            self._ds, by=by, ci=ci, ax=ax, cell_specimen_id=cell_specimen_id
        )

    def to_zarr(
        self,
        store: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        chunks: Mapping[str, int] | None = None,
        progress: bool = False,
    ) -> Path:
        """Save as Zarr with the analysis chunk layout, atomically; see :func:`ophys_xr.to_zarr`."""
        return ophys_xr.io.to_zarr(self._ds, store, overwrite=overwrite, chunks=chunks,
                                   progress=progress)

    def to_netcdf(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        chunks: Mapping[str, int] | None = None,
        progress: bool = False,
    ) -> Path:
        """Save as netCDF-4, atomically; see :func:`ophys_xr.to_netcdf`."""
        return ophys_xr.io.to_netcdf(self._ds, path, overwrite=overwrite, chunks=chunks,
                            progress=progress)

    def to_pynapple(self, *, traces: str | Iterable[str] | None = None) -> dict[str, Any]:
        """The session as pynapple objects; see :func:`ophys_xr.to_pynapple`."""
        return ophys_xr.pynapple.to_pynapple(self._ds, traces=traces)
