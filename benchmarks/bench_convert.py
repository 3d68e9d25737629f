"""Issue 4: NWB → Zarr conversion, one-cell reads from Zarr vs NWB, reopening Zarr.

Targets (300 cells, 60 min): converting at no less than half the speed of plain h5py
reading plus zarr writing of the same arrays; one cell's full ΔF/F trace from Zarr at least
30× faster than from the NWB file; reopening the Zarr store under 0.2 s.

    python benchmarks/bench_convert.py [--cells 300] [--minutes 60]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from _common import isolated, record, session_file, size_args

CODE = """
import sys, time, h5py, numpy as np, zarr
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
sys.path.insert(0, params["here"])
from _common import drop_caches
nwb = ophys_xr.open_session(path)
zs = ophys_xr.open_session(out / "session.zarr")
cids = [int(c) for c in nwb.cell_specimen_id[::max(1, nwb.sizes["cell_specimen_id"] // 3)][:3]]
t_nwb, t_zarr, cold = [], [], []
for cid in cids:  # warm page cache
    t0 = time.perf_counter(); a = nwb.dff.sel(cell_specimen_id=cid).values; t_nwb.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); b = zs.dff.sel(cell_specimen_id=cid).values; t_zarr.append(time.perf_counter() - t0)
    assert np.array_equal(a, b)
import gc
from ophys_xr.backends._arrays import _file_map
cold_nwb, cold_zarr = [], []
for cid in cids:  # from disk: what a first read of a file costs
    _file_map.cache_clear()  # unmap the file, or its pages cannot be dropped
    gc.collect()
    if not drop_caches():
        break
    t0 = time.perf_counter(); nwb.dff.sel(cell_specimen_id=cid).values; cold_nwb.append(time.perf_counter() - t0)
    drop_caches()
    t0 = time.perf_counter(); zs.dff.sel(cell_specimen_id=cid).values; cold_zarr.append(time.perf_counter() - t0)
# the same one-cell read with plain h5py (a column of a time-major, contiguous matrix)
col = int(np.flatnonzero(nwb.cell_roi_id.values == int(nwb.cell_roi_id.sel(cell_specimen_id=cid)))[0])
with h5py.File(path, "r") as f:
    t0 = time.perf_counter(); f["processing/ophys/dff/traces/data"][:, col]; t_h5col = time.perf_counter() - t0
cold_h5 = None
if drop_caches():
    with h5py.File(path, "r") as f:
        t0 = time.perf_counter(); f["processing/ophys/dff/traces/data"][:, col + 1]; cold_h5 = time.perf_counter() - t0
result = dict(plain_s=t_plain, convert_s=t_convert, reopen_s=min(reopen), nwb_cell_s=min(t_nwb),
              zarr_cell_s=min(t_zarr), h5_column_s=t_h5col,
              cold_nwb_s=min(cold_nwb) if cold_nwb else None,
              cold_zarr_s=min(cold_zarr) if cold_zarr else None, cold_h5_s=cold_h5)
"""


def main() -> None:
    args = size_args(__doc__)
    path = session_file(args.cells, args.minutes)
    out = tempfile.mkdtemp(prefix="ophys_xr_bench_", dir=path.parent)
    try:
        r = isolated(CODE, path=str(path), out=out, here=str(Path(__file__).parent))
    finally:
        shutil.rmtree(out)
    speed = r["plain_s"] / r["convert_s"]
    cell = r["nwb_cell_s"] / r["zarr_cell_s"]
    cold = (r["cold_nwb_s"] / r["cold_zarr_s"]) if r["cold_zarr_s"] else None
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
            ("Zarr vs NWB one-cell speed-up, warm page cache", f"{cell:.1f}×", "-"),
            ("one cell's dff from disk (page cache dropped): NWB / Zarr",
             f"{r['cold_nwb_s'] * 1e3:.0f} ms / {r['cold_zarr_s'] * 1e3:.1f} ms"
             if cold else "page cache cannot be dropped here", "-"),
            ("Zarr vs NWB (ophys_xr, memory-mapped) one-cell speed-up from disk",
             f"{cold:.0f}×" if cold else "n/a", "≥ 30×"),
            ("one cell's dff from disk with plain h5py (column of the NWB matrix)",
             f"{r['cold_h5_s'] * 1e3:.0f} ms" if r["cold_h5_s"] else "n/a", "-"),
            ("Zarr vs plain-h5py NWB one-cell speed-up from disk",
             f"{r['cold_h5_s'] / r['cold_zarr_s']:.0f}×" if r["cold_h5_s"] and cold else "n/a",
             "≥ 30×"),
            ("reopen the Zarr store (best of 5)", f"{r['reopen_s'] * 1e3:.0f} ms", "< 200 ms"),
        ],
    )


if __name__ == "__main__":
    main()
