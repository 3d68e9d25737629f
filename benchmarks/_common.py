"""Shared helpers of the benchmark scripts: realistic data, isolated timing, the results file.

Every script generates its data with ``ophys_xr.testing`` (cached in
``benchmarks/.data``), measures in fresh subprocesses where memory matters, prints a
Markdown section and appends it to ``benchmarks/RESULTS.md`` with the command, the date and
the machine.  The machines are shared and noisy: compare ratios measured in one run.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DATA = Path(os.environ.get("OPHYS_XR_BENCH_DATA", HERE / ".data"))
RESULTS = HERE / "RESULTS.md"


def machine() -> str:
    """One line describing this machine."""
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    return (f"{platform.node() or 'unknown'}: {platform.machine()}, {os.cpu_count()} cores{mem}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def session_file(n_cells: int = 300, minutes: float = 60.0, seed: int = 0, **kwargs: Any) -> Path:
    """A generated NWB session of this size (written once, then reused)."""
    from ophys_xr.testing import write_session_nwb

    DATA.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"_{k}-{v}" for k, v in sorted(kwargs.items()))
    path = DATA / f"session_{n_cells}c_{minutes:g}min_s{seed}{extra}.nwb"
    if not path.exists():
        print(f"generating {path.name} ...", file=sys.stderr, flush=True)
        write_session_nwb(path, n_cells=n_cells, minutes=minutes, seed=seed, **kwargs)
    return path


def isolated(code: str, **params: Any) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it must set ``result`` (a dict).

    ``rss_mb()`` and ``peak_mb()`` (VmRSS / VmHWM of the process) are available to it.
    """
    prelude = textwrap.dedent('''
        import json, sys, time
        def _status(key):
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) / 1024
            return float("nan")
        def rss_mb(): return _status("VmRSS:")
        def peak_mb(): return _status("VmHWM:")
        def reset_peak():
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        params = json.loads(sys.argv[1])
        ''')
    script = prelude + textwrap.dedent(code) + "\nprint('@@' + json.dumps(result))\n"
    out = subprocess.run([sys.executable, "-c", script, json.dumps(params, default=str)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        msg = f"benchmark subprocess failed:\n{out.stderr[-4000:]}"
        raise RuntimeError(msg)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("@@")][-1]
    return json.loads(line[2:])


def evict(*paths: str | os.PathLike[str]) -> None:
    """Drop these files (or every file of these directories) from the OS page cache.

    ``posix_fadvise(POSIX_FADV_DONTNEED)``: the next read of the data comes from disk, as
    the first read of a session file does, while the interpreter, the libraries and every
    other file stay cached (so the measurement is the data, not Python's start-up).  Needs
    no privileges; pages of a file that is still memory-mapped are not dropped, so unmap
    first.
    """
    for path in paths:
        root = Path(path)
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def best_of(n: int, func: Any) -> float:
    """Best wall time of ``n`` calls of ``func`` (seconds)."""
    import time

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def record(title: str, rows: list[tuple[str, str, str]], notes: str = "") -> str:
    """Append a Markdown section (metric, result, target) to RESULTS.md and return it."""
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {title}", "", f"- command: `{command}`", f"- date: {stamp}",
             f"- machine: {machine()}", ""]
    lines += ["| measurement | result | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in this folder; newest "
                           "last. Compare ratios measured in one run: the machines are shared.\n\n")
    with RESULTS.open("a") as f:
        f.write(text)
    print(text)
    return text


def size_args(doc: str | None, extra: Any = None) -> Any:
    """Parse ``--cells`` and ``--minutes`` (the size of the generated session), and the
    options that ``extra(parser)`` adds."""
    import argparse

    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=60.0)
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
