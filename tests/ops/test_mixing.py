"""Mixing family: Cold Diffusion's Gaussian fade."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

import degrade
from degrade.ops.mixing import fade, fade_mask

WHITE = np.ones((21, 31, 3), np.float32)


def test_fade_centre_pixel_is_darkest_and_takes_the_fill():
    out = fade(WHITE, sigma=0.2, fill=0.0, center="middle")
    cy, cx = 10, 15
    assert float(out[cy, cx].max()) == 0.0
    assert np.unravel_index(np.argmin(out[:, :, 0]), out.shape[:2]) == (cy, cx)
    # darkening only grows towards the centre along a row and a column
    row, col = out[cy, :, 0], out[:, cx, 0]
    assert (np.diff(row[: cx + 1]) <= 0).all() and (np.diff(row[cx:]) >= 0).all()
    assert (np.diff(col[: cy + 1]) <= 0).all() and (np.diff(col[cy:]) >= 0).all()
    grey = fade(WHITE, sigma=0.2, center="middle")  # default fill: the reference's 0 in [-1, 1]
    assert float(grey[cy, cx, 0]) == 0.5


def test_fade_darkening_is_nested_as_sigma_grows():
    outs = [fade(WHITE, sigma=s, fill=0.0, center="middle") for s in (0.02, 0.05, 0.1, 0.3, 0.75, 2.0)]
    for a, b in itertools.pairwise(outs):
        assert (b <= a).all() and (b < a).any()


def test_fade_mask_is_one_minus_normalised_gaussian_as_in_cold_diffusion():
    # Reference: mask = 1 - G_σ / max(G_σ), G a sampled 2-D Gaussian kernel centred on the
    # centre pixel; built here from OpenCV's 1-D kernel, cropped around the centre.
    h, w, sigma = 21, 31, 0.2
    s_px = sigma * max(h, w)
    cy, cx = 4, 25
    n = 2 * max(h, w) + 1
    g1 = cv2.getGaussianKernel(n, s_px, cv2.CV_64F)[:, 0]
    g = np.outer(g1, g1)
    g = g / g.max()
    mid = n // 2
    ref = 1 - g[mid - cy : mid - cy + h, mid - cx : mid - cx + w]
    np.testing.assert_allclose(fade_mask((h, w), sigma, (cy, cx)), ref, atol=1e-6)


def test_fade_chained_steps_multiply_masks():
    # Chained mode reproduces the reference's product of masks: fading twice equals fading
    # once with the product of the two masks (around the fill value).
    x = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    once = fade(fade(x, sigma=0.1, center="middle"), sigma=0.15, center="middle")
    m = (fade_mask((16, 16), 0.1) * fade_mask((16, 16), 0.15))[:, :, None]
    np.testing.assert_allclose(once, 0.5 + m * (x - 0.5), atol=1e-6)


def test_fade_random_centre_comes_from_the_field():
    op = degrade.get_op("fade")
    centres = {op.make_field((21, 31, 3), seed=0, key=f"k{i}") for i in range(30)}
    assert len(centres) > 20
    assert all(0 <= cy < 21 and 0 <= cx < 31 for cy, cx in centres)
    cy, cx = op.make_field(WHITE.shape, seed=0, key="abc")
    out = op(WHITE, t=0.5, seed=0, key="abc", fill=0.0)
    assert np.unravel_index(np.argmin(out[:, :, 0]), out.shape[:2]) == (cy, cx)
    assert float(out[cy, cx, 0]) == 0.0
    # "middle" ignores the field
    mid = op(WHITE, t=0.5, seed=0, key="abc", fill=0.0, center="middle")
    assert float(mid[10, 15, 0]) == 0.0


def test_fade_full_severity_fades_most_of_the_image():
    op = degrade.get_op("fade")
    assert op.params_at(1.0)["sigma"] == pytest.approx(0.75)
    out = op(np.ones((64, 64, 1), np.float32), t=1.0, fill=0.0, center="middle")
    assert float(out.mean()) < 0.2  # most of the image is black
    assert float(out.max()) < 0.5  # even the corners have lost more than half
    assert np.array_equal(fade(WHITE, sigma=0.0), WHITE)
