"""ProjectCache against a loopback bucket laid out like the release (tests/_bucket.py)."""

from __future__ import annotations

import pickle
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _bucket import (
    BEHAVIOR_SESSION_COLUMNS,
    OPHYS_CELLS_COLUMNS,
    OPHYS_EXPERIMENT_COLUMNS,
    OPHYS_SESSION_COLUMNS,
    PROJECT,
    VERSIONS,
    Release,
    blake2b,
    serve_bucket,
    shared_release,
)

import ophys_xr
from ophys_xr.cache import OutdatedManifestWarning, ProjectCache

OLD, LATEST = (f"visual-behavior-ophys_project_manifest_v{v}.json" for v in VERSIONS)


@pytest.fixture(scope="module")
def release() -> Release:
    return shared_release()


@pytest.fixture(scope="module")
def server(release: Release) -> Iterator[Any]:
    with serve_bucket(release.root) as server:
        yield server


@pytest.fixture
def cache(server: Any, tmp_path: Path) -> ProjectCache:
    return ProjectCache.from_s3_cache(tmp_path / "cache", base_url=server.url)


def _container(release: Release) -> int:
    """The container imaged in familiar and novel sessions."""
    counts: dict[int, int] = {}
    for ds in release.experiments[VERSIONS[-1]].values():
        counts[ds.attrs["ophys_container_id"]] = counts.get(ds.attrs["ophys_container_id"], 0) + 1
    return next(c for c, n in counts.items() if n == 3)


# ---- manifests ---------------------------------------------------------------------------


def test_the_latest_manifest_is_loaded_and_kept_as_the_allensdk_keeps_it(cache, tmp_path):
    assert cache.list_manifest_file_names() == [OLD, LATEST]
    assert cache.current_manifest() == LATEST
    assert cache.manifest.version == VERSIONS[-1]
    assert cache.manifest.file_id_column == "file_id"
    assert (tmp_path / "cache" / LATEST).is_file()  # manifests at the top of cache_dir
    assert (tmp_path / "cache" / "_manifest_last_used.txt").read_text() == LATEST


