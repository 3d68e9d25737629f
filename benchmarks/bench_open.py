"""Open a realistic session, read ΔF/F, select; time and memory.

Targets (300 cells, 60 min at 31 Hz, ~1.5 GB): ``open_session`` under 0.2 s and under 150 MB
above the interpreter with ophys_xr imported; reading all of ``dff`` within 1.3× of plain
h5py; one cell's trace and 1,000 frames of all cells, timed.  Results: see
benchmarks/RESULTS.md, 'bench_open'.

    python benchmarks/bench_open.py [--cells 300] [--minutes 60]
"""

from __future__ import annotations

from _common import isolated, record, session_file, size_args

CODE = """
import time, h5py, numpy as np
t0 = time.perf_counter(); import ophys_xr; t_import = time.perf_counter() - t0
base = rss_mb()
path = params["path"]
t0 = time.perf_counter(); ds = ophys_xr.open_session(path); t_open = time.perf_counter() - t0
after_open = rss_mb(); peak_open = peak_mb()
ds.close()
opens = []
for _ in range(5):
    t0 = time.perf_counter(); d = ophys_xr.open_session(path)
    opens.append(time.perf_counter() - t0)
    d.close()
ds = ophys_xr.open_session(path)
ds_all = ophys_xr.open_session(path, exclude_invalid_rois=False)
def h5read():
    with h5py.File(path, "r") as f:
        return f["processing/ophys/dff/traces/data"][()]
with h5py.File(path, "r") as f:
    valid = f["processing/ophys/image_segmentation/cell_specimen_table/valid_roi"][()].astype(bool)
def h5read_valid():
    return h5read()[:, valid]
def oxread():
    return ds.dff.values
t_h5, t_h5v, t_ox, t_all = [], [], [], []
for _ in range(5):
    t0 = time.perf_counter(); a = h5read(); t_h5.append(time.perf_counter() - t0); del a
    t0 = time.perf_counter(); a = h5read_valid(); t_h5v.append(time.perf_counter() - t0); del a
    t0 = time.perf_counter(); b = oxread(); t_ox.append(time.perf_counter() - t0); del b
    t0 = time.perf_counter(); c = ds_all.dff.values; t_all.append(time.perf_counter() - t0); del c
cid = int(ds.cell_specimen_id[len(ds.cell_specimen_id) // 2])
cell, block = [], []
for _ in range(3):
    t0 = time.perf_counter(); ds.dff.sel(cell_specimen_id=cid).values
    cell.append(time.perf_counter() - t0)
    mid = ds.sizes["time"] // 2
    t0 = time.perf_counter(); ds.dff.isel(time=slice(mid, mid + 1000)).values
    block.append(time.perf_counter() - t0)
result = dict(import_s=t_import, open_first_s=t_open, open_best_s=min(opens),
              rss_import_mb=base, rss_open_delta_mb=after_open - base,
              peak_open_delta_mb=peak_open - base,
              h5py_dff_s=min(t_h5), h5py_valid_s=min(t_h5v), ophys_dff_s=min(t_ox),
              ophys_all_s=min(t_all),
              one_cell_s=min(cell),
              frames_1000_s=min(block), n_cells=ds.sizes["cell_specimen_id"],
              n_frames=ds.sizes["time"])
"""


def main() -> None:
    args = size_args(__doc__)
    path = session_file(args.cells, args.minutes)
    r = isolated(CODE, path=str(path))
    size_gb = path.stat().st_size / 1e9
    record(
        f"bench_open: open and read a {r['n_cells']}-cell, {args.minutes:g}-min session "
        f"({size_gb:.2f} GB, {r['n_frames']} frames)",
        [
            ("open_session, first in a fresh process", f"{r['open_first_s']:.3f} s", "< 0.2 s"),
            ("open_session, best of 5", f"{r['open_best_s']:.3f} s", "< 0.2 s"),
            ("memory after open above `import ophys_xr` (RSS)",
             f"{r['rss_open_delta_mb']:.0f} MB (peak {r['peak_open_delta_mb']:.0f} MB)",
             "< 150 MB"),
            ("`import ophys_xr` (RSS of the interpreter after import)",
             f"{r['import_s']:.2f} s ({r['rss_import_mb']:.0f} MB)", "-"),
            ("read all dff: plain h5py `dset[()]` (all ROIs)", f"{r['h5py_dff_s']:.3f} s", "-"),
            ("read all dff: ophys_xr, all ROIs (the same dataset)",
             f"{r['ophys_all_s']:.3f} s ({r['ophys_all_s'] / r['h5py_dff_s']:.2f}×)", "≤ 1.3×"),
            ("read the valid ROIs' dff: plain h5py `dset[()][:, valid]`",
             f"{r['h5py_valid_s']:.3f} s", "-"),
            ("read the valid ROIs' dff: ophys_xr `ds.dff.values` (the default Dataset)",
             (f"{r['ophys_dff_s']:.3f} s ({r['ophys_dff_s'] / r['h5py_valid_s']:.2f}× of h5py "
              f"selecting the same ROIs, {r['ophys_dff_s'] / r['h5py_dff_s']:.2f}× of h5py "
              "reading all)"), "≤ 1.3×"),
            ("one cell's full trace", f"{r['one_cell_s'] * 1e3:.1f} ms", "timed"),
            ("1,000 frames of all cells", f"{r['frames_1000_s'] * 1e3:.1f} ms", "timed"),
        ],
        notes="AllenSDK 2.16.2 reference for a session of this size: about 9 s and 2.6 GB "
              "to load (issue text; it reads everything eagerly).",
    )


if __name__ == "__main__":
    main()
