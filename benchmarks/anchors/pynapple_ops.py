# mypy: disable-error-code="import-untyped"
"""pynapple: the operations of the anchors table, in pynapple's own environment.

``python pynapple_ops.py OPERATION '{"path": ...}'``.  Each operation times its own span.
The NWB file is read with ``nap.load_file`` (pynwb underneath); a response cube is the
ΔF/F resampled onto a regular grid at the requested rate (``TsdFrame.interpolate``, linear)
and cut around the events with ``nap.compute_perievent``, which needs regularly sampled
data.
"""

from __future__ import annotations

from typing import Any

from _run import PRESENTATIONS, check, clock, main, time_import


def op_open(params: dict[str, Any]) -> dict[str, Any]:
    import pynapple as nap

    t0 = clock()
    nwb = nap.load_file(params["path"])
    seconds = clock() - t0
    nwb.close()
    return {"seconds": seconds}


def op_dff(params: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pynapple as nap

    nwb = nap.load_file(params["path"])
    t0 = clock()
    y = np.asarray(nwb["dff/traces"].values)
    seconds = clock() - t0
    nwb.close()
    return {"seconds": seconds, "shape": list(y.shape),
            "what": "all ROIs, `np.asarray(nwb['dff/traces'].values)`"}


def cube(params: dict[str, Any], kind: str) -> dict[str, Any]:
    import numpy as np
    import pynapple as nap

    t0 = clock()
    nwb = nap.load_file(params["path"])
    dff = nwb["dff/traces"]
    p = nwb[PRESENTATIONS.split("/")[-1]]
    block = np.array(["change_detection" in str(b) for b in p["stimulus_block_name"]])
    flag = (p["is_change"] == 1) if kind == "changes" else (p["omitted"] == 0)
    events = nap.Ts(p.start[block & np.asarray(flag)])
    ts = dff.t
    regular = dff.interpolate(nap.Ts(np.arange(ts[0], ts[-1], 1 / params["rate"])))
    peri = nap.compute_perievent(regular, events, window=(params["t0"], params["t1"]))
    out = np.asarray(peri.values)  # (offset, event, cell)
    seconds = clock() - t0
    nwb.close()
    return {"seconds": seconds, "check": check(out.transpose(2, 1, 0), 0),
            "n_events": len(events), "raw_shape": list(out.shape)}


main({"import": time_import("pynapple"), "open": op_open, "dff": op_dff}, cube,
     ("pynapple", "pynwb"))
