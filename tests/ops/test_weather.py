"""Weather ops: snow, frost, fog, spatter (ImageNet-C's weather corruptions)."""

from __future__ import annotations

import numpy as np
import pytest

import degrade
from degrade.ops.weather import (
    SnowField,
    _fog_field,
    fog,
    frost,
    frost_texture,
    plasma_fractal,
    snow,
    snow_layer,
    spatter,
)
from tests.conftest import varied_images

LEVELS = [0.2, 0.4, 0.6, 0.8, 1.0]


# -- fog -----------------------------------------------------------------------------------


def test_plasma_fractal_is_a_normalised_power_of_two_map():
    f = _fog_field(np.random.default_rng(0), (40, 24, 3))
    assert f.size == 64 and len(f.draws) == 6
    assert [d[0].shape for d in f.draws] == [(n, n) for n in (1, 2, 4, 8, 16, 32)]
    p = plasma_fractal(f, 2.0)
    assert p.shape == (64, 64) and p.min() == 0.0 and p.max() == 1.0


def test_lower_decay_makes_rougher_fog_from_the_same_draws():
    f = _fog_field(np.random.default_rng(1), (64, 64, 3))

    def roughness(p):
        return float(np.abs(np.diff(p, axis=0)).mean() + np.abs(np.diff(p, axis=1)).mean())

    smooth, rough = plasma_fractal(f, 2.0), plasma_fractal(f, 1.4)
    assert roughness(rough) > 1.5 * roughness(smooth)
    # Same draws: the coarse layout is shared (strongly correlated maps).
    assert np.corrcoef(smooth.ravel(), rough.ravel())[0, 1] > 0.5


def test_fog_formula():
    img = varied_images(32)[1]
    f = _fog_field(np.random.default_rng(2), img.shape)
    p = plasma_fractal(f, 1.7)[:32, :32, None]
    m = img.max()
    want = np.clip((img + 2.5 * p) * m / (m + 2.5), 0, 1)
    np.testing.assert_allclose(fog(img, strength=2.5, decay=1.7, field=f), want, atol=1e-6)


def test_fog_levels_are_imagenet_c():
    op = degrade.get_op("fog")
    got = [(op.params_at(t)["strength"], op.params_at(t)["decay"]) for t in LEVELS]
    assert got == [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)]


# -- frost ---------------------------------------------------------------------------------


