"""Presets: the YAML format, name resolution, overrides, and that every bundled preset builds,
replays, and says what its source says (Cold Diffusion kernels, ImageNet-C level tables,
heat-dissipation σ, reference formulas for the deterministic ImageNet-C corruptions)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import setuptools
import tomllib
from PIL import Image
from scipy import ndimage
from skimage import color

from degrade.build import build
from degrade.cli import main
from degrade.errors import DegradeError
from degrade.presets import (
    PresetError,
    find_preset,
    list_presets,
    load_preset,
    pipeline_from_preset,
    preset_root,
    scan_presets,
)
from degrade.registry import get_op
from degrade.sources import list_sources, load_item
from degrade.verify import verify

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(p for p in (ROOT / "pipelines").rglob("*.yaml"))
NAMES = [p.relative_to(ROOT / "pipelines").with_suffix("").as_posix() for p in FILES]


# -- every preset --------------------------------------------------------------------------


def _load_or_skip(name: str):
    try:
        return pipeline_from_preset(name)
    except DegradeError as exc:
        if "unknown op" in str(exc):
            pytest.skip(f"{name} needs an op this installation lacks: {exc}")
        raise


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_builds_and_replays(name, tmp_path):
    pipe, _ = _load_or_skip(name)
    preset = load_preset(name)
    assert preset.description and preset.source
    build(None, pipeline=pipe, limit=2, size=32, workers=1, progress=False, out=tmp_path,
          log=lambda s: None)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["samples"] == 2 and manifest["steps"] == pipe.steps
    report = verify(tmp_path, regenerate=2)
    assert report.ok, str(report)


def test_bundled_presets_cover_the_issue():
    names = set(NAMES)
    ic = {"gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
          "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
          "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate"}
    assert {f"imagenet-c/{c}" for c in ic} <= names
    assert {"realesrgan", "mixed-choice"} <= names
    assert len([n for n in names if n.startswith("cold-diffusion/")]) >= 8
    assert len([n for n in names if n.startswith("heat-dissipation/")]) == 3
    assert len([n for n in names if n.startswith("seed-catalog/")]) >= 8


def test_list_and_scan_presets():
    presets, errors = scan_presets()
    got = [p.name for p in presets]
    assert got == sorted(got) and "imagenet-c/pixelate" in got
    assert [p.name for p in list_presets()] == got
    # A preset is either usable or reported with its file and line.
    assert len(presets) + len(errors) == len(FILES)
    for path, err in errors:
        assert err.startswith(f"{path}:")


# -- names, paths, overrides ---------------------------------------------------------------


def test_name_and_path_resolve_to_the_same_preset():
    by_name = load_preset("imagenet-c/pixelate")
    by_path = load_preset(str(preset_root() / "imagenet-c" / "pixelate.yaml"))
    by_suffix = load_preset("imagenet-c/pixelate.yaml")
    assert by_name.name == by_path.name == by_suffix.name == "imagenet-c/pixelate"
    assert by_name.pipeline().to_dict() == by_path.pipeline().to_dict()


def test_unknown_name_suggests_close_ones():
    with pytest.raises(DegradeError, match="imagenet-c/pixelate"):
        find_preset("imagenet-c/pixelat")


def test_flags_override_the_file():
    pipe, defaults = pipeline_from_preset("imagenet-c/fog", seed=7, mode="chained")
    assert (pipe.seed, pipe.mode, pipe.steps) == (7, "chained", 5)
    assert defaults["size"] == 224 and defaults["name"] == "imagenet-c/fog"
    pipe, _ = pipeline_from_preset("imagenet-c/fog", ops="blur:sigma=2", steps=3, schedule="cosine")
    assert pipe.spec == "blur:sigma=2" and pipe.steps == 3 and pipe.schedule == "cosine"
    with pytest.raises(PresetError, match="written for 5 steps"):
        pipeline_from_preset("imagenet-c/fog", steps=7)


def test_a_preset_outside_the_bundle(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("description: mine\nops: [blur, 'jpeg:quality=10..5']\nsteps: 4\nsource: {notes: made up}\n")
    pipe, defaults = pipeline_from_preset(str(f))
    assert pipe.spec == "blur,jpeg:quality=10..5" and "size" not in defaults


# -- errors: file:line: what ---------------------------------------------------------------

BAD = [
    ("description: x\nops: [blur\nsteps: 2\n", 3, "not valid YAML"),
    ("description: x\nops: [blur]\nsteps: 2\nsource: {notes: n}\nstepz: 3\n", 5, "unknown key 'stepz'; did you mean 'steps'"),
    ("description: x\nops: [blur]\nsource: {notes: n}\n", 1, "missing required key 'steps'"),
    ("description: x\nops:\n  - blur\n  - op: nosuch\nsteps: 2\nsource: {notes: n}\n", 4, "unknown op 'nosuch'"),
    ("description: x\nops:\n  - op: blur\n    params: {sigmaa: 3}\nsteps: 2\nsource: {notes: n}\n", 3, "no parameter 'sigmaa'"),
    ("description: x\nops:\n  - op: blur\n    params:\n      sigma: [1, 2, 3]\nsteps: 2\nsource: {notes: n}\n", 3, "one value per step"),
    ("description: x\nops: [blur]\nsteps: 0\nsource: {notes: n}\n", 3, "'steps' must be a positive"),
    ("description: x\nops: [blur]\nsteps: 2\nmode: sideways\nsource: {notes: n}\n", 4, "'mode' must be one of"),
    ("description: x\nops: [blur]\nsteps: 2\nschedule: wobbly\nsource: {notes: n}\n", 4, "unknown schedule 'wobbly'"),
    ("description: x\nops: [blur]\nsteps: 2\nschedule: [0.5, 0.2]\nsource: {notes: n}\n", 4, "must not decrease"),
    ("description: x\nops: [blur]\nsteps: 2\nsource: {paper: p, blog: b}\n", 4, "unknown source key 'blog'"),
    ("description: x\nops: [blur]\nsteps: 2\nsteps: 3\nsource: {notes: n}\n", 4, "appears twice"),
    ("description: x\nops: !!python/object:os.system [ls]\nsteps: 2\nsource: {notes: n}\n", 2, "not valid YAML"),
    ("- just\n- a list\n", 1, "a preset is a mapping"),
]


@pytest.mark.parametrize(("text", "line", "what"), BAD)
def test_mistakes_are_reported_as_file_line_what(tmp_path, text, line, what):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(PresetError) as info:
        load_preset(str(f))
    msg = str(info.value)
    assert msg.startswith(f"{f}:{line}: "), msg
    assert what in msg


# -- packaging -----------------------------------------------------------------------------


def test_wheel_config_ships_the_presets_and_every_package():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"]["degrade.pipelines"] == "pipelines"
    assert "degrade.pipelines" in cfg["packages"]
    assert any(g.endswith("*.yaml") and "**" in g for g in cfg["package-data"]["degrade.pipelines"])
    found = set(setuptools.find_packages(where=str(ROOT), include=["degrade*"]))
    assert found <= set(cfg["packages"]), f"add {sorted(found - set(cfg['packages']))} to pyproject's packages"


# -- Cold Diffusion: the published kernels -------------------------------------------------


def _impulse_response(kernel: int, sigma: float) -> np.ndarray:
    img = np.zeros((41, 41, 1), np.float32)
    img[20, 20] = 1.0
    out = get_op("blur").apply(img, {"sigma": sigma, "kernel": kernel})
    return out[20 - kernel // 2 : 21 + kernel // 2, 20 - kernel // 2 : 21 + kernel // 2, 0]


def _published_kernel(size: int, sigma: float) -> np.ndarray:
    # torchgeometry's get_gaussian_kernel2d: the outer product of exp(−x²/2σ²) sampled at
    # x = −size//2 … size//2 and normalised: the kernel is truncated at its size.
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


@pytest.mark.parametrize(
    ("name", "size", "sigma_of_step", "steps"),
    [
        ("cold-diffusion/blur-cifar10", 11, lambda i: 0.35 + i / 100, 50),
        ("cold-diffusion/blur-mnist", 11, lambda i: 7.0, 20),
        ("cold-diffusion/blur-celeba128", 15, lambda i: math.exp(0.01 * i), 200),
    ],
)
def test_cold_diffusion_blur_kernels_equal_the_published_ones(name, size, sigma_of_step, steps):
    pipe, _ = pipeline_from_preset(name)
    assert pipe.steps == steps and pipe.mode == "chained"
    plan = pipe.plan("any")
    for k in range(1, steps + 1):
        params = plan[k - 1]["ops"][0]["params"]
        assert params["kernel"] == size
        assert params["sigma"] == pytest.approx(sigma_of_step(k - 1), rel=1e-9, abs=1e-12)
    for k in (1, steps // 2, steps):
        sigma = plan[k - 1]["ops"][0]["params"]["sigma"]
        got = _impulse_response(size, sigma)
        assert got.shape == (size, size)
        np.testing.assert_allclose(got, _published_kernel(size, sigma), atol=2e-6)


def test_cold_diffusion_blur_cifar10_reaches_the_published_effective_sigma():
    pipe, _ = pipeline_from_preset("cold-diffusion/blur-cifar10")
    sig = [s["ops"][0]["params"]["sigma"] for s in pipe.plan("a")]
    assert math.sqrt(sum(s * s for s in sig)) == pytest.approx(4.3, abs=0.05)


def test_cold_diffusion_fade_desaturation_and_sr_schedules():
    pipe, _ = pipeline_from_preset("cold-diffusion/fade-cifar10")
    sig = [s["ops"][0]["params"]["sigma"] for s in pipe.plan("a")]
    assert sig == pytest.approx([0.1 * (i + 11) / 32 for i in range(50)], rel=1e-9)
    pipe, _ = pipeline_from_preset("cold-diffusion/desaturation")
    keep = [s["ops"][0]["params"]["keep"] for s in pipe.plan("a")]
    left = np.cumprod(keep)
    np.testing.assert_allclose(left, 1 - np.arange(1, 21) / 20, atol=1e-9)
    pipe, _ = pipeline_from_preset("cold-diffusion/pixelate-sr-cifar10")
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    frames, _ = pipe.run(img, key="a")
    for k, side in ((1, 16), (2, 8), (3, 4)):
        blocks = frames[k].reshape(side, 32 // side, side, 32 // side, 3)
        assert (blocks == blocks[:, :1, :, :1]).all(), f"step {k} is not {side}×{side} blocks"


def test_cold_diffusion_snow_follows_the_linear_schedules():
    pipe, _ = pipeline_from_preset("cold-diffusion/snow")
    plan = pipe.plan("a")
    for name, a, b in (("threshold", 1.15, 0.7), ("sigma", 0.05, 16.0), ("mix", 0.95, 0.4)):
        got = [s["ops"][0]["params"][name] for s in plan]
        np.testing.assert_allclose(got, np.linspace(a, b, 200), rtol=1e-9, atol=1e-12)
    assert {s["ops"][0]["params"]["streak"] for s in plan} == {"line"}
    assert {s["ops"][0]["params"]["zoom"] for s in plan} == {2.5}


@pytest.mark.parametrize(("name", "k", "smax"), [("mnist", 100, 20), ("cifar10", 200, 24), ("256px", 200, 128)])
def test_heat_dissipation_sigmas_are_log_spaced_as_published(name, k, smax):
    pipe, _ = pipeline_from_preset(f"heat-dissipation/{name}")
    sig = [s["ops"][0]["params"]["sigma"] for s in pipe.plan("a")]
    np.testing.assert_allclose(sig, np.exp(np.linspace(np.log(0.5), np.log(smax), k)), rtol=1e-9)
    assert pipe.steps == k


# -- ImageNet-C: the level tables ----------------------------------------------------------

#: ImageNet-C's levels 1 … 5 (hendrycks/robustness make_imagenet_c.py; imagecorruptions
#: corruptions.py for elastic_transform), as the op parameters they become.
IMAGENET_C = {
    "gaussian_noise": {"sigma": [0.08, 0.12, 0.18, 0.26, 0.38]},
    "shot_noise": {"photons": [60, 25, 12, 5, 3]},
    "impulse_noise": {"amount": [0.03, 0.06, 0.09, 0.17, 0.27]},
    "speckle_noise": {"sigma": [0.15, 0.2, 0.35, 0.45, 0.6]},
    "gaussian_blur": {"sigma": [1, 2, 3, 4, 6]},
    "glass_blur": {"sigma": [0.7, 0.9, 1, 1.1, 1.5], "max_delta": [1, 2, 2, 3, 4], "iterations": [2, 1, 3, 2, 2]},
    "defocus_blur": {"radius": [3, 4, 6, 8, 10], "alias_sigma": [0.1, 0.5, 0.5, 0.5, 0.5]},
    "motion_blur": {"radius": [10, 15, 15, 15, 20], "sigma": [3, 5, 8, 12, 15]},
    "zoom_blur": {"zoom": [1.11, 1.16, 1.21, 1.26, 1.31], "step": [0.01, 0.01, 0.02, 0.02, 0.03]},
    "snow": {"loc": [0.1, 0.2, 0.55, 0.55, 0.55], "scale": [0.3] * 5, "zoom": [3, 2, 4, 4.5, 2.5],
             "threshold": [0.5, 0.5, 0.9, 0.85, 0.85], "radius": [10, 12, 12, 12, 12],
             "sigma": [4, 4, 8, 8, 12], "mix": [0.8, 0.7, 0.7, 0.65, 0.55]},
    "frost": {"keep": [1, 0.8, 0.7, 0.65, 0.6], "frost": [0.4, 0.6, 0.7, 0.7, 0.75]},
    "fog": {"strength": [1.5, 2, 2.5, 2.5, 3], "decay": [2, 2, 1.7, 1.5, 1.4]},
    "brightness": {"amount": [0.1, 0.2, 0.3, 0.4, 0.5]},
    "contrast": {"factor": [0.4, 0.3, 0.2, 0.1, 0.05]},
    "elastic_transform": {"alpha": [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12],
                          "sigma": [0.01] * 5, "max_shift": [0.005] * 5},
    "pixelate": {"scale": [0.6, 0.5, 0.4, 0.3, 0.25]},
    "jpeg_compression": {"quality": [25, 18, 15, 10, 7]},
    "spatter": {"loc": [0.65, 0.65, 0.65, 0.65, 0.67], "scale": [0.3, 0.3, 0.3, 0.3, 0.4],
                "sigma": [4, 3, 2, 1, 1], "threshold": [0.69, 0.68, 0.68, 0.65, 0.65],
                "intensity": [0.6, 0.6, 0.5, 0.5, 0.5], "mud": [0, 0, 0, 1, 1], "mud_sigma": [1.5] * 5},
    "saturate": {"factor": [0.3, 0.1, 2, 5, 20], "offset": [0, 0, 0, 0.1, 0.2]},
}


@pytest.mark.parametrize("corruption", sorted(IMAGENET_C))
def test_imagenet_c_levels_equal_the_reference_tables(corruption):
    pipe, defaults = pipeline_from_preset(f"imagenet-c/{corruption}")
    assert pipe.steps == 5 and pipe.mode == "absolute" and defaults["size"] == 224
    plan = pipe.plan("a")
    for name, levels in IMAGENET_C[corruption].items():
        got = [plan[k]["ops"][0]["params"][name] for k in range(5)]
        assert got == pytest.approx(levels, rel=1e-12), name
    # Where the op's own default is a knot table, it passes through the same levels at t = k/5.
    op = get_op(pipe.ops[0].op)
    for k in range(5):
        defaults_at = op.params_at((k + 1) / 5)
        for name, levels in IMAGENET_C[corruption].items():
            if op.param(name).curve == "knots":
                assert defaults_at[name] == pytest.approx(levels[k], rel=1e-9), (name, k)


# -- ImageNet-C: frames against the published formulas ---------------------------------------


def _u8(x: np.ndarray) -> np.ndarray:
    return np.uint8(np.clip(x, 0, 1) * 255)  # the references truncate


def _ref_contrast(x, k):
    c = [0.4, 0.3, 0.2, 0.1, 0.05][k]
    m = x.mean(axis=(0, 1), keepdims=True)
    return _u8((x - m) * c + m)


def _ref_brightness(x, k):
    h = color.rgb2hsv(x)
    h[:, :, 2] = np.clip(h[:, :, 2] + [0.1, 0.2, 0.3, 0.4, 0.5][k], 0, 1)
    return _u8(color.hsv2rgb(h))


def _ref_saturate(x, k):
    a, b = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][k]
    h = color.rgb2hsv(x)
    h[:, :, 1] = np.clip(h[:, :, 1] * a + b, 0, 1)
    return _u8(color.hsv2rgb(h))


def _ref_jpeg(x, k):
    buf = io.BytesIO()
    Image.fromarray(np.uint8(np.round(x * 255))).save(buf, "JPEG", quality=[25, 18, 15, 10, 7][k])
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def _ref_pixelate(x, k):
    c = [0.6, 0.5, 0.4, 0.3, 0.25][k]
    im = Image.fromarray(np.uint8(np.round(x * 255)))
    w, h = im.size
    return np.asarray(im.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.NEAREST))


def _ref_gaussian_blur(x, k):
    s = [1, 2, 3, 4, 6][k]
    return _u8(ndimage.gaussian_filter(x, sigma=(s, s, 0), mode="nearest", truncate=4.0))


def _clipped_zoom(img, z):
    h = img.shape[0]
    ch = int(np.ceil(h / z))
    top = (h - ch) // 2
    out = ndimage.zoom(img[top : top + ch, top : top + ch], (z, z, 1), order=1)
    trim = (out.shape[0] - h) // 2
    return out[trim : trim + h, trim : trim + h]


def _ref_zoom_blur(x, k):
    zs = [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
          np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)][k]
    x = x.astype(np.float32)
    out = np.zeros_like(x)
    for z in zs:
        out += _clipped_zoom(x, z)
    return _u8((x + out) / (len(zs) + 1))


def _ref_defocus(x, k):
    r, a = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][k]
    span, ks = (np.arange(-8, 9), (3, 3)) if r <= 8 else (np.arange(-r, r + 1), (5, 5))
    xx, yy = np.meshgrid(span, span)
    disk = ((xx**2 + yy**2) <= r**2).astype(np.float32)
    disk = cv2.GaussianBlur(disk / disk.sum(), ksize=ks, sigmaX=a)
    return _u8(cv2.filter2D(x.astype(np.float32), -1, disk))


# corruption: (reference, levels compared, margin px ignored, max |diff|, max mean |diff|)
REFERENCE_FRAMES = {
    "contrast": (_ref_contrast, range(5), 0, 1, 0.7),
    "brightness": (_ref_brightness, range(5), 0, 1, 1.0),
    "saturate": (_ref_saturate, range(5), 0, 1, 0.7),
    "jpeg_compression": (_ref_jpeg, range(5), 0, 0, 0.0),
    "zoom_blur": (_ref_zoom_blur, range(5), 0, 1, 0.7),
    # The disk's alias blur is not truncated to 3×3 / 5×5 here.
    "defocus_blur": (_ref_defocus, range(5), 0, 3, 1.5),
    # OpenCV's Gaussian has radius 3σ and reflect-101 borders (skimage: 4σ, edge): compared
    # away from the borders.
    "gaussian_blur": (_ref_gaussian_blur, range(5), 25, 1, 0.7),
    # OpenCV's area resize weighs partial pixels where PIL's BOX averages whole ones: the two
    # agree exactly only when the size divides (levels 2 and 5).
    "pixelate": (_ref_pixelate, (1, 4), 0, 1, 0.7),
}


@pytest.mark.parametrize("corruption", sorted(REFERENCE_FRAMES))
def test_deterministic_imagenet_c_frames_are_close_to_the_reference_formulas(corruption):
    ref, levels, margin, worst, mean = REFERENCE_FRAMES[corruption]
    pipe, _ = pipeline_from_preset(f"imagenet-c/{corruption}")
    for item in list_sources(["samples"], limit=3):
        img, _ = load_item(item, size=80)
        frames, _ = pipe.run(img, key=item.key)
        x = img.astype(np.float64) / 255
        for k in levels:
            ours = np.round(frames[k + 1] * 255).astype(int)
            theirs = ref(x, k).astype(int)
            d = np.abs(ours - theirs)
            if margin:
                d = d[margin:-margin, margin:-margin]
            assert d.max() <= worst and d.mean() <= mean, (corruption, k + 1, d.max(), d.mean())


# -- Real-ESRGAN ---------------------------------------------------------------------------


def test_realesrgan_preset_runs_first_order_then_second_order():
    pipe, _ = pipeline_from_preset("realesrgan")
    assert pipe.mode == "chained" and pipe.steps == 2
    plan = pipe.plan("a")
    probs = [[e["params"]["prob"] for e in st["ops"]] for st in plan]
    assert probs == [[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.8, 1.0, 1.0, 1.0]]
    first, second = plan[0]["ops"], plan[1]["ops"]
    assert first[0]["params"]["sigma_max"] == 3.0 and second[4]["params"]["sigma_max"] == 1.5
    assert (first[1]["params"]["up_prob"], first[1]["params"]["down_prob"]) == (0.2, 0.7)
    assert (second[5]["params"]["up_prob"], second[5]["params"]["down_prob"]) == (0.3, 0.4)
    assert first[2]["params"]["sigma_max"] == 30.0 and second[6]["params"]["sigma_max"] == 25.0
    assert second[7]["params"]["scale"] == 4.0


# -- the command line ----------------------------------------------------------------------


def test_cli_presets_lists_and_shows(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "imagenet-c/pixelate" in out and "cold-diffusion/blur-cifar10" in out
    assert main(["presets", "cold-diffusion/blur-cifar10"]) == 0
    out = capsys.readouterr().out
    assert "sigma=0.35, kernel=11" in out and "arXiv 2208.09392" in out
    assert main(["presets", "imagenet-c/contrast", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [s["ops"][0]["params"]["factor"] for s in info["steps_params"]] == [0.4, 0.3, 0.2, 0.1, 0.05]
    assert main(["presets", "no/such"]) == 2


def test_cli_preview_and_build_take_a_pipeline(tmp_path, capsys):
    png = tmp_path / "p.png"
    assert main(["preview", "--pipeline", "imagenet-c/contrast", "--size", "16", "--out", str(png)]) == 0
    assert Image.open(png).size[0] > 16 * 6
    assert "preset imagenet-c/contrast" in capsys.readouterr().out
    out = tmp_path / "data"
    assert main(["build", "--pipeline", "cold-diffusion/pixelate-sr-cifar10", "--limit", "2", "--workers", "1",
                 "--out", str(out), "--quiet", "--seed", "4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["size"] == 32 and manifest["steps"] == 3 and manifest["seed"] == 4
