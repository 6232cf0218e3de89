"""The evaluator: per-step tables with the documented columns, reports on disk, the oracle
case end to end, `degrade eval`, `degrade bench` (tiny budget) and `degrade restore`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from degrade.build import build  # noqa: E402
from degrade.cli import main  # noqa: E402
from degrade.errors import DegradeError  # noqa: E402
from degrade.evaluate import (  # noqa: E402
    CSV_COLUMNS,
    METRICS,
    default_steps,
    evaluate,
    evaluate_restorer,
    load_samples,
    parse_steps,
)
from degrade.report import write_report  # noqa: E402
from degrade.restore import restore  # noqa: E402
from degrade.train import TrainConfig, train  # noqa: E402

TINY = {"base_channels": 8, "channel_mults": (1, 2), "threads": 1, "workers": 0, "progress": False,
        "log_every": 1, "warmup_steps": 1, "batch_size": 8, "lr": 1e-3}
SPLIT = "train=0.75,test=0.25"


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blur_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "blur"
    build(None, ops="blur", steps=4, size=16, limit=24, split=SPLIT, out=out, workers=1,
          progress=False, log=lambda s: None)
    return out


@pytest.fixture(scope="module")
def noise_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "noise"
    build(None, ops="noise", steps=4, size=16, limit=24, split=SPLIT, out=out, workers=1,
          progress=False, log=lambda s: None)
    return out


def _train(data: Path, out: Path, **kw) -> Path:
    before = torch.get_num_threads()
    train(TrainConfig(data=str(data), out=str(out), max_steps=3, **{**TINY, **kw}), log=lambda s: None)
    torch.set_num_threads(before)
    return out / "ckpt.pt"


@pytest.fixture(scope="module")
def x0_ckpt(blur_data, tmp_path_factory) -> Path:
    return _train(blur_data, tmp_path_factory.mktemp("run") / "x0")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert tuple(header) == CSV_COLUMNS
        return [dict(zip(header, row, strict=True)) for row in reader]


def test_steps_helpers():
    assert default_steps(10) == [1, 3, 6, 8, 10] and default_steps(1) == [1]
    assert parse_steps("5,1", 5) == [1, 5] and parse_steps(None, 4) == [1, 2, 3, 4]
    with pytest.raises(DegradeError, match=r"must lie in 1\.\.4"):
        parse_steps("0,5", 4)
    with pytest.raises(DegradeError, match="commas"):
        parse_steps("a,b", 4)


def test_oracle_evaluation_reports_exact_restoration(blur_data, tmp_path):
    samples = load_samples(blur_data, split="test")
    assert samples and all(s.steps == 4 for s in samples)
    clean = np.stack([s.clean for s in samples])
    res = evaluate_restorer(lambda x, k, t: clean.copy(), samples, steps_eval="1,4",
                            tuning=load_samples(blur_data, split="train", limit=4))
    assert res.methods() == ["degraded", "direct", "alg1", "alg2", "unsharp"]
    for k in (1, 4):
        for m in ("direct", "alg1", "alg2"):
            assert res.value(k, m, "psnr") == float("inf")
            assert res.value(k, m, "ssim") == 1.0 and res.value(k, m, "swd") == 0.0
        assert res.value(k, "alg2", "calls") == k and res.value(k, "direct", "calls") == 1
        assert res.value(k, "degraded", "psnr") < 40
        # Tuned on other images, unsharp masking still helps the blurred input.
        assert res.value(k, "unsharp", "psnr") >= res.value(k, "degraded", "psnr") - 0.1
    assert res.value(4, "degraded", "psnr") < res.value(1, "degraded", "psnr")
    assert len(res.rows) == 2 * 5 * len(METRICS)
    paths = write_report(res, tmp_path / "rep")
    rows = _read_csv(paths["csv"])
    assert {r["metric"] for r in rows} == set(METRICS)
    assert rows[0]["op"] == "blur" and all("data_range=1.0" in r["convention"]
                                           for r in rows if r["metric"] in ("psnr", "ssim", "swd"))
    assert {r["value"] for r in rows if r["method"] == "alg2" and r["metric"] == "psnr"} == {"inf"}


def test_virtual_datasets_are_replayed_from_their_recipes(blur_data, tmp_path):
    # --keep none stores no frames: x_k comes from each recipe, the same pixels as stored ones.
    virtual = tmp_path / "virtual"
    build(None, ops="blur", steps=4, size=16, limit=24, split=SPLIT, out=virtual, keep="none", workers=1,
          progress=False, log=lambda s: None)
    stored, replayed = load_samples(blur_data, limit=3), load_samples(virtual, limit=3)
    assert all(s.stored for s in stored) and not any(s.stored for s in replayed)
    kw = {"steps_eval": "2,4", "baselines": False}
    a = evaluate_restorer(lambda x, k, t: x, stored, **kw)
    b = evaluate_restorer(lambda x, k, t: x, replayed, **kw)
    assert [r["value"] for r in a.rows if r["metric"] in ("psnr", "ssim", "swd")] == [
        r["value"] for r in b.rows if r["metric"] in ("psnr", "ssim", "swd")]


def test_eval_from_a_checkpoint_writes_the_report(blur_data, x0_ckpt, tmp_path):
    rep = tmp_path / "report"
    code = main(["eval", "--ckpt", str(x0_ckpt), "--out", str(rep), "--steps-eval", "1,2,4", "--quiet"])
    assert code == 0
    for name in ("metrics.json", "metrics.csv", "summary.md", "samples.png", "plots/psnr.png",
                 "plots/ssim.png", "plots/swd.png", "plots/ms_per_image.png"):
        assert (rep / name).is_file(), name
    rows = _read_csv(rep / "metrics.csv")
    methods = {r["method"] for r in rows}
    assert methods == {"degraded", "direct", "alg1", "alg2", "unsharp"}
    assert {int(r["step"]) for r in rows} == {1, 2, 4}
    # Every (step, method) has every metric once.
    assert len(rows) == 3 * len(methods) * len(METRICS)
    meta = json.loads((rep / "metrics.json").read_text())
    assert meta["columns"] == list(CSV_COLUMNS) and len(meta["rows"]) == len(rows)
    m = meta["meta"]
    assert m["split"] == "test" and m["images"] == len(load_samples(blur_data, split="test"))
    assert m["baseline_tuning"].endswith("other samples") and set(m["baselines"]["unsharp"]) == {"1", "2", "4"}
    assert set(m["conventions"]) == set(METRICS)
    calls = {(r["method"], int(r["step"])): float(r["value"]) for r in rows if r["metric"] == "calls"}
    assert calls[("alg1", 4)] == 4 and calls[("direct", 4)] == 1 and calls[("degraded", 4)] == 0
    summary = (rep / "summary.md").read_text()
    assert "| k | degraded | direct | alg1 | alg2 | unsharp |" in summary
    grid = Image.open(rep / "samples.png")
    assert grid.width > 5 * 96  # clean | degraded | direct | alg1 | alg2
    res = evaluate(x0_ckpt, steps_eval=[4], methods=["direct", "rollout"], baselines=False, limit=2)
    assert res.methods() == ["degraded", "direct"] and res.meta["images"] == 2


def test_prev_models_roll_out_and_noise_reports_a_fresh_field(noise_data, tmp_path):
    ckpt = _train(noise_data, tmp_path / "prev", target="prev")
    res = evaluate(ckpt, steps_eval="2,4", limit=3, tune_limit=4)
    assert res.methods() == ["degraded", "rollout", "nlmeans", "median"]
    assert res.value(4, "rollout", "calls") == 4
    ckpt = _train(noise_data, tmp_path / "x0")
    res = evaluate(ckpt, steps_eval="4", limit=3, baselines=False, out=tmp_path / "rep")
    assert res.methods() == ["degraded", "direct", "alg1", "alg2", "alg2_fresh"]
    assert res.meta["stochastic_field"] is True
    # Replaying the sample's own noise makes alg2 an oracle bound: far above the fresh draw.
    assert res.value(4, "alg2", "psnr") > res.value(4, "alg2_fresh", "psnr") + 3
    assert "oracle bound" in (tmp_path / "rep" / "summary.md").read_text()


def test_restore_user_images(blur_data, x0_ckpt, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 28, 3)) * 255).astype(np.uint8)).save(src / "a.png")
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(src / "sub" / "b.jpg")
    out = tmp_path / "out"
    written = restore(x0_ckpt, src, out, step=2, progress=False, log=lambda s: None)
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["a.png", "sub/b.png"]
    assert Image.open(out / "a.png").size == (28, 20)
    assert main(["restore", "--ckpt", str(x0_ckpt), "--input", str(src), "--out", str(tmp_path / "o2"),
                 "--step", "3", "--sampler", "alg2", "--quiet"]) == 0
    assert (tmp_path / "o2" / "sub" / "b.png").is_file()
    # direct restore = one network call on the image, as the evaluator computes it.
    from degrade.sampling import ModelRestorer, direct
    from degrade.train import load_checkpoint

    r = ModelRestorer.from_checkpoint(load_checkpoint(x0_ckpt), steps=4)
    x = np.asarray(Image.open(src / "a.png"), np.float32)[None] / 255
    expect = np.round(direct(r, x, 2).x0[0] * 255)
    assert np.abs(np.asarray(Image.open(out / "a.png"), np.float32) - expect).max() <= 1
    with pytest.raises(DegradeError, match="step input"):
        restore(x0_ckpt, src, out, blind=True, progress=False)
    with pytest.raises(DegradeError, match="target prev"):
        restore(x0_ckpt, src, out, step=2, sampler="rollout", progress=False)
    with pytest.raises(DegradeError, match=r"1\.\.4"):
        restore(x0_ckpt, src, out, step=9, progress=False)
    assert main(["restore", "--ckpt", str(x0_ckpt), "--input", str(src), "--out", str(out)]) == 2


def test_restore_with_a_blind_model(blur_data, tmp_path):
    ckpt = _train(blur_data, tmp_path / "blind", model="blind")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((np.random.default_rng(1).random((12, 12, 3)) * 255).astype(np.uint8)).save(src / "x.png")
    assert main(["restore", "--ckpt", str(ckpt), "--input", str(src / "x.png"), "--out", str(tmp_path / "o"),
                 "--blind", "--quiet"]) == 0
    assert Image.open(tmp_path / "o" / "x.png").size == (12, 12)
    with pytest.raises(DegradeError, match="needs --step k"):
        restore(ckpt, src, tmp_path / "o", blind=True, sampler="alg2", progress=False)
    with pytest.raises(DegradeError, match="either --step k"):
        restore(ckpt, src, tmp_path / "o", progress=False)


def test_bench_end_to_end_on_a_tiny_budget(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "--ops", "blur,noise", "--steps", "3", "--size", "16", "--limit", "16",
                 "--max-steps", "3", "--base-channels", "8", "--threads", "1", "--blind-holdout", "noise",
                 "--eval-limit", "3", "--out", str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "# Restoration leaderboard" in text and "held out" in text
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.png",
                 "blur/report/metrics.csv", "noise/report/summary.md", "blind/noise/metrics.csv"):
        assert (out / name).is_file(), name
    board = json.loads((out / "leaderboard.json").read_text())
    assert sorted(r["op"] for r in board["ops"]) == ["blur", "noise"]
    assert board["config"]["max_steps"] == 3 and board["config"]["blind_holdout"] == ["noise"]
    by_op = {r["op"]: r for r in board["ops"]}
    assert by_op["blur"]["baseline"] == "unsharp" and by_op["noise"]["baseline"] in ("nlmeans", "median")
    assert by_op["noise"]["stochastic"] is True and by_op["noise"]["alg2_fresh_psnr"] is not None
    blind = {r["op"]: r for r in board["blind"]}
    assert blind["noise"]["seen"] is False and blind["blur"]["seen"] is True
    rows = list(csv.DictReader(open(out / "leaderboard.csv")))
    assert {r["op"] for r in rows} == {"blur", "noise"} and "direct_psnr" in rows[0]
    # A second run reuses the finished datasets and models.
    assert main(["bench", "--ops", "blur", "--steps", "3", "--size", "16", "--limit", "16",
                 "--max-steps", "3", "--base-channels", "8", "--threads", "1", "--eval-limit", "2",
                 "--out", str(out), "--quiet"]) == 0


@pytest.mark.slow
def test_bench_the_documented_tiny_command(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--ops", "blur,noise", "--steps", "4", "--size", "16", "--limit", "24",
                 "--max-steps", "10", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert all(r["direct_psnr"] > 0 for r in board["ops"])


def test_bench_refuses_bad_options(tmp_path):
    assert main(["bench", "--ops", "blur", "--blind-holdout", "blur", "--out", str(tmp_path)]) == 2
    assert main(["bench", "--ops", "blur:sigma=2", "--out", str(tmp_path)]) == 2
    assert main(["bench", "--ops", "nosuch", "--out", str(tmp_path)]) == 2
    assert main(["eval", "--ckpt", str(tmp_path / "none.pt")]) == 2
