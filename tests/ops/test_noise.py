"""Behaviour of the noise family: noise strength, common random numbers, nested impulse
sets, Poisson statistics, Perlin texture properties and non-uniform strength maps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from degrade.ops.noise import (
    NonuniformField,
    PerlinLattice,
    gaussian_noise,
    gradient_map,
    impulse_noise,
    nonuniform_noise,
    perlin_map,
    perlin_noise,
    perlin_texture,
    poisson_quantile,
    shot_noise,
    speckle_noise,
)
from degrade.registry import get_op

NOISE_OPS = ["noise", "shot_noise", "impulse_noise", "speckle_noise", "perlin", "nonuniform_noise"]


def grey(h: int = 128, w: int = 128, c: int = 3, v: float = 0.5) -> np.ndarray:
    return np.full((h, w, c), v, np.float32)


def field_for(name: str, shape: tuple[int, ...], key: str = "k", seed: int = 0):
    return get_op(name).make_field(shape, seed=seed, key=key)


def lattice(seed: int = 0) -> PerlinLattice:
    return PerlinLattice.draw(np.random.default_rng(seed))


# -- registration and ImageNet-C correspondences ------------------------------------------


def test_names_aliases_and_level5_defaults():
    assert get_op("gaussian_noise").name == "noise"
    assert get_op("noise").params_at(1.0)["sigma"] == pytest.approx(0.38)
    assert get_op("shot_noise").params_at(1.0)["photons"] == pytest.approx(3.0)
    assert get_op("impulse_noise").params_at(1.0)["amount"] == pytest.approx(0.27)
    assert get_op("speckle_noise").params_at(1.0)["sigma"] == pytest.approx(0.6)
    assert get_op("perlin").params_at(1.0)["amplitude"] == pytest.approx(0.5)
    assert get_op("nonuniform_noise").params_at(1.0)["sigma"] == pytest.approx(0.4)
    for name in NOISE_OPS:
        op = get_op(name)
        assert op.family == "noise" and op.version == 1 and op.stochastic and op.monotone


def test_shot_photons_fall_geometrically():
    p = get_op("shot_noise").param("photons")
    vals = [p.value(t) for t in (0.25, 0.5, 0.75, 1.0)]
    ratios = [b / a for a, b in itertools.pairwise(vals)]
    assert all(b < a for a, b in itertools.pairwise(vals))
    assert ratios == pytest.approx([ratios[0]] * 3, rel=1e-9)


@pytest.mark.parametrize("name", NOISE_OPS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 3), (7, 300, 3), (300, 7, 1)])
def test_any_size_deterministic_and_pure(name, shape):
    op = get_op(name)
    img = np.random.default_rng(1).random(shape, dtype=np.float32)
    before = img.copy()
    a = op(img, t=0.7, seed=4, key="s")
    b = op(img, t=0.7, seed=4, key="s")
    assert (img == before).all()
    assert a.shape == shape and a.dtype == np.float32
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert (op(img, t=0.0, seed=4, key="s") == img).all()
    if shape == (7, 300, 3):  # another key, another draw
        assert not np.array_equal(a, op(img, t=0.7, seed=4, key="other"))


@pytest.mark.parametrize("name", NOISE_OPS)
def test_kernel_at_at0_is_near_identity(name):
    op = get_op(name)
    img = np.random.default_rng(2).uniform(0.1, 0.9, (32, 32, 3)).astype(np.float32)
    params = {p.name: p.at0 for p in op.params}
    out = op.apply(img, params, field_for(name, img.shape))
    # shot noise cannot reach c = ∞ on a geometric curve; at c = 10⁴ the std is < 0.01
    assert np.abs(out - img).mean() < (0.01 if name == "shot_noise" else 1e-7)


# -- Gaussian -------------------------------------------------------------------------------


def test_gaussian_noise_std_is_sigma():
    img = grey(200, 200, 3)
    out = get_op("noise")(img, t=1.0, seed=0, key="a", sigma=0.05)  # 0.05 at t=1
    d = (out - img).astype(np.float64)
    assert abs(d.mean()) < 0.001
    assert d.std() == pytest.approx(0.05, rel=0.02)
    # independent per channel
    assert abs(np.corrcoef(d[..., 0].ravel(), d[..., 1].ravel())[0, 1]) < 0.02


def test_gaussian_same_field_at_every_step():
    op = get_op("noise")
    img = np.random.default_rng(3).uniform(0.2, 0.8, (64, 64, 3)).astype(np.float32)
    x1 = op(img, t=0.2, seed=7, key="a")
    x2 = op(img, t=0.5, seed=7, key="a")
    inside = (x1 > 0) & (x1 < 1) & (x2 > 0) & (x2 < 1)
    s1, s2 = op.params_at(0.2)["sigma"], op.params_at(0.5)["sigma"]
    assert inside.mean() > 0.9
    np.testing.assert_allclose((x2 - img)[inside], (s2 / s1) * (x1 - img)[inside], atol=2e-6)


def test_gaussian_exact_formula_and_gray():
    z = np.array([[[1.0, -1.0, 2.0]]], np.float32)
    img = grey(1, 1, 3)
    np.testing.assert_allclose(gaussian_noise(img, sigma=0.1, field=z).ravel(), [0.6, 0.4, 0.7])
    np.testing.assert_allclose(gaussian_noise(img, sigma=0.1, gray=True, field=z).ravel(), [0.6] * 3)
    big = get_op("noise")(grey(100, 100, 3), t=1.0, seed=0, key="g", gray=True, sigma=0.05)
    assert (big[..., 0] == big[..., 1]).all() and (big[..., 1] == big[..., 2]).all()
    assert (big - 0.5).std() == pytest.approx(0.05, rel=0.03)


def test_gaussian_clips_to_range():
    z = np.array([[[5.0], [-5.0]]], np.float32)
    out = gaussian_noise(grey(1, 2, 1), sigma=0.38, field=z)
    assert out.ravel().tolist() == [1.0, 0.0]


# -- speckle --------------------------------------------------------------------------------


def test_speckle_formula_and_black_stays_black():
    img = np.array([[[0.0], [0.25], [0.5]]], np.float32)
    z = np.array([[[3.0], [2.0], [-1.0]]], np.float32)
    np.testing.assert_allclose(speckle_noise(img, sigma=0.2, field=z).ravel(), [0.0, 0.35, 0.4])
    out = get_op("speckle_noise")(grey(200, 200, 1, 0.4), t=1.0, seed=0, key="a", sigma=0.1)
    assert (out - 0.4).std() == pytest.approx(0.4 * 0.1, rel=0.03)
    assert (get_op("speckle_noise")(grey(8, 8, 3, 0.0), t=1.0, key="a") == 0).all()


# -- shot -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "c"), [(0.2, 5.0), (0.3, 50.0), (0.5, 1000.0)])
def test_shot_noise_mean_preserved_variance_x_over_c(x, c):
    img = grey(256, 256, 1, x)
    out = get_op("shot_noise")(img, t=1.0, seed=0, key="a", photons=c).astype(np.float64)
    n, var = out.size, x / c
    assert abs(out.mean() - x) < 4 * np.sqrt(var / n)
    assert out.var() == pytest.approx(var, rel=0.03)


def test_shot_noise_is_poisson_counts():
    img = np.random.default_rng(5).random((40, 40, 3), dtype=np.float32)
    out = get_op("shot_noise")(img, t=1.0, seed=0, key="a")  # c = 3 (ImageNet-C level 5)
    k = out * 3
    np.testing.assert_allclose(k, np.round(k), atol=1e-5)
    assert set(np.round(k).ravel().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert (get_op("shot_noise")(grey(8, 8, 3, 0.0), t=1.0, key="a") == 0).all()


def test_shot_noise_is_inverse_cdf_of_the_field():
    img = np.random.default_rng(6).random((30, 30, 3), dtype=np.float32)
    fld = field_for("shot_noise", img.shape)
    u = fld[0]
    assert u.min() > 0 and u.max() < 1
    for c in (3.0, 12.0, 60.0):
        lam = img.astype(np.float64) * c
        expect = np.clip(stats.poisson.ppf(u, lam) / c, 0, 1)
        out = shot_noise(img, photons=c, field=fld)
        exact = lam < 10  # the exact path; above, rare one-count slips (poisson_quantile)
        np.testing.assert_allclose(out[exact], expect[exact], atol=1e-6)
        slip = np.abs(out - expect)[~exact]
        assert (slip < 1 / c + 1e-6).all() and np.count_nonzero(slip > 1e-6) <= 2


def test_poisson_quantile_against_scipy():
    rng = np.random.default_rng(7)
    u = (rng.integers(0, 2**32, 100_000).astype(np.float64) + 0.5) / 2**32
    for lam in (0.0, 0.05, 1.0, 4.0, 9.9):  # exact path
        np.testing.assert_array_equal(poisson_quantile(np.full(u.shape, lam), u), stats.poisson.ppf(u, lam))
    for lam in (10.0, 30.0, 200.0, 5000.0):  # asymptotic expansion: rare one-count slips
        k = poisson_quantile(np.full(u.shape, lam), u)
        d = k - stats.poisson.ppf(u, lam)
        assert np.abs(d).max() <= 1 and (d != 0).mean() < 1e-3


def test_shot_noise_damage_grows_with_t():
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    img = np.stack([xx, yy, xx * yy], -1).astype(np.float32)
    op = get_op("shot_noise")
    err = [np.abs(op(img, t=t, seed=1, key="g") - img).mean() for t in np.linspace(0.05, 1, 20)]
    assert all(b >= a for a, b in itertools.pairwise(err))


# -- impulse --------------------------------------------------------------------------------


def test_impulse_sets_are_nested_and_amount_matches():
    op = get_op("impulse_noise")
    img = np.random.default_rng(8).uniform(0.1, 0.9, (100, 100, 3)).astype(np.float32)
    prev = np.zeros(img.shape, bool)
    for t in np.linspace(0.05, 1.0, 20):
        out = op(img, t=t, seed=0, key="a")
        hit = out != img
        assert (hit >= prev).all()  # every element hit before is still hit
        assert set(np.unique(out[hit]).tolist()) <= {0.0, 1.0}
        np.testing.assert_array_equal(out[hit], op(img, t=1.0, seed=0, key="a")[hit])
        prev = hit
    assert prev.mean() == pytest.approx(0.27, abs=0.01)
    assert (op(img, t=1.0, seed=0, key="a")[prev] == 1).mean() == pytest.approx(0.5, abs=0.02)
    # per element, as scikit-image's s&p: channels are hit independently
    assert not (prev[..., 0] == prev[..., 1]).all()


def test_impulse_formula():
    fld = np.array([[[[0.05], [0.2], [0.3]]], [[[0.9], [0.1], [0.1]]]], np.float32)
    out = impulse_noise(grey(1, 3, 1), amount=0.25, salt_vs_pepper=0.5, field=fld)
    assert out.ravel().tolist() == [0.0, 1.0, 0.5]
    out = impulse_noise(grey(1, 3, 1), amount=0.25, salt_vs_pepper=1.0, field=fld)
    assert out.ravel().tolist() == [1.0, 1.0, 0.5]


# -- Perlin ---------------------------------------------------------------------------------


def test_perlin_texture_is_zero_mean_unit_std_and_seeded():
    tex = perlin_texture(256, 256, lattice(0))
    assert abs(float(tex.mean())) < 0.15
    assert float(tex.std()) == pytest.approx(1.0, abs=0.15)
    np.testing.assert_array_equal(tex, perlin_texture(256, 256, lattice(0)))
    other = perlin_texture(256, 256, lattice(1))
    assert abs(np.corrcoef(tex.ravel(), other.ravel())[0, 1]) < 0.2


@pytest.mark.parametrize("hw", [(1, 1), (7, 300), (300, 7)])
def test_perlin_texture_any_size(hw):
    tex = perlin_texture(*hw, lattice(0))
    assert tex.shape == hw and tex.dtype == np.float32 and np.isfinite(tex).all()
    # a crop of a larger texture: the texture depends on position, not on the image size
    np.testing.assert_allclose(tex, perlin_texture(300, 300, lattice(0))[: hw[0], : hw[1]], atol=1e-6)


def test_perlin_scale_octaves_persistence():
    lat = lattice(3)
    rough = np.abs(np.diff(perlin_texture(128, 128, lat, scale=8, octaves=1), axis=1)).mean()
    smooth = np.abs(np.diff(perlin_texture(128, 128, lat, scale=64, octaves=1), axis=1)).mean()
    assert smooth < rough / 4
    one = perlin_texture(64, 64, lat, octaves=1)
    np.testing.assert_array_equal(perlin_texture(64, 64, lat, octaves=4, persistence=0.0), one)
    assert not np.array_equal(perlin_texture(64, 64, lat, octaves=4), one)


def test_perlin_op_adds_amplitude_times_shared_texture():
    img = grey(64, 96, 3)
    op = get_op("perlin")
    out = op(img, t=0.2, seed=0, key="p")
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    fld = field_for("perlin", img.shape, key="p")
    tex = perlin_texture(64, 96, fld, scale=32, octaves=4, persistence=0.5)
    np.testing.assert_allclose(out[..., 0], np.clip(0.5 + 0.1 * tex, 0, 1), atol=1e-6)
    np.testing.assert_allclose(perlin_noise(img, amplitude=0.1, field=fld), out, atol=1e-6)


# -- non-uniform ----------------------------------------------------------------------------


def test_gradient_map_runs_in_its_direction():
    m = gradient_map(4, 5, 0.0)
    np.testing.assert_allclose(m[0], [0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)
    assert (m == m[0]).all()
    np.testing.assert_allclose(gradient_map(5, 4, np.pi / 2)[:, 0], [0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)
    assert (gradient_map(1, 1, 0.3) == 1).all()


def test_nonuniform_noise_strength_follows_the_map():
    h, w = 64, 128
    img = grey(h, w, 3)
    z = np.random.default_rng(9).standard_normal((h, w, 3), dtype=np.float32)
    fld = NonuniformField(z, np.ones((h, w), np.float32), gradient_map(h, w, 0.0))
    d = nonuniform_noise(img, sigma=0.1, pattern="gradient", field=fld) - img
    left, right = d[:, : w // 4].std(), d[:, -w // 4 :].std()
    assert right > 5 * left
    assert right == pytest.approx(0.1 * 0.875, rel=0.1)  # the ramp averages 7/8 there
    np.testing.assert_allclose(d, 0.1 * gradient_map(h, w, 0.0)[:, :, None] * z, atol=1e-6)
    flat = nonuniform_noise(img, sigma=0.1, pattern="perlin", field=fld) - img
    assert flat[:, : w // 2].std() == pytest.approx(flat[:, w // 2 :].std(), rel=0.1)


def test_nonuniform_default_map_varies_and_is_fixed():
    op = get_op("nonuniform_noise")
    img = grey(128, 128, 1)
    fld = field_for("nonuniform_noise", img.shape, key="n")
    assert float(fld.perlin.min()) == 0.0 and float(fld.perlin.max()) == 1.0
    m = fld.perlin
    assert np.abs(np.diff(m, axis=0)).max() < 0.1  # smooth
    d = op(img, t=0.1, seed=0, key="n") - img  # small sigma: no clipping
    blocks = d.reshape(8, 16, 8, 16).std(axis=(1, 3))
    assert blocks.max() > 3 * blocks.min()
    big = np.abs(d) > 1e-3  # same map and z at another t: twice the deviation
    d2 = op(img, t=0.2, seed=0, key="n") - img
    np.testing.assert_allclose(d2[big] / d[big], 2.0, rtol=1e-3)
    np.testing.assert_array_equal(perlin_map(128, 128, lattice(0)), perlin_map(128, 128, lattice(0)))


def test_nonuniform_gradient_option_through_op():
    op = get_op("nonuniform_noise")
    img = grey(64, 64, 1)
    fld = field_for("nonuniform_noise", img.shape, key="r")
    out = op(img, t=0.1, seed=0, key="r", pattern="gradient")
    np.testing.assert_allclose(out - img, 0.04 * fld.gradient[:, :, None] * fld.z, atol=1e-6)
