"""The storage formats a session opens from, as one registry, and the one open path.

Each :class:`Format` says which paths it claims (suffixes, or a test of a folder), how a
session is read from it (the opening options applied only as far as the reader can do so
cheaply, e.g. leaving invalid ROIs unread) and how its metadata is read without the
traces.  :func:`open_source` is the one path from a source to the session Dataset:
``ophys_xr.open_session``, ``xr.open_dataset(..., engine="ophys")``, ``open_sessions``,
``map_sessions`` and ``BehaviorOphysSession.from_nwb_path`` all end there, and the
options are applied there, once, for every format
(:func:`ophys_xr.model.apply_session_options`).  A new storage format is one entry of
:data:`FORMATS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ophys_xr._options import SessionOptions
from ophys_xr.exceptions import OptionError, SchemaError

if TYPE_CHECKING:  # xarray is imported by the readers: read_metadata of NWB needs h5py only
    import xarray as xr

__all__ = ["FORMATS", "Format", "as_source", "format_of", "is_url", "open_source", "read_metadata",
           "unwrap_source"]

Source = str | os.PathLike[str]


def is_url(source: object) -> bool:
    """Whether ``source`` is a URL (``https://``, ``s3://``, ...) rather than a local path."""
    return isinstance(source, str) and "://" in source and not source.startswith("file://")


def as_source(source: object) -> Source:
    """``source`` as a path or URL: ``file://`` URLs and ``bytes`` paths become paths.

    Raises
    ------
    OptionError
        ``source`` is neither a path nor a URL (None, a number, ...).
    """
    if isinstance(source, bytes):
        source = os.fsdecode(source)
    if isinstance(source, str) and source.startswith("file://"):
        from urllib.parse import unquote, urlparse

        parsed = urlparse(source)
        if parsed.netloc not in ("", "localhost"):
            msg = (f"{source!r} names a file on the host {parsed.netloc!r}; give a local "
                   "path or a file:///absolute/path URL")
            raise OptionError(msg)
        return unquote(parsed.path)
    if not isinstance(source, str | os.PathLike):
        msg = (f"a session source must be a path or a URL (str or os.PathLike), got "
               f"{type(source).__name__} {source!r}")
        raise OptionError(msg)
    return source


def unwrap_source(source: object) -> tuple[object, dict[str, Any] | None]:
    """The path or URL behind an open file object that a user hands over, and the fsspec
    ``storage_options`` it was opened with (None when there are none to keep).

    ophys_xr opens the file again itself (read-only, picklable to dask workers, with its
    checked reads), so these are accepted as their path or URL: an ``h5py.File`` (or group)
    of a file on disk; a pynwb ``NWBFile`` read from a file (``container_source``); a
    binary file object of a local file (``name``), of fsspec (its URL and options) or of
    remfile (DANDI streaming; its URL).  Anything else is returned as it is.

    Raises
    ------
    OptionError
        An object that is a file but has no path or URL ophys_xr can open again (an
        in-memory buffer, an h5py file opened on a file object, an NWBFile not read from a
        file).
    """
    if isinstance(source, str | bytes | os.PathLike) or source is None:
        return source, None
    kind = type(source).__name__
    if hasattr(source, "container_source") and hasattr(source, "acquisition"):  # NWBFile
        path = source.container_source
        if not isinstance(path, str):
            msg = (f"this NWBFile was not read from a file (container_source is {path!r}); "
                   "write it with pynwb.NWBHDF5IO first, or pass the path of the file")
            raise OptionError(msg)
        return path, None
    h5file = getattr(source, "file", None)
    if h5file is not None and hasattr(h5file, "driver") and hasattr(h5file, "filename"):
        if h5file.driver != "fileobj" and Path(h5file.filename).is_file():  # h5py File/Group
            return h5file.filename, None
        msg = (f"this {kind} was opened on a file object ({h5file.filename}); pass that "
               "file object, its path or its URL to ophys_xr instead")
        raise OptionError(msg)
    fs, fs_path = getattr(source, "fs", None), getattr(source, "path", None)
    if fs is not None and isinstance(fs_path, str) and hasattr(fs, "unstrip_protocol"):
        url = fs.unstrip_protocol(fs_path)  # an fsspec file
        if url.startswith("file://"):
            return as_source(url), None
        return url, dict(getattr(fs, "storage_options", {}) or {}) or None
    url = getattr(source, "_url", None) or getattr(source, "url", None)
    if isinstance(url, str) and is_url(url):  # remfile.File and the like
        return url, None
    name = getattr(source, "name", None)
    if hasattr(source, "read") and isinstance(name, str) and Path(name).is_file():
        return name, None  # a local file opened with open()
    if hasattr(source, "read"):
        msg = (f"this {kind} has no path or URL that ophys_xr can open again (it reads "
               "lazily, in other processes too); save it to a file and pass the path")
        raise OptionError(msg)
    return source, None


def _check_engine(path: Path, fmt: Format) -> None:
    """Refuse an ``engine`` that contradicts the path's suffix (e.g. netCDF for ``.nwb``)."""
    suffix = path.suffix.lower()
    for other in FORMATS.values():
        if other is not fmt and suffix in other.suffixes:
            msg = (f"{str(path)!r} is by its suffix a {other.name} file, but engine="
                   f"{fmt.name!r} was given; pass engine={other.name!r} or engine=None")
            raise OptionError(msg)


def _read_nwb(source: Source, options: SessionOptions, **kwargs: Any) -> xr.Dataset:
    from ophys_xr.backends.nwb import read_nwb

    return read_nwb(source, options, **kwargs)


def _nwb_metadata(path: Source, **kwargs: Any) -> dict[str, Any]:
    from ophys_xr.backends.nwb_metadata import read_nwb_metadata

    return read_nwb_metadata(path, **kwargs)


def _store_format(engine: str) -> tuple[Callable[..., xr.Dataset],
                                         Callable[[Source], dict[str, Any]]]:
    def read(source: Source, options: SessionOptions, **kwargs: Any) -> xr.Dataset:
        from ophys_xr.backends.store import read_store

        return read_store(source, options, engine=engine, **kwargs)

    def metadata(path: Source) -> dict[str, Any]:
        from ophys_xr.backends.store import read_store_metadata

        return read_store_metadata(path, engine=engine)

    return read, metadata


def _is_zarr_folder(path: Path) -> bool:
    from ophys_xr.backends.store import is_zarr_store

    return is_zarr_store(path)


@dataclass(frozen=True)
class Format:
    """A storage format of sessions.

    Parameters
    ----------
    name
        The ``engine`` name.
    suffixes
        File or folder name suffixes it claims (lower case).
    read
        ``read(source, options, **kwargs)`` -> the session Dataset, built but with the
        options that derive variables not yet applied.
    read_metadata
        ``read_metadata(path)`` -> the session attributes plus ``n_cells``,
        ``n_valid_cells`` and ``duration_s``, reading no trace.
    claims
        Whether it claims a path whatever its suffix (a Zarr store folder); optional.
    remote
        Whether it reads URLs.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[..., xr.Dataset]
    read_metadata: Callable[..., dict[str, Any]]
    claims: Callable[[Path], bool] | None = None
    remote: bool = False


FORMATS: dict[str, Format] = {
    "nwb": Format("nwb", (".nwb",), _read_nwb, _nwb_metadata, remote=True),
    "zarr": Format("zarr", (".zarr",), *_store_format("zarr"), claims=_is_zarr_folder),
    "netcdf": Format("netcdf", (".nc", ".nc4", ".netcdf"), *_store_format("netcdf")),
}
#: The format of a file whose suffix no format claims.
DEFAULT_FORMAT = "nwb"


def format_of(source: Source, engine: str | None = None) -> Format:
    """The format of ``source``: ``engine`` when given, else guessed from the path.

    Raises
    ------
    OptionError
        An unknown ``engine``.
    """
    if engine is not None:
        if engine not in FORMATS:
            msg = f"unknown engine {engine!r}; choose one of {list(FORMATS)} (or None to guess)"
            raise OptionError(msg)
        return FORMATS[engine]
    if is_url(source):
        return FORMATS[DEFAULT_FORMAT]
    path = Path(os.fspath(source)).expanduser()
    suffix = path.suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes or (fmt.claims is not None and fmt.claims(path)):
            return fmt
    return FORMATS[DEFAULT_FORMAT]


def open_source(source: Source, options: SessionOptions, *, engine: str | None = None,
                **kwargs: Any) -> xr.Dataset:
    """Open one session from any format, the options applied: the one open path.

    Parameters
    ----------
    source
        Path (or URL, for the formats that read them).
    options
        The opening options.
    engine
        A key of :data:`FORMATS`; guessed from the path when None.
    **kwargs
        Passed to the format's reader (e.g. ``lock`` for NWB).

    Returns
    -------
    xarray.Dataset
        The session Dataset; closing it closes the source.
    """
    from ophys_xr.model import apply_session_options

    fmt, target = _resolve(source, engine, kwargs)
    try:
        raw = fmt.read(target, options, **kwargs)
    except SchemaError as err:
        if str(target) in str(err):
            raise
        msg = (f"{str(target)!r} does not hold a consistent session: {err}. Download or "
               "convert it again")
        raise type(err)(msg) from err
    try:
        ds = apply_session_options(raw, options)
    except BaseException:
        raw.close()
        raise
    if ds is not raw:
        ds.encoding = dict(raw.encoding)
        ds.set_close(raw.close)
    return ds


def read_metadata(source: Source, engine: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """The session attributes and sizes of ``source``, reading no trace.

    Parameters
    ----------
    source
        Path, or URL (``https://``, ``s3://``) for the formats that read them.
    engine
        A key of :data:`FORMATS`; guessed from the path when None.
    **kwargs
        Passed to the format's metadata reader (e.g. ``storage_options`` for a URL).

    Raises
    ------
    OptionError
        A URL for a format that reads local paths only.
    """
    fmt, target = _resolve(source, engine, kwargs)
    return fmt.read_metadata(target, **kwargs)


def _resolve(source: object, engine: str | None, kwargs: dict[str, Any]
             ) -> tuple[Format, Source]:
    """The format of ``source`` and what its reader takes: a URL as a string (for the
    formats that read URLs), else the path, expanded.  The ``storage_options`` of an fsspec
    file object go into ``kwargs`` unless given there."""
    source, found = unwrap_source(source)
    if found and kwargs.get("storage_options") is None:
        kwargs["storage_options"] = found
    source = as_source(source)
    fmt = format_of(source, engine)
    if is_url(source):
        if not fmt.remote:
            msg = f"the {fmt.name} format reads local paths only, got the URL {source!r}"
            raise OptionError(msg)
        return fmt, str(source)
    target = Path(os.fspath(source)).expanduser()
    if engine is not None:
        _check_engine(target, fmt)
    return fmt, target
