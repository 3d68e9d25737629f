"""Response metrics of a response Dataset (xarray layer over ``_compute``).

:func:`image_selectivity`, :func:`lifetime_sparseness`, :func:`reliability` and
:func:`fraction_significant_responses` take what :func:`ophys_xr.stimulus_response` /
:func:`ophys_xr.trial_response` return and compute the visual_behavior_analysis (VBA)
``cell_metrics`` of every cell, over all events or per group of events (e.g. per image).
Each docstring states the definition, with the few places where ophys_xr does something
else on purpose.  The numpy work is done by the kernels of
:mod:`ophys_xr._compute.metrics`, through ``xarray.apply_ufunc``: on dask input the
results are lazy.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ophys_xr import _compute, _options
from ophys_xr.exceptions import MissingDataError, OptionError, SchemaError
from ophys_xr.variables import CELL_DIM as CELL

__all__ = [
    "fraction_significant_responses",
    "image_selectivity",
    "lifetime_sparseness",
    "reliability",
]

#: The relative-time dim of a response Dataset (``ophys_xr.responses``).
TREL = "eventlocked_timestamps"


def _event_dim(response: xr.Dataset, name: str, purpose: str) -> str:
    """The event dim of ``response[name]`` (its one dim besides cells and relative time)."""
    if not isinstance(response, xr.Dataset) or name not in response.data_vars:
        have = sorted(map(str, response.data_vars)) if isinstance(response, xr.Dataset) else []
        hint = (" Compute it with stimulus_response(..., p_value=True)."
                if name == "p_value_gray_screen" else
                " Pass what stimulus_response / trial_response return.")
        msg = f"{purpose} needs the variable {name!r}; the Dataset has {have}.{hint}"
        raise MissingDataError(msg)
    dims = [d for d in response[name].dims if d not in (CELL, TREL)]
    if len(dims) != 1:
        msg = (f"{purpose}: {name!r} must have exactly one event dimension besides {CELL!r} "
               f"and {TREL!r}; it has dims {response[name].dims}")
        raise SchemaError(msg)
    return str(dims[0])


def _group_codes(response: xr.Dataset, by: Hashable, dim: str) -> tuple[np.ndarray, np.ndarray]:
    """Group of each event (codes into the sorted unique values of coordinate ``by``)."""
    if by not in response.coords or response[by].dims != (dim,):
        choices = [str(n) for n, c in response.coords.items() if c.dims == (dim,) and n != dim]
        msg = f"by={by!r} must be a coordinate along {dim!r}; choices: {choices}"
        raise OptionError(msg)
    codes, uniques = pd.factorize(np.asarray(response[by].values), sort=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques)


def _by_codes(response: xr.Dataset, by: Hashable | None, dim: str
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_group_codes`, or one group of every event (and no names) for ``by=None``."""
    if by is None:
        return np.zeros(response.sizes[dim], dtype=np.int64), None
    return _group_codes(response, by, dim)


