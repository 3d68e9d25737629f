"""Promises of reading a session over HTTP (``open_session(url)``), against a loopback server.

- A server that stalls is reported as a stall (``RemoteReadError`` naming the URL and the
  timeout) within the read timeout, not after minutes; the connect and read timeouts have
  defaults (``ophys_xr.remote``) and are set with ``storage_options={"timeout": ...}``.
- A connection dropped mid-body and HTTP 5xx answers are retried with exponential backoff;
  a failure that persists is named: HTTP 500, not found (404), connection refused and an
  unknown host are told apart.
- A server without range requests gives a named error that says to download the file first
  (``ophys_xr.datasets.fetch``).
- A truncated remote file, a file changed on the server after opening and a reply with
  other bytes than the range asked for give named errors, never an h5py traceback or
  wrong data.
"""

from __future__ import annotations

import itertools
import socket
import time

import numpy as np
import pytest
from _http import serve

import ophys_xr
from ophys_xr import remote


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "BACKOFF_BASE", 0.05)


@pytest.fixture(scope="module")
def local_dff(tiny_path) -> np.ndarray:
    with ophys_xr.open_session(tiny_path) as ds:
        return ds.dff.values


def _gaps(server, method: str = "GET") -> list[float]:
    times = [t for t, m, _, _ in server.requests if m == method]
    return [b - a for a, b in itertools.pairwise(times)]


def test_a_stall_mid_body_is_reported_as_a_stall_within_the_read_timeout(tiny_path) -> None:
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        with ophys_xr.open_session(url, storage_options={"timeout": (2, 0.5)}) as ds:
            server.stall_after = 1000
            start = time.monotonic()
            with pytest.raises(ophys_xr.RemoteReadError, match=r"stalled.* 0\.5 s") as info:
                ds.dff.values  # noqa: B018
            assert time.monotonic() - start < 4
            assert url in str(info.value)


def test_the_default_read_timeout_applies_without_storage_options(tiny_path,
                                                                 monkeypatch) -> None:
    monkeypatch.setattr(remote, "READ_TIMEOUT", 0.4)
    with serve(tiny_path.parent) as server:
        server.stall_after = 0
        start = time.monotonic()
        with pytest.raises(ophys_xr.RemoteReadError, match=r"stalled.*0\.4 s"):
            ophys_xr.open_session(f"{server.url}/{tiny_path.name}")
        assert time.monotonic() - start < 4


def test_a_bad_timeout_is_an_option_error(tiny_path) -> None:
    with serve(tiny_path.parent) as server, pytest.raises(ophys_xr.OptionError, match="timeout"):
        ophys_xr.open_session(f"{server.url}/{tiny_path.name}", storage_options={"timeout": -1})


def test_storage_options_for_a_local_path_are_an_option_error(tiny_path) -> None:
    with pytest.raises(ophys_xr.OptionError, match="storage_options"):
        ophys_xr.open_session(tiny_path, storage_options={"timeout": 3})


def test_a_connection_dropped_mid_body_is_retried(tiny_path, local_dff, fast_backoff) -> None:
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        with ophys_xr.open_session(url) as ds:
            server.stop_after = server.bytes_sent + 100_000  # the next read drops once
            np.testing.assert_array_equal(ds.dff.values, local_dff)
        assert server.stop_after is None  # the drop happened


def test_server_errors_are_retried_with_exponential_backoff(tiny_path, local_dff,
                                                           fast_backoff) -> None:
    with serve(tiny_path.parent) as server:
        server.statuses = [500, 503, 502]
        with ophys_xr.open_session(f"{server.url}/{tiny_path.name}") as ds:
            np.testing.assert_array_equal(ds.dff.values, local_dff)
        gaps = _gaps(server)[:3]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1
    assert gaps[2] >= 0.2


