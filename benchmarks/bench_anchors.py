"""ophys_xr beside the tools users would use instead (issue 15), on one session file.

The anchors: AllenSDK 2.16.2 with brain_observatory_utilities (BOU) 0.5.1, pynapple, and
plain h5py + numpy, each in its own virtual environment under ``benchmarks/.envs``
(git-ignored; created and installed on the first run, which takes minutes), ophys_xr from
the current interpreter.  The AllenSDK pins old numpy / pandas and breaks with hdmf 4, so
it cannot live beside ophys_xr; BOU is installed without its dependencies on top of it.

Operations (``benchmarks/anchors/<tool>.py``; each in a fresh process per run, the tools
interleaved within a run, their order rotated from run to run):

* ``import`` — the tool's import;
* ``ready`` — the tool's import and the modules its open imports (ophys_xr: xarray, dask,
  h5py and its NWB reader; pynapple: pynwb; the AllenSDK: the experiment class); the
  other operations are timed after these, so that each tool's time is its own work;
* ``open`` — opening the session (ophys_xr ``open_session``, AllenSDK ``from_nwb_path``,
  pynapple ``load_file``, ``h5py.File``);
* ``dff`` — all ΔF/F into memory, the first read in the process, after the open;
* ``images`` — open + the image-response cube of every image presentation of the
  change-detection block, −0.5…0.75 s at 30 Hz (ophys_xr ``stimulus_response``, BOU
  ``get_stimulus_response_xr``, pynapple resample + ``compute_perievent``, numpy h5py
  read + one vectorised gather);
* ``changes`` — the same for the changes, −3…3 s;
* ``compat`` — ``from_nwb_path`` + ``dff_traces`` as a 2-D array + trials + stimulus
  presentations + performance metrics (ophys_xr.compat vs AllenSDK).

Reported: the median over the runs of the in-process time of the operation, of the peak
memory of the process (``ru_maxrss``) and of the whole process's wall time, and the
ratios to ophys_xr (> 1: ophys_xr is faster / smaller).  The session is the generated
300-cell, 60-minute AllenSDK-layout file of the other benchmarks (warm page cache).

    python benchmarks/bench_anchors.py [--runs 5] [--ops images,changes] [--tools ...]
        [--no-record]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import DATA, HERE, RESULTS, machine, session_file

ENVS = HERE / ".envs"
ANCHORS = HERE / "anchors"
PYTHON311 = "/root/.pyenv/versions/3.11.7/bin/python"

# name: (pip install commands, in order; the import that says the environment is ready)
ENV_SPECS: dict[str, tuple[list[list[str]], str]] = {
    # what `pip install ophys_xr` gives (no extras: no dask.distributed); the measured code
    # is installed over it at each run (install_measured)
    "ophys_xr": ([[str(HERE.parent)]], "import ophys_xr, xarray, dask.array, h5py"),
    "allensdk": ([["allensdk==2.16.2", "hdmf>=3.14.5,<4"],
                  ["--no-deps", "brain_observatory_utilities==0.5.1"]],
                 "import allensdk, brain_observatory_utilities"),
    "pynapple": ([["pynapple"]], "import pynapple"),
    "plain": ([["h5py", "numpy"]], "import h5py, numpy"),
}

# label: (environment or None for this interpreter, script)
TOOLS: dict[str, tuple[str | None, str]] = {
    "ophys_xr": ("ophys_xr", "ox.py"),
    "AllenSDK / BOU": ("allensdk", "allensdk_ops.py"),
    "pynapple": ("pynapple", "pynapple_ops.py"),
    "h5py + numpy": ("plain", "plain.py"),
}

# key: (label, window start, window end, tools that have it)
OPS: dict[str, tuple[str, float, float, tuple[str, ...]]] = {
    "import": ("`import`", 0.0, 0.0, tuple(TOOLS)),
    "ready": ("`import` + the modules its open imports", 0.0, 0.0, tuple(TOOLS)),
    "open": ("open the session", 0.0, 0.0, tuple(TOOLS)),
    "dff": ("all ΔF/F into memory, first read in the process (after the open)", 0.0, 0.0,
            tuple(TOOLS)),
    "images": ("open + image-response cube, all image presentations, −0.5…0.75 s at 30 Hz",
               -0.5, 0.75, tuple(TOOLS)),
    "changes": ("open + change-response cube, the changes, −3…3 s at 30 Hz", -3.0, 3.0,
                tuple(TOOLS)),
    "compat": (("`from_nwb_path` + `dff_traces` as 2-D + trials + presentations + "
               "performance"), 0.0, 0.0, ("ophys_xr", "AllenSDK / BOU")),
}
RATE = 30.0
SLOW_S = 60.0  # an operation slower than this gets only --slow-runs runs (BOU's cubes)


def python_of(env: str | None) -> str:
    """The interpreter of an environment (None: the current one)."""
    return sys.executable if env is None else str(ENVS / env / "bin" / "python")


def env_ready(env: str) -> bool:
    """Whether the environment exists and imports what it is for."""
    python = Path(python_of(env))
    if not python.exists():
        return False
    done = subprocess.run([str(python), "-c", ENV_SPECS[env][1]], capture_output=True,
                          check=False)
    return done.returncode == 0


def ensure_envs(names: set[str]) -> None:
    """Create and install the environments that are missing, all at once in the background.

    Each install's output goes to ``benchmarks/.envs/<name>.log``.
    """
    missing = [n for n in sorted(names) if not env_ready(n)]
    if not missing:
        return
    if not Path(PYTHON311).exists():
        msg = f"{PYTHON311}: not found; the anchor environments need a Python 3.11 there"
        raise SystemExit(msg)
    ENVS.mkdir(parents=True, exist_ok=True)
    jobs = {}
    for name in missing:
        pip = f"{ENVS / name / 'bin' / 'pip'} install -q"
        steps = [f"{PYTHON311} -m venv {ENVS / name}"]
        steps += [f"{pip} " + " ".join(f"'{a}'" for a in args) for args in ENV_SPECS[name][0]]
        log = (ENVS / f"{name}.log").open("w")
        print(f"installing the {name} environment (log: {log.name}) ...", file=sys.stderr,
              flush=True)
        jobs[name] = (subprocess.Popen(" && ".join(steps), shell=True, stdout=log,
                                       stderr=subprocess.STDOUT), log)
    for name, (job, log) in jobs.items():
        job.wait()
        log.close()
        if job.returncode != 0 or not env_ready(name):
            msg = f"{ENVS / name}: installing failed; see {ENVS / (name + '.log')}"
            raise SystemExit(msg)


def export_commit(rev: str) -> Path:
    """The repository at commit ``rev`` (package and ``pyproject.toml``), exported once
    under ``benchmarks/.envs``, to be installed in the ophys_xr environment."""
    sha = subprocess.run(["git", "rev-parse", rev], capture_output=True, text=True,
                         check=True, cwd=HERE).stdout.strip()
    root = ENVS / f"ophys_xr-{sha[:12]}"
    if not (root / "pyproject.toml").exists():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "ophys_xr", "pyproject.toml",
                                  "README.md"], capture_output=True, check=True,
                                 cwd=HERE.parent).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def install_measured(source: Path) -> None:
    """Install the measured ophys_xr (a tree with ``pyproject.toml``) into its environment,
    over the one installed with the environment, dependencies unchanged.

    Built from a copy, so that the build leaves nothing in ``source``.
    """
    import shutil
    import tempfile

    pip = ENVS / "ophys_xr" / "bin" / "pip"
    with tempfile.TemporaryDirectory(dir=ENVS) as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(source / name, copy / name)
        shutil.copytree(source / "ophys_xr", copy / "ophys_xr",
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([str(pip), "install", "-q", "--no-deps", "--force-reinstall",
                        str(copy)], check=True, capture_output=True)


def child_env(env: str | None) -> dict[str, str]:
    """The environment variables of a tool's process."""
    out = dict(os.environ)
    out.pop("PYTHONPATH", None)
    return out


