"""``degrade bench``: the same small model, trained with the same budget once per corruption,
evaluated step by step, ranked in a leaderboard (issue 7).

How restorable is each corruption, and where does iterative sampling help? For each op,
:func:`bench` builds sequences of the same images of the sample pool, trains the same UNet for
the same number of steps, evaluates it (:func:`degrade.evaluate.evaluate`) and writes
``OUT/leaderboard.{md,csv,json,png}`` (:func:`degrade.report.write_leaderboard`); optionally a
``blind`` model trained on some ops is evaluated on ops it never saw. A re-run with the same
``--out`` reuses the finished datasets and models.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from degrade.errors import DegradeError
from degrade.evaluate import evaluate

__all__ = ["bench"]


def bench(
    ops: str | Sequence[str] = ("blur", "noise", "jpeg", "pixelate"),
    *,
    steps: int = 10,
    size: int = 32,
    max_steps: int = 300,
    limit: int = 256,
    out: str | os.PathLike[str] = "degrade-bench",
    blind_holdout: str | Sequence[str] | None = None,
    batch_size: int = 32,
    base_channels: int = 16,
    channel_mults: Sequence[int] = (1, 2),
    lr: float = 1e-3,
    threads: int = 0,
    workers: int = 0,
    eval_limit: int | None = None,
    steps_eval: str | Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate the same small model once per corruption; write a leaderboard.

    For each op: build ``limit`` images of the sample pool at ``size`` px with ``steps``
    steps (split ``train=0.8,test=0.2`` by photograph, so every op sees the same images),
    train a UNet for ``max_steps`` steps (same config, same seed, same budget), evaluate
    it on the test split (:func:`evaluate`, baselines tuned on train images) and collect
    the results in ``OUT/leaderboard.{md,csv,json,png}``; each op's full report is in
    ``OUT/<op>/report``.

    ``blind_holdout``: ops left out of a ``blind`` model's training (it is trained on the
    union of the other ops' datasets, with no step input, the same budget) and evaluated on
    every op — the held-out ones show how it does on corruptions it never saw. Held-out ops
    not in ``ops`` get a dataset (no specialist model).

    Returns
    -------
    dict
        ``ops`` (per-op summary rows), ``blind`` (rows or None), ``seconds``, ``out``.
    """
    import torch

    from degrade.build import build
    from degrade.pipeline import parse_ops
    from degrade.report import summarise_bench, write_leaderboard
    from degrade.train import TrainConfig, train

    say = log or (lambda s: print(s, file=sys.stderr))
    names = [s.strip() for s in (ops.split(",") if isinstance(ops, str) else ops) if s.strip()]
    if not names:
        raise DegradeError("--ops is empty; give ops separated by commas, e.g. blur,noise")
    for nm in names:
        if ":" in nm:
            raise DegradeError(f"bench takes op names only (the ops' default schedules), got '{nm}'")
        parse_ops(nm)
    held = [s.strip() for s in (blind_holdout.split(",") if isinstance(blind_holdout, str) else (blind_holdout or []))
            if s.strip()]
    seen = [o for o in names if o not in held]
    if held and not seen:
        raise DegradeError("--blind-holdout leaves no op to train the blind model on")
    if held and len(seen) < 1:
        raise DegradeError("the blind model needs at least one training op")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    common = dict(max_steps=max_steps, batch_size=batch_size, base_channels=base_channels,
                  channel_mults=tuple(channel_mults), lr=lr, min_lr=lr / 10,
                  warmup_steps=max(1, min(100, max_steps // 10)), threads=threads, workers=workers,
                  seed=seed, progress=progress, log_every=max(1, min(10, max_steps)),
                  ckpt_every=max_steps)
    quiet = (lambda s: None) if not progress else say
    try:
        data_dirs: dict[str, Path] = {}
        for op in dict.fromkeys([*names, *held]):
            d = root / op / "data"
            if not (d / "manifest.json").exists():
                t0 = time.perf_counter()
                build(None, ops=op, steps=steps, size=size, limit=limit, out=d, seed=seed,
                      split="train=0.8,test=0.2", workers=1, progress=False, log=lambda s: None)
                say(f"degrade bench: {op}: built {limit} sequences in {time.perf_counter() - t0:.1f} s")
            data_dirs[op] = d

        results: dict[str, dict[str, Any]] = {}
        for op in names:
            run = root / op / "run"
            t0 = time.perf_counter()
            summary = _train_once(train, TrainConfig(data=str(data_dirs[op]), out=str(run), **common), quiet)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = evaluate(run / "ckpt.pt", data_dirs[op], out=root / op / "report", split="test",
                           limit=eval_limit, steps_eval=steps_eval, seed=seed, log=quiet)
            results[op] = {"result": res, "train_seconds": t_train, "eval_seconds": time.perf_counter() - t0,
                           "train_loss": summary.get("loss")}
            say(f"degrade bench: {op}: trained {max_steps} steps in {t_train:.0f} s, evaluated in "
                f"{results[op]['eval_seconds']:.0f} s")

        blind: dict[str, dict[str, Any]] | None = None
        if held:
            run = root / "blind" / "run"
            pattern = str(root / ("{" + ",".join(seen) + "}" if len(seen) > 1 else seen[0]) / "data" / "shard-*.tar")
            t0 = time.perf_counter()
            _train_once(train, TrainConfig(data=pattern, out=str(run), model="blind", **common), quiet)
            t_train = time.perf_counter() - t0
            blind = {}
            for op in dict.fromkeys([*names, *held]):
                t0 = time.perf_counter()
                res = evaluate(run / "ckpt.pt", data_dirs[op], out=root / "blind" / op, split="test",
                               limit=eval_limit, steps_eval=steps_eval, seed=seed,
                               methods=("direct", "alg2"), baselines=False, log=quiet)
                blind[op] = {"result": res, "seen": op in seen, "train_seconds": t_train,
                             "eval_seconds": time.perf_counter() - t0}
            say(f"degrade bench: blind model on {', '.join(seen)} trained in {t_train:.0f} s; "
                f"held out: {', '.join(held)}")
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - t_all
    config = {"ops": names, "steps": steps, "size": size, "max_steps": max_steps, "limit": limit,
              "batch_size": batch_size, "base_channels": base_channels,
              "channel_mults": list(channel_mults), "lr": lr, "threads": threads, "seed": seed,
              "blind_holdout": held, "eval_limit": eval_limit}
    board = summarise_bench(results, blind)
    write_leaderboard(board, root, config=config, seconds=seconds)
    say(f"degrade bench: leaderboard in {root / 'leaderboard.md'} ({seconds:.0f} s in all)")
    return {"ops": board["ops"], "blind": board["blind"], "seconds": seconds, "out": str(root),
            "config": config}


def _train_once(train: Any, cfg: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """Train, or reuse a finished run of the same config (a re-run of bench resumes)."""
    ckpt = Path(cfg.out) / "ckpt.pt"
    if ckpt.exists():
        from degrade.train import load_checkpoint

        c = load_checkpoint(ckpt)
        if int(c.get("step", 0)) >= cfg.max_steps:
            return {"step": c["step"], "loss": float("nan")}
        cfg.resume = True
    return train(cfg, log=log)


