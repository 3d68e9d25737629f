"""The floor of reading ΔF/F: the first read in a fresh process against plain h5py, and what
one cell's read from a Zarr store costs, layer by layer.

Default (first read, issue 15: "first read of all ΔF/F in a fresh process ≤ 1.3× plain
h5py, warm reads as today"): fresh processes, the variants interleaved (the order rotates
every round), medians.  Each process opens the file, then times its first read of all ΔF/F
and three warm repeats:

- ``h5py``: ``h5py.File(path)["…/dff/traces/data"][()]`` (all ROIs, the plain floor);
- ``ophys_xr``: ``open_session(path)`` then ``ds.dff.values`` (valid ROIs, as users read);
- ``ophys_xr, all ROIs``: the same with ``exclude_invalid_rois=False``;
- ``ophys_xr via h5py reads``: the current code with the positioned reads switched off
  (every block read by h5py), the alternative design;
- ``ophys_xr reader alone``: the lazy array under ``ds.dff`` read whole without dask (one
  block, one output array: what the reader costs before dask's concatenation);
- ``ophys_xr REV``: with ``--before REV``, the package as it was at git revision REV
  (``git archive REV ophys_xr`` into a temporary folder put first on ``sys.path``).

dask's first ``compute`` in a process imports ``distributed`` (about 0.2 s, however small
the array): each ophys_xr process pays it on a tiny array first, timed apart, so that the
first read is the file's.  The file stays in the OS page cache (it is read by every
process), as when a session is analysed again.

    python benchmarks/bench_read_floor.py [--cells 300] [--minutes 60] [--rounds 7]
        [--before REV] [--zarr-cell]

``--zarr-cell``: instead, one cell's read from a Zarr store layer by layer (the plain file
read, zarr-python, dask's own floor, ophys_xr's lazy Dataset), back to back (CPU caches
hot), after a 50 ms pause, and from disk (the chunk file evicted from the page cache); the
target "one cell's ΔF/F from Zarr at least 30× faster than from the NWB file" needs the
Zarr read under 1/30 of the NWB read (which reads the whole dff matrix).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import isolated, record, session_file, size_args

CODE = """
import sys, time
import numpy as np, dask.array as dsa, zarr
import ophys_xr
sys.path.insert(0, params["here"])
from _common import evict
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
    evict(path)
    t0 = time.perf_counter(); nwb.dff.isel(cell_specimen_id=k).values
    nwb_disk.append(time.perf_counter() - t0)
result = dict(
    med={n: {c: float(np.median(v)) for c, v in d.items()} for n, d in out.items()},
    nwb_disk=float(np.median(nwb_disk)), n_time=n_time, chunk_mb=n_time * 8 / 1e6,
)
"""


FIRST = """
import os, sys, time
sys.path[:0] = params["sys_path"]
import numpy as np
DFF = "processing/ophys/dff/traces/data"
path, variant = params["path"], params["variant"]
t0 = time.perf_counter()
if variant == "h5py":
    import h5py
    f = h5py.File(path, "r")
    dset = f[DFF]
    read = lambda: dset[()]
    setup = 0.0
else:
    import dask.array as da
    import ophys_xr
    if variant == "h5py reads":
        import ophys_xr.backends.nwb as nwb
        nwb.raw_location = lambda dset, path: None
    ds = ophys_xr.open_session(path, exclude_invalid_rois=variant != "all ROIs")
    s0 = time.perf_counter(); da.zeros(3).sum().compute(); setup = time.perf_counter() - s0
    read = lambda: ds.dff.values
    if variant == "reader alone":
        from xarray.core.indexing import BasicIndexer
        from ophys_xr.backends._arrays import DaskSource
        (source,) = [v for v in dict(ds.dff.data.dask).values() if isinstance(v, DaskSource)]
        read = lambda: source.array[BasicIndexer((slice(None), slice(None)))]
opened = time.perf_counter() - t0

def timed():
    # wall time, CPU time (user + system, every thread of the process), shape of a read
    c0, t0 = os.times(), time.perf_counter()
    shape = list(read().shape)  # the array is freed before the next read
    t1, c1 = time.perf_counter(), os.times()
    return t1 - t0, (c1.user - c0.user) + (c1.system - c0.system), shape

first, first_cpu, shape = timed()
warm = [timed() for _ in range(3)]
result = dict(first=first, first_cpu=first_cpu, warm=float(np.median([w for w, _, _ in warm])),
              warm_cpu=float(np.median([c for _, c, _ in warm])), setup=setup, opened=opened,
              peak=peak_mb(), shape=shape,
              module=sys.modules["ophys_xr"].__file__ if "ophys_xr" in sys.modules else "")
