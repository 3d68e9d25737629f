"""Plain h5py + numpy: what a user writes without any session library.

Run in its own environment (h5py and numpy only) by ``bench_anchors.py``:
``python plain.py OPERATION '{"path": ...}'``.  Each operation times its own span.
"""

from __future__ import annotations

from typing import Any

from _run import CELLS, DFF, PRESENTATIONS, check, clock, grid, main, time_import


def op_open(params: dict[str, Any]) -> dict[str, Any]:
    import h5py

    t0 = clock()
    f = h5py.File(params["path"], "r")
    seconds = clock() - t0
    f.close()
    return {"seconds": seconds}


def op_dff(params: dict[str, Any]) -> dict[str, Any]:
    import h5py

    with h5py.File(params["path"], "r") as f:
        t0 = clock()
        y = f[DFF + "/data"][()]
        seconds = clock() - t0
    return {"seconds": seconds, "shape": list(y.shape), "what": "all ROIs, `dset[()]`"}


def gather(ts: Any, y: Any, events: Any, offsets: Any) -> Any:
    """Linear interpolation of ``y`` (time, cell) at ``events + offsets``: one vectorised
    gather, (event, offset, cell); NaN outside the recording."""
    import numpy as np

    e = events[:, None]
    lo = np.searchsorted(ts, events + offsets[0], "left")[:, None]
    hi = np.searchsorted(ts, events + offsets[-1], "right")[:, None] - 1
    j = np.clip(np.searchsorted(ts, e + offsets, "right") - 1, lo, hi - 1)
    j = np.clip(j, 0, ts.size - 2)
    x0, x1 = ts[j] - e, ts[j + 1] - e
    w = np.clip((offsets - x0) / (x1 - x0), 0.0, 1.0)
    cube = y[j + 1]
    y0 = y[j]
    cube -= y0
    cube *= w[..., None]
    cube += y0
    cube[(offsets < ts[0] - e) | (offsets > ts[-1] - e)] = np.nan
    return cube


def cube(params: dict[str, Any], kind: str) -> dict[str, Any]:
    import h5py
    import numpy as np

    t0 = clock()
    with h5py.File(params["path"], "r") as f:
        ts = f[DFF + "/timestamps"][()]
        y = f[DFF + "/data"][()]
        valid = f[CELLS + "/valid_roi"][()]
        p = f[PRESENTATIONS]
        start = p["start_time"][()]
        block = p["stimulus_block_name"][()]
        flag = p["is_change"][()] == 1 if kind == "changes" else p["omitted"][()] == 0
    in_block = np.array([b"change_detection" in b for b in block])
    events = start[in_block & flag]
    out = gather(ts, y, events, grid(params["t0"], params["t1"], params["rate"]))
    seconds = clock() - t0
    return {"seconds": seconds, "check": check(out[..., valid], 2), "n_events": int(events.size)}


main({"import": time_import("h5py", "numpy"), "open": op_open, "dff": op_dff}, cube,
     ("h5py", "numpy"))