def test_a_persistent_500_is_named_as_a_server_error_not_as_not_found(tiny_path,
                                                                      fast_backoff) -> None:
    with serve(tiny_path.parent) as server:
        server.statuses = [500] * 50
        with pytest.raises(ophys_xr.RemoteReadError, match="HTTP 500") as info:
            ophys_xr.open_session(f"{server.url}/{tiny_path.name}")
    assert not isinstance(info.value, FileNotFoundError)
    assert f"{remote.MAX_ATTEMPTS} times" in str(info.value)


def test_a_missing_file_is_not_found(tiny_path) -> None:
    with serve(tiny_path.parent) as server, pytest.raises(ophys_xr.SessionFileNotFoundError,
                                                          match="404"):
        ophys_xr.open_session(f"{server.url}/missing.nwb")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_named_as_refused(fast_backoff) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/x.nwb"
    with pytest.raises(ophys_xr.RemoteReadError, match="refused the connection") as info:
        ophys_xr.open_session(url)
    assert not isinstance(info.value, FileNotFoundError)


def test_an_unknown_host_is_named_as_such() -> None:
    with pytest.raises(ophys_xr.RemoteReadError, match="cannot be resolved") as info:
        ophys_xr.open_session("http://no-such-host.invalid/x.nwb")
    assert not isinstance(info.value, FileNotFoundError)


def test_a_server_without_range_requests_says_to_download_first(tiny_path) -> None:
    with serve(tiny_path.parent) as server:
        server.ranges = False
        with pytest.raises(ophys_xr.RemoteReadError,
                           match=r"does not support range requests.*datasets\.fetch"):
            ophys_xr.open_session(f"{server.url}/{tiny_path.name}")


def test_a_truncated_remote_file_is_a_named_error(tiny_path) -> None:
    with serve(tiny_path.parent) as server:
        server.truncate_to = tiny_path.stat().st_size // 2
        with pytest.raises(ophys_xr.InvalidSessionFileError, match="truncated"):
            ophys_xr.open_session(f"{server.url}/{tiny_path.name}")


def test_a_file_truncated_on_the_server_after_opening_is_a_named_error(tiny_path) -> None:
    with serve(tiny_path.parent) as server, \
            ophys_xr.open_session(f"{server.url}/{tiny_path.name}") as ds:
        server.truncate_to = tiny_path.stat().st_size // 2
        with pytest.raises(ophys_xr.OphysXrError, match="truncated"):
            ds.dff.values  # noqa: B018


def test_wrong_bytes_for_a_range_are_a_named_error(tiny_path) -> None:
    with serve(tiny_path.parent) as server, \
            ophys_xr.open_session(f"{server.url}/{tiny_path.name}") as ds:
        server.range_offset = 8
        with pytest.raises(ophys_xr.RemoteReadError, match="it sent bytes"):
            ds.dff.values  # noqa: B018


def test_a_range_reply_is_checked(tiny_path) -> None:
    """The check itself: a reply for other bytes, of a file of another size or ETag."""
    from ophys_xr.remote import _check_reply

    url = "http://h/x.nwb"
    ok = {"Content-Range": "bytes 10-19/100", "ETag": '"a"'}
    assert _check_reply(url, 206, "", ok, 10, 20, size=100, etag='"a"') == (100, '"a"')
    with pytest.raises(ophys_xr.RemoteReadError, match="it sent bytes 11-20"):
        _check_reply(url, 206, "", {"Content-Range": "bytes 11-20/100"}, 10, 20, size=100,
                     etag=None)
    with pytest.raises(ophys_xr.RemoteReadError, match="changed on the server"):
        _check_reply(url, 206, "", {**ok, "ETag": '"b"'}, 10, 20, size=100, etag='"a"')
    with pytest.raises(ophys_xr.RemoteReadError, match="changed on the server"):
        _check_reply(url, 206, "", {"Content-Range": "bytes 10-19/90"}, 10, 20, size=100,
                     etag=None)
    with pytest.raises(ophys_xr.RemoteReadError, match="past the end"):
        _check_reply(url, 416, "", {}, 10, 20, size=100, etag=None)
