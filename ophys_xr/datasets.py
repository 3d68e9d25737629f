"""The public Visual Behavior Ophys files: their URLs, and a checked download cache.

The Allen Institute publishes every experiment as
``{BASE_URL}/behavior_ophys_experiment_{id}.nwb`` (0.2–3 GB each).  Open one remotely with
``ophys_xr.open_session(experiment_url(id))`` (range requests, only what is used is
transferred) or download it once with :func:`fetch_experiment`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ophys_xr import remote
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


#: Hash algorithms of ``known_hash`` (``"alg:hex"``) and their hex lengths.
HASH_ALGORITHMS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128, "blake2b": 128}


def _parse_hash(known_hash: str | None) -> tuple[str, str] | None:
    """``(algorithm, hex digest)`` of ``known_hash``; plain hex is SHA-256."""
    if known_hash is None:
        return None
    if not isinstance(known_hash, str):
        msg = f"known_hash must be a string 'alg:hex', got {known_hash!r}"
        raise OptionError(msg)
    alg, _, digest = known_hash.strip().rpartition(":")
    alg = alg.lower() or "sha256"
    digest = digest.lower()
    if alg not in HASH_ALGORITHMS or len(digest) != HASH_ALGORITHMS[alg] or not all(
            c in "0123456789abcdef" for c in digest):
        msg = (f"known_hash {known_hash!r} is not 'alg:hex' with alg one of "
               f"{sorted(HASH_ALGORITHMS)} and a hex digest of its length (plain hex: SHA-256)")
        raise OptionError(msg)
    return alg, digest


def _digests(path: Path, algorithms: set[str]) -> dict[str, str]:
    """Hex digests of the file at ``path`` (one pass over it)."""
    hashers = {alg: hashlib.new(alg) for alg in sorted(algorithms)}
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            for h in hashers.values():
                h.update(block)
    return {alg: h.hexdigest() for alg, h in hashers.items()}


def _check_source(url: object, target: Path) -> None:
    if not isinstance(url, str) or urlsplit(url).scheme.lower() not in ("http", "https"):
        msg = (f"fetch downloads http:// or https:// URLs, got {url!r} (to {str(target)!r}); "
               "a local file needs no download: open it directly")
        raise OptionError(msg)
    if target.is_dir():
        msg = (f"{str(target)!r} is a folder; fetch needs the path of the file to write, "
               f"e.g. {str(target / url.rsplit('/', 1)[-1].split('?', 1)[0])!r}")
        raise OptionError(msg)
    if target.parent.exists() and not target.parent.is_dir():
        msg = f"{str(target.parent)!r} is a file, not a folder; cannot download {url!r} into it"
        raise OptionError(msg)


def fetch(
    url: str,
    path: str | os.PathLike[str],
    *,
    known_hash: str | None = None,
    progress: bool = True,
    timeout: float | tuple[float, float] | None = None,
    max_attempts: int | None = None,
) -> Path:
    """Download ``url`` to ``path`` with resume, a checksum, a lock and an atomic rename.

    The bytes go to ``<path>.part``; an interrupted download resumes from there on the
    next call, but only when the server confirms that it still serves the same file
    (``If-Range`` with the ``ETag`` / ``Last-Modified`` first seen, the total size in
    ``Content-Range`` and the last byte already held); otherwise, and from a server without
    range requests, it starts again from zero.  Only a complete download whose digest
    matches ``known_hash`` (when given) is renamed to ``path``; its digests, size and
    modification time are written next to it as ``<path>.sha256``.

    An existing ``path`` whose digest matches is returned without downloading.  The recorded
    digest is trusted only while the file's size and modification time are those recorded,
    and only when it agrees with ``known_hash``: otherwise the file is hashed.  An existing
    file is never deleted: one that this function did not write, or a good download of ours
    whose digest is not ``known_hash``, raises (both digests named); a download of ours
    damaged since is replaced only by a new, verified one.

    Calls for the same ``path`` at once (threads or processes) download it once: the others
    wait on a lock (``<path>.lock``, removed afterwards), then find the file done.  Dropped
    connections, refused connections and HTTP 5xx answers are tried again (``max_attempts``
    in all, waiting :func:`ophys_xr.remote.backoff` seconds in between).

    Parameters
    ----------
    url
        What to download (``http://`` or ``https://``).
    path
        The file to write (not a folder).
    known_hash
        Expected digest, ``"alg:hex"`` with alg ``md5``, ``sha1``, ``sha256``, ``sha512`` or
        ``blake2b`` (e.g. the AllenSDK manifests' ``file_hash``, ``"blake2b:<hex>"``); plain
        hex is SHA-256.
    progress
        Show a progress bar.
    timeout
        Seconds to wait for a connection and between received bytes: one number for both,
        or a ``(connect, read)`` pair (default :data:`ophys_xr.remote.CONNECT_TIMEOUT`,
        :data:`ophys_xr.remote.READ_TIMEOUT`).
    max_attempts
        Attempts of a download that fails in a way that may pass (default
        :data:`ophys_xr.remote.MAX_ATTEMPTS`); each resumes where the last stopped.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OptionError
        ``url`` is not an http(s) URL, ``path`` is a folder, ``known_hash`` is malformed.
    DownloadError
        The server refused, failed or stalled, or the digest differs (a bad download is
        deleted, an existing file never).
    """
    target = Path(os.fspath(path)).expanduser()
    _check_source(url, target)
    expected = _parse_hash(known_hash)
    limits = remote.timeouts(timeout)
    attempts = remote.MAX_ATTEMPTS if max_attempts is None else max_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        msg = f"max_attempts must be a positive int, got {max_attempts!r}"
        raise OptionError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    # one download of a file at a time, across processes: the others wait, then find it done
    with _locked(target.with_name(target.name + ".lock")):
        return _fetch_locked(url, target, expected, progress=progress, limits=limits,
                             attempts=attempts)


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the lock file ``lock`` (created, and removed afterwards).

    The lock is taken on the file that is at ``lock`` once it is held (a waiting process
    whose lock file was removed meanwhile tries again), so removing it is safe.  Without
    ``fcntl`` (Windows) or on a file system without locks nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    while True:
        with lock.open("ab") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            except OSError:  # a file system without locks (some network mounts)
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                yield
                return
            try:
                current = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                continue
            try:
                yield
            finally:
                lock.unlink()  # still holding the lock: waiters see it gone and retry
            return


def _fetch_locked(url: str, target: Path, expected: tuple[str, str] | None, *,
                  progress: bool, limits: tuple[float, float], attempts: int) -> Path:
    """:func:`fetch` once the lock is held."""
    sidecar = target.with_name(target.name + ".sha256")
    part = target.with_name(target.name + ".part")
    if target.exists() and (
            expected is None or _existing_matches(url, target, sidecar, expected)):
        return target
    _download(url, part, limits=limits, attempts=attempts, progress=progress)
    algorithms = {"sha256"} | ({expected[0]} if expected else set())
    digests = _digests(part, algorithms)
    if expected is not None and digests[expected[0]] != expected[1]:
        _remove_partial(part)
        msg = (
            f"the {expected[0]} digest of the download of {url!r} is {digests[expected[0]]}, "
            f"expected {expected[1]}. The bad download was deleted"
            + (f" ({str(target)!r} is kept as it was)" if target.exists() else "")
            + "; check known_hash, or try again later if the server sent a damaged copy."
        )
        raise DownloadError(msg)
    # the resumable partial file has a fixed name (the next call resumes it); once whole it
    # is renamed into place as every writer of the package does, and so is its checksum
    finish(part, target, overwrite=True)
    _info_path(part).unlink(missing_ok=True)
    _write_record(target, sidecar, digests)
    return target


def _existing_matches(url: str, target: Path, sidecar: Path,
                      expected: tuple[str, str]) -> bool:
    """Whether the existing ``target`` has the expected digest (never deletes it).

    True: it has.  False: it is a download of ours damaged since (download it again; it is
    replaced only by a verified copy).  Raises when it is a file we did not write, or our
    intact download whose digest is another than ``known_hash``.
    """
    alg, digest = expected
    record = _read_record(target, sidecar)
    if record.get(alg) == digest:
        return True  # the record describes the file as it is, and agrees
    digests = _digests(target, {alg, "sha256"})
    if digests[alg] == digest:
        _write_record(target, sidecar, digests)  # the record was stale or lacked alg
        return True
    if not sidecar.exists():
        msg = (
            f"{str(target)!r} exists, was not downloaded by ophys_xr and its {alg} digest is "
            f"{digests[alg]}, not {digest}; move it away (it is not deleted) and call again"
        )
        raise DownloadError(msg)
    recorded = _read_record(target, sidecar, check_stat=False)
    if recorded.get("sha256") == digests["sha256"]:
        msg = (
            f"{str(target)!r} is intact as downloaded from {url!r} but its {alg} digest is "
            f"{digests[alg]}, not known_hash {digest}; it is kept. Check known_hash; if the "
            "file on the server changed, delete the file and call again."
        )
        raise DownloadError(msg)
    return False


def _read_record(target: Path, sidecar: Path, *, check_stat: bool = True) -> dict[str, str]:
    """The digests recorded for ``target`` (``{alg: hex}``), if the record describes it.

    The record is ``"<sha256> <size> <mtime_ns> [alg:hex ...]"``; with ``check_stat`` a file
    whose size or modification time differs from the record (changed under the cache) has
    none.
    """
    try:
        fields = sidecar.read_text().split()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return {}
    if len(fields) < 3:
        return {}
    stat = target.stat()
    if check_stat and fields[1:3] != [str(stat.st_size), str(stat.st_mtime_ns)]:
        return {}
    out = {"sha256": fields[0]}
    for field in fields[3:]:
        alg, _, hexd = field.partition(":")
        out[alg] = hexd
    return out


def _write_record(target: Path, sidecar: Path, digests: dict[str, str]) -> None:
    stat = target.stat()
    others = " ".join(f"{alg}:{hexd}" for alg, hexd in sorted(digests.items())
                      if alg != "sha256")
    record = f"{digests['sha256']} {stat.st_size} {stat.st_mtime_ns} {others}".rstrip() + "\n"
    write_atomically(sidecar, lambda tmp: tmp.write_text(record), overwrite=True)


def _info_path(part: Path) -> Path:
    """What the partial file holds: URL, ETag, Last-Modified and total size (JSON)."""
    return part.with_name(part.name + ".json")


def _remove_partial(part: Path) -> None:
    part.unlink(missing_ok=True)
    _info_path(part).unlink(missing_ok=True)


class _Restart(Exception):
    """The partial file cannot be resumed: start again from zero."""


def _download(url: str, part: Path, *, limits: tuple[float, float], attempts: int,
              progress: bool) -> None:
    """Complete ``part`` from ``url``, retrying what may pass with a backoff."""
    connect, read = limits
    why = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(remote.backoff(attempt - 1))
        try:
            try:
                _transfer(url, part, limits, progress=progress, resume=True)
            except _Restart:
                _remove_partial(part)
                _transfer(url, part, limits, progress=progress, resume=False)
            return
        except urllib.error.HTTPError as err:
            why, transient = remote.status_failure(err.code, str(err.reason))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            why, transient = remote.describe_failure(url, err, read, connect)
        if not transient:
            msg = f"cannot download {url!r}: {why}"
            raise DownloadError(msg)
    msg = (
        f"downloading {url!r} failed {attempts} times ({why}); the partial file "
        f"{str(part)!r} is kept and the next call resumes it"
    )
    raise DownloadError(msg)


def _transfer(url: str, part: Path, limits: tuple[float, float], *, progress: bool,
              resume: bool) -> None:
    """One request: resume ``part`` if the server confirms the same file, else write it anew.

    Raises
    ------
    _Restart
        The partial file is not a prefix of the file served now (or cannot be confirmed).
    """
    have = part.stat().st_size if resume and part.exists() else 0
    info: dict[str, Any] = {}
    if have:
        with contextlib.suppress(FileNotFoundError, ValueError):
            info = json.loads(_info_path(part).read_text())
        if info.get("url") != url or not isinstance(info.get("size"), int):
            raise _Restart  # a partial file we cannot vouch for
    headers = {}
    if have:
        headers["Range"] = f"bytes={have - 1}-"  # one byte held already: a check
        etag = info.get("etag")
        validator = etag if etag and not etag.startswith("W/") else info.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        response = remote.urlopen(urllib.request.Request(url, headers=headers), *limits)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the partial file is longer than the file served
            raise _Restart from err
        raise
    with response:
        total = _response_total(response, have, info)
        if total is None and have:
            raise _Restart  # another file, or no way to tell
        if have:
            with part.open("rb") as held:
                held.seek(have - 1)
                if response.read(1) != held.read(1):
                    raise _Restart
        else:
            record = {"url": url, "etag": response.headers.get("ETag"),
                      "last_modified": response.headers.get("Last-Modified"), "size": total}
            _info_path(part).write_text(json.dumps(record))
        _write_body(response, part, have=have, total=total, progress=progress)
    size = part.stat().st_size
    if total is not None and size != total:
        msg = f"the connection dropped after {size} of {total} bytes"
        raise http.client.IncompleteRead(b"", total - size) if size < total else _Restart(msg)


def _response_total(response: Any, have: int, info: dict[str, Any]) -> int | None:
    """The size of the file served; with ``have``, None unless a resumable 206 reply."""
    if have:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                             (response.headers.get("Content-Range") or "").strip())
        if response.status != 206 or match is None or int(match.group(1)) != have - 1 \
                or int(match.group(3)) != info["size"]:
            return None
        return int(match.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length is not None and response.status == 200 else None


def _write_body(response: Any, part: Path, *, have: int, total: int | None,
                progress: bool) -> None:
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
        Expected digest of the file, if known (``"alg:hex"``, see :func:`fetch`).
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
