"""Colour family: exact values on tiny images and the reference formulas."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from skimage import color as skcolor

import degrade
from degrade.ops.color import (
    cast_gains,
    color_cast,
    contrast,
    desaturate,
    exposure,
    hue_shift,
    linear_to_srgb,
    saturation,
    srgb_to_linear,
)
from tests.conftest import varied_images

RNG = np.random.default_rng(7)
RAND3 = RNG.random((16, 16, 3), dtype=np.float32)


def _fields(name: str, n: int = 24) -> list:
    op = degrade.get_op(name)
    return [op.make_field((8, 8, 3), seed=0, key=f"k{i}") for i in range(n)]


# -- sRGB transfer ------------------------------------------------------------------------


def test_srgb_transfer_known_values_and_round_trip():
    x = np.array([0.0, 0.04045, 0.5, 1.0], np.float32)
    lin = srgb_to_linear(x)
    np.testing.assert_allclose(lin, [0.0, 0.04045 / 12.92, ((0.5 + 0.055) / 1.055) ** 2.4, 1.0], rtol=1e-5)
    grid = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(grid)), grid, atol=2e-6)


# -- exposure -----------------------------------------------------------------------------


def test_exposure_over_one_stop_doubles_and_clips_exactly_the_upper_half():
    img = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, 101, 1)
    out = exposure(img, stops=1.0, direction="over", linear=False)
    clipped = int((out == 1.0).sum())
    assert clipped == int((img >= 0.5).sum()) == 51
    low = img < 0.5
    np.testing.assert_allclose(out[low], 2 * img[low], rtol=1e-6)


def test_exposure_under_halves_and_three_stops_over_clips_above_one_eighth():
    img = np.linspace(0, 1, 81, dtype=np.float32).reshape(9, 9, 1)
    np.testing.assert_allclose(exposure(img, stops=1.0, direction="under", linear=False), img / 2, rtol=1e-6)
    over3 = exposure(img, stops=3.0, direction="over", linear=False)
    assert int((over3 == 1.0).sum()) == int((img >= 0.125).sum())


def test_exposure_linear_light_value():
    img = np.full((1, 1, 1), 0.5, np.float32)
    lin = ((0.5 + 0.055) / 1.055) ** 2.4 * 2
    expect = 1.055 * lin ** (1 / 2.4) - 0.055
    assert float(exposure(img, stops=1.0, direction="over")[0, 0, 0]) == pytest.approx(expect, abs=1e-5)
    # in linear light every value whose linear value is at least 1/8 clips at +3 stops
    grid = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16, 1)
    out = exposure(grid, stops=3.0, direction="over")
    assert int((out >= 1.0 - 1e-6).sum()) == int((srgb_to_linear(grid) >= 0.125 - 1e-7).sum())


def test_exposure_random_direction_follows_the_field_and_both_occur():
    assert np.array_equal(
        exposure(RAND3, stops=2.0, field=-1.0), exposure(RAND3, stops=2.0, direction="under")
    )
    assert np.array_equal(exposure(RAND3, stops=2.0, field=1.0), exposure(RAND3, stops=2.0, direction="over"))
    signs = set(_fields("exposure"))
    assert signs == {1.0, -1.0}


def test_exposure_error_grows_per_pixel_with_stops():
    for direction in ("over", "under"):
        errs = [np.abs(exposure(RAND3, stops=s, direction=direction) - RAND3) for s in np.linspace(0, 4, 9)]
        assert all((b >= a - 1e-6).all() for a, b in itertools.pairwise(errs))


# -- saturation ---------------------------------------------------------------------------


def _imagenet_c_saturate(x: np.ndarray, mul: float, add: float) -> np.ndarray:
    # The reference formula (hendrycks/robustness), in float64 with scikit-image.
    hsv = skcolor.rgb2hsv(x.astype(np.float64))
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * mul + add, 0, 1)
    return np.clip(skcolor.hsv2rgb(hsv), 0, 1)


def test_saturation_at_t1_is_imagenet_c_level_4():
    op = degrade.get_op("saturate")
    assert op.name == "saturation"
    assert op.params_at(1.0) == {"factor": pytest.approx(5.0), "offset": pytest.approx(0.1)}
    # all eight images, grey ones included (their hue is 0 in both, so they turn red)
    for img in varied_images(32):
        np.testing.assert_allclose(op(img, t=1.0), _imagenet_c_saturate(img, 5.0, 0.1), atol=1e-5)


def test_saturation_exact_pixel_and_preserves_hue_and_value():
    px = np.array([[[0.8, 0.6, 0.6], [0.2, 0.5, 0.4]]], np.float32)
    out = saturation(px, factor=2.0)
    np.testing.assert_allclose(out[0, 0], [0.8, 0.4, 0.4], atol=1e-6)
    h0, h1 = cv2.cvtColor(px, cv2.COLOR_RGB2HSV), cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    np.testing.assert_allclose(h1[..., 0], h0[..., 0], atol=1e-3)
    np.testing.assert_allclose(h1[..., 2], h0[..., 2], atol=1e-6)
    np.testing.assert_allclose(h1[..., 1], np.minimum(2 * h0[..., 1], 1), atol=1e-6)


def test_saturation_identity_for_gray_channel_and_unit_factor():
    g = RAND3[:, :, :1].copy()
    assert np.array_equal(saturation(g, factor=5.0, offset=0.2), g)
    assert np.array_equal(saturation(RAND3, factor=1.0, offset=0.0), RAND3)


# -- desaturate ---------------------------------------------------------------------------


def test_desaturate_full_gives_equal_channels_equal_to_the_mean():
    out = degrade.get_op("desaturate")(RAND3, t=1.0)
    mean = RAND3.mean(axis=2)
    for c in range(3):
        np.testing.assert_allclose(out[:, :, c], mean, atol=1e-6)


def test_desaturate_is_linear_mix_with_cold_diffusion_schedule():
    op = degrade.get_op("desaturate")
    # Cold Diffusion: the kept colour drops by 1/T per step, i.e. keep = 1 - t
    assert [op.params_at(k / 20)["keep"] for k in (0, 5, 10, 20)] == pytest.approx([1, 0.75, 0.5, 0])
    out = desaturate(RAND3, keep=0.25)
    expect = 0.25 * RAND3 + 0.75 * RAND3.mean(axis=2, keepdims=True)
    np.testing.assert_allclose(out, expect, atol=1e-6)
    # the same thing as a 1×1 colour-mixing matrix f·I + (1-f)/3·11ᵀ
    m = 0.25 * np.eye(3) + 0.75 / 3 * np.ones((3, 3))
    np.testing.assert_allclose(out, RAND3 @ m.T, atol=1e-6)
    g = RAND3[:, :, :1].copy()
    assert np.array_equal(desaturate(g, keep=0.0), g)


# -- hue_shift ----------------------------------------------------------------------------


def test_hue_shift_rotates_primaries():
    red = np.array([[[1.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(hue_shift(red, degrees=120, field=1.0)[0, 0], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(hue_shift(red, degrees=120, field=-1.0)[0, 0], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(hue_shift(red, degrees=180, field=1.0)[0, 0], [0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(hue_shift(red, degrees=60, field=1.0)[0, 0], [1, 1, 0], atol=1e-6)


def test_hue_shift_keeps_saturation_value_and_uses_both_directions():
    out = hue_shift(RAND3, degrees=77.0, field=-1.0)
    a, b = cv2.cvtColor(RAND3, cv2.COLOR_RGB2HSV), cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    np.testing.assert_allclose(b[..., 1:], a[..., 1:], atol=1e-5)
    dh = np.mod(a[..., 0] - b[..., 0], 360)
    sat = a[..., 1] > 0.05
    np.testing.assert_allclose(dh[sat], 77.0, atol=1e-2)
    assert set(_fields("hue_shift")) == {1.0, -1.0}
    assert degrade.get_op("hue_shift").params_at(1.0)["degrees"] == 120.0


def test_hue_shift_pixel_distance_is_monotone_up_to_120_degrees():
    errs = [np.linalg.norm(hue_shift(RAND3, degrees=d, field=1.0) - RAND3, axis=2) for d in range(0, 121, 5)]
    assert all((b >= a - 1e-5).all() for a, b in itertools.pairwise(errs))


# -- color_cast ---------------------------------------------------------------------------


def test_color_cast_fields_are_zero_mean_unit_directions_and_gains_multiply_to_one():
    fields = _fields("color_cast")
    for f in fields:
        assert f.shape == (3,)
        assert abs(f.sum()) < 1e-12 and abs(np.linalg.norm(f) - 1) < 1e-12
        for s in (0.1, 0.5, 2.0):
            assert np.prod(cast_gains(s, f)) == pytest.approx(1.0, abs=1e-12)
    assert len({tuple(np.round(f, 9)) for f in fields}) == len(fields)


def test_color_cast_exact_gains_and_linear_light():
    d = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
    img = np.full((2, 2, 3), 0.25, np.float32)
    out = color_cast(img, strength=np.log(2) * np.sqrt(2), linear=False, field=d)
    np.testing.assert_allclose(out[0, 0], [0.5, 0.125, 0.25], atol=1e-6)
    # linear light: decoded values are multiplied by the gains
    small = RAND3 * 0.5
    out = color_cast(small, strength=0.3, field=d)
    g = cast_gains(0.3, d)
    np.testing.assert_allclose(srgb_to_linear(out), np.clip(srgb_to_linear(small) * g, 0, 1), atol=2e-6)
    gray = RAND3[:, :, :1].copy()
    assert np.array_equal(color_cast(gray, strength=1.0, field=d), gray)


# -- contrast -----------------------------------------------------------------------------


def test_contrast_two_pixel_image():
    img = np.array([[[0.2], [0.6]]], np.float32)
    np.testing.assert_allclose(contrast(img, factor=0.5)[0, :, 0], [0.3, 0.5], atol=1e-7)
    np.testing.assert_allclose(contrast(img, factor=0.0)[0, :, 0], [0.4, 0.4], atol=1e-7)


def test_contrast_uses_each_channels_own_mean():
    img = np.array([[[0.0, 0.2, 1.0], [1.0, 0.4, 1.0]]], np.float32)
    out = contrast(img, factor=0.0)
    np.testing.assert_allclose(out[0, 0], [0.5, 0.3, 1.0], atol=1e-7)
    np.testing.assert_allclose(out[0, 1], [0.5, 0.3, 1.0], atol=1e-7)


def test_contrast_reproduces_imagenet_c_levels():
    op = degrade.get_op("contrast")
    levels = [0.4, 0.3, 0.2, 0.1, 0.05]
    assert [op.params_at(k / 5)["factor"] for k in range(1, 6)] == pytest.approx(levels)
    img = varied_images(24)[1]
    for k, c in enumerate(levels, start=1):
        m = img.mean(axis=(0, 1), keepdims=True)
        ref = np.clip((img - m) * c + m, 0, 1)
        np.testing.assert_allclose(op(img, t=k / 5), ref, atol=3e-6)