def run_one(tool: str, op: str, path: Path) -> dict[str, Any]:
    """One operation of one tool in a fresh process: its JSON result plus ``process_s``."""
    env, script = TOOLS[tool]
    params = {"path": str(path), "t0": OPS[op][1], "t1": OPS[op][2], "rate": RATE}
    # Through a shell that forks again: a child forked from this (large) process would
    # start with this process's RSS as its ru_maxrss (Linux keeps it across exec).
    argv = ["/bin/sh", "-c", '"$0" "$@"; exit $?', python_of(env), str(ANCHORS / script), op,
            json.dumps(params)]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ANCHORS,
                          timeout=1800, env=child_env(env))
    process_s = time.perf_counter() - t0
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("@@")]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0][:200], "process_s": process_s}
    out: dict[str, Any] = json.loads(lines[-1][2:])
    out["process_s"] = process_s
    return out


def fmt_s(x: float) -> str:
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def ratio(a: float, b: float) -> str:
    r = a / b
    return f"{r:.2g}×" if r < 10 else f"{r:.0f}×"


def table(results: dict[str, dict[str, list[dict[str, Any]]]], tools: list[str],
          ops: list[str]) -> str:
    """The Markdown table: per operation each tool's medians, then the ratios to ophys_xr."""
    head = ["operation", *tools, "ratio to ophys_xr (time; memory)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op in ops:
        cells, med = [], {}
        for tool in tools:
            runs = results.get(op, {}).get(tool, [])
            good = [r for r in runs if "error" not in r]
            if tool not in OPS[op][3]:
                cells.append("—")
                continue
            if not good:
                err = runs[0]["error"] if runs else "not run"
                cells.append(f"failed: {err}")
                continue
            m = {k: statistics.median(r[k] for r in good)
                 for k in ("seconds", "peak_mb", "process_s")}
            med[tool] = m
            cells.append(f"{fmt_s(m['seconds'])}, {m['peak_mb']:,.0f} MB "
                         f"(process {fmt_s(m['process_s'])}; n={len(good)})")
        ref = med.get("ophys_xr")
        ratios = []
        if ref is not None:
            for tool, m in med.items():
                if tool != "ophys_xr":
                    ratios.append(f"{tool} {ratio(m['seconds'], ref['seconds'])}; "
                                  f"{ratio(m['peak_mb'], ref['peak_mb'])}")
        lines.append("| " + " | ".join([OPS[op][0], *cells, "<br>".join(ratios) or "—"]) + " |")
    return "\n".join(lines)


def details(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """Notes: cube shapes and means per tool, the AllenSDK's load and p-value shares."""
    notes = []
    for op in ("images", "changes"):
        parts = []
        for tool, runs in results.get(op, {}).items():
            good = [r for r in runs if "check" in r]
            if good:
                c = good[0]["check"]
                extra = ""
                if "load_s" in good[0]:
                    extra = (f", of which `from_nwb_path` "
                             f"{statistics.median(r['load_s'] for r in good):.1f} s and the "
                             f"p-values {statistics.median(r['p_value_s'] for r in good):.1f} s")
                parts.append(f"{tool} (cell, event, offset) {tuple(c['shape'])}, mean "
                             f"{c['mean']:.6f}, {c['nan']} NaN{extra}")
        if parts:
            notes.append(f"- `{op}` cubes: " + "; ".join(parts) + ".")
    for op in ("dff", "compat"):
        parts = []
        for tool, runs in results.get(op, {}).items():
            good = [r for r in runs if "shape" in r]
            if good:
                extra = ""
                if "dff_traces_s" in good[0]:
                    extra = (f", `dff_traces` "
                             f"{statistics.median(r['dff_traces_s'] for r in good):.3f} s "
                             "+ `np.stack` of its column "
                             f"{statistics.median(r['stack_s'] for r in good):.3f} s")
                what = f" ({good[0]['what']})" if "what" in good[0] else ""
                parts.append(f"{tool} {tuple(good[0]['shape'])}{what}{extra}")
        if parts:
            notes.append(f"- `{op}`: " + "; ".join(parts) + ".")
    return "\n".join(notes)


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each operation (median)")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated operations")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated tools")
    parser.add_argument("--slow-runs", type=int, default=2,
                        help=f"runs of an operation whose median is over {SLOW_S:g} s")
    parser.add_argument("--commit", default=None,
                        help="measure the ophys_xr of this commit (exported), not the tree")
    parser.add_argument("--no-record", action="store_true",
                        help="print the table without appending it to RESULTS.md")
    args = parser.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    tools = [t for t in args.tools.split(",") if t]
    unknown = sorted(set(ops) - set(OPS)) + sorted(set(tools) - set(TOOLS))
    if unknown:
        msg = f"unknown operations or tools {unknown}; choose from {list(OPS)} and {list(TOOLS)}"
        raise SystemExit(msg)
    measured = "the working tree"
    source = HERE.parent
    if args.commit is not None:
        source = export_commit(args.commit)
        measured = f"commit {source.name.split('-', 1)[1]} (exported)"
    ensure_envs({env for t in tools if (env := TOOLS[t][0]) is not None})
    if "ophys_xr" in tools:
        install_measured(source)
    path = session_file(300, 60.0)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    started, start_stamp = time.perf_counter(), _dt.datetime.now(_dt.UTC)
    for run in range(args.runs):
        order = tools[run % len(tools):] + tools[:run % len(tools)]
        for op in ops:
            for tool in order:
                if tool not in OPS[op][3]:
                    continue
                done = [r["seconds"] for r in results.get(op, {}).get(tool, []) if "seconds" in r]
                if len(done) >= args.slow_runs and statistics.median(done) > SLOW_S:
                    continue
                out = run_one(tool, op, path)
                results.setdefault(op, {}).setdefault(tool, []).append(out)
                shown = out.get("error") or f"{out['seconds']:.3f} s, {out['peak_mb']:.0f} MB"
                print(f"run {run + 1}/{args.runs} {op:8s} {tool:15s} {shown} "
                      f"(process {out['process_s']:.2f} s)", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    stamp = _dt.datetime.now(_dt.UTC)
    raw = DATA / f"anchors_{stamp:%Y%m%dT%H%M%S}.json"
    raw.write_text(json.dumps(results, indent=1, default=str))
    text = table(results, tools, ops)
    notes = details(results)
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 2**20
    section = "\n".join([
        (f"## bench_anchors: ophys_xr beside the AllenSDK / BOU, pynapple and h5py + numpy "
        f"({path.name}, {path.stat().st_size / 1e9:.2f} GB)"),
        "",
        f"- command: `{command}`",
        f"- date: {start_stamp:%Y-%m-%d %H:%M} UTC (start; {elapsed / 60:.0f} min)",
        (f"- machine: {os.cpu_count()} cores (`nproc` {len(os.sched_getaffinity(0))}), "
        f"{mem_gib:.1f} GiB RAM, {cpu_model()}; {machine()}"),
        (f"- ophys_xr: {measured}, installed as `pip install ophys_xr` would (default "
         "dependencies, no extras, so no dask.distributed); it, AllenSDK 2.16.2 + BOU 0.5.1, "
         "pynapple and h5py + numpy each in its own environment (`benchmarks/.envs`)."),
        (f"- medians of {args.runs} runs ({args.slow_runs} for an operation whose median "
         f"is over {SLOW_S:g} s; n in each cell); each figure a fresh process; the tools "
         "interleaved in each run. Other helpers were using the machine at the same time: "
         "the absolute figures are noisy, compare the ratios of this one interleaved run."),
        ("- time: the operation in the process, after the tool's import and the imports "
        "its operation makes (timed on their own as `ready`; ophys_xr imports xarray, dask "
        "and h5py when it first opens a file, the others at their import); "
        "memory: peak RSS of the process (`ru_maxrss`); process: the whole process's wall "
        "time (interpreter start, import, operation, exit). Ratio > 1: ophys_xr is faster "
        "/ smaller."),
        "",
        text,
        "",
        notes,
        f"- raw results: `{raw.relative_to(HERE.parent).as_posix()}` (not committed).",
        "",
    ])
    print(section)
    if not args.no_record:
        with RESULTS.open("a") as f:
            f.write(section + "\n")


if __name__ == "__main__":
    main()
