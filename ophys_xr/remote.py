"""Reading and downloading over HTTP: timeouts, retries with backoff, checked range replies.

Two users: :func:`ophys_xr.datasets.fetch` (whole files, through ``urllib``) and the NWB
reader's remote files (range requests through fsspec, :func:`open_remote`).  Both

- give up on a server that does not connect within the connect timeout, or stops sending for
  the read timeout (:data:`CONNECT_TIMEOUT`, :data:`READ_TIMEOUT`; a stall is reported as
  one, naming the URL and the timeout);
- try a dropped connection, a refused connection and an HTTP 5xx / 429 answer again, up to
  :data:`MAX_ATTEMPTS` times, waiting :func:`backoff` seconds in between (exponential,
  capped), then name the cause; "not found", "access denied", "refused" and "unknown host"
  are told apart;
- accept a range reply only when its ``Content-Range`` is the range asked for, of a file of
  the size (and ``ETag``) first seen.

The module constants are read at each call, so tests (or a user) may change them.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ophys_xr.exceptions import OptionError, RemoteReadError, SessionFileNotFoundError

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "CONNECT_TIMEOUT",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT",
    "HashableOptions",
    "backoff",
    "describe_failure",
    "open_remote",
    "timeouts",
    "urlopen",
]

#: Seconds to wait for a connection to the server.
CONNECT_TIMEOUT = 10.0
#: Seconds without a byte from the server before a transfer counts as stalled.
READ_TIMEOUT = 30.0
#: Attempts of one request when the failure may pass (dropped connection, HTTP 5xx).
MAX_ATTEMPTS = 4
#: First wait between attempts, in seconds; it doubles each time, up to :data:`BACKOFF_MAX`.
BACKOFF_BASE = 0.5
#: Longest wait between attempts, in seconds.
BACKOFF_MAX = 8.0

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_NOT_FOUND_STATUS = frozenset({404, 410})
_DENIED_STATUS = frozenset({401, 403})


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2.0**attempt))


def timeouts(value: Any = None) -> tuple[float, float]:
    """``(connect, read)`` timeouts in seconds from a user's ``timeout``.

    Parameters
    ----------
    value
        None (the defaults :data:`CONNECT_TIMEOUT`, :data:`READ_TIMEOUT`), one number (both)
        or a ``(connect, read)`` pair.

    Returns
    -------
    tuple of float
    """
    if value is None:
        pair: tuple[Any, ...] = (CONNECT_TIMEOUT, READ_TIMEOUT)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, tuple | list) and len(value) == 2:
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and t > 0 for t in pair):
        msg = (f"timeout must be a positive number of seconds or a (connect, read) pair of them, "
               f"got {value!r}")
        raise OptionError(msg)
    return float(pair[0]), float(pair[1])


class HashableOptions(dict[str, Any]):
    """fsspec ``storage_options`` that can be part of a file manager's cache key."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(repr(sorted(self.items(), key=lambda item: item[0])))


# --------------------------------------------------------------------------------------
# what went wrong, in words


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def describe_failure(url: str, err: BaseException, read_timeout: float,
                     connect_timeout: float) -> tuple[str, bool]:
    """What ``err`` (raised while talking to the server of ``url``) means, in words.

    Returns
    -------
    text, transient
        A clause for a message, and whether another attempt may succeed.
    """
    cause: BaseException = err
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError) \
            and isinstance(err.reason, BaseException):
        cause = err.reason
    os_error = getattr(cause, "os_error", None)  # aiohttp's ClientConnectorError
    if isinstance(os_error, BaseException):
        cause = os_error
    name = type(cause).__name__
    if isinstance(cause, socket.gaierror) or name == "ClientConnectorDNSError":
        text = (f"the host name of {_host(url)!r} cannot be resolved (check the URL and "
                "your network / DNS)")
        return text, False
    if isinstance(cause, ConnectionRefusedError):
        return f"{_host(url)} refused the connection (is the server up and the port right?)", True
    if isinstance(cause, TimeoutError):
        # aiohttp names a connect timeout; urllib wraps one in a URLError, a stall not
        connecting = name == "ConnectionTimeoutError" or (
            cause is not err and not isinstance(err, TimeoutError))
        if connecting:
            text = (f"no connection to {_host(url)} within {connect_timeout:g} s (the connect "
                    "timeout)")
        else:
            text = (f"the transfer stalled: the server sent nothing for {read_timeout:g} s (the "
                    "read timeout)")
        return text, True
    if isinstance(cause, http.client.IncompleteRead | ConnectionResetError | BrokenPipeError
                  | http.client.RemoteDisconnected) or name in (
                      "ClientPayloadError", "ServerDisconnectedError", "ContentLengthError"):
        return "the connection dropped in the middle of the transfer", True
    return f"{name}: {cause}", True


