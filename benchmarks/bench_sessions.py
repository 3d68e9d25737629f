"""Catalog of many files, multi-session computation on dask.distributed, HTTP opening.

Targets: ``catalog`` over 200 generated session files under 10 s on 2 cores; a CPU-bound
per-session reduction over 8 realistic sessions (300 cells, 60 min) on a LocalCluster with
2 worker processes at least 1.7× faster than with 1 worker, peak memory per worker about
one session's working set (the threaded scheduler for comparison); ``open_session`` of a
300-cell session over HTTP from a local server transferring under 5% of the file.
Results: see benchmarks/RESULTS.md, 'bench_sessions'.

    python benchmarks/bench_sessions.py [--files 200] [--sessions 8] [--cells 300] [--minutes 60]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import xarray as xr
from _common import DATA, isolated, record, session_file

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def percentile_per_cell(ds: xr.Dataset) -> xr.Dataset:  # module level: workers unpickle it
    """CPU-bound per-session reduction: 95th percentile and mean filtered events per cell."""
    return (ds.dff.quantile(0.95, dim="time").rename("dff_p95").to_dataset()
            .assign(filtered_events_mean=ds.filtered_events.mean("time")))


DIST = """
import time, resource, sys
sys.path.insert(0, params["here"])
import dask
from distributed import Client, LocalCluster
from bench_sessions import percentile_per_cell
from ophys_xr.sessions import map_sessions
paths = params["paths"]
def peak():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def read_through(paths):  # the same page-cache state for every run: all files cached
    for path in paths:
        with open(path, "rb") as f:
            while f.read(2**24):
                pass
out = {}
for workers in (1, 2):
    read_through(paths)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None,
                      memory_limit="8GiB") as cluster, Client(cluster) as client:
        # warm the workers (imports, first-call costs) on a session that is not timed
        map_sessions(percentile_per_cell, paths[:workers], client=client)
        t0 = time.perf_counter()
        res = map_sessions(percentile_per_cell, paths, client=client)
        out[f"{workers}_s"] = time.perf_counter() - t0
        out[f"{workers}_peak_mb"] = max(client.run(peak).values())
        assert len(res.errors) == 0, res.errors
read_through(paths)
t0 = time.perf_counter()
with dask.config.set(scheduler="threads", num_workers=2):
    res = map_sessions(percentile_per_cell, paths, client=None)
out["threads_s"] = time.perf_counter() - t0
result = out
"""

HTTP = """
import sys, time
sys.path.insert(0, params["tests"])
from _http import serve
from pathlib import Path
import ophys_xr
path = Path(params["path"])
with serve(path.parent) as server:
    t0 = time.perf_counter()
    ds = ophys_xr.open_session(f"{server.url}/{path.name}")
    elapsed = time.perf_counter() - t0
    sent = server.bytes_sent
    ds.dff.isel(time=slice(0, 1000)).values
    after_block = server.bytes_sent
    ds.close()
result = dict(open_s=elapsed, bytes=sent, block_bytes=after_block - sent, size=path.stat().st_size)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    from ophys_xr.sessions import catalog
    from ophys_xr.testing import write_session_nwb

    folder = DATA / f"catalog_{args.files}"
    if not folder.exists() or len(list(folder.glob("*.nwb"))) < args.files:
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i in range(args.files):
            write_session_nwb(tmp / f"session_{i:03d}.nwb", n_cells=10, minutes=1.0, seed=1000 + i,
                              templates=False)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    t0 = time.perf_counter()
    table = catalog(folder)
    t_catalog = time.perf_counter() - t0
    assert table.error.isna().all(), table[table.error.notna()]

    paths = [str(session_file(args.cells, args.minutes, seed=s)) for s in range(args.sessions)]
    dist = isolated(DIST, paths=paths, here=str(Path(__file__).parent))
    session_mb = Path(paths[0]).stat().st_size / 2**20
    http = isolated(HTTP, path=str(session_file(300, 60.0)),
                    tests=str(Path(__file__).parents[1] / "tests"))
    fraction = http["bytes"] / http["size"]
    size = f"{args.sessions} sessions ({args.cells} cells, {args.minutes:g} min)"
    record(
        f"bench_sessions: {args.files}-file catalog, {args.sessions}-session map, HTTP open",
        [
            (f"catalog of {len(table)} files", f"{t_catalog:.2f} s", "< 10 s"),
            (f"map_sessions, {size}, 1 worker process",
             f"{dist['1_s']:.1f} s", "-"),
            ("... 2 worker processes", f"{dist['2_s']:.1f} s", "-"),
            ("speed-up 2 vs 1 workers", f"{dist['1_s'] / dist['2_s']:.2f}×", "≥ 1.7×"),
            ("... threaded scheduler (2 threads), for comparison", f"{dist['threads_s']:.1f} s",
             "-"),
            ("peak RSS per worker (2 workers)",
             f"{dist['2_peak_mb']:.0f} MB (one session file: {session_mb:.0f} MB)",
             "≈ one session's working set"),
            ("open_session over HTTP (local server), 300 cells × 60 min",
             f"{http['open_s']:.2f} s", "-"),
            ("bytes transferred to open",
             f"{http['bytes'] / 1e6:.1f} MB of {http['size'] / 1e9:.2f} GB ({fraction:.2%})",
             "< 5%"),
            ("bytes for 1,000 frames of all cells afterwards",
             f"{http['block_bytes'] / 1e6:.1f} MB", "-"),
        ],
        notes=("The per-session function is `percentile_per_cell` (95th percentile of dff and "
               "mean filtered events per cell: reads dff and events, filters the events). "
               "Every timed run starts with all session files in the page cache (read through "
               "first), on workers warmed on sessions that are not timed. Peak RSS counts the "
               "memory-mapped dff pages of the file a worker reads."),
    )


if __name__ == "__main__":
    main()
