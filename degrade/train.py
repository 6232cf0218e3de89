"""Train a reverse-step restoration model on a degrade dataset: one file, one flat loop.

Given step k's frame x_k, the model predicts the clean image (``target="x0"``, as Cold
Diffusion trains its restoration network) or the previous frame x_{k-1}
(``target="prev"``, "given image k, predict k-1"). Read it top to bottom: the config, then
:func:`train` — data, model, optimiser, checkpoint, loop.

Run it::

    degrade train --data DATA --out RUN [--target x0|prev] [--max-steps N] [--batch-size B]
                  [--lr LR] [--size S] [--resume] [--any-config-field=value ...]
    torchrun --nproc_per_node 2 -m degrade.train --data DATA --out RUN   # DDP: gloo on CPU,
                                                                         # nccl on GPUs

Every field of :class:`TrainConfig` is a flag (``--ema-decay 0.999`` or
``--ema_decay=0.999``); unknown flags are refused.

What it does
    AdamW; linear warmup then cosine decay to ``min_lr``; gradient clipping; an EMA of the
    weights (decay ramped up as ``min(ema_decay, (1 + step) / (10 + step))``); L1 loss
    (``--loss l2`` for MSE). ``dtype="auto"`` uses bf16 autocast where bf16 is native — a
    GPU that supports it, or a CPU with AVX512-BF16 or AMX (:func:`cpu_has_native_bf16`) —
    and float32 elsewhere, where bf16 is emulated and slower. On this project's 2-core AMD
    EPYC (AVX512-BF16) bf16 autocast trains the default UNet 1.7–1.9× faster than float32
    (benchmarks/RESULTS.md, "Reader vs trainer"). ``--dtype float32`` or ``bfloat16``
    forces either. The loss is computed in float32.

Threads
    ``threads=0`` keeps torch's default (one per core): on the quiet 2-core project machine
    2 threads train 1.8× faster than 1. On a busy machine, OpenMP threads spinning while they
    wait for a core they do not get made 2 threads 2–10× *slower* than 1 (measured there);
    on such a machine use ``--threads 1`` or set ``OMP_WAIT_POLICY=PASSIVE``. ``torchrun``
    sets ``OMP_NUM_THREADS=1`` per rank.

Data
    :class:`degrade.data.SequenceDataset` with ``steps="random"`` and ``resampled=True``:
    each rank reads disjoint samples, equal in number; the step of each example is drawn
    per (seed, epoch, key). DataLoader ``workers`` processes decode per rank.

Checkpoints
    ``RUN/ckpt.pt`` — a plain dict: ``model``, ``ema``, ``optimizer`` (state dicts),
    ``step``, ``config``, ``degrade_version``, ``torch_version``, ``manifest_sha256`` (of
    the dataset's manifest.json), ``channels``. Written by rank 0 only, to a temporary
    file then :func:`os.replace`, every ``ckpt_every`` steps and at the end; numbered
    copies ``RUN/ckpt-0001000.pt`` every ``snapshot_every`` steps if asked. Loaded with
    ``torch.load(weights_only=True)`` only. ``RUN/config.json`` holds the config as JSON.

Resuming
    ``--resume`` continues from ``RUN/ckpt.pt``: weights, EMA, optimiser state and step
    are restored, the learning rate is a function of the step, and the data stream is
    restarted at the same position (each DataLoader worker skips, undecoded, the batches it
    had already produced — whole epochs by arithmetic). On one machine with the same thread
    count, the resumed run's losses equal an uninterrupted run's, step for step (a test
    checks it). Options given with ``--resume`` override the saved config; those that would
    change the run itself (data order, model, optimiser, ...) are refused. ``--max-steps``
    may grow. ``--resume`` without a checkpoint starts afresh (so a preemptible job can
    always pass it); without ``--resume`` an existing checkpoint is never overwritten.

Logs
    A tqdm bar (rank 0) with loss and examples/s, and ``RUN/log.jsonl``: one line per
    ``log_every`` steps with ``step``, ``loss`` (mean over ranks), ``input_loss`` (the
    loss of the identity — the degraded input taken as the answer — on the same batch: the
    yardstick, since the loss's scale changes with the drawn steps; the untrained network
    is the identity, so the two start equal), ``lr``, ``examples_per_s`` (all ranks),
    ``elapsed_s``.

Randomness
    The model is initialised from a local generator seeded by ``seed``; the data draws come
    from :func:`degrade.seeding.rng_for`. Nothing here seeds torch's global RNG.

Examples
--------
>>> TrainConfig(data="d", lr=1e-3).lr
0.001
>>> lr_at(0, TrainConfig(lr=1.0, warmup_steps=10, max_steps=100))
0.1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from degrade.errors import DegradeError


@dataclass
class TrainConfig:
    """Everything a run depends on; each field is a command-line flag."""

    # data
    data: str = ""  # dataset folder, manifest.json path or URL, shard list / pattern
    out: str = "degrade-run"  # run folder: ckpt.pt, config.json, log.jsonl
    target: str = "x0"  # "x0" (the clean image) or "prev" (x_{k-1})
    split: str = "train"
    size: int = 0  # crop S×S windows (random per example); 0: the dataset's own size
    workers: int = 1  # DataLoader processes per rank; 0 decodes in the training process
    shuffle_buffer: int = 500
    # model
    model: str = "unet"  # "unet" (step input) or "blind" (none)
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    blocks: int = 1
    step_input: str = "k/T"  # what the model is told: "k/T" or the severity "t"
    # optimisation
    max_steps: int = 2000
    batch_size: int = 32  # per rank
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0: off
    ema_decay: float = 0.999
    loss: str = "l1"  # "l1" or "l2"
    # system
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    dtype: str = "auto"  # "auto" (bf16 where native: capable GPU or CPU), "float32", "bfloat16"
    threads: int = 0  # torch threads per rank; 0: torch's default
    seed: int = 0
    # checkpoints and logs
    ckpt_every: int = 250
    snapshot_every: int = 0  # also keep RUN/ckpt-<step>.pt every N steps; 0: never
    log_every: int = 10
    progress: bool = True
    resume: bool = False
    stop_at: int = 0  # stop (as if killed) after this step, without ending the schedule; 0: off

    def check(self) -> TrainConfig:
        """Validate the values; raise :class:`DegradeError` naming the first bad one."""
        choices = {
            "target": ("x0", "prev"),
            "model": ("unet", "blind"),
            "step_input": ("k/T", "t"),
            "loss": ("l1", "l2"),
            "dtype": ("auto", "float32", "bfloat16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise DegradeError(f"--{_flag(name)} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not self.data:
            raise DegradeError("--data is required (a dataset folder, manifest URL or shard list)")
        positive = ("max_steps", "batch_size", "base_channels", "blocks", "log_every", "ckpt_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise DegradeError(f"--{_flag(name)} must be ≥ 1, got {getattr(self, name)}")
        for name in ("size", "workers", "shuffle_buffer", "warmup_steps", "threads", "seed",
                     "snapshot_every", "stop_at"):
            if getattr(self, name) < 0:
                raise DegradeError(f"--{_flag(name)} must be ≥ 0, got {getattr(self, name)}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise DegradeError(f"--channel-mults must be positive integers, got {self.channel_mults}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise DegradeError(f"need lr > 0 and 0 ≤ min_lr ≤ lr, got lr={self.lr}, min_lr={self.min_lr}")
        if not 0 <= self.ema_decay < 1 or self.grad_clip < 0 or self.weight_decay < 0:
            raise DegradeError("need 0 ≤ ema_decay < 1, grad_clip ≥ 0 and weight_decay ≥ 0")
        return self


#: Fields a resumed run may change; any other change would make it a different run.
RESUME_MAY_CHANGE = frozenset(
    {"data", "out", "max_steps", "device", "threads", "ckpt_every", "snapshot_every",
     "log_every", "progress", "resume", "stop_at"}
)
CKPT_NAME = "ckpt.pt"
CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"


def _flag(name: str) -> str:
    return name.replace("_", "-")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of ``step`` (0-based): linear warmup, then cosine from lr to min_lr.

    Examples
    --------
    >>> cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=10)
    >>> [round(lr_at(s, cfg), 3) for s in (0, 5, 10)]
    [1.0, 0.5, 0.0]
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * frac)) * (cfg.lr - cfg.min_lr)


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (AVX512-BF16 or AMX; read from
    ``/proc/cpuinfo``, so False where that file does not exist).

    Examples
    --------
    >>> isinstance(cpu_has_native_bf16(), bool)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def bf16_is_native(device: Any) -> bool:
    """``dtype="auto"``: bf16 autocast on a GPU that supports bf16, or on a CPU with native
    bf16 instructions (measured faster there, see the module docs); else float32."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_native_bf16()


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """EMA decay after ``step`` updates: ramps up so early weights fade fast."""
    return min(cfg.ema_decay, (1 + step) / (10 + step))


