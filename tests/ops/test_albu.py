"""albumentations adapter: ``albu``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import degrade
from degrade.errors import DegradeError
from degrade.image import quantize, to_uint8
from tests.conftest import varied_images

A = pytest.importorskip("albumentations")

from degrade.ops import albu as albu_mod  # noqa: E402

OP = degrade.get_op("albu")
GREY = np.full((64, 64, 3), 0.5, np.float32)


def _pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf), dtype=np.float32) / 255


@pytest.mark.parametrize("quality", [90, 50, 20])
def test_image_compression_is_a_true_rgb_jpeg(quality):
    """Ours equals Pillow's RGB JPEG (libjpeg, 4:2:0) at the same quality."""
    for img in varied_images(48)[:4]:
        img = quantize(img)
        ours = OP(img, t=1.0, transform="ImageCompression", arg="quality_range", value=quality)
        assert np.abs(ours - _pil_jpeg(img, quality)).max() <= 1 / 255 + 1e-6


def test_albumentations_2_0_8_compression_defect_is_detected_not_inherited():
    img = quantize(varied_images(48)[0])
    raw = A.ImageCompression(quality_range=(50, 50), p=1.0)(image=to_uint8(img))["image"]
    raw_err = np.abs(raw.astype(np.float32) / 255 - _pil_jpeg(img, 50)).mean() * 255
    # the probe says "swaps" exactly when albumentations itself is off from a true RGB JPEG
    assert albu_mod._treats_rgb_as_bgr("ImageCompression") == (raw_err > 1.0)
    if A.__version__ == "2.0.8":
        assert raw_err > 1.0, "2.0.8 is known to encode RGB as BGR"
    assert not albu_mod._treats_rgb_as_bgr("GaussNoise")


def test_built_in_severity_maps_value_onto_the_table_span():
    # ImageCompression: quality 100 -> 10; value 0.5 -> 55 (rounded half up)
    img = quantize(varied_images(40)[1])
    ours = OP(img, t=0.5, transform="ImageCompression")
    assert np.abs(ours - _pil_jpeg(img, 55)).max() <= 1 / 255 + 1e-6
    assert albu_mod._argument("ImageCompression", "", 0.5) == ("quality_range", (55, 55))
    assert albu_mod._argument("GaussNoise", "", 0.25) == ("std_range", (0.05, 0.05))
    assert albu_mod._argument("Sharpen", "alpha", 0.3) == ("alpha", (0.3, 0.3))


def test_gauss_noise_std_follows_value_and_reuses_the_same_texture():
    half = OP(GREY, t=0.5, key="n", transform="GaussNoise")  # std 0.1
    full = OP(GREY, t=1.0, key="n", transform="GaussNoise")  # std 0.2
    d_half, d_full = (half - 0.5).ravel(), (full - 0.5).ravel()
    assert abs(d_half.std() - 0.1) < 0.01 and abs(d_full.std() - 0.2) < 0.015
    # common random numbers: the texture at t=1 is the one at t=0.5, twice as strong
    inside = np.abs(d_full) < 0.49  # not clipped
    assert np.corrcoef(d_half[inside], d_full[inside])[0, 1] > 0.99
    raw = OP(GREY, t=1.0, key="n", transform="GaussNoise", arg="std_range", value=0.05)
    assert abs((raw - 0.5).std() - 0.05) < 0.005


def test_keyed_by_sample_and_replayable():
    img = varied_images(48)[2]
    a = OP(img, t=0.8, key="a", transform="Spatter")
    assert a.tobytes() == OP(img, t=0.8, key="a", transform="Spatter").tobytes()
    assert a.tobytes() != OP(img, t=0.8, key="b", transform="Spatter").tobytes()
    assert a.tobytes() != OP(img, t=0.8, key="a", seed=1, transform="Spatter").tobytes()
    p = degrade.Pipeline.parse("albu:transform=Spatter:value=0.2..0.6", steps=4)
    frames, recipe = p.run(img, key="snow")
    assert [s["ops"][0]["params"]["value"] for s in recipe["steps"]] == pytest.approx(
        [0.2, 0.2 + 0.4 / 3, 0.2 + 0.8 / 3, 0.6]
    )
    assert recipe["steps"][0]["ops"][0]["params"]["transform"] == "Spatter"
    again = degrade.replay(recipe, frames[0])
    assert all(np.array_equal(x, y) for x, y in zip(frames, again))


