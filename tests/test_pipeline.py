"""Pipelines: modes, recipes, replay, parsing, curves."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import degrade
from degrade import DegradeError, Param, Pipeline, get_op, replay
from degrade.image import quantize, to_float, to_uint8
from degrade.pipeline import execute
from tests.conftest import varied_images


def _img(size: int = 32, i: int = 0) -> np.ndarray:
    return varied_images(size)[i]


@pytest.mark.parametrize("mode", ["absolute", "chained", "choice"])
@pytest.mark.parametrize("spec", ["blur,jpeg", "noise,blur:sigma=2", "impulse_noise,jpeg:quality=40..5"])
def test_replay_equals_run(mode, spec):
    p = Pipeline.parse(spec, steps=6, mode=mode, seed=11)
    frames, recipe = p.run(_img(), key="sample-1")
    assert len(frames) == 7
    again = replay(json.loads(json.dumps(recipe)), to_uint8(frames[0]))
    assert [f.tobytes() for f in again] == [f.tobytes() for f in frames]


def test_frames_are_float32_quantised_and_clean_first():
    img = _img()
    frames, _ = Pipeline.parse("noise", steps=3).run(img, key="a")
    assert all(f.dtype == np.float32 for f in frames)
    assert np.array_equal(frames[0], quantize(img))
    for f in frames:
        assert np.array_equal(f, quantize(f))


def test_absolute_steps_are_independent():
    img = quantize(_img())
    p = Pipeline.parse("noise:sigma=0.3,blur", steps=5, seed=4)
    frames, recipe = p.run(img, key="s")
    noise, blur = get_op("noise"), get_op("blur")
    for k in (1, 3, 5):
        t = k / 5
        x = noise(img, t=t, seed=4, key="s", position=0, sigma=0.3)
        x = blur(x, t=t, seed=4, key="s", position=1)
        assert np.array_equal(frames[k], quantize(x)), k
    # A single step alone regenerates the same frame.
    short = dict(recipe, steps=[recipe["steps"][2]])
    alone, _ = execute(to_uint8(img), short)
    assert np.array_equal(to_float(alone[1]), frames[3])


def test_chained_reads_the_quantised_previous_frame():
    img = _img()
    p = Pipeline.parse("blur:sigma=1.5", steps=4, mode="chained")
    frames, recipe = p.run(img, key="c")
    blur = get_op("blur")
    for k in range(1, 5):
        params = recipe["steps"][k - 1]["ops"][0]["params"]
        expected = quantize(blur.apply(frames[k - 1], params))
        assert np.array_equal(frames[k], expected)
    # Chained differs from absolute: blurring a blurred image compounds.
    abs_frames, _ = Pipeline.parse("blur:sigma=1.5", steps=4).run(img, key="c")
    assert not np.array_equal(abs_frames[4], frames[4])


def test_choice_draws_are_reproducible_per_key():
    p = Pipeline.parse("blur,noise,jpeg", steps=12, mode="choice", seed=2)

    def drawn(key):
        return [s["ops"][0]["op"] for s in p.plan(key)]

    assert drawn("a") == drawn("a")
    assert all(len(s["ops"]) == 1 for s in p.plan("a"))
    draws = {tuple(drawn(f"k{i}")) for i in range(6)}
    assert len(draws) > 1
    assert set().union(*draws) == {"blur", "noise", "jpeg"}
    other_seed = Pipeline.parse("blur,noise,jpeg", steps=12, mode="choice", seed=3)
    assert [s["ops"][0]["op"] for s in other_seed.plan("a")] != drawn("a")


def test_same_op_twice_gets_two_fields():
    img = _img()
    noise = get_op("noise")
    f0 = noise.make_field(img.shape, seed=0, key="s", position=0)
    f1 = noise.make_field(img.shape, seed=0, key="s", position=1)
    assert not np.array_equal(f0, f1)
    frames, recipe = Pipeline.parse("noise:sigma=0.1,noise:sigma=0.1", steps=1).run(img, key="s")
    params = recipe["steps"][0]["ops"][0]["params"]
    x = noise.apply(noise.apply(quantize(img), params, f0), params, f1)
    assert np.array_equal(frames[1], quantize(x))
    # Reusing one field twice would give another image.
    y = noise.apply(noise.apply(quantize(img), params, f0), params, f0)
    assert not np.array_equal(frames[1], quantize(y))


def test_recipe_round_trips_through_json_and_records_everything():
    p = Pipeline.parse("blur:sigma=3,jpeg:quality=30..10", steps=4, seed=9)
    _, recipe = p.run(_img(), key="k-1", split="train", label="cat")
    assert json.loads(json.dumps(recipe)) == recipe
    assert recipe["key"] == "k-1" and recipe["seed"] == 9
    assert recipe["split"] == "train" and recipe["label"] == "cat"
    assert recipe["ops"] == [
        {"position": 0, "op": "blur", "version": get_op("blur").version},
        {"position": 1, "op": "jpeg", "version": get_op("jpeg").version},
    ]
    assert [s["k"] for s in recipe["steps"]] == [1, 2, 3, 4]
    assert recipe["schedule"]["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    q = [s["ops"][1]["params"]["quality"] for s in recipe["steps"]]
    assert q[0] == 30 and q[-1] == 10 and q == sorted(q, reverse=True)
    assert [s["ops"][0]["params"]["sigma"] for s in recipe["steps"]] == [0.75, 1.5, 2.25, 3.0]


def test_jpeg_step_frame_is_the_decoded_jpeg():
    p = Pipeline.parse("blur,jpeg:quality=20", steps=2)
    seq = p.run_encoded(_img(), key="j")
    ext, data = seq.payloads[2]
    assert ext == "jpg" and data[:2] == b"\xff\xd8"
    assert np.array_equal(get_op("jpeg").decode(data), seq.frames[2])
    assert seq.payloads[0] is None


def test_knot_curve_reproduces_its_table_exactly():
    table = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
    p = Param("sigma", 0.0, curve="knots", knots=tuple((k / 5, v) for k, v in enumerate(table)))
    assert [p.value(k / 5) for k in range(6)] == table
    # The same through a pipeline: a per-step list and an explicit knot override.
    pipe = Pipeline([{"op": "blur", "params": {"sigma": [1, 2, 3, 4, 6]}}], steps=5)
    assert [s["ops"][0]["params"]["sigma"] for s in pipe.plan("a")] == table[1:]
    knots = {"knots": [[k / 5, v] for k, v in enumerate(table)]}
    pipe = Pipeline([{"op": "blur", "params": {"sigma": knots}}], steps=5)
    assert [s["ops"][0]["params"]["sigma"] for s in pipe.plan("a")] == table[1:]


def test_range_sets_first_step_and_last():
    p = Pipeline.parse("jpeg:quality=10..5", steps=50)
    q = [s["ops"][0]["params"]["quality"] for s in p.plan("a")]
    assert q[0] == 10 and q[-1] == 5 and len(q) == 50


def test_geometric_param_is_log_spaced():
    p = Param("sigma", 0.5, 20.0, curve="geometric")
    assert p.value(0.0) == pytest.approx(0.5)
    assert p.value(0.5) == pytest.approx(np.sqrt(0.5 * 20.0))
    assert p.value(1.0) == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "--ops is empty"),
        ("blr", "unknown op 'blr'; did you mean 'blur'"),
        ("blur:sigm=3", "op 'blur' has no parameter 'sigm'; did you mean 'sigma'"),
        ("blur:sigma=-1", "blur:sigma=-1 is out of range [0, 64]"),
        ("blur:sigma", "options are key=value"),
        ("blur,,jpeg", "empty entry"),
        ("blur:sigma=a..2", "a range is written a..b with two numbers"),
        ("blur:sigma=x", "blur:sigma must be a number"),
        ("jpeg:quality=7.5", "jpeg:quality must be a whole number"),
        ("blur:sigma=1:sigma=2", "'sigma' given twice"),
    ],
)
def test_parse_errors_name_the_problem(spec, message):
    with pytest.raises(DegradeError) as exc:
        Pipeline.parse(spec, steps=3)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"steps": 3, "mode": "sideways"}, "unknown mode 'sideways'"),
        ({"steps": 3, "schedule": "zigzag"}, "unknown schedule 'zigzag'"),
        ({"steps": 3, "seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_pipeline_argument_errors(kwargs, message):
    with pytest.raises(DegradeError, match=message):
        Pipeline.parse("blur", **kwargs)


def test_aliases_resolve_to_canonical_names():
    p = Pipeline.parse("gaussian_blur,jpeg_compression,gaussian_noise", steps=2)
    assert [s.op for s in p.ops] == ["blur", "jpeg", "noise"]
    assert p.spec == "blur,jpeg,noise"


def test_schedules_start_clean_and_end_full():
    for name in ("linear", "cosine", "geometric"):
        ts = Pipeline.parse("blur", steps=7, schedule=name).ts
        assert ts[0] == 0.0 and ts[-1] == 1.0
        assert all(b > a for a, b in itertools.pairwise(ts)), name
    cos = Pipeline.parse("blur", steps=4, schedule="cosine").ts
    assert cos[1] < 0.25 < cos[3] - cos[2]


def test_replay_rejects_wrong_version_shape_and_garbage():
    frames, recipe = Pipeline.parse("blur", steps=2).run(_img(), key="a")
    bad = json.loads(json.dumps(recipe))
    bad["ops"][0]["version"] = 99
    with pytest.raises(DegradeError, match="blur version 99"):
        replay(bad, frames[0])
    with pytest.raises(DegradeError, match="shape"):
        replay(recipe, np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(DegradeError, match="recipe is missing 'steps'"):
        replay({k: v for k, v in recipe.items() if k != "steps"}, frames[0])
    evil = json.loads(json.dumps(recipe))
    evil["steps"][0]["ops"][0]["params"]["sigma"] = "__import__('os')"
    with pytest.raises(DegradeError, match="sigma must be a number"):
        replay(evil, frames[0])


def test_public_api():
    assert isinstance(degrade.list_ops(), list)
    op = degrade.get_op("blur")
    assert op.monotone is True and op.version >= 1 and next(p.name for p in op.params) == "sigma"
    assert issubclass(degrade.DegradeError, ValueError)
