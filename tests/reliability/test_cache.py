"""Promises of the project cache (``ophys_xr.ProjectCache``) about a faulty release or misuse.

- A file that the manifest names but the server does not have: a named error with its URL,
  streamed or downloaded; nothing is left at the file's place in the cache.
- A downloaded file whose blake2b hash is not the manifest's: ``DownloadError``; the bad
  bytes are not kept at the file's place (a later call downloads again).
- A connection dropped during a download: the download resumes; only a complete file
  with the manifest's hash is used.
- A server without HTTP range requests: streaming raises a named error that says to
  download; ``download=True`` works.
- An id that is not in the tables, a manifest name that is not the release's: ``OptionError``
  naming the table or the valid names.
- A bucket URL that is not a bucket, or an unreachable one: ``DownloadError`` naming the URL.
- A damaged manifest, or a table row whose file the manifest does not list: ``SchemaError``
  naming the file.
- A folder for ``from_local_cache`` that lacks a file: ``SessionFileNotFoundError`` naming
  the path; nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _bucket import PROJECT, VERSIONS, Release, blake2b, serve_bucket, shared_release

import ophys_xr
from ophys_xr.cache import ProjectCache

LATEST = f"visual-behavior-ophys_project_manifest_v{VERSIONS[-1]}.json"


@pytest.fixture(scope="module")
def release() -> Release:
    return shared_release()


@pytest.fixture
def server(release: Release) -> Iterator[Any]:
    with serve_bucket(release.root) as server:
        yield server


@pytest.fixture
def cache(server: Any, tmp_path: Path) -> ProjectCache:
    cache = ProjectCache.from_s3_cache(tmp_path, base_url=server.url)
    cache.get_ophys_experiment_table()
    return cache


def _local(tmp_path: Path, release: Release, oeid: int) -> Path:
    return tmp_path / f"{PROJECT}-{VERSIONS[-1]}" / release.key(oeid).split("/", 1)[1]


def test_a_file_missing_on_the_server_is_a_named_error_streamed_or_downloaded(
        cache, server, release, tmp_path):
    oeid = min(release.experiments[VERSIONS[-1]])
    server.hidden.add(release.key(oeid))
    with pytest.raises(ophys_xr.SessionFileNotFoundError, match=f"experiment_{oeid}.nwb"):
        cache.open_experiment(oeid)
    with pytest.raises(ophys_xr.DownloadError, match=r"HTTP 404"):
        cache.open_experiment(oeid, download=True)
    assert not _local(tmp_path, release, oeid).exists()


def test_a_metadata_table_missing_on_the_server_is_a_download_error(server, tmp_path):
    server.hidden.add(f"{PROJECT}/project_metadata/ophys_cells_table.csv")
    cache = ProjectCache.from_s3_cache(tmp_path, base_url=server.url)
    with pytest.raises(ophys_xr.DownloadError, match="ophys_cells_table.csv"):
        cache.get_ophys_cells_table()


def test_a_hash_mismatch_raises_and_keeps_no_bad_file(cache, server, release, tmp_path):
    oeid, other = sorted(release.experiments[VERSIONS[-1]])[:2]
    server.swap[release.key(oeid)] = release.root / release.key(other)
    with pytest.raises(ophys_xr.DownloadError, match="expected"):
        cache.open_experiment(oeid, download=True)
    target = _local(tmp_path, release, oeid)
    assert not target.exists()
    server.swap.clear()
    with cache.open_experiment(oeid, download=True) as ds:  # downloaded again, right
        assert ds.attrs["ophys_experiment_id"] == oeid
    assert blake2b(target) == blake2b(release.root / release.key(oeid))


def test_a_dropped_download_resumes_to_the_checked_file(cache, server, release, tmp_path):
    oeid = min(release.experiments[VERSIONS[-1]])
    server.stop_after = server.bytes_sent + 200_000
    with cache.open_experiment(oeid, download=True) as ds:
        assert ds.attrs["ophys_experiment_id"] == oeid
    assert blake2b(_local(tmp_path, release, oeid)) == blake2b(release.root / release.key(oeid))


def test_a_server_without_range_requests_says_to_download(cache, server, release):
    oeid = min(release.experiments[VERSIONS[-1]])
    server.ranges = False
    with pytest.raises(ophys_xr.OphysXrError, match="(?i)range"):
        cache.open_experiment(oeid)
    with cache.open_experiment(oeid, download=True) as ds:
        assert ds.attrs["ophys_experiment_id"] == oeid


def test_an_unknown_id_is_refused_naming_the_table(cache):
    with pytest.raises(ophys_xr.OptionError, match="ophys_experiment_id 12 is not in the "
                       "ophys_experiment_table"):
        cache.open_experiment(12)
    with pytest.raises(ophys_xr.OptionError, match="behavior_session_id 12 is not in"):
        cache.open_behavior_session(12)
    with pytest.raises(ophys_xr.OptionError, match="is not in"):
        cache.open_experiment("951980002")  # type: ignore[arg-type]


def test_a_url_that_is_not_a_bucket_is_a_download_error(server, tmp_path):
    with pytest.raises(ophys_xr.DownloadError, match=r"list of manifests.*HTTP 404"):
        ProjectCache.from_s3_cache(tmp_path, base_url=f"{server.url}/no-bucket-here")
    with pytest.raises(ophys_xr.DownloadError, match="127.0.0.1:9"):
        ProjectCache.from_s3_cache(tmp_path, base_url="http://127.0.0.1:9")
    with pytest.raises(ophys_xr.OptionError, match="base_url"):
        ProjectCache.from_s3_cache(tmp_path, base_url="visual-behavior-ophys-data")


def test_a_damaged_manifest_is_a_schema_error(server, tmp_path):
    (tmp_path / LATEST).write_text('{"project_name": "visual-behavior-ophys"')
    with pytest.raises(ophys_xr.SchemaError, match=f"{LATEST}.*not a JSON manifest"):
        ProjectCache.from_s3_cache(tmp_path, base_url=server.url)
    (tmp_path / LATEST).write_text('{"project_name": "visual-behavior-ophys"}')
    with pytest.raises(ophys_xr.SchemaError, match="lacks.*manifest_version"):
        ProjectCache.from_s3_cache(tmp_path, base_url=server.url)


def test_a_row_whose_file_the_manifest_lacks_is_a_schema_error(server, release, tmp_path):
    manifest = json.loads((release.root / PROJECT / "manifests" / LATEST).read_text())
    removed = manifest["data_files"].pop("0")
    (tmp_path / LATEST).write_text(json.dumps(manifest))
    cache = ProjectCache.from_s3_cache(tmp_path, base_url=server.url)
    table = cache.get_ophys_experiment_table()
    oeid = int(table.index[table["file_id"] == 0][0])
    assert removed["url"].endswith(f"experiment_{oeid}.nwb")
    with pytest.raises(ophys_xr.SchemaError, match=f"experiment {oeid} has file_id 0"):
        cache.open_experiment(oeid)


def test_a_local_cache_lacking_a_file_names_it_and_downloads_nothing(cache, server, release,
                                                                       tmp_path):
    oeid = min(release.experiments[VERSIONS[-1]])
    sent = server.bytes_sent
    local = ProjectCache.from_local_cache(tmp_path)
    with pytest.raises(ophys_xr.SessionFileNotFoundError,
                       match=str(_local(tmp_path, release, oeid))):
        local.open_experiment(oeid, download=True)
    assert server.bytes_sent == sent
