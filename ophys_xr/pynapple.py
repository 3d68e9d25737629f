"""A session as pynapple objects, for users of that ecosystem (``ophys_xr[pynapple]``).

pynapple (https://pynapple.org) holds time series in memory (``Tsd``, ``TsdFrame``) and
epochs as ``IntervalSet``; :func:`to_pynapple` reads what it converts.  pynapple is imported
when the function is called, never with ``ophys_xr``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ophys_xr.exceptions import MissingDataError, MissingDependencyError, SchemaError

__all__ = ["to_pynapple"]

#: The dims of the cell traces (one ``TsdFrame`` each).
_TRACE_DIMS = ("time", "cell_specimen_id")

#: What pynapple itself takes off an interval's end when it ends as the next one starts.
_TOUCH_SHIFT = 1e-6


def _pynapple() -> Any:
    try:
        import pynapple
    except ImportError as err:
        msg = (
            "to_pynapple needs pynapple, which is not installed; install it with "
            '`pip install "ophys_xr[pynapple]"` (or `pip install pynapple`)'
        )
        raise MissingDependencyError(msg) from err
    return pynapple


def _columns(ds: xr.Dataset, dim: str, skip: Iterable[Hashable]) -> dict[str, np.ndarray]:
    """The one-dimensional variables (coordinates too) along ``dim``, but ``skip``."""
    left_out = set(skip)
    return {str(name): np.asarray(var.values) for name, var in ds.variables.items()
            if var.dims == (dim,) and name not in left_out}


def _intervals(nap: Any, ds: xr.Dataset, start: str, end: str, dim: str,
               metadata: dict[str, np.ndarray]) -> Any:
    """An ``IntervalSet`` of the rows of ``dim``, every row kept with its metadata.

    pynapple drops intervals with a missing or non-positive length, joins overlapping ones
    and drops the metadata of them all; such rows are refused here instead.  An interval
    that ends as the next starts ends 1 µs earlier, as pynapple itself does.
    """
    starts = np.asarray(ds[start].values, dtype=np.float64)
    ends = np.asarray(ds[end].values, dtype=np.float64).copy()
    ids = ds[dim].values
    problems = {
        f"a missing {start} or {end}": np.isnan(starts) | np.isnan(ends),
        f"{end} not after {start}": ~(ends > starts),
        f"{start} before the previous row's {end}": np.r_[False, starts[1:] < ends[:-1]],
    }
    for what, bad in problems.items():
        if bad.any():
            rows = ids[bad]
            msg = (
                f"{int(bad.sum())} row(s) of {dim} have {what} (first: {rows[:5].tolist()}); "
                "pynapple intervals must be ordered and not overlap: convert a selection "
                f"without them, e.g. ds.isel({dim}=...) or ds.sel({dim}=...)"
            )
            raise SchemaError(msg)
    touching = np.r_[ends[:-1] == starts[1:], False]
    ends[touching] -= _TOUCH_SHIFT
    return nap.IntervalSet(start=starts, end=ends, metadata=pd.DataFrame(metadata))


def _trace_names(ds: xr.Dataset, traces: str | Iterable[str] | None) -> list[str]:
    if traces is None:
        return [str(n) for n, v in ds.data_vars.items() if set(v.dims) == set(_TRACE_DIMS)]
    names = [traces] if isinstance(traces, str) else list(traces)
    for name in names:
        if name not in ds.data_vars or set(ds[name].dims) != set(_TRACE_DIMS):
            present = [str(n) for n, v in ds.data_vars.items()
                       if set(v.dims) == set(_TRACE_DIMS)]
            msg = f"{name!r} is not a cell trace of this session; its traces: {present}"
            raise MissingDataError(msg)
    return names


def to_pynapple(ds: xr.Dataset, *, traces: str | Iterable[str] | None = None) -> dict[str, Any]:
    """The session as pynapple objects: traces, running, licks, rewards, eye tracking,
    trials and stimulus presentations.

    What is converted is read into memory (pynapple holds its data in memory): a
    ΔF/F of 300 cells over a 60-minute session is about 100 MB per trace variable; pass
    ``traces=`` to choose, or select a part of the session first (``ds.sel(time=...)``).

    Parameters
    ----------
    ds
        A session Dataset (from :func:`ophys_xr.open_session`), or a selection of one.
    traces
        The cell traces to convert (``"dff"``, ``"events"``, ...); default: every
        variable along ``time`` and ``cell_specimen_id`` that the session has.

    Returns
    -------
    dict
        By name, only for what the session has:

        - each trace (``"dff"``, ``"corrected_fluorescence"``, ``"events"``, ...): a
          ``TsdFrame``, time in seconds (the ``time`` coordinate), one column per ROI named
          by its ``cell_specimen_id`` (-1: not matched across sessions), with the cell
          coordinates and per-cell variables as metadata (``cell_roi_id``, ``valid_roi``,
          ``x``, ``y``, ``width``, ``height``, ...);
        - ``"running_speed"``: a ``Tsd`` on the stimulus clock, in cm/s;
        - ``"licks"``: a ``Ts`` of the lick times;
        - ``"rewards"``: a ``TsdFrame`` of the reward times, columns ``volume`` (mL)
          and ``auto_rewarded`` (1.0 or 0.0);
        - ``"eye_tracking"``: a ``TsdFrame`` of the eye-tracking variables (and
          ``likely_blink`` as 1.0 / 0.0), time in seconds;
        - ``"trials"``: an ``IntervalSet`` from ``start_time`` to ``stop_time``, the
          trials' columns as metadata, named as in the AllenSDK ``trials`` table (without
          the ``trials_`` prefix; the per-trial ``lick_times`` are in ``"licks"``);
        - ``"stimulus_presentations"``: an ``IntervalSet`` from ``start_time`` to
          ``end_time``, the presentations' columns as metadata.

        pynapple intervals do not touch: where one ends as the next starts, the end is
        1 µs earlier (as pynapple itself does).

    Raises
    ------
    MissingDependencyError
        pynapple is not installed.
    MissingDataError
        A trace asked for in ``traces`` that the session lacks.
    SchemaError
        Trials or presentations that pynapple cannot hold without losing rows (missing
        times, an end not after its start, overlapping rows); the message says which.
    """
    nap = _pynapple()
    names = _trace_names(ds, traces)
    eye = [str(n) for n, v in ds.data_vars.items() if v.dims == ("eye_frame",)]
    loaded = ds[names + [n for n in ("running_speed", *eye) if n in ds.data_vars]].compute()
    out: dict[str, Any] = {}
    if names:
        cells = ds["cell_specimen_id"].values
        meta = pd.DataFrame(_columns(ds, "cell_specimen_id", ["cell_specimen_id"]),
                            index=cells)
        t = np.asarray(ds["time"].values, dtype=np.float64)
        for name in names:
            data = loaded[name].transpose(*_TRACE_DIMS).values
            out[name] = nap.TsdFrame(t=t, d=data, columns=cells, metadata=meta)
    if "running_speed" in loaded:
        out["running_speed"] = nap.Tsd(t=ds["stimulus_timestamps"].values,
                                       d=loaded["running_speed"].values)
    if "licks_timestamps" in ds.variables:
        out["licks"] = nap.Ts(t=ds["licks_timestamps"].values)
    if "rewards_timestamps" in ds.variables:
        rewards = np.column_stack([ds["rewards_volume"].values.astype(np.float64),
                                   ds["rewards_auto_rewarded"].values.astype(np.float64)])
        out["rewards"] = nap.TsdFrame(t=ds["rewards_timestamps"].values, d=rewards,
                                      columns=["volume", "auto_rewarded"])
    if eye:
        stacked = np.column_stack([loaded[n].values.astype(np.float64) for n in eye])
        out["eye_tracking"] = nap.TsdFrame(t=ds["eye_timestamps"].values, d=stacked,
                                           columns=eye)
    if "trials_start_time" in ds.variables:
        trial_meta = {name.removeprefix("trials_") if name != "trials_id" else name: values
                      for name, values in _columns(
                          ds, "trials_id", ["trials_start_time", "trials_stop_time"]).items()}
        out["trials"] = _intervals(nap, ds, "trials_start_time", "trials_stop_time",
                                   "trials_id", trial_meta)
    if "start_time" in ds.variables:
        out["stimulus_presentations"] = _intervals(
            nap, ds, "start_time", "end_time", "stimulus_presentations_id",
            _columns(ds, "stimulus_presentations_id", ["start_time", "end_time"]))
    return out
