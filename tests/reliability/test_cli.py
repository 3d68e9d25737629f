"""Promises of the ``ophys-xr`` command line about failures.

- Every failure of every command (``info``, ``convert``, ``verify``, ``demo``) is one line
  on stderr starting ``error:`` and a non-zero exit code (2: the input, the output or an
  option; 1: an unexpected error, or damage that ``verify`` found; 130: interrupted); no
  traceback.  ``ophys-xr --debug COMMAND`` raises the error with its traceback.
- A usage error of the installed program (an unknown option, a missing argument) is one
  line too.
- ``convert`` of a damaged store refuses and writes nothing; ``convert --overwrite`` onto a
  folder ophys_xr did not write deletes nothing.
- ``verify STORE`` prints one line per problem and exits 1; a whole store exits 0.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ophys_xr
from ophys_xr.cli import app

runner = CliRunner()


def _one_line_failure(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.stdout == "" or "error:" not in result.stdout
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


@pytest.fixture(scope="module")
def store(tiny_path, tmp_path_factory) -> Path:
    with ophys_xr.open_session(tiny_path, exclude_invalid_rois=False) as ds:
        return ophys_xr.to_zarr(ds, tmp_path_factory.mktemp("cli") / "s.zarr")


@pytest.fixture
def damaged(store, tmp_path) -> Path:
    copy = Path(shutil.copytree(store, tmp_path / "damaged.zarr"))
    next((copy / "valid_roi" / "c").iterdir()).unlink()
    return copy


def test_info_of_a_damaged_store_fails_in_one_line(damaged) -> None:
    err = _one_line_failure(runner.invoke(app, ["info", str(damaged)]))
    assert str(damaged) in err
    assert "valid_roi" in err


def test_convert_of_a_damaged_store_refuses(damaged, tmp_path) -> None:
    out = tmp_path / "out.nc"
    err = _one_line_failure(runner.invoke(
        app, ["convert", str(damaged), str(out), "-f", "netcdf", "--no-progress"]))
    assert "damaged" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.zarr"]


def test_convert_overwrite_never_deletes_an_ordinary_folder(tiny_path, tmp_path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    source = Path(shutil.copyfile(tiny_path, folder / "s.nwb"))
    err = _one_line_failure(runner.invoke(
        app, ["convert", str(source), str(folder), "--overwrite", "--no-progress"]))
    assert "did not write" in err
    assert [p.name for p in folder.iterdir()] == ["s.nwb"]
    assert source.read_bytes() == tiny_path.read_bytes()


def test_convert_with_an_unreadable_chunk_fails_in_one_line(store, tmp_path) -> None:
    copy = Path(shutil.copytree(store, tmp_path / "s.zarr"))
    chunk = next(p for p in (copy / "roi_mask").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[8:40] = bytes(32)  # same size: passes the open check, fails decoding
    chunk.write_bytes(bytes(data))
    out = tmp_path / "out.nc"
    err = _one_line_failure(runner.invoke(
        app, ["convert", str(copy), str(out), "-f", "netcdf", "--no-progress"]))
    assert "cannot read 'roi_mask'" in err
    assert not out.exists()


def test_verify_prints_one_line_per_problem(store, damaged, tmp_path) -> None:
    ok = runner.invoke(app, ["verify", str(store)])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("ok: ")
    (damaged / "extra.bin").write_bytes(b"x")
    result = runner.invoke(app, ["verify", str(damaged)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("damaged: ") for line in lines)
    assert "valid_roi/c/0 is missing" in lines[0]
    assert "extra.bin is not in the manifest" in lines[1]
    missing = runner.invoke(app, ["verify", str(tmp_path / "nothing.zarr")])
    assert "No such session store" in _one_line_failure(missing)


def test_demo_into_a_missing_folder_fails_in_one_line(tmp_path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "no" / "demo.nwb"),
                                 "--cells", "2", "--minutes", "0.5"])
    err = _one_line_failure(result)
    assert "does not exist" in err


def test_an_unexpected_error_is_one_line_and_debug_shows_it(tiny_path, monkeypatch) -> None:
    import ophys_xr.cli

    def boom(ds: object) -> str:
        msg = "a bug\nover two lines"
        raise ZeroDivisionError(msg)

    monkeypatch.setattr(ophys_xr.cli, "summary", boom)
    err = _one_line_failure(runner.invoke(app, ["info", str(tiny_path)]), code=1)
    assert "unexpected ZeroDivisionError: a bug over two lines" in err
    assert "--debug" in err
    debug = runner.invoke(app, ["--debug", "info", str(tiny_path)])
    assert isinstance(debug.exception, ZeroDivisionError)


def test_interrupt_is_one_line(tiny_path, monkeypatch) -> None:
    import ophys_xr.cli

    def interrupted(ds: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(ophys_xr.cli, "summary", interrupted)
    assert "interrupted" in _one_line_failure(runner.invoke(app, ["info", str(tiny_path)]),
                                              code=130)


@pytest.mark.parametrize("args", [["--bogus"], ["info"], ["convert", "a.nwb"],
                                  ["verify", "a", "b"]])
def test_usage_errors_of_the_program_are_one_line(args) -> None:
    # what the installed console script runs: ``sys.exit(app())``
    program = "import sys; from ophys_xr.cli import app; sys.exit(app())"
    done = subprocess.run([sys.executable, "-c", program, *args], capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stdout == ""
