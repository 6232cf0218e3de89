"""Does training work? A reverse-step model restores held-out photographs (issue 6).

Builds the sample pool (``--ops blur --steps 20``, 32 px, 1000 crops, default splits: whole
photographs are train, val or test, so the test crops come from a photograph never seen in
training), trains the default UNet with ``target="x0"`` (Cold Diffusion's direct
prediction), and measures on the ``test`` split, step by step, the mean per-image PSNR of
the degraded input x_k against x_0 and of the model's restoration (EMA weights) against
x_0. It passes when the restoration beats the input at every k ≥ T/4; the exit code is 1
otherwise.

    python benchmarks/bench_restore.py                    # ~10 min on 2 busy cores
    python benchmarks/bench_restore.py --max-steps 200    # a shorter run
    python benchmarks/bench_restore.py --data DIR --run RUN --eval-only   # re-evaluate a run
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import torch
from common import machine_note, table

from degrade.build import build
from degrade.data import SequenceDataset, collate
from degrade.metrics import psnr
from degrade.train import TrainConfig, load_checkpoint, model_from_checkpoint, read_log, train


def evaluate(data: Path, run: Path, split: str = "test") -> dict[int, dict[str, float]]:
    """Per step k: mean PSNR of input and restoration vs x0 over the split's images."""
    ckpt = load_checkpoint(run)
    model = model_from_checkpoint(ckpt, ema=True)
    by_k: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    exs = list(SequenceDataset(data, split=split, steps="all", shuffle_buffer=0, target="x0"))
    step_input = ckpt["config"]["step_input"]
    for i in range(0, len(exs), 64):
        batch = collate(exs[i : i + 64])
        s = batch["k"].float() / batch["T"].float() if step_input == "k/T" else batch["t"]
        with torch.no_grad():
            out = model(batch["x"], s).clamp(0, 1)
        for j, k in enumerate(batch["k"].tolist()):
            x0 = batch["target"][j].permute(1, 2, 0).numpy()
            xin = batch["x"][j].permute(1, 2, 0).numpy()
            xr = out[j].permute(1, 2, 0).numpy()
            by_k[k]["input"].append(min(psnr(xin, x0), 99.0))
            by_k[k]["restored"].append(min(psnr(xr, x0), 99.0))
            by_k[k]["t"].append(float(batch["t"][j]))
    return {k: {name: float(np.mean(v)) for name, v in d.items()} | {"n": len(d["input"])}
            for k, d in sorted(by_k.items())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="use this built dataset instead of building one")
    ap.add_argument("--run", type=Path, help="run folder (default: a temporary one)")
    ap.add_argument("--eval-only", action="store_true", help="evaluate --run without training")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: fastest on this shared 2-core machine)")
    a = ap.parse_args()

    print(f"# bench_restore: {machine_note()}, torch {torch.__version__}")
    print(f"# command: python benchmarks/bench_restore.py {' '.join(sys.argv[1:])}".rstrip())
    tmp = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    data = a.data or tmp / "pool"
    run = a.run or tmp / "run"
    t0 = time.perf_counter()
    if a.data is None:
        build(None, ops="blur", steps=20, size=a.size, limit=a.limit, out=data, progress=False,
              log=lambda s: None)
    t_build = time.perf_counter() - t0
    if not a.eval_only:
        cfg = TrainConfig(data=str(data), out=str(run), max_steps=a.max_steps,
                          batch_size=a.batch_size, lr=a.lr, min_lr=a.lr / 10,
                          warmup_steps=min(100, a.max_steps // 10), threads=a.threads,
                          progress=sys.stderr.isatty(), log_every=10, ckpt_every=100)
        summary = train(cfg, log=lambda s: print(f"# {s}"))
        print(f"# trained {summary['step']} steps × {a.batch_size} in {summary['seconds']:.0f} s "
              f"({summary['step'] * a.batch_size / summary['seconds']:.1f} examples/s); "
              f"build {t_build:.0f} s; load average {os.getloadavg()[0]:.1f}")
        log = read_log(run)
        for e in (log[0], log[len(log) // 2], log[-1]):
            print(f"#   step {e['step']:>5}: loss {e['loss']:.4f}, identity's loss {e['input_loss']:.4f}")
    res = evaluate(data, run)
    T = max(res)
    first = math.ceil(T / 4)
    rows = []
    ok = True
    for k, r in res.items():
        gain = r["restored"] - r["input"]
        good = gain > 0
        if k >= first:
            ok &= good
        rows.append([k, f"{r['t']:.2f}", f"{r['input']:.2f}", f"{r['restored']:.2f}", f"{gain:+.2f}",
                     ("yes" if good else "NO") + ("" if k >= first else " (k < T/4)")])
    n = res[first]["n"]
    print(f"\nTest split ({n} crops of a held-out photograph), mean PSNR vs x0 in dB, EMA weights:\n")
    print(table(rows, ["k", "t_k", "input x_k", "restored", "gain", "better"]))
    print(f"\n{'PASS' if ok else 'FAIL'}: restored better than the input at every k ≥ T/4 = {first}"
          if ok else f"\nFAIL: the input is as good or better at some k ≥ {first}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
