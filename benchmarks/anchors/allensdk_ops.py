# mypy: disable-error-code="import-not-found"
"""AllenSDK 2.16.2 and brain_observatory_utilities 0.5.1, in their own environment.

``python allensdk_ops.py OPERATION '{"path": ...}'``.  Each operation times its own span.
The response cubes are BOU ``optical_physiology.data_formatting.get_stimulus_response_xr``
on a ``BehaviorOphysExperiment`` (which also computes ``p_value_gray_screen``; the time
of that step is reported apart as ``p_value_s``).
"""

from __future__ import annotations

import warnings
from typing import Any

from _run import check, clock, main, session_steps, time_import

EXPERIMENT = "allensdk.brain_observatory.behavior.behavior_ophys_experiment"

warnings.filterwarnings("ignore")


def op_open(params: dict[str, Any]) -> dict[str, Any]:
    from allensdk.brain_observatory.behavior.behavior_ophys_experiment import (
        BehaviorOphysExperiment,
    )

    t0 = clock()
    experiment = BehaviorOphysExperiment.from_nwb_path(params["path"])
    seconds = clock() - t0
    return {"seconds": seconds, "n_cells": len(experiment.cell_specimen_table)}


def op_dff(params: dict[str, Any]) -> dict[str, Any]:
    """``from_nwb_path`` (which reads everything) + ``dff_traces`` as a 2-D array."""
    import numpy as np
    from allensdk.brain_observatory.behavior.behavior_ophys_experiment import (
        BehaviorOphysExperiment,
    )

    t0 = clock()
    experiment = BehaviorOphysExperiment.from_nwb_path(params["path"])
    y = np.stack(experiment.dff_traces["dff"].to_numpy())
    seconds = clock() - t0
    return {"seconds": seconds, "shape": list(y.shape),
            "what": "valid ROIs, `from_nwb_path` + `np.stack(dff_traces.dff)`"}


def cube(params: dict[str, Any], event: str) -> dict[str, Any]:
    """``from_nwb_path`` + BOU ``get_stimulus_response_xr``."""
    from allensdk.brain_observatory.behavior.behavior_ophys_experiment import (
        BehaviorOphysExperiment,
    )
    from brain_observatory_utilities.datasets.optical_physiology import data_formatting

    spent = {"p_value_s": 0.0}
    p_value = data_formatting.get_p_value_from_shuffled_spontaneous

    def timed_p_value(*args: Any, **kwargs: Any) -> Any:
        t = clock()
        try:
            return p_value(*args, **kwargs)
        finally:
            spent["p_value_s"] += clock() - t

    data_formatting.get_p_value_from_shuffled_spontaneous = timed_p_value
    t0 = clock()
    experiment = BehaviorOphysExperiment.from_nwb_path(params["path"])
    t_load = clock() - t0
    res = data_formatting.get_stimulus_response_xr(
        experiment, data_type="dff", event_type=event,
        time_window=[params["t0"], params["t1"]], output_sampling_rate=params["rate"])
    seconds = clock() - t0
    traces = res.eventlocked_traces.transpose("cell_specimen_id", ...)
    return {"seconds": seconds, "load_s": t_load, **spent, "check": check(traces.values, 0),
            "n_events": int(traces.shape[1])}


def op_compat(params: dict[str, Any]) -> dict[str, Any]:
    from allensdk.brain_observatory.behavior.behavior_ophys_experiment import (
        BehaviorOphysExperiment,
    )

    return session_steps(BehaviorOphysExperiment, params["path"])


main({"import": time_import(EXPERIMENT), "open": op_open, "dff": op_dff,
      "compat": op_compat}, cube,
     (EXPERIMENT,))
