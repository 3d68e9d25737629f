"""ophys_xr.datasets: experiment URLs and the download cache (local server only)."""

from __future__ import annotations

import hashlib

import pytest
from _http import serve

import ophys_xr
from ophys_xr import datasets


def test_experiment_url() -> None:
    url = datasets.experiment_url(882001003)
    assert url.endswith("/behavior_ophys_experiments/behavior_ophys_experiment_882001003.nwb")
    assert url.startswith("https://visual-behavior-ophys-data.s3-us-west-2.amazonaws.com/")
    with pytest.raises(ophys_xr.OptionError):
        datasets.experiment_url(-3)


def test_fetch_with_checksum_and_resume(tiny_path, tmp_path) -> None:
    expected = hashlib.sha256(tiny_path.read_bytes()).hexdigest()
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        server.stop_after = tiny_path.stat().st_size // 2  # drop the first connection midway
        path = datasets.fetch(url, tmp_path / "x.nwb", known_hash=f"sha256:{expected}",
                              progress=False)
        assert path.read_bytes() == tiny_path.read_bytes()
        assert (tmp_path / "x.nwb.sha256").read_text().split()[0] == expected
        assert not (tmp_path / "x.nwb.part").exists()
        sent = server.bytes_sent
        assert sent < 1.6 * tiny_path.stat().st_size  # resumed, not restarted
        datasets.fetch(url, path, known_hash=expected, progress=False)  # cached
        assert server.bytes_sent == sent


def test_fetch_bad_checksum(tiny_path, tmp_path) -> None:
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        with pytest.raises(datasets.DownloadError, match="expected 0000"):
            datasets.fetch(url, tmp_path / "x.nwb", known_hash="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_experiment_404(tmp_path, tiny_path) -> None:
    with serve(tiny_path.parent) as server, pytest.raises(datasets.DownloadError, match="404"):
        datasets.fetch_experiment(1, directory=tmp_path, base_url=server.url, progress=False)


def test_fetch_cache_stays_right_when_the_file_changes(tiny_path, tmp_path) -> None:
    expected = hashlib.sha256(tiny_path.read_bytes()).hexdigest()
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        path = datasets.fetch(url, tmp_path / "x.nwb", known_hash=expected, progress=False)
        sent = server.bytes_sent
        # damaged under the cache (same size, new bytes): hashed again, downloaded again
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
        again = datasets.fetch(url, path, known_hash=expected, progress=False)
        assert again.read_bytes() == tiny_path.read_bytes()
        assert server.bytes_sent > sent


def test_fetch_never_deletes_a_file_it_did_not_write(tiny_path, tmp_path) -> None:
    mine = tmp_path / "x.nwb"
    mine.write_bytes(b"the user's own file")
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        with pytest.raises(datasets.DownloadError, match="not deleted"):
            datasets.fetch(url, mine, known_hash="0" * 64, progress=False)
    assert mine.read_bytes() == b"the user's own file"


def test_fetch_twice_at_once_downloads_once(tiny_path, tmp_path) -> None:
    """Two fetches of one file at the same time (threads here; processes alike): one
    downloads, the other waits for it and finds the file done."""
    from concurrent.futures import ThreadPoolExecutor

    expected = hashlib.sha256(tiny_path.read_bytes()).hexdigest()
    size = tiny_path.stat().st_size
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"

        def one(_: int) -> object:
            return datasets.fetch(url, tmp_path / "x.nwb", known_hash=expected, progress=False)

        with ThreadPoolExecutor(max_workers=4) as pool:
            paths = list(pool.map(one, range(4)))
        assert server.bytes_sent < 1.5 * size
    assert {str(p) for p in paths} == {str(tmp_path / "x.nwb")}
    assert (tmp_path / "x.nwb").read_bytes() == tiny_path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nwb", "x.nwb.sha256"]


def test_fetch_on_a_file_system_without_locks(tiny_path, tmp_path, monkeypatch) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    expected = hashlib.sha256(tiny_path.read_bytes()).hexdigest()
    with serve(tiny_path.parent) as server:
        url = f"{server.url}/{tiny_path.name}"
        path = datasets.fetch(url, tmp_path / "x.nwb", known_hash=expected, progress=False)
    assert path.read_bytes() == tiny_path.read_bytes()
