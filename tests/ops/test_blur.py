"""Blur family: Gaussian, motion and defocus blur, heat dissipation."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

import degrade
from degrade.image import quantize, to_float, to_uint8
from degrade.metrics import psnr
from degrade.ops.blur import (
    blur,
    blur_advance,
    defocus_blur,
    disk_kernel,
    heat,
    heat_factors,
    motion_blur,
    motion_field,
    motion_kernel,
)
from tests.conftest import varied_images

# -- Gaussian blur ---------------------------------------------------------------------------


def test_blur_impulse_matches_sampled_gaussian():
    img = np.zeros((21, 21, 1), np.float32)
    img[10, 10] = 1.0
    out = blur(img, sigma=2.0)[:, :, 0]
    g = cv2.getGaussianKernel(13, 2.0)[:, 0]
    np.testing.assert_allclose(out[4:17, 4:17], np.outer(g, g), atol=1e-6)


def test_blur_advance_picks_the_newest_usable_step_and_declines_what_it_cannot_do():
    img = varied_images(32, 3)[0]
    b = {s: blur(img, sigma=s) for s in (0.5, 1.0, 1.5, 1.65, 2.0)}
    hist = [({"sigma": s, "kernel": 0}, b[s]) for s in (0.5, 1.0, 1.5)]
    # σ = 1.65: 1.5 is too close (1.65² − 1.5² < 0.8²), 1.0 is usable: blur it by √(1.65² − 1).
    got = blur_advance(hist, {"sigma": 1.65, "kernel": 0})
    assert np.array_equal(got, blur(b[1.0], sigma=float(np.sqrt(1.65**2 - 1.0))))
    assert np.abs(got - b[1.65]).max() < 2e-3
    # σ = 2: the newest entry, 1.5, is usable
    assert np.array_equal(blur_advance(hist, {"sigma": 2.0, "kernel": 0}), blur(b[1.5], sigma=float(np.sqrt(1.75))))
    # the same σ as an entry: a copy of it
    same = blur_advance(hist, {"sigma": 1.5, "kernel": 0})
    assert np.array_equal(same, b[1.5]) and same is not b[1.5]
    # nothing usable: σ₀ < 0.8 or too close, a shrinking σ, a fixed kernel size
    assert blur_advance(hist[:1], {"sigma": 2.0, "kernel": 0}) is None
    assert blur_advance(hist, {"sigma": 1.2, "kernel": 0}) is None
    assert blur_advance(hist, {"sigma": 0.7, "kernel": 0}) is None
    assert blur_advance(hist, {"sigma": 3.0, "kernel": 11}) is None
    assert blur_advance([({"sigma": 1.0, "kernel": 11}, b[1.0])], {"sigma": 3.0, "kernel": 0}) is None


def test_blur_sequence_advances_from_earlier_steps_within_one_level_of_direct():
    img = to_uint8(varied_images(48, 3)[1])
    frames, recipe = degrade.Pipeline.parse("blur", steps=50).run(img, key="a")
    assert recipe["ops"] == [{"position": 0, "op": "blur", "version": 2}]
    sig = [0.0] + [s["ops"][0]["params"]["sigma"] for s in recipe["steps"]]
    assert sig[11] == pytest.approx(0.88) and sig[15] == pytest.approx(1.2)
    x0 = to_float(img)
    direct = {k: quantize(np.clip(blur(x0, sigma=sig[k]), 0, 1)) for k in range(1, 51)}
    # σ_k = 0.08 k: steps up to 14 have no earlier step to advance from (σ₀ ≥ 0.8 and
    # σ² − σ₀² ≥ 0.64) and are blurred directly; step 15 advances from step 11.
    assert all(np.array_equal(frames[k], direct[k]) for k in range(1, 15))
    step11 = np.clip(blur(x0, sigma=sig[11]), 0, 1)
    expect15 = quantize(np.clip(blur(step11, sigma=float(np.sqrt(sig[15] ** 2 - sig[11] ** 2))), 0, 1))
    assert np.array_equal(frames[15], expect15)
    diffs = [np.abs(frames[k] - direct[k]).max() * 255 for k in range(15, 51)]
    assert max(diffs) <= 1.0 + 1e-4 and sum(d > 0 for d in diffs) >= 10
    replayed = degrade.replay(recipe, frames[0])
    assert all(np.array_equal(a, b) for a, b in zip(frames, replayed))


def test_monotone_blur_sequences_replay_exactly():
    img = to_uint8(varied_images(40, 3)[3])
    pipe = degrade.Pipeline("blur", steps=30, monotone=True)
    frames, recipe = pipe.run(img, key="m")
    assert all(np.array_equal(a, b) for a, b in zip(frames, degrade.replay(recipe, frames[0])))


def test_absolute_steps_after_blur_run_from_the_clean_image_and_subsets_match():
    from degrade.pipeline import execute

    img = to_uint8(varied_images(40, 3)[2])
    frames, recipe = degrade.Pipeline.parse("blur,jpeg", steps=9).run(img, key="b")
    got, payloads = execute(img, dict(recipe, steps=recipe["steps"][:7]), only=[3, 7])
    assert [f is None for f in got] == [False, True, True, False, True, True, True, False]
    assert payloads[5] is None and payloads[7][0] == "jpg"
    assert np.array_equal(to_float(got[3]), frames[3]) and np.array_equal(to_float(got[7]), frames[7])
    # blur second: nothing to advance from (its input differs per step), each step direct.
    f2, r2 = degrade.Pipeline.parse("noise,blur", steps=4).run(img, key="b")
    x = degrade.get_op("noise").apply(to_float(img), r2["steps"][3]["ops"][0]["params"],
                                      degrade.get_op("noise").make_field(img.shape, seed=0, key="b", position=0))
    assert np.array_equal(f2[4], quantize(np.clip(blur(x, sigma=r2["steps"][3]["ops"][1]["params"]["sigma"]), 0, 1)))


# -- motion blur -----------------------------------------------------------------------------


@pytest.mark.parametrize("radius,sigma,angle", [(0.3, 0.2, 10.0), (2.0, 1.0, 0.0), (7.5, 5.0, -33.0),
                                                (20.0, 15.0, 45.0)])
def test_motion_kernel_is_normalised_and_non_negative(radius, sigma, angle):
    k, (ax, ay) = motion_kernel(radius, sigma, angle)
    assert k.dtype == np.float32
    assert abs(float(k.sum()) - 1.0) < 1e-6
    assert k.min() >= 0.0
    assert 0 <= ax < k.shape[1] and 0 <= ay < k.shape[0]


def test_motion_kernel_first_moment_is_the_streak_profile_mean():
    # Bilinear splatting keeps the first moment, so the kernel's centroid along the streak
    # is the mean distance under exp(-s²/2σ²) on [0, 2·radius] (ImageMagick's profile).
    radius, sigma = 10.0, 3.0
    k, (ax, ay) = motion_kernel(radius, sigma, 0.0)
    assert k.shape[0] == 1 and ay == 0 and ax == 0  # one row, starting at the anchor
    xs = np.arange(k.shape[1]) - ax
    centroid = float((k[0] * xs).sum())
    s = np.linspace(0.0, 2 * radius, 200001)
    g = np.exp(-(s**2) / (2 * sigma**2))
    assert centroid == pytest.approx(float((s * g).sum() / g.sum()), abs=1e-3)


def test_motion_kernel_reach_is_two_radii_and_grows_continuously():
    widths = [motion_kernel(r, 1e6, 0.0)[0].shape[1] for r in (1.0, 2.0, 5.0)]
    assert widths == [3, 5, 11]  # taps 0 … 2r, like ImageMagick's 2·radius + 1
    a = motion_kernel(5.0, 3.0, 20.0)[0]
    b = motion_kernel(5.001, 3.0, 20.0)[0]
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-3


def test_motion_kernel_angle_90_points_up():
    k, (ax, ay) = motion_kernel(3.0, 100.0, 90.0)
    assert k.shape[1] == 1 and ax == 0
    assert ay == k.shape[0] - 1  # the streak starts at the bottom and goes up (−y)


def test_motion_blur_impulse_is_the_mirrored_kernel():
    k, (ax, _) = motion_kernel(2.0, 100.0, 0.0)
    img = np.zeros((9, 21, 1), np.float32)
    img[4, 15] = 1.0
    out = motion_blur(img, radius=2.0, sigma=100.0, field=0.0)[:, :, 0]
    # filter2D correlates: a point at x0 spreads to x0 − offset.
    np.testing.assert_allclose(out[4, 15 - (k.shape[1] - 1 - ax) : 16], k[0, ::-1], atol=1e-7)
    assert out.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.count_nonzero(out[[0, 1, 2, 3, 5, 6, 7, 8]]) == 0


@pytest.mark.parametrize("channels", [1, 3])
def test_motion_blur_keeps_a_constant_image(channels):
    img = np.full((30, 40, channels), 0.37, np.float32)
    out = motion_blur(img, radius=15.0, sigma=8.0, field=-21.0)
    np.testing.assert_allclose(out, 0.37, atol=1e-6)
    assert out.shape == img.shape


def test_motion_blur_tiny_sigma_or_radius_is_identity():
    img = varied_images(20)[0]
    assert np.array_equal(motion_blur(img, radius=5.0, sigma=1e-300, field=10.0), img)
    assert np.array_equal(motion_blur(img, radius=0.0, sigma=3.0, field=10.0), img)


def test_motion_field_angle_is_seeded_per_key():
    op = degrade.get_op("motion_blur")
    angles = [op.make_field((32, 32, 3), seed=0, key=f"k{i}") for i in range(40)]
    assert all(-45.0 <= a <= 45.0 for a in angles)
    assert len(set(angles)) == 40
    assert op.make_field((32, 32, 3), seed=0, key="k3") == angles[3]
    assert min(angles) < -20 and max(angles) > 20  # spread over the whole range
    rng = np.random.default_rng(0)
    assert motion_field(rng, (4, 4, 1)) == np.random.default_rng(0).uniform(-45, 45)


def test_motion_blur_different_keys_blur_in_different_directions():
    op = degrade.get_op("motion_blur")
    img = varied_images(48)[0]
    a = op(img, t=0.6, key="a")
    b = op(img, t=0.6, key="b")
    assert not np.array_equal(a, b)


def test_motion_blur_imagenet_c_levels_at_k_over_5():
    op = degrade.get_op("motion_blur")
    levels = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]
    for k, (r, s) in enumerate(levels, start=1):
        assert op.params_at(k / 5) == {"radius": r, "sigma": s}


def test_motion_blur_damage_grows_along_a_sequence():
    op = degrade.get_op("motion_blur")
    img = varied_images(64)[1]
    vals = [psnr(op(img, t=t, key="x"), img) for t in np.linspace(0.05, 1, 12)]
    assert all(b < a for a, b in itertools.pairwise(vals))


# -- defocus blur ----------------------------------------------------------------------------


@pytest.mark.parametrize("radius,alias", [(0.0, 0.0), (0.4, 0.1), (3.0, 0.1), (4.5, 0.5), (10.0, 0.5),
                                          (17.2, 2.0)])
def test_disk_kernel_sums_to_one_and_is_symmetric(radius, alias):
    k = disk_kernel(radius, alias)
    assert k.dtype == np.float32
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    assert k.min() >= 0
    np.testing.assert_allclose(k, k.T, atol=1e-8)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-8)


@pytest.mark.parametrize("radius,count", [(0, 1), (1, 5), (2, 13), (3, 29), (4, 49)])
def test_disk_kernel_at_integer_radius_is_the_lattice_disk(radius, count):
    k = disk_kernel(float(radius), 0.0)
    assert int((k > 0).sum()) == count  # lattice points with x² + y² ≤ r²
    np.testing.assert_allclose(k[k > 0], 1.0 / count, rtol=1e-6)


def test_disk_kernel_mixes_neighbouring_disks_between_integers():
    k = np.pad(disk_kernel(3.25, 0.0), 1)  # 9×9 -> 11×11
    d3 = np.pad(disk_kernel(3.0, 0.0), 1)
    d4 = disk_kernel(4.0, 0.0)
    assert k.shape == d3.shape == d4.shape == (11, 11)
    np.testing.assert_allclose(k, 0.75 * d3 + 0.25 * d4, atol=1e-7)


def _imagenet_c_disk(radius: int, alias: float) -> np.ndarray:
    # The reference's construction, written from its description.
    ax = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
    x, y = np.meshgrid(ax, ax)
    d = ((x**2 + y**2) <= radius**2).astype(np.float32)
    d /= d.sum()
    ks = (3, 3) if radius <= 8 else (5, 5)
    return cv2.GaussianBlur(d, ksize=ks, sigmaX=alias)


@pytest.mark.parametrize("radius,alias,tol", [(3, 0.1, 1e-7), (4, 0.5, 1e-3), (6, 0.5, 1e-3)])
def test_disk_kernel_matches_imagenet_c_levels(radius, alias, tol):
    ours = disk_kernel(radius, alias)
    ref = _imagenet_c_disk(radius, alias)
    n = max(ours.shape[0], ref.shape[0])
    a = np.pad(ours, (n - ours.shape[0]) // 2)
    b = np.pad(ref, (n - ref.shape[0]) // 2)
    assert np.abs(a - b).sum() <= tol


def test_defocus_blur_impulse_is_the_kernel_and_constant_is_kept():
    img = np.zeros((31, 31, 1), np.float32)
    img[15, 15] = 1.0
    out = defocus_blur(img, radius=4.5, alias_sigma=0.5)[:, :, 0]
    k = disk_kernel(4.5, 0.5)
    h = k.shape[0] // 2
    np.testing.assert_allclose(out[15 - h : 16 + h, 15 - h : 16 + h], k, atol=1e-7)
    flat = np.full((12, 9, 3), 0.6, np.float32)
    np.testing.assert_allclose(defocus_blur(flat, radius=10.0, alias_sigma=0.5), 0.6, atol=1e-6)


def test_defocus_blur_radius_zero_is_identity_and_levels_match_imagenet_c():
    img = varied_images(16)[0]
    assert np.array_equal(defocus_blur(img, radius=0.0, alias_sigma=0.5), img)
    op = degrade.get_op("defocus_blur")
    levels = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]
    for k, (r, a) in enumerate(levels, start=1):
        got = op.params_at(k / 5)
        assert got["radius"] == r and got["alias_sigma"] == pytest.approx(a)
    assert not op.stochastic


# -- heat dissipation ------------------------------------------------------------------------


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def test_heat_matches_the_dct_formula_written_out():
    rng = np.random.default_rng(7)
    u0 = rng.uniform(0.2, 0.8, (5, 7, 2)).astype(np.float32)
    sigma = 1.3
    ch, cw = _dct_matrix(5), _dct_matrix(7)
    lam = (np.pi * np.arange(5)[:, None] / 5) ** 2 + (np.pi * np.arange(7)[None, :] / 7) ** 2
    expected = np.empty_like(u0, dtype=np.float64)
    for c in range(2):
        coef = ch @ u0[:, :, c].astype(np.float64) @ cw.T
        expected[:, :, c] = ch.T @ (np.exp(-lam * sigma**2 / 2) * coef) @ cw
    np.testing.assert_allclose(heat(u0, sigma=sigma), expected, atol=1e-6)
    np.testing.assert_allclose(heat_factors(5, 7, sigma), np.exp(-lam * sigma**2 / 2), rtol=1e-12)


def test_heat_sigma_to_zero_is_identity():
    img = varied_images(24)[0]
    assert np.array_equal(heat(img, sigma=0.0), img)
    np.testing.assert_allclose(heat(img, sigma=1e-4), img, atol=1e-6)


def test_heat_conserves_channel_means_and_flattens_at_large_sigma():
    img = varied_images(24, 3)[4][:, :20]  # non-square
    out = heat(img, sigma=3.0)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), img.mean(axis=(0, 1)), atol=1e-6)
    flat = heat(img, sigma=1e4)
    np.testing.assert_allclose(flat, np.broadcast_to(img.mean(axis=(0, 1)), img.shape), atol=1e-6)


def test_heat_is_a_semigroup():
    # Heat for time σ₁²/2 then σ₂²/2 equals heat for their sum (no clipping in the way).
    rng = np.random.default_rng(3)
    img = rng.uniform(0.3, 0.7, (9, 11, 1)).astype(np.float32)
    twice = heat(heat(img, sigma=1.5), sigma=2.0)
    np.testing.assert_allclose(twice, heat(img, sigma=2.5), atol=1e-6)


def test_heat_odd_and_tiny_sizes_and_geometric_schedule():
    for shape in [(1, 1, 1), (1, 5, 3), (3, 2, 1)]:
        img = np.random.default_rng(0).random(shape, dtype=np.float32)
        assert heat(img, sigma=2.0).shape == shape
    p = degrade.get_op("heat").param("sigma")
    assert p.value(0.0) == 0.5 and p.value(1.0) == pytest.approx(20.0)
    assert p.value(0.5) == pytest.approx(np.sqrt(0.5 * 20.0))