def image_selectivity(response: xr.Dataset, *, by: Hashable = "image_name") -> xr.Dataset:
    """Preferred image and image selectivity indices of each cell (VBA ``cell_metrics``).

    Parameters
    ----------
    response
        What :func:`~ophys_xr.stimulus_response` returns (e.g. for ``event="changes"`` or
        ``"images"``; select events first if wanted, e.g. ``response.where(...)``).
    by
        Coordinate along the event dim that names the images.

    Returns
    -------
    xarray.Dataset
        Per cell:

        * ``image_mean_response`` (cell, ``by``) — mean of ``mean_response`` over the
          presentations of each image (NaN skipped);
        * ``pref_image`` / ``non_pref_image`` — the image with the largest / smallest mean
          (the first in sorted order on ties, as VBA; ``""`` when all are NaN);
        * ``image_selectivity_index`` — ``(pref - non_pref) / (pref + non_pref)`` of the
          image means (VBA ``get_image_selectivity_index_pref_non_pref``);
        * ``image_selectivity_index_one_vs_all`` — ``(pref - rest) / (pref + rest)`` where
          ``rest`` is the mean over all presentations of the other images (VBA
          ``get_image_selectivity_index_one_vs_all``).

        Indices are NaN where the denominator is 0.  Lazy on dask input.

    Raises
    ------
    MissingDataError
        No ``mean_response``.
    OptionError
        ``by`` is not a coordinate along the event dim.
    """
    dim = _event_dim(response, "mean_response", "image_selectivity")
    codes, groups = _group_codes(response, by, dim)
    group_dim = str(by)
    means, pref, non_pref, isi, ova = xr.apply_ufunc(
        _compute.image_preference, response["mean_response"],
        input_core_dims=[[dim]], output_core_dims=[[group_dim], [], [], [], []],
        dask="parallelized",
        output_dtypes=[np.float64, np.int64, np.int64, np.float64, np.float64],
        dask_gufunc_kwargs={"output_sizes": {group_dim: groups.size}, "allow_rechunk": True},
        kwargs={"codes": codes, "n_groups": groups.size},
    )
    names: dict[str, Any] = {"dask": "parallelized", "output_dtypes": [object],
                             "kwargs": {"names": groups}}
    out = xr.Dataset({
        "image_mean_response": means.assign_attrs(
            description=f"Mean of mean_response over the presentations of each {group_dim}"),
        "pref_image": xr.apply_ufunc(_compute.group_labels, pref, **names).assign_attrs(
            description=f"{group_dim} with the largest image_mean_response"),
        "non_pref_image": xr.apply_ufunc(_compute.group_labels, non_pref, **names).assign_attrs(
            description=f"{group_dim} with the smallest image_mean_response"),
        "image_selectivity_index": isi.assign_attrs(
            description="(pref - non_pref) / (pref + non_pref) of image_mean_response"),
        "image_selectivity_index_one_vs_all": ova.assign_attrs(
            description="(pref - rest) / (pref + rest); rest = mean response of all "
                        "presentations of the other images"),
    })
    out = out.assign_coords({group_dim: groups})
    out.attrs = dict(response.attrs) | {"by": group_dim}
    return out


def lifetime_sparseness(response: xr.Dataset, *, by: Hashable = "image_name") -> xr.DataArray:
    """Lifetime sparseness of each cell over the image means (VBA ``compute_lifetime_sparseness``).

    ``(1 - (1/N) (Σ r_i)² / Σ r_i²) / (1 - 1/N)`` where ``r_i`` is the mean of
    ``mean_response`` over the presentations of image ``i`` and ``N`` the number of images
    (those with a mean; NaN with fewer than two, or when every ``r_i`` is 0).

    Parameters
    ----------
    response
        What :func:`~ophys_xr.stimulus_response` returns.
    by
        Coordinate along the event dim that names the images.

    Returns
    -------
    xarray.DataArray
        ``lifetime_sparseness`` per cell; lazy on dask input.

    Raises
    ------
    MissingDataError
        No ``mean_response``.
    OptionError
        ``by`` is not a coordinate along the event dim.
    """
    dim = _event_dim(response, "mean_response", "lifetime_sparseness")
    codes, groups = _group_codes(response, by, dim)
    out = xr.apply_ufunc(
        _compute.grouped_lifetime_sparseness, response["mean_response"], input_core_dims=[[dim]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True},
        kwargs={"codes": codes, "n_groups": groups.size},
    )
    out.name = "lifetime_sparseness"
    out.attrs = {"description": f"Lifetime sparseness over the {groups.size} {by} means of "
                                "mean_response (VBA)"}
    return out


