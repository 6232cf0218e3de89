"""Calibrated schedules: equal mean-metric drops, per-image monotone sequences, recorded
schedules that replay without recalibration, and the ``degrade calibrate`` command."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image

import degrade.calibrate as calibrate_mod
from degrade.calibrate import (
    PSNR_CAP,
    calibrate,
    calibration_images,
    monotone_execute,
    parse_calibrated,
)
from degrade.cli import main
from degrade.errors import DegradeError
from degrade.metrics import psnr
from degrade.pipeline import Pipeline, replay

SPEC = "calibrated:samples=8:size=32"


def _scores(frames: list[np.ndarray]) -> list[float]:
    return [min(psnr(f, frames[0]), PSNR_CAP) for f in frames]


def test_parse_calibrated():
    assert parse_calibrated("calibrated") == {"metric": "psnr", "samples": 16, "size": 64}
    assert parse_calibrated("calibrated:ssim:samples=4:size=32") == {"metric": "ssim", "samples": 4, "size": 32}
    for bad in ("calibrated:mse", "calibrated:size=2", "calibrated:samples=x", "linear"):
        with pytest.raises(DegradeError):
            parse_calibrated(bad)


def test_calibration_sample_is_seeded_and_recorded():
    a = calibration_images(4, 16, seed=1)
    b = calibration_images(4, 16, seed=1)
    c = calibration_images(4, 16, seed=2)
    assert [k for k, _ in a] == [k for k, _ in b] != [k for k, _ in c]
    assert all(im.shape == (16, 16, 3) and im.dtype == np.uint8 for _, im in a)


@pytest.mark.parametrize("ops", ["jpeg", "blur", "blur,jpeg"])
def test_calibrated_steps_drop_equally_and_no_image_gets_better(ops):
    steps = 8
    pipe = Pipeline.parse(ops, steps=steps, schedule=SPEC)
    assert pipe.monotone and pipe.schedule == pytest.approx(pipe.ts[1:])
    cal = pipe.calibration
    assert cal["metric"] == "psnr" and cal["samples"] == 8 and cal["size"] == 32
    # Run on the calibration images themselves and on others from the pool.
    sample = calibration_images(8, 32, seed=0)
    others = calibration_images(24, 32, seed=99)
    means = np.zeros(steps + 1)
    for key, img in sample:
        frames, recipe = pipe.run(img, key=key)
        sc = _scores(frames)
        means += np.array(sc) / len(sample)
        assert all(b <= a + 1e-9 for a, b in itertools.pairwise(sc)), (key, sc)
        assert all((x == y).all() for x, y in zip(frames, replay(recipe, frames[0]), strict=True))
    for key, img in others:
        sc = _scores(pipe.run(img, key=key)[0])
        assert all(b <= a + 1e-9 for a, b in itertools.pairwise(sc)), (key, sc)
    drops = -np.diff(means)
    assert (drops > 0).all(), drops  # no step leaves the mean where it was
    # JPEG's gentlest setting (quality 100) already costs more than one equal step: step 1
    # takes it and the other steps share the rest.
    rest = drops[1:] if "jpeg" in ops else drops
    assert rest.max() <= 2.0 * rest.mean() and rest.min() >= 0.4 * rest.mean(), drops
    if ops == "blur":
        assert drops.max() - drops.min() <= 0.35 * drops.mean(), drops


def test_equal_drops_against_the_raw_linear_schedule():
    cal = calibrate("blur", 6, samples=6, size=32)
    raw_drops = -np.diff(cal.raw_means)
    cal_drops = -np.diff(cal.means)
    assert np.std(cal_drops) < 0.2 * np.std(raw_drops)
    assert cal.means[-1] == pytest.approx(cal.raw_means[-1])
    assert cal.ts[-1] == 1.0 and all(b >= a for a, b in zip(cal.ts, cal.ts[1:], strict=False))


def test_ssim_metric_is_selectable():
    pipe = Pipeline.parse("blur", steps=4, schedule="calibrated:ssim:samples=4:size=32")
    assert pipe.calibration["metric"] == "ssim"
    means = pipe.calibration["means"]
    assert means[0] == 1.0 and all(b < a for a, b in itertools.pairwise(means))


def test_chained_mode_calibrates_step_by_step():
    cal = calibrate("blur:sigma=1", 5, mode="chained", samples=4, size=32)
    drops = -np.diff(cal.means)
    assert (drops > 0).all()
    assert drops.max() <= 2.5 * drops.min()


def test_the_schedule_is_recorded_and_replays_without_recalibration(monkeypatch):
    pipe = Pipeline.parse("jpeg", steps=4, schedule=SPEC)
    d = pipe.to_dict()
    assert isinstance(d["schedule"], list) and d["monotone"] is True and d["calibration"]["keys"]

    def boom(*a, **k):
        raise AssertionError("recalibrated")

    monkeypatch.setattr(calibrate_mod, "calibrate", boom)
    again = Pipeline.from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d
    img = calibration_images(1, 32, seed=5)[0][1]
    frames, recipe = again.run(img, key="k")
    assert recipe["schedule"]["name"] == "calibrated"
    assert all((a == b).all() for a, b in zip(frames, replay(recipe, frames[0]), strict=True))


def test_per_image_adjustment_makes_a_non_monotone_op_monotone():
    # JPEG on small smooth images: a higher quality is sometimes worse than a lower one.
    imgs = [im for _, im in calibration_images(12, 24, seed=3)]
    raw = Pipeline.parse("jpeg", steps=40)
    fixed = Pipeline("jpeg", steps=40, monotone=True)
    rises_raw = rises_fixed = adjusted = 0
    for i, img in enumerate(imgs):
        sc = _scores(raw.run(img, key=f"k{i}")[0])
        rises_raw += sum(b > a + 1e-9 for a, b in itertools.pairwise(sc))
        frames, recipe = fixed.run(img, key=f"k{i}")
        sc = _scores(frames)
        rises_fixed += sum(b > a + 1e-9 for a, b in itertools.pairwise(sc))
        marked = [s for s in recipe["steps"] if "t_params" in s or "hold" in s]
        adjusted += len(marked)
        for s in marked:
            if "t_params" in s:
                assert s["t_params"] > s["t"]
                assert s["ops"][0]["params"]["quality"] <= raw.plan("x")[s["k"] - 1]["ops"][0]["params"]["quality"]
        assert all((a == b).all() for a, b in zip(frames, replay(recipe, frames[0]), strict=True))
    assert rises_raw > 0, "the test images no longer show JPEG's non-monotonicity"
    assert rises_fixed == 0 and adjusted >= rises_raw // 2


def test_monotone_execute_holds_when_nothing_is_more_damaging():
    # Step 2 is pushed past the curve's end (quality 1 < 5): nothing on the curve from step
    # 3's t = 1 is as damaging, so step 3 holds step 2's frame (absolute: its params).
    pipe = Pipeline("jpeg", steps=3, schedule=[0.5, 1.0, 1.0], monotone=True)
    img = calibration_images(1, 16, seed=0)[0][1]
    recipe = pipe.recipe("a", img.shape)
    recipe["steps"][1]["ops"][0]["params"]["quality"] = 1
    frames, _ = monotone_execute(img, recipe)
    assert recipe["steps"][2].get("hold") is True
    assert recipe["steps"][2]["ops"][0]["params"]["quality"] == 1
    assert (frames[3] == frames[2]).all()
    again = replay(recipe, frames[0])  # float frames
    assert all((a == np.round(b * 255)).all() for a, b in zip(frames, again, strict=True))


def test_calibration_rejects_lists_and_ranges():
    with pytest.raises(DegradeError, match=r"per-step list or an a\.\.b range"):
        Pipeline.parse("jpeg:quality=50..5", steps=3, schedule=SPEC)


def test_cli_calibrate_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    png = tmp_path / "cal.png"
    rc = main(["calibrate", "--ops", "blur,jpeg", "--steps", "4", "--samples", "4", "--size", "32",
               "--plot", str(png)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "t_k" in out and "mean PSNR" in out and "jpeg quality=" in out
    assert any(line.split()[:1] == ["4"] for line in out.splitlines())
    assert Image.open(png).format == "PNG"
    rc = main(["calibrate", "--ops", "blur", "--steps", "3", "--samples", "2", "--size", "16",
               "--metric", "ssim", "--plot", "", "--json"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["metric"] == "ssim" and len(rec["ts"]) == 3 and rec["plot"] is None


def test_build_with_a_calibrated_schedule(tmp_path):
    out = tmp_path / "d"
    assert main(["build", "--ops", "blur,jpeg", "--steps", "4", "--schedule", "calibrated:samples=4",
                 "--limit", "3", "--size", "32", "--workers", "1", "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "manifest.json").read_text())["config"]["pipeline"]
    assert cfg["calibration"]["size"] == 32 and len(cfg["schedule"]) == 4 and cfg["monotone"]
    assert main(["verify", str(out)]) == 0
