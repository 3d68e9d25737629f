"""Many sessions: a metadata catalog, parallel opening, and per-session computation on dask.

``catalog`` reads metadata only; ``open_sessions`` returns a ``DataTree`` with one lazy
node per experiment; ``map_sessions`` runs a function on every session on the current
dask scheduler (a ``dask.distributed`` Client when one is active, so the same code runs on
a laptop's LocalCluster or a cluster's workers) and combines the results along
``ophys_experiment_id``, lining cells up by ``cell_specimen_id``.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ophys_xr.exceptions import (
    InvalidSessionFileError,
    OphysXrError,
    OptionError,
    SchemaError,
)
from ophys_xr.formats import FORMATS, read_metadata
from ophys_xr.variables import is_imaging

__all__ = [
    "CATALOG_COLUMNS",
    "SessionMapResult",
    "catalog",
    "combine_by_cell",
    "map_sessions",
    "open_multiplane_session",
    "open_sessions",
    "plane_dataset",
    "read_session_metadata",
]

Source = str | os.PathLike[str]

#: Suffixes of the session folders (stores) and files that a directory search finds.
_STORE_SUFFIXES = frozenset(FORMATS["zarr"].suffixes)
_FILE_SUFFIXES = frozenset(s for f in FORMATS.values() for s in f.suffixes) - _STORE_SUFFIXES

#: Columns of :func:`catalog`, in order.
CATALOG_COLUMNS = (
    "ophys_experiment_id", "ophys_session_id", "behavior_session_id", "ophys_container_id",
    "mouse_id", "cre_line", "reporter_line", "session_type", "session_number",
    "experience_level", "imaging_depth", "targeted_structure", "equipment_name",
    "date_of_acquisition", "project_code", "n_valid_cells", "n_cells", "duration_s",
    "nwb_layout", "session_kind", "path", "error",
)


def _session_number(session_type: str | None) -> float:
    match = re.match(r"OPHYS_(\d+)", session_type or "")
    return float(match.group(1)) if match else np.nan


def _experience_level(session_type: str | None) -> str | None:
    """Familiar / Novel 1 / Novel >1, inferred from the session number as in the VBO tables.

    Session types OPHYS_1-3 show the familiar (training) images, OPHYS_4 is the first
    session with novel images and OPHYS_5-6 repeat them.  A re-taken session 4 would be
    "Novel >1" in the Allen tables; that needs the mouse's history, which one file lacks.
    """
    number = _session_number(session_type)
    if np.isnan(number):
        return None
    if number <= 3:
        return "Familiar"
    return "Novel 1" if number == 4 else "Novel >1"


def read_session_metadata(
    source: Source, *, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The catalog row of one session file, from metadata only (no traces are read).

    Parameters
    ----------
    source
        An NWB file (a path or an ``https://`` / ``s3://`` URL), or a Zarr store / netCDF
        file written by ophys_xr.
    storage_options
        For a URL: passed to fsspec (e.g. ``{"anon": True}`` for a public S3 bucket).

    Returns
    -------
    dict
        The keys of :data:`CATALOG_COLUMNS` (``error`` is None).
    """
    target = _source(source)
    kwargs: dict[str, Any] = {}
    if storage_options is not None:
        kwargs["storage_options"] = storage_options
    meta = read_metadata(target, **kwargs)
    row = {key: meta.get(key) for key in CATALOG_COLUMNS}
    row["session_number"] = _session_number(meta.get("session_type"))
    row["experience_level"] = _experience_level(meta.get("session_type"))
    row["path"] = str(target)
    row["error"] = None
    return row


def _source(source: object) -> Source:
    """One session source: a URL stays a string, a path becomes a ``Path``.

    Raises
    ------
    OptionError
        Neither a path nor a URL (None, a number, ...).
    """
    if isinstance(source, bytes):
        source = os.fsdecode(source)
    if isinstance(source, str) and "://" in source:
        return source  # https://, s3://, file:// (the reader resolves file:// URLs)
    if not isinstance(source, str | os.PathLike):
        msg = (f"a session source must be a path, a folder or a URL (str or os.PathLike), "
               f"got {type(source).__name__} {source!r}")
        raise OptionError(msg)
    return Path(os.fspath(source)).expanduser()


