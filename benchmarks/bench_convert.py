"""Issue 4: NWB → Zarr conversion, one-cell reads from Zarr vs NWB, reopening Zarr.

Targets (300 cells, 60 min): converting at no less than half the speed of plain h5py
reading plus zarr writing of the same arrays; one cell's full ΔF/F trace from Zarr at least
30× faster than from the NWB file; reopening the Zarr store under 0.2 s.

    python benchmarks/bench_convert.py [--cells 300] [--minutes 60]
"""

from __future__ import annotations

import shutil
import tempfile

from _common import isolated, record, session_file, size_args

CODE = """
import time, h5py, numpy as np, zarr
from pathlib import Path
import ophys_xr
path, out = params["path"], Path(params["out"])
# plain h5py read + zarr write of the same large arrays (traces, masks, eye, running)
t0 = time.perf_counter()
group = zarr.open_group(out / "plain.zarr", mode="w", zarr_format=3)
with h5py.File(path, "r") as f:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub" and obj.size > 1000:
            data = obj[()]
            chunks = tuple(min(s, c) for s, c in zip(data.shape, (16384, 16, 512, 512)))
            group.create_array(name.replace("/", "."), data=data, chunks=chunks or None)
    f.visititems(visit)
t_plain = time.perf_counter() - t0
t0 = time.perf_counter()
with ophys_xr.open_session(path, exclude_invalid_rois=False) as ds:
    ophys_xr.to_zarr(ds, out / "session.zarr")
t_convert = time.perf_counter() - t0
reopen = []
for _ in range(5):
    t0 = time.perf_counter(); z = ophys_xr.open_session(out / "session.zarr"); reopen.append(time.perf_counter() - t0)
    z.close()
nwb = ophys_xr.open_session(path)
zs = ophys_xr.open_session(out / "session.zarr")
cid = int(nwb.cell_specimen_id[len(nwb.cell_specimen_id) // 2])
t_nwb, t_zarr = [], []
for _ in range(3):
    t0 = time.perf_counter(); a = nwb.dff.sel(cell_specimen_id=cid).values; t_nwb.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); b = zs.dff.sel(cell_specimen_id=cid).values; t_zarr.append(time.perf_counter() - t0)
assert np.array_equal(a, b)
# the same one-cell read with plain h5py (a column of a time-major, contiguous matrix)
col = int(np.flatnonzero(nwb.cell_roi_id.values == int(nwb.cell_roi_id.sel(cell_specimen_id=cid)))[0])
with h5py.File(path, "r") as f:
    t0 = time.perf_counter(); f["processing/ophys/dff/traces/data"][:, col]; t_h5col = time.perf_counter() - t0
result = dict(plain_s=t_plain, convert_s=t_convert, reopen_s=min(reopen), nwb_cell_s=min(t_nwb),
              zarr_cell_s=min(t_zarr), h5_column_s=t_h5col)
"""


def main() -> None:
    args = size_args(__doc__)
    path = session_file(args.cells, args.minutes)
    out = tempfile.mkdtemp(prefix="ophys_xr_bench_", dir=path.parent)
    try:
        r = isolated(CODE, path=str(path), out=out)
    finally:
        shutil.rmtree(out)
    speed = r["plain_s"] / r["convert_s"]
    cell = r["nwb_cell_s"] / r["zarr_cell_s"]
    record(
        f"bench_convert: NWB → Zarr ({args.cells} cells, {args.minutes:g} min, "
        f"{path.stat().st_size / 1e9:.2f} GB)",
        [
            ("ophys_xr.to_zarr (open + convert, all ROIs)", f"{r['convert_s']:.1f} s", "-"),
            ("plain h5py read + zarr write of the same arrays", f"{r['plain_s']:.1f} s", "-"),
            ("conversion speed relative to plain", f"{speed:.2f}×", "≥ 0.5×"),
            ("one cell's dff from NWB (ophys_xr)", f"{r['nwb_cell_s'] * 1e3:.1f} ms", "-"),
            ("one cell's dff from NWB (plain h5py column)", f"{r['h5_column_s'] * 1e3:.1f} ms",
             "-"),
            ("one cell's dff from Zarr (ophys_xr)", f"{r['zarr_cell_s'] * 1e3:.1f} ms", "-"),
            ("Zarr vs NWB one-cell speed-up", f"{cell:.0f}×", "≥ 30×"),
            ("reopen the Zarr store (best of 5)", f"{r['reopen_s'] * 1e3:.0f} ms", "< 200 ms"),
        ],
    )


if __name__ == "__main__":
    main()
