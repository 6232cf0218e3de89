"""Ops that mix in other images: partner choice, recipes, replay, builds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from degrade import DegradeError, Pipeline, build, get_op, replay, verify
from degrade.image import to_uint8
from degrade.ops.mixing import _patch_field, blend, patches
from degrade.pipeline import image_sha256
from degrade.shards import iter_shard
from tests.conftest import varied_images


def _records(out):
    recs = []
    for p in sorted(out.glob("shard-*.tar")):
        recs.extend(iter_shard(p))
    return recs


def test_patches_are_nested_and_come_from_partners():
    img = np.zeros((40, 40, 3), np.float32)
    partners = [np.full((40, 40, 3), v, np.float32) for v in (0.25, 0.5, 1.0)]
    field = _patch_field(np.random.default_rng(3), img.shape)
    prev = None
    for amount in np.linspace(0.05, 1.0, 12):
        out = patches(img, amount=float(amount), count=16, size=0.3, partners=partners, field=field)
        changed = (out != 0).any(axis=2)
        assert set(np.unique(out)) <= {0.0, 0.25, 0.5, 1.0}
        if prev is not None:
            assert not (prev & ~changed).any(), "a pasted region vanished at a higher t"
        prev = changed
    assert prev.mean() > 0.3


def test_blend_formulas():
    a = varied_images(16)[0]
    z = varied_images(16)[1]
    lin = blend(a, weight=0.3, curve="linear", mislabeled=False, partners=[z])
    np.testing.assert_allclose(lin, 0.7 * a + 0.3 * z, atol=1e-6)
    sq = blend(a, weight=0.36, curve="sqrt", mislabeled=False, partners=[z])
    expected = (0.8 * (2 * a - 1) + 0.6 * (2 * z - 1) + 1) / 2
    np.testing.assert_allclose(sq, expected, atol=1e-6)


def test_pipeline_without_partners_is_a_clear_error():
    with pytest.raises(DegradeError, match="op 'blend' needs partner images: pass partners="):
        Pipeline.parse("blend", steps=2).run(varied_images(16)[0], key="a")


class _Fixed:
    def __init__(self, images):
        self.images = images

    def choose(self, *, seed, key, position, op, count, params, shape):
        return [(f"p{i}", to_uint8(self.images[i % len(self.images)])) for i in range(count)]


def test_recipe_records_partners_and_replay_checks_them():
    imgs = varied_images(24)
    p = Pipeline.parse("patches,blend", steps=3, seed=5)
    frames, recipe = p.run(imgs[0], key="s", partners=_Fixed(imgs[1:4]))
    assert recipe["partners"]["0"] == [
        {"key": f"p{i}", "sha256": image_sha256(to_uint8(imgs[1 + i]))} for i in range(3)
    ]
    assert recipe["partners"]["1"] == [{"key": "p0", "sha256": image_sha256(to_uint8(imgs[1]))}]
    lookup = {f"p{i}": to_uint8(imgs[1 + i]) for i in range(3)}
    again = replay(json.loads(json.dumps(recipe)), frames[0], partners=lookup)
    assert [f.tobytes() for f in again] == [f.tobytes() for f in frames]
    with pytest.raises(DegradeError, match="replay needs partners="):
        replay(recipe, frames[0])
    wrong = dict(lookup, p1=to_uint8(imgs[5]))
    with pytest.raises(DegradeError, match="partner image 'p1' of 's' differs from the one recorded"):
        replay(recipe, frames[0], partners=wrong)
    with pytest.raises(DegradeError, match="partner image 'p2' of 's' not found"):
        replay(recipe, frames[0], partners={k: v for k, v in lookup.items() if k != "p2"})


def test_build_patches_scramble_replays_in_another_process(tmp_path):
    out = tmp_path / "ps"
    res = build(None, ops="patches,scramble", steps=4, limit=30, size=24, out=out, workers=2,
                shard_size=8, progress=False, log=lambda s: None)
    assert res.manifest["samples"] + len(res.manifest["skipped"]) == 30
    recs = _records(out)
    by_key = {r["key"]: r for r in recs}
    for r in recs:
        parts = r["recipe"]["partners"]["0"]
        assert len(parts) == 3
        for e in parts:
            assert e["key"] != r["key"]
            assert by_key[e["key"]]["split"] == r["split"], "partners come from the same split"
    report = verify(out, regenerate=10)
    assert report.ok and report.regenerated == 10, str(report)
    # Another process, another worker count: the same bytes.
    code = (
        "from degrade import build; "
        f"r = build(None, ops='patches,scramble', steps=4, limit=30, size=24, out={str(tmp_path / 'again')!r}, "
        "workers=1, shard_size=8, progress=False, log=lambda s: None); "
        "print([s['sha256'] for s in r.manifest['shards']])"
    )
    shas = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shas.strip() == str([s["sha256"] for s in res.manifest["shards"]])


def test_blend_mislabeled_picks_another_label(tmp_path):
    src = tmp_path / "src"
    for label, base in (("cats", 0), ("dogs", 3), ("owls", 5)):
        (src / label).mkdir(parents=True)
        for i in range(3):
            img = varied_images(20)[(base + i) % 8]
            Image.fromarray(to_uint8(img)).save(src / label / f"{i}.png")
    out = tmp_path / "blend"
    res = build([str(src)], ops="blend:mislabeled=true", steps=3, size=16, out=out, workers=1,
                split="train=1", progress=False, log=lambda s: None)
    assert res.manifest["samples"] == 9 and res.manifest["skipped"] == []
    recs = _records(out)
    label = {r["key"]: r["label"] for r in recs}
    for r in recs:
        (partner,) = r["recipe"]["partners"]["0"]
        assert label[partner["key"]] != r["label"]
    assert verify(out, regenerate=9).ok


def test_mislabeled_without_other_labels_is_a_recorded_skip(tmp_path):
    src = tmp_path / "one" / "cats"
    src.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(to_uint8(varied_images(16)[i])).save(src / f"{i}.png")
    res = build([str(tmp_path / "one")], ops="blend:mislabeled=true", steps=2, size=16,
                out=tmp_path / "o", workers=1, split="train=1", progress=False, log=lambda s: None)
    assert res.manifest["samples"] == 0
    reasons = [s["reason"] for s in res.manifest["skipped"]]
    assert len(reasons) == 2 and all("with another label" in r and "found none" in r for r in reasons)


def test_partner_ops_are_listed():
    assert get_op("animorphosis").name == "blend"
    assert get_op("patches").partners == 3 and "partners" in get_op("patches").needs
