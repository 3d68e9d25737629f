"""Many sessions: catalog, open_sessions, map_sessions (threads and dask.distributed)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import xarray as xr
from _dask import raise_if_dask_computes

import ophys_xr
from ophys_xr.sessions import CATALOG_COLUMNS, catalog, map_sessions, open_sessions
from ophys_xr.testing import simulate_session, write_nwb


@pytest.fixture(scope="module")
def folder(tiny_path, tmp_path_factory):
    """Three copies of tiny.nwb as three experiments, one with an unmatched cell, one bad."""
    root = tmp_path_factory.mktemp("sessions")
    for i in range(3):
        path = root / f"behavior_ophys_experiment_{882001003 + i}.nwb"
        shutil.copyfile(tiny_path, path)
        with h5py.File(path, "r+") as f:
            del f["identifier"]
            f["identifier"] = str(882001003 + i)
            if i == 2:
                table = f["processing/ophys/image_segmentation/cell_specimen_table"]
                table["cell_specimen_id"][0] = -1
    (root / "broken.nwb").write_bytes(b"not hdf5")
    return root


def mean_dff(ds: xr.Dataset) -> xr.DataArray:
    return ds.dff.mean("time")


def failing(ds: xr.Dataset) -> xr.DataArray:
    if ds.attrs["ophys_experiment_id"] == 882001004:
        msg = "boom"
        raise RuntimeError(msg)
    return ds.dff.mean("time")


def test_catalog(folder) -> None:
    table = catalog(folder)
    assert list(table.columns) == list(CATALOG_COLUMNS)
    assert len(table) == 4
    bad = table[table.error.notna()]
    assert len(bad) == 1
    assert bad.path.iloc[0].endswith("broken.nwb")
    assert "InvalidSessionFileError" in bad.error.iloc[0]
    good = table[table.error.isna()].set_index("ophys_experiment_id")
    assert sorted(good.index) == [882001003, 882001004, 882001005]
    row = good.loc[882001003]
    assert row.cre_line == "Slc17a7-IRES2-Cre"
    assert row.session_number == 1
    assert row.experience_level == "Familiar"
    assert row.n_valid_cells == 4
    assert row.n_cells == 5
    assert row.duration_s == pytest.approx(124.92, abs=0.01)
    assert row.imaging_depth == 175


def test_catalog_of_zarr(folder, tmp_path) -> None:
    with ophys_xr.open_session(folder / "behavior_ophys_experiment_882001003.nwb") as ds:
        ophys_xr.to_zarr(ds, tmp_path / "a.zarr")
    table = catalog([tmp_path / "a.zarr"])
    assert table.ophys_experiment_id.tolist() == [882001003]
    assert table.n_valid_cells.tolist() == [4]


def test_open_sessions(folder) -> None:
    paths = sorted(folder.glob("behavior_*.nwb"))
    with open_sessions(paths) as tree:
        assert sorted(tree.children) == ["882001003", "882001004", "882001005"]
        node = tree["882001004"].to_dataset()
        assert node.dff.chunks is not None
        with ophys_xr.open_session(paths[1]) as ds:
            xr.testing.assert_identical(node, ds)


def test_open_sessions_duplicate(folder) -> None:
    path = folder / "behavior_ophys_experiment_882001003.nwb"
    with pytest.raises(ophys_xr.OptionError, match="pass each session once"):
        open_sessions([path, path])


def test_map_sessions_threads(folder) -> None:
    result = map_sessions(mean_dff, folder)
    assert sorted(result.results) == [882001003, 882001004, 882001005]
    assert len(result.errors) == 1
    assert "broken.nwb" in result.errors.source.iloc[0]
    combined = result.combined
    assert combined.dff.dims == ("ophys_experiment_id", "cell_specimen_id")
    # the unmatched ROI of the third session is dropped; its cell is NaN there
    first = combined.cell_specimen_id.values[0]
    assert np.isnan(combined.dff.sel(ophys_experiment_id=882001005, cell_specimen_id=first))
    np.testing.assert_allclose(
        combined.dff.sel(ophys_experiment_id=882001003).values,
        combined.dff.sel(ophys_experiment_id=882001004).values,
    )


def test_map_sessions_reports_failures(folder) -> None:
    paths = sorted(folder.glob("behavior_*.nwb"))
    result = map_sessions(failing, paths)
    assert sorted(result.results) == [882001003, 882001005]
    assert result.errors.ophys_experiment_id.tolist() == [882001004]
    assert "RuntimeError: boom" in result.errors.error.iloc[0]


@pytest.mark.slow
def test_map_sessions_distributed(folder) -> None:
    distributed = pytest.importorskip("distributed")
    paths = sorted(folder.glob("behavior_*.nwb"))
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        result = map_sessions(mean_dff, paths, client=client)
    local = map_sessions(mean_dff, paths)
    xr.testing.assert_identical(result.combined, local.combined)


# ---- multiplane (mesoscope) sessions --------------------------------------------------


@pytest.fixture(scope="module")
def mesoscope(tmp_path_factory):
    from ophys_xr.testing import simulate_multiplane_session

    folder = tmp_path_factory.mktemp("mesoscope")
    planes = simulate_multiplane_session(3, n_cells=3, minutes=1.0, seed=2, n_unmatched=1)
    for plane in planes:
        oeid = plane.attrs["ophys_experiment_id"]
        write_nwb(plane, folder / f"behavior_ophys_experiment_{oeid}.nwb")
    return folder, planes


def test_multiplane_session_holds_the_behavior_once(mesoscope) -> None:
    folder, planes = mesoscope
    with ophys_xr.open_multiplane_session(folder, exclude_invalid_rois=False) as tree:
        assert list(tree.children) == [str(p.attrs["ophys_experiment_id"]) for p in planes]
        root = tree.to_dataset(inherit=False)
        assert "trials_start_time" in root
        assert "dff" not in root
        assert root.attrs["ophys_session_id"] == planes[0].attrs["ophys_session_id"]
        # the root keeps what the planes share, not what tells them apart
        assert "ophys_experiment_id" not in root.attrs
        assert "imaging_plane_group" not in root.attrs
        for plane, node in zip(planes, tree.children.values(), strict=True):
            own = node.to_dataset(inherit=False)
            assert "dff" in own
            assert "trials_start_time" not in own
            assert own.attrs["imaging_plane_group"] == plane.attrs["imaging_plane_group"]
        # one plane as a complete session Dataset: what the plane's own file gives
        for plane in planes:
            group = plane.attrs["imaging_plane_group"]
            full = ophys_xr.plane_dataset(tree, group)
            xr.testing.assert_identical(full.compute(), plane.compute())
            response = full.ophys.stimulus_response(event="changes")
            assert response.sizes["cell_specimen_id"] == plane.sizes["cell_specimen_id"]
        # cells of different planes are different cells (the -1 ROIs: by cell_roi_id)
        rois = [set(n["cell_roi_id"].values.tolist()) for n in tree.children.values()]
        assert not rois[0] & rois[1]
        assert not rois[1] & rois[2]


def test_multiplane_session_is_lazy(mesoscope) -> None:
    folder, _ = mesoscope
    with raise_if_dask_computes(), ophys_xr.open_multiplane_session(folder) as tree:
        full = ophys_xr.plane_dataset(tree, 0)
        assert full["dff"].chunks is not None


def test_multiplane_errors(mesoscope, tmp_path) -> None:
    folder, planes = mesoscope
    with pytest.raises(ophys_xr.OptionError, match="no plane"), \
            ophys_xr.open_multiplane_session(folder) as tree:
        ophys_xr.plane_dataset(tree, 7)
    # two sessions in the sources: choose one
    other = simulate_session(n_cells=2, minutes=0.5, seed=9)
    mixed = [*sorted(folder.glob("*.nwb")), write_nwb(other, tmp_path / "other.nwb")]
    with pytest.raises(ophys_xr.OptionError, match="ophys_session_id="):
        ophys_xr.open_multiplane_session(mixed)
    session = planes[0].attrs["ophys_session_id"]
    with ophys_xr.open_multiplane_session(mixed, ophys_session_id=session) as tree:
        assert len(tree.children) == 3
    # the same plane twice
    copy = tmp_path / "copy.nwb"
    copy.write_bytes(min(folder.glob("*.nwb")).read_bytes())
    with pytest.raises(ophys_xr.OptionError, match="same imaging plane"):
        ophys_xr.open_multiplane_session([*sorted(folder.glob("*.nwb")), copy])


def test_multiplane_simulator_options() -> None:
    with pytest.raises(ophys_xr.OptionError, match="imaging_plane_group"):
        simulate_session(imaging_plane_group=2, imaging_plane_group_count=2)
    with pytest.raises(ophys_xr.OptionError, match="at most 8"):
        simulate_session(imaging_plane_group=0, imaging_plane_group_count=9)
    with pytest.raises(ophys_xr.OptionError, match="no imaging planes"):
        simulate_session(imaging_plane_group=0, imaging_plane_group_count=2,
                         behavior_only=True)


def test_multiplane_planes_must_share_the_behavior(mesoscope, tmp_path) -> None:
    folder, _ = mesoscope
    files = sorted(folder.glob("*.nwb"))
    for path in files:
        shutil.copy(path, tmp_path / path.name)
    with h5py.File(tmp_path / files[1].name, "r+") as f:
        f["intervals/trials/start_time"][0] += 1.0
    with pytest.raises(ophys_xr.SchemaError, match="differ in trials_start_time"):
        ophys_xr.open_multiplane_session(tmp_path)
    with pytest.raises(ophys_xr.OptionError, match="0 ophys sessions"):
        ophys_xr.open_multiplane_session([])
