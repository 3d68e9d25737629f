"""Every kind of released file, written by the simulator through the NWB writer.

Passive sessions (no licks, no rewards, ``lick_times`` stored as one empty byte string),
behavior sessions without imaging, ROIs without a ``cell_specimen_id``, sessions without
eye tracking, both generations and both 2021 presentation groupings: each opens,
round-trips through the NWB file and the stores, and every AllenSDK name of
``BehaviorOphysSession`` / ``BehaviorSession`` evaluates.
"""

from __future__ import annotations

import h5py
import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ophys_xr
from ophys_xr.backends import layout as L
from ophys_xr.compat import BehaviorOphysSession, BehaviorSession
from ophys_xr.testing import simulate_session, write_nwb
from ophys_xr.variables import SPECS, validate

mpl.use("Agg")

KINDS = {
    "active-2023": {},
    "passive-2023": {"passive": True},
    "passive-2021": {"passive": True, "layout": "2021"},
    "no-eye-tracking": {"eye_tracking": False},
    "unmatched-rois": {"n_unmatched": 3},
    "2021": {"layout": "2021"},
    "behavior-2023": {"behavior_only": True},
    "behavior-2021": {"behavior_only": True, "layout": "2021"},
    "behavior-no-eye-tracking": {"behavior_only": True, "eye_tracking": False},
}


@pytest.fixture(scope="module", params=list(KINDS))
def written(request, tmp_path_factory):
    kind = request.param
    expected = simulate_session(n_cells=3, minutes=1.0, seed=11, **KINDS[kind])
    path = write_nwb(expected, tmp_path_factory.mktemp(kind) / f"{kind}.nwb")
    return kind, expected, path


def test_opens_and_round_trips(written) -> None:
    _, expected, path = written
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as actual:
        validate(actual, [n for n in SPECS if n in actual.variables])
        xr.testing.assert_identical(actual.compute(), expected.compute())


def test_opens_from_the_stores(written, tmp_path) -> None:
    _, expected, path = written
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as ds:
        zarr = ophys_xr.to_zarr(ds, tmp_path / "s.zarr")
        nc = ophys_xr.to_netcdf(ds, tmp_path / "s.nc")
    for store in (zarr, nc):
        with ophys_xr.open_session(store, exclude_invalid_rois=False) as back:
            xr.testing.assert_identical(back.compute(), expected.compute())
        row = ophys_xr.catalog([store]).iloc[0]
        assert row["error"] is None
        assert row["session_kind"] == expected.attrs["session_kind"]


def test_every_allensdk_name_evaluates(written) -> None:
    kind, _, path = written
    cls = BehaviorSession if kind.startswith("behavior") else BehaviorOphysSession
    with cls.from_nwb_path(path) as session:
        for name in session.list_data_attributes_and_methods():
            if name.startswith("eye_tracking") and kind.endswith("no-eye-tracking"):
                with pytest.warns(UserWarning, match="no eye.tracking"):
                    assert len(getattr(session, name)) == 0
                continue
            value = getattr(session, name)
            if name == "get_cell_specimen_indices":
                value(session.get_cell_specimen_ids())
            elif callable(value) and name.startswith("get_"):
                value()


def test_passive_file_is_what_the_allensdk_writes(tmp_path) -> None:
    ds = simulate_session(n_cells=2, minutes=1.0, seed=3, passive=True)
    path = write_nwb(ds, tmp_path / "passive.nwb")
    with h5py.File(path, "r") as f:
        assert f[f"{L.TRIALS}/lick_times"][()].tolist() == [b""]
        assert not f[f"{L.TRIALS}/lick_times_index"][()].any()
        assert L.LICKS not in f
        assert L.REWARDS not in f
    with ophys_xr.open_session(path) as opened:
        assert opened.attrs["session_type"].endswith("_passive")
        assert opened.sizes["trials_lick"] == 0
        assert opened.sizes["lick"] == 0
        assert opened.sizes["reward"] == 0
        assert opened["lick_times"].dtype == np.float64
        trials = opened[["go", "miss", "catch", "correct_reject", "hit", "false_alarm",
                         "aborted", "auto_rewarded"]].to_dataframe()
        assert (trials.go == trials.miss).all()
        assert (trials.catch == trials.correct_reject).all()
        assert not trials[["hit", "false_alarm", "aborted", "auto_rewarded"]].any().any()
        blocks = set(opened["stimulus_block_name"].values.tolist())
        assert blocks == {"change_detection_passive"}


