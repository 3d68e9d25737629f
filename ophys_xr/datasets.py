"""The public Visual Behavior Ophys files: their URLs, and a checked download cache.

The Allen Institute publishes every experiment as
``{BASE_URL}/behavior_ophys_experiment_{id}.nwb`` (0.2–3 GB each).  Open one remotely with
``ophys_xr.open_session(experiment_url(id))`` (range requests, only what is used is
transferred) or download it once with :func:`fetch_experiment`.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ophys_xr._atomic import finish, write_atomically
from ophys_xr.exceptions import DownloadError, OptionError

__all__ = ["BASE_URL", "DownloadError", "cache_dir", "experiment_url", "fetch", "fetch_experiment"]

#: Where the released NWB files live (VBO release on AWS Open Data).
BASE_URL = (
    "https://visual-behavior-ophys-data.s3-us-west-2.amazonaws.com/visual-behavior-ophys/"
    "behavior_ophys_experiments"
)
_CHUNK = 1 << 20


def experiment_url(ophys_experiment_id: int, *, base_url: str = BASE_URL) -> str:
    """URL of the NWB file of one experiment.

    Parameters
    ----------
    ophys_experiment_id
        The experiment id (a positive integer).
    base_url
        Folder URL of the files.

    Returns
    -------
    str
    """
    if isinstance(ophys_experiment_id, bool) or not isinstance(ophys_experiment_id, int) \
            or ophys_experiment_id <= 0:
        msg = f"ophys_experiment_id must be a positive int, got {ophys_experiment_id!r}"
        raise OptionError(msg)
    return f"{base_url.rstrip('/')}/behavior_ophys_experiment_{ophys_experiment_id}.nwb"


def cache_dir() -> Path:
    """The download cache: ``$OPHYS_XR_CACHE`` or ``~/.cache/ophys_xr``."""
    return Path(os.environ.get("OPHYS_XR_CACHE", Path.home() / ".cache" / "ophys_xr"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    url: str,
    path: str | os.PathLike[str],
    *,
    known_hash: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    max_attempts: int = 5,
) -> Path:
    """Download ``url`` to ``path`` with resume, a checksum and an atomic rename.

    The bytes go to ``<path>.part``; an interrupted download resumes from there with an HTTP
    range request on the next call (or restarts if the server does not support ranges).
    Only a complete download whose SHA-256 matches ``known_hash`` (when given) is renamed to
    ``path``; its digest, size and modification time are written next to it as
    ``<path>.sha256``.  An existing ``path`` whose digest matches is returned without
    downloading; the recorded digest is trusted only while the file's size and modification
    time are those recorded (a file changed since is hashed again).  A file at ``path`` that
    this function did not write (no ``.sha256`` record) is never deleted: a wrong digest then
    raises.  Two calls for the same file at once (threads or processes) download it once: the
    others wait on a lock of the partial file, then find the file done.

    Parameters
    ----------
    url
        What to download.
    path
        Where to put it.
    known_hash
        Expected SHA-256 (hex, optionally prefixed ``sha256:``).
    progress
        Show a progress bar.
    timeout
        Seconds to wait for the server on each request.
    max_attempts
        Connection attempts (each resumes where the last stopped).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DownloadError
        The server refused, the connection kept failing, or the checksum differs (the
        bad download is deleted).
    """
    target = Path(os.fspath(path)).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = known_hash.split(":", 1)[-1].lower() if known_hash else None
    part = target.with_name(target.name + ".part")
    # one download of a file at a time, across processes: the others wait, then find it done
    with _locked(part):
        return _fetch_locked(url, target, part, expected, progress=progress, timeout=timeout,
                             max_attempts=max_attempts)


@contextmanager
def _locked(part: Path) -> Iterator[None]:
    """Hold an exclusive lock on the partial file ``part`` (created if absent).

    The lock is taken on the file that is at ``part`` once it is held (a waiting process
    whose file was renamed into place or deleted meanwhile tries again), and an empty
    partial file is removed on the way out.  Without ``fcntl`` (Windows) or on a file system
    without locks nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    while True:
        with part.open("ab") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            except OSError:  # a file system without locks (some network mounts)
                yield
                return
            try:
                current = os.stat(part).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                continue
            try:
                yield
            finally:
                if part.exists() and part.stat().st_size == 0:
                    part.unlink()
            return


