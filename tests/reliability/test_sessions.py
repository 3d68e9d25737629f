"""Promises of the many-session functions (``catalog``, ``open_sessions``, ``map_sessions``,
``ophys-xr info``) about their sources.

- Sources may be paths, folders (searched recursively), ``https://`` / ``s3://`` URLs, or a
  list mixing them; a URL is never turned into a path (``http://h/x`` into ``http:/h/x``).
  ``storage_options`` reach the reader (e.g. ``{"anon": True}`` for a public S3 bucket).
- ``map_sessions`` over URLs opens each session in its task and streams only what the
  function reads; over integer experiment ids it opens them through
  ``cache.open_experiment`` in the task (``ophys_xr.ProjectCache`` or any object with that
  method; threads and ``dask.distributed``); an id without ``cache=`` is refused by name.
- Two sources of one experiment (an NWB file and its store, or two copies) are never
  reduced silently to one: ``open_sessions`` and ``map_sessions`` raise ``OptionError``
  listing both; ``catalog`` lists files, so it keeps both rows, told apart by ``path``.
  A source given twice is refused before anything is opened.
- A bad file among good ones: ``open_sessions`` raises a named error naming that file (an
  unexpected error of a reader becomes ``InvalidSessionFileError``) and closes every session
  it had opened; ``catalog`` keeps the file's row with its error naming it, and reads the
  others; ``map_sessions`` reports it in ``errors`` with the file's name.
- A source that is not a path, URL or id (None, a float) is refused by name; a folder with
  no session file is refused, not read as an empty result.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import xarray as xr
from _http import serve
from typer.testing import CliRunner

import ophys_xr
from ophys_xr.exceptions import InvalidSessionFileError, OptionError
from ophys_xr.sessions import catalog, map_sessions, open_sessions

IDS = (882001003, 882001004)


def _copy(tiny: Path, path: Path, experiment: int) -> Path:
    shutil.copyfile(tiny, path)
    with h5py.File(path, "r+") as f:
        del f["identifier"]
        f["identifier"] = str(experiment)
    return path


@pytest.fixture(scope="module")
def folder(tiny_path, tmp_path_factory) -> Path:
    """Two experiments, as the release names their files."""
    root = tmp_path_factory.mktemp("sessions")
    for experiment in IDS:
        _copy(tiny_path, root / f"behavior_ophys_experiment_{experiment}.nwb", experiment)
    return root


@pytest.fixture(scope="module")
def server(folder):
    with serve(folder) as srv:
        yield srv


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """Two simulated experiments of 40 cells over 6 minutes (22 MB each): most of a file is
    traces, so streaming shows against reading the whole file."""
    from ophys_xr.testing import simulate_session, write_nwb

    root = tmp_path_factory.mktemp("big")
    for seed, experiment in enumerate(IDS):
        ds = simulate_session(n_cells=40, minutes=6.0, seed=seed)
        ds.attrs["ophys_experiment_id"] = experiment
        write_nwb(ds, root / f"behavior_ophys_experiment_{experiment}.nwb")
    return root


def _url(server: Any, experiment: int) -> str:
    return f"{server.url}/behavior_ophys_experiment_{experiment}.nwb"


def mean_dff(ds: xr.Dataset) -> xr.DataArray:
    return ds.dff.mean("time")


def session_type(ds: xr.Dataset) -> str:
    return str(ds.attrs["session_type"])


class FolderCache:
    """A stand-in for ``ophys_xr.ProjectCache``: opens an experiment by id from a folder or
    a base URL (picklable, so it travels to distributed workers)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def open_experiment(self, ophys_experiment_id: int, **open_kwargs: Any) -> xr.Dataset:
        source = f"{self.base}/behavior_ophys_experiment_{ophys_experiment_id}.nwb"
        return ophys_xr.open_session(source, **open_kwargs)


# ---- URLs -------------------------------------------------------------------------------


def test_catalog_reads_urls_as_urls(folder, server) -> None:
    urls = [_url(server, e) for e in IDS]
    table = catalog(urls)
    assert table.error.isna().all(), table.error.tolist()
    assert table.ophys_experiment_id.tolist() == list(IDS)
    assert table.path.tolist() == urls
    local = catalog(folder)
    columns = [c for c in table.columns if c not in ("path", "error")]
    assert table[columns].equals(local[columns])