def reliability(
    response: xr.Dataset, *, by: Hashable | None = None, min_events: int = 6
) -> xr.DataArray:
    """Trial-to-trial reliability: mean pairwise correlation of the response-window traces.

    VBA ``compute_reliability``: for each cell, the Pearson correlation between the
    response-window parts of every pair of event-locked traces, averaged (``nanmean`` of
    the lower triangle of ``np.corrcoef``); NaN with fewer than ``min_events`` events (VBA:
    more than 5).  The response window is the points of ``eventlocked_timestamps`` with
    ``0 <= t <= response_window`` (those of ``mean_response``; VBA takes
    ``int(response_window × frame rate)`` frames from the frame at 0 s).  Traces with a NaN
    or no variance are left out, as ``nanmean`` leaves out their correlations.

    Parameters
    ----------
    response
        What :func:`~ophys_xr.stimulus_response` / :func:`~ophys_xr.trial_response` return.
    by
        None for one value per cell over all events, or a coordinate along the event dim
        (e.g. ``"image_name"``) for one value per cell and group.
    min_events
        Minimum number of events (of the cell, or of the group).

    Returns
    -------
    xarray.DataArray
        ``reliability`` (cell) or (cell, ``by``); lazy on dask input.

    Raises
    ------
    MissingDataError
        No ``eventlocked_traces``.
    OptionError
        ``by`` is not a coordinate along the event dim; ``min_events < 2``; no
        ``response_window`` attribute.
    """
    _options.integer(min_events, "min_events", minimum=2)
    dim = _event_dim(response, "eventlocked_traces", "reliability")
    if TREL not in response.coords or "response_window" not in response.attrs:
        msg = (f"reliability needs the {TREL!r} coordinate and the 'response_window' attribute "
               "that stimulus_response sets")
        raise OptionError(msg)
    grid = np.asarray(response[TREL].values, dtype=np.float64)
    points = _compute.window_slice(grid, 0.0, float(response.attrs["response_window"]), "response")
    codes, groups = _by_codes(response, by, dim)
    n_groups = 1 if groups is None else groups.size
    traces = response["eventlocked_traces"].transpose(..., dim, TREL)
    out = xr.apply_ufunc(
        _compute.grouped_reliability, traces, input_core_dims=[[dim, TREL]],
        output_core_dims=[[] if groups is None else [str(by)]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True,
                            **({} if groups is None else {"output_sizes": {str(by): n_groups}})},
        kwargs={"codes": codes, "n_groups": n_groups, "points": points,
                "min_events": int(min_events), "grouped": groups is not None},
    )
    if groups is not None:
        out = out.assign_coords({str(by): groups})
    out.name = "reliability"
    out.attrs = {"description": "Mean pairwise Pearson correlation of the response-window "
                                f"traces (0 <= t <= {response.attrs['response_window']} s)"}
    return out


def fraction_significant_responses(
    response: xr.Dataset, *, alpha: float = 0.05, by: Hashable | None = None
) -> xr.DataArray:
    """Fraction of events whose gray-screen p-value is below ``alpha`` (VBA ``cell_metrics``).

    VBA ``get_fraction_significant_p_value_gray_screen``: ``len(p < 0.05) / len(group)``.
    Here the denominator counts the events with a p-value (NaN p-values, e.g. of events at
    the session edges, are left out instead of counting as not significant).

    Parameters
    ----------
    response
        What :func:`~ophys_xr.stimulus_response` returns with ``p_value=True``.
    alpha
        Significance level, in (0, 1].
    by
        None, or a coordinate along the event dim for one value per cell and group.

    Returns
    -------
    xarray.DataArray
        ``fraction_significant_p_value_gray_screen`` (cell) or (cell, ``by``); NaN where no
        event has a p-value; lazy on dask input.

    Raises
    ------
    MissingDataError
        No ``p_value_gray_screen`` (compute with ``p_value=True``).
    OptionError
        Invalid ``alpha`` or ``by``.
    """
    _options.significance_level(alpha, "alpha")
    dim = _event_dim(response, "p_value_gray_screen", "fraction_significant_responses")
    codes, groups = _by_codes(response, by, dim)
    n_groups = 1 if groups is None else groups.size
    out = xr.apply_ufunc(
        _compute.fraction_significant, response["p_value_gray_screen"], input_core_dims=[[dim]],
        output_core_dims=[[] if groups is None else [str(by)]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True,
                            **({} if groups is None else {"output_sizes": {str(by): n_groups}})},
        kwargs={"codes": codes, "n_groups": n_groups, "alpha": float(alpha),
                "grouped": groups is not None},
    )
    if groups is not None:
        out = out.assign_coords({str(by): groups})
    out.name = "fraction_significant_p_value_gray_screen"
    out.attrs = {"description": f"Fraction of events with p_value_gray_screen < {alpha}",
                 "alpha": float(alpha)}
    return out
