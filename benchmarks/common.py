"""Helpers shared by the benchmarks: timing, the machine note, the sample images, tables.

Benchmarks run side by side in one invocation, interleaved and repeated, and report
medians: the machines they run on are shared and noisy.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/<name>.py` from a checkout
    sys.path.insert(0, str(ROOT))


def cpu_count() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_note() -> str:
    """One line: cores, CPU model, Python and the libraries whose speed matters here."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = []
    for mod, name in (("numpy", "numpy"), ("cv2", "opencv"), ("PIL", "pillow"),
                      ("webdataset", "webdataset"), ("albumentations", "albumentations")):
        try:
            m = __import__(mod)
            libs.append(f"{name} {getattr(m, '__version__', '?')}")
        except Exception:  # a missing optional library is just not listed
            pass
    return (f"{cpu_count()} cores ({model}), Python {platform.python_version()}, "
            + ", ".join(libs))


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (Linux; 0.0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    v = [int(x) for x in fields]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def spread(xs: Sequence[float]) -> str:
    """``min–max`` of a list of numbers, for the tables."""
    if not xs:
        return "-"
    return f"{min(xs):,.0f}–{max(xs):,.0f}"


def timeit(fn: Any, *, number: int, repeat: int = 5) -> float:
    """Median seconds per call of ``fn()`` over ``repeat`` rounds of ``number`` calls."""
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - t0) / number)
    return median(rounds)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain Markdown table (pipes), right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(r, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def run_child(cmd: Sequence[str], *, env: dict[str, str] | None = None,
              timeout: float | None = None) -> tuple[float, dict[str, Any], str]:
    """Run ``cmd``; return (wall seconds, the JSON object on its last stdout line or {}, stderr).

    The JSON object gains ``cpu``: user + system CPU seconds of the command and the
    processes it reaped (worker pools), and ``others``: the share of the machine's cores
    that other processes kept busy meanwhile. Raises ``RuntimeError`` with the command's stderr
    tail if it fails.
    """
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0 = busy_cpu_seconds()
    t0 = time.perf_counter()
    p = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = busy_cpu_seconds() - b0
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    data: dict[str, Any] = {}
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if lines:
        try:
            data = json.loads(lines[-1])
        except ValueError:
            data = {}
    data["cpu"] = cpu
    # CPU the rest of the machine used meanwhile, as a share of all its cores: how noisy
    # the measurement was.
    data["others"] = max(0.0, busy - cpu) / (wall * cpu_count())
    return wall, data, p.stderr


def pool_images(limit: int, size: int) -> list[tuple[Any, Any]]:
    """The first ``limit`` sample-pool items and their ``size``-px uint8 RGB crops."""
    from degrade.sources import list_sources, load_item

    items = list_sources(None, limit=limit)
    return [(it, load_item(it, size=size)[0]) for it in items]


def step_params(ops: str, steps: int) -> list[list[dict[str, Any]]]:
    """Per step k = 1 … T, the params of each op, exactly as the build's pipeline plans them."""
    from degrade.pipeline import Pipeline

    plan = Pipeline.parse(ops, steps=steps).plan("any")
    return [[dict(o["params"]) for o in step["ops"]] for step in plan]
