"""Memory: peak RSS of a build does not grow with the dataset (issue 8).

Runs the same `degrade build` at N and 10·N samples, each in a fresh process, and prints the
peak resident set size of the build process and their ratio. With one worker the build
process is the worker; with two (``--workers 2``) it builds shards beside one loky worker, so
its peak is a worker's too. Shards are written one at a time and streamed, so the peak should
not grow.

    python benchmarks/bench_memory.py [--small 200] [--size 64] [--steps 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time


def peak_rss_mb(limit: int, size: int, steps: int, shard_size: int, workers: int = 1) -> tuple[float, float]:
    """Run one build in a child process; return (peak RSS in MiB, seconds)."""
    with tempfile.TemporaryDirectory() as d:
        code = (
            "import resource, sys; from degrade import build; "
            f"build(None, ops='blur,jpeg', steps={steps}, limit={limit}, size={size}, "
            f"shard_size={shard_size}, out={d!r} + '/out', workers={workers}, progress=False, log=lambda s: None); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200, help="samples of the small build (the large has 10×)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    small, t_small = peak_rss_mb(a.small, a.size, a.steps, a.shard_size, a.workers)
    large, t_large = peak_rss_mb(10 * a.small, a.size, a.steps, a.shard_size, a.workers)
    print(f"peak RSS, {a.small} samples:      {small:8.1f} MiB  ({t_small:.1f} s)")
    print(f"peak RSS, {10 * a.small} samples:     {large:8.1f} MiB  ({t_large:.1f} s)")
    print(f"ratio large / small: {large / small:.2f}×   target: does not grow (≈ 1.0×)")


if __name__ == "__main__":
    main()
