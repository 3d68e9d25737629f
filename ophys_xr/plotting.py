"""Matplotlib plots of a session: ROI masks, a sorted ΔF/F heatmap, event-locked means, behaviour.

matplotlib is an optional dependency (``pip install "ophys_xr[plot]"``).  It is imported inside
the functions, so neither ``import ophys_xr`` nor ``import ophys_xr.plotting`` imports it.

Every function draws on ``ax`` (a new figure when ``ax`` is None), returns the Axes it drew on
(or the Figure when it draws several panels), never calls ``plt.show()`` and never changes its
input.  Large arrays are selected before they are read: a heatmap of one minute of an hour-long
session reads that minute only.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from ophys_xr import behavior, cells
from ophys_xr.exceptions import MissingDataError, MissingDependencyError, OptionError, SchemaError
from ophys_xr.variables import CELL_DIM, validate

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = [
    "EVENT_KINDS",
    "HEATMAP_SORTS",
    "plot_dff_heatmap",
    "plot_performance",
    "plot_roi_masks",
    "plot_stimulus_response",
]

#: Row orders of :func:`plot_dff_heatmap` (``None`` keeps the Dataset's cell order).
HEATMAP_SORTS: tuple[str, ...] = ("mean", "max", "peak_time")

#: Behaviour events :func:`plot_dff_heatmap` can mark, and the variables each one reads.
EVENT_KINDS: dict[str, tuple[str, ...]] = {
    "changes": ("change_time", "trials_is_change"),
    "sham_changes": ("change_time", "catch"),
    "rewards": ("rewards_timestamps",),
    "licks": ("licks_timestamps",),
    "omissions": ("start_time", "omitted"),
}

# colour, line style, line width and where the marks go ("full": across every cell row;
# "upper"/"lower": halves of a strip above the rows)
_EVENT_STYLE: dict[str, tuple[str, Any, float, str]] = {
    "changes": ("#00d5ff", "solid", 1.2, "full"),
    "sham_changes": ("#9d9dff", "dashed", 1.2, "full"),
    "omissions": ("#ff8c1a", "dotted", 1.4, "full"),
    "rewards": ("tab:blue", "solid", 2.5, "upper"),
    "licks": ("0.15", "solid", 0.6, "lower"),
}

_CELL = CELL_DIM
_TRELATIVE = "eventlocked_timestamps"
_ROLLING_PLOTTED = ("hit_rate", "false_alarm_rate", "rolling_dprime", "reward_rate", "engaged")


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        msg = (
            "ophys_xr.plotting needs matplotlib, which is not installed; install it with "
            "`pip install \"ophys_xr[plot]\"` (or `pip install matplotlib`)"
        )
        raise MissingDependencyError(msg) from err
    return plt


def _new_axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    _, new = _pyplot().subplots(layout="constrained")
    return new


# ---- ROI masks ----------------------------------------------------------------------------


def _axis_scale(ds: xr.Dataset, dim: str, physical_units: bool) -> tuple[float, str]:
    if not physical_units:
        return 1.0, "pixel"
    attrs = ds[dim].attrs
    spacing, unit = attrs.get("spacing"), attrs.get("unit")
    if not isinstance(spacing, numbers.Real) or isinstance(spacing, bool) or not unit:
        msg = (
            f"physical_units=True needs the pixel size in ds[{dim!r}].attrs['spacing'] and "
            f"['unit']; got attrs {dict(attrs)!r}. Use physical_units=False to plot in pixels."
        )
        raise MissingDataError(msg)
    return float(spacing), str(unit)


def _pixel_step(values: np.ndarray, dim: str) -> float:
    """The step between pixel centres of a regularly spaced ``row``/``column`` coordinate."""
    if values.size < 2:
        return 1.0
    steps = np.diff(values.astype(np.float64))
    if not np.all(steps == steps[0]) or steps[0] <= 0:
        msg = (
            f"plot_roi_masks needs an increasing, regularly spaced {dim!r} coordinate (a "
            f"slice of the field of view); got steps {np.unique(steps)[:5].tolist()}"
        )
        raise OptionError(msg)
    return float(steps[0])


def _roi_colors(cmap: str | Colormap, n: int) -> np.ndarray:
    import matplotlib as mpl
    from matplotlib.colors import ListedColormap

    if isinstance(cmap, str):
        try:
            colormap = mpl.colormaps[cmap]
        except KeyError as err:
            msg = (
                f"unknown colormap {cmap!r}; give a name from matplotlib.colormaps "
                "(e.g. 'tab10', 'tab20', 'viridis') or a Colormap"
            )
            raise OptionError(msg) from err
    else:
        colormap = cmap
    if isinstance(colormap, ListedColormap) and colormap.N < 256:
        # a qualitative map: its colours in turn (they repeat past colormap.N ROIs)
        return np.asarray(colormap(np.arange(n) % colormap.N))
    return np.asarray(colormap(np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.0])))


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


def plot_roi_masks(
    ds: xr.Dataset,
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
    """ROI masks over the max projection: one coloured overlay (or outline) per ROI.

    The projection is drawn in gray; each ROI's mask is drawn as one small image covering its
    bounding box (filled, with opacity ``alpha``) or, with ``outline=True``, as the 0.5 contour
    of its mask.  Pixel centres sit at the ``row``/``column`` coordinate values, so a cropped
    Dataset (``ds.isel(row=slice(100, 200))``) is drawn where it is in the field of view.

    Parameters
    ----------
    ds
        A session Dataset (``roi_mask`` and ``image``).
    cell_specimen_ids
        ROIs to draw, in this order (colours follow it); all ROIs of ``ds`` if None.
    ax
        Axes to draw on; a new figure if None.
    image
        Background image: ``"max_projection"`` or ``"average_projection"``.
    cmap
        Colormap (name or object) of the ROI colours.  A qualitative map (fewer than 256
        colours, e.g. ``"tab10"``) gives its colours in turn, repeating past its length; a
        continuous map is sampled evenly, one colour per ROI.
    alpha
        Opacity of the filled masks, in [0, 1] (outlines are opaque).
    outline
        Draw mask outlines instead of filled masks.
    linewidth
        Width of the outlines, points.
    physical_units
        Axes in ``ds.row.attrs["unit"]`` (mm in Allen files), using ``attrs["spacing"]`` of
        ``row`` and ``column``, instead of pixels.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.images[0]`` is the projection; ``ax.images[1:]`` (filled) or ``ax.collections``
        (outlines) hold one artist per drawn ROI, in order, labelled with its
        ``cell_specimen_id``.

    Raises
    ------
    MissingDataError
        ``roi_mask`` or ``image`` is not in ``ds``, an id is not a cell of ``ds``, or
        ``physical_units=True`` and the pixel size attributes are missing.
    OptionError
        Bad ``image``, ``alpha`` or ``cmap``.

    Warns
    -----
    UserWarning
        A requested ROI has no pixel in the field of view of ``ds`` (it is not drawn).
    """
    if image not in ("max_projection", "average_projection"):
        msg = f"image must be 'max_projection' or 'average_projection', got {image!r}"
        raise OptionError(msg)
    if not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
        msg = f"alpha must be a number in [0, 1], got {alpha!r}"
        raise OptionError(msg)
    validate(ds, (image, "row", "column"), purpose="plot_roi_masks")
    masks_da = cells.roi_masks(ds, cell_specimen_ids).transpose(_CELL, "row", "column")
    sy, unit = _axis_scale(ds, "row", physical_units)
    sx, _ = _axis_scale(ds, "column", physical_units)
    rows = np.asarray(ds["row"].values)
    columns = np.asarray(ds["column"].values)
    if rows.size == 0 or columns.size == 0:
        msg = f"the field of view of ds is empty ({rows.size} rows x {columns.size} columns)"
        raise OptionError(msg)
    step_r, step_c = _pixel_step(rows, "row"), _pixel_step(columns, "column")

    def x_edges(lo: int, hi: int) -> tuple[float, float]:
        return (columns[lo] - step_c / 2) * sx, (columns[hi - 1] + step_c / 2) * sx

    def y_edges(lo: int, hi: int) -> tuple[float, float]:
        return (rows[lo] - step_r / 2) * sy, (rows[hi - 1] + step_r / 2) * sy

    masks = np.asarray(masks_da.values, dtype=bool)  # the selected ROIs only, one read
    ids = masks_da[_CELL].values
    colors = _roi_colors(cmap, len(ids))
    ax = _new_axes(ax)
    x0, x1 = x_edges(0, columns.size)
    y0, y1 = y_edges(0, rows.size)
    ax.imshow(np.asarray(ds[image].transpose("row", "column").values), cmap="gray",
              extent=(x0, x1, y1, y0), interpolation="nearest")
    empty = []
    for mask, csid, color in zip(masks, ids, colors, strict=True):
        box = _bounding_box(mask)
        if box is None:
            empty.append(int(csid))
            continue
        r0, r1, c0, c1 = box
        crop = mask[r0:r1, c0:c1]
        if outline:
            padded = np.pad(crop, 1).astype(np.float64)
            xs = (columns[c0] + step_c * np.arange(-1, c1 - c0 + 1)) * sx
            ys = (rows[r0] + step_r * np.arange(-1, r1 - r0 + 1)) * sy
            artist = ax.contour(xs, ys, padded, levels=[0.5], colors=[color],
                                linewidths=linewidth)
        else:
            rgba = np.zeros((*crop.shape, 4))
            rgba[crop] = (*color[:3], alpha)
            bx0, bx1 = x_edges(c0, c1)
            by0, by1 = y_edges(r0, r1)
            artist = ax.imshow(rgba, extent=(bx0, bx1, by1, by0), interpolation="nearest")
        artist.set_label(str(csid))
    if empty:
        warnings.warn(
            f"ROIs with cell_specimen_id {empty[:10]} have no pixel in the field of view of the "
            "Dataset and are not drawn",
            UserWarning,
            stacklevel=2,
        )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_xlabel(f"column ({unit})")
    ax.set_ylabel(f"row ({unit})")
    ax.set_title(f"{len(ids) - len(empty)} ROIs on {image}")
    return ax


# ---- ΔF/F heatmap -------------------------------------------------------------------------


def _time_slice(time: slice | tuple[float, float] | None) -> slice:
    if time is None:
        return slice(None)
    if isinstance(time, slice):
        if time.step is not None:
            msg = f"time must be slice(start, stop) in seconds without a step, got {time!r}"
            raise OptionError(msg)
        return time
    if isinstance(time, tuple) and len(time) == 2:
        return slice(*time)
    msg = f"time must be None, slice(start, stop) or (start, stop) in seconds; got {time!r}"
    raise OptionError(msg)


_BLOCK_FRAMES = 8192  # frames per step of the sort and binning loops (bounds temporaries)


def _sort_order(values: np.ndarray, times: np.ndarray, sort: str | None) -> np.ndarray:
    """Cell order of a (time, cell) block; cells without any finite value go last."""
    n_cells = values.shape[1]
    if sort is None:
        return np.arange(n_cells)
    count = np.zeros(n_cells, dtype=np.int64)
    total = np.zeros(n_cells)
    best = np.full(n_cells, -np.inf)
    peak = np.zeros(n_cells)
    cells = np.arange(n_cells)
    for start in range(0, values.shape[0], _BLOCK_FRAMES):
        block = values[start : start + _BLOCK_FRAMES]
        valid = ~np.isnan(block)
        count += valid.sum(axis=0)
        if sort == "mean":
            total += np.where(valid, block, 0.0).sum(axis=0)
            continue
        filled = np.where(valid, block, -np.inf)
        at = filled.argmax(axis=0)  # the first maximum of the block
        better = filled[at, cells] > best  # strictly: the first maximum of the window wins
        best = np.where(better, filled[at, cells], best)
        peak = np.where(better, times[start + at], peak)
    has = count > 0
    if sort == "mean":
        key = -np.where(has, total / np.maximum(count, 1), np.nan)  # largest mean first
    elif sort == "max":
        key = -np.where(has, best, np.nan)  # largest maximum first
    else:
        key = np.where(has, peak, np.nan)  # earliest peak first
    return np.argsort(key, kind="stable")  # NaN keys sort last


def _bin_frames(values: np.ndarray, factor: int) -> np.ndarray:
    """NaN-aware means of ``factor`` consecutive rows (frames) of a (time, cell) block."""
    if factor == 1:
        return values
    n_frames, n_cells = values.shape
    out = np.empty((-(-n_frames // factor), n_cells))
    step = max(1, _BLOCK_FRAMES // factor) * factor
    for start in range(0, n_frames, step):
        block = values[start : start + step]
        n_bins = -(-block.shape[0] // factor)
        if block.shape[0] < n_bins * factor:  # the last, partial bin
            block = np.concatenate(
                [block, np.full((n_bins * factor - block.shape[0], n_cells), np.nan)])
        block = block.reshape(n_bins, factor, n_cells)
        valid = ~np.isnan(block)
        count = valid.sum(axis=1)
        total = np.where(valid, block, 0.0).sum(axis=1)
        first = start // factor
        out[first : first + n_bins] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def _event_times(ds: xr.Dataset, kind: str) -> np.ndarray:
    if kind == "changes":
        times = ds["change_time"].values[np.asarray(ds["trials_is_change"].values, dtype=bool)]
    elif kind == "sham_changes":
        times = ds["change_time"].values[np.asarray(ds["catch"].values, dtype=bool)]
    elif kind == "omissions":
        times = ds["start_time"].values[np.asarray(ds["omitted"].values) == 1.0]
    else:
        times = ds[EVENT_KINDS[kind][0]].values
    times = np.asarray(times, dtype=np.float64)
    return times[~np.isnan(times)]


def plot_dff_heatmap(
    ds: xr.Dataset,
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
    """Cells x time heatmap of ΔF/F (or another trace), sorted, with behaviour events marked.

    Only the frames of ``time`` are read (the window is selected before loading), in one
    read of ``data``.  The sort keys are computed on that window.

    Parameters
    ----------
    ds
        A session Dataset.
    data
        Trace variable (``time``, ``cell_specimen_id``): ``"dff"``, ``"events"``,
        ``"filtered_events"``, ``"corrected_fluorescence"``, ...
    sort
        Row order, top to bottom: ``"mean"`` (largest mean first), ``"max"`` (largest maximum
        first), ``"peak_time"`` (earliest maximum first) or None (the Dataset's order).  Ties
        keep the Dataset's order; cells with no finite value in the window go last.
    time
        ``slice(start, stop)`` or ``(start, stop)`` in seconds (ophys clock, inclusive); the
        whole session if None.
    events
        Behaviour events to mark, any of :data:`EVENT_KINDS`: ``"changes"`` (``change_time``
        of trials with a real image change, ``trials_is_change``), ``"sham_changes"``
        (``change_time`` of catch trials), ``"omissions"`` (``start_time`` of presentations
        with ``omitted == 1.0``) as lines across all rows; ``"rewards"``
        (``rewards_timestamps``) and ``"licks"`` (``licks_timestamps``) as ticks in a strip
        above the rows.  Events between the first and the last frame drawn are marked.
        None or ``()`` marks nothing.
    ax
        Axes to draw on; a new figure if None.
    cmap, vmin, vmax
        Colour scale of the heatmap (``matplotlib.pyplot.imshow``).
    colorbar
        Add a colour bar (next to ``ax``, labelled with ``data`` and its units).
    max_columns
        Most image columns: a window of more frames is drawn as the means (NaN-aware) of
        ``ceil(n_frames / max_columns)`` consecutive frames, which keeps a whole-session
        heatmap light (a screen shows far fewer columns); None draws every frame.  The sort
        keys always use every frame.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.images[0]`` is the heatmap, one row per cell in the sorted order (its array is
        (cell, frame or frame bin)); row ``i`` is centred at y = i and labelled with its
        ``cell_specimen_id`` when there are at most 40 cells.  Each event kind is one
        ``LineCollection`` in ``ax.collections`` whose gid and label are the kind.  Frames are
        drawn as equal-width columns (the median frame interval), centred at their times.

    Raises
    ------
    OptionError
        Unknown ``sort`` or event kind, bad ``time``, or no frame or no cell in the window.
    MissingDataError
        ``data`` or a variable an event kind needs is not in ``ds``.
    """
    if sort is not None and sort not in HEATMAP_SORTS:
        msg = f"unknown sort {sort!r}; valid: {[*HEATMAP_SORTS, None]}"
        raise OptionError(msg)
    kinds = _event_kinds(events)
    if max_columns is not None and (
        isinstance(max_columns, bool) or not isinstance(max_columns, numbers.Integral)
        or max_columns < 1
    ):
        msg = f"max_columns must be a positive integer or None, got {max_columns!r}"
        raise OptionError(msg)
    validate(ds, (data,), purpose="plot_dff_heatmap")
    if ds[data].dims != ("time", _CELL):
        msg = (
            f"plot_dff_heatmap needs a trace variable with dims ('time', 'cell_specimen_id'); "
            f"{data!r} has dims {ds[data].dims}"
        )
        raise OptionError(msg)
    for kind in kinds:
        validate(ds, EVENT_KINDS[kind], purpose=f"plot_dff_heatmap(events=[{kind!r}])")
    all_times = np.asarray(ds["time"].values)
    if all_times.size < 2:
        msg = f"plot_dff_heatmap needs a session of at least 2 frames; ds has {all_times.size}"
        raise OptionError(msg)
    window = ds[data].sel(time=_time_slice(time))
    if window.sizes["time"] == 0:
        msg = (
            f"no imaging frame in the time window {time!r}; the session's frames run from "
            f"{all_times[0]:.3f} s to {all_times[-1]:.3f} s. Give time=slice(start, stop) "
            "in seconds inside that range."
        )
        raise OptionError(msg)
    if window.sizes[_CELL] == 0:
        msg = "the Dataset has no cell (cell_specimen_id is empty); nothing to plot"
        raise OptionError(msg)
    values = np.asarray(window.values, dtype=np.float64)  # (time, cell): the window only
    times = np.asarray(window["time"].values)
    order = _sort_order(values, times, sort)
    n = order.size
    dt = float(np.median(np.diff(all_times)))
    t0, t1 = float(times[0]), float(times[-1])
    factor = 1 if max_columns is None else -(-times.size // int(max_columns))
    shown = _bin_frames(values, factor)[:, order].T
    del values
    # one column per frame (or per bin of `factor` frames), frame k centred at t0 + k dt
    right = t1 + dt / 2 if factor == 1 else t0 - dt / 2 + shown.shape[1] * factor * dt
    ax = _new_axes(ax)
    im = ax.imshow(shown, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   extent=(t0 - dt / 2, right, n - 0.5, -0.5))
    strip = max(0.5, 0.08 * n) if {"rewards", "licks"} & set(kinds) else 0.0
    top = -0.5 - strip
    handles = []
    for kind in kinds:
        color, style, width, where = _EVENT_STYLE[kind]
        at = _event_times(ds, kind)
        at = at[(at >= t0) & (at <= t1)]
        lo, hi = {"full": (-0.5, n - 0.5), "upper": (top, top + strip / 2),
                  "lower": (top + strip / 2, -0.5)}[where]
        marks = ax.vlines(at, lo, hi, colors=color, linestyles=style, linewidths=width,
                          label=kind)
        marks.set_gid(kind)
        handles.append(marks)
    ax.set_xlim(t0 - dt / 2, t1 + dt / 2)
    ax.set_ylim(n - 0.5, top)
    ids = window[_CELL].values[order]
    how = "Dataset order" if sort is None else f"sorted by {sort}"
    if n <= 40:
        ax.set_yticks(np.arange(n), [str(i) for i in ids])
        ax.set_ylabel(f"cell_specimen_id ({how})")
    else:
        ticks = np.unique(np.linspace(0, n - 1, 6).round().astype(int))
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.set_ylabel(f"cell ({how})")
    ax.set_xlabel("time (s)")
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0),
                  ncols=min(len(handles), 3), frameon=False, fontsize="small",
                  borderaxespad=0.2)
    if colorbar:
        units = ds[data].attrs.get("units", "")
        ax.figure.colorbar(im, ax=ax, label=f"{data} ({units})" if units else data)
    return ax


def _event_kinds(events: Iterable[str] | None) -> list[str]:
    if events is None:
        return []
    kinds = [events] if isinstance(events, str) else list(events)
    unknown = [k for k in kinds if k not in EVENT_KINDS]
    if unknown:
        msg = f"unknown event kinds {unknown}; valid: {list(EVENT_KINDS)} (or None)"
        raise OptionError(msg)
    return list(dict.fromkeys(kinds))


# ---- event-locked mean --------------------------------------------------------------------


def _mean_ci(rows: np.ndarray, ci: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean across events (rows) and its t-based confidence interval, NaN-aware, per column."""
    valid = ~np.isnan(rows)
    n = valid.sum(axis=0)
    mean = np.where(n > 0, np.where(valid, rows, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    if ci is None:
        return mean, mean, mean
    from scipy import stats

    dev = np.where(valid, rows - mean, 0.0)
    var = (dev**2).sum(axis=0) / np.maximum(n - 1, 1)
    sem = np.sqrt(var / np.maximum(n, 1))
    half = np.where(n > 1, stats.t.ppf(0.5 + ci / 2, np.maximum(n - 1, 1)) * sem, np.nan)
    return mean, mean - half, mean + half


def plot_stimulus_response(
    response: xr.Dataset | xr.DataArray,
    *,
    by: Hashable | None = "image_name",
    ci: float | None = 0.95,
    ax: Axes | None = None,
    cell_specimen_id: Hashable | None = None,
) -> Axes:
    """Event-locked mean response with a confidence band, one line per group of events.

    The cube is first averaged over cells (NaN-aware; or one cell is selected), giving one
    trace per event; then, per group of events (per value of ``by``), the mean of those
    traces is drawn with a band of its ``ci`` confidence interval.  The interval is
    Student-t based: mean ± t_{(1+ci)/2, n-1} · s / √n across the n events of the group at
    each time point (events taken as independent samples; NaN samples left out, no band
    where n < 2).  Only the cell average of the cube is computed, in one compute.

    Parameters
    ----------
    response
        What ``ds.ophys.stimulus_response(...)`` returns: a Dataset with
        ``eventlocked_traces`` (``cell_specimen_id``, an event dimension such as
        ``stimulus_presentations_id``, ``trials_id`` or ``event``, ``eventlocked_timestamps``),
        or that DataArray itself; without ``cell_specimen_id`` for 1-D signals (running
        speed, pupil).  ``eventlocked_timestamps`` is the time from the event, seconds.
        numpy or dask backed.
    by
        Coordinate (or data variable of ``response``) along the event dimension to group
        by, e.g. ``"image_name"``; None draws one line for all events.  Events whose group
        value is missing (NaN/None) are left out.
    ci
        Confidence level of the band, in (0, 1); None draws no band.
    ax
        Axes to draw on; a new figure if None.
    cell_specimen_id
        Draw this cell only instead of the cell average.

    Returns
    -------
    matplotlib.axes.Axes
        One labelled line (label = group value) and one ``fill_between`` band per group, in
        sorted group order; a dashed gray line (label ``"_event"``) marks time 0; the legend
        lists the groups.  The y label names the data (``response.attrs["data"]``, else the
        array's name), its units and the cell average or cell.

    Raises
    ------
    MissingDataError
        No ``eventlocked_traces``, no ``eventlocked_timestamps`` coordinate, no ``by``, or
        ``cell_specimen_id`` not a cell of ``response``.
    SchemaError
        ``eventlocked_traces`` does not have one event dimension besides
        ``cell_specimen_id`` and ``eventlocked_timestamps``.
    OptionError
        Bad ``ci``, ``by`` not along the event dimension, ``cell_specimen_id`` given for a
        response without cells (or matching several ROIs), or no event to average.
    """
    if isinstance(response, xr.DataArray):
        traces = response
        source: xr.Dataset | xr.DataArray = response
    else:
        validate(response, ("eventlocked_traces",), purpose="plot_stimulus_response")
        traces = response["eventlocked_traces"]
        source = response
    if ci is not None and (
        isinstance(ci, bool) or not isinstance(ci, numbers.Real) or not 0.0 < ci < 1.0
    ):
        msg = f"ci must be a confidence level in (0, 1) (e.g. 0.95) or None; got {ci!r}"
        raise OptionError(msg)
    if _TRELATIVE not in traces.dims:
        msg = (
            f"eventlocked_traces needs an {_TRELATIVE!r} dimension (time from the event); "
            f"got dims {traces.dims}"
        )
        raise SchemaError(msg)
    if _TRELATIVE not in traces.coords:
        msg = f"eventlocked_traces has no {_TRELATIVE!r} coordinate (time from the event, s)"
        raise MissingDataError(msg)
    others = [d for d in traces.dims if d not in (_CELL, _TRELATIVE)]
    if len(others) != 1:
        msg = (
            "eventlocked_traces needs exactly one event dimension (e.g. "
            "'stimulus_presentations_id', 'trials_id' or 'event') besides 'cell_specimen_id' "
            f"and {_TRELATIVE!r}; got dims {traces.dims}"
        )
        raise SchemaError(msg)
    event_dim = str(others[0])
    # the traced variable: attrs["data"] of a stimulus_response Dataset, else the array name
    named = source.attrs.get("data") if isinstance(source, xr.Dataset) else None
    what = str(named) if isinstance(named, str) and named else str(traces.name or "response")
    units = traces.attrs.get("units", "")
    if cell_specimen_id is not None:
        if _CELL not in traces.dims:
            msg = (
                f"cell_specimen_id={cell_specimen_id!r} given, but this response has no "
                f"cells (dims {traces.dims}); leave cell_specimen_id=None"
            )
            raise OptionError(msg)
        if _CELL not in traces.indexes:
            msg = "cell_specimen_id given, but the response has no cell_specimen_id coordinate"
            raise MissingDataError(msg)
        known = traces.indexes[_CELL]
        if cell_specimen_id not in known:
            msg = (
                f"cell_specimen_id {cell_specimen_id!r} not in this response, which has "
                f"{known.size} cells (response.cell_specimen_id)"
            )
            raise MissingDataError(msg)
        positions = np.flatnonzero(np.asarray(known) == cell_specimen_id)
        if positions.size != 1:
            msg = (
                f"cell_specimen_id {cell_specimen_id!r} matches {positions.size} ROIs "
                "(unmatched ROIs share -1); select one with .sel(cell_roi_id=...) first"
            )
            raise OptionError(msg)
        traces = traces.isel({_CELL: positions})
        who = f"cell {cell_specimen_id}"
    else:
        who = f"mean of {traces.sizes[_CELL]} cells" if _CELL in traces.dims else ""
    if _CELL in traces.dims:
        if traces.sizes[_CELL] == 0:
            msg = "the response has no cell (cell_specimen_id is empty); nothing to plot"
            raise OptionError(msg)
        per_event = traces.mean(_CELL, skipna=True)  # lazy on dask; NaN where all cells are
    else:
        per_event = traces
    if by is None:
        codes = np.zeros(traces.sizes[event_dim], dtype=np.int64)
        names: Sequence[Any] = ["all events"]
    else:
        codes, names = _group_codes(source, traces, by, event_dim)
    if traces.sizes[event_dim] == 0 or not (codes >= 0).any():
        msg = f"the response has no event to average along {event_dim!r}"
        raise OptionError(msg)
    values = np.asarray(per_event.transpose(event_dim, _TRELATIVE).values, dtype=np.float64)
    x = np.asarray(traces[_TRELATIVE].values, dtype=np.float64)
    ax = _new_axes(ax)
    for k, name in enumerate(names):
        mean, lo, hi = _mean_ci(values[codes == k], ci)
        (line,) = ax.plot(x, mean, label=str(name))
        if ci is not None:
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.axvline(0.0, color="0.5", linestyle="--", linewidth=0.8, label="_event")
    ax.set_xlabel("time from event (s)")
    ylabel = f"{what} ({units})" if units else what
    ax.set_ylabel(f"{ylabel}, {who}" if who else ylabel)
    title = None if by is None else str(by)
    ax.legend(title=title, fontsize="small")
    return ax


def _group_codes(
    source: xr.Dataset | xr.DataArray, traces: xr.DataArray, by: Hashable, event_dim: str
) -> tuple[np.ndarray, Sequence[Any]]:
    if by in traces.coords:
        group = traces.coords[by]
    elif isinstance(source, xr.Dataset) and by in source.variables:
        group = source[by]
    else:
        along = [str(c) for c in traces.coords if traces.coords[c].dims == (event_dim,)]
        msg = (
            f"no coordinate {by!r} to group the events by; coordinates along {event_dim!r}: "
            f"{along}. Give one of them as by=, or by=None for one line."
        )
        raise MissingDataError(msg)
    if group.dims != (event_dim,):
        msg = (
            f"by={by!r} must lie along the event dimension {event_dim!r}; it has dims "
            f"{group.dims}"
        )
        raise OptionError(msg)
    codes, uniques = pd.factorize(np.asarray(group.values), sort=True)
    return np.asarray(codes), list(uniques)


# ---- performance --------------------------------------------------------------------------


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions of each run of True."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _performance_of(
    ds_or_performance: xr.Dataset, threshold: float | None
) -> xr.Dataset:
    if not isinstance(ds_or_performance, xr.Dataset):
        msg = (
            "plot_performance expects a session Dataset or the Dataset of "
            f"ophys_xr.performance(ds); got {type(ds_or_performance).__name__}"
        )
        raise TypeError(msg)
    present = [k for k in _ROLLING_PLOTTED if k in ds_or_performance.variables]
    if not present:  # a session: compute its performance
        if threshold is None:
            return behavior.performance(ds_or_performance)
        return behavior.performance(
            ds_or_performance, engaged_trial_reward_rate_threshold=threshold
        )
    if threshold is not None:
        msg = (
            "engaged_trial_reward_rate_threshold applies when a session Dataset is given; "
            "this is already a performance Dataset (its `engaged` is drawn as is). Call "
            "ophys_xr.performance(ds, engaged_trial_reward_rate_threshold=...) instead."
        )
        raise OptionError(msg)
    validate(ds_or_performance, (*_ROLLING_PLOTTED, "trials_id"),
             purpose="plot_performance (a Dataset of ophys_xr.performance)")
    return ds_or_performance


def plot_performance(
    ds_or_performance: xr.Dataset,
    *,
    ax: Sequence[Axes] | None = None,
    engaged_trial_reward_rate_threshold: float | None = None,
) -> Figure:
    """Rolling behaviour performance over trials, engaged trials shaded.

    Two panels sharing the trial axis: the top one shows ``hit_rate`` and
    ``false_alarm_rate`` (trial-count corrected rates, 0-1); the bottom one shows
    ``rolling_dprime`` (left axis) and ``reward_rate`` (right axis, rewards/min, with the
    engagement threshold as a dotted line).  Runs of engaged trials are shaded in both panels.

    Parameters
    ----------
    ds_or_performance
        A session Dataset (then :func:`ophys_xr.performance` is computed), or the Dataset
        that :func:`ophys_xr.performance` returned.
    ax
        Two Axes (top, bottom) to draw on; a new figure with two panels if None.  The
        reward-rate axis is a ``twinx`` of the bottom one.
    engaged_trial_reward_rate_threshold
        For a session Dataset: passed to :func:`ophys_xr.performance` (default 2.0).

    Returns
    -------
    matplotlib.figure.Figure
        The figure; the rates panel, the d′ panel and the reward-rate twin are the last three
        of ``fig.axes``.  Lines are labelled with their variable names; the shaded spans
        (``axvspan``, from ``trials_id - 0.5`` to ``trials_id + 0.5`` of each run) are the
        patches of the two panels.

    Raises
    ------
    MissingDataError
        A variable the performance (or the plot) needs is missing.
    OptionError
        ``ax`` is not two Axes, or a threshold is given with a performance Dataset.
    """
    perf = _performance_of(ds_or_performance, engaged_trial_reward_rate_threshold)
    if ax is None:
        fig, (ax_rates, ax_d) = _pyplot().subplots(2, 1, sharex=True, layout="constrained")
    else:
        axes = list(ax) if isinstance(ax, Sequence | np.ndarray) else [ax]
        if len(axes) != 2:
            msg = f"ax must be two Axes (rates panel, d' panel) or None; got {ax!r}"
            raise OptionError(msg)
        ax_rates, ax_d = axes
        fig = ax_rates.figure
    x = np.asarray(perf["trials_id"].values)
    engaged = np.asarray(perf["engaged"].values, dtype=bool)
    for panel in (ax_rates, ax_d):
        for i, (a, b) in enumerate(_runs(engaged)):
            panel.axvspan(x[a] - 0.5, x[b] + 0.5, color="0.9", zorder=0,
                          label="engaged" if i == 0 else "_engaged")
    # markers: the rates are NaN on aborted trials, which leaves isolated points
    style = {"marker": ".", "markersize": 4}
    ax_rates.plot(x, perf["hit_rate"].values, color="tab:green", label="hit_rate", **style)
    ax_rates.plot(x, perf["false_alarm_rate"].values, color="tab:red",
                  label="false_alarm_rate", **style)
    ax_rates.set_ylim(-0.02, 1.02)
    ax_rates.set_ylabel("response rate")
    legend = {"loc": "lower left", "bbox_to_anchor": (0.0, 1.0), "ncols": 3, "frameon": False,
              "fontsize": "small", "borderaxespad": 0.2}
    ax_rates.legend(**legend)
    ax_d.plot(x, perf["rolling_dprime"].values, color="black", label="rolling_dprime", **style)
    ax_d.set_ylabel("d′")
    ax_d.set_xlabel("trial (trials_id)")
    ax_rr = ax_d.twinx()
    ax_rr.plot(x, perf["reward_rate"].values, color="tab:blue", label="reward_rate", **style)
    threshold = perf.attrs.get("engaged_trial_reward_rate_threshold")
    if threshold is not None:
        ax_rr.axhline(float(threshold), color="tab:blue", linestyle=":", linewidth=1,
                      label="engagement threshold")
    ax_rr.set_ylabel("reward rate (rewards/min)")
    handles, labels = ax_d.get_legend_handles_labels()
    handles2, labels2 = ax_rr.get_legend_handles_labels()
    ax_rr.legend(handles + handles2, labels + labels2, **legend)
    return fig
