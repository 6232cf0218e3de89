"""The trainer: the loss falls on the sample pool, --resume continues exactly, checkpoints are
plain dicts loaded with weights_only, options are checked, and torchrun with 2 ranks works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from degrade import __version__  # noqa: E402
from degrade.build import build  # noqa: E402
from degrade.cli import main  # noqa: E402
from degrade.errors import DegradeError  # noqa: E402
from degrade.shards.manifest import sha256_file  # noqa: E402
from degrade.train import (  # noqa: E402
    TrainConfig,
    config_from_args,
    load_checkpoint,
    model_from_checkpoint,
    read_log,
    train,
)

# Small and fast: a 16-channel two-level UNet, one torch thread (tiny tensors; and a busy
# 2-core machine makes several threads wait on each other).
FAST = {"base_channels": 16, "channel_mults": (1, 2), "threads": 1, "progress": False,
        "log_every": 1, "warmup_steps": 10, "lr": 1e-3, "min_lr": 1e-4}


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """The sample pool, 32 px, --ops blur --steps 20."""
    out = tmp_path_factory.mktemp("train") / "pool32"
    build(None, ops="blur", steps=20, size=32, limit=96, shard_size=24, out=out, workers=1,
          progress=False, log=lambda s: None)
    return out


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _losses(run: Path) -> list[float]:
    return [e["loss"] for e in read_log(run)]


def _ratios(run: Path) -> list[float]:
    # The loss relative to the identity's on the same batch: per-batch losses swing with the
    # drawn steps, and the untrained network is the identity, so the ratio starts at 1.
    return [e["loss"] / e["input_loss"] for e in read_log(run)]


def test_training_on_the_pool_lowers_the_loss(pool, tmp_path):
    run = tmp_path / "run"
    summary = train(TrainConfig(data=str(pool), out=str(run), max_steps=40, batch_size=16, **FAST),
                    log=lambda s: None)
    assert summary["step"] == 40
    assert [e["step"] for e in read_log(run)] == list(range(1, 41))
    ratio = _ratios(run)
    assert ratio[0] == pytest.approx(1.0, abs=1e-6)
    assert sum(ratio[-10:]) / 10 < 0.99
    assert all(set(e) == {"step", "loss", "input_loss", "lr", "examples_per_s", "elapsed_s"}
               for e in read_log(run))

    ckpt = load_checkpoint(run / "ckpt.pt")
    assert set(ckpt) >= {"model", "ema", "optimizer", "step", "config", "degrade_version",
                         "manifest_sha256"}
    assert ckpt["step"] == 40 and ckpt["degrade_version"] == __version__
    assert ckpt["manifest_sha256"] == sha256_file(pool / "manifest.json")
    assert ckpt["config"]["max_steps"] == 40
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp files left

    # On a fixed set of training examples the trained model beats the identity it started as.
    from degrade.data import SequenceDataset, collate

    exs = list(SequenceDataset(pool, steps="all", shuffle_buffer=0))[:200]
    batch = collate(exs)
    model = model_from_checkpoint(ckpt, ema=False)
    with torch.no_grad():
        pred = model(batch["x"], batch["k"].float() / batch["T"].float())
    trained = (pred - batch["target"]).abs().mean()
    identity = (batch["x"] - batch["target"]).abs().mean()
    assert trained < identity


def test_resume_continues_the_step_count_and_the_loss_curve(pool, tmp_path):
    common = dict(data=str(pool), max_steps=12, batch_size=8, ckpt_every=3, workers=2,
                  **{**FAST, "base_channels": 8})
    train(TrainConfig(out=str(tmp_path / "whole"), **common), log=lambda s: None)
    # "Killed" after step 7: the last checkpoint is step 6; log lines 7 are dropped on resume.
    part = tmp_path / "part"
    train(TrainConfig(out=str(part), stop_at=7, **common), log=lambda s: None)
    assert load_checkpoint(part)["step"] == 7
    train(TrainConfig(out=str(part), stop_at=0, resume=True, **common), log=lambda s: None)

    assert [e["step"] for e in read_log(part)] == list(range(1, 13))
    assert _losses(part) == _losses(tmp_path / "whole")
    a, b = load_checkpoint(part), load_checkpoint(tmp_path / "whole")
    assert a["step"] == b["step"] == 12
    for name in ("model", "ema"):
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name])


def test_snapshots_and_refusals(pool, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(pool), out=str(run), max_steps=4, batch_size=4, snapshot_every=2,
                      workers=0, **{**FAST, "base_channels": 8})
    train(cfg, log=lambda s: None)
    assert sorted(p.name for p in run.glob("ckpt*.pt")) == ["ckpt-0000002.pt", "ckpt-0000004.pt", "ckpt.pt"]
    with pytest.raises(DegradeError, match="already holds a run"):
        train(cfg, log=lambda s: None)
    with pytest.raises(DegradeError, match="cannot change lr"):
        train(TrainConfig(**{**cfg.__dict__, "resume": True, "lr": 0.1}), log=lambda s: None)
    # --resume may extend the run; the config saved beside the checkpoint fills in the rest
    again = config_from_args({"out": str(run), "resume": True, "max_steps": 6})
    assert again.batch_size == 4 and again.base_channels == 8 and again.max_steps == 6
    assert train(again, log=lambda s: None)["step"] == 6


def test_config_checks():
    with pytest.raises(DegradeError, match="--target must be one of x0, prev"):
        TrainConfig(data="d", target="x1").check()
    with pytest.raises(DegradeError, match="--data is required"):
        TrainConfig().check()
    with pytest.raises(DegradeError, match="--batch-size must be ≥ 1"):
        TrainConfig(data="d", batch_size=0).check()


def test_cli_flags_are_checked_against_the_config(pool, tmp_path, capsys):
    assert main(["train", "--data", str(pool), "--out", str(tmp_path / "r"), "--no-such=1"]) == 2
    assert "unrecognized arguments: --no-such=1" in capsys.readouterr().err
    assert main(["train", "--data", str(pool), "--ema_decay=2"]) == 2
    assert "ema_decay" in capsys.readouterr().err
    assert main(["train", "--data", str(pool), "--max-steps", "many"]) == 2
    from degrade.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--data", "D", "--max-steps", "7", "--channel-mults", "1,2,4", "--progress=false",
         "--resume"])
    cfg = config_from_args(args)
    assert (cfg.max_steps, cfg.channel_mults, cfg.progress, cfg.resume) == (7, (1, 2, 4), False, True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def test_torchrun_two_ranks_on_cpu(pool, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this python")
    run = tmp_path / "ddp"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "degrade.train",
           "--data", str(pool), "--out", str(run), "--max-steps", "4", "--batch-size", "4",
           "--workers", "0", "--threads", "1", "--progress", "false", "--log-every", "1",
           "--base-channels", "8", "--channel-mults", "1,2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 rank(s) × batch 4" in proc.stderr
    assert proc.stderr.count("degrade train: step 4") == 1  # rank 0 alone reports
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 4
    assert [e["step"] for e in read_log(run)] == [1, 2, 3, 4]
    assert read_log(run)[-1]["examples_per_s"] > 0


@pytest.mark.slow
def test_longer_training_restores_clearly_better_than_the_input(pool, tmp_path):
    run = tmp_path / "run"
    train(TrainConfig(data=str(pool), out=str(run), max_steps=150, batch_size=16, **FAST),
          log=lambda s: None)
    assert sum(_ratios(run)[-10:]) / 10 < 0.9


@pytest.mark.slow
def test_kill_and_resume_matches_an_uninterrupted_run(pool, tmp_path):
    """A real SIGKILL mid-run, then --resume, against an uninterrupted 40-step run."""
    common = ["--data", str(pool), "--max-steps", "40", "--batch-size", "16", "--ckpt-every", "5",
              "--log-every", "1", "--progress", "false", "--threads", "1", "--warmup-steps", "10",
              "--lr", "1e-3", "--base-channels", "16", "--channel-mults", "1,2"]
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-m", "degrade.train", "--out", str(whole), *common],
                   check=True, capture_output=True, env=_env(), timeout=600)
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "degrade.train", "--out", str(run), *common],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if len(read_log(run) if (run / "log.jsonl").exists() else []) >= 22:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    stopped_at = load_checkpoint(run)["step"]
    assert 20 <= stopped_at < 40
    subprocess.run([sys.executable, "-m", "degrade.train", "--out", str(run), "--resume", *common],
                   check=True, capture_output=True, env=_env(), timeout=600)
    assert [e["step"] for e in read_log(run)] == list(range(1, 41))
    assert _losses(run) == _losses(whole)
    assert json.loads((run / "config.json").read_text())["max_steps"] == 40


def test_the_cli_declares_train_without_importing_torch():
    code = ("import sys, degrade.cli; degrade.cli.build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