"""


def _export(rev: str, into: str) -> str:
    """``ophys_xr`` as at git revision ``rev``, unpacked under ``into``."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "ophys_xr"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def first_read(args: argparse.Namespace) -> None:
    path = session_file(args.cells, args.minutes)
    variants: dict[str, list[str]] = {
        "h5py": [], "ophys_xr": [], "ophys_xr, all ROIs": [], "ophys_xr via h5py reads": [],
        "ophys_xr reader alone": [],
    }
    tmp = tempfile.mkdtemp(prefix="ophys_xr_before_")
    try:
        if args.before:
            variants[f"ophys_xr {args.before}"] = [_export(args.before, tmp)]
        names = list(variants)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for k in range(args.rounds):
            for name in names[k % len(names):] + names[:k % len(names)]:
                variant = {"ophys_xr, all ROIs": "all ROIs", "ophys_xr via h5py reads":
                           "h5py reads", "ophys_xr reader alone": "reader alone"}.get(name, name)
                r = isolated(FIRST, path=str(path), variant=variant,
                             sys_path=variants[name])
                if variants[name]:
                    assert r["module"].startswith(tmp), r["module"]
                runs[name].append(r)
                print(f"{name}: first {r['first']:.3f} s (CPU {r['first_cpu']:.3f} s), warm "
                      f"{r['warm']:.3f} s (CPU {r['warm_cpu']:.3f} s)", file=sys.stderr,
                      flush=True)
    finally:
        shutil.rmtree(tmp)

    def med(name: str, key: str) -> float:
        return float(np.median([r[key] for r in runs[name]]))

    def best(name: str, key: str) -> float:
        return float(np.min([r[key] for r in runs[name]]))

    ms = "{:.0f} ms".format
    rows = []
    for name in names:
        shape = "×".join(map(str, runs[name][0]["shape"]))
        for key, what in (("first", f"({shape}): first read"), ("warm", ": warm read")):
            cells = [ms(f(name, k) * 1e3) for f in (med, best) for k in (key, key + "_cpu")]
            rows.append((f"{name}{what}, wall / CPU: median; best",
                         "{} / {}; {} / {}".format(*cells), "-"))
        rows.append((f"{name}: peak RSS of the process", f"{med(name, 'peak'):.0f} MB", "-"))
    for name in names[1:]:
        for key, what in (("first", "first read"), ("warm", "warm read")):
            target = "≤ 1.3×" if (name, key) == ("ophys_xr", "first") else "-"
            cells = [f(name, k) / f("h5py", k) for f in (med, best)
                     for k in (key, key + "_cpu")]
            rows.append((f"{name} / h5py, {what}, wall / CPU: median; best",
                         "{:.2f}× / {:.2f}×; {:.2f}× / {:.2f}×".format(*cells), target))
    rows.append(("dask's first compute in a process (imports distributed; not in the above)",
                 ms(med("ophys_xr", "setup") * 1e3), "-"))
    size_mb = int(np.prod(runs["h5py"][0]["shape"])) * 8 / 1e6
    record(
        f"bench_read_floor: first read of all ΔF/F in a fresh process ({args.cells} cells, "
        f"{args.minutes:g} min, {size_mb:.0f} MB)",
        rows,
        notes=(f"Medians of {args.rounds} fresh processes per variant, interleaved (the order "
               "rotates every round); the file in the page cache. 'h5py': `dset[()]` of all "
               "ROIs; 'ophys_xr': `open_session(path)` then `ds.dff.values` (valid ROIs: a "
               "gather of columns, then dask's concatenation of the blocks); 'via h5py "
               "reads': the same code with every block read by h5py instead of positioned "
               "reads; 'reader alone': the `H5ArrayWrapper` under `ds.dff` indexed whole, "
               "no dask. Warm: the same read repeated in the process (median of 3). CPU: "
               "user + system time of the process over the read (all threads), less "
               "sensitive than wall time to the other work of a shared machine; 'best': the "
               "fastest of the processes, the cost without interference (the shared machine "
               "runs some processes several times slower)."),
    )


def zarr_cell(args: argparse.Namespace) -> None:
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



def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=7)
        parser.add_argument("--before", default=None, help="also time the package at this git "
                            "revision")
        parser.add_argument("--zarr-cell", action="store_true",
                            help="one cell's read from Zarr, layer by layer, instead")

    args = size_args(__doc__, extra)
    (zarr_cell if args.zarr_cell else first_read)(args)


if __name__ == "__main__":
    main()
