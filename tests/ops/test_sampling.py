"""Sampling family: block averages, decimation, ImageNet-C pixelate correspondence."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import degrade
from degrade.ops.sampling import aliasing, pixelate
from tests.conftest import varied_images

RNG = np.random.default_rng(11)


def _block_means(x: np.ndarray, b: int) -> np.ndarray:
    h, w, c = x.shape
    return x.reshape(h // b, b, w // b, b, c).mean(axis=(1, 3))


@pytest.mark.parametrize("channels", [1, 3])
def test_pixelate_blocks_are_constant_block_means_for_divisible_sizes(channels):
    x = RNG.random((8, 12, channels), dtype=np.float32)
    out = pixelate(x, scale=0.25)
    means = _block_means(x, 4)
    expect = np.repeat(np.repeat(means, 4, axis=0), 4, axis=1)
    np.testing.assert_allclose(out, expect, atol=1e-6)
    assert out.shape == x.shape


def test_pixelate_small_size_truncates_like_imagenet_c():
    x = RNG.random((37, 23, 1), dtype=np.float32)
    out = pixelate(x, scale=0.6)  # int(37 * .6) = 22 rows, int(23 * .6) = 13 columns
    rows = {tuple(r) for r in out[:, :, 0]}
    cols = {tuple(c) for c in out[:, :, 0].T}
    assert len(rows) == 22 and len(cols) == 13


def test_pixelate_matches_pil_box_then_nearest_when_sizes_divide():
    # ImageNet-C: PIL BOX down, NEAREST up. Where the sizes divide, BOX and OpenCV's area
    # averaging are the same block means, so the results agree to float precision.
    x = RNG.random((40, 60), dtype=np.float32)
    for c in (0.5, 0.25, 0.1):
        sw, sh = int(60 * c), int(40 * c)
        ref = np.asarray(Image.fromarray(x, mode="F").resize((sw, sh), Image.BOX).resize((60, 40), Image.NEAREST))
        np.testing.assert_allclose(pixelate(x[:, :, None], scale=c)[:, :, 0], ref, atol=1e-6)


def test_pixelate_reproduces_imagenet_c_levels_and_ends():
    op = degrade.get_op("pixelate")
    assert [op.params_at(k / 5)["scale"] for k in range(1, 6)] == pytest.approx([0.6, 0.5, 0.4, 0.3, 0.25])
    x = RNG.random((9, 9, 3), dtype=np.float32)
    assert np.array_equal(pixelate(x, scale=1.0), x)
    one = pixelate(x, scale=0.01)  # below one pixel: the whole image becomes its mean
    np.testing.assert_allclose(one, np.broadcast_to(x.mean(axis=(0, 1)), x.shape), atol=1e-6)


def test_aliasing_keeps_one_pixel_per_cell_without_averaging():
    x = np.arange(64, dtype=np.float32).reshape(8, 8, 1) / 63
    out = aliasing(x, factor=2.0)
    picked = x[1::2, 1::2]
    expect = np.repeat(np.repeat(picked, 2, axis=0), 2, axis=1)
    assert np.array_equal(out, expect)
    # nearest mode invents no values
    assert set(np.unique(out)) <= set(np.unique(x))


def test_aliasing_folds_a_fine_checkerboard_where_pixelate_averages_it():
    checker = ((np.arange(16)[:, None] + np.arange(16)[None, :]) % 2).astype(np.float32)[:, :, None]
    al = aliasing(checker, factor=2.0)
    px = pixelate(checker, scale=0.5)
    # aliasing: the finest pattern folds into a flat field of one of its two colours
    assert np.unique(al).size == 1 and float(al[0, 0, 0]) in (0.0, 1.0)
    # pixelate: the prefilter averages it to mid grey
    np.testing.assert_allclose(px, 0.5, atol=1e-6)


def test_aliasing_bilinear_upsampling_and_identity_and_sizes():
    x = RNG.random((20, 30, 3), dtype=np.float32)
    near = aliasing(x, factor=3.0)
    bil = aliasing(x, factor=3.0, upsample="bilinear")
    assert bil.shape == x.shape and not np.array_equal(bil, near)
    # bilinear output stays within the range of the kept samples
    assert bil.min() >= near.min() - 1e-6 and bil.max() <= near.max() + 1e-6
    assert np.array_equal(aliasing(x, factor=1.0), x)
    # round(20/3) = 7 rows, round(30/3) = 10 columns survive
    assert len({tuple(r) for r in near[:, :, 0]}) == 7
    assert len({tuple(c) for c in near[:, :, 0].T}) == 10


def test_sampling_ops_declare_non_monotone_with_a_reason():
    for name in ("pixelate", "aliasing"):
        op = degrade.get_op(name)
        assert op.monotone is False and "monoton" in op.kernel.__doc__.lower()


def test_pixelate_nested_block_grids_lose_more_detail():
    # Step to step pixelate is not monotone (a dividing grid can beat a finer one that does
    # not divide: at 64 px, ImageNet-C level 2 (32 px) restores a 4-px checkerboard exactly
    # while level 1 (38 px) does not), but block means over nested grids are nested
    # projections, so there a coarser grid never wins.
    op = degrade.get_op("pixelate")
    img = varied_images(64)[0]
    err = {c: float(np.mean((pixelate(img, scale=c) - img) ** 2)) for c in (0.5, 0.25, 0.125)}
    assert err[0.5] < err[0.25] < err[0.125]
    checker = varied_images(64)[6]
    lvl = [float(np.mean((op(checker, t=k / 5) - checker) ** 2)) for k in (1, 2)]
    assert lvl[0] > 0.05 and lvl[1] == 0.0


def test_pixelate_matches_pil_box_then_nearest():
    from PIL import Image

    img = varied_images(50)[1]
    u8 = np.round(img * 255).astype(np.uint8)
    for scale in (0.6, 0.38, 0.25):
        sw = sh = int(50 * scale)
        ref = np.asarray(Image.fromarray(u8).resize((sw, sh), Image.BOX).resize((50, 50), Image.NEAREST))
        ours = pixelate(u8.astype(np.float32) / 255, scale=scale) * 255
        diff = np.abs(ours - ref.astype(np.float32))
        # PIL works in 8-bit fixed point: it rounds the box means, we keep them exact.
        assert diff.max() <= 1.01 and diff.mean() < 0.5
