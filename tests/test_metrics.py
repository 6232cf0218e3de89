"""Metrics: PSNR and SSIM agree with scikit-image; per-image means differ from pooled error;
SWD is 0 for identical sets, symmetric, deterministic, and grows as one set drifts."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from degrade.errors import DegradeError
from degrade.metrics import (
    CONVENTION,
    SWD_CONVENTION,
    _up,
    laplacian_pyramid,
    psnr,
    ssim,
    swd,
    swd_levels,
)
from tests.conftest import varied_images


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("channels", [3, 1])
def test_psnr_and_ssim_agree_with_scikit_image(channels):
    for i, img in enumerate(varied_images(40, channels=channels)):
        for sigma in (0.01, 0.05, 0.2):
            other = _noisy(img, sigma, i)
            assert psnr(img, other) == pytest.approx(
                peak_signal_noise_ratio(img, other, data_range=1.0), rel=1e-6)
            ref = structural_similarity(img, other, data_range=1.0, channel_axis=2)
            assert ssim(img, other) == pytest.approx(ref, abs=1e-6)
    # Also on an image smaller than the 7×7 window would need, and on 2-D arrays.
    a, b = varied_images(40)[0][:, :, 0], _noisy(varied_images(40)[0], 0.1, 9)[:, :, 0]
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), rel=1e-6)
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-6)
    assert psnr(a, a) == float("inf") and ssim(a, a) == 1.0
    assert "data_range=1.0" in CONVENTION and "RGB" in CONVENTION


def test_mean_of_per_image_psnr_is_not_pooled_psnr():
    # The pitfall the evaluator avoids: pooling the error over a batch weights the worst image.
    imgs = varied_images(32)[:4]
    outs = [_noisy(x, s, i) for i, (x, s) in enumerate(zip(imgs, (0.01, 0.02, 0.05, 0.3), strict=True))]
    per_image = np.mean([psnr(o, x) for o, x in zip(outs, imgs, strict=True)])
    pooled = psnr(np.stack(outs).reshape(-1, 32, 3), np.stack(imgs).reshape(-1, 32, 3))
    assert per_image > pooled + 5


def test_laplacian_pyramid_levels_sum_back_to_the_image():
    img = varied_images(64)[1].astype(np.float64)
    levels = laplacian_pyramid(img)
    assert [lv.shape for lv in levels] == [(64, 64, 3), (32, 32, 3), (16, 16, 3)]
    rec = levels[-1]
    for lv in reversed(levels[:-1]):
        rec = lv + _up(rec, lv.shape)
    np.testing.assert_allclose(rec, img, atol=1e-12)
    # A constant image has no band-pass detail.
    flat = laplacian_pyramid(np.full((32, 32, 1), 0.3))
    assert np.abs(flat[0]).max() < 1e-12 and np.allclose(flat[-1], 0.3)
    assert len(laplacian_pyramid(np.zeros((8, 8, 3)))) == 1


def test_swd_identical_sets_give_zero_and_it_is_symmetric_and_seeded():
    a = varied_images(32)
    b = [_noisy(x, 0.1, i) for i, x in enumerate(a)]
    assert swd(a, a) == 0.0
    assert swd_levels(a, a) == [0.0, 0.0]
    assert swd(a, b) == swd(b, a)  # exactly: pooled sums are added in either order
    assert swd(a, b[:5]) == swd(b[:5], a) > 0  # sets of different sizes
    assert swd(a, b, seed=3) == swd(a, b, seed=3)
    assert swd(a, b, seed=3) != swd(a, b, seed=4)
    assert swd(a, b, seed=3) == pytest.approx(swd(a, b, seed=4), rel=0.25)  # draws, not the measure
    assert "x1e3" in SWD_CONVENTION and "data_range=1.0" in SWD_CONVENTION


@pytest.mark.parametrize("settings", [{}, {"patches_per_image": 64, "repeats": 2}])
def test_swd_grows_with_a_shift_and_with_noise(settings):
    # The defaults, and the lighter settings the evaluator uses (degrade.evaluate.SWD_SETTINGS).
    a = varied_images(32)
    shifts = [swd(a, [np.clip(x + d, 0, 1) for x in a], **settings) for d in (0.02, 0.05, 0.1, 0.2)]
    assert 0 < shifts[0] < shifts[1] < shifts[2] < shifts[3]
    noises = [swd(a, [_noisy(x, s, i) for i, x in enumerate(a)], **settings) for s in (0.01, 0.05, 0.15)]
    assert 0 < noises[0] < noises[1] < noises[2]
    # Two different draws of the same kind of image are closer than clean vs noisy.
    b1 = [_noisy(x, 0.1, 100 + i) for i, x in enumerate(a)]
    b2 = [_noisy(x, 0.1, 200 + i) for i, x in enumerate(a)]
    assert swd(b1, b2, **settings) < swd(a, b1, **settings) / 2


def test_swd_refuses_bad_input():
    a = varied_images(32)
    with pytest.raises(DegradeError, match="two non-empty sets"):
        swd(a, [])
    with pytest.raises(DegradeError, match="one shape"):
        swd(a, varied_images(16))