# -- command line ------------------------------------------------------------------------------


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got '{text}'") from None


_HELP = {
    "data": "dataset folder, manifest.json path or http(s) URL, or shard list/pattern",
    "out": "run folder (ckpt.pt, config.json, log.jsonl)",
    "target": "x0 (the clean image) or prev (the previous step)",
    "size": "train on random S×S crops (0: the dataset's size)",
    "max_steps": "optimiser steps in all",
    "batch_size": "examples per step and rank",
    "lr": "peak learning rate",
    "resume": "continue from RUN/ckpt.pt (starts afresh if there is none)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :class:`TrainConfig` field (``--max-steps`` and ``--max_steps``).

    Defaults are suppressed, so :func:`config_from_args` knows which were given.
    """
    for f in dataclasses.fields(TrainConfig):
        flags = [f"--{_flag(f.name)}"] + ([f"--{f.name}"] if "_" in f.name else [])
        default = f.default
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": f.name}
        if isinstance(default, bool):
            kwargs.update(type=_parse_bool, nargs="?", const=True, metavar="BOOL")
        elif isinstance(default, tuple):
            kwargs.update(type=_parse_ints, metavar="N,N,...")
        elif isinstance(default, int):
            kwargs.update(type=int, metavar="N")
        elif isinstance(default, float):
            kwargs.update(type=float, metavar="X")
        else:
            kwargs.update(type=str, metavar=f.name.split("_")[-1].upper())
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        kwargs["help"] = f"{_HELP.get(f.name, '')} (default {shown!r})".strip()
        parser.add_argument(*flags, **kwargs)


def config_from_args(args: argparse.Namespace | dict[str, Any]) -> TrainConfig:
    """Build the config from parsed flags; with ``--resume``, on top of the saved one.

    Examples
    --------
    >>> config_from_args({"data": "d", "lr": 0.01}).lr
    0.01
    """
    given = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    given = {k: v for k, v in given.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    base = TrainConfig()
    saved = Path(given.get("out", base.out)) / CONFIG_NAME
    if given.get("resume") and saved.exists():
        base = _config_from_json(saved)
    return dataclasses.replace(base, **given).check()


def _config_from_json(path: Path) -> TrainConfig:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DegradeError(f"{path}: cannot read the saved config ({exc})") from None
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    data = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return TrainConfig(**data)


def main(argv: list[str] | None = None) -> int:
    """``python -m degrade.train ARGS`` — the same as ``degrade train ARGS``."""
    from degrade.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


# -- checkpoints -------------------------------------------------------------------------------


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint (a plain dict) with ``weights_only=True`` onto the CPU.

    Examples
    --------
    >>> # model = model_from_checkpoint(load_checkpoint("run/ckpt.pt"))
    """
    import torch

    p = Path(path)
    if p.is_dir():
        p = p / CKPT_NAME
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DegradeError(f"{p}: no checkpoint") from None
    except Exception as exc:  # unpickling errors, truncated files
        raise DegradeError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise DegradeError(f"{p}: not a degrade checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], *, ema: bool = True) -> Any:
    """Rebuild the model of a checkpoint (EMA weights by default), in eval mode on the CPU.

    Its ``forward(x, s)`` takes s = k/T or t_k, as ``ckpt["config"]["step_input"]`` says.
    """
    from degrade.models import make_model

    cfg = ckpt["config"]
    model = make_model(cfg["model"], channels=int(ckpt["channels"]), base=cfg["base_channels"],
                       mults=tuple(cfg["channel_mults"]), blocks=cfg["blocks"])
    model.load_state_dict(ckpt["ema" if ema else "model"])
    return model.eval()


def _save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _check_resume(saved: dict[str, Any], cfg: TrainConfig) -> None:
    now = asdict(cfg)
    diffs = [k for k in now if k not in RESUME_MAY_CHANGE
             and _norm(saved.get(k)) != _norm(now[k])]
    if diffs:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {now[k]!r}" for k in diffs[:4])
        raise DegradeError(
            f"--resume cannot change {shown}; start a new run (another --out) for that"
        )


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, (tuple, list)) else v


# -- training ----------------------------------------------------------------------------------


def train(cfg: TrainConfig, *, log: Any = None) -> dict[str, Any]:
    """Run (or resume) training; return a summary dict (``step``, ``loss``, ``examples_per_s``,
    ``seconds``, ``out``).

    ``log(text)`` receives one-line messages (default: stderr, rank 0 only).
    """
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader

    from degrade import __version__
    from degrade.data import SequenceDataset
    from degrade.models import count_parameters, make_model

    cfg.check()
    # -- processes and devices ------------------------------------------------------------
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    if cfg.device == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device_type = torch.device(cfg.device).type
    if ddp:
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if device_type == "cuda" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        rank, world = 0, 1
        device = torch.device(device_type if cfg.device == "auto" else cfg.device)
    master = rank == 0
    say = (log if log is not None else (lambda s: print(s, file=sys.stderr))) if master else (lambda s: None)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and bf16_is_native(device))
    try:
        # -- the run folder and the checkpoint to resume --------------------------------------
        out = Path(cfg.out)
        ckpt_path = out / CKPT_NAME
        ckpt = None
        if ckpt_path.exists():
            if not cfg.resume:
                raise DegradeError(
                    f"{out} already holds a run ({CKPT_NAME}); pass --resume to continue it or "
                    "choose another --out"
                )
            ckpt = load_checkpoint(ckpt_path)
            _check_resume(ckpt["config"], cfg)
        elif cfg.resume:
            say(f"degrade train: no {ckpt_path} yet; starting a new run")
        step = int(ckpt["step"]) if ckpt is not None else 0
        if master:
            out.mkdir(parents=True, exist_ok=True)
            _write_text_atomic(out / CONFIG_NAME, json.dumps(asdict(cfg), indent=2) + "\n")
            _trim_log(out / LOG_NAME, step)

        # -- data -----------------------------------------------------------------------------
        dataset = SequenceDataset(
            cfg.data, rank=rank, world_size=world, seed=cfg.seed, target=cfg.target,
            split=cfg.split, steps="random", shuffle_buffer=cfg.shuffle_buffer, resampled=True,
            crop=cfg.size or None, batch_size=cfg.batch_size, start=step,
        )
        if ckpt is not None and ckpt.get("manifest_sha256") != dataset.manifest_sha256:
            raise DegradeError(
                f"{cfg.data}: the dataset differs from the one this run was trained on "
                "(manifest sha256 changed); resume with the same dataset"
            )
        loader = DataLoader(
            dataset, batch_size=None, num_workers=cfg.workers,
            prefetch_factor=4 if cfg.workers else None, persistent_workers=False,
            pin_memory=device.type == "cuda",
        )
        batches = iter(loader)
        batch = next(batches)
        channels = int(batch["x"].shape[1])

        # -- model, EMA, optimiser ----------------------------------------------------------------
        raw_model = make_model(cfg.model, channels=channels, base=cfg.base_channels,
                               mults=cfg.channel_mults, blocks=cfg.blocks, seed=cfg.seed).to(device)
        ema = make_model(cfg.model, channels=channels, base=cfg.base_channels,
                         mults=cfg.channel_mults, blocks=cfg.blocks, seed=cfg.seed).to(device)
        ema.requires_grad_(False).eval()
        optimizer = torch.optim.AdamW(raw_model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                      weight_decay=cfg.weight_decay)
        if ckpt is not None:
            raw_model.load_state_dict(ckpt["model"])
            ema.load_state_dict(ckpt["ema"])
            optimizer.load_state_dict(ckpt["optimizer"])
        else:
            ema.load_state_dict(raw_model.state_dict())
        model = DistributedDataParallel(raw_model) if ddp else raw_model
        model.train()
        say(
            f"degrade train: {cfg.model} {count_parameters(raw_model):,} parameters on {device}"
            f"{' bf16' if use_bf16 else ''}, {world} rank(s) × batch {cfg.batch_size}, "
            f"{dataset.samples_per_rank} samples per rank and epoch; "
            f"{'resuming at' if ckpt is not None else 'starting at'} step {step} of {cfg.max_steps}"
        )

        def save(path: Path) -> None:
            _save_atomic(
                {
                    "model": raw_model.state_dict(),
                    "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "config": asdict(cfg),
                    "degrade_version": __version__,
                    "torch_version": str(torch.__version__),
                    "manifest_sha256": dataset.manifest_sha256,
                    "channels": channels,
                },
                path,
            )

        # -- the loop ------------------------------------------------------------------------------
        bar = None
        if master and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.max_steps, initial=step, desc="degrade train", unit="step",
                       dynamic_ncols=True)
        log_file = open(out / LOG_NAME, "a") if master else None  # closed after the loop
        t_start = t_last = time.perf_counter()
        last_step = step
        loss_value = float("nan")
        speed = 0.0
        stop = min(cfg.max_steps, cfg.stop_at) if cfg.stop_at else cfg.max_steps
        while step < stop:
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = batch["x"].to(device, non_blocking=True)
            y = batch["target"].to(device, non_blocking=True)
            s = (batch["k"].float() / batch["T"].float()) if cfg.step_input == "k/T" else batch["t"]
            s = s.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred = model(x, s)
            pred = pred.float()
            loss = F.l1_loss(pred, y) if cfg.loss == "l1" else F.mse_loss(pred, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
            optimizer.step()
            with torch.no_grad():
                decay = ema_decay_at(step, cfg)
                torch._foreach_lerp_(list(ema.parameters()), list(raw_model.parameters()), 1.0 - decay)
            step += 1
            if step < stop:
                batch = next(batches)  # the workers are already decoding the ones after it

            if step % cfg.log_every == 0 or step == stop:
                # The loss of the identity (the degraded input as its own answer) on the same
                # batch: the yardstick for a loss whose scale changes with the drawn steps.
                with torch.no_grad():
                    base = F.l1_loss(x.float(), y) if cfg.loss == "l1" else F.mse_loss(x.float(), y)
                values = torch.stack([loss.detach().float(), base.float()]).cpu()
                if ddp:
                    dist.all_reduce(values)
                    values /= world
                loss_value, input_loss = float(values[0]), float(values[1])
                now = time.perf_counter()
                speed = (step - last_step) * cfg.batch_size * world / max(now - t_last, 1e-9)
                t_last, last_step = now, step
                if master:
                    entry = {"step": step, "loss": loss_value, "input_loss": input_loss, "lr": lr,
                             "examples_per_s": round(speed, 2), "elapsed_s": round(now - t_start, 3)}
                    log_file.write(json.dumps(entry) + "\n")  # type: ignore[union-attr]
                    log_file.flush()  # type: ignore[union-attr]
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss_value:.4f}", ex_s=f"{speed:.0f}")
            if bar is not None:
                bar.update(1)
            if master and (step % cfg.ckpt_every == 0 or step == stop):
                save(ckpt_path)
            if master and cfg.snapshot_every and step % cfg.snapshot_every == 0:
                save(out / f"ckpt-{step:07d}.pt")
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
        seconds = time.perf_counter() - t_start
        del batches
        if ddp:
            # Every rank waits here for rank 0's last checkpoint: a rank that tore its
            # process group down meanwhile could abort in gloo's threads ("terminate called
            # without an active exception", seen once in CI).
            dist.barrier()
        say(f"degrade train: step {step}, loss {loss_value:.4f}, {speed:.0f} examples/s; "
            f"checkpoint {ckpt_path}")
        return {"step": step, "loss": loss_value, "examples_per_s": speed, "seconds": seconds,
                "out": str(out)}
    finally:
        if ddp and dist.is_initialized():
            dist.destroy_process_group()


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resumed run restarts from)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    _write_text_atomic(path, "".join(f"{line}\n" for line in keep))


def read_log(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read ``RUN/log.jsonl`` as a list of dicts.

    Examples
    --------
    >>> read_log("/nonexistent-run")
    []
    """
    p = Path(run) / LOG_NAME
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    raise SystemExit(main())