def test_grey_images_go_through_transforms_that_need_colour():
    grey = varied_images(40, channels=1)[0]
    out = OP(grey, t=1.0, key="g", transform="Spatter")
    assert out.shape == grey.shape
    rgb = np.ascontiguousarray(np.repeat(grey, 3, axis=2))
    ref = OP(rgb, t=1.0, key="g", transform="Spatter").mean(axis=2, keepdims=True)
    assert np.allclose(out, ref, atol=1e-6)


def test_an_output_of_another_size_is_resized_back():
    img = varied_images(40)[0]
    out = OP(img, t=1.0, transform="RandomScale", arg="scale_limit", value=0.5)
    assert out.shape == img.shape
    assert not np.array_equal(out, img)


def test_clear_errors():
    img = varied_images(16)[0]
    with pytest.raises(DegradeError, match="did you mean RandomFog"):
        OP(img, t=1.0, transform="RandomFogg")
    with pytest.raises(DegradeError, match="no built-in severity argument"):
        OP(img, t=1.0, transform="Rotate")
    with pytest.raises(DegradeError, match="no argument 'quality'"):
        OP(img, t=1.0, transform="ImageCompression", arg="quality")
    with pytest.raises(DegradeError, match=r"failed: .*quality_range"):
        OP(img, t=1.0, transform="ImageCompression", arg="quality_range", value=500)
    with pytest.raises(DegradeError, match="not an albumentations transform"):
        OP(img, t=1.0, transform="Compose_")


def test_every_built_in_entry_runs_and_damages_at_full_severity():
    img = varied_images(32)[0]
    for name in albu_mod.SEVERITY:
        out = OP(img, t=1.0, key="k", transform=name)
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.abs(out - img).mean() > 0.01, name


def _run_py(code: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    e.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=e, timeout=120)


def test_core_works_without_albumentations_and_the_import_stays_offline():
    r = _run_py(
        """
        import os
        import sys
        import urllib.request
        import numpy as np
        import degrade
        assert "albu" in degrade.list_ops()
        img = np.full((8, 8, 3), 0.5, np.float32)
        degrade.get_op("blur")(img, t=1.0)
        assert "albumentations" not in sys.modules, "imported by the core"
        sys.modules["albumentations"] = None  # as if not installed
        try:
            degrade.get_op("albu")(img, t=1.0)
        except degrade.DegradeError as exc:
            print(exc)
        del sys.modules["albumentations"]
        calls = []
        urllib.request.OpenerDirector.open = lambda self, *a, **k: calls.append(a) or 1 / 0
        degrade.get_op("albu")(img, t=1.0)
        print("network calls:", len(calls), os.environ.get("NO_ALBUMENTATIONS_UPDATE"))
        """
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert "pip install 'degrade[albu]'" in lines[0]
    assert lines[1] == "network calls: 0 1"


@pytest.mark.parametrize("transform", sorted(albu_mod.SEVERITY))
def test_every_built_in_transform_runs_on_tiny_images(transform):
    # PlasmaShadow fails on 1×1 and Downscale below 4 px: such images are edge-replicated to
    # 8 px, transformed and cropped back (found by the contract's property test).
    for h, w in ((1, 1), (1, 5), (3, 2), (7, 7)):
        for c in (1, 3):
            img = np.random.default_rng(h * 10 + w).random((h, w, c), dtype=np.float32)
            out = albu_mod.albu(img, transform=transform, value=1.0, field=3)
            assert out.shape == img.shape and out.dtype == np.float32
            assert np.array_equal(out, albu_mod.albu(img, transform=transform, value=1.0, field=3))


def test_tiny_image_fallback_is_the_transform_of_the_padded_image():
    img = np.random.default_rng(0).random((1, 1, 3), dtype=np.float32)
    with pytest.raises(DegradeError, match="PlasmaShadow"):
        albu_mod._apply(albu_mod._transform_class("PlasmaShadow"), "PlasmaShadow", "shadow_intensity_range",
                        (0.8, 0.8), img, 3)
    padded = np.repeat(np.repeat(img, 8, axis=0), 8, axis=1)
    whole = albu_mod.albu(padded, transform="PlasmaShadow", value=1.0, field=3)
    assert np.array_equal(albu_mod.albu(img, transform="PlasmaShadow", value=1.0, field=3), whole[:1, :1])
