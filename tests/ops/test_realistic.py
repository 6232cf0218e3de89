"""Real-ESRGAN ops: kernels, keyed draws, gating by prob, the published ranges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import degrade
from degrade.ops.realistic import (
    KERNEL_PROBS,
    circular_lowpass_kernel,
    mixed_kernel,
    realesrgan_blur,
    realesrgan_final,
    realesrgan_jpeg,
    realesrgan_noise,
    realesrgan_resize,
)
from tests.conftest import varied_images

BLUR = dict(size_min=7, size_max=21, sigma_min=0.2, sigma_max=3.0, betag_min=0.5, betag_max=4.0,
            betap_min=1.0, betap_max=2.0, sinc_prob=0.1)


def test_gaussian_kernels_match_the_bivariate_normal():
    k = mixed_kernel("aniso", 9, 2.0, 0.7, np.pi / 6)
    ax = np.arange(-4, 5)
    xx, yy = np.meshgrid(ax, ax)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    u = xx * c + yy * s  # coordinates along the rotated axes
    v = -xx * s + yy * c
    want = np.exp(-0.5 * (u**2 / 4.0 + v**2 / 0.49))
    np.testing.assert_allclose(k, want / want.sum(), atol=1e-6)
    iso = mixed_kernel("iso", 7, 1.2, 5.0, 1.0)  # iso ignores σy and the rotation
    np.testing.assert_allclose(iso, mixed_kernel("aniso", 7, 1.2, 1.2, 0.0), atol=1e-7)
    assert np.allclose(iso, iso.T) and np.allclose(iso, iso[::-1])


def test_generalized_and_plateau_shapes():
    gen = mixed_kernel("generalized_iso", 11, 2.0, 2.0, 0.0, beta=4.0)
    plat = mixed_kernel("plateau_iso", 11, 2.0, 2.0, 0.0, beta=2.0)
    gauss = mixed_kernel("iso", 11, 2.0, 2.0, 0.0)
    # β > 1 flattens the top: the centre row is flatter than a Gaussian's near the middle.
    assert gen[5, 5] / gen[5, 6] < gauss[5, 5] / gauss[5, 6]
    q = (np.arange(-5, 6) ** 2 / 4.0)
    np.testing.assert_allclose(plat[5] / plat[5, 5], 1 / (q**2 + 1), rtol=1e-5)


def test_sinc_kernel_is_the_circular_lowpass():
    k = circular_lowpass_kernel(np.pi / 2, 9)
    r = np.hypot(*np.meshgrid(np.arange(-4, 5), np.arange(-4, 5)))
    with np.errstate(invalid="ignore", divide="ignore"):
        want = (np.pi / 2) * special.j1(np.pi / 2 * r) / (2 * np.pi * r)
    want[4, 4] = (np.pi / 2) ** 2 / (4 * np.pi)
    np.testing.assert_allclose(k, want / want.sum(), atol=1e-6)


def test_prob_gates_each_op_with_the_samples_own_draw():
    img = varied_images(32)[0]
    u = np.full(10, 0.3)
    assert realesrgan_blur(img, prob=0.2, field=u, **BLUR).tobytes() == img.tobytes()
    assert realesrgan_blur(img, prob=0.4, field=u, **BLUR).tobytes() != img.tobytes()
    op = degrade.get_op("realesrgan_jpeg")
    assert op.params_at(0.0)["prob"] == 0.0 and op.params_at(1.0)["prob"] == 1.0


def test_kernel_types_follow_the_published_probabilities():
    assert KERNEL_PROBS == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    op = degrade.get_op("realesrgan_blur")
    draws = [op.make_field((8, 8, 3), seed=0, key=f"k{i}") for i in range(2000)]
    sinc = np.mean([d[2] < 0.1 for d in draws])
    assert abs(sinc - 0.1) < 0.02


def test_resize_draws_up_down_keep_and_returns_to_size():
    img = varied_images(40)[1]
    kw = dict(up_prob=0.2, down_prob=0.7, scale_min=0.15, scale_max=1.5, prob=1.0)
    keep = realesrgan_resize(img, field=np.array([0.0, 0.05, 0.5, 0.5, 0.5, 0.5]), **kw)
    assert keep.tobytes() == img.tobytes()  # u < 0.1: kept
    down = realesrgan_resize(img, field=np.array([0.0, 0.9, 0.0, 0.0, 0.0, 0.0]), **kw)
    assert down.shape == img.shape and np.abs(down - img).mean() > 0.02
    base = realesrgan_resize(img, base=0.25, field=np.array([0.0, 0.05, 0.5, 0.0, 0.0, 0.0]), **kw)
    assert np.abs(base - img).mean() > 0.02  # relative to 1/4 of the size


def test_noise_gaussian_strength_and_grey():
    img = np.full((64, 64, 3), 0.5, np.float32)
    op = degrade.get_op("realesrgan_noise")
    fld = op.make_field(img.shape, seed=0, key="a")
    fld["u"][:] = [0.0, 0.0, 0.5, 0.9, 0.0, 0.0]  # act, Gaussian, σ in the middle, colour
    kw = dict(gaussian_prob=0.5, sigma_min=1.0, sigma_max=29.0, scale_min=0.05, scale_max=3.0, gray_prob=0.4, prob=1.0)
    out = realesrgan_noise(img, field=fld, **kw)
    assert (out - img).std() == pytest.approx(15 / 255, rel=0.05)
    fld["u"][3] = 0.1  # grey noise: one value per pixel
    out = realesrgan_noise(img, field=fld, **kw)
    assert np.allclose(out[:, :, 0], out[:, :, 1]) and np.allclose(out[:, :, 1], out[:, :, 2])


def test_noise_poisson_is_basicsr_s_definition_on_the_fields_uniforms():
    img = np.full((32, 32, 1), 0.25, np.float32)
    img[:16] = 0.75
    op = degrade.get_op("realesrgan_noise")
    fld = op.make_field(img.shape, seed=1, key="a")
    fld["u"][:] = [0.0, 0.9, 0.5, 0.9, 0.0, 0.0]  # act, Poisson, scale in the middle, colour
    out = realesrgan_noise(img, gaussian_prob=0.5, sigma_min=1, sigma_max=30, scale_min=1.0,
                           scale_max=3.0, gray_prob=0.4, prob=1.0, field=fld)
    # Two distinct values → v = 2^ceil(log2 2) = 2; noise = (Poisson(x·v)/v − x)·scale, the
    # Poisson count being the quantile of the field's uniform number.
    x8 = np.round(img * 255) / 255
    counts = stats.poisson.ppf(fld["p"], x8 * 2)
    want = np.clip(img + (counts / 2 - x8) * 2.0, 0, 1)
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_jpeg_and_final_stage():
    img = varied_images(32)[0]
    q_lo = realesrgan_jpeg(img, quality_min=30, quality_max=95, prob=1.0, field=np.array([0.0, 0.0]))
    q_hi = realesrgan_jpeg(img, quality_min=30, quality_max=95, prob=1.0, field=np.array([0.0, 1.0]))
    assert np.abs(q_lo - img).mean() > np.abs(q_hi - img).mean()
    out = realesrgan_final(img, scale=4.0, sinc_prob=0.8, size_min=7, size_max=21, quality_min=30,
                           quality_max=95, prob=1.0, field=np.full(7, 0.3))
    assert out.shape == img.shape and np.allclose(out * 255, np.round(out * 255), atol=1e-4)
    assert np.abs(out - img).mean() > np.abs(q_lo - img).mean()  # ×4 loss dominates
