"""ophys_xr.model: create_session_dataset checks its variables and attributes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import ophys_xr
from ophys_xr.model import create_session_dataset


def test_builder_rejects_bad_input() -> None:
    with pytest.raises(ophys_xr.SchemaError, match="are not session variables"):
        create_session_dataset({"nonsense": np.zeros(3)}, {})
    missing = "required variables of a behavior_ophys session missing"
    with pytest.raises(ophys_xr.SchemaError, match=missing):
        create_session_dataset({"time": np.zeros(3)}, {})


def test_builder_rejects_unsafe_attrs(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        variables = {name: var for name, var in ds.variables.items()}
        with pytest.raises(ophys_xr.SchemaError, match="netCDF"):
            create_session_dataset(variables, {**ds.attrs, "flag": True}, derive=False)
        with pytest.raises(ophys_xr.SchemaError, match="netCDF"):
            create_session_dataset(variables, {**ds.attrs, "d": {"a": 1}}, derive=False)
        bad = dict(variables)
        bad["dff"] = xr.Variable(("cell_specimen_id", "time"), np.zeros((4, 3859)))
        with pytest.raises(ophys_xr.SchemaError, match="dims"):
            create_session_dataset(bad, ds.attrs, derive=False)


def test_behavior_session_with_imaging_attributes_builds() -> None:
    """A behavior session keeps attributes such as the pixel size (no row/column to label)."""
    from ophys_xr.testing import simulate_session

    ds = simulate_session(minutes=0.5, seed=1, behavior_only=True)
    attrs = {**ds.attrs, "pixel_spacing": [0.00078125, 0.00078125], "pixel_spacing_unit": "mm"}
    built = create_session_dataset(dict(ds.variables), attrs)
    assert built.attrs["session_kind"] == "behavior"
    assert built.attrs["pixel_spacing"] == [0.00078125, 0.00078125]
