"""The NWB layout table: the schema's paths, detection, and the reader/writer agreeing on it."""

from __future__ import annotations

import fnmatch
import re

import h5py
import pytest

from ophys_xr.backends import layout as L
from ophys_xr.exceptions import NotNwbFileError, UnsupportedLayoutError
from ophys_xr.variables import SPECS

DATA = "tests/data/tiny.nwb"


def _dataset_path(nwb: str) -> str:
    """The dataset a ``Spec.nwb`` text names, without the qualifiers."""
    path = nwb.removeprefix("computed from ")
    path = re.sub(r" axis \d+$", "", path)
    path = re.sub(r"\[.*\]$", "", path)
    return re.sub(r" \(.*\)$", "", path)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_schema_path_is_in_the_layout_table(name: str) -> None:
    path = _dataset_path(SPECS[name].nwb)
    known = L.paths()
    matches = [p for p in known if fnmatch.fnmatchcase(p, path) or p == path
               or p.startswith(f"{path}/")]
    assert matches, f"{name}: {SPECS[name].nwb!r} is not a path of backends/layout.py"


def test_layout_paths_exist_in_the_allensdk_file() -> None:
    """Every fixed dataset path of the 2023 table that tiny.nwb (AllenSDK 2.16.2) has."""
    with h5py.File(DATA, "r") as f:
        assert L.detect(f, DATA).name == "2023"
        missing = [p for p in L.paths() if "*" not in p and p not in f]
    # what the fixture legitimately lacks: the 2021 names, and the old 'area' of eye series
    allowed = {f"{L.TRIALS}/stimulus_change"}
    allowed |= {f"{L.EYE}/{s}/area" for s in L.EYE_PARTS.values()}
    allowed |= {f"{L.EYE}/{s}/timestamps" for s in L.EYE_PARTS.values()}
    allowed |= {f"intervals/*_presentations/{c}"
                for c, _ in L.LAYOUTS["2021"].presentation_columns}
    allowed |= {f"{L.STIMULUS_TIMESTAMPS}/data"}
    assert sorted(set(missing) - allowed) == []


def test_detect(tmp_path) -> None:
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_group("data")
    with h5py.File(plain, "r") as f, pytest.raises(NotNwbFileError, match="not an NWB file"):
        L.detect(f, str(plain))
    old = tmp_path / "old.nwb"
    with h5py.File(old, "w") as f:
        f.attrs["nwb_version"] = "2.2.0"
        f.create_group("processing/two_photon_imaging")
    with h5py.File(old, "r") as f, pytest.raises(UnsupportedLayoutError, match="2019"):
        L.detect(f, str(old))
    new = tmp_path / "new.nwb"
    with h5py.File(new, "w") as f:
        f.attrs["nwb_version"] = "2.7.0"
        f.create_group(L.METADATA).attrs["experiment_container_id"] = 1
    with h5py.File(new, "r") as f:
        assert L.detect(f, str(new)).name == "2021"
    behavior = tmp_path / "behavior.nwb"
    with h5py.File(behavior, "w") as f:
        f.attrs["nwb_version"] = "2.7.0"
        f.create_group(L.METADATA).attrs["behavior_session_id"] = 1
        f.create_dataset(f"{L.TRIALS}/is_change", data=[True])
    with h5py.File(behavior, "r") as f:
        assert L.detect(f, str(behavior)).name == "2023"
        assert L.session_kind(f, str(behavior)) == "behavior"


def test_layouts_are_consistent() -> None:
    for name, layout in L.LAYOUTS.items():
        assert layout.name == name
        assert set(layout.traces) <= set(L.TRACE_SERIES)
        assert "dff" in layout.traces
        assert layout.presentation_groupings
        stored = [c for c, _ in layout.presentation_columns]
        assert len(stored) == len(set(stored))
        variables = [v for _, v in layout.presentation_columns if v is not None]
        assert set(variables) <= set(SPECS)
        assert set(layout.float_bools) <= set(stored)
