"""Ten experiments through the project cache over a slow link: streamed versus downloaded.

A simulated release (``tests/_bucket.py``: manifests, metadata tables, NWB files; written once
to ``benchmarks/.data``) is served on 127.0.0.1 with ``--latency`` seconds (default 30 ms) added
to every request.  For each way of reading (streamed by URL with range requests; downloaded
whole with the manifest's hash, then read locally) and each cluster (``dask.distributed``
LocalCluster of 1 and 2 worker processes), the experiments are opened by id in the workers
(``cache.open_experiment`` inside each task; only ids and the pickled cache travel) and each
computes its per-cell mean image response (``stimulus_response`` of ΔF/F to the image
flashes, averaged per cell); the results are combined by ``cell_specimen_id``.  Measured: wall
time, body bytes the server sent, requests.  Every run starts from an empty cache folder.

    python benchmarks/bench_cache.py [--experiments 10] [--cells 100] [--minutes 10]
                                     [--latency 0.03] [--repeats 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import xarray as xr
from _common import DATA, record

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def mean_image_response(cache: Any, ophys_experiment_id: int, download: bool) -> xr.DataArray:
    """Open one experiment through the cache and reduce it (runs on a worker)."""
    with cache.open_experiment(ophys_experiment_id, download=download) as ds:
        resp = ds.ophys.stimulus_response(data="dff", event="images", window=(-0.5, 0.75))
        return resp.mean_response.mean("stimulus_presentations_id").compute()


def release_folder(args: argparse.Namespace) -> Path:
    """The simulated release of this size (built once, then reused)."""
    from _bucket import build_release

    mice = -(-args.experiments // 3)  # three imaging sessions per mouse
    folder = DATA / f"release_{mice}mice_{args.cells}c_{args.minutes:g}min"
    if not (folder / "visual-behavior-ophys" / "manifests").exists():
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"generating {folder.name} ...", file=sys.stderr, flush=True)
        build_release(tmp, mice=mice, n_cells=args.cells, minutes=args.minutes,
                      multiplane=False)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def run(server: Any, ids: list[int], *, workers: int, download: bool) -> dict[str, float]:
    """One measured run: an empty cache folder, a fresh cluster, the ten experiments."""
    from distributed import Client, LocalCluster

    from ophys_xr import ProjectCache, combine_by_cell

    with tempfile.TemporaryDirectory() as cache_dir, \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("ophys_xr"))  # imports paid before the clock
        cache = ProjectCache.from_s3_cache(cache_dir, base_url=server.url)
        cache.get_ophys_experiment_table()  # the tables: the same in both ways, not timed
        sent, requests = server.bytes_sent, len(server.requests)
        t0 = time.perf_counter()
        futures = client.map(mean_image_response, [cache] * len(ids), ids,
                             [download] * len(ids), pure=False)
        results = dict(zip(ids, client.gather(futures), strict=True))
        combined = combine_by_cell(results)
        elapsed = time.perf_counter() - t0
        assert combined.sizes["ophys_experiment_id"] == len(ids)
        return {"s": elapsed, "bytes": server.bytes_sent - sent,
                "requests": len(server.requests) - requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=10)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from _bucket import serve_bucket

    folder = release_folder(args)
    nwb = sorted((folder / "visual-behavior-ophys" / "behavior_ophys_experiments").glob("*.nwb"))
    ids = [int(p.stem.rsplit("_", 1)[1]) for p in nwb][: args.experiments]
    total = sum(p.stat().st_size for p in nwb[: args.experiments])
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with serve_bucket(folder, latency=args.latency) as server:
        for _ in range(args.repeats):  # interleaved: the machine's load hits every variant
            for download in (False, True):
                for workers in (1, 2):
                    way = "downloaded" if download else "streamed"
                    out = run(server, ids, workers=workers, download=download)
                    print(way, workers, out, file=sys.stderr, flush=True)
                    results.setdefault((way, workers), []).append(out)
    rows = []
    for (way, workers), runs in results.items():
        best = min(runs, key=lambda r: r["s"])
        rows.append((f"{way}, {workers} worker{'s' if workers > 1 else ''}",
                     (f"{best['s']:.1f} s, {best['bytes'] / 1e6:.0f} MB in "
                      f"{best['requests']:.0f} requests"), "-"))
    for way in ("streamed", "downloaded"):
        one, two = (min(r["s"] for r in results[way, w]) for w in (1, 2))
        rows.append((f"{way}: speed-up 2 vs 1 workers", f"{one / two:.2f}×", "-"))
    stream = min(r["s"] for r in results["streamed", 2])
    whole = min(r["s"] for r in results["downloaded", 2])
    stream_bytes = min(r["bytes"] for r in results["streamed", 2])
    rows.append(("streamed / downloaded (2 workers): time, bytes",
                 f"{stream / whole:.2f}× the time, {stream_bytes / total:.0%} of the bytes", "-"))
    record(
        f"bench_cache: {len(ids)} experiments through the project cache, {args.latency * 1e3:g} ms "
        f"a request ({args.cells} cells, {args.minutes:g} min each, {total / 1e6:.0f} MB in all)",
        rows,
        notes=(f"Per-cell mean image response (`stimulus_response` of dff to the image flashes) "
               f"of each experiment, opened by id in the worker; best of {args.repeats} "
               "interleaved run(s), each from an empty cache folder and a fresh LocalCluster; "
               "bytes are the body bytes the loopback server sent (the metadata tables, "
               "fetched once before the clock, not counted)."),
    )


if __name__ == "__main__":
    main()
