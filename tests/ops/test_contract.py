"""The operator contract, checked over every registered op (plugins included)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import degrade
from degrade.image import quantize
from degrade.metrics import psnr
from tests.conftest import varied_images

OPS = degrade.list_ops()
# Ops that need context from the caller (partner images, models) are exercised by their own
# tests with that context; the contract below feeds them what they need.


def _context(op: degrade.Op, image: np.ndarray) -> dict:
    ctx = {}
    if "partners" in op.needs:
        flipped = np.ascontiguousarray(image[::-1, ::-1])
        ctx["partners"] = [np.ascontiguousarray(np.roll(flipped, j, axis=1)) for j in range(op.partners)]
    return ctx


def _call(op, image, t, **kw):
    return op(image, t=t, **kw, **_context(op, image))


@pytest.fixture(params=OPS)
def op(request) -> degrade.Op:
    return degrade.get_op(request.param)


def test_catalog_is_not_empty():
    assert len(OPS) >= 1
    assert len(set(OPS)) == len(OPS)


def test_same_seed_and_key_give_identical_bytes(op):
    img = varied_images(40)[0]
    a = _call(op, img, 0.7, seed=3, key="sample-a")
    b = _call(op, img, 0.7, seed=3, key="sample-a")
    assert a.tobytes() == b.tobytes()


def test_another_key_gives_another_field(op):
    img = varied_images(40)[2]
    a = _call(op, img, 1.0, seed=0, key="key-a")
    if not op.stochastic:
        # A deterministic op must ignore the key and the seed entirely.
        assert _call(op, img, 1.0, seed=9, key="key-b").tobytes() == a.tobytes()
        return
    others = [_call(op, img, 1.0, seed=0, key=f"key-{c}") for c in "bcdefgh"]
    assert any(o.tobytes() != a.tobytes() for o in others), "the field ignores the sample key"
    other_seed = _call(op, img, 1.0, seed=1, key="key-a")
    assert other_seed.tobytes() != a.tobytes() or any(
        _call(op, img, 1.0, seed=s, key="key-a").tobytes() != a.tobytes() for s in range(2, 8)
    ), "the field ignores the seed"


@pytest.mark.parametrize("channels", [1, 3])
def test_input_unmodified_dtype_shape_range(op, channels):
    img = varied_images(33, channels)[1]
    before = img.copy()
    out = _call(op, img, 0.8, seed=0, key="k")
    assert np.array_equal(img, before), "the kernel modified its input"
    assert out.dtype == np.float32
    assert out.shape == img.shape
    assert np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out is not img


@pytest.mark.parametrize("channels", [1, 3])
def test_t0_is_exact_identity(op, channels):
    img = varied_images(31, channels)[3]
    out = _call(op, img, 0.0, seed=5, key="k")
    assert out.tobytes() == img.tobytes()


def test_full_severity_changes_the_image(op):
    imgs = varied_images(48)
    changed = [not np.array_equal(quantize(_call(op, i, 1.0, key="k")), quantize(i)) for i in imgs]
    assert any(changed), f"{op.name} at t=1 leaves every test image unchanged"


def test_same_result_with_one_and_several_threads(op):
    img = varied_images(64)[0]
    n = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = _call(op, img, 0.9, seed=2, key="k")
        cv2.setNumThreads(max(n, 4))
        many = _call(op, img, 0.9, seed=2, key="k")
    finally:
        cv2.setNumThreads(n)
    assert one.tobytes() == many.tobytes()


def test_damage_does_not_decrease_with_t(op):
    """Mean PSNR vs the clean image never rises over 21 steps on 8 images (monotone ops)."""
    imgs = varied_images(48)
    ts = np.linspace(0, 1, 21)
    means = []
    for t in ts:
        vals = [psnr(quantize(_call(op, i, float(t), seed=0, key=f"img{j}")), i) for j, i in enumerate(imgs)]
        means.append(np.mean([min(v, 100.0) for v in vals]))
    rises = [(float(ts[i]), means[i], means[i + 1]) for i in range(len(ts) - 1) if means[i + 1] > means[i] + 1e-9]
    if op.monotone:
        assert not rises, f"{op.name}: mean PSNR rises with t at {rises[:3]}"
    else:
        doc = (op.kernel.__doc__ or "").lower()
        assert "monoton" in doc, f"{op.name} declares monotone=False but its docstring does not say why"


def _param_strategy(p: degrade.Param):
    if p.kind == "choice":
        return st.sampled_from(p.choices)
    if p.kind == "bool":
        return st.booleans()
    if p.kind == "str":
        # Free text (model factories, transform names) is exercised by the op's own tests.
        return st.just(p.at0)
    lo = p.low if p.low is not None else min(float(p.describe()[0]), float(p.describe()[1]))
    hi = p.high if p.high is not None else max(float(p.describe()[0]), float(p.describe()[1]))
    if p.kind == "int":
        return st.integers(math.ceil(lo), math.floor(hi))
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_random_sizes_and_params(op, data):
    h = data.draw(st.integers(1, 300) if data.draw(st.booleans()) else st.integers(1, 24), label="h")
    w = data.draw(st.integers(1, 300) if data.draw(st.booleans()) else st.integers(1, 24), label="w")
    c = data.draw(st.sampled_from([1, 3]), label="c")
    t = data.draw(st.floats(0.0, 1.0), label="t")
    overrides = {}
    for p in op.params:
        if data.draw(st.booleans(), label=f"set {p.name}"):
            overrides[p.name] = data.draw(_param_strategy(p), label=p.name)
    img = np.random.default_rng(h * 1000 + w).random((h, w, c), dtype=np.float32)
    before = img.copy()
    out = op(img, t=t, seed=0, key="prop", **overrides, **_context(op, img))
    assert np.array_equal(img, before)
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    if t == 0.0:
        assert out.tobytes() == img.tobytes()
    again = op(img, t=t, seed=0, key="prop", **overrides, **_context(op, img))
    assert again.tobytes() == out.tobytes()


ADVANCING = [name for name in OPS if degrade.get_op(name).advance is not None]


def test_blur_is_among_the_ops_that_advance():
    assert "blur" in ADVANCING


@pytest.mark.parametrize("name", ADVANCING)
def test_ops_that_advance_stay_within_a_level_and_subsets_match(name):
    """An op with ``advance`` (first in an absolute sequence) stays within one 8-bit level of
    running its kernel on x0, and any subset of steps run with ``only`` gives the same bytes."""
    from degrade.image import to_uint8
    from degrade.pipeline import execute

    op = degrade.get_op(name)
    assert op.advance_history >= 1
    img = to_uint8(varied_images(48, 3)[0])
    frames, recipe = degrade.Pipeline.parse(name, steps=24).run(img, key="adv")
    x0 = frames[0]
    field = op.make_field(img.shape, seed=0, key="adv", position=0)
    for k in range(1, 25):
        direct = quantize(op.apply(x0, recipe["steps"][k - 1]["ops"][0]["params"], field))
        assert np.abs(frames[k] - direct).max() <= 1 / 255 + 1e-6, k
    for subset in ([24], [3, 17], [1, 2, 24]):
        got, _ = execute(img, dict(recipe, steps=recipe["steps"][: max(subset)]), only=subset)
        for k in subset:
            assert np.array_equal(got[k], to_uint8(frames[k])), (subset, k)