def test_open_sessions_opens_urls_and_paths_together(folder, server) -> None:
    local = folder / f"behavior_ophys_experiment_{IDS[1]}.nwb"
    with open_sessions([_url(server, IDS[0]), local]) as tree:
        assert sorted(tree.children) == [str(e) for e in IDS]
        with ophys_xr.open_session(folder / f"behavior_ophys_experiment_{IDS[0]}.nwb") as ds:
            np.testing.assert_array_equal(tree[str(IDS[0])].dff.values, ds.dff.values)


def test_map_sessions_over_urls_streams_only_what_the_function_reads(big) -> None:
    size = sum(p.stat().st_size for p in big.glob("*.nwb"))
    with serve(big) as server:
        urls = [_url(server, e) for e in IDS]
        result = map_sessions(session_type, urls)
        metadata_only = server.bytes_sent
        traces = map_sessions(mean_dff, urls)
        with_traces = server.bytes_sent - metadata_only
    assert result.errors.empty, result.errors.error.tolist()
    assert sorted(result.results) == list(IDS)
    assert metadata_only < size / 2, (metadata_only, size)
    assert metadata_only < with_traces < size, (metadata_only, with_traces, size)
    local = map_sessions(mean_dff, big)
    xr.testing.assert_identical(traces.combined, local.combined)


def test_info_reads_a_url(server) -> None:
    from ophys_xr.cli import app

    result = CliRunner().invoke(app, ["info", _url(server, IDS[0])])
    assert result.exit_code == 0, result.output
    assert str(IDS[0]) in result.output


def test_storage_options_reach_the_reader(folder, server, monkeypatch) -> None:
    from ophys_xr import io

    options = {"timeout": (5, 5)}
    urls = [_url(server, e) for e in IDS]
    table = catalog(urls, storage_options=options)
    assert table.error.isna().all(), table.error.tolist()

    seen: list[Any] = []
    opener = io.open_session

    def recording(source: Any, **kwargs: Any) -> xr.Dataset:
        seen.append(kwargs.get("storage_options"))
        return opener(source, **kwargs)

    monkeypatch.setattr(io, "open_session", recording)
    with open_sessions(urls, storage_options=options):
        pass
    map_sessions(session_type, urls, storage_options=options)
    assert seen == [options] * 4


