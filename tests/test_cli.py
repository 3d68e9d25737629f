"""The ophys-xr command line."""

from __future__ import annotations

import xarray as xr
from typer.testing import CliRunner

import ophys_xr
from ophys_xr.cli import app

runner = CliRunner()


def test_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("info", "convert", "demo"):
        assert command in result.output


def test_info(tiny_path) -> None:
    result = runner.invoke(app, ["info", str(tiny_path)])
    assert result.exit_code == 0, result.output
    assert "882001003" in result.output
    assert "Slc17a7-IRES2-Cre" in result.output
    assert "4 (4 valid)" in result.output
    assert "stimulus_template_warped" in result.output


def test_info_bad_input(tmp_path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path / "missing.nwb")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "No such session file" in result.output
    assert "Traceback" not in result.output


def test_convert(tiny_path, tmp_path) -> None:
    out = tmp_path / "s.zarr"
    result = runner.invoke(app, ["convert", str(tiny_path), str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    with ophys_xr.open_session(out) as a, ophys_xr.open_session(tiny_path) as b:
        xr.testing.assert_identical(a, b)
    again = runner.invoke(app, ["convert", str(tiny_path), str(out)])
    assert again.exit_code == 2
    assert "--overwrite" in again.output
    nc = tmp_path / "s.nc"
    result = runner.invoke(app, ["convert", str(tiny_path), str(nc), "-f", "netcdf",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert nc.exists()


def test_demo(tmp_path) -> None:
    """The README's main job: write an example session, open it, print numbers from it."""
    path = tmp_path / "example.nwb"
    result = runner.invoke(app, ["demo", "--out", str(path), "--cells", "6", "--minutes", "2"])
    assert result.exit_code == 0, result.output
    assert "<xarray.Dataset>" in result.output
    assert "cells                 6 (6 valid)" in result.output
    assert "performance: {" in result.output
    assert "image flashes, by image:" in result.output
    with ophys_xr.open_session(path) as ds:
        response = ds.ophys.stimulus_response(event="images")
        per_image = response.mean_response.mean("cell_specimen_id").groupby(
            "image_name").mean().to_series()
    for image, value in per_image.items():
        assert f"  {image}: {value:+.4f}" in result.output


def test_convert_into_a_missing_folder(tiny_path, tmp_path) -> None:
    out = tmp_path / "no" / "such" / "s.zarr"
    result = runner.invoke(app, ["convert", str(tiny_path), str(out), "--no-progress"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "does not exist" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
