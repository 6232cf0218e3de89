"""Samplers and baselines: with an oracle model (the true x0) direct, Algorithm 1 and
Algorithm 2 give back the clean frame exactly; D replays each sample's forward process."""

from __future__ import annotations

import numpy as np
import pytest

from degrade import DegradeError, Pipeline
from degrade.image import to_float, to_uint8
from degrade.metrics import psnr
from degrade.sampling import (
    BASELINES,
    Degrader,
    ModelRestorer,
    alg1,
    alg2,
    apply_baseline,
    baselines_for,
    direct,
    fresh_recipe,
    rollout,
    run_sampler,
    tune_baseline,
)
from tests.conftest import varied_images

T = 6


def _sequences(spec: str, mode: str = "absolute", n: int = 4, size: int = 24, partners=None):
    pipe = Pipeline.parse(spec, steps=T, mode=mode, seed=3)
    seqs = [pipe.run_encoded(img, key=f"s{i}", partners=partners) for i, img in enumerate(varied_images(size)[:n])]
    frames = np.stack([[to_float(f) for f in s.frames] for s in seqs])  # n, T+1, H, W, C
    return seqs, frames


def _oracle(clean: np.ndarray):
    calls = []

    def restore(x, k, t):
        calls.append(k)
        assert x.shape == clean.shape and len(t) == len(x)
        return clean.copy()

    return restore, calls


CASES = [("blur", "absolute"), ("blur", "chained"), ("noise", "absolute"), ("jpeg", "absolute"),
         ("pixelate", "absolute"), ("blur,noise", "chained"), ("blur,jpeg", "choice")]


@pytest.mark.parametrize(("spec", "mode"), CASES)
def test_degrader_replays_the_stored_frames(spec, mode):
    seqs, frames = _sequences(spec, mode)
    for seq, fr in zip(seqs, frames, strict=True):
        d = Degrader(seq.recipe)
        assert d.steps == T and d.mode == mode
        for s in range(T + 1):
            assert np.array_equal(d(fr[0], s), fr[s]), f"D(x0, {s}) differs from the stored frame"
        for s in range(1, T + 1):
            prev, cur = d.pair(fr[0], s)
            assert np.array_equal(prev, fr[s - 1]) and np.array_equal(cur, fr[s])


@pytest.mark.parametrize(("spec", "mode"), CASES)
def test_oracle_samplers_invert_exactly(spec, mode):
    seqs, frames = _sequences(spec, mode)
    clean = frames[:, 0]
    degs = [Degrader(s.recipe) for s in seqs]
    for k in (1, 3, T):
        xk = frames[:, k]
        restore, calls = _oracle(clean)
        out = alg2(restore, xk, k, degs)
        assert np.array_equal(out.x0, clean), f"alg2 from k={k} did not give back x0"
        assert out.calls == k and calls == list(range(k, 0, -1))
        assert np.array_equal(alg1(_oracle(clean)[0], xk, k, degs).x0, clean)
        res = direct(_oracle(clean)[0], xk, k, degs)
        assert np.array_equal(res.x0, clean) and res.calls == 1
        assert out.x0.dtype == np.float32 and out.seconds >= 0


def test_alg2_with_an_imperfect_model_follows_the_formula():
    # An identity "model" (x̂0 = x_s): one step of Algorithm 2 from k=1 is x1 - D(x1, 1) + x1,
    # and Algorithm 1 returns x̂0 = x1.
    seqs, frames = _sequences("blur")
    degs = [Degrader(s.recipe) for s in seqs]
    x1 = frames[:, 1]
    ident = lambda x, k, t: x  # noqa: E731
    expect = np.clip(x1 - np.stack([d(x, 1) for d, x in zip(degs, x1, strict=True)]) + x1, 0, 1)
    assert np.array_equal(alg2(ident, x1, 1, degs).x0, expect)
    assert np.array_equal(alg1(ident, x1, 1, degs).x0, x1)
    # From k = T the two algorithms differ, and Algorithm 2 sharpens (beats the input) here.
    a1 = alg1(ident, frames[:, T], T, degs).x0
    a2 = alg2(ident, frames[:, T], T, degs).x0
    assert not np.array_equal(a1, a2)
    assert np.mean([psnr(o, c) for o, c in zip(a2, frames[:, 0], strict=True)]) > np.mean(
        [psnr(o, c) for o, c in zip(frames[:, T], frames[:, 0], strict=True)])


def test_rollout_with_a_prev_oracle_reaches_x0():
    _, frames = _sequences("blur", "chained")
    steps_seen = []

    def prev_oracle(x, k, t):
        steps_seen.append(k)
        assert np.array_equal(x, frames[:, k])  # it is fed its own previous output
        return frames[:, k - 1]

    out = rollout(prev_oracle, frames[:, T], T)
    assert np.array_equal(out.x0, frames[:, 0]) and out.calls == T
    assert steps_seen == list(range(T, 0, -1))
    assert run_sampler("rollout", prev_oracle, frames[:, 2], 2).calls == 2


def test_samplers_pass_the_recipes_severities_and_check_their_inputs():
    seqs, frames = _sequences("noise")
    degs = [Degrader(s.recipe) for s in seqs]
    seen = []
    direct(lambda x, k, t: (seen.append(t.copy()), x)[1], frames[:, 4], 4, degs)
    assert np.allclose(seen[0], [s.recipe["steps"][3]["t"] for s in seqs])
    with pytest.raises(DegradeError, match="one Degrader"):
        alg2(lambda x, k, t: x, frames[:, 2], 2, degs[:2])
    with pytest.raises(DegradeError, match="B×H×W×C"):
        direct(lambda x, k, t: x, frames[0, 2], 2)
    with pytest.raises(DegradeError, match="whole number"):
        direct(lambda x, k, t: x, frames[:, 2], 0)
    with pytest.raises(DegradeError, match="returned shape"):
        direct(lambda x, k, t: x[:1], frames[:, 2], 2)
    with pytest.raises(DegradeError, match="unknown sampler"):
        run_sampler("ddim", lambda x, k, t: x, frames[:, 2], 2)
    with pytest.raises(DegradeError, match="beyond"):
        degs[0](frames[0, 0], T + 1)


