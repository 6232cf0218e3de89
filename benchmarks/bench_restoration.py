"""Restoration leaderboard: how restorable is each corruption, and where does iterative
sampling help? (issue 7)

Runs :func:`degrade.bench.bench` — the same as ``degrade bench`` — with the settings of
the table in RESULTS.md: for each op, 256 crops of the sample pool at 32 px (split by
photograph, train 0.8 / test 0.2, so the ~51 test crops come from photographs never seen
in training), T = 10 steps, the same small UNet (base 16, mults 1,2) trained for the same
250 steps × batch 32 with ``target="x0"``, then evaluated on the test split at about five
steps: degraded, direct, Cold Diffusion's Algorithm 1 and 2 (D replayed from each sample's
recipe), Algorithm 2 with a fresh noise field (stochastic ops), and a classical baseline
tuned per step. With ``--blind-holdout`` a ``blind`` model (no step input) is trained on the
other ops and evaluated on all, the held-out ones unseen. Prints the machine, the
leaderboard and the wall time; everything lands in ``--out``.

    python benchmarks/bench_restoration.py                 # the RESULTS.md run (~11 min on 2 busy cores)
    python benchmarks/bench_restoration.py --quick         # ~15-50 s smoke run (16 px, 10 steps)
    python benchmarks/bench_restoration.py --max-steps 100 --ops blur,noise
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, busy_cpu_seconds, cpu_count, machine_note

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", default="blur,noise,jpeg,pixelate")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=256)
    ap.add_argument("--max-steps", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on 2 busy cores)")
    ap.add_argument("--blind-holdout", default="pixelate")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    ap.add_argument("--quick", action="store_true", help="16 px, T=4, 24 images, 10 training steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.ops, args.steps, args.size, args.limit, args.max_steps = "blur,noise", 4, 16, 24, 10
        args.blind_holdout = "noise"
    out = Path(args.out or tempfile.mkdtemp(prefix="degrade-bench-restoration-"))

    from degrade.bench import bench

    print(f"machine: {machine_note()}")
    t0, busy0 = time.perf_counter(), busy_cpu_seconds()
    res = bench(args.ops, steps=args.steps, size=args.size, limit=args.limit, max_steps=args.max_steps,
                threads=args.threads, blind_holdout=args.blind_holdout or None, out=out)
    wall = time.perf_counter() - t0
    busy = busy_cpu_seconds() - busy0
    print((out / "leaderboard.md").read_text())
    print(f"wall {wall:.0f} s; the whole machine was busy {100 * busy / max(wall * cpu_count(), 1e-9):.0f} % "
          f"of the time ({cpu_count()} cores); results in {out}")
    return 0 if res["ops"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
