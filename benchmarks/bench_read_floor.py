"""What one cell's read from a Zarr store costs, layer by layer.

The target "one cell's ΔF/F from Zarr at least 30× faster than from the NWB file" needs the
Zarr read under 1/30 of the NWB read (which reads the whole dff matrix; for the measured
figures and the resulting budget see benchmarks/RESULTS.md, 'bench_read_floor').  This
script measures where a one-cell read's time goes, for the same cell chunk file: the plain
file read, zarr-python, dask's own floor (a one-chunk getitem of an in-memory array), and
ophys_xr's lazy Dataset (xarray + dask + zarr).  Each is timed back to back (CPU caches
hot), after a 50 ms pause (as after any other work), and from disk (the chunk file evicted
from the page cache).

    python benchmarks/bench_read_floor.py [--cells 300] [--minutes 60]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from _common import isolated, record, session_file, size_args

CODE = """
import sys, time
import numpy as np, dask.array as dsa, zarr
import ophys_xr
sys.path.insert(0, params["here"])
from _common import evict
from ophys_xr.backends._arrays import _file_map
path, store = params["path"], params["store"]
with ophys_xr.open_session(path, exclude_invalid_rois=False) as ds:
    ophys_xr.to_zarr(ds, store)
zs = ophys_xr.open_session(store, exclude_invalid_rois=False)
nwb = ophys_xr.open_session(path, exclude_invalid_rois=False)
g = zarr.open_array(store + "/dff")
n_time, n_cells = g.shape
in_memory = dsa.from_array(np.zeros((n_time, 8)), chunks=(n_time, 1))
ids = zs.cell_specimen_id.values
rng = np.random.default_rng(0)

def chunk_file(k):
    return f"{store}/dff/c/0/{k}"

def plain(k):
    with open(chunk_file(k), "rb") as f:
        return np.frombuffer(f.read(), "<f8")

reads = {
    "file": plain,
    "zarr": lambda k: g[:, k],
    "dask floor": lambda k: in_memory[:, k % 8].compute(),
    "ophys_xr Zarr": lambda k: zs.dff.sel(cell_specimen_id=ids[k]).values,
}
out = {name: {"hot": [], "pause": [], "disk": []} for name in reads}
for _ in range(15):
    for name, read in reads.items():
        k = int(rng.integers(n_cells))
        read(k)
        t0 = time.perf_counter(); read(k); out[name]["hot"].append(time.perf_counter() - t0)
        time.sleep(0.05)
        t0 = time.perf_counter(); read(k); out[name]["pause"].append(time.perf_counter() - t0)
        evict(chunk_file(k))
        t0 = time.perf_counter(); read(k); out[name]["disk"].append(time.perf_counter() - t0)
nwb_disk = []
for _ in range(5):
    k = int(rng.integers(n_cells))
    _file_map.cache_clear()
    evict(path)
    t0 = time.perf_counter(); nwb.dff.isel(cell_specimen_id=k).values
    nwb_disk.append(time.perf_counter() - t0)
result = dict(
    med={n: {c: float(np.median(v)) for c, v in d.items()} for n, d in out.items()},
    nwb_disk=float(np.median(nwb_disk)), n_time=n_time, chunk_mb=n_time * 8 / 1e6,
)
"""


def main() -> None:
    args = size_args(__doc__)
    path = session_file(args.cells, args.minutes)
    out = tempfile.mkdtemp(prefix="ophys_xr_bench_", dir=path.parent)
    try:
        r = isolated(CODE, path=str(path), store=str(Path(out) / "s.zarr"),
                     here=str(Path(__file__).parent))
    finally:
        shutil.rmtree(out)
    m = r["med"]
    ms = "{:.2f} ms".format
    rows = [
        (f"{name}: back to back / after a 50 ms pause / from disk",
         " / ".join(ms(m[name][c] * 1e3) for c in ("hot", "pause", "disk")), "-")
        for name in m
    ]
    nwb = r["nwb_disk"]
    rows += [
        ("one cell from the NWB file, from disk (the whole matrix)", ms(nwb * 1e3), "-"),
        ("budget for 30×: NWB / 30", ms(nwb / 30 * 1e3), "-"),
        ("ophys_xr Zarr from disk vs NWB from disk", f"{nwb / m['ophys_xr Zarr']['disk']:.0f}×",
         "≥ 30×"),
        ("... the same with the CPU hot (cached chunk, back to back)",
         f"{nwb / m['ophys_xr Zarr']['hot']:.0f}×", "-"),
    ]
    record(
        f"bench_read_floor: one cell's dff ({r['chunk_mb']:.2f} MB chunk) from Zarr, layer by "
        f"layer ({args.cells} cells, {args.minutes:g} min)",
        rows,
        notes=("Medians of 15 reads of random cells. 'file': open() + read() of the cell's "
               "chunk file; 'zarr': zarr-python `array[:, k]`; 'dask floor': `x[:, k].compute()` "
               "of an in-memory dask array with one chunk per column (no I/O); 'ophys_xr "
               "Zarr': `ds.dff.sel(cell_specimen_id=c).values` on the reopened store "
               "(xarray + dask + zarr). 'From disk': the chunk file evicted with "
               "posix_fadvise just before the read."),
    )


if __name__ == "__main__":
    main()
