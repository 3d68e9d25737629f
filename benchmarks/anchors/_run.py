"""Run one operation of one tool in this process and print its result as one JSON line.

Imported by every tool script of this folder, in every environment, so it uses the
standard library only.  A tool script defines its operations as functions
``op(params) -> dict`` that time their own span (``seconds``, in-process) and calls
``main(OPERATIONS)``; this adds the peak memory of the process (``ru_maxrss``) and prints
``@@{json}`` on standard output, which ``bench_anchors.py`` reads.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

Operation = Callable[[dict[str, Any]], dict[str, Any]]

# the presentations table of the generated (AllenSDK 2023 layout) session
PRESENTATIONS = "intervals/Natural_Images_Lum_Matched_set_training_2017_presentations"
DFF = "processing/ophys/dff/traces"
CELLS = "processing/ophys/image_segmentation/cell_specimen_table"


def clock() -> float:
    """Seconds of a monotonic wall clock."""
    return time.perf_counter()


def grid(t_start: float, t_end: float, rate: float) -> Any:
    """BOU ``get_time_array(t_start, t_end, sampling_rate=rate, include_endpoint=True)``.

    The same as ``ophys_xr._compute.eventlocked_time_array``, repeated here because the
    other tools' environments have no ophys_xr.
    """
    import numpy as np

    step = 1 / rate
    n_steps: float = (t_end - t_start) / step
    if n_steps != int(n_steps):
        n_steps = int(n_steps)
        end = t_start + n_steps * step
    else:
        end = t_end
    return np.linspace(t_start, end, int(n_steps) + 1, endpoint=True)


def check(cube: Any, cell_axis: int) -> dict[str, Any]:
    """Shape and a few summary values of a response cube, to compare the tools' results.

    The cube is moved to (cell, event, offset) order first.
    """
    import numpy as np

    a = np.moveaxis(np.asarray(cube, dtype=float), cell_axis, 0)
    finite = np.isfinite(a)
    return {"shape": list(a.shape), "nan": int(a.size - finite.sum()),
            "mean": float(a[finite].mean()) if finite.any() else float("nan")}


def time_import(*modules: str) -> Operation:
    """The ``import`` operation: the time to import these modules, in order."""
    import importlib

    def op(params: dict[str, Any]) -> dict[str, Any]:
        t0 = clock()
        for module in modules:
            importlib.import_module(module)
        return {"seconds": clock() - t0}

    return op


def session_steps(session_class: Any, path: str) -> dict[str, Any]:
    """The ``compat`` operation on an AllenSDK-style session class: ``from_nwb_path`` +
    ``dff_traces`` (then ``np.stack`` of its column) + trials + stimulus presentations +
    ``get_performance_metrics()``; each step is timed."""
    import numpy as np

    t0 = clock()
    session = session_class.from_nwb_path(path)
    t_dff = clock()
    table = session.dff_traces
    t_stack = clock()
    dff = np.stack(table["dff"].to_numpy())
    t_stack, t_dff = clock() - t_stack, t_stack - t_dff
    trials = session.trials
    presentations = session.stimulus_presentations
    metrics = session.get_performance_metrics()
    seconds = clock() - t0
    if hasattr(session, "close"):
        session.close()
    return {"seconds": seconds, "dff_traces_s": t_dff, "stack_s": t_stack,
            "shape": list(dff.shape), "n_trials": len(trials),
            "n_presentations": len(presentations),
            "hit_trial_count": float(metrics["hit_trial_count"])}


def main(operations: dict[str, Operation],
         cube: Callable[[dict[str, Any], str], dict[str, Any]],
         ready: tuple[str, ...]) -> None:
    """Run the operation ``argv[1]`` with the JSON parameters ``argv[2]``; print the result.

    ``operations`` maps names to operations; ``cube(params, kind)`` is the ``images``
    (kind ``"images"``) and ``changes`` (``"changes"``) operation.  ``ready``: the tool's
    modules and those its open imports; the ``ready`` operation times their import, and
    every operation but ``import`` runs after importing them (untimed), so that its time
    is the tool's own work, whether the tool imports its dependencies at its import or at
    its first use.
    """
    import importlib

    operations = {**operations, "images": lambda p: cube(p, "images"),
                  "changes": lambda p: cube(p, "changes"), "ready": time_import(*ready)}
    name, params = sys.argv[1], json.loads(sys.argv[2])
    if name not in operations:
        msg = f"{sys.argv[0]}: unknown operation {name!r}; choose from {sorted(operations)}"
        raise SystemExit(msg)
    if name not in ("import", "ready"):
        for module in ready:
            importlib.import_module(module)
    out = operations[name](params)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("@@" + json.dumps(out, default=str), flush=True)
