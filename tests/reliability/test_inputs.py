"""Promises about what a user hands to the package: sources, options, damaged session files.

- A source that is not a path or URL (None, a number) is refused by name; a ``bytes`` path
  and a ``file://`` URL open the file they name.
- ``engine`` that contradicts the file's suffix is refused, naming the right engine.
- ``chunks`` must map known dimensions to positive sizes or -1 (0, -5, "abc" refused).
- A damaged trace dataset (1-D, strings, fewer ROI columns than the ROI table needs, a ROI
  region outside the table) is refused at open, naming the dataset and the path.
- A string column whose bytes are not UTF-8 is refused at open, naming the dataset.
- Timestamps with NaN or going back, and duplicate cell / ROI / trial / presentation ids,
  are refused at open (they would make ``sel`` wrong later), naming the path.
- Options are checked strictly: ``exclude_invalid_rois="no"`` is an error, not True.
- Analyses refuse what cannot fit in memory before allocating it, and say what to do;
  empty selections get a named error or an empty result, never a raw one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import ophys_xr
from ophys_xr.exceptions import MissingDataError, OptionError, SchemaError

DFF = "/processing/ophys/dff/traces"
TABLE = "/processing/ophys/image_segmentation/cell_specimen_table"


def _replace(f: h5py.File, path: str, data: np.ndarray) -> None:
    attrs = dict(f[path].attrs)
    del f[path]
    f[path] = data
    for key, value in attrs.items():
        f[path].attrs[key] = value


def _damaged(tiny_path: Path, tmp_path: Path, edit: Callable[[h5py.File], Any]) -> Path:
    dst = tmp_path / "damaged.nwb"
    shutil.copyfile(tiny_path, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


# -- sources ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", [None, 3, 2.5, ["a.nwb"]])
def test_a_source_that_is_not_a_path_is_refused_by_name(source: Any) -> None:
    with pytest.raises(OptionError, match="must be a path or a URL"):
        ophys_xr.open_session(source)


def test_a_bytes_path_opens_the_file(tiny_path: Path) -> None:
    with ophys_xr.open_session(str(tiny_path).encode()) as ds:
        assert ds.sizes["cell_specimen_id"] > 0


def test_a_file_url_opens_the_file(tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path.as_uri()) as ds:
        assert ds.sizes["cell_specimen_id"] > 0


def test_a_file_url_of_another_host_is_refused() -> None:
    with pytest.raises(OptionError, match="on the host"):
        ophys_xr.open_session("file://server/share/s.nwb")


@pytest.mark.parametrize("engine", ["netcdf", "zarr"])
def test_an_engine_contradicting_the_suffix_is_refused(tiny_path: Path, engine: str) -> None:
    with pytest.raises(OptionError, match="pass engine='nwb'"):
        ophys_xr.open_session(tiny_path, engine=engine)


# -- options ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -5, "abc", 2.5, True])
def test_chunks_must_be_positive_sizes(tiny_path: Path, size: Any) -> None:
    with pytest.raises(OptionError, match=r"chunks\['time'\] must be a positive integer"):
        ophys_xr.open_session(tiny_path, chunks={"time": size})


def test_chunks_must_name_known_dimensions(tiny_path: Path) -> None:
    with pytest.raises(OptionError, match="unknown dimensions"):
        ophys_xr.open_session(tiny_path, chunks={"frame": 10})


def test_chunks_accept_minus_one_for_whole(tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path, chunks={"time": -1}) as ds:
        assert ds.dff.chunks is not None
        assert ds.dff.data.numblocks[ds.dff.get_axis_num("time")] == 1


@pytest.mark.parametrize("open_", [
    lambda p: ophys_xr.open_session(p, exclude_invalid_rois="no"),
    lambda p: ophys_xr.BehaviorOphysSession.from_nwb_path(p, exclude_invalid_rois="no"),
    lambda p: ophys_xr.open_sessions([p], exclude_invalid_rois="no"),
])
def test_a_string_is_not_a_boolean_option(tiny_path: Path, open_: Callable[[Path], Any]) -> None:
    with pytest.raises(OptionError, match="exclude_invalid_rois must be True or False"):
        open_(tiny_path)


# -- damaged session files -------------------------------------------------------------


@pytest.mark.parametrize(("edit", "match"), [
    (lambda f: _replace(f, f"{DFF}/data", f[f"{DFF}/data"][:, 0]), "traces are 2-D"),
    (lambda f: _replace(f, f"{DFF}/data", f[f"{DFF}/data"][()].astype("S8")), "not numbers"),
    (lambda f: _replace(f, f"{DFF}/data", f[f"{DFF}/data"][:, :2]), "ROI columns"),
    (lambda f: _replace(f, f"{DFF}/rois", f[f"{DFF}/rois"][()] + 100), "outside the ROI table"),
], ids=["1-D", "strings", "fewer-columns", "region-outside"])
def test_a_damaged_trace_dataset_is_refused_at_open(
    tiny_path: Path, tmp_path: Path, edit: Callable[[h5py.File], Any], match: str
) -> None:
    path = _damaged(tiny_path, tmp_path, edit)
    with pytest.raises(SchemaError, match=match) as info:
        ophys_xr.open_session(path)
    assert str(path) in str(info.value)


def _time_edit(change: Callable[[np.ndarray], None]) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        ts = f[f"{DFF}/timestamps"][()]
        change(ts)
        _replace(f, f"{DFF}/timestamps", ts)
    return edit


def _nan(ts: np.ndarray) -> None:
    ts[5] = np.nan


def _swap(ts: np.ndarray) -> None:
    ts[5], ts[6] = ts[6], ts[5]


def _repeat(ts: np.ndarray) -> None:
    ts[6] = ts[5]


@pytest.mark.parametrize(("change", "match"), [
    (_nan, "NaN or infinite"), (_swap, "not strictly increasing"),
    (_repeat, "not strictly increasing"),
], ids=["nan", "back", "repeat"])
def test_bad_timestamps_are_refused_at_open(
    tiny_path: Path, tmp_path: Path, change: Callable[[np.ndarray], None], match: str
) -> None:
    path = _damaged(tiny_path, tmp_path, _time_edit(change))
    with pytest.raises(SchemaError, match=match) as info:
        ophys_xr.open_session(path)
    assert str(path) in str(info.value)


def test_text_that_is_not_utf8_is_refused_at_open(tiny_path: Path, tmp_path: Path) -> None:
    """A table's string column holding bytes that are not UTF-8: a named error with the
    dataset and the file, not a codec error."""
    from ophys_xr.exceptions import InvalidSessionFileError

    def edit(f: h5py.File) -> None:
        group = next(k for k in f["intervals"] if k.endswith("_presentations"))
        path = f"intervals/{group}/image_name"
        values = f[path][()]
        values[3] = b"\xff\xfe"
        attrs = dict(f[path].attrs)
        del f[path]
        f.create_dataset(path, data=values, dtype=h5py.string_dtype("utf-8"))
        for key, value in attrs.items():
            f[path].attrs[key] = value

    path = _damaged(tiny_path, tmp_path, edit)
    with pytest.raises(InvalidSessionFileError, match="not UTF-8") as info:
        ophys_xr.open_session(path)
    assert str(path) in str(info.value)
    assert "image_name" in str(info.value)


@pytest.mark.parametrize("column", ["cell_specimen_id", "id"])
def test_duplicate_cell_ids_are_refused_at_open(
    tiny_path: Path, tmp_path: Path, column: str
) -> None:
    def edit(f: h5py.File) -> None:
        ids = f[f"{TABLE}/{column}"][()]
        ids[1] = ids[0]
        _replace(f, f"{TABLE}/{column}", ids)

    path = _damaged(tiny_path, tmp_path, edit)
    with pytest.raises(SchemaError, match="duplicate ids") as info:
        ophys_xr.open_session(path, exclude_invalid_rois=False)
    assert str(path) in str(info.value)


def test_unmatched_rois_may_share_the_id_minus_one() -> None:
    from ophys_xr.testing import simulate_session

    ds = simulate_session(n_cells=6, n_unmatched=2, seed=1)
    assert int((ds.cell_specimen_id == -1).sum()) == 2


def test_duplicate_ids_in_built_datasets_are_refused() -> None:
    from ophys_xr.model import build_session_dataset
    from ophys_xr.testing import simulate_session

    ds = simulate_session(n_cells=3, seed=1)
    variables: dict[str, Any] = {str(name): var for name, var in ds.variables.items()}
    ids = ds.trials_id.values.copy()
    ids[1] = ids[0]
    variables["trials_id"] = ids
    with pytest.raises(SchemaError, match="trials_id holds 1 duplicate"):
        build_session_dataset(variables, ds.attrs)


# -- analyses --------------------------------------------------------------------------


def test_a_response_window_too_large_is_refused_before_allocating(tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path) as ds, \
            pytest.raises(OptionError, match="GiB .*shorter window"):
        ds.ophys.stimulus_response(window=(-1e6, 1e6))


def test_a_response_cube_of_data_in_memory_counts_toward_the_limit(
    tiny_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ophys_xr import responses

    with ophys_xr.open_session(tiny_path) as lazy:
        ds = lazy.load()
    # the plan alone (24 B × events × offsets) fits; the cube (8 B × cells more) does not
    monkeypatch.setattr(responses, "MAX_RESPONSE_BYTES", 5 * 2**20)
    with pytest.raises(OptionError, match="response cube"):
        ds.ophys.stimulus_response(window=(-100.0, 100.0))


def test_responses_after_an_empty_trial_selection_say_so(tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path) as ds, \
            pytest.raises(MissingDataError, match="no trials"):
        ds.isel(trials_id=slice(0, 0)).ophys.trial_response()


def test_responses_after_an_empty_presentation_selection_say_so(tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path) as ds, \
            pytest.raises(MissingDataError, match="nothing to cut"):
        ds.isel(stimulus_presentations_id=slice(0, 0)).ophys.stimulus_response()


def test_roi_masks_of_no_cells_are_empty(tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        masks = ds.ophys.roi_masks([])
        assert masks.sizes["cell_specimen_id"] == 0
        assert masks.sizes["row"] == ds.sizes["row"]


def test_the_accessor_and_session_name_a_missing_cell(tiny_path: Path) -> None:
    with ophys_xr.open_session(tiny_path) as ds, \
            pytest.raises(MissingDataError, match="12345"):
        ds.ophys.roi_masks([12345])
    with ophys_xr.BehaviorOphysSession.from_nwb_path(tiny_path) as session, \
            pytest.raises(MissingDataError, match="12345"):
        session.get_cell_specimen_indices([12345])


# -- NWB files written by the simulator ------------------------------------------------


def test_write_nwb_overwrites_only_its_own_files(tmp_path: Path) -> None:
    from ophys_xr.backends.nwb_writer import write_nwb
    from ophys_xr.exceptions import OutputExistsError
    from ophys_xr.testing import simulate_session

    ds = simulate_session(n_cells=2, seed=3)
    other = tmp_path / "notes.nwb"
    other.write_bytes(b"years of notes")
    with pytest.raises(OutputExistsError, match="did not write"):
        write_nwb(ds, other, overwrite=True)
    assert other.read_bytes() == b"years of notes"
    ours = write_nwb(ds, tmp_path / "s.nwb")
    write_nwb(ds, ours, overwrite=True)  # its own output: replaced
    with ophys_xr.open_session(ours) as opened:
        assert opened.sizes["cell_specimen_id"] == 2


# -- ophys-xr info refuses what open_session refuses -----------------------------------


@pytest.mark.parametrize(("edit", "match"), [
    (_time_edit(_swap), "not strictly increasing"),
    (_time_edit(_nan), "NaN or infinite"),
    (lambda f: _replace(f, f"{DFF}/data", f[f"{DFF}/data"][:, :2]), "ROI columns"),
    (lambda f: _replace(f, f"{DFF}/data", f[f"{DFF}/data"][:, 0]), "traces are 2-D"),
], ids=["time-back", "time-nan", "fewer-columns", "1-D"])
def test_info_refuses_a_file_that_open_session_refuses(
    tiny_path: Path, tmp_path: Path, edit: Callable[[h5py.File], Any], match: str
) -> None:
    from typer.testing import CliRunner

    from ophys_xr.backends.nwb_metadata import read_nwb_summary
    from ophys_xr.cli import app

    path = _damaged(tiny_path, tmp_path, edit)
    with pytest.raises(SchemaError, match=match):
        ophys_xr.open_session(path)
    with pytest.raises(SchemaError, match=match) as info:
        read_nwb_summary(path)
    assert str(path) in str(info.value)
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 2
    assert match in result.output


def test_info_refuses_duplicate_cell_ids(tiny_path: Path, tmp_path: Path) -> None:
    from ophys_xr.backends.nwb_metadata import read_nwb_summary

    def edit(f: h5py.File) -> None:
        ids = f[f"{TABLE}/cell_specimen_id"][()]
        ids[1] = ids[0]
        _replace(f, f"{TABLE}/cell_specimen_id", ids)

    path = _damaged(tiny_path, tmp_path, edit)
    with pytest.raises(SchemaError, match="duplicate ids"):
        read_nwb_summary(path)