def _is_id(source: object) -> bool:
    """Whether ``source`` is an ``ophys_experiment_id`` (an integer, not a bool)."""
    return isinstance(source, Integral) and not isinstance(source, bool)


def _expand(sources: Any, *, ids: bool = False) -> list[Any]:
    """Session sources: URLs as given, paths, the session files in each folder; with ``ids``
    also integer experiment ids (as ``int``).

    Raises
    ------
    OptionError
        A source of another type; an id where ``ids`` is False; a folder with no session file.
    """
    if sources is None or isinstance(sources, str | bytes | os.PathLike) or _is_id(sources):
        items = [sources]
    elif isinstance(sources, Iterable):
        items = list(sources)
    else:
        msg = (f"sources must be a path, a folder, a URL or a list of them, got "
               f"{type(sources).__name__} {sources!r}")
        raise OptionError(msg)
    found: list[Any] = []
    for item in items:
        if _is_id(item):
            if not ids:
                msg = (f"{item!r} is an experiment id; this function takes paths, folders or "
                       "URLs (map_sessions takes ids with cache=ophys_xr.ProjectCache...)")
                raise OptionError(msg)
            found.append(int(item))
            continue
        source = _source(item)
        if isinstance(source, Path) and source.is_dir() \
                and source.suffix.lower() not in _STORE_SUFFIXES:
            found += _search(source)
        else:
            found.append(source)
    return found


def _search(root: Path) -> list[Path]:
    """The session files and stores in the folder ``root`` and its subfolders, sorted."""
    found: list[Path] = []
    for folder, subdirs, files in os.walk(root):
        stores = [d for d in subdirs if Path(d).suffix.lower() in _STORE_SUFFIXES]
        found += [Path(folder, d) for d in stores]
        subdirs[:] = [d for d in subdirs if d not in stores]  # do not descend into stores
        found += [Path(folder, f) for f in files if Path(f).suffix.lower() in _FILE_SUFFIXES]
    if not found:
        suffixes = sorted(_FILE_SUFFIXES | _STORE_SUFFIXES)
        msg = (f"{str(root)!r} holds no session file (none named *{', *'.join(suffixes)}); "
               "pass a folder of NWB files or stores, or the files themselves")
        raise OptionError(msg)
    return sorted(found)


def _refuse_repeats(sources: Sequence[Any]) -> None:
    """Refuse a source given twice (the same path, URL or id): one session counted twice."""
    seen: dict[str, int] = {}
    for source in sources:
        key = str(source)
        seen[key] = seen.get(key, 0) + 1
    repeated = [key for key, count in seen.items() if count > 1]
    if repeated:
        msg = (f"the sources name {repeated[0]!r} {seen[repeated[0]]} times"
               f"{f' (and {len(repeated) - 1} more repeats)' if len(repeated) > 1 else ''}; "
               "pass each session once")
        raise OptionError(msg)


def _refuse_duplicates(sessions: Iterable[tuple[Any, Any]]) -> None:
    """Refuse two sources of one session (e.g. an NWB file and the store converted from it).

    ``sessions`` holds ``(key, source)`` pairs, the key from :func:`_session_key` (None:
    unknown, not compared).
    """
    by_key: dict[Any, list[str]] = {}
    for key, source in sessions:
        if key is not None:
            by_key.setdefault(key, []).append(str(source))
    clashes = {k: v for k, v in by_key.items() if len(v) > 1}
    if clashes:
        key, sources = next(iter(clashes.items()))
        what = f"experiment {key}" if _is_id(key) else f"session {key}"
        more = f" (and {len(clashes) - 1} more sessions)" if len(clashes) > 1 else ""
        msg = (f"{what} is in {len(sources)} sources: "
               f"{', '.join(repr(s) for s in sources)}{more}; pass each session once "
               "(e.g. the NWB file or the store converted from it, not both)")
        raise OptionError(msg)


def _session_key(attrs: Mapping[str, Any]) -> Any:
    """What tells sessions apart: the ``ophys_experiment_id``; a behavior session's
    ``behavior_session_<id>``; None if the attributes hold neither."""
    if attrs.get("ophys_experiment_id") is not None:
        return int(attrs["ophys_experiment_id"])
    if attrs.get("behavior_session_id") is not None:
        return f"behavior_session_{attrs['behavior_session_id']}"
    return None