def stall_message(url: str, text: str) -> str:
    """The one-line message of a timeout on ``url``, with what to do."""
    return (f"{url!r}: {text}; try again later, or allow more time with "
            "storage_options={'timeout': (connect_s, read_s)} (timeout=... for fetch)")


def status_failure(status: int, reason: str) -> tuple[str, bool]:
    """An HTTP error status in words, and whether another attempt may succeed."""
    if status in _NOT_FOUND_STATUS:
        return f"the server answered HTTP {status} {reason} (not found); check the URL", False
    if status in _DENIED_STATUS:
        return (f"the server answered HTTP {status} {reason} (access denied); check the URL "
                "and your credentials"), False
    return f"the server answered HTTP {status} {reason}", status in _TRANSIENT_STATUS


# --------------------------------------------------------------------------------------
# urllib with a connect and a read timeout (fetch)


class _TimedHTTPConnection(http.client.HTTPConnection):
    read_timeout = READ_TIMEOUT

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TimedHTTPSConnection(http.client.HTTPSConnection):
    read_timeout = READ_TIMEOUT

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


def urlopen(request: urllib.request.Request, connect_timeout: float,
            read_timeout: float) -> Any:
    """``urllib.request.urlopen`` with a connect timeout and a (per read) read timeout."""

    class Conn(_TimedHTTPConnection):
        pass

    class SConn(_TimedHTTPSConnection):
        pass

    Conn.read_timeout = SConn.read_timeout = read_timeout

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(Conn, req)

    class SHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(SConn, req)

    opener = urllib.request.build_opener(Handler, SHandler)
    return opener.open(request, timeout=connect_timeout)


# --------------------------------------------------------------------------------------
# remote files for h5py (fsspec)


def _fsspec_options(protocol: str, options: dict[str, Any],
                    limits: tuple[float, float]) -> dict[str, Any]:
    """fsspec options with the timeouts put where the protocol's file system reads them."""
    out = dict(options)
    connect, read = limits
    if protocol in ("s3", "s3a"):
        config = dict(out.get("config_kwargs") or {})
        config.setdefault("connect_timeout", connect)
        config.setdefault("read_timeout", read)
        out["config_kwargs"] = config
    return out


def open_remote(url: str, storage_options: Mapping[str, Any] | None = None, *,
                block_size: int) -> Any:
    """A seekable, read-only file object of ``url`` for h5py.

    HTTP(S) files are read with checked range requests (see the module docstring); other
    fsspec protocols (``s3://``, ...) through their file system, the timeouts passed on
    where the protocol takes them.

    Parameters
    ----------
    url
        The file.
    storage_options
        fsspec options of the file system; ``timeout`` (seconds, or a ``(connect, read)``
        pair) sets the timeouts.
    block_size
        Bytes fetched per request (blocks are cached).

    Raises
    ------
    SessionFileNotFoundError
        The server has no such file.
    RemoteReadError
        The server cannot be reached, stalls, fails, or does not support range requests.
    """
    import fsspec

    options = dict(storage_options or {})
    limits = timeouts(options.pop("timeout", None))
    protocol = urlsplit(url).scheme.lower()
    if protocol not in ("http", "https"):
        fs, fs_path = fsspec.core.url_to_fs(url, **_fsspec_options(protocol, options, limits))
        return fs.open(fs_path, "rb", block_size=block_size, cache_type="blockcache")
    from fsspec.asyn import sync

    fs = fsspec.filesystem(protocol, **options)
    size, etag = sync(fs.loop, _probe, fs, url, fs.kwargs, limits)
    return _checked_http_file(fs, url, size=size, etag=etag, limits=limits,
                              block_size=block_size)


def _checked_http_file(fs: Any, url: str, *, size: int, etag: str | None,
                       limits: tuple[float, float], block_size: int) -> Any:
    from fsspec.asyn import sync_wrapper
    from fsspec.implementations.http import HTTPFile

    class CheckedHTTPFile(HTTPFile):
        """fsspec's HTTP file, each range reply checked and retried."""

        async def async_fetch_range(self, start: int, end: int) -> bytes:
            return await _get_range(self.fs, self.url, start, min(end, size), self.kwargs,
                                    limits, size=size, etag=etag)

        _fetch_range = sync_wrapper(async_fetch_range)

    return CheckedHTTPFile(fs, url, session=None, block_size=block_size, mode="rb",
                           cache_type="blockcache", size=size, loop=fs.loop, **fs.kwargs)


