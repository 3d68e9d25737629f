"""NWB → Zarr conversion, one-cell reads from Zarr vs NWB, reopening Zarr.

Targets (300 cells, 60 min): converting at no less than half the speed of plain h5py
reading plus zarr writing of the same arrays; one cell's full ΔF/F trace from Zarr at least
30× faster than from the NWB file; reopening the Zarr store under 0.2 s.  Results: see
benchmarks/RESULTS.md, 'bench_convert' (and 'Zarr layouts compared').

    python benchmarks/bench_convert.py [--cells 300] [--minutes 60] [--chunks time=32768]

``--chunks`` compares another stored layout (``ophys_xr.to_zarr(..., chunks=...)``).
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
    ophys_xr.to_zarr(ds, out / "session.zarr", chunks=params["chunks"])
t_convert = time.perf_counter() - t0
reopen = []
for _ in range(5):
    t0 = time.perf_counter(); z = ophys_xr.open_session(out / "session.zarr")
    reopen.append(time.perf_counter() - t0)
    z.close()
sys.path.insert(0, params["here"])
from _common import evict
nwb = ophys_xr.open_session(path)
zs = ophys_xr.open_session(out / "session.zarr")
store = out / "session.zarr"
n = nwb.sizes["cell_specimen_id"]
cids = [int(c) for c in nwb.cell_specimen_id.values[np.linspace(0, n - 1, 7).astype(int)]]
minute = int(round(60 * nwb.attrs["ophys_frame_rate"]))
starts = np.linspace(0, nwb.sizes["time"] - minute, 7).astype(int)
dset = "processing/ophys/dff/traces/data"
cols = {int(c): int(k) for k, c in enumerate(nwb.cell_specimen_id.values)}
def cold(read, *files):
    evict(*files)
    t0 = time.perf_counter(); read(); return time.perf_counter() - t0
def warm(read):
    read()
    t0 = time.perf_counter(); read(); return time.perf_counter() - t0
t = {k: [] for k in ("nwb_cell", "zarr_cell", "h5_cell", "nwb_block", "zarr_block",
                     "nwb_all", "zarr_all")}
tw = {k: [] for k in t}
with h5py.File(path, "r") as f:
    for cid, s0 in zip(cids, starts):
        reads = {
            "nwb_cell": (lambda: nwb.dff.sel(cell_specimen_id=cid).values, path),
            "zarr_cell": (lambda: zs.dff.sel(cell_specimen_id=cid).values, store),
            "h5_cell": (lambda: f[dset][:, cols[cid]], path),
            "nwb_block": (lambda: nwb.dff.isel(time=slice(s0, s0 + minute)).values, path),
            "zarr_block": (lambda: zs.dff.isel(time=slice(s0, s0 + minute)).values, store),
            # every valid ROI's whole trace (the default selection)
            "nwb_all": (lambda: nwb.dff.values, path),
            "zarr_all": (lambda: zs.dff.values, store),
        }
        for key, (read, where) in reads.items():
            t[key].append(cold(read, where))
            tw[key].append(warm(read))
    assert np.array_equal(nwb.dff.sel(cell_specimen_id=cids[0]).values,
                          zs.dff.sel(cell_specimen_id=cids[0]).values)
# an analysis over the whole session: the image-flash responses of every cell (warm)
resp = {}
for key, d in (("nwb", nwb), ("zarr", zs)):
    d.ophys.stimulus_response(event="images").mean_response.values
    t0 = time.perf_counter(); d.ophys.stimulus_response(event="images").mean_response.values
    resp[key] = time.perf_counter() - t0
med = {k: float(np.median(v)) for k, v in t.items()}
medw = {k: float(np.median(v)) for k, v in tw.items()}
result = dict(resp=resp, plain_s=t_plain, convert_s=t_convert, reopen_s=min(reopen), cold=med,
              warm=medw, n_reads=len(cids), minute=minute)
"""


def main() -> None:
    args = size_args(__doc__, lambda p: p.add_argument(
        "--chunks", default="", help="stored chunks, e.g. time=32768,cell_specimen_id=2"))
    chunks = {k: int(v) for k, v in (kv.split("=") for kv in args.chunks.split(",") if kv)}
    path = session_file(args.cells, args.minutes)
    out = tempfile.mkdtemp(prefix="ophys_xr_bench_", dir=path.parent)
    try:
        r = isolated(CODE, path=str(path), out=out, here=str(Path(__file__).parent),
                     chunks=chunks or None)
    finally:
        shutil.rmtree(out)
    speed = r["plain_s"] / r["convert_s"]
    c, w = r["cold"], r["warm"]
    ms = "{:.1f} ms".format
    record(
        f"bench_convert: NWB → Zarr ({args.cells} cells, {args.minutes:g} min, "
        f"{path.stat().st_size / 1e9:.2f} GB)"
        + (f", stored chunks {args.chunks}" if chunks else ""),
        [
            ("ophys_xr.to_zarr (open + convert, all ROIs)", f"{r['convert_s']:.1f} s", "-"),
            ("plain h5py read + zarr write of the same arrays", f"{r['plain_s']:.1f} s", "-"),
            ("conversion speed relative to plain", f"{speed:.2f}×", "≥ 0.5×"),
            ("one cell's full dff trace from disk: NWB via ophys_xr (memory-mapped)",
             ms(c["nwb_cell"] * 1e3), "-"),
            ("... NWB via plain h5py (`dset[:, i]`)", ms(c["h5_cell"] * 1e3), "-"),
            ("... Zarr via ophys_xr", ms(c["zarr_cell"] * 1e3), "-"),
            ("one-cell speed-up from disk, Zarr vs NWB (ophys_xr / plain h5py)",
             f"{c['nwb_cell'] / c['zarr_cell']:.0f}× / {c['h5_cell'] / c['zarr_cell']:.0f}×",
             "≥ 30×"),
            ("one cell, page cache warm: NWB (ophys_xr) / h5py / Zarr",
             (f"{w['nwb_cell'] * 1e3:.1f} / {w['h5_cell'] * 1e3:.1f} / "
              f"{w['zarr_cell'] * 1e3:.1f} ms"),
             "-"),
            (f"one minute ({r['minute']} frames) of all cells from disk: NWB / Zarr",
             f"{c['nwb_block'] * 1e3:.1f} / {c['zarr_block'] * 1e3:.1f} ms", "-"),
            ("... page cache warm: NWB / Zarr",
             f"{w['nwb_block'] * 1e3:.1f} / {w['zarr_block'] * 1e3:.1f} ms", "-"),
            ("all valid ROIs' dff from disk: NWB / Zarr",
             f"{c['nwb_all'] * 1e3:.0f} / {c['zarr_all'] * 1e3:.0f} ms", "-"),
            ("... page cache warm: NWB / Zarr",
             f"{w['nwb_all'] * 1e3:.0f} / {w['zarr_all'] * 1e3:.0f} ms", "-"),
            ("image-flash responses of every cell (stimulus_response), warm: NWB / Zarr",
             f"{r['resp']['nwb']:.2f} / {r['resp']['zarr']:.2f} s", "-"),
            ("reopen the Zarr store (best of 5)", f"{r['reopen_s'] * 1e3:.0f} ms", "< 200 ms"),
        ],
        notes=(f"Stored layout: {chunks or 'the default (STORE_CHUNKS)'}. "
               f"Medians over {r['n_reads']} cells / windows. 'From disk': the file's pages are "
               "dropped from the OS page cache before each read (posix_fadvise DONTNEED), "
               "so the read comes from the disk as the first read of a session does; the "
               "interpreter and libraries stay cached."),
    )


if __name__ == "__main__":
    main()