def test_s3_urls_stay_urls_and_get_their_storage_options(monkeypatch) -> None:
    from ophys_xr import io, sessions

    url = "s3://allen-brain-observatory/visual-behavior-ophys/behavior_ophys_experiment_1.nwb"
    anonymous = {"anon": True}
    seen: list[tuple[Any, Any]] = []

    def metadata(source: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append((source, kwargs.get("storage_options")))
        return {"ophys_experiment_id": 1}

    def opener(source: Any, **kwargs: Any) -> xr.Dataset:
        seen.append((source, kwargs.get("storage_options")))
        return xr.Dataset(attrs={"ophys_experiment_id": 1, "session_type": "OPHYS_1"})

    monkeypatch.setattr(sessions, "read_metadata", metadata)
    monkeypatch.setattr(io, "open_session", opener)
    assert catalog(url, storage_options=anonymous).path.tolist() == [url]
    with open_sessions([url], storage_options=anonymous) as tree:
        assert list(tree.children) == ["1"]
    assert map_sessions(session_type, url, storage_options=anonymous).results == {1: "OPHYS_1"}
    assert seen == [(url, anonymous)] * 3


# ---- experiment ids through a cache ------------------------------------------------------


def test_map_sessions_opens_ids_through_the_cache_in_the_task(big) -> None:
    size = sum(p.stat().st_size for p in big.glob("*.nwb"))
    with serve(big) as server:
        cache = FolderCache(server.url)
        result = map_sessions(session_type, list(IDS), cache=cache)
        streamed = server.bytes_sent
        by_id = map_sessions(mean_dff, [IDS[0], big / f"behavior_ophys_experiment_{IDS[1]}.nwb"],
                             cache=cache)
    assert result.errors.empty, result.errors.error.tolist()
    assert sorted(result.results) == list(IDS)
    assert streamed < size / 2, (streamed, size)
    local = map_sessions(mean_dff, big)
    xr.testing.assert_identical(by_id.combined, local.combined)


def test_map_sessions_reports_an_id_the_cache_cannot_open(server) -> None:
    result = map_sessions(session_type, [IDS[0], 999], cache=FolderCache(server.url))
    assert sorted(result.results) == [IDS[0]]
    assert result.errors.ophys_experiment_id.tolist() == [999]
    assert "999" in result.errors.error.iloc[0]


def test_an_id_without_a_cache_is_refused(folder) -> None:
    with pytest.raises(OptionError, match="882001003.*cache="):
        map_sessions(session_type, [IDS[0]])
    with pytest.raises(OptionError, match="open_experiment"):
        map_sessions(session_type, [IDS[0]], cache=object())
    with pytest.raises(OptionError, match="experiment id"):
        open_sessions([IDS[0]])


def test_map_sessions_by_id_through_the_project_cache(tmp_path) -> None:
    from _bucket import serve_bucket, shared_release

    from ophys_xr.cache import ProjectCache

    release = shared_release()
    with serve_bucket(release.root) as bucket:
        cache = ProjectCache.from_s3_cache(tmp_path / "cache", base_url=bucket.url)
        ids = [int(i) for i in cache.get_ophys_experiment_table().index[:3]]
        result = map_sessions(mean_dff, ids, cache=cache)
        assert result.errors.empty, result.errors.error.tolist()
        assert sorted(result.results) == sorted(ids)
        for experiment in ids:
            with cache.open_experiment(experiment) as ds:
                xr.testing.assert_identical(result.results[experiment], mean_dff(ds).compute())


@pytest.mark.slow
def test_map_sessions_by_id_on_distributed_workers(folder, server) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        result = map_sessions(mean_dff, list(IDS), cache=FolderCache(server.url),
                              client=client)
    assert result.errors.empty, result.errors.error.tolist()
    local = map_sessions(mean_dff, folder)
    xr.testing.assert_identical(result.combined, local.combined)


# ---- two sources of one experiment ------------------------------------------------------


@pytest.fixture
def twins(tiny_path, tmp_path) -> list[Path]:
    """Two files of experiment 882001003 (an NWB file and the Zarr store converted from it)
    beside another experiment."""
    nwb = _copy(tiny_path, tmp_path / "a.nwb", IDS[0])
    with ophys_xr.open_session(nwb) as ds:
        ophys_xr.to_zarr(ds, tmp_path / "a.zarr")
    _copy(tiny_path, tmp_path / "b.nwb", IDS[1])
    return [nwb, tmp_path / "a.zarr", tmp_path / "b.nwb"]


def test_map_sessions_refuses_two_sources_of_one_experiment(twins) -> None:
    folder = twins[0].parent
    with pytest.raises(OptionError, match="882001003 is in 2 sources") as info:
        map_sessions(mean_dff, folder)
    assert str(twins[0]) in str(info.value)
    assert str(twins[1]) in str(info.value)


def test_open_sessions_refuses_two_sources_of_one_experiment_and_closes_them(twins) -> None:
    closed: list[str] = []

    def tracking(ds: xr.Dataset) -> xr.Dataset:
        source = ds.encoding.get("source")
        out = ds.copy()
        out.set_close(lambda: (closed.append(source), ds.close()))
        return out

    with pytest.raises(OptionError, match="882001003 is in 2 sources") as info:
        open_sessions(twins, preprocess=tracking)
    assert str(twins[0]) in str(info.value)
    assert str(twins[1]) in str(info.value)
    assert len(closed) == 3


def test_catalog_keeps_two_files_of_one_experiment_apart_by_path(twins) -> None:
    table = catalog(twins[0].parent)
    twice = table[table.ophys_experiment_id.duplicated(keep=False)]
    assert sorted(twice.path) == sorted(str(p) for p in twins[:2])


def test_a_source_given_twice_is_refused_before_opening(twins, monkeypatch) -> None:
    from ophys_xr import io

    def never(*args: Any, **kwargs: Any) -> None:
        pytest.fail("nothing may be opened")

    monkeypatch.setattr(io, "open_session", never)
    for run in (lambda s: open_sessions(s), lambda s: map_sessions(mean_dff, s)):
        with pytest.raises(OptionError, match="2 times; pass each session once"):
            run([twins[0], twins[2], twins[0]])
    with pytest.raises(OptionError, match="882001003.*2 times"):
        map_sessions(mean_dff, [IDS[0], IDS[0]], cache=FolderCache("unused"))


# ---- a bad file among good ones ----------------------------------------------------------


@pytest.fixture
def one_bad(tiny_path, tmp_path) -> tuple[Path, Path]:
    for experiment in IDS:
        _copy(tiny_path, tmp_path / f"behavior_ophys_experiment_{experiment}.nwb", experiment)
    bad = tmp_path / "zz_broken.nwb"
    bad.write_bytes(b"not hdf5")
    return tmp_path, bad


@pytest.mark.parametrize("parallel", [True, False])
def test_open_sessions_names_the_bad_file_and_closes_the_others(one_bad, parallel) -> None:
    folder, bad = one_bad
    closed: list[str] = []

    def tracking(ds: xr.Dataset) -> xr.Dataset:
        out = ds.copy()
        out.set_close(lambda: (closed.append(ds.encoding["source"]), ds.close()))
        return out

    with pytest.raises(InvalidSessionFileError, match=bad.name):
        open_sessions(folder, preprocess=tracking, parallel=parallel)
    assert len(closed) == 2


def test_open_sessions_names_the_file_of_an_unexpected_reader_error(one_bad,
                                                                    monkeypatch) -> None:
    from ophys_xr import io

    folder, bad = one_bad
    bad.unlink()
    opener = io.open_session
    victim = folder / f"behavior_ophys_experiment_{IDS[1]}.nwb"

    def faulty(source: Any, **kwargs: Any) -> xr.Dataset:
        if Path(source) == victim:
            raise KeyError("general/metadata")  # what a reader bug would raise
        return opener(source, **kwargs)

    monkeypatch.setattr(io, "open_session", faulty)
    with pytest.raises(InvalidSessionFileError, match=f"{victim.name}.*KeyError"):
        open_sessions(folder)
    result = map_sessions(session_type, folder)
    assert sorted(result.results) == [IDS[0]]
    assert victim.name in result.errors.error.iloc[0]


def test_catalog_names_the_bad_file_in_its_row_and_reads_the_others(one_bad,
                                                                    monkeypatch) -> None:
    from ophys_xr import sessions

    folder, bad = one_bad
    table = catalog(folder)
    row = table[table.path == str(bad)]
    assert "InvalidSessionFileError" in row.error.iloc[0]
    assert table.ophys_experiment_id.dropna().tolist() == list(IDS)

    reader = sessions.read_metadata
    victim = folder / f"behavior_ophys_experiment_{IDS[1]}.nwb"

    def faulty(source: Any, **kwargs: Any) -> dict[str, Any]:
        if Path(source) == victim:
            raise KeyError("general/metadata")  # what a reader bug would raise
        return reader(source, **kwargs)

    monkeypatch.setattr(sessions, "read_metadata", faulty)
    table = catalog(folder)
    row = table[table.path == str(victim)]
    assert row.error.iloc[0].startswith("KeyError")
    assert victim.name in row.error.iloc[0]
    assert table.ophys_experiment_id.dropna().tolist() == [IDS[0]]


# ---- what a source is -------------------------------------------------------------------


@pytest.mark.parametrize("source", [None, 1.5, [None]])
def test_a_source_that_is_not_a_path_or_url_is_refused(source) -> None:
    for run in (catalog, open_sessions, lambda s: map_sessions(mean_dff, s)):
        with pytest.raises(OptionError, match="path, a folder"):
            run(source)


def test_a_folder_without_sessions_is_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("no sessions here")
    for run in (catalog, open_sessions, lambda s: map_sessions(mean_dff, s)):
        with pytest.raises(OptionError, match="holds no session file"):
            run(tmp_path)


def test_folders_in_a_list_are_searched(folder, server) -> None:
    table = catalog([folder, _url(server, IDS[0])])
    assert table.ophys_experiment_id.tolist() == [*IDS, IDS[0]]
