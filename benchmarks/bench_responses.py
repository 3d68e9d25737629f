"""The image-response cube, ophys_xr vs the BOU loop vs a numpy lower bound.

On a generated 300-cell, 60-minute session (about 4,800 image presentations): the cube of
all valid cells around every image presentation of the change-detection block, window
(-0.5, 0.75) s interpolated at 30 Hz.  Measured in one process:

* the BOU way (brain_observatory_utilities ``event_triggered_response`` as
  ``get_stimulus_response_xr`` calls it): per cell a Series indexed by the timestamps, per
  event a ``.loc`` window slice and ``np.interp`` onto the common grid, a wide DataFrame per
  cell — timed on a subset of the cells and scaled linearly to all of them (it builds
  nothing across cells; the tidy table BOU builds first is not counted);
* a numpy lower bound: dff already in memory, indices and weights by ``searchsorted``, one
  fancy-indexing gather of the whole cube;
* ``ds.ophys.stimulus_response("dff", "images", sampling_rate=30).compute()`` on the opened
  NWB session (reading dff through dask), and the same on a session whose dff is in memory.

Targets: ≥ 20× faster than the BOU way, within 3× of the lower bound, equal to 1e-12.

Then, each in a fresh process from a freshly opened file, interleaved over ``--repeats``
rounds (medians; issue 15): a plain h5py read of all ΔF/F; plain numpy with its read (h5py
read + one vectorised gather) and ophys_xr (``open_session`` + ``stimulus_response(...)
.compute()``) for all image presentations (-0.5…0.75 s) and for the changes (-3…3 s), at
30 Hz.  Targets: all presentations ≤ 8× the h5py read, the changes ≤ 2× numpy with its read.
Results: see benchmarks/RESULTS.md, 'bench_responses'.

    python benchmarks/bench_responses.py [--cells 300] [--minutes 60] [--bou-cells 10]
                                         [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics

from _common import isolated, record, session_file

#: The numpy lower bound: indices and weights by ``searchsorted``, one fancy-indexing
#: gather of the whole cube (event, offset, cell), NaN outside the recording.
NUMPY_CUBE = """
import numpy as np

def numpy_cube(y, ts, events, grid, w0, w1):
    e = events[:, None]
    lo = np.searchsorted(ts, events + w0, "left")[:, None]
    hi = np.searchsorted(ts, events + w1, "right")[:, None] - 1
    j = np.clip(np.searchsorted(ts, e + grid, "right") - 1, lo, hi - 1)  # within the window
    j = np.clip(j, 0, ts.size - 2)
    x0, x1 = ts[j] - e, ts[j + 1] - e
    w = np.clip((grid - x0) / (x1 - x0), 0.0, 1.0)  # clamped: the window's edge samples
    cube = y[j + 1]  # (event, offset, cell): two gathers, the rest in place
    y0 = y[j]
    cube -= y0
    cube *= w[..., None]
    cube += y0
    cube[(grid < ts[0] - e) | (grid > ts[-1] - e)] = np.nan
    return cube
"""

CODE = NUMPY_CUBE + """
import time, gc
import numpy as np, pandas as pd
import ophys_xr
from ophys_xr import _compute

W0, W1, RATE, BOU_CELLS = -0.5, 0.75, 30.0, params["bou_cells"]
path = params["path"]

def best(n, f):
    out, times = None, []
    for _ in range(n):
        gc.collect()
        t0 = time.perf_counter(); out = f(); times.append(time.perf_counter() - t0)
    return out, min(times)

ds = ophys_xr.open_session(path)
ts = ds.time.values
block = np.char.find(ds.stimulus_block_name.values.astype(str), "change_detection") >= 0
events = ds.start_time.values[block & (ds.omitted.values == 0)]
inside = (events + W0 >= ts[0]) & (events + W1 <= ts[-1])  # BOU fails on the others
grid = _compute.eventlocked_time_array(W0, W1, RATE)

# --- read dff (as the lower bound does first) ------------------------------------------
dff, t_read = best(3, lambda: ds.dff.values)

# --- numpy lower bound: one vectorised gather ------------------------------------------
def lower_bound(y):
    return numpy_cube(y, ts, events, grid, W0, W1)
ref, t_lower = best(3, lambda: lower_bound(dff))

# --- the BOU way, on a subset of cells ---------------------------------------------------
def bou_cell(trace):
    series = pd.DataFrame({"t": ts, "y": trace}).set_index("t")["y"]
    data = {"time": grid}
    for k, e in enumerate(events[inside]):
        part = series.loc[e + W0: e + W1]
        data[f"event_{k}_t={e}"] = np.interp(grid, part.index - e, part.values)
    return pd.DataFrame(data).set_index("time").transpose().values