def test_passive_session_metrics_and_responses(tmp_path) -> None:
    path = write_nwb(simulate_session(n_cells=2, minutes=2.0, seed=3, passive=True),
                     tmp_path / "passive.nwb")
    with ophys_xr.open_session(path) as ds:
        perf = ds.ophys.performance()
        # the AllenSDK forces d' to 0 in passive sessions (no reward, no lick)
        assert (perf["rolling_dprime"].values[np.isfinite(perf["rolling_dprime"].values)]
                == 0).all()
        assert float(perf["mean_dprime"]) == 0.0
        assert float(perf["max_dprime"]) == 0.0
        response = ds.ophys.stimulus_response(event="changes")
        assert response.sizes["stimulus_presentations_id"] > 0
        with BehaviorOphysSession.from_dataset(ds) as session:
            licks, rewards = session.licks, session.rewards
            # what AllenSDK 2.16.2 (pandas 1.5.3) returns for a file without the modules:
            # DataFrames of empty lists, float64 columns, RangeIndex
            assert list(licks.columns) == ["timestamps", "frame"]
            assert len(licks) == 0
            assert licks.dtypes.tolist() == [np.float64, np.float64]
            assert isinstance(licks.index, pd.RangeIndex)
            assert list(rewards.columns) == ["volume", "timestamps", "auto_rewarded"]
            assert rewards.dtypes.tolist() == [np.float64] * 3
            assert isinstance(rewards.index, pd.RangeIndex)
            assert all(len(v) == 0 for v in session.trials["lick_times"])
            assert session.get_performance_metrics()["mean_dprime"] == 0.0


@pytest.mark.parametrize("grouping", L.LAYOUTS["2021"].presentation_groupings)
def test_2021_presentation_groupings(tmp_path, grouping) -> None:
    expected = simulate_session(n_cells=2, minutes=1.0, seed=5, layout="2021")
    if grouping == "stimulus_name":  # the writers that grouped so had the column
        n = expected.sizes["stimulus_presentations_id"]
        expected["stimulus_name"] = ("stimulus_presentations_id",
                                     np.full(n, "Natural_Images_Lum_Matched_set_training_2017",
                                             dtype=object), SPECS["stimulus_name"].attrs())
        expected = expected[[n for n in SPECS if n in expected.data_vars]]
        missing = expected.attrs["ophys_xr_missing"].split()
        expected.attrs["ophys_xr_missing"] = " ".join(m for m in missing if m != "stimulus_name")
    path = write_nwb(expected, tmp_path / "s.nwb", presentation_grouping=grouping)
    with h5py.File(path, "r") as f:
        tables = sorted(k for k in f["intervals"] if k.endswith(L.PRESENTATIONS_SUFFIX))
    if grouping == "image_name":
        assert "omitted_presentations" in tables
        assert len(tables) > 2
    else:
        assert len(tables) == 1
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as actual:
        xr.testing.assert_identical(actual.compute(), expected.compute())


