"""ophys_xr: the operations of the anchors table, run from the current interpreter.

``python ox.py OPERATION '{"path": ...}'`` (the repository's package, installed editable).
Each operation times its own span.
"""

from __future__ import annotations

from typing import Any

from _run import check, clock, main, session_steps, time_import


def op_open(params: dict[str, Any]) -> dict[str, Any]:
    import ophys_xr

    t0 = clock()
    ds = ophys_xr.open_session(params["path"])
    seconds = clock() - t0
    ds.close()
    return {"seconds": seconds}


def op_dff(params: dict[str, Any]) -> dict[str, Any]:
    import ophys_xr

    ds = ophys_xr.open_session(params["path"])
    t0 = clock()
    y = ds.dff.values
    seconds = clock() - t0
    ds.close()
    return {"seconds": seconds, "shape": list(y.shape), "what": "valid ROIs, `ds.dff.values`"}


def cube(params: dict[str, Any], event: str) -> dict[str, Any]:
    """Open + ``stimulus_response(...).compute()`` (traces, mean responses, baselines)."""
    import ophys_xr
    from ophys_xr.responses import stimulus_response

    t0 = clock()
    ds = ophys_xr.open_session(params["path"])
    res = stimulus_response(ds, "dff", event, window=(params["t0"], params["t1"]),
                            sampling_rate=params["rate"]).compute()
    seconds = clock() - t0
    traces = res.eventlocked_traces.transpose("cell_specimen_id", ...)
    ds.close()
    return {"seconds": seconds, "check": check(traces.values, 0),
            "n_events": int(traces.shape[1])}


def op_compat(params: dict[str, Any]) -> dict[str, Any]:
    from ophys_xr.compat import BehaviorOphysSession

    return session_steps(BehaviorOphysSession, params["path"])


main({"import": time_import("ophys_xr"), "open": op_open, "dff": op_dff, "compat": op_compat},
     cube,
     ("ophys_xr", "ophys_xr.backends.nwb", "dask.array", "h5py"))
