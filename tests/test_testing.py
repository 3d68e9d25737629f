"""The session simulator and the NWB writer of ``ophys_xr.testing``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from _dask import raise_if_dask_computes

import ophys_xr
from ophys_xr import testing
from ophys_xr.backends import nwb_writer
from ophys_xr.exceptions import OptionError, SchemaError
from ophys_xr.testing import simulate_session, write_nwb, write_session_nwb
from ophys_xr.variables import GROUPS, METADATA_ATTRS

MANUFACTURER_WARNING = "ignore:The 'manufacturer' field is deprecated:DeprecationWarning"


def round_trip(expected: xr.Dataset, path: Path) -> None:
    write_nwb(expected, path)
    with ophys_xr.open_session(path, exclude_invalid_rois=False) as actual:
        xr.testing.assert_identical(actual.compute(), expected.compute())


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="default"),
        pytest.param({"n_unmatched": 2}, id="unmatched"),
        pytest.param({"eye_tracking": False}, id="no-eye-tracking"),
        pytest.param({"licks": False}, id="no-licks"),
        pytest.param({"rewards": False}, id="no-rewards"),
        pytest.param({"templates": False}, id="no-templates"),
        pytest.param({"n_cells": 12, "n_invalid": 3, "minutes": 1.0, "seed": 7,
                      "chunk_frames": 400, "fov": (48, 80), "n_images": 4}, id="chunked"),
        pytest.param({"layout": "2021"}, id="2021"),
        pytest.param({"layout": "2021", "n_unmatched": 1, "seed": 2}, id="2021-unmatched"),
    ],
)
def test_round_trip(kwargs, tmp_path) -> None:
    round_trip(simulate_session(**kwargs), tmp_path / "session.nwb")


def test_round_trip_of_the_allensdk_file(tiny_path, tmp_path) -> None:
    with ophys_xr.open_session(tiny_path, exclude_invalid_rois=False) as expected:
        round_trip(expected, tmp_path / "tiny_again.nwb")
    assert h5_layout(tmp_path / "tiny_again.nwb") == h5_layout(tiny_path)


# ---- the file is laid out as the AllenSDK's ------------------------------------------


def h5_layout(path: Path) -> dict[str, object]:
    """Every path (links too) with its kind, dtype, rank and attributes (names and types)."""

    def norm(name: str) -> str:
        return re.sub(r"intervals/[^/]+_presentations", "intervals/*_presentations", name)

    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, link: object) -> None:
            if isinstance(link, h5py.SoftLink):
                out[norm(name)] = ("link", norm(link.path))
                return
            obj = f[name]
            attrs = {}
            for key, value in obj.attrs.items():
                if key in ("neurodata_type", "namespace"):
                    attrs[key] = str(value)
                elif key != "object_id":
                    attrs[key] = f"{type(value).__name__} {getattr(value, 'dtype', '')}"
            if isinstance(obj, h5py.Dataset):
                kind = str(h5py.check_string_dtype(obj.dtype) or obj.dtype)
                out[norm(name)] = ("dataset", kind, obj.ndim, sorted(attrs.items()))
            else:
                out[norm(name)] = ("group", sorted(attrs.items()))

        f.visititems_links(visit)
        out["/"] = sorted(k for k in f.attrs if k != "object_id")
    # the writer's one addition, NWB's record of the program that wrote the file: how
    # write_nwb(overwrite=True) knows its own files (tests/reliability/test_inputs.py)
    out.pop("general/source_script", None)
    return out


def test_same_hdf5_layout_as_allensdk_file(tiny_path, tmp_path) -> None:
    path = write_session_nwb(tmp_path / "s.nwb", templates=False)
    simulated, allensdk = h5_layout(path), h5_layout(tiny_path)
    assert sorted(set(simulated) ^ set(allensdk)) == []
    different = {k: (simulated[k], allensdk[k]) for k in simulated if simulated[k] != allensdk[k]}
    assert different == {}


def test_templates_layout(tmp_path) -> None:
    path = write_session_nwb(tmp_path / "s.nwb", n_images=5, template_shape=(12, 20))
    with h5py.File(path, "r") as f:
        (name,) = f["stimulus/templates"]
        g = f[f"stimulus/templates/{name}"]
        assert (g.attrs["neurodata_type"], g.attrs["namespace"]) == (
            "StimulusTemplate", "ndx-aibs-stimulus-template")
        assert (g["data"].dtype, g["data"].shape) == (np.uint8, (5, 12, 20))
        assert (g["unwarped"].dtype, g["unwarped"].shape) == (np.float64, (5, 12, 20))
        assert np.isnan(g["unwarped"][()]).any()
        assert list(g["control_description"].asstr()[()]) == ["im065", "im077", "im066",
                                                               "im085", "im063"]
        index = f[f"stimulus/presentation/{name}"]
        assert index.attrs["neurodata_type"] == "IndexSeries"
        assert index.get("indexed_timeseries", getlink=True).path == f"/stimulus/templates/{name}"
        assert index["data"].dtype == np.uint32
        assert int(index["data"][()].max()) == 4


def test_2021_layout(tmp_path) -> None:
    ds = simulate_session(layout="2021")
    path = write_nwb(ds, tmp_path / "s.nwb")
    with h5py.File(path, "r") as f:
        meta = f["general/metadata"].attrs
        assert "experiment_container_id" in meta
        assert not {"ophys_container_id", "project_code", "targeted_imaging_depth"} & set(meta)
        assert "stimulus_name" not in f["general/task_parameters"].attrs
        assert "demixed_trace" not in f["processing/ophys"]
        assert "r" not in f["processing/ophys/corrected_fluorescence"]
        assert f["processing/ophys/images/max_projection"].dtype == np.float32
        tables = {k for k in f["intervals"] if k.endswith("_presentations")}
        assert tables == {f"{name}_presentations" for name in ds.image_name.values}
        assert "omitted_presentations" in tables
        assert "end_frame" not in f["intervals/omitted_presentations"]
        assert f["intervals/im065_presentations/end_frame"].dtype == np.float64
        assert f["intervals/omitted_presentations/omitted"].dtype == bool
        trials = f["intervals/trials"]
        assert "stimulus_change" in trials
        assert "is_change" not in trials
        assert trials["change_frame"].dtype == np.float64
        assert np.isnan(trials["change_frame"][()]).any()


def test_same_dataset_as_allensdk_file(tiny_path, tmp_path) -> None:
    path = write_session_nwb(tmp_path / "s.nwb")
    templates = set(GROUPS["stimulus_templates"])
    with ophys_xr.open_session(path) as sim, ophys_xr.open_session(tiny_path) as tiny:
        def describe(ds: xr.Dataset) -> dict[str, object]:
            return {str(n): (v.dims, v.dtype, sorted(v.attrs))
                    for n, v in ds.variables.items() if n not in templates}

        assert describe(sim) == describe(tiny)
        assert set(sim.data_vars) >= templates - {"template_image_name"}
        assert set(sim.attrs) == set(tiny.attrs) | {"stimulus_templates_image_set"}
        assert list(sim.data_vars) == [n for n in tiny.data_vars] + [
            "stimulus_template_warped", "stimulus_template_unwarped"]


@pytest.mark.filterwarnings(MANUFACTURER_WARNING)
@pytest.mark.parametrize("layout", ["2023", "2021"])
def test_pynwb_reads_the_file(tmp_path, layout) -> None:
    pynwb = pytest.importorskip("pynwb")
    expected = simulate_session(layout=layout, n_cells=6, minutes=1.0)
    path = write_nwb(expected, tmp_path / "s.nwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        assert nwbfile.identifier == str(expected.attrs["ophys_experiment_id"])
        dff = nwbfile.processing["ophys"]["dff"]["traces"]
        np.testing.assert_array_equal(dff.data[:], expected.dff.values)
        table = dff.rois.table.to_dataframe()
        np.testing.assert_array_equal(table.index, expected.cell_roi_id)
        trials = nwbfile.trials.to_dataframe()
        assert len(trials) == expected.sizes["trials_id"]
        assert sum(map(len, trials.lick_times)) == expected.sizes["trials_lick"]
        events = nwbfile.processing["ophys"]["event_detection"]
        np.testing.assert_array_equal(events.lambdas[:], expected["lambda"])
        (template,) = nwbfile.stimulus_template.values()
        assert template.unwarped.shape == expected.stimulus_template_unwarped.shape
        assert nwbfile.acquisition["EyeTracking"].pupil_tracking.area_raw.shape == (
            expected.sizes["eye_frame"],)
    result = pynwb.validate(path=str(path), use_cached_namespaces=True)
    errors = result[0] if isinstance(result, tuple) else result
    assert list(errors) == []


# ---- determinism and size ------------------------------------------------------------


def test_deterministic(tmp_path) -> None:
    first = write_session_nwb(tmp_path / "a.nwb", seed=3, minutes=1.0)
    second = write_session_nwb(tmp_path / "b.nwb", seed=3, minutes=1.0)
    with ophys_xr.open_session(first) as a, ophys_xr.open_session(second) as b:
        xr.testing.assert_identical(a.compute(), b.compute())
    same = simulate_session(seed=3, minutes=1.0, chunk_frames=97)
    other = simulate_session(seed=4, minutes=1.0)
    with ophys_xr.open_session(first, exclude_invalid_rois=False) as a:
        np.testing.assert_array_equal(same.dff.values, a.dff.values)  # chunking-independent
        assert same.dff.shape == other.dff.shape
        assert not np.array_equal(other.dff.values, a.dff.values)


def test_big_session_is_lazy() -> None:
    with raise_if_dask_computes():
        ds = simulate_session(n_cells=300, minutes=60.0, fov=(128, 128))
    assert ds.sizes["time"] == 111_600
    assert ds.sizes["cell_specimen_id"] == 301
    for name in ("dff", "corrected_fluorescence", "demixed_trace", "neuropil_trace", "events",
                 "filtered_events"):
        assert ds[name].chunks is not None, name
    assert max(ds.dff.chunksizes["time"]) * 301 * 8 <= 16 * 2**20
    chunks = simulate_session(n_cells=3, minutes=1.0, chunk_frames=500).dff.chunksizes["time"]
    assert chunks[:2] == (500, 500)


def test_300_cells_5_minutes(tmp_path) -> None:
    start = time.perf_counter()
    path = write_session_nwb(tmp_path / "big.nwb", n_cells=300, minutes=5.0, seed=1)
    seconds = time.perf_counter() - start
    assert seconds < 30, f"writing took {seconds:.1f} s"
    assert path.stat().st_size > 80e6
    with h5py.File(path, "r") as f:
        dff = f["processing/ophys/dff/traces/data"]
        assert (dff.shape, dff.chunks) == ((9300, 301), None)
        events = f["processing/ophys/event_detection/data"]
        assert (events.compression, events.chunks is not None) == ("gzip", True)
    with ophys_xr.open_session(path) as ds:
        assert ds.sizes["cell_specimen_id"] == 300
        assert ds.sizes["time"] == 9300
        assert float(ds.events.isel(time=slice(0, 1000)).min()) >= 0


# ---- writing safely ------------------------------------------------------------------


def test_refuses_to_overwrite(tmp_path) -> None:
    path = write_session_nwb(tmp_path / "s.nwb", minutes=0.5, templates=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_session_nwb(path, minutes=0.5)
    write_session_nwb(path, minutes=0.5, n_cells=2, n_invalid=0, overwrite=True)
    with ophys_xr.open_session(path) as ds:
        assert ds.sizes["cell_specimen_id"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["s.nwb"]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch) -> None:
    def boom(self):
        msg = "disk full"
        raise OSError(msg)

    monkeypatch.setattr(nwb_writer._Writer, "templates", boom)
    with pytest.raises(OSError, match="disk full"):
        write_session_nwb(tmp_path / "s.nwb", minutes=0.5)
    assert list(tmp_path.iterdir()) == []


def test_write_errors(tmp_path) -> None:
    ds = simulate_session(minutes=0.5)
    with pytest.raises(OptionError, match="layout"):
        write_nwb(ds, tmp_path / "s.nwb", layout="2019")
    bad = ds.copy()
    bad.attrs = {k: v for k, v in ds.attrs.items() if k != "mouse_id"}
    with pytest.raises(SchemaError, match="mouse_id"):
        write_nwb(bad, tmp_path / "s.nwb")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cells": 0, "n_invalid": 0}, "at least one ROI"),
        ({"n_cells": -1}, "n_cells"),
        ({"n_unmatched": 9}, "n_unmatched"),
        ({"minutes": 0.1}, "minutes"),
        ({"n_images": 1}, "n_images"),
        ({"fov": (8, 64)}, "fov"),
        ({"layout": "2019"}, "layout"),
        ({"chunk_frames": 0}, "chunk_frames"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_invalid_options(kwargs, match) -> None:
    with pytest.raises(OptionError, match=match):
        simulate_session(**kwargs)


# ---- the simulated content is consistent ---------------------------------------------


@pytest.fixture(scope="module")
def sim() -> xr.Dataset:
    return simulate_session(n_cells=8, n_invalid=2, n_unmatched=2, minutes=4.0, seed=11).compute()


def test_cells(sim) -> None:
    assert int(sim.valid_roi.sum()) == 8
    assert int((sim.cell_specimen_id == -1).sum()) == 2
    assert sim.indexes["cell_roi_id"].is_unique
    masks = sim.roi_mask.values
    for i in range(sim.sizes["cell_specimen_id"]):
        rows, cols = np.nonzero(masks[i])
        assert (rows.min(), cols.min()) == (int(sim.y[i]), int(sim.x[i]))
        assert rows.max() - rows.min() + 1 == int(sim.height[i])
        assert cols.max() - cols.min() + 1 == int(sim.width[i])
    planes = sim.mask_image_plane.values
    for plane in np.unique(planes):
        assert masks[planes == plane].sum(0).max() == 1  # no overlaps within a plane
    # the AllenSDK sums boolean masks with numpy: a logical OR, so the union (0/1)
    np.testing.assert_array_equal(sim.segmentation_mask_image, masks.any(0))


def test_traces(sim) -> None:
    events = sim.events.values
    assert (events >= 0).all()
    assert 0 < (events > 0).mean() < 0.05
    assert np.isfinite(sim.dff.values).all()
    np.testing.assert_allclose(sim.demixed_trace - sim.r * sim.neuropil_trace,
                               sim.corrected_fluorescence, rtol=1e-10)
    assert (sim.neuropil_trace > 0).all()
    assert sim.max_projection.dtype == np.uint8
    period = np.diff(sim.time.values)
    assert 17.5 < float(sim.time[0]) < 17.7
    assert abs(1 / period.mean() - 31.0) < 0.2
    assert (period > 0).all()


def test_trials(sim) -> None:
    outcome = np.stack([sim[k].values for k in ("hit", "miss", "false_alarm", "correct_reject",
                                                "auto_rewarded", "aborted")])
    np.testing.assert_array_equal(outcome.sum(0), 1)
    np.testing.assert_array_equal(sim.go, sim.hit | sim.miss)
    np.testing.assert_array_equal(sim.catch, sim.false_alarm | sim.correct_reject)
    np.testing.assert_array_equal(sim.trials_is_change, sim.go | sim.auto_rewarded)
    np.testing.assert_array_equal(sim.change_frame == -99, sim.aborted)
    np.testing.assert_array_equal(np.isnan(sim.change_time), sim.aborted)
    np.testing.assert_array_equal(sim.change_image_name != sim.initial_image_name,
                                  sim.trials_is_change)
    assert (sim.trials_start_time[1:].values > sim.trials_stop_time[:-1].values).all()
    np.testing.assert_allclose(sim.trial_length, sim.trials_stop_time - sim.trials_start_time)
    # lick times: contiguous per trial, within the trial window, a subset of all licks
    assert int(sim.lick_times_count.sum()) == sim.sizes["trials_lick"]
    assert np.isin(sim.lick_times, sim.licks_timestamps).all()
    starts = sim.trials_start_time.sel(trials_id=sim.lick_times_trials_id).values
    assert (sim.lick_times.values > starts).all()
    hit = sim.hit.values
    latency = sim.response_latency.values
    assert ((latency[hit] > 0.15) & (latency[hit] < 0.75)).all()
    assert np.isinf(latency[(sim.lick_times_count.values == 0) & ~sim.aborted.values]).all()
    # rewards: one per rewarded trial, same time and volume
    rewarded = ~np.isnan(sim.reward_time.values)
    np.testing.assert_array_equal(sim.reward_time.values[rewarded], sim.rewards_timestamps)
    np.testing.assert_array_equal(sim.reward_volume.values[rewarded], sim.rewards_volume)
    np.testing.assert_array_equal(sim.auto_rewarded.values[rewarded], sim.rewards_auto_rewarded)
    assert (sim.reward_volume.values[hit] == 0.007).all()
    np.testing.assert_array_equal(sim.licks_timestamps,
                                  sim.stimulus_timestamps[sim.licks_frame].values)


def test_presentations(sim) -> None:
    omitted = sim.omitted.values == 1.0
    assert 0.01 < omitted.mean() < 0.1
    assert (sim.image_name.values[omitted] == "omitted").all()
    assert (sim.image_index.values[omitted] == 8).all()
    assert np.isnan(sim.is_image_novel.values[omitted]).all()
    np.testing.assert_allclose(sim.duration, 0.25, atol=0.002)
    np.testing.assert_allclose(np.diff(sim.start_time), 0.75, atol=0.002)
    changes = sim.start_frame.values[sim.is_change.values]
    go_or_auto = (sim.go | sim.auto_rewarded).values
    np.testing.assert_array_equal(changes, sim.change_frame.values[go_or_auto])
    sham = sim.change_frame.values[sim.catch.values]
    np.testing.assert_array_equal(sim.start_frame.values[sim.is_sham_change.values], sham)
    done = ~sim.aborted.values
    change_rows = np.searchsorted(sim.start_frame.values, sim.change_frame.values[done])
    np.testing.assert_allclose(sim.start_time.values[change_rows], sim.change_time.values[done])
    assert sim.flashes_since_change.values[sim.is_change.values].max() == 0
    inside = sim.stimulus_presentations_trials_id.values >= 0
    assert inside.mean() > 0.9
    assert set(np.unique(sim.image_name.values)) <= {*testing._IMAGE_NAMES, "omitted"}


def test_every_trial_outcome_happens() -> None:
    ds = simulate_session(n_cells=1, n_invalid=0, minutes=20.0, eye_tracking=False,
                          templates=False)
    counts = {k: int(ds[k].sum()) for k in ("hit", "miss", "false_alarm", "correct_reject",
                                            "auto_rewarded", "aborted")}
    assert min(counts.values()) >= 1, counts
    assert sum(counts.values()) == ds.sizes["trials_id"]


def test_behaviour_switches() -> None:
    quiet = simulate_session(licks=False, minutes=3.0).compute()
    assert quiet.sizes["lick"] == 0
    assert quiet.sizes["trials_lick"] == 0
    assert not (quiet.hit | quiet.false_alarm | quiet.aborted).any()
    assert quiet.sizes["reward"] == int(quiet.auto_rewarded.sum()) > 0
    dry = simulate_session(rewards=False, minutes=3.0).compute()
    assert dry.sizes["reward"] == 0
    assert not dry.auto_rewarded.any()
    assert (dry.reward_volume == 0).all()
    assert bool(dry.hit.any())


def test_running_and_eye_tracking(sim) -> None:
    assert float(sim.running_speed.mean()) > 5
    assert float(sim.raw_running_speed.mean()) > 5
    assert (sim.v_in > 4.8).all()
    assert float(sim.v_sig.max()) < 5
    np.testing.assert_array_equal(sim.dx, sim.dx.astype(np.float32))
    assert 1 / float(sim.stimulus_timestamps.diff("stimulus_frame").mean()) == pytest.approx(
        59.95, abs=0.01)
    pupil = np.pi * np.fmax(sim.pupil_width, sim.pupil_height) ** 2
    ok = ~sim.likely_blink.values
    np.testing.assert_allclose(sim.pupil_area.values[ok], pupil.values[ok])
    np.testing.assert_allclose(sim.eye_area_raw.values[ok],
                               np.pi * (sim.eye_width * sim.eye_height).values[ok])
    assert np.isnan(sim.pupil_area_raw).any()
    assert 0 < float(sim.likely_blink.mean()) < 0.1
    assert np.isnan(sim.pupil_area.values[~ok]).all()


def test_metadata() -> None:
    ds = simulate_session(minutes=0.5)
    assert set(METADATA_ATTRS) - set(ds.attrs) == {"imaging_plane_group"}
    assert ds.attrs["cre_line"] == ds.attrs["full_genotype"].split(";")[0].replace("/wt", "")
    assert ds.attrs["indicator"] == "GCaMP6f"
    assert ds.attrs["pixel_spacing"] == [0.00078125, 0.00078125]
    task = json.loads(ds.attrs["task_parameters"])
    assert task["image_set"] == "images_A"
    assert task["stimulus_name"] == "Natural_Images_Lum_Matched_set_training_2017"
    assert task["n_stimulus_frames"] == ds.sizes["stimulus_frame"]
    old = simulate_session(minutes=0.5, layout="2021")
    assert old.attrs["nwb_layout"] == "2021"
    assert old.attrs["project_code"] == "Not Available"
    assert "targeted_imaging_depth" not in old.attrs
    assert json.loads(old.attrs["task_parameters"])["stimulus_name"] is None
    assert old.max_projection.dtype == np.float32
    assert 0 <= float(old.max_projection.min()) <= float(old.max_projection.max()) <= 1
    assert not {"demixed_trace", "neuropil_trace", "r", "RMSE", "stimulus_block",
                "stimulus_name", "is_sham_change"} & set(old.variables)
