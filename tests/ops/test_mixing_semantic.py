"""Mixing family, semantic ops: ``scramble`` (patch grid) and ``mask`` (inpainting masks)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

import degrade
from degrade.errors import DegradeError
from degrade.image import quantize
from degrade.ops.mixing import MaskField, mask, mask_at, scramble, scramble_cells
from tests.conftest import varied_images

TS = np.linspace(0.0, 1.0, 11)


def _scramble_field(shape, seed=0, key="k"):
    return degrade.get_op("scramble").make_field(shape, seed=seed, key=key)


def _mask_field(shape, seed=0, key="k"):
    return degrade.get_op("mask").make_field(shape, seed=seed, key=key)


# -- scramble -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["mixed", "swap", "rotate", "flip"])
def test_scramble_changes_are_nested_and_frozen(mode):
    img = varied_images(40)[0]
    op = degrade.get_op("scramble")
    outs = [op(img, t=float(t), key="nest", mode=mode) for t in TS]
    for a, b in itertools.pairwise(outs):
        changed_a = (a != img).any(axis=2)
        changed_b = (b != img).any(axis=2)
        assert not (changed_a & ~changed_b).any(), "a cell changed at t stopped changing later"
        # where a cell is already scrambled, it looks the same at every later step
        assert np.array_equal(a[changed_a], b[changed_a])
    assert (outs[-1] != img).any()


@pytest.mark.parametrize("mode", ["mixed", "swap", "rotate", "flip"])
def test_scramble_only_rearranges_pixels(mode):
    img = varied_images(37)[2]
    out = degrade.get_op("scramble")(img, t=1.0, key="perm", mode=mode, grid=5)
    for c in range(3):
        assert np.array_equal(np.sort(out[:, :, c], axis=None), np.sort(img[:, :, c], axis=None))


def test_scramble_per_pixel_error_grows_after_8_bit_storage():
    img = varied_images(32)[1]
    op = degrade.get_op("scramble")
    errs = [np.abs(quantize(op(img, t=float(t), key="e")) - img) for t in TS]
    for a, b in itertools.pairwise(errs):
        assert (b >= a).all()


def test_scramble_fraction_sets_the_share_of_changed_cells():
    shape = (64, 64, 3)
    f = _scramble_field(shape)
    plan = scramble_cells(f, shape, grid=8, mode="rotate")
    assert len(plan) == 64
    pri = np.array([c["priority"] for c in plan])
    for frac in (0.1, 0.5, 0.9):
        assert abs((pri < frac).mean() - frac) < 0.15
    assert (pri < 1.0).all()


def test_scramble_swap_moves_whole_cells_between_equal_sizes():
    # 10 x 13 px with a 4 x 4 grid: rows of 2 or 3 px, columns of 3 or 4 px.
    shape = (10, 13, 1)
    img = np.arange(130, dtype=np.float32).reshape(shape) / 129
    f = _scramble_field(shape, key="sizes")
    plan = scramble_cells(f, shape, grid=4, mode="swap")
    assert plan
    for c in plan:
        (y0, y1, x0, x1), (sy0, sy1, sx0, sx1) = c["dst"], c["src"]
        assert (y1 - y0, x1 - x0) == (sy1 - sy0, sx1 - sx0)
        assert c["dst"] != c["src"]
    # swaps are symmetric: each destination's source names it back, with the same priority
    by_dst = {c["dst"]: c for c in plan}
    for c in plan:
        back = by_dst[c["src"]]
        assert back["src"] == c["dst"] and back["priority"] == c["priority"]
    out = scramble(img, fraction=1.0, grid=4, mode="swap", field=f)
    for c in plan:
        (y0, y1, x0, x1), (sy0, sy1, sx0, sx1) = c["dst"], c["src"]
        assert np.array_equal(out[y0:y1, x0:x1], img[sy0:sy1, sx0:sx1])


def test_scramble_rotate_turns_square_cells_in_place():
    shape = (16, 16, 3)
    img = np.random.default_rng(0).random(shape, dtype=np.float32)
    f = _scramble_field(shape, key="rot")
    plan = scramble_cells(f, shape, grid=4, mode="rotate")
    out = scramble(img, fraction=1.0, grid=4, mode="rotate", field=f)
    seen = set()
    for c in plan:
        y0, y1, x0, x1 = c["dst"]
        assert c["src"] == c["dst"]
        k = {"rot90": 1, "rot180": 2, "rot270": 3}[c["transform"]]
        seen.add(k)
        assert np.array_equal(out[y0:y1, x0:x1], np.rot90(img[y0:y1, x0:x1], k, axes=(0, 1)))
    assert seen == {1, 2, 3}


def test_scramble_non_square_cells_only_take_shape_preserving_transforms():
    shape = (12, 30, 1)
    f = _scramble_field(shape)
    transforms = {c["transform"] for c in scramble_cells(f, shape, grid=3, mode="mixed")}
    assert transforms and not transforms & {"rot90", "rot270"}


def test_scramble_grid_larger_than_the_image_uses_one_pixel_cells():
    shape = (3, 5, 1)
    f = _scramble_field(shape)
    plan = scramble_cells(f, shape, grid=8, mode="flip")
    assert len(plan) == 15
    assert all(c["dst"][1] - c["dst"][0] == 1 and c["dst"][3] - c["dst"][2] == 1 for c in plan)


def test_scramble_plan_depends_on_the_key_not_on_the_step():
    shape = (32, 32, 3)
    a = scramble_cells(_scramble_field(shape, key="a"), shape)
    b = scramble_cells(_scramble_field(shape, key="b"), shape)
    assert a != b
    assert a == scramble_cells(_scramble_field(shape, key="a"), shape)


def test_scramble_rejects_an_unknown_mode():
    with pytest.raises(DegradeError, match="mode"):
        scramble_cells(_scramble_field((8, 8, 1)), (8, 8, 1), mode="shuffle")


def test_scramble_replays_through_a_pipeline():
    img = varied_images(32)[3]
    p = degrade.Pipeline.parse("scramble:grid=4", steps=5)
    frames, recipe = p.run(img, key="s")
    again = degrade.replay(recipe, frames[0])
    assert all(np.array_equal(x, y) for x, y in zip(frames, again))
    assert recipe["steps"][-1]["ops"][0]["params"] == {"fraction": 1.0, "grid": 4, "mode": "mixed"}


# -- mask -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["blocks", "strokes"])
def test_mask_is_nested_and_covers_at_most_the_requested_area(kind):
    shape = (96, 80, 3)
    f = _mask_field(shape)
    covs = np.linspace(0, 1, 26)
    masks = [mask_at(f, shape, float(c), kind) for c in covs]
    for a, b in itertools.pairwise(masks):
        assert not (a & ~b).any()
    for c, m in zip(covs, masks):
        assert m.mean() <= c + 1e-12
    assert not masks[0].any() and masks[-1].all()
    # rounding down to whole shapes: never far below the target in the useful range
    for c in (0.3, 0.6, 0.8):
        assert mask_at(f, shape, c, kind).mean() > c - 0.1


def test_mask_default_covers_about_60_percent_at_full_severity():
    op = degrade.get_op("mask")
    img = np.ones((128, 128, 3), np.float32)
    for shape in ("blocks", "strokes"):
        covered = [(op(img, t=1.0, key=f"k{i}", shape=shape) == 0).all(axis=2).mean() for i in range(4)]
        assert all(0.5 < c <= 0.6 for c in covered), covered


def test_mask_blocks_are_the_union_of_the_lowest_threshold_rectangles():
    shape = (50, 70, 1)
    f = _mask_field(shape, key="rect")
    m = mask_at(f, shape, 0.4, "blocks")
    # rebuild from the drawn rectangles: those whose threshold is below the cut-off
    h, w = shape[:2]
    rects = []
    for top, left, bh, bw, tau in f.blocks:
        y0, y1 = max(int(np.floor(top * h)), 0), min(int(np.ceil((top + bh) * h)), h)
        x0, x1 = max(int(np.floor(left * w)), 0), min(int(np.ceil((left + bw) * w)), w)
        if y1 > y0 and x1 > x0:
            rects.append((tau, y0, y1, x0, x1))
    rects.sort()
    best = None
    union = np.zeros((h, w), bool)
    for _tau, y0, y1, x0, x1 in rects:
        union[y0:y1, x0:x1] = True
        if union.mean() > 0.4:
            break
        best = union.copy()
    assert best is not None and np.array_equal(m, best)


def test_mask_sets_exactly_the_mask_to_fill_and_leaves_the_rest():
    img = varied_images(48)[0]
    f = _mask_field(img.shape, key="fill")
    out = mask(img, coverage=0.35, shape="strokes", fill=0.25, field=f)
    m = mask_at(f, img.shape, 0.35, "strokes")
    assert (out[m] == np.float32(0.25)).all()
    assert np.array_equal(out[~m], img[~m])


def test_mask_strokes_are_thin_and_blocks_are_rectangular():
    shape = (128, 128, 1)
    f = _mask_field(shape, key="look")
    blocks = mask_at(f, shape, 0.05, "blocks").astype(np.uint8)
    strokes = mask_at(f, shape, 0.05, "strokes").astype(np.uint8)
    # opening with a 9 x 9 square keeps solid rectangles, erases most of a thin stroke
    k = np.ones((9, 9), np.uint8)
    kept_b = cv2.morphologyEx(blocks, cv2.MORPH_OPEN, k).sum() / blocks.sum()
    kept_s = cv2.morphologyEx(strokes, cv2.MORPH_OPEN, k).sum() / strokes.sum()
    assert kept_b > 0.9 and kept_s < 0.5


def test_mask_field_does_not_depend_on_the_shape_parameter():
    img = varied_images(40)[4]
    op = degrade.get_op("mask")
    f = op.make_field(img.shape, seed=0, key="same")
    a = mask(img, coverage=0.5, shape="blocks", field=f)
    b = op(img, t=1.0, key="same", shape="blocks", coverage=0.5)
    assert np.array_equal(a, b)
    c = op(img, t=1.0, key="same", shape="strokes")
    assert not np.array_equal(op(img, t=1.0, key="same"), c)


def test_mask_at_checks_the_shape():
    f = _mask_field((8, 8, 1))
    with pytest.raises(DegradeError, match="field drawn"):
        mask_at(f, (9, 8, 1), 0.5)
    with pytest.raises(DegradeError, match="shape must be"):
        mask_at(f, (8, 8, 1), 0.5, "circles")


def test_mask_draw_is_deterministic_and_keyed():
    shape = (40, 40, 3)
    a = mask_at(MaskField.draw(np.random.default_rng(5), shape), shape, 0.5)
    b = mask_at(MaskField.draw(np.random.default_rng(5), shape), shape, 0.5)
    c = mask_at(MaskField.draw(np.random.default_rng(6), shape), shape, 0.5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_mask_replays_through_a_pipeline_in_chained_mode():
    img = varied_images(32)[2]
    p = degrade.Pipeline.parse("mask:shape=strokes:fill=1", steps=6, mode="chained")
    frames, recipe = p.run(img, key="m")
    again = degrade.replay(recipe, frames[0])
    assert all(np.array_equal(x, y) for x, y in zip(frames, again))
    white = [(f == 1).all(axis=2) for f in frames[1:]]
    for a, b in itertools.pairwise(white):
        assert not (a & ~b).any()
