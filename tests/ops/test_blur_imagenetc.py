"""zoom_blur and glass_blur (ImageNet-C's), against the published definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import degrade
from degrade.ops.blur import (
    GLASS_MAX_ITERATIONS,
    _glass_field,
    clipped_zoom,
    gaussian_truncate4,
    glass_blur,
    zoom_blur,
    zoom_factors,
)
from tests.conftest import varied_images

LEVELS = [0.2, 0.4, 0.6, 0.8, 1.0]


def _ref_clipped_zoom(img: np.ndarray, z: float) -> np.ndarray:
    # hendrycks/robustness: crop the centre ceil(h/z), scipy zoom (order 1), trim the centre.
    h = img.shape[0]
    ch = int(np.ceil(h / z))
    top = (h - ch) // 2
    out = ndimage.zoom(img[top : top + ch, top : top + ch], (z, z, 1), order=1)
    trim = (out.shape[0] - h) // 2
    return out[trim : trim + h, trim : trim + h]


def test_zoom_factors_are_numpy_arange_as_the_reference():
    assert len(zoom_factors(1.11, 0.01)) == 12  # float rounding includes 1.11
    assert zoom_factors(1.31, 0.03).round(2).tolist() == [1.0, 1.03, 1.06, 1.09, 1.12, 1.15, 1.18, 1.21, 1.24, 1.27, 1.3]
    assert len(zoom_factors(1.0, 0.01)) == 0


@pytest.mark.parametrize("z", [1.0, 1.07, 1.16, 1.3])
def test_clipped_zoom_matches_the_reference_grid(z):
    img = varied_images(40)[0]
    ours = clipped_zoom(img, z)
    ref = _ref_clipped_zoom(img, z)
    assert ours.shape == img.shape
    assert np.abs(ours - ref).max() < 0.02 and np.abs(ours - ref).mean() < 0.002


def test_zoom_blur_is_the_mean_of_the_image_and_its_zooms():
    img = varied_images(32)[2]
    zs = zoom_factors(1.21, 0.02)
    want = (img + sum(clipped_zoom(img, float(z)) for z in zs)) / (len(zs) + 1)
    np.testing.assert_allclose(zoom_blur(img, zoom=1.21, step=0.02), want, atol=1e-6)
    assert zoom_blur(img, zoom=1.0, step=0.01).tobytes() == img.tobytes()


def test_zoom_blur_levels_are_imagenet_c():
    op = degrade.get_op("zoom_blur")
    got = [(op.params_at(t)["zoom"], op.params_at(t)["step"]) for t in LEVELS]
    assert got == [(1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)]


def test_zoom_blur_keeps_the_centre_sharpest():
    img = varied_images(48)[6]  # a checkerboard
    out = zoom_blur(img, zoom=1.31, step=0.03)
    err = np.abs(out - img).mean(axis=2)
    assert err[20:28, 20:28].mean() < err[:8, :8].mean()


def test_gaussian_truncate4_is_scikit_images_gaussian():
    img = varied_images(30)[0]
    for s in (0.7, 1.5):
        ref = ndimage.gaussian_filter(img, sigma=(s, s, 0), mode="nearest", truncate=4.0)
        np.testing.assert_allclose(gaussian_truncate4(img, s), ref, atol=1e-5)


def test_glass_blur_without_shuffling_is_blur_truncate_blur():
    img = varied_images(24)[1]
    fld = _glass_field(np.random.default_rng(0), img.shape)
    once = np.floor(gaussian_truncate4(img, 0.9) * 255) / 255
    want = gaussian_truncate4(once.astype(np.float32), 0.9)
    np.testing.assert_allclose(glass_blur(img, sigma=0.9, max_delta=0, iterations=2, field=fld), want, atol=1e-6)


def test_glass_blur_moves_pixels_by_offsets_in_minus_d_to_d_minus_1():
    # Without the blurs the op is a gather: each pixel comes from within [-d, d-1] (clamped).
    h = w = 16
    # Pixel k holds (k + ½)/255: it survives the 8-bit truncation as k/255, naming its origin.
    img = ((np.arange(h * w, dtype=np.float32) + 0.5) / 255).reshape(h, w, 1).astype(np.float32)
    fld = _glass_field(np.random.default_rng(1), img.shape)
    out = glass_blur(img, sigma=0.0, max_delta=2, iterations=1, field=fld)
    src = np.round(out[:, :, 0] * 255).astype(int)
    sy, sx = src // w, src % w
    dy = sy - np.arange(h)[:, None]
    dx = sx - np.arange(w)[None, :]
    inner = (slice(2, -2), slice(2, -2))
    assert dy[inner].min() == -2 and dy[inner].max() == 1
    assert dx[inner].min() == -2 and dx[inner].max() == 1
    assert fld.shape == (GLASS_MAX_ITERATIONS, 2, h, w)


def test_glass_blur_levels_are_imagenet_c():
    op = degrade.get_op("glass_blur")
    got = [tuple(op.params_at(t)[n] for n in ("sigma", "max_delta", "iterations")) for t in LEVELS]
    assert got == [(0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]
    assert not op.monotone
