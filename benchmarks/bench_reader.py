"""Reader vs trainer (issue 6): examples/s the reader delivers vs examples/s training consumes.

The reader must never be the bottleneck. On the sample pool (``--ops blur --steps 20``,
stored as PNG, 500 samples in shards of 50), for each image size:

- ``reader Nw``: :class:`degrade.data.SequenceDataset` (``steps="random"``, ``resampled``,
  batches of 32, shuffle buffer 500) through a ``DataLoader`` with N worker processes
  (0 = in the training process), examples/s after the first batch;
- ``reader virtual 1w``: the same dataset built with ``--keep none``, frames replayed from
  recipes in the loader (one worker);
- ``trainer Nt fp32|bf16``: what the default trainer consumes: :class:`degrade.train.TrainConfig`'s
  defaults (UNet base 32, mults 1,2,2; batch 32; AdamW, grad clipping, EMA, L1) on batches
  already in memory, with N torch threads (2t is torch's default here), in float32 and
  with bf16 autocast (the default ``dtype="auto"`` picks bf16 on a CPU with native bf16);
- ``train() 1w``: the real loop, ``degrade.train.train`` with its defaults (1 DataLoader
  worker, ``dtype="auto"``) and the faster thread count, from its log (steps after the
  first).

Rounds are interleaved and medians reported; the machine is shared, so the load average is
printed beside the numbers. The ratio ``reader / trainer`` is how many times faster the
reader delivers than training consumes (> 1: the reader is not the bottleneck).

    python benchmarks/bench_reader.py             # 32 and 64 px, 3 rounds (~5 min on 2 busy cores)
    python benchmarks/bench_reader.py --quick     # 32 px, 1 round, fewer examples
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
import torch.nn.functional as F
from common import machine_note, median, table
from torch.utils.data import DataLoader

from degrade.build import build
from degrade.data import SequenceDataset
from degrade.models import make_model
from degrade.train import (
    TrainConfig,
    cpu_has_native_bf16,
    ema_decay_at,
    lr_at,
    read_log,
    train,
)

BATCH = TrainConfig().batch_size


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def reader_rate(path: Path, workers: int, examples: int, seed: int) -> float:
    ds = SequenceDataset(path, resampled=True, batch_size=BATCH, seed=seed)
    loader = DataLoader(ds, batch_size=None, num_workers=workers,
                        prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it)  # worker start-up and the shuffle buffer's first fill are not the steady state
    n = 0
    t0 = time.perf_counter()
    while n < examples:
        n += len(next(it)["key"])
    dt = time.perf_counter() - t0
    del it
    return n / dt


def trainer_rate(path: Path, threads: int, steps: int, bf16: bool) -> float:
    """The default config's training step (as in degrade.train.train) on batches in memory."""
    cfg = TrainConfig(data=str(path))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        it = iter(SequenceDataset(path, resampled=True, batch_size=cfg.batch_size, seed=1))
        batches = [next(it) for _ in range(4)]
        model = make_model(cfg.model, channels=3, base=cfg.base_channels, mults=cfg.channel_mults,
                           blocks=cfg.blocks)
        ema = make_model(cfg.model, channels=3, base=cfg.base_channels, mults=cfg.channel_mults,
                         blocks=cfg.blocks).requires_grad_(False)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                weight_decay=cfg.weight_decay)

        def step(i: int) -> None:
            b = batches[i % len(batches)]
            for g in opt.param_groups:
                g["lr"] = lr_at(i, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                pred = model(b["x"], b["k"].float() / b["T"].float())
            pred = pred.float()
            loss = F.l1_loss(pred, b["target"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()),
                                     1.0 - ema_decay_at(i, cfg))

        step(0)  # first-call allocations
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            step(i)
        return steps * cfg.batch_size / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)


def train_rate(path: Path, threads: int, steps: int, out: Path) -> float:
    cfg = TrainConfig(data=str(path), out=str(out), max_steps=steps + 1, log_every=1,
                      progress=False, threads=threads)
    before = torch.get_num_threads()
    try:
        train(cfg, log=lambda s: None)
    finally:
        torch.set_num_threads(before)
    return median([e["examples_per_s"] for e in read_log(out)[1:]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,64", help="image sizes (default 32,64)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--examples", type=int, default=2048, help="examples per reader measurement")
    ap.add_argument("--steps", type=int, default=6, help="training steps per trainer measurement")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the medians as JSON")
    a = ap.parse_args()
    if a.quick:
        a.sizes, a.rounds, a.examples, a.steps = "32", 1, 640, 3
    sizes = [int(s) for s in a.sizes.split(",")]
    print(f"# bench_reader: {machine_note()}, torch {torch.__version__}", flush=True)
    print(f"# load average at start {load()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-reader-"))
    results: dict[int, dict[str, list[float]]] = {}
    for size in sizes:
        data = {}
        for keep in ("all", "none"):
            data[keep] = tmp / f"pool{size}-{keep}"
            build(None, ops="blur", steps=20, size=size, limit=500, shard_size=50, keep=keep,
                  out=data[keep], progress=False, log=lambda s: None)
        rows: dict[str, list[float]] = {}
        for r in range(a.rounds):
            contenders = (
                ("reader 0w", reader_rate, (data["all"], 0, a.examples, r)),
                ("reader 1w", reader_rate, (data["all"], 1, a.examples, r)),
                ("reader 2w", reader_rate, (data["all"], 2, a.examples, r)),
                ("reader virtual 1w", reader_rate, (data["none"], 1, a.examples, r)),
                ("trainer 1t fp32", trainer_rate, (data["all"], 1, a.steps, False)),
                ("trainer 2t fp32", trainer_rate, (data["all"], 2, a.steps, False)),
                ("trainer 1t bf16", trainer_rate, (data["all"], 1, a.steps, True)),
                ("trainer 2t bf16", trainer_rate, (data["all"], 2, a.steps, True)),
            )
            for name, fn, args in contenders:
                rows.setdefault(name, []).append(fn(*args))
                print(f"  {size}px round {r + 1}: {name:<18} {rows[name][-1]:8.1f} ex/s  (load {load()})",
                      flush=True)
            auto = "bf16" if cpu_has_native_bf16() else "fp32"
            best = 1 if median(rows[f"trainer 1t {auto}"]) >= median(rows[f"trainer 2t {auto}"]) else 2
            out = tmp / f"run{size}-{r}"
            rows.setdefault(f"train() 1w {best}t", []).append(train_rate(data["all"], best, a.steps, out))
            print(f"  {size}px round {r + 1}: train() 1w {best}t    {rows[f'train() 1w {best}t'][-1]:8.1f} ex/s",
                  flush=True)
        results[size] = rows

    print(f"\n# load average at end {load()}")
    for size, rows in results.items():
        trainer = max(median(xs) for name, xs in rows.items() if name.startswith("trainer"))
        table_rows = []
        for name, xs in rows.items():
            ratio = f"{median(xs) / trainer:.1f}×" if name.startswith("reader") else ""
            table_rows.append([name, f"{median(xs):,.1f}", f"{min(xs):,.1f}–{max(xs):,.1f}", ratio])
        print(f"\n{size} px, batch {BATCH} (medians of {a.rounds} rounds; ratio = reader ÷ the fastest trainer row)\n")
        print(table(table_rows, ["", "examples/s", "range", "reader ÷ trainer"]))
    if a.json:
        Path(a.json).write_text(json.dumps(
            {str(s): {k: median(v) for k, v in rows.items()} for s, rows in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
