"""Writes that never leave a complete-looking output when interrupted.

Every writer of the package (Zarr, netCDF, NWB, downloads) writes to a temporary sibling
of the target (:func:`sibling_temp`, a hidden ``.<name>.partial-<random>`` in the same
folder, so the final rename is atomic) and moves it into place only when it is whole
(:func:`finish`).  :func:`write_atomically` is the three steps in one; nothing is deleted
that the write did not create.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ophys_xr.exceptions import OutputExistsError, OutputFolderError

__all__ = ["check_target", "finish", "sibling_temp", "temporary_sibling", "write_atomically"]


def sibling_temp(path: Path) -> Path:
    """A new hidden temporary name in the folder of ``path``."""
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse an existing output (unless ``overwrite``) or a missing folder, before writing.

    Raises
    ------
    OutputExistsError, OutputFolderError
    """
    if path.exists() and not overwrite:
        msg = f"{str(path)!r} exists; pass overwrite=True to replace it"
        raise OutputExistsError(msg)
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        msg = (f"the folder of {str(path)!r} ({str(path.parent)!r}) {what}; "
               "write into an existing folder")
        raise OutputFolderError(msg)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def finish(tmp: Path, path: Path, *, overwrite: bool) -> None:
    """Move a complete temporary output into place (atomic rename).

    An existing ``path`` is replaced only if ``overwrite``: it is first renamed aside, so
    that at every moment either the old or the new output is in place.
    """
    if path.exists():
        if not overwrite:
            msg = f"{str(path)!r} exists; pass overwrite=True to replace it"
            raise OutputExistsError(msg)
        old = sibling_temp(path)
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


@contextmanager
def temporary_sibling(path: Path, *, overwrite: bool) -> Iterator[Path]:
    """Write into the yielded temporary path; on success it becomes ``path``.

    The target is checked first (:func:`check_target`); the temporary output is removed
    whatever happens, so an interrupted or failed write leaves nothing behind.
    """
    check_target(path, overwrite)
    tmp = sibling_temp(path)
    try:
        yield tmp
        finish(tmp, path, overwrite=overwrite)
    finally:
        _remove(tmp)


def write_atomically(path: Path, write: Callable[[Path], object], *, overwrite: bool) -> Path:
    """``write(tmp)`` into a temporary sibling of ``path``, then rename it to ``path``."""
    with temporary_sibling(path, overwrite=overwrite) as tmp:
        write(tmp)
    return path