def _naming(err: Exception, source: Any) -> Exception:
    """``err``, or the same error with ``source`` in its message when it does not name it."""
    name = str(source)
    if name in str(err):
        return err
    if isinstance(err, OphysXrError):
        try:
            return type(err)(f"{name!r}: {err}")
        except TypeError:  # an error class with another signature: keep it, add a note
            err.add_note(f"source: {name!r}")
            return err
    msg = (f"cannot open {name!r} as a session ({type(err).__name__}: {err}); check the "
           "file (download or convert it again) or leave it out")
    return InvalidSessionFileError(msg)


def catalog(
    paths_or_directory: Source | Iterable[Source],
    *,
    parallel: bool = True,
    max_workers: int | None = None,
    progress: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per session file with the metadata users filter on, from metadata only.

    Parameters
    ----------
    paths_or_directory
        Session files (NWB, Zarr, netCDF), ``https://`` or ``s3://`` URLs of NWB files, or
        folders searched recursively for session files (a list may mix them).
    parallel
        Read the files in a thread pool.
    max_workers
        Threads (default: ``min(8, 2 * cpu_count)``).
    progress
        Show a progress bar.
    storage_options
        For URLs: passed to fsspec (e.g. ``{"anon": True}`` for a public S3 bucket).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CATALOG_COLUMNS`, one row per file, in the order given (a folder's
        files sorted by path).  A file that cannot be read keeps its row with ``path`` and
        ``error`` (the error's class and message) filled and the rest missing; it does not
        stop the others.  Two files of one experiment (an NWB file and the store converted
        from it) are two rows, told apart by ``path``: the catalog lists files, so that
        such duplicates can be found
        (``table[table.ophys_experiment_id.duplicated(keep=False)]``) before
        :func:`open_sessions` or :func:`map_sessions`, which refuse them.

    Raises
    ------
    OptionError
        A source that is not a path or URL, or a folder with no session file.
    """
    paths = _expand(paths_or_directory)

    def one(path: Source) -> dict[str, Any]:
        try:
            return read_session_metadata(path, storage_options=storage_options)
        except Exception as err:  # noqa: BLE001 - reported in the file's row, never dropped
            return {"path": str(path), "error": f"{type(err).__name__}: {_naming(err, path)}"}

    workers = max_workers or min(8, 2 * (os.cpu_count() or 1))
    if parallel and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            iterator = pool.map(one, paths)
            rows = list(_progress(iterator, len(paths), progress, "catalog"))
    else:
        rows = list(_progress(map(one, paths), len(paths), progress, "catalog"))
    table = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))
    for col in ("ophys_experiment_id", "ophys_session_id", "behavior_session_id",
                "ophys_container_id", "imaging_depth", "n_valid_cells", "n_cells"):
        table[col] = table[col].astype("Int64")
    return table


def _progress(iterator: Iterable[Any], total: int, enabled: bool, desc: str) -> Iterable[Any]:
    if not enabled:
        return iterator
    from tqdm.auto import tqdm

    return tqdm(iterator, total=total, desc=desc, unit="session")


def open_sessions(
    sources: Source | Iterable[Source],
    *,
    parallel: bool = True,
    preprocess: Callable[[xr.Dataset], xr.Dataset] | None = None,
    exclude_invalid_rois: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.DataTree:
    """Open many sessions lazily, one ``DataTree`` node per experiment.

    Parameters
    ----------
    sources
        Session files, ``https://`` or ``s3://`` URLs of NWB files, or folders searched
        recursively for session files (a list may mix them).
    parallel
        Open the files in a thread pool.
    preprocess
        Applied to each session Dataset after opening (as in ``xr.open_mfdataset``).
    exclude_invalid_rois
        As in :func:`ophys_xr.open_session`.
    storage_options
        For URLs: passed to :func:`ophys_xr.open_session` (fsspec options, e.g.
        ``{"anon": True}`` for a public S3 bucket).

    Returns
    -------
    xarray.DataTree
        Children named by ``ophys_experiment_id`` (behavior sessions without imaging:
        ``behavior_session_<id>``); every node is lazy.  Sessions keep
        their own cells and clocks (nothing is concatenated).

    Raises
    ------
    OphysXrError
        A session cannot be opened: the error of the first such source in the order given,
        its message naming the file (an unexpected error of a reader becomes an
        :class:`~ophys_xr.InvalidSessionFileError`); every session opened so far is closed.
        An error of ``preprocess`` is raised as it is, with a note naming the file.
    OptionError
        Two sources hold the same experiment (the message lists them), a source is given
        twice, or a folder holds no session file.
    """
    from ophys_xr.io import open_session

    paths = _expand(sources)
    _refuse_repeats(paths)
    open_kwargs: dict[str, Any] = {"exclude_invalid_rois": exclude_invalid_rois}
    if storage_options is not None:
        open_kwargs["storage_options"] = storage_options

    def one(path: Source) -> xr.Dataset:
        try:
            ds = open_session(path, **open_kwargs)
        except Exception as err:
            named = _naming(err, path)
            if named is err:
                raise
            raise named from err
        if preprocess is None:
            return ds
        try:
            return preprocess(ds)
        except Exception as err:
            ds.close()
            err.add_note(f"in preprocess of the session {str(path)!r}")
            raise

    if parallel and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
            futures = [pool.submit(one, p) for p in paths]
        outcomes = [(f.result() if f.exception() is None else f.exception()) for f in futures]
    else:
        outcomes = []
        for p in paths:
            try:
                outcomes.append(one(p))
            except Exception as err:  # noqa: BLE001 - raised below, once all are closed
                outcomes.append(err)
                break
    datasets = [o for o in outcomes if isinstance(o, xr.Dataset)]
    try:
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            raise failed[0]
        _refuse_duplicates((_session_key(ds.attrs), path)
                           for path, ds in zip(paths, datasets, strict=True))
        nodes = {_node_name(ds): ds for ds in datasets}
        return _tree(nodes, datasets)
    except BaseException:
        for ds in datasets:
            ds.close()
        raise


def _tree(nodes: dict[str, xr.Dataset], opened: list[xr.Dataset]) -> xr.DataTree:
    """A DataTree of ``nodes`` whose closing closes every ``opened`` session."""
    tree = xr.DataTree.from_dict(nodes)
    closers = [ds.close for ds in opened]

    def close_all() -> None:
        for close in closers:
            close()

    tree.set_close(close_all)
    return tree


def _node_name(ds: xr.Dataset) -> str:
    """The DataTree node of a session: its experiment id; behavior sessions are prefixed."""
    if "ophys_experiment_id" in ds.attrs:
        return str(ds.attrs["ophys_experiment_id"])
    return f"behavior_session_{ds.attrs['behavior_session_id']}"


def open_multiplane_session(
    sources: Source | Iterable[Source],
    *,
    ophys_session_id: int | None = None,
    parallel: bool = True,
    exclude_invalid_rois: bool = True,
) -> xr.DataTree:
    """Open every imaging plane of one multiplane (mesoscope) session, behavior held once.

    A mesoscope session images up to eight planes; the AllenSDK writes one file per plane
    (one ``ophys_experiment_id`` each), every file holding the same behavior.  The result
    is a ``DataTree`` whose root holds the behavior (trials, presentations, licks, rewards,
    running, eye tracking, templates) and the attributes the planes share, read from one
    plane, and one child per plane, named by ``ophys_experiment_id`` (ordered by
    ``imaging_plane_group``), holding that plane's cells, traces, images and attributes.
    The planes keep their own frame times, fields of view and cells, so nothing is padded
    and cells of different planes never mix; :func:`plane_dataset` gives one plane as a
    complete session Dataset for the functions of :mod:`ophys_xr`.

    Parameters
    ----------
    sources
        The planes' files (or stores), or a folder searched for them.
    ophys_session_id
        Take the planes of this session when the sources hold several sessions.
    parallel
        Open the files in a thread pool.
    exclude_invalid_rois
        As in :func:`ophys_xr.open_session`.

    Returns
    -------
    xarray.DataTree
        Lazy; closing it closes every file.

    Raises
    ------
    OptionError
        The sources hold no session, several sessions and no ``ophys_session_id``, or two
        files of the same plane.
    SchemaError
        The planes disagree on what they must share (the behavior).
    """
    from ophys_xr.io import open_session

    paths = _expand(sources)
    rows = [read_metadata(p) for p in paths]
    sessions = sorted({int(r["ophys_session_id"]) for r in rows
                       if r.get("ophys_session_id") is not None})
    if ophys_session_id is None:
        if len(sessions) != 1:
            msg = (f"the sources hold {len(sessions)} ophys sessions {sessions}; pass "
                   "ophys_session_id= to choose one")
            raise OptionError(msg)
        ophys_session_id = sessions[0]
    chosen = [(r, p) for r, p in zip(rows, paths, strict=True)
              if r.get("ophys_session_id") == ophys_session_id]
    if not chosen:
        msg = f"no plane of ophys session {ophys_session_id} in the sources; found {sessions}"
        raise OptionError(msg)
    chosen.sort(key=lambda rp: (rp[0].get("imaging_plane_group") or 0))
    groups = [r.get("imaging_plane_group") for r, _ in chosen]
    if len(set(groups)) != len(groups):
        msg = (f"two files of the same imaging plane of session {ophys_session_id}: "
               f"{[str(p) for _, p in chosen]} have plane groups {groups}")
        raise OptionError(msg)

    def one(path: Source) -> xr.Dataset:
        return open_session(path, exclude_invalid_rois=exclude_invalid_rois)

    if parallel and len(chosen) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as pool:
            planes = list(pool.map(one, [p for _, p in chosen]))
    else:
        planes = [one(p) for _, p in chosen]
    try:
        return _plane_tree(planes, [p for _, p in chosen])
    except BaseException:
        for ds in planes:
            ds.close()
        raise


def _plane_tree(planes: list[xr.Dataset], paths: list[Source]) -> xr.DataTree:
    first = planes[0]
    behavior = [n for n in first.variables if not is_imaging(str(n))]
    for ds, path in zip(planes[1:], paths[1:], strict=True):
        for key in ("behavior_session_id", "ophys_session_id"):
            if ds.attrs.get(key) != first.attrs.get(key):
                msg = (f"{str(path)!r} has {key} {ds.attrs.get(key)} but {str(paths[0])!r} has "
                       f"{first.attrs.get(key)}: not planes of one session")
                raise SchemaError(msg)
        # the small tables are in memory: check that the planes share the behavior
        for name in ("trials_start_time", "start_time", "licks_timestamps"):
            if name in first and not np.array_equal(ds[name].values, first[name].values,
                                                    equal_nan=True):
                msg = (f"{str(path)!r} and {str(paths[0])!r} differ in {name}: the planes of "
                       "one session share their behavior")
                raise SchemaError(msg)
    root = first[[n for n in behavior if n in first.data_vars]]
    # the root keeps the attributes every plane has with the same value
    root.attrs = {k: v for k, v in first.attrs.items()
                  if all(k in ds.attrs and ds.attrs[k] == v for ds in planes[1:])}
    nodes: dict[str, xr.Dataset] = {"/": root}
    for ds in planes:
        imaging = ds[[n for n in ds.data_vars if is_imaging(str(n))]]
        imaging = imaging.drop_vars([c for c in imaging.coords if not is_imaging(str(c))])
        imaging.attrs = dict(ds.attrs)
        nodes[str(ds.attrs["ophys_experiment_id"])] = imaging
    return _tree(nodes, planes)


def plane_dataset(tree: xr.DataTree, plane: str | int) -> xr.Dataset:
    """One plane of :func:`open_multiplane_session` as a complete session Dataset.

    The plane's imaging variables and attributes with the session's behavior from the
    root (no copy: the same lazy arrays), so every function of :mod:`ophys_xr`
    (``stimulus_response``, ``BehaviorOphysSession.from_dataset``, ...) works on it.

    Parameters
    ----------
    tree
        From :func:`open_multiplane_session`.
    plane
        The child's name (its ``ophys_experiment_id``) or the ``imaging_plane_group``.

    Raises
    ------
    OptionError
        No such plane.
    """
    names = list(tree.children)
    if isinstance(plane, int) and not isinstance(plane, bool) and str(plane) not in names:
        by_group = {tree[n].attrs.get("imaging_plane_group"): n for n in names}
        if plane not in by_group:
            msg = f"no plane {plane!r}; planes: {names} (groups {sorted(by_group, key=str)})"
            raise OptionError(msg)
        plane = by_group[plane]
    if str(plane) not in names:
        msg = f"no plane {plane!r}; planes: {names}"
        raise OptionError(msg)
    node = tree.children[str(plane)]
    root = tree.to_dataset(inherit=False)
    merged = xr.merge([root, node.to_dataset(inherit=False)], compat="override",
                      join="exact", combine_attrs="override")
    merged.attrs = dict(node.attrs)
    return merged


@dataclass
class SessionMapResult:
    """What :func:`map_sessions` returns.

    Attributes
    ----------
    results
        ``ophys_experiment_id`` (or the source when the session has none: a behavior
        session) -> the function's result, for the sessions that succeeded.
    errors
        One row per failed session: ``source``, ``ophys_experiment_id`` (if known),
        ``error``, ``traceback``.
    combined
        The results combined along ``ophys_experiment_id`` (outer join on
        ``cell_specimen_id``) when they are xarray objects and ``combine`` was True.
    sources
        The sources, as strings, in the order they were run.
    """

    results: dict[Any, Any]
    errors: pd.DataFrame
    combined: xr.Dataset | None = None
    sources: list[str] = field(default_factory=list)


def _run_one(func: Callable[[xr.Dataset], Any], source: Any, open_kwargs: dict[str, Any],
             cache: Any = None) -> tuple[Any, ...]:
    """Open one session (a path, a URL, or an experiment id through ``cache``), apply
    ``func``, compute, close (runs on a worker).

    Returns ``("ok", source, ophys_experiment_id, key, result)`` or ``("error", source,
    ophys_experiment_id, key, message, traceback)``, ``key`` from :func:`_session_key`.
    """
    import dask

    from ophys_xr.io import open_session

    experiment = int(source) if _is_id(source) else None
    key = experiment
    try:
        opened = (cache.open_experiment(int(source), **open_kwargs) if _is_id(source)
                  else open_session(source, **open_kwargs))
        # compute inside the task, synchronously: the parallelism is across sessions (one
        # per worker thread), a worker holds only this session's chunks, and no nested graph
        # goes back to the scheduler
        with dask.config.set(scheduler="sync"), opened as ds:
            experiment = ds.attrs.get("ophys_experiment_id", experiment)
            key = _session_key(ds.attrs)
            result = func(ds)
            if hasattr(result, "compute"):
                result = result.compute()
        return ("ok", source, experiment, key, result)
    except Exception as err:  # noqa: BLE001 - reported per session, never swallowed
        message = f"{type(err).__name__}: {_naming(err, source)}"
        return ("error", source, experiment, key, message, traceback.format_exc())


def map_sessions(
    func: Callable[[xr.Dataset], Any],
    sources: Source | int | Iterable[Source | int],
    *,
    client: Any = None,
    combine: bool = True,
    exclude_invalid_rois: bool = True,
    progress: bool = False,
    cache: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> SessionMapResult:
    """Run ``func(ds)`` on every session in parallel and gather the results.

    Each session is opened where it is computed (a dask.distributed worker, or a thread of
    the local scheduler), so only paths, URLs or ids travel, a worker holds one session at a
    time, and a session read over the network streams only what ``func`` reads.

    Parameters
    ----------
    func
        Takes a session Dataset, returns something small (e.g. per-cell mean ΔF/F per
        image as a ``DataArray``); lazy results are computed on the worker.  Must be
        picklable for distributed workers (a module-level function).
    sources
        Session files, ``https://`` or ``s3://`` URLs of NWB files, folders searched
        recursively for session files, and, with ``cache``, integer
        ``ophys_experiment_id`` values (a list may mix them).
    client
        A ``dask.distributed.Client``; default: the current one if any, else dask's local
        scheduler (threads).
    combine
        Combine xarray results along a new ``ophys_experiment_id`` dimension, aligning
        cells by ``cell_specimen_id`` (outer join).
    exclude_invalid_rois
        As in :func:`ophys_xr.open_session`.
    progress
        Show a progress bar (local scheduler) or the distributed progress.
    cache
        Opens the experiments given by id: an object with
        ``open_experiment(ophys_experiment_id, **open_kwargs)`` returning a session
        Dataset, such as ``ophys_xr.ProjectCache``; it is sent to every worker (it must
        pickle), and each task opens its experiment there, lazily.
    storage_options
        For URLs (and ids): passed to the opening (fsspec options, e.g. ``{"anon": True}``
        for a public S3 bucket).

    Returns
    -------
    SessionMapResult
        Per-session results, the failed sessions with their errors, and the combined
        object.  One failing session does not lose the others.

    Raises
    ------
    OptionError
        A source given twice; an id without ``cache``; or two sources that turn out to
        hold the same experiment (e.g. an NWB file and the store converted from it): the
        message lists them.  This is known only once the sessions are open, so it is raised
        after the run; results are never silently reduced to one of them.
    """
    import dask

    paths = _expand(sources, ids=True)
    _refuse_repeats(paths)
    if cache is None and any(_is_id(p) for p in paths):
        first = next(p for p in paths if _is_id(p))
        msg = (f"map_sessions got the experiment id {first} but no cache= to open it; pass "
               "cache=ophys_xr.ProjectCache.from_s3_cache(...), or paths / URLs")
        raise OptionError(msg)
    if cache is not None and not callable(getattr(cache, "open_experiment", None)):
        msg = (f"cache= must have an open_experiment(ophys_experiment_id) method (an "
               f"ophys_xr.ProjectCache), got {type(cache).__name__}")
        raise OptionError(msg)
    open_kwargs: dict[str, Any] = {"exclude_invalid_rois": exclude_invalid_rois}
    if storage_options is not None:
        open_kwargs["storage_options"] = storage_options
    n = len(paths)
    workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            client = None
    if client is not None:
        futures = client.map(_run_one, [func] * n, paths, [open_kwargs] * n, [cache] * n,
                             pure=False)
        if progress:
            from distributed import progress as dist_progress

            dist_progress(futures)
        outputs = client.gather(futures)
    else:
        tasks = [dask.delayed(_run_one, pure=False)(func, p, open_kwargs, cache)
                 for p in paths]
        if progress:
            from tqdm.dask import TqdmCallback

            with TqdmCallback(desc="sessions"):
                outputs = dask.compute(*tasks, scheduler="threads", num_workers=workers)
        else:
            outputs = dask.compute(*tasks, scheduler="threads", num_workers=workers)
    _refuse_duplicates((out[3], out[1]) for out in outputs)
    results: dict[Any, Any] = {}
    errors = []
    for out in outputs:
        if out[0] == "ok":
            _, source, experiment, _key, value = out
            results[experiment if experiment is not None else str(source)] = value
        else:
            _, source, experiment, _key, message, tb = out
            errors.append({"source": str(source), "ophys_experiment_id": experiment,
                           "error": message, "traceback": tb})
    error_table = pd.DataFrame(errors, columns=["source", "ophys_experiment_id", "error",
                                                "traceback"])
    combined = None
    if combine and results and all(isinstance(v, xr.DataArray | xr.Dataset)
                                   for v in results.values()):
        combined = combine_by_cell(results)
    return SessionMapResult(results=results, errors=error_table, combined=combined,
                            sources=[str(p) for p in paths])


def combine_by_cell(objects: dict[Any, xr.DataArray | xr.Dataset]) -> xr.Dataset:
    """Concatenate per-session results along ``ophys_experiment_id``, cells aligned.

    Cells are matched by ``cell_specimen_id`` (the cross-session identity) with an outer
    join, so a cell imaged in several sessions lines up and a cell missing from a session is
    NaN there.  ROIs without a cell_specimen_id (-1) cannot be matched and are dropped.

    Parameters
    ----------
    objects
        ``ophys_experiment_id`` -> DataArray or Dataset.

    Returns
    -------
    xarray.Dataset
    """
    keys: Sequence[Any] = list(objects)
    prepared = []
    for key in keys:
        obj = objects[key]
        if isinstance(obj, xr.DataArray):
            obj = obj.to_dataset(name=obj.name or "result")
        if "cell_specimen_id" in obj.dims:
            obj = obj.sel(cell_specimen_id=obj["cell_specimen_id"] != -1)
            drop = [c for c in obj.coords if c != "cell_specimen_id"
                    and "cell_specimen_id" in obj[c].dims]
            obj = obj.drop_vars(drop)
        prepared.append(obj)
    return xr.concat(
        prepared,
        dim=pd.Index(np.asarray(keys), name="ophys_experiment_id"),
        join="outer",
        coords="different",
        compat="equals",
        data_vars="all",
        combine_attrs="drop_conflicts",
    )
