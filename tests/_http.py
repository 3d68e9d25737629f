"""A local HTTP server with Range support that counts the bytes it sends (tests only)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        match = re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
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
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        length = end - start + 1
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        limit = self.server.stop_after
        with path.open("rb") as f:
            f.seek(start)
            remaining = length
            while remaining:
                block = f.read(min(remaining, 1 << 16))
                if limit is not None and self.server.bytes_sent + len(block) > limit:
                    self.server.stop_after = None  # fail once, then serve normally
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(block)
                self.server.bytes_sent += len(block)
                remaining -= len(block)

    def do_HEAD(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()


@contextlib.contextmanager
def serve(directory: os.PathLike[str] | str) -> Iterator[Any]:
    """Serve ``directory`` on 127.0.0.1 (a free port); yields the server.

    ``server.url`` is the base URL, ``server.bytes_sent`` counts body bytes sent, and
    setting ``server.stop_after = n`` drops the connection once after n bytes.
    """

    def handler(*args: Any, **kwargs: Any) -> _Handler:
        return _Handler(*args, directory=str(directory), **kwargs)

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.bytes_sent = 0  # type: ignore[attr-defined]
    server.stop_after = None  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