def test_partner_ops_replay_with_the_same_partners():
    imgs = varied_images(24)

    class Fixed:
        def choose(self, *, seed, key, position, op, count, params, shape):
            return [(f"p{i}", to_uint8(imgs[4 + i])) for i in range(count)]

    seqs, frames = _sequences("blend", n=2, partners=Fixed())
    lookup = {f"p{i}": to_uint8(imgs[4 + i]) for i in range(4)}
    d = Degrader(seqs[0].recipe, lookup)
    for s in range(T + 1):
        assert np.array_equal(d(frames[0, 0], s), frames[0, s])
    out = alg2(_oracle(frames[:, 0])[0], frames[:, T], T, [Degrader(s.recipe, lookup) for s in seqs])
    assert np.array_equal(out.x0, frames[:, 0])
    with pytest.raises(DegradeError, match="needs partners="):
        Degrader(seqs[0].recipe)
    with pytest.raises(DegradeError, match="differs from the one recorded"):
        Degrader(seqs[0].recipe, {"p0": to_uint8(imgs[7])})


def test_fresh_recipe_draws_another_field_for_stochastic_ops_only():
    seqs, frames = _sequences("noise", n=1)
    d, f = Degrader(seqs[0].recipe), Degrader(fresh_recipe(seqs[0].recipe))
    assert d.stochastic and not np.array_equal(d(frames[0, 0], T), f(frames[0, 0], T))
    seqs, frames = _sequences("blur", n=1)
    d, f = Degrader(seqs[0].recipe), Degrader(fresh_recipe(seqs[0].recipe))
    assert not d.stochastic and np.array_equal(d(frames[0, 0], T), f(frames[0, 0], T))


def test_external_sequences_have_no_forward_process():
    from degrade.pipeline import ExternalPipeline

    seq = ExternalPipeline(steps=2).from_frames([np.zeros((4, 4, 3), np.uint8)] * 3, key="e")
    with pytest.raises(DegradeError, match="external sequence"):
        Degrader(seq.recipe)


def test_model_restorer_feeds_k_over_T_or_t():
    torch = pytest.importorskip("torch")
    from degrade.models import make_model

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, s):
            seen.append(s.clone())
            return x * 0.5

    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    r = ModelRestorer(Spy(), steps=10, batch_size=2)
    out = r(x, 4, np.full(5, 0.123, np.float32))
    np.testing.assert_allclose(out, x * 0.5, rtol=1e-6)
    assert r.calls == 3 and torch.allclose(torch.cat(seen), torch.full((5,), 0.4))
    seen.clear()
    ModelRestorer(Spy(), steps=10, step_input="t")(x, 4, np.full(5, 0.123, np.float32))
    assert torch.allclose(torch.cat(seen), torch.full((5,), 0.123))
    with pytest.raises(DegradeError, match="severity t"):
        ModelRestorer(Spy(), steps=10, step_input="t")(x, 4, np.full(5, np.nan, np.float32))
    # An untrained UNet is the identity (zero-initialised residual): direct returns x_k.
    ident = ModelRestorer(make_model(base=8, mults=(1, 2)), steps=10)
    np.testing.assert_allclose(direct(ident, x, 3).x0, x, atol=1e-6)


def test_baselines_beat_the_input_on_their_family():
    imgs = varied_images(32)
    blurred = [to_float(to_uint8(np.asarray(__import__("cv2").GaussianBlur(i, (0, 0), 1.2)).reshape(i.shape)))
               for i in imgs]
    p = tune_baseline("unsharp", blurred[:4], imgs[:4])
    assert p["amount"] > 0
    gain = [psnr(apply_baseline("unsharp", b, p), c) - psnr(b, c) for b, c in zip(blurred[4:], imgs[4:], strict=True)]
    assert np.mean(gain) > 0.5
    rng = np.random.default_rng(0)
    noisy = [np.clip(i + rng.normal(0, 0.1, i.shape), 0, 1).astype(np.float32) for i in imgs]
    for name in ("nlmeans", "median"):
        p = tune_baseline(name, noisy[:4], imgs[:4])
        gain = [psnr(apply_baseline(name, n, p), c) - psnr(n, c) for n, c in zip(noisy[4:], imgs[4:], strict=True)]
        assert np.mean(gain) > 1.0, name
    # On clean pairs the identity (first in every grid) wins.
    for name, (_, grid) in BASELINES.items():
        assert tune_baseline(name, imgs[:2], imgs[:2]) == grid[0]
        assert np.array_equal(apply_baseline(name, imgs[0], grid[0]), imgs[0])
    gray = varied_images(16, channels=1)[0]
    assert apply_baseline("nlmeans", gray, {"h": 10.0}).shape == gray.shape
    assert baselines_for(["noise"]) == ["nlmeans", "median"]
    assert baselines_for(["pixelate", "blur"]) == ["unsharp", "smooth"]
    assert baselines_for(["brightness"]) == []
    with pytest.raises(DegradeError, match="unknown baseline"):
        apply_baseline("bm3d", imgs[0], {})