def _fetch_locked(url: str, target: Path, part: Path, expected: str | None, *, progress: bool,
                  timeout: float, max_attempts: int) -> Path:
    """:func:`fetch` once the partial file is locked."""
    sidecar = target.with_name(target.name + ".sha256")
    if target.exists():
        recorded = _recorded_digest(target, sidecar)
        digest = recorded if recorded is not None else _sha256(target)
        if expected is None or digest == expected:
            return target
        if not sidecar.exists():
            msg = (
                f"{str(target)!r} exists, was not downloaded by ophys_xr and its SHA-256 is "
                f"{digest}, not {expected}; move it away (it is not deleted) and call again"
            )
            raise DownloadError(msg)
        target.unlink()  # a download of ours that changed or broke since: fetch it again
        sidecar.unlink()
    last_error: Exception | None = None
    for _ in range(max_attempts):
        try:
            _download(url, part, progress=progress, timeout=timeout)
            last_error = None
            break
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code in (403, 404):
                msg = f"cannot download {url!r}: HTTP {err.code} {err.reason}. Check the URL/id."
                raise DownloadError(msg) from err
            last_error = err
    if last_error is not None:
        msg = (
            f"downloading {url!r} failed {max_attempts} times ({last_error}); the partial "
            f"file {str(part)!r} is kept and the next call resumes it"
        )
        raise DownloadError(msg) from last_error
    digest = _sha256(part)
    if expected is not None and digest != expected:
        part.unlink()
        msg = (
            f"SHA-256 of the download of {url!r} is {digest}, expected {expected}. The bad "
            "download was deleted; try again, or check the expected hash."
        )
        raise DownloadError(msg)
    # the resumable partial file has a fixed name (the next call resumes it); once whole it
    # is renamed into place as every writer of the package does, and so is its checksum
    finish(part, target, overwrite=True)
    stat = target.stat()
    record = f"{digest} {stat.st_size} {stat.st_mtime_ns}\n"
    write_atomically(sidecar, lambda tmp: tmp.write_text(record), overwrite=True)
    return target


def _recorded_digest(target: Path, sidecar: Path) -> str | None:
    """The digest recorded for ``target`` if the record still describes the file, else None.

    The record is ``"<sha256> <size> <mtime_ns>"``; a file whose size or modification time
    differs (changed under the cache), or a record without them, is hashed again.
    """
    try:
        fields = sidecar.read_text().split()
    except FileNotFoundError:
        return None
    if len(fields) != 3:
        return None
    stat = target.stat()
    if fields[1:] != [str(stat.st_size), str(stat.st_mtime_ns)]:
        return None
    return fields[0]


def _download(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # already complete
            return
        raise
    with response:
        if have and response.status != 206:  # server ignored the range: start again
            have = 0
        total_header = response.headers.get("Content-Length")
        total = int(total_header) + have if total_header is not None else None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True,
                       desc=part.name.removesuffix(".part"))
        try:
            with part.open("ab" if have else "wb") as out:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and part.stat().st_size < total:
        msg = f"connection closed after {part.stat().st_size} of {total} bytes"
        raise OSError(msg)


def fetch_experiment(
    ophys_experiment_id: int,
    *,
    known_hash: str | None = None,
    directory: str | os.PathLike[str] | None = None,
    base_url: str = BASE_URL,
    progress: bool = True,
) -> Path:
    """Download the NWB file of one experiment into the cache (see :func:`fetch`).

    Parameters
    ----------
    ophys_experiment_id
        The experiment.
    known_hash
        Expected SHA-256 of the file, if known.
    directory
        Cache folder (default :func:`cache_dir`).
    base_url
        Folder URL of the files.
    progress
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The local file, ready for :func:`ophys_xr.open_session`.
    """
    url = experiment_url(ophys_experiment_id, base_url=base_url)
    folder = Path(directory) if directory is not None else cache_dir()
    return fetch(url, folder / url.rsplit("/", 1)[-1], known_hash=known_hash, progress=progress)
