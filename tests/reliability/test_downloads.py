"""Promises of the download cache ``ophys_xr.datasets.fetch``, against a loopback server.

- ``known_hash`` is ``alg:hex`` with md5, sha256 or blake2b (the AllenSDK manifests' file
  hash), plain hex being SHA-256; a malformed one is an ``OptionError``.
- An existing file is never deleted: a wrong ``known_hash`` on a good download raises,
  naming both digests; the ``.sha256`` record is not trusted over ``known_hash`` when they
  disagree (the file is hashed).
- A partial download is resumed only when the server confirms the same file (``If-Range``
  with its ``ETag``, the total size in ``Content-Range``, the last byte held); a partial
  file of other bytes, larger than the file, or of a file changed since is started again,
  never accepted (a 416 is not "complete"); a server without range requests restarts it.
- N processes fetching one URL to one path download it once and all return the complete,
  verified file.
- A stalled transfer is reported as a stall after the read timeout; dropped connections and
  HTTP 5xx are retried with exponential backoff; 500, 404, refused and unknown host are
  told apart.
- ``fetch`` into a folder, or of something that is not an http(s) URL, is an
  ``OptionError`` naming it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _http import serve

import ophys_xr
from ophys_xr import datasets, remote


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "BACKOFF_BASE", 0.05)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A served file of 1.5 MB that tests may change."""
    folder = tmp_path / "served"
    folder.mkdir()
    path = folder / "x.nwb"
    path.write_bytes(os.urandom(1_500_000))
    return path


def _fetch(url: str, path: Path, **kwargs) -> Path:
    return datasets.fetch(url, path, progress=False, **kwargs)


@pytest.mark.parametrize("alg", ["md5", "sha256", "blake2b", "plain"])
def test_known_hash_accepts_md5_sha256_and_blake2b(source, tmp_path, alg) -> None:
    data = source.read_bytes()
    digest = hashlib.new("sha256" if alg == "plain" else alg, data).hexdigest()
    known = digest if alg == "plain" else f"{alg}:{digest}"
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        path = _fetch(url, tmp_path / "out.nwb", known_hash=known)
        assert path.read_bytes() == data
        sent = server.bytes_sent
        assert _fetch(url, path, known_hash=known) == path  # cached, not downloaded again
        assert server.bytes_sent == sent


def test_a_manifest_blake2b_hash_is_checked(source, tmp_path) -> None:
    """AllenSDK ``file_hash_from_path``: ``hashlib.blake2b()`` of the file bytes."""
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        with pytest.raises(ophys_xr.DownloadError, match="blake2b digest"):
            _fetch(url, tmp_path / "out.nwb", known_hash="blake2b:" + "0" * 128)
    assert not (tmp_path / "out.nwb").exists()


@pytest.mark.parametrize("bad", ["sha256:zz", "crc32:1234", "abc", "md5:" + "0" * 64])
def test_a_malformed_known_hash_is_an_option_error(source, tmp_path, bad) -> None:
    with pytest.raises(ophys_xr.OptionError, match="known_hash"):
        _fetch("http://127.0.0.1:9/x.nwb", tmp_path / "out.nwb", known_hash=bad)


def test_a_wrong_known_hash_never_deletes_a_good_download(source, tmp_path) -> None:
    data = source.read_bytes()
    good = hashlib.sha256(data).hexdigest()
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        path = _fetch(url, tmp_path / "out.nwb", known_hash=good)
        with pytest.raises(ophys_xr.DownloadError) as info:
            _fetch(url, path, known_hash="sha256:" + "1" * 64)
    assert path.read_bytes() == data
    message = str(info.value)
    assert good in message
    assert "1" * 64 in message
    assert "kept" in message


def test_the_record_is_not_trusted_over_known_hash(source, tmp_path) -> None:
    data = source.read_bytes()
    good = hashlib.sha256(data).hexdigest()
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        path = _fetch(url, tmp_path / "out.nwb", known_hash=good)
        record = tmp_path / "out.nwb.sha256"
        fields = record.read_text().split()
        record.write_text(" ".join(["2" * 64, *fields[1:]]) + "\n")  # a record that lies
        sent = server.bytes_sent
        assert _fetch(url, path, known_hash=good) == path  # hashed: it is the right file
        assert server.bytes_sent == sent
    assert path.read_bytes() == data
    assert record.read_text().split()[0] == good


def _interrupted(url: str, path: Path, server, after: int) -> None:
    """Leave a partial download of ``after`` bytes at ``path``.part."""
    server.drop_after = after
    with pytest.raises(ophys_xr.DownloadError, match="failed"):
        _fetch(url, path, max_attempts=1)
    server.drop_after = None
    assert path.with_name(path.name + ".part").exists()


def test_a_partial_download_resumes_with_if_range(source, tmp_path) -> None:
    data = source.read_bytes()
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        _interrupted(url, tmp_path / "out.nwb", server, 600_000)
        before = server.bytes_sent
        path = _fetch(url, tmp_path / "out.nwb", known_hash=hashlib.sha256(data).hexdigest())
        assert server.bytes_sent - before < len(data) - 500_000  # resumed
        last = server.requests[-1][3]
    assert "If-Range" in last
    assert path.read_bytes() == data


