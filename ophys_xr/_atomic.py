"""Writes that never leave a complete-looking output when interrupted, and never replace
what ophys_xr did not write.

Every writer of the package (Zarr, netCDF, NWB, downloads) writes to a temporary sibling
of the target (:func:`sibling_temp`, a hidden ``.<name>.partial-<random>`` in the same
folder, so the final rename is atomic) and moves it into place only when it is whole
(:func:`finish`).  :func:`write_atomically` is the three steps in one; nothing is deleted
that the write did not create.

``overwrite`` replaces an existing output only if the writer recognises it as its own
(``owned(path)``, e.g. the manifest of a Zarr store written by ophys_xr); without that test
a folder is never replaced.  The old output is renamed aside, the new one renamed into
place, and only then is the old one removed.  A permission error on the temporary output
is reported with the user's path, not the hidden temporary name.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ophys_xr.exceptions import (
    OphysXrError,
    OutputExistsError,
    OutputFolderError,
    PermissionDeniedError,
)

__all__ = [
    "check_target",
    "finish",
    "permission_error",
    "sibling_temp",
    "temporary_sibling",
    "write_atomically",
]

#: ``owned(path)``: whether an existing output at ``path`` was written by this writer.
Owned = Callable[[Path], bool]

#: errno values of an output (or input) that the user may not write (or read).
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def sibling_temp(path: Path) -> Path:
    """A new hidden temporary name in the folder of ``path``."""
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")


def check_target(path: Path, overwrite: bool, owned: Owned | None = None) -> None:
    """Refuse an existing output (unless ``overwrite`` and it is ``owned``) or a missing
    folder, before writing.

    Parameters
    ----------
    path
        The output.
    overwrite
        Whether an existing output may be replaced.
    owned
        ``owned(path)``: whether the existing output was written by this writer.  When None,
        an existing file may be replaced but a folder never is.

    Raises
    ------
    OutputExistsError, OutputFolderError
    """
    if _exists(path):
        if not overwrite:
            msg = f"{str(path)!r} exists; pass overwrite=True to replace it"
            raise OutputExistsError(msg)
        _check_replaceable(path, owned)
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        msg = (f"the folder of {str(path)!r} ({str(path.parent)!r}) {what}; "
               "write into an existing folder")
        raise OutputFolderError(msg)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _check_replaceable(path: Path, owned: Owned | None) -> None:
    """Refuse to replace ``path`` unless the writer recognises it as its own output."""
    if owned is None:
        mine = not path.is_dir()
    else:
        try:
            mine = owned(path)
        except OSError:
            mine = False
    if not mine:
        what = "a folder" if path.is_dir() else "a file"
        msg = (f"{str(path)!r} is {what} that ophys_xr did not write (or has files added "
               "since); overwrite replaces only an output of ophys_xr, and nothing was "
               "deleted: move it away or choose another path")
        raise OutputExistsError(msg)


def permission_error(err: OSError, path: Path, *, reading: bool = False
                     ) -> PermissionDeniedError | None:
    """A :class:`PermissionDeniedError` naming ``path`` if ``err`` is a permission error
    (or a read-only file system), else None."""
    if err.errno not in _DENIED and not isinstance(err, PermissionError):
        return None
    # the reason without the names (h5py's message names the hidden temporary file)
    reason = os.strerror(err.errno or errno.EACCES)
    if reading:
        msg = (f"cannot read {str(path)!r}: {reason}; make it readable to this user "
               "(chmod, or copy it)")
    else:
        msg = (f"cannot write {str(path)!r}: {reason} in {str(path.parent)!r}; write "
               "into a folder you may write to")
    return PermissionDeniedError(msg)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def finish(tmp: Path, path: Path, *, overwrite: bool, owned: Owned | None = None) -> None:
    """Move a complete temporary output into place (atomic rename).

    An existing ``path`` is replaced only if ``overwrite`` and it is the writer's own
    (:func:`check_target`, checked again here): it is first renamed aside, so that at
    every moment either the old or the new output is in place, and removed last.
    """
    try:
        if _exists(path):
            if not overwrite:
                msg = f"{str(path)!r} exists; pass overwrite=True to replace it"
                raise OutputExistsError(msg)
            _check_replaceable(path, owned)
            old = sibling_temp(path)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except OSError as err:
        denied = permission_error(err, path)
        if denied is None:
            raise
        raise denied from err


@contextmanager
def temporary_sibling(path: Path, *, overwrite: bool, owned: Owned | None = None
                      ) -> Iterator[Path]:
    """Write into the yielded temporary path; on success it becomes ``path``.

    The target is checked first (:func:`check_target`); the temporary output is removed
    whatever happens, so an interrupted or failed write leaves nothing behind.  A
    permission error on the temporary output is raised as :class:`PermissionDeniedError`
    naming ``path``.
    """
    check_target(path, overwrite, owned)
    tmp = sibling_temp(path)
    try:
        yield tmp
        finish(tmp, path, overwrite=overwrite, owned=owned)
    except OSError as err:
        ours = isinstance(err, OphysXrError)
        denied = None if ours or not _concerns(err, tmp) else permission_error(err, path)
        if denied is None:
            raise
        raise denied from err
    finally:
        _remove(tmp)


def _concerns(err: OSError, tmp: Path) -> bool:
    """Whether ``err`` is about the temporary output (not, e.g., an input being read)."""
    names = [str(n) for n in (err.filename, err.filename2) if n is not None]
    return not names or any(n.startswith(str(tmp)) for n in names)


def write_atomically(path: Path, write: Callable[[Path], object], *, overwrite: bool,
                     owned: Owned | None = None) -> Path:
    """``write(tmp)`` into a temporary sibling of ``path``, then rename it to ``path``.

    ``owned`` tells whether an existing ``path`` may be replaced (:func:`check_target`).
    """
    with temporary_sibling(path, overwrite=overwrite, owned=owned) as tmp:
        write(tmp)
    return path
