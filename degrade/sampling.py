"""Reverse processes and classical baselines: from a degraded frame x_k back to x_0.

Samplers (Bansal et al. 2022, "Cold Diffusion"; notation of docs/REFERENCES)

- ``direct``: one network call, x̂0 = R(x_k, k).
- ``alg1`` (Algorithm 1): for s = k … 1: x̂0 = R(x_s, s); x_{s-1} = D(x̂0, s-1).
- ``alg2`` (Algorithm 2): for s = k … 1: x̂0 = R(x_s, s);
  x_{s-1} = x_s − D(x̂0, s) + D(x̂0, s-1). The difference of two degradations of the same
  estimate cancels the estimate's error to first order, which is why Algorithm 2 works for
  "cold" (deterministic) degradations where Algorithm 1 drifts.
- ``rollout``: for a model trained with ``target="prev"`` (x_{k-1} from x_k): apply it k
  times, x_{s-1} = R(x_s, s).

D(x, s) is the sample's own forward process: its recipe replayed on x up to step s — the
same ops and params, the same random field (noise texture, motion path, …), the same
partner images (:class:`Degrader`). D(x, 0) = x. For ``absolute`` pipelines only step s is
run; for ``chained``/``choice`` ones steps 1 … s are (the cost of a sampler step grows with s).
Frames out of D are what the dataset stores (uint8-quantised), so with an oracle model (one
that returns the true x0) ``alg2`` gives back the clean frame exactly, and so do ``alg1``
and ``direct``; the tests check it.

A caveat that the evaluator reports: for a *stochastic* op (``op.stochastic``: noise and
the like), D(x̂0, s) replays the sample's own noise realisation, which a restorer never has
in practice. For additive noise x_s − D(x̂0, s) ≈ x0 − x̂0 whatever x̂0 is, so ``alg2``
then recovers x0 almost exactly: an oracle bound, not a restoration result. The evaluator
also runs ``alg2_fresh``: the same recipe with a fresh key, i.e. another draw of the field —
what :func:`degrade.restore.restore` can do on a user's image.

Models are given to the samplers as a callable ``restore(x, k, t) -> array``: ``x`` a
B×H×W×C float32 batch of frames at step k, ``t`` their severities (B floats); it returns
x̂0 (or x̂_{k-1} for ``rollout``). :class:`ModelRestorer` wraps a trained network;
a test's oracle is a lambda.

Baselines (no learning; their parameters are tuned per step on held-out images by
:func:`tune_baseline`, over a grid that contains the identity, so on the tuning images a
baseline is never worse than the degraded input)

- ``unsharp`` for the ``blur`` family: x + a·(x − G_r(x)) over radius r and amount a.
- ``nlmeans`` for the ``noise`` family: OpenCV's non-local means (``fastNlMeansDenoising``
  [``Colored``]) over the filter strength h; and ``median``: a median filter of size 1, 3, 5.
- ``smooth`` for ``compression`` and ``sampling`` (JPEG, pixelate, …): a Gaussian blur over
  σ — the simplest deblocking.

Examples
--------
>>> import numpy as np
>>> from degrade.pipeline import Pipeline
>>> img = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
>>> seq = Pipeline.parse("blur", steps=4).run_encoded(img, key="a")
>>> clean = seq.frames[0].astype(np.float32)[None] / 255
>>> x4 = seq.frames[4].astype(np.float32)[None] / 255
>>> oracle = lambda x, k, t: clean                   # a perfect restorer
>>> out = alg2(oracle, x4, 4, [Degrader(seq.recipe)])
>>> bool(np.array_equal(out.x0, clean)), out.calls
(True, 4)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from degrade.errors import DegradeError
from degrade.image import to_float, to_uint8
from degrade.metrics import psnr
from degrade.pipeline import check_recipe, execute, image_sha256
from degrade.registry import get_op

__all__ = [
    "BASELINES",
    "SAMPLERS",
    "Degrader",
    "ModelRestorer",
    "Restore",
    "SamplerResult",
    "alg1",
    "alg2",
    "apply_baseline",
    "baselines_for",
    "direct",
    "fresh_recipe",
    "rollout",
    "run_sampler",
    "tune_baseline",
]

#: Sampler names, as the evaluator and ``degrade restore --sampler`` call them.
SAMPLERS = ("direct", "alg1", "alg2", "rollout")

#: restore(x: B×H×W×C float32, k: int, t: B floats) -> B×H×W×C (x̂0, or x̂_{k-1} for rollout).
Restore = Callable[[np.ndarray, int, np.ndarray], np.ndarray]


# -- the forward process of one sample -------------------------------------------------------


def fresh_recipe(recipe: Mapping[str, Any], salt: str = "fresh") -> dict[str, Any]:
    """The same recipe under another key: the same ops and params, another random field.

    Examples
    --------
    >>> fresh_recipe({"key": "a", "seed": 0})["key"]
    'a-fresh'
    """
    out = copy.deepcopy(dict(recipe))
    out["key"] = f"{recipe['key']}-{salt}"
    return out


class Degrader:
    """D(x, s) for one sample: its recipe replayed on ``x`` up to step s.

    Parameters
    ----------
    recipe : dict
        The sample's recipe (from its shard, or :meth:`degrade.Pipeline.recipe`).
    partners : mapping or callable, optional
        For recipes that mix in other images: key → that sample's clean frame, as for
        :func:`degrade.pipeline.replay_encoded` (the recorded checksums are checked).

    Examples
    --------
    >>> from degrade.pipeline import Pipeline
    >>> img = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    >>> seq = Pipeline.parse("noise", steps=3).run_encoded(img, key="a")
    >>> d = Degrader(seq.recipe)
    >>> x0 = seq.frames[0].astype(np.float32) / 255
    >>> bool(np.array_equal(d(x0, 2), seq.frames[2].astype(np.float32) / 255))
    True
    """

    def __init__(self, recipe: Mapping[str, Any],
                 partners: Mapping[str, np.ndarray] | Callable[[str], np.ndarray] | None = None) -> None:
        if recipe.get("external"):
            raise DegradeError(
                f"'{recipe.get('key')}' is an external sequence: there is no forward process to "
                "replay, so only direct restoration (and rollout) can run on it"
            )
        check_recipe(recipe)  # once; the replays below run sub-recipes through execute()
        self.recipe = dict(recipe)
        self.mode = recipe["pipeline"]["mode"]
        self.steps = len(recipe["steps"])
        self.ts = [0.0] + [float(s["t"]) for s in recipe["steps"]]
        self.stochastic = any(get_op(e["op"]).stochastic for e in recipe.get("ops", []))
        self._context = self._partner_context(partners)

    def _partner_context(self, partners: Any) -> Callable[[int, Any], Mapping[str, Any]] | None:
        """The same partner images as the build (checked against the recorded sha256)."""
        entries = self.recipe.get("partners") or {}
        if not entries:
            return None
        key = self.recipe["key"]
        if partners is None:
            raise DegradeError(f"the recipe of '{key}' mixes in other images; D needs partners= "
                               "(key -> that sample's clean frame)")
        shape = tuple(self.recipe["shape"])
        images: dict[int, list[np.ndarray]] = {}
        for pos, items in entries.items():
            got = []
            for e in items:
                try:
                    im = partners[e["key"]] if isinstance(partners, Mapping) else partners(e["key"])
                except KeyError:
                    raise DegradeError(f"partner image '{e['key']}' of '{key}' not found") from None
                im = np.asarray(im)
                im = im[:, :, None] if im.ndim == 2 else im
                if im.dtype != np.uint8:
                    im = to_uint8(np.clip(im, 0.0, 1.0))
                if image_sha256(im) != e["sha256"]:
                    raise DegradeError(f"partner image '{e['key']}' of '{key}' differs from the one recorded")
                if im.shape[:2] != shape[:2]:
                    raise DegradeError(f"partner image '{e['key']}' has shape {im.shape}, the sample {shape}")
                if im.shape[2] != shape[2]:  # as the builder fits a partner to the sample's channels
                    im = (np.round(im.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
                          if shape[2] == 1 else np.repeat(im, 3, axis=2))
                got.append(to_float(im))
            images[int(pos)] = got

        def context(position: int, op: Any) -> Mapping[str, Any]:
            return {"partners": images[position]} if position in images else {}

        return context

    def _frames(self, x0: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
        ks = sorted({k for k in ks if k > 0})
        if not ks:
            return {}
        for k in ks:
            if k > self.steps:
                raise DegradeError(f"step {k} is beyond the recipe's {self.steps} steps")
        clean = to_uint8(np.clip(x0, 0.0, 1.0))
        if list(clean.shape) != list(self.recipe["shape"]):
            raise DegradeError(f"image has shape {list(clean.shape)}, the recipe {self.recipe['shape']}")
        steps = self.recipe["steps"]
        # Absolute mode: only the asked steps' frames are made (see execute's ``only``).
        frames, _ = execute(clean, dict(self.recipe, steps=steps[: ks[-1]]), context=self._context,
                            only=ks if self.mode == "absolute" else None)
        return {k: to_float(frames[k]) for k in ks}

    def __call__(self, x0: np.ndarray, s: int) -> np.ndarray:
        """D(x0, s): float32 H×W×C in [0, 1]; D(x0, 0) = x0 (clipped)."""
        if s == 0:
            return np.clip(np.asarray(x0, dtype=np.float32), 0.0, 1.0)
        return self._frames(x0, [s])[s]

    def pair(self, x0: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
        """(D(x0, s-1), D(x0, s)) from one replay."""
        got = self._frames(x0, [s - 1, s])
        prev = got[s - 1] if s > 1 else np.clip(np.asarray(x0, dtype=np.float32), 0.0, 1.0)
        return prev, got[s]


# -- samplers ---------------------------------------------------------------------------------


@dataclass
class SamplerResult:
    """A batch restored by one sampler.

    Attributes
    ----------
    x0 : ndarray
        B×H×W×C float32 in [0, 1].
    calls : int
        Network calls per image.
    seconds : float
        Wall-clock seconds for the whole batch.
    """

    x0: np.ndarray
    calls: int
    seconds: float


def _ts(degraders: Sequence[Degrader] | None, s: int, n: int, ts: np.ndarray | None) -> np.ndarray:
    if ts is not None:
        return np.asarray(ts, dtype=np.float32)[:, s] if np.ndim(ts) == 2 else np.full(n, float(ts[s]), np.float32)
    if degraders:
        return np.array([d.ts[s] for d in degraders], dtype=np.float32)
    return np.full(n, np.nan, np.float32)


def _check(x: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise DegradeError(f"samplers take a B×H×W×C batch, got shape {x.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DegradeError(f"the step k must be a whole number ≥ 1, got {k!r}")
    return x


def _call(restore: Restore, x: np.ndarray, s: int, t: np.ndarray) -> np.ndarray:
    out = np.asarray(restore(x, s, t), dtype=np.float32)
    if out.shape != x.shape:
        raise DegradeError(f"the model returned shape {out.shape} for input {x.shape}")
    return np.clip(out, 0.0, 1.0)


def direct(restore: Restore, x: np.ndarray, k: int, degraders: Sequence[Degrader] | None = None,
           *, ts: np.ndarray | None = None) -> SamplerResult:
    """One network call: x̂0 = R(x_k, k).

    Examples
    --------
    >>> direct(lambda x, k, t: x * 0, np.ones((1, 2, 2, 1), np.float32), 3).x0.max()
    np.float32(0.0)
    """
    x = _check(x, k)
    t0 = time.perf_counter()
    out = _call(restore, x, k, _ts(degraders, k, len(x), ts))
    return SamplerResult(out, 1, time.perf_counter() - t0)


def _need(degraders: Sequence[Degrader] | None, n: int, name: str) -> Sequence[Degrader]:
    if degraders is None or len(degraders) != n:
        raise DegradeError(f"{name} needs one Degrader (the forward process) per image")
    return degraders


def alg1(restore: Restore, x: np.ndarray, k: int, degraders: Sequence[Degrader],
         *, ts: np.ndarray | None = None) -> SamplerResult:
    """Cold Diffusion Algorithm 1: x̂0 = R(x_s, s); x_{s-1} = D(x̂0, s-1), for s = k … 1."""
    x = _check(x, k)
    degs = _need(degraders, len(x), "alg1")
    t0 = time.perf_counter()
    xs = x
    for s in range(k, 0, -1):
        x0 = _call(restore, xs, s, _ts(degs, s, len(x), ts))
        xs = x0 if s == 1 else np.stack([d(e, s - 1) for d, e in zip(degs, x0, strict=True)])
    return SamplerResult(xs, k, time.perf_counter() - t0)


def alg2(restore: Restore, x: np.ndarray, k: int, degraders: Sequence[Degrader],
         *, ts: np.ndarray | None = None) -> SamplerResult:
    """Cold Diffusion Algorithm 2: x_{s-1} = x_s − D(x̂0, s) + D(x̂0, s-1), for s = k … 1."""
    x = _check(x, k)
    degs = _need(degraders, len(x), "alg2")
    t0 = time.perf_counter()
    xs = x
    for s in range(k, 0, -1):
        x0 = _call(restore, xs, s, _ts(degs, s, len(x), ts))
        pairs = [d.pair(e, s) for d, e in zip(degs, x0, strict=True)]
        prev = np.stack([p for p, _ in pairs])
        cur = np.stack([c for _, c in pairs])
        xs = np.clip(xs - cur + prev, 0.0, 1.0)
    return SamplerResult(xs.astype(np.float32), k, time.perf_counter() - t0)


def rollout(restore: Restore, x: np.ndarray, k: int, degraders: Sequence[Degrader] | None = None,
            *, ts: np.ndarray | None = None) -> SamplerResult:
    """Step-model rollout: x_{s-1} = R(x_s, s) for s = k … 1 (a ``target="prev"`` model)."""
    x = _check(x, k)
    t0 = time.perf_counter()
    xs = x
    for s in range(k, 0, -1):
        xs = _call(restore, xs, s, _ts(degraders, s, len(x), ts))
    return SamplerResult(xs, k, time.perf_counter() - t0)


_SAMPLER_FUNCS = {"direct": direct, "alg1": alg1, "alg2": alg2, "rollout": rollout}


def run_sampler(name: str, restore: Restore, x: np.ndarray, k: int,
                degraders: Sequence[Degrader] | None = None, *, ts: np.ndarray | None = None) -> SamplerResult:
    """Run the sampler called ``name`` (one of :data:`SAMPLERS`).

    Examples
    --------
    >>> run_sampler("rollout", lambda x, k, t: x, np.zeros((1, 2, 2, 1), np.float32), 2).calls
    2
    """
    if name not in _SAMPLER_FUNCS:
        raise DegradeError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return _SAMPLER_FUNCS[name](restore, x, k, degraders, ts=ts)


# -- a trained network as a Restore callable ----------------------------------------------------


class ModelRestorer:
    """Wrap a trained network (``forward(x, s)``, B×C×H×W) as a :data:`Restore` callable.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; moved to ``device``.
    steps : int
        T of the data it was trained on (s = k/T).
    step_input : {"k/T", "t"}
        What the model was told in training (``TrainConfig.step_input``); with ``"t"`` the
        severities passed by the samplers are used.
    device : str
    batch_size : int
        Images per forward pass.

    Attributes
    ----------
    calls : int
        Batched forward passes so far.

    Examples
    --------
    >>> from degrade.models import make_model
    >>> r = ModelRestorer(make_model(base=8, mults=(1, 2)), steps=4)
    >>> r(np.zeros((2, 8, 8, 3), np.float32), 2, np.zeros(2)).shape
    (2, 8, 8, 3)
    """

    def __init__(self, model: Any, *, steps: int, step_input: str = "k/T", device: str = "cpu",
                 batch_size: int = 64) -> None:
        if step_input not in ("k/T", "t"):
            raise DegradeError(f"step_input must be 'k/T' or 't', got {step_input!r}")
        self.model = model.to(device).eval()
        self.steps = int(steps)
        self.step_input = step_input
        self.device = device
        self.batch_size = int(batch_size)
        self.calls = 0

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], *, steps: int, device: str = "cpu",
                        batch_size: int = 64) -> ModelRestorer:
        """Build from a checkpoint dict (:func:`degrade.train.load_checkpoint`), EMA weights."""
        from degrade.train import model_from_checkpoint

        model = model_from_checkpoint(dict(ckpt))
        return cls(model, steps=steps, step_input=ckpt["config"].get("step_input", "k/T"),
                   device=device, batch_size=batch_size)

    def __call__(self, x: np.ndarray, k: int, t: np.ndarray) -> np.ndarray:
        import torch

        if self.step_input == "t":
            s_all = np.asarray(t, dtype=np.float32)
            if np.isnan(s_all).any():
                raise DegradeError("this model takes the severity t; the samplers were given none")
        else:
            s_all = np.full(len(x), k / self.steps, np.float32)
        outs = []
        with torch.no_grad():
            for i in range(0, len(x), self.batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[i : i + self.batch_size].transpose(0, 3, 1, 2)))
                sb = torch.from_numpy(s_all[i : i + self.batch_size])
                y = self.model(xb.to(self.device), sb.to(self.device))
                outs.append(y.float().cpu().numpy().transpose(0, 2, 3, 1))
                self.calls += 1
        return np.concatenate(outs).astype(np.float32)


# -- classical baselines -----------------------------------------------------------------------

#: Baseline name → (op families it is for, parameter grid). Every grid holds the identity.
BASELINES: dict[str, tuple[tuple[str, ...], list[dict[str, float]]]] = {
    "unsharp": (("blur",), [{"radius": 0.0, "amount": 0.0}] + [
        {"radius": r, "amount": a} for r in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
        for a in (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)]),
    "nlmeans": (("noise",), [{"h": 0.0}] + [{"h": float(h)} for h in (4, 8, 12, 18, 25, 35, 50, 70)]),
    "median": (("noise",), [{"ksize": 1.0}, {"ksize": 3.0}, {"ksize": 5.0}]),
    "smooth": (("compression", "sampling"), [{"sigma": 0.0}] + [
        {"sigma": s} for s in (0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0)]),
}


def baselines_for(ops: Sequence[str]) -> list[str]:
    """The baselines that apply to a pipeline's ops (by op family), in :data:`BASELINES` order.

    Examples
    --------
    >>> baselines_for(["blur", "jpeg"])
    ['unsharp', 'smooth']
    """
    families = {get_op(o).family for o in ops}
    return [name for name, (fams, _) in BASELINES.items() if families & set(fams)]


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    out = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return out.reshape(x.shape)


def apply_baseline(name: str, image: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
    """Run baseline ``name`` with ``params`` on one H×W×C float32 image in [0, 1].

    Examples
    --------
    >>> img = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    >>> bool(np.array_equal(apply_baseline("unsharp", img, {"radius": 0.0, "amount": 0.0}), img))
    True
    """
    x = np.ascontiguousarray(image, dtype=np.float32)
    if name == "unsharp":
        if params["amount"] == 0 or params["radius"] == 0:
            return x.copy()
        out = x + float(params["amount"]) * (x - _gauss(x, float(params["radius"])))
    elif name == "smooth":
        if params["sigma"] == 0:
            return x.copy()
        out = _gauss(x, float(params["sigma"]))
    elif name == "median":
        ks = int(params["ksize"])
        if ks <= 1:
            return x.copy()
        out = to_float(cv2.medianBlur(to_uint8(x), ks).reshape(x.shape))
    elif name == "nlmeans":
        h = float(params["h"])
        if h == 0:
            return x.copy()
        u8 = to_uint8(x)
        if x.shape[2] == 3:
            out = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21)
        else:
            out = cv2.fastNlMeansDenoising(u8[:, :, 0], None, h, 7, 21)[:, :, None]
        out = to_float(out)
    else:
        raise DegradeError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def tune_baseline(name: str, degraded: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> dict[str, float]:
    """The grid point of baseline ``name`` with the best mean PSNR on (degraded, clean) pairs.

    The grid contains the identity, so on these pairs the tuned baseline is never worse
    than the degraded input. Ties go to the first grid point (the identity first).

    Examples
    --------
    >>> img = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    >>> tune_baseline("smooth", [img], [img])
    {'sigma': 0.0}
    """
    if name not in BASELINES:
        raise DegradeError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    if not degraded:
        raise DegradeError("tune_baseline needs at least one image pair")
    best, best_score = None, -np.inf
    for params in BASELINES[name][1]:
        vals = [min(psnr(apply_baseline(name, d, params), c), 100.0) for d, c in zip(degraded, clean, strict=True)]
        score = float(np.mean(vals))
        if score > best_score + 1e-9:
            best, best_score = params, score
    return dict(best or {})
