"""``ophys-xr info`` of an NWB file reads with h5py alone, and prints what the Dataset says.

- The summary read from the file's structure (``read_nwb_summary``) is line for line the
  summary of the opened Dataset, for every kind and generation of file, with and without
  the invalid ROIs, with and without eye tracking, licks, rewards and templates.
- ``ophys-xr info`` of an NWB file imports neither xarray nor dask.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import ophys_xr
from ophys_xr.backends.nwb_metadata import read_nwb_summary
from ophys_xr.cli import summary
from ophys_xr.testing import write_session_nwb

CASES = {
    "default": {},
    "2021": {"layout": "2021"},
    "passive": {"passive": True},
    "behavior": {"behavior_only": True},
    "bare": {"eye_tracking": False, "licks": False, "rewards": False, "templates": False,
             "n_invalid": 2, "n_unmatched": 1},
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_file_summary_is_the_dataset_summary(tmp_path, case) -> None:
    path = write_session_nwb(tmp_path / f"{case}.nwb", minutes=0.5, **CASES[case])
    for exclude in (True, False):
        with ophys_xr.open_session(path, exclude_invalid_rois=exclude) as ds:
            expected = summary(ds)
        assert summary(read_nwb_summary(path, exclude_invalid_rois=exclude)) == expected


def test_info_of_an_nwb_file_imports_no_xarray_nor_dask(tiny_path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ophys_xr.cli import app\n"
        f"result = CliRunner().invoke(app, ['info', {str(tiny_path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('xarray', 'dask', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