def test_frost_formula_and_grey_images():
    img = varied_images(24)[0]
    tex = frost_texture(np.random.default_rng(0), 24, 24)
    np.testing.assert_allclose(frost(img, keep=0.7, frost=0.7, field=tex),
                               np.clip(0.7 * img + 0.7 * tex, 0, 1), atol=1e-6)
    gray = img.mean(axis=2, keepdims=True)
    lum = tex @ np.array([0.2989, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(frost(gray, keep=0.6, frost=0.75, field=tex)[:, :, 0],
                               np.clip(0.6 * gray[:, :, 0] + 0.75 * lum, 0, 1), atol=1e-6)


def test_frost_texture_looks_like_the_reference_photographs():
    tex = frost_texture(np.random.default_rng(3), 128, 96)
    assert tex.shape == (128, 96, 3) and tex.dtype == np.float32
    mean = tex.mean(axis=(0, 1))
    # Pale blue-white: blue above red, bright on average, with visible structure.
    assert mean[2] > mean[1] > mean[0]
    assert 0.5 < mean.mean() < 0.75 and 0.07 < tex.std() < 0.2
    assert not np.array_equal(tex, frost_texture(np.random.default_rng(4), 128, 96))


def test_frost_levels_are_imagenet_c():
    op = degrade.get_op("frost")
    got = [(op.params_at(t)["keep"], op.params_at(t)["frost"]) for t in LEVELS]
    assert got == [(1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]


# -- snow ----------------------------------------------------------------------------------


def _flat_field(h, w, value=0.0, angle=-90.0, vertical=True):
    return SnowField(np.full((h, w), value, np.float32), angle, vertical)


def test_snow_without_flakes_is_the_brightened_image():
    img = varied_images(16)[2]
    out = snow(img, loc=0.1, scale=0.3, zoom=3, threshold=5.0, radius=10, sigma=4, mix=0.7,
               field=_flat_field(16, 16))
    lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
    want = 0.7 * img + 0.3 * np.maximum(img, lum[:, :, None] * 1.5 + 0.5)
    np.testing.assert_allclose(out, np.clip(want, 0, 1), atol=1e-6)


def test_snow_layer_threshold_streak_and_rounding():
    z = np.zeros((32, 32), np.float32)
    z[10, 16] = 10.0  # one flake
    f = SnowField(z, -90.0, True)
    layer = snow_layer((32, 32, 3), f, loc=0.0, scale=1.0, zoom=1.0, threshold=0.5, radius=4,
                       sigma=8, streak="line")
    col = np.flatnonzero(layer.any(axis=0))
    rows = np.flatnonzero(layer[:, 16])
    assert col.tolist() == [16] and rows.tolist() == list(range(6, 15))  # 9 taps, vertical
    assert np.allclose(layer * 255, np.round(layer * 255))
    f = SnowField(z, 0.0, True)
    layer = snow_layer((32, 32, 3), f, loc=0.0, scale=1.0, zoom=1.0, threshold=0.5, radius=3,
                       sigma=8, streak="motion")
    assert np.flatnonzero(layer.any(axis=1)).tolist() == [10]  # angle 0: a horizontal streak


def test_snow_adds_the_layer_and_its_180_degree_copy():
    z = np.zeros((12, 12), np.float32)
    z[2, 3] = 10.0
    f = SnowField(z, -90.0, True)
    out = snow(np.zeros((12, 12, 1), np.float32), loc=0.0, scale=1.0, zoom=1.0, threshold=0.5,
               radius=0.0, sigma=1.0, mix=1.0, field=f)
    assert out[2, 3, 0] == 1.0 and out[12 - 1 - 2, 12 - 1 - 3, 0] == 1.0
    assert np.count_nonzero(out) == 2


def test_snow_levels_are_imagenet_c_and_t0_has_no_snow():
    op = degrade.get_op("snow")
    names = ("loc", "scale", "zoom", "threshold", "radius", "sigma", "mix")
    got = [tuple(op.params_at(t)[n] for n in names) for t in LEVELS]
    assert got == [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                   (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                   (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)]
    near0 = op.params_at(1e-6)
    assert near0["mix"] == pytest.approx(1.0, abs=1e-4) and near0["threshold"] == pytest.approx(1.5, abs=1e-4)


def test_snow_keeps_its_flakes_across_steps():
    # Growing streaks and dimming over one field: the flakes stay where they were.
    img = varied_images(48)[0]
    op = degrade.get_op("snow")
    knots = {"knots": [[0.0, 0.55], [1.0, 0.55]]}
    kw = dict(loc=knots, zoom={"knots": [[0.0, 2.5], [1.0, 2.5]]}, threshold={"knots": [[0.0, 0.8], [1.0, 0.8]]})
    a = op(img, t=0.5, key="k", **kw)
    b = op(img, t=0.6, key="k", **kw)
    c = op(img, t=0.6, key="other", **kw)
    assert np.abs(a - b).mean() < np.abs(b - c).mean() / 3


# -- spatter -------------------------------------------------------------------------------


def _spatter(img, z, **kw):
    base = dict(loc=0.65, scale=0.3, sigma=1.0, threshold=0.65, intensity=0.5, mud=0.0, mud_sigma=1.5)
    base.update(kw)
    return spatter(img, field=z, **base)


def test_spatter_water_adds_pale_turquoise_where_wet():
    img = np.full((48, 48, 3), 0.3, np.float32)
    z = np.random.default_rng(0).standard_normal((48, 48)).astype(np.float32)
    out = _spatter(img, z, mud=0.0)
    diff = out - img
    assert (diff >= -1e-6).all() and diff.max() > 0.05
    wet = diff[..., 0] > 0
    # Added colour ∝ (175, 238, 238): green and blue get more than red.
    ratio = diff[wet][:, 1] / diff[wet][:, 0]
    np.testing.assert_allclose(ratio, 238 / 175, rtol=1e-3)


def test_spatter_mud_replaces_pixels_with_brown():
    img = np.full((48, 48, 3), 0.9, np.float32)
    z = np.random.default_rng(0).standard_normal((48, 48)).astype(np.float32)
    out = _spatter(img, z, mud=1.0)
    changed = np.abs(out - img).max(axis=2) > 1e-6
    assert 0 < changed.mean() < 0.9
    # Each changed pixel lies between the image and mud brown with weight ≥ .8.
    brown = np.array([63, 42, 20], np.float32) / 255
    w = (img[changed] - out[changed]) / (img[changed] - brown)
    assert (w[:, 0] >= 0.8 - 1e-5).all() and np.allclose(w, w[:, :1], atol=1e-5)


def test_spatter_mud_weight_mixes_water_and_mud():
    img = varied_images(32)[3]
    z = np.random.default_rng(5).standard_normal((32, 32)).astype(np.float32)
    water, mud = _spatter(img, z, mud=0.0), _spatter(img, z, mud=1.0)
    np.testing.assert_allclose(_spatter(img, z, mud=0.25), 0.75 * water + 0.25 * mud, atol=1e-6)


def test_spatter_levels_are_imagenet_c():
    op = degrade.get_op("spatter")
    names = ("loc", "scale", "sigma", "threshold", "intensity", "mud")
    got = [tuple(op.params_at(t)[n] for n in names) for t in LEVELS]
    assert got == [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                   (0.65, 0.3, 1, 0.65, 0.5, 1), (0.67, 0.4, 1, 0.65, 0.5, 1)]
    assert op.params_at(0.5)["mud_sigma"] == 1.5


@pytest.mark.parametrize("name", ["snow", "frost", "fog", "spatter"])
def test_weather_ops_use_one_field_per_sample(name):
    op = degrade.get_op(name)
    f1 = op.make_field((20, 30, 3), seed=0, key="a")
    f2 = op.make_field((20, 30, 3), seed=0, key="a")
    img = varied_images(20)[0][:, :20]
    img = np.ascontiguousarray(np.concatenate([img, img[:, :10]], axis=1))
    assert op.apply(img, op.params_at(0.7), f1).tobytes() == op.apply(img, op.params_at(0.7), f2).tobytes()