async def _probe(fs: Any, url: str, kwargs: dict[str, Any],
                 limits: tuple[float, float]) -> tuple[int, str | None]:
    """The size and ETag of ``url``, from a checked request of its first bytes."""
    _, size, etag = await _request(fs, url, 0, 8, kwargs, limits, size=None, etag=None)
    return size, etag


async def _get_range(fs: Any, url: str, start: int, end: int, kwargs: dict[str, Any],
                     limits: tuple[float, float], *, size: int, etag: str | None) -> bytes:
    if end <= start:
        return b""
    body, _, _ = await _request(fs, url, start, end, kwargs, limits, size=size, etag=etag)
    return body


class _Retry(Exception):
    """A failure that another attempt may not meet."""


async def _request(fs: Any, url: str, start: int, end: int, kwargs: dict[str, Any],
                   limits: tuple[float, float], *, size: int | None,
                   etag: str | None) -> tuple[bytes, int, str | None]:
    """Bytes ``start:end`` of ``url`` (a short file gives fewer), its size and ETag.

    Retries what may pass with :func:`backoff`; raises a named error otherwise.
    """
    import aiohttp

    connect, read = limits
    session = await fs.set_session()
    options = dict(kwargs)
    headers = dict(options.pop("headers", None) or {})
    headers["Range"] = f"bytes={start}-{end - 1}"
    options["timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
    attempts = max(1, int(MAX_ATTEMPTS))
    why = ""
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(backoff(attempt - 1))
        try:
            async with session.get(fs.encode_url(url), headers=headers, **options) as r:
                total, tag = _check_reply(url, r.status, r.reason or "", r.headers, start, end,
                                          size=size, etag=etag)
                body = await r.read()
        except _Retry as err:
            why = str(err)
            continue
        except (aiohttp.ClientError, OSError) as err:
            if isinstance(err, RemoteReadError | SessionFileNotFoundError):
                raise
            why, transient = describe_failure(url, err, read, connect)
            if isinstance(err, TimeoutError):
                raise RemoteReadError(stall_message(url, why)) from err
            if not transient:
                msg = f"cannot read {url!r}: {why}"
                raise RemoteReadError(msg) from err
            continue
        wanted = min(end, total) - start
        if len(body) != wanted:
            why = f"the connection dropped after {len(body)} of {wanted} bytes"
            continue
        return body, total, tag
    msg = (f"reading {url!r} failed {attempts} times ({why}); the server may be down or "
           "overloaded: try again later")
    raise RemoteReadError(msg)


def _check_reply(url: str, status: int, reason: str, headers: Mapping[str, str], start: int,
                 end: int, *, size: int | None, etag: str | None) -> tuple[int, str | None]:
    """Check the reply to a request of bytes ``start:end``; its file size and ETag."""
    if status == 200:
        msg = (f"{url!r}: the server does not support range requests (it answered a request "
               "for a few bytes with the whole file), so the file cannot be read remotely; "
               "download it first with ophys_xr.datasets.fetch(url, path) and open the "
               "local file")
        raise RemoteReadError(msg)
    if status == 416 and size is not None:
        msg = (f"{url!r}: bytes {start}-{end - 1} are past the end of the file on the server "
               f"(HTTP 416), which had {size} bytes when opened: it was truncated or replaced "
               "since; open it again")
        raise RemoteReadError(msg)
    if status != 206:
        text, transient = status_failure(status, reason)
        if transient:
            raise _Retry(text)
        if status in _NOT_FOUND_STATUS:
            msg = f"No such session file: {url!r} ({text})."
            raise SessionFileNotFoundError(msg)
        msg = f"cannot read {url!r}: {text}"
        raise RemoteReadError(msg)
    match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    total = int(match.group(3)) if match and match.group(3) != "*" else size
    if match is None or total is None:
        msg = (f"{url!r}: the server's reply to a range request has no usable Content-Range "
               f"({headers.get('Content-Range')!r}); download the file with "
               "ophys_xr.datasets.fetch(url, path) and open the local file")
        raise RemoteReadError(msg)
    tag = headers.get("ETag")
    if (size is not None and total != size) or (etag is not None and tag != etag):
        msg = (f"{url!r} changed on the server since it was opened (size {size} -> {total}, "
               f"ETag {etag} -> {tag}); open it again")
        raise RemoteReadError(msg)
    first, last = int(match.group(1)), int(match.group(2))
    if first != start or last != min(end, total) - 1:
        msg = (f"{url!r}: asked the server for bytes {start}-{min(end, total) - 1}, it sent "
               f"bytes {first}-{last} (a faulty server or proxy); these bytes cannot be used: "
               "try again, or download the file with ophys_xr.datasets.fetch(url, path)")
        raise RemoteReadError(msg)
    return total, tag