cells = np.linspace(0, dff.shape[1] - 1, BOU_CELLS).round().astype(int)
t0 = time.perf_counter()
bou = np.stack([bou_cell(dff[:, c]) for c in cells])
t_bou_subset = time.perf_counter() - t0
bou_err = float(np.abs(bou - np.moveaxis(ref[inside][:, :, cells], -1, 0)).max())

# --- ophys_xr ----------------------------------------------------------------------------
def with_read():
    s = ophys_xr.open_session(path)
    try:
        return s.ophys.stimulus_response("dff", "images", sampling_rate=RATE).compute()
    finally:
        s.close()
res, t_ox_read = best(3, with_read)
in_memory = ds.assign(dff=ds.dff.copy(data=dff))
res2, t_ox = best(3, lambda: in_memory.ophys.stimulus_response(
    "dff", "images", sampling_rate=RATE).compute())
cube = res.eventlocked_traces.values  # (cell, event, offset)
mine = np.moveaxis(ref, -1, 0)
same_nan = bool(np.array_equal(np.isnan(cube), np.isnan(mine)))
ox_err = float(np.nanmax(np.abs(cube - mine)))
ox_err_mem = float(np.nanmax(np.abs(res2.eventlocked_traces.values - mine)))
result = dict(
    n_cells=int(dff.shape[1]), n_frames=int(ts.size), n_events=int(events.size),
    n_inside=int(inside.sum()), n_offsets=int(grid.size), cube_mb=cube.nbytes / 1e6,
    t_read=t_read, t_lower=t_lower, t_bou_subset=t_bou_subset, bou_cells=int(len(cells)),
    t_ox_read=t_ox_read, t_ox=t_ox, bou_err=bou_err, ox_err=max(ox_err, ox_err_mem),
    same_nan=same_nan, shape=list(cube.shape), dims=list(res.eventlocked_traces.dims),
    peak_mb=peak_mb(), images=events.tolist(),
    changes=ds.start_time.values[block & ds.is_change.values.astype(bool)].tolist(),
)
"""


#: One operation in a fresh process, timed from the freshly opened file (in-process time).
FRESH = {
    "h5py": """
import time, h5py
t0 = time.perf_counter()
with h5py.File(params["path"], "r") as f:
    y = f["processing/ophys/dff/traces/data"][()]
result = dict(seconds=time.perf_counter() - t0)
""",
    "numpy": NUMPY_CUBE + """
import time, h5py
w0, w1, rate = params["window"]
t0 = time.perf_counter()
with h5py.File(params["path"], "r") as f:
    y = f["processing/ophys/dff/traces/data"][()]
    ts = f["processing/ophys/dff/traces/timestamps"][()]
grid = w0 + np.arange(int((w1 - w0) * rate) + 1) / rate  # BOU get_time_array
cube = numpy_cube(y, ts, np.asarray(params["events"]), grid, w0, w1)
result = dict(seconds=time.perf_counter() - t0, shape=list(cube.shape))
""",
    "ophys_xr": """
import time
import ophys_xr
from ophys_xr.responses import stimulus_response
w0, w1, rate = params["window"]
t0 = time.perf_counter()
ds = ophys_xr.open_session(params["path"])
t1 = time.perf_counter()
lazy = stimulus_response(ds, "dff", params["event"], window=(w0, w1), sampling_rate=rate)
t2 = time.perf_counter()
res = lazy.compute()
t3 = time.perf_counter()
result = dict(seconds=t3 - t0, open=t1 - t0, build=t2 - t1, compute=t3 - t2,
              shape=list(res.eventlocked_traces.shape))
""",
    "distributed": """
