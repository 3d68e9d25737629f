"""A local HTTP server with Range support that counts the bytes it sends (tests only).

Besides serving files it plays the faults of real servers, set as attributes of the
server object that :func:`serve` yields (each takes effect on the next request):

``stop_after = n``
    Drop the connection once, after n body bytes in all (then serve normally).
``drop_after = n``
    Drop every response after n body bytes of it (None: off).
``stall_after = n``
    Stop sending after n body bytes of each response and hold the connection open for
    ``stall_seconds`` (default 5 s; ended early when the server shuts down), then drop it.
``statuses = [500, 503, ...]``
    Answer the next requests with these statuses, one each, then serve normally.
``ranges = False``
    Ignore ``Range`` (answer 200 with the whole file, no ``Accept-Ranges``).
``etag = False``
    Send no ``ETag`` / ``Last-Modified`` (and ignore ``If-Range``); by default both are
    sent, derived from the file's size and modification time, and ``If-Range`` is honoured.
``range_offset = n``
    Answer a range request with the bytes n further on (``Content-Range`` says so).
``truncate_to = n``
    Serve every file as if it held only its first n bytes.

``server.requests`` lists what was asked: ``(time, method, path, headers)`` tuples.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _validators(self, path: Path) -> dict[str, str]:
        if not self.server.etag:
            return {}
        stat = path.stat()
        return {
            "ETag": f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"',
            "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
        }

    def _status_fault(self) -> bool:
        if not self.server.statuses:
            return False
        code = self.server.statuses.pop(0)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def _record(self) -> None:
        self.server.requests.append(
            (time.monotonic(), self.command, self.path, dict(self.headers.items())))

    def do_GET(self) -> None:
        self._record()
        if self._status_fault():
            return
        path = Path(self.translate_path(self.path.split("?", 1)[0]))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        if self.server.truncate_to is not None:
            size = min(size, self.server.truncate_to)
        validators = self._validators(path)
        start, end = 0, size - 1
        wanted = self.headers.get("Range", "") if self.server.ranges else ""
        if_range = self.headers.get("If-Range")
        if wanted and if_range is not None and if_range not in validators.values():
            wanted = ""  # changed since: the whole file, as RFC 9110 says
        match = re.match(r"bytes=(\d*)-(\d*)", wanted)
        if match:
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else size - 1
            else:
                start = size - int(match.group(2))
            end = min(end, size - 1)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            shift = min(self.server.range_offset, size - 1 - end)
            start, end = start + shift, end + shift
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        length = end - start + 1
        self.send_header("Content-Length", str(length))
        if self.server.ranges:
            self.send_header("Accept-Ranges", "bytes")
        for name, value in validators.items():
            self.send_header(name, value)
        self.end_headers()
        self._body(path, start, length)

    def _body(self, path: Path, start: int, length: int) -> None:
        server = self.server
        sent_here = 0
        with path.open("rb") as f:
            f.seek(start)
            remaining = length
            while remaining:
                block = f.read(min(remaining, 1 << 14))
                limit = server.stop_after
                if limit is not None and server.bytes_sent + len(block) > limit:
                    server.stop_after = None  # fail once, then serve normally
                    self._drop()
                    return
                if server.drop_after is not None and sent_here + len(block) > server.drop_after:
                    self._drop()
                    return
                if server.stall_after is not None and sent_here + len(block) > server.stall_after:
                    self.wfile.flush()
                    server.stopping.wait(server.stall_seconds)
                    self._drop()
                    return
                self.wfile.write(block)
                server.bytes_sent += len(block)
                sent_here += len(block)
                remaining -= len(block)

    def _drop(self) -> None:
        self.wfile.flush()
        self.close_connection = True

    def do_HEAD(self) -> None:
        self._record()
        if self._status_fault():
            return
        path = Path(self.translate_path(self.path.split("?", 1)[0]))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        if self.server.truncate_to is not None:
            size = min(size, self.server.truncate_to)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        if self.server.ranges:
            self.send_header("Accept-Ranges", "bytes")
        for name, value in self._validators(path).items():
            self.send_header(name, value)
        self.end_headers()


@contextlib.contextmanager
def serve(directory: os.PathLike[str] | str) -> Iterator[Any]:
    """Serve ``directory`` on 127.0.0.1 (a free port); yields the server.

    ``server.url`` is the base URL, ``server.bytes_sent`` counts body bytes sent, and
    setting ``server.stop_after = n`` drops the connection once after n bytes; the other
    faults are listed in this module's docstring.
    """

    def handler(*args: Any, **kwargs: Any) -> _Handler:
        return _Handler(*args, directory=str(directory), **kwargs)

    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.bytes_sent = 0
    server.stop_after = None
    server.drop_after = None
    server.stall_after = None
    server.stall_seconds = 5.0
    server.statuses = []
    server.ranges = True
    server.etag = True
    server.range_offset = 0
    server.truncate_to = None
    server.requests = []
    server.stopping = threading.Event()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