def test_a_partial_download_of_a_file_changed_since_starts_again(source, tmp_path) -> None:
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        _interrupted(url, tmp_path / "out.nwb", server, 600_000)
        new = os.urandom(len(source.read_bytes()))
        source.write_bytes(new)  # same size, other bytes and ETag
        path = _fetch(url, tmp_path / "out.nwb")
    assert path.read_bytes() == new


def test_a_partial_file_of_other_bytes_is_not_resumed(source, tmp_path) -> None:
    (tmp_path / "out.nwb.part").write_bytes(os.urandom(700_000))  # not from this server
    with serve(source.parent) as server:
        path = _fetch(f"{server.url}/x.nwb", tmp_path / "out.nwb")
    assert path.read_bytes() == source.read_bytes()


def test_a_partial_file_larger_than_the_remote_is_not_complete(source, tmp_path) -> None:
    data = source.read_bytes()
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        _interrupted(url, tmp_path / "out.nwb", server, 600_000)
        part = tmp_path / "out.nwb.part"
        part.write_bytes(data + b"garbage beyond the end")  # same origin, too long
        path = _fetch(url, tmp_path / "out.nwb")
    assert path.read_bytes() == data


def test_a_server_without_range_requests_restarts_from_zero(source, tmp_path) -> None:
    data = source.read_bytes()
    with serve(source.parent) as server:
        url = f"{server.url}/x.nwb"
        _interrupted(url, tmp_path / "out.nwb", server, 600_000)
        server.ranges = False
        path = _fetch(url, tmp_path / "out.nwb", known_hash=hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data


def test_concurrent_processes_download_once_and_all_get_the_verified_file(tmp_path) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    data = os.urandom(6_000_000)
    (folder / "x.nwb").write_bytes(data)
    known = "blake2b:" + hashlib.blake2b(data).hexdigest()
    out = tmp_path / "cache" / "x.nwb"
    code = textwrap.dedent("""
        import sys
        from ophys_xr import datasets
        path = datasets.fetch(sys.argv[1], sys.argv[2], known_hash=sys.argv[3], progress=False)
        print(path)
    """)
    with serve(folder) as server:
        url = f"{server.url}/x.nwb"
        procs = [subprocess.Popen([sys.executable, "-c", code, url, str(out), known],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        results = [p.communicate(timeout=120) for p in procs]
        sent = server.bytes_sent
    for p, (stdout, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, stderr
        assert stdout.strip() == str(out)
    assert out.read_bytes() == data
    assert sent < 1.5 * len(data)  # one download
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.nwb", "x.nwb.sha256"]


def test_a_stalled_download_is_reported_as_a_stall(source, tmp_path) -> None:
    with serve(source.parent) as server:
        server.stall_after = 10_000
        start = time.monotonic()
        with pytest.raises(ophys_xr.DownloadError, match=r"stalled.* 0\.3 s"):
            _fetch(f"{server.url}/x.nwb", tmp_path / "out.nwb", timeout=(2, 0.3),
                   max_attempts=2)
        assert time.monotonic() - start < 4


def test_server_errors_are_retried_with_exponential_backoff(source, tmp_path,
                                                           fast_backoff) -> None:
    with serve(source.parent) as server:
        server.statuses = [500, 503, 500]
        path = _fetch(f"{server.url}/x.nwb", tmp_path / "out.nwb")
        times = [t for t, *_ in server.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1
    assert gaps[2] >= 0.2
    assert path.read_bytes() == source.read_bytes()


def test_a_persistent_500_is_named_after_the_attempts(source, tmp_path, fast_backoff) -> None:
    with serve(source.parent) as server:
        server.statuses = [500] * 50
        with pytest.raises(ophys_xr.DownloadError, match="failed 3 times.*HTTP 500"):
            _fetch(f"{server.url}/x.nwb", tmp_path / "out.nwb", max_attempts=3)
        assert len(server.requests) == 3


def test_a_missing_file_is_not_found_and_not_retried(source, tmp_path) -> None:
    with serve(source.parent) as server:
        with pytest.raises(ophys_xr.DownloadError, match="HTTP 404.*not found"):
            _fetch(f"{server.url}/missing.nwb", tmp_path / "out.nwb")
        assert len(server.requests) == 1


def test_a_refused_connection_is_named_as_refused(tmp_path, fast_backoff) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ophys_xr.DownloadError, match="refused the connection"):
        _fetch(f"http://127.0.0.1:{port}/x.nwb", tmp_path / "out.nwb", max_attempts=2)


def test_an_unknown_host_is_named_and_not_retried(tmp_path) -> None:
    with pytest.raises(ophys_xr.DownloadError, match="cannot be resolved"):
        _fetch("http://no-such-host.invalid/x.nwb", tmp_path / "out.nwb")


def test_fetch_into_a_folder_is_an_option_error(source, tmp_path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ophys_xr.OptionError, match="is a folder") as info:
        _fetch("http://127.0.0.1:9/x.nwb", folder)
    assert str(folder) in str(info.value)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("url", ["x.nwb", "/data/x.nwb", "file:///data/x.nwb", "ftp://h/x"])
def test_fetch_of_a_non_url_is_an_option_error(tmp_path, url) -> None:
    with pytest.raises(ophys_xr.OptionError, match="http") as info:
        _fetch(url, tmp_path / "out.nwb")
    assert url in str(info.value)