def test_unknown_grouping_is_refused(tmp_path) -> None:
    ds = simulate_session(n_cells=2, minutes=0.5, seed=5)
    with pytest.raises(ophys_xr.OptionError, match="presentation_grouping"):
        write_nwb(ds, tmp_path / "s.nwb", presentation_grouping="image_name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["index_too_long", "text_times"])
def test_damaged_lick_times_are_refused(tmp_path, damage) -> None:
    path = write_nwb(simulate_session(n_cells=2, minutes=1.0, seed=3), tmp_path / "s.nwb")
    with h5py.File(path, "r+") as f:
        g = f[L.TRIALS]
        if damage == "index_too_long":
            ends = g["lick_times_index"][()]
            del g["lick_times_index"]
            g["lick_times_index"] = ends + g["lick_times"].shape[0]
        else:
            n = g["lick_times"].shape[0]
            del g["lick_times"]
            g.create_dataset("lick_times", data=[b"x"] * n,
                             dtype=h5py.string_dtype("ascii"))
    with pytest.raises(ophys_xr.SchemaError, match="lick_times"):
        ophys_xr.open_session(path)


def test_behavior_session(tmp_path) -> None:
    expected = simulate_session(minutes=2.0, seed=4, behavior_only=True)
    path = write_nwb(expected, tmp_path / "behavior_session_1.nwb")
    with h5py.File(path, "r") as f:
        assert L.OPHYS not in f
        assert L.PLANE not in f
        assert f["identifier"][()].decode() == str(expected.attrs["behavior_session_id"])
    with ophys_xr.open_session(path) as ds:
        assert ds.attrs["session_kind"] == "behavior"
        assert "ophys_experiment_id" not in ds.attrs
        assert not set(ds.dims) & {"cell_specimen_id", "time", "row", "column"}
        # what needs no cells works
        perf = ds.ophys.performance()
        assert perf.sizes["trials_id"] == ds.sizes["trials_id"]
        filtered = ds.ophys.blink_filter(z_threshold=2.0, dilation_frames=3)
        assert filtered.attrs["eye_tracking_z_threshold"] == 2.0
        for data in ("running_speed", "pupil_area", "lick_rate"):
            response = ds.ophys.stimulus_response(data=data, event="changes")
            assert response.sizes["stimulus_presentations_id"] > 0
        ds.ophys.trial_response(data="running_speed")
        figure = ds.ophys.plot_performance()
        assert figure.axes
        # what needs cells says so
        with pytest.raises(ophys_xr.MissingDataError, match="roi_mask"):
            ds.ophys.roi_masks()
        with pytest.raises(ophys_xr.MissingDataError, match="dff"):
            ds.ophys.stimulus_response()
    with pytest.raises(ophys_xr.NotAnOphysSessionError, match="BehaviorSession"):
        BehaviorOphysSession.from_nwb_path(path)
    with BehaviorSession.from_nwb_path(path) as session:
        assert list(session.metadata) == [
            "equipment_name", "sex", "age_in_days", "stimulus_frame_rate", "session_type",
            "date_of_acquisition", "reporter_line", "cre_line", "behavior_session_uuid",
            "driver_line", "mouse_id", "project_code", "full_genotype", "behavior_session_id"]
        assert session.behavior_session_id == expected.attrs["behavior_session_id"]
        assert len(session.trials) == expected.sizes["trials_id"]


def test_behavior_part_of_an_imaging_experiment(tmp_path) -> None:
    path = write_nwb(simulate_session(n_cells=2, minutes=1.0, seed=4), tmp_path / "e.nwb")
    with BehaviorSession.from_nwb_path(path) as behavior, \
            BehaviorOphysSession.from_nwb_path(path) as experiment:
        assert not hasattr(behavior, "dff_traces")
        mine, theirs = (behavior.get_performance_metrics(),
                        experiment.get_performance_metrics())
        assert list(mine) == list(theirs)
        np.testing.assert_array_equal(list(mine.values()), list(theirs.values()))
        assert list(behavior.metadata) == list(experiment.metadata)[:14]


def test_folder_of_a_download(tmp_path) -> None:
    """A folder laid out as the AllenSDK cache lays out a download holds both kinds."""
    root = tmp_path / "visual-behavior-ophys-1.1.0"
    (root / "behavior_ophys_experiments").mkdir(parents=True)
    (root / "behavior_sessions").mkdir()
    experiment = simulate_session(n_cells=2, minutes=1.0, seed=1)
    behavior = simulate_session(minutes=1.0, seed=2, behavior_only=True)
    oeid = experiment.attrs["ophys_experiment_id"]
    bsid = behavior.attrs["behavior_session_id"]
    write_nwb(experiment,
              root / "behavior_ophys_experiments" / f"behavior_ophys_experiment_{oeid}.nwb")
    write_nwb(behavior, root / "behavior_sessions" / f"behavior_session_{bsid}.nwb")
    table = ophys_xr.catalog(root)
    assert table["error"].isna().all()
    assert sorted(table["session_kind"]) == ["behavior", "behavior_ophys"]
    assert table.loc[table.session_kind == "behavior", "n_cells"].isna().all()
    with ophys_xr.open_sessions(root) as tree:
        assert sorted(tree.children) == sorted([str(oeid), f"behavior_session_{bsid}"])
    result = ophys_xr.map_sessions(lambda ds: ds.ophys.performance()["mean_hit_rate"], root,
                                   combine=False)
    assert result.errors.empty
    assert len(result.results) == 2


def test_damaged_experiment_is_not_a_behavior_session(tmp_path) -> None:
    path = write_nwb(simulate_session(n_cells=2, minutes=0.5, seed=4), tmp_path / "e.nwb")
    with h5py.File(path, "r+") as f:
        del f[L.OPHYS]
    with pytest.raises(ophys_xr.NotAnOphysSessionError, match="incomplete or damaged"):
        ophys_xr.open_session(path)


def test_imaging_variables_in_a_behavior_session_are_refused() -> None:
    ds = simulate_session(minutes=0.5, seed=4, behavior_only=True)
    variables = dict(ds.variables)
    variables["motion_correction_x"] = xr.Variable(("time",), np.zeros(3))
    with pytest.raises(ophys_xr.SchemaError, match="behavior session"):
        ophys_xr.create_session_dataset(variables, ds.attrs)