import time, ophys_xr, xarray, dask.array
t0 = time.perf_counter()
import distributed
result = dict(seconds=time.perf_counter() - t0)
""",
}


def fresh_rounds(path: str, events: dict[str, list[float]], repeats: int
                 ) -> dict[str, dict[str, list[float]]]:
    """Every operation of :data:`FRESH` once per round, in fresh processes, interleaved."""
    windows = {"images": (-0.5, 0.75, 30.0), "changes": (-3.0, 3.0, 30.0)}
    runs: dict[str, dict[str, list[float]]] = {}
    for _ in range(repeats):
        jobs = [("h5py", "read", {})]
        for event, window in windows.items():
            jobs.append(("numpy", event, {"window": window, "events": events[event]}))
            jobs.append(("ophys_xr", event, {"window": window, "event": event}))
        jobs.append(("distributed", "import", {}))
        for tool, what, extra in jobs:
            r = isolated(FRESH[tool], path=path, **extra)
            for key, value in r.items():
                if key != "shape":
                    runs.setdefault(f"{tool} {what}", {}).setdefault(key, []).append(value)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--bou-cells", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds of the fresh-process comparison (medians)")
    args = parser.parse_args()
    path = session_file(args.cells, args.minutes)
    r = isolated(CODE, path=str(path), bou_cells=args.bou_cells)
    t_bou = r["t_bou_subset"] * r["n_cells"] / r["bou_cells"]
    speedup = t_bou / r["t_ox_read"]
    speedup_mem = t_bou / r["t_ox"]
    vs_lower = r["t_ox"] / r["t_lower"]
    vs_lower_read = r["t_ox_read"] / (r["t_lower"] + r["t_read"])
    err = max(r["bou_err"], r["ox_err"])
    runs = fresh_rounds(str(path), {"images": r["images"], "changes": r["changes"]},
                        args.repeats)
    med = {name: {k: statistics.median(v) for k, v in m.items()} for name, m in runs.items()}
    h5 = med["h5py read"]["seconds"]
    fresh_rows = [(f"fresh process, median of {args.repeats}: plain h5py read of all ΔF/F",
                   f"{h5:.3f} s", "-")]
    for event, target, goal in (("images", "≤ 8× the h5py read", h5 * 8),
                                ("changes", "≤ 2× numpy with its read", None)):
        ox, npy = med[f"ophys_xr {event}"], med[f"numpy {event}"]["seconds"]
        met = "met" if ox["seconds"] <= (goal if goal is not None else 2 * npy) else "not met"
        fresh_rows += [
            (f"fresh process: numpy, h5py read + one gather, {event}", f"{npy:.3f} s", "-"),
            (f"fresh process: ophys_xr open + `stimulus_response(..., {event!r}).compute()`",
             (f"{ox['seconds']:.3f} s (open {ox['open']:.3f}, build {ox['build']:.3f}, "
              f"compute {ox['compute']:.3f}); {ox['seconds'] / h5:.1f}× h5py, "
              f"{ox['seconds'] / npy:.2f}× numpy; {met}"),
             target),
        ]
    fresh_rows.append((
        "of which dask's first compute in a process imports distributed (alone, fresh process)",
        f"{med['distributed import']['seconds']:.3f} s", "-"))
    record(
        f"bench_responses: image-response cube ({r['n_cells']} cells × {r['n_events']} images "
        f"× {r['n_offsets']} points at 30 Hz, {r['cube_mb']:.0f} MB; {args.minutes:g}-min "
        f"session, {r['n_frames']} frames)",
        [
            ((f"BOU way (per cell, per event `.loc` + `np.interp`), timed on {r['bou_cells']} "
             f"cells × {r['n_inside']} events and scaled ×{r['n_cells'] / r['bou_cells']:g} "
             "to all cells"),
             f"{t_bou:.1f} s ({r['t_bou_subset']:.2f} s measured)", "-"),
            ("numpy lower bound: one vectorised gather, dff in memory (best of 3)",
             f"{r['t_lower']:.3f} s", "-"),
            ("read dff from the NWB file, all valid cells (`ds.dff.values`, warm page cache)",
             f"{r['t_read']:.3f} s", "-"),
            ("ophys_xr `stimulus_response(...).compute()`, dff in memory (best of 3)",
             (f"{r['t_ox']:.3f} s ({vs_lower:.2f}× the lower bound; {speedup_mem:.0f}× faster "
             "than BOU)"), "≤ 3× the lower bound"),
            ("ophys_xr from the opened NWB session, reading dff (open + compute, best of 3)",
             (f"{r['t_ox_read']:.3f} s ({vs_lower_read:.2f}× lower bound + read; "
             f"{speedup:.0f}× faster than BOU)"), "≥ 20× faster than BOU"),
            ("max |difference|: BOU subset vs lower bound; ophys_xr vs lower bound",
             (f"{r['bou_err']:.1e}; {r['ox_err']:.1e} (NaN at the same places: "
             f"{r['same_nan']})"), "≤ 1e-12"),
            ("peak RSS of the benchmark process", f"{r['peak_mb']:.0f} MB", "-"),
            *fresh_rows,
        ],
        notes=(f"Cube dims {r['dims']} shape {r['shape']}. "
               f"{r['n_events'] - r['n_inside']} of the {r['n_events']} image presentations "
               "have a window reaching past the recording: BOU's loop cannot cut those (empty "
               "`.loc` slice → `np.interp` ValueError, or the edge value repeated), ophys_xr "
               "and the lower bound give NaN there; the BOU timing covers the other "
               f"{r['n_inside']}. Equality is checked on all cells (ophys_xr, in memory and "
               f"from the file) and on the {r['bou_cells']} timed cells (BOU). The "
               "fresh-process rows interleave the tools round by round; times are in-process "
               "(the open includes importing xarray's and dask's modules, the h5py rows "
               "exclude importing h5py). "
               "The machine is shared: compare the ratios of one run."),
    )
    if err > 1e-12 or not r["same_nan"]:
        msg = f"results differ: max |difference| {err:.1e}, NaN at the same places {r['same_nan']}"
        raise SystemExit(msg)


if __name__ == "__main__":
    main()
