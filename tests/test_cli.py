"""The ophys-xr command line; an interrupted conversion (killed process) never leaves an
output that looks complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import xarray as xr
from typer.testing import CliRunner

import ophys_xr
from ophys_xr.cli import app
from ophys_xr.testing import write_session_nwb

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


def test_info_of_every_kind(tmp_path) -> None:
    for kind, options in (("behavior", {"behavior_only": True}),
                          ("behavior_ophys", {"passive": True})):
        path = write_session_nwb(tmp_path / f"{kind}.nwb", minutes=0.5, **options)
        result = runner.invoke(app, ["info", str(path)])
        assert result.exit_code == 0, result.output
        assert f"session_kind          {kind}" in result.output
        assert ("no imaging" in result.output) == (kind == "behavior")
        converted = runner.invoke(app, ["convert", str(path), str(tmp_path / f"{kind}.zarr"),
                                        "--no-progress"])
        assert converted.exit_code == 0, converted.output


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


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_killed_conversion_leaves_no_output(tmp_path, fmt) -> None:
    src = write_session_nwb(tmp_path / "big.nwb", n_cells=200, minutes=20.0, seed=3,
                            templates=False)
    out = tmp_path / ("out.zarr" if fmt == "zarr" else "out.nc")
    cli = [sys.executable, "-c", "from ophys_xr.cli import main; main()"]
    proc = subprocess.Popen([*cli, "convert", str(src), str(out), "-f", fmt, "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    partial = []
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in tmp_path.iterdir() if ".partial-" in p.name]
        if partial:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the conversion finished before it could be interrupted"
    assert partial, "no temporary output appeared"
    time.sleep(0.3)  # let it write part of the data
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    with pytest.raises(ophys_xr.OphysXrError):
        ophys_xr.open_session(out)
    # a new conversion succeeds and ignores the leftover temporary output
    done = subprocess.run([*cli, "convert", str(src), str(out), "-f", fmt, "--no-progress"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    with ophys_xr.open_session(out) as ds:
        assert ds.sizes["cell_specimen_id"] == 200
