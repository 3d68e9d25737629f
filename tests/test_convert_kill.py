"""An interrupted conversion (killed process) never leaves an output that looks complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import ophys_xr
from ophys_xr.testing import write_session_nwb


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