def test_an_older_version_warns_and_gives_its_tables_and_files(cache, release):
    with pytest.warns(OutdatedManifestWarning, match="load_latest_manifest"):
        cache.load_manifest(OLD)
    assert cache.current_manifest() == OLD
    old = release.experiments[VERSIONS[0]]
    assert sorted(cache.get_ophys_experiment_table().index) == sorted(old)
    first = min(old)
    with cache.open_experiment(first) as ds:  # the version of the file that 1.0.0 names
        assert ds.sizes["cell_specimen_id"] == int(old[first]["valid_roi"].sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.load_latest_manifest()
    with cache.open_experiment(first) as ds:
        latest = release.experiments[VERSIONS[-1]][first]
        assert ds.sizes["cell_specimen_id"] == int(latest["valid_roi"].sum())


def test_the_manifest_last_used_in_the_folder_is_loaded_again(server, tmp_path):
    with pytest.warns(OutdatedManifestWarning):
        ProjectCache.from_s3_cache(tmp_path, base_url=server.url).load_manifest(OLD)
    with pytest.warns(OutdatedManifestWarning):
        again = ProjectCache.from_s3_cache(tmp_path, base_url=server.url)
    assert again.current_manifest() == OLD


def test_an_unknown_manifest_name_is_refused_with_the_valid_ones(cache):
    with pytest.raises(ophys_xr.OptionError, match=r"v9\.json.*choose one of.*v1\.0\.1"):
        cache.load_manifest("visual-behavior-ophys_project_manifest_v9.json")


# ---- tables ------------------------------------------------------------------------------


def _leading_order(columns: tuple[str, ...], index: str) -> list[str]:
    """The AllenSDK's column order of a table: its priority list, then the file's order."""
    from ophys_xr.cache import _COLUMN_ORDER

    rest = [c for c in columns if c != index]
    first = [c for c in _COLUMN_ORDER if c in rest]
    return first + [c for c in rest if c not in first]


@pytest.mark.parametrize(("getter", "columns", "index"), [
    ("get_ophys_experiment_table", OPHYS_EXPERIMENT_COLUMNS, "ophys_experiment_id"),
    ("get_ophys_session_table", OPHYS_SESSION_COLUMNS, "ophys_session_id"),
    ("get_behavior_session_table", BEHAVIOR_SESSION_COLUMNS, "behavior_session_id"),
])
def test_session_tables_have_the_allensdk_index_columns_and_dtypes(cache, getter, columns, index):
    df = getattr(cache, getter)()
    assert df.index.name == index
    assert list(df.columns) == _leading_order(columns, index)
    assert isinstance(df["date_of_acquisition"].dtype, pd.DatetimeTZDtype)
    assert str(df["date_of_acquisition"].dt.tz) == "UTC"
    assert df["mouse_id"].dtype == object
    assert isinstance(df["mouse_id"].iloc[0], str)
    for column in ("session_number", "age_in_days", "prior_exposures_to_image_set",
                   "prior_exposures_to_session_type", "prior_exposures_to_omissions"):
        assert df[column].dtype == "Int64", column
    for column in ("session_type", "cre_line", "experience_level", "equipment_name"):
        assert df[column].dtype == object, column
    assert all(isinstance(v, list) for v in df["driver_line"])


def test_list_columns_are_parsed_from_their_text(cache, release):
    sessions = cache.get_ophys_session_table()
    experiments = cache.get_ophys_experiment_table()
    for _, row in sessions.iterrows():
        assert isinstance(row["ophys_experiment_id"], list)
        assert isinstance(row["ophys_container_id"], list)
        assert sorted(row["ophys_experiment_id"]) == sorted(
            experiments.index[experiments["ophys_session_id"] == row.name])
    behavior = cache.get_behavior_session_table()
    training = behavior.loc[release.behavior_only]
    assert training["ophys_experiment_id"].isna().all()
    assert (training["experience_level"] == "Training").all()
    assert (behavior.loc[behavior["ophys_session_id"].notna(), "file_id"] == -999).all()


def test_experiment_table_rows_describe_their_files(cache, release):
    table = cache.get_ophys_experiment_table()
    written = release.experiments[VERSIONS[-1]]
    assert sorted(table.index) == sorted(written)
    for oeid, ds in written.items():
        row = table.loc[oeid]
        for key in ("ophys_session_id", "behavior_session_id", "ophys_container_id",
                    "cre_line", "session_type", "imaging_depth", "targeted_structure",
                    "equipment_name", "mouse_id"):
            assert row[key] == ds.attrs[key], key
        assert row["date_of_acquisition"] == pd.Timestamp(ds.attrs["date_of_acquisition"])
    levels = table.set_index("session_type")["experience_level"].to_dict()
    assert levels["OPHYS_1_images_A"] == "Familiar"
    assert levels["OPHYS_2_images_A_passive"] == "Familiar"
    assert levels["OPHYS_4_images_B"] == "Novel 1"
    assert table.loc[table["session_type"] == "OPHYS_2_images_A_passive", "passive"].all()
    assert (table["session_number"].dropna() == table["session_type"].str[6].astype(int)).all()


def test_cells_table_is_indexed_by_roi_with_nullable_specimen_ids(cache, release):
    cells = cache.get_ophys_cells_table()
    assert cells.index.name == "cell_roi_id"
    assert list(cells.columns) == list(OPHYS_CELLS_COLUMNS[1:])
    assert cells["cell_specimen_id"].dtype == "Int64"
    n_valid = sum(int(ds["valid_roi"].sum()) for ds in release.experiments[VERSIONS[-1]].values())
    assert len(cells) == n_valid


def test_tables_are_copies(cache):
    table = cache.get_ophys_experiment_table()
    table["cre_line"] = "changed"
    assert (cache.get_ophys_experiment_table()["cre_line"] != "changed").all()


# ---- opening by id -------------------------------------------------------------------------


def test_open_experiment_streams_by_range_requests_of_the_manifest_version(cache, server, release):
    oeid = max(release.experiments[VERSIONS[-1]])
    cache.get_ophys_experiment_table()
    before, n_requests = server.bytes_sent, len(server.requests)
    with cache.open_experiment(oeid) as ds:
        assert ds.attrs["ophys_experiment_id"] == oeid
        assert isinstance(ds.dff.data, type(ds.dff.chunk().data))  # lazy (dask)
        assert server.bytes_sent > before
        local = ophys_xr.open_session(release.root / release.key(oeid))
        with local:
            xr.testing.assert_identical(ds.dff.compute(), local.dff.compute())
    requests = server.requests[n_requests:]
    assert requests
    assert all("versionId=" in path for _, _, path, _ in requests)
    assert any("Range" in headers for _, method, _, headers in requests if method == "GET")
    assert not (cache._dir / f"{PROJECT}-{VERSIONS[-1]}" / "behavior_ophys_experiments").exists()


def test_open_experiment_download_checks_the_manifest_hash_and_uses_the_allensdk_layout(
        cache, server, release, tmp_path):
    oeid = min(release.experiments[VERSIONS[-1]])
    with cache.open_experiment(oeid, download=True) as ds:
        assert ds.attrs["ophys_experiment_id"] == oeid
    path = (tmp_path / "cache" / f"{PROJECT}-{VERSIONS[-1]}" / "behavior_ophys_experiments"
            / f"behavior_ophys_experiment_{oeid}.nwb")
    assert path.is_file()
    assert blake2b(path) == cache.manifest.data_files[
        str(cache.get_ophys_experiment_table().loc[oeid, "file_id"])].file_hash
    sent = server.bytes_sent
    assert cache.experiment_source(oeid, download=True) == path
    assert server.bytes_sent == sent  # not downloaded again


def test_open_experiment_passes_the_open_options(cache, release):
    oeid = min(release.experiments[VERSIONS[-1]])
    with cache.open_experiment(oeid, exclude_invalid_rois=False,
                               eye_tracking_z_threshold=2.0) as ds:
        assert ds.sizes["cell_specimen_id"] == release.experiments[VERSIONS[-1]][oeid].sizes[
            "cell_specimen_id"]
        assert ds.attrs["eye_tracking_z_threshold"] == 2.0


def test_open_experiments_gives_a_tree_of_lazy_sessions(cache, release):
    container = _container(release)
    ids = list(cache.get_container_experiments(container).index)
    tree = cache.open_experiments(ids)
    with tree:
        assert sorted(tree.children) == sorted(str(i) for i in ids)
        for i in ids:
            assert tree[str(i)].attrs["ophys_experiment_id"] == i
    with pytest.raises(ophys_xr.OptionError, match="more than once"):
        cache.open_experiments([ids[0], ids[0]])


def test_open_behavior_session_by_id(cache, release):
    training = release.behavior_only[0]
    with cache.open_behavior_session(training) as ds:
        assert ds.attrs["session_kind"] == "behavior"
        assert ds.attrs["behavior_session_id"] == training
    behavior = cache.get_behavior_session_table()
    row = behavior[behavior["ophys_session_id"].notna()].iloc[0]
    with cache.open_behavior_session(int(row.name)) as ds:  # its first experiment's file
        assert ds.attrs["ophys_experiment_id"] == row["ophys_experiment_id"][0]
        assert ds.attrs["behavior_session_id"] == row.name


def test_from_lims_opens_the_released_experiment(cache, release):
    oeid = min(release.experiments[VERSIONS[-1]])
    session = ophys_xr.BehaviorOphysSession.from_lims(oeid, 2.0, 4, cache=cache)
    with session:
        assert session.ophys_experiment_id == oeid
        assert session.dataset.attrs["eye_tracking_z_threshold"] == 2.0
        assert session.dataset.attrs["eye_tracking_dilation_frames"] == 4
    assert "LIMS" in ophys_xr.BehaviorOphysSession.from_lims.__doc__


def test_the_cache_pickles_for_dask_workers(cache, release):
    oeid = min(release.experiments[VERSIONS[-1]])
    cache.get_ophys_experiment_table()
    other = pickle.loads(pickle.dumps(cache))
    with other.open_experiment(oeid) as ds:
        assert ds.attrs["ophys_experiment_id"] == oeid


# ---- containers and cells -------------------------------------------------------------------


def test_container_experiments_by_date(cache, release):
    container = _container(release)
    rows = cache.get_container_experiments(container)
    assert list(rows["session_type"]) == ["OPHYS_1_images_A", "OPHYS_2_images_A_passive",
                                          "OPHYS_4_images_B"]
    assert rows["date_of_acquisition"].is_monotonic_increasing
    with pytest.raises(ophys_xr.OptionError, match="ophys_container_id 1 has no experiment"):
        cache.get_container_experiments(1)


def test_experiments_with_cell_from_the_cells_table(cache, release):
    written = release.experiments[VERSIONS[-1]]
    wanted: dict[int, list[int]] = {}
    for oeid, ds in written.items():
        for csid in ds["cell_specimen_id"].values[ds["valid_roi"].values]:
            wanted.setdefault(int(csid), []).append(oeid)
    shared = max(wanted, key=lambda c: len(wanted[c]))
    assert len(wanted[shared]) > 1
    assert cache.experiments_with_cell(shared) == sorted(wanted[shared])
    with pytest.raises(ophys_xr.OptionError, match="cell_specimen_id 7 is in no experiment"):
        cache.experiments_with_cell(7)


# ---- local caches ---------------------------------------------------------------------------


def _allensdk_folder(release: Release, folder: Path, oeids: list[int]) -> Path:
    """A cache folder as the AllenSDK fills it (no file of ophys_xr's in it)."""
    bucket = release.root / PROJECT
    folder.mkdir()
    shutil.copy(bucket / "manifests" / LATEST, folder / LATEST)
    (folder / "_manifest_last_used.txt").write_text(LATEST)
    data = folder / f"{PROJECT}-{VERSIONS[-1]}"
    shutil.copytree(bucket / "project_metadata", data / "project_metadata")
    (data / "behavior_ophys_experiments").mkdir()
    for oeid in oeids:
        shutil.copy(release.root / release.key(oeid), data / "behavior_ophys_experiments")
    return folder


def test_from_local_cache_reads_an_allensdk_cache_folder(cache, release, tmp_path):
    oeids = sorted(release.experiments[VERSIONS[-1]])
    folder = _allensdk_folder(release, tmp_path / "allensdk", oeids[:1])
    local = ProjectCache.from_local_cache(folder)
    assert local.current_manifest() == LATEST
    for name in ("get_ophys_experiment_table", "get_ophys_session_table",
                 "get_behavior_session_table", "get_ophys_cells_table"):
        pd.testing.assert_frame_equal(getattr(local, name)(), getattr(cache, name)())
    with local.open_experiment(oeids[0]) as ds:
        assert ds.attrs["ophys_experiment_id"] == oeids[0]
    with pytest.raises(ophys_xr.SessionFileNotFoundError, match="from_s3_cache"):
        local.open_experiment(oeids[1])


def test_from_local_cache_static_reads_the_bucket_layout(cache, release):
    local = ProjectCache.from_local_cache(release.root, use_static_cache=True)
    assert local.list_manifest_file_names() == [LATEST]
    pd.testing.assert_frame_equal(local.get_ophys_experiment_table(),
                                  cache.get_ophys_experiment_table())
    oeid = min(release.experiments[VERSIONS[-1]])
    assert local.experiment_source(oeid) == release.root / release.key(oeid)


def test_from_local_cache_of_a_folder_without_manifests(tmp_path):
    with pytest.raises(ophys_xr.SessionFileNotFoundError, match="No release manifest"):
        ProjectCache.from_local_cache(tmp_path)
    with pytest.raises(ophys_xr.SessionFileNotFoundError, match="No cache folder"):
        ProjectCache.from_local_cache(tmp_path / "absent")


def test_streamed_and_downloaded_give_the_same_dataset(cache, release):
    oeid = min(release.experiments[VERSIONS[-1]])
    with cache.open_experiment(oeid) as streamed, \
            cache.open_experiment(oeid, download=True) as downloaded:
        xr.testing.assert_identical(streamed.drop_encoding().compute(),
                                    downloaded.drop_encoding().compute())
        assert np.isfinite(streamed.dff.values).any()
