"""Profile one ophys_xr operation of the anchors table with cProfile.

``python profile_ox.py OPERATION [--top 25]`` runs ``ox.py``'s operation in this process
under cProfile (the same parameters as ``bench_anchors.py``) and prints the functions with
the largest cumulative and own times.  Set ``PYTHONPATH`` to an exported package to
profile a commit rather than the working tree.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent
WINDOWS = {"images": (-0.5, 0.75), "changes": (-3.0, 3.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("op")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--path", default=str(HERE.parent / ".data" / "session_300c_60min_s0.nwb"))
    args = parser.parse_args()
    t0, t1 = WINDOWS.get(args.op, (0.0, 0.0))
    params = {"path": args.path, "t0": t0, "t1": t1, "rate": 30.0}
    sys.argv = [str(HERE / "ox.py"), args.op, json.dumps(params)]
    sys.path.insert(0, str(HERE))
    profile = cProfile.Profile()
    profile.enable()
    runpy.run_path(str(HERE / "ox.py"), run_name="__main__")
    profile.disable()
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
