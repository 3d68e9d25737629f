"""Exceptions raised by ophys_xr.

Every error the package raises on purpose derives from :class:`OphysXrError`, so
``except ophys_xr.OphysXrError`` catches all of them.  Each class also derives from
the builtin exception that matches the problem (``FileNotFoundError``, ``ValueError``,
``KeyError``, ``FileExistsError``, ``OSError``), so code written against the builtins keeps
working.
"""

from __future__ import annotations

__all__ = [
    "DownloadError",
    "InvalidSessionFileError",
    "MissingDataError",
    "MissingDependencyError",
    "NotAnOphysSessionError",
    "NotNwbFileError",
    "OphysXrError",
    "OptionError",
    "OutputExistsError",
    "OutputFolderError",
    "PermissionDeniedError",
    "RemoteReadError",
    "SchemaError",
    "SessionClosedError",
    "SessionFileNotFoundError",
    "UnsupportedLayoutError",
]


class OphysXrError(Exception):
    """Base class of every error raised by ophys_xr."""


class SessionFileNotFoundError(OphysXrError, FileNotFoundError):
    """The session path does not exist."""


class InvalidSessionFileError(OphysXrError, ValueError):
    """The path exists but is not a readable session file (not HDF5, truncated, ...)."""


class NotNwbFileError(InvalidSessionFileError):
    """The file is HDF5 but not an NWB file."""


class UnsupportedLayoutError(InvalidSessionFileError):
    """An NWB file in a layout ophys_xr does not read (e.g. the 2019 AllenSDK layout)."""


class NotAnOphysSessionError(InvalidSessionFileError):
    """The file is HDF5/NWB but lacks what an ophys session needs."""


class SchemaError(OphysXrError, ValueError):
    """Data that does not match the session schema (dims, dtypes, lengths)."""


class MissingDataError(OphysXrError, KeyError):
    """A variable that a function needs is not in the Dataset."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(OphysXrError, ImportError):
    """An optional dependency that a function needs is not installed (the message says what
    to install)."""


class OptionError(OphysXrError, ValueError):
    """An unknown or invalid option value (engine, format, parameter)."""


class SessionClosedError(OphysXrError, ValueError):
    """Data was asked of a session object after its ``close()``."""


class OutputExistsError(OphysXrError, FileExistsError):
    """The output path of a write exists and ``overwrite`` was not asked for."""


class OutputFolderError(OphysXrError, FileNotFoundError):
    """The folder an output goes into does not exist, or is not a folder."""


class PermissionDeniedError(OphysXrError, PermissionError):
    """A file or folder that ophys_xr must read or write is not accessible (permissions, a
    read-only file system); the message names the user's path."""


class DownloadError(OphysXrError, OSError):
    """A download failed or its checksum did not match."""


class RemoteReadError(OphysXrError, OSError):
    """Reading a session over the network failed (stall, server error, no range requests)."""
