"""Calibrated schedules: every step degrades the images by the same amount.

Raw parameter curves rarely spend damage evenly: a linear blur schedule starting at σ = 0.3
leaves 8-bit images unchanged for its first steps, and on small images a higher JPEG
quality is sometimes *worse* than a lower one. ``--schedule calibrated`` fixes both:

1. **Equal steps on average.** On a calibration sample (``samples`` crops of the built-in
   sample pool at ``size`` px, chosen with the pipeline's seed and recorded), the mean
   metric m(t) of the pipeline's frames against the clean images is measured, and
   t_1 … t_T are chosen so that m(t_k) falls in equal steps from the clean images' value
   to its value at full severity (absolute mode: m(1); chained and choice modes: the end of
   the linear schedule's sequence, each step found in turn from the previous frames).
   PSNR (default) counts a frame as at most :data:`PSNR_CAP` dB (8-bit rounding noise), so
   an unchanged frame has a finite value; SSIM is selectable (``calibrated:ssim``).
   When even the gentlest setting costs more than one equal step (JPEG at quality 100),
   step 1 takes it and the remaining steps share the rest equally; a step whose mean
   would not drop moves to the next stronger setting that makes it drop.
2. **Monotone per image.** At build time each sample's sequence is checked: where a step
   would bring an image *closer* to its clean version than the step before (JPEG on small
   images, aliasing, non-monotone level tables), that step takes the nearest stronger
   setting (larger t) that is at least as damaging; if none exists the previous frame is
   held. The parameters used are written into the sample's recipe (``t_params`` or
   ``hold`` mark the adjusted steps), so replay needs no recalibration.

The result is an explicit t list stored in the pipeline with a record of the calibration
(metric, sample keys, size, seed), so manifests and recipes replay without it.

Syntax: ``calibrated[:psnr|:ssim][:samples=N][:size=PX]``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from degrade.errors import DegradeError
from degrade.image import to_float, to_uint8
from degrade.metrics import psnr, ssim
from degrade.registry import Op, get_op
from degrade.seeding import rng_for

__all__ = [
    "METRICS",
    "PSNR_CAP",
    "Calibration",
    "calibrate",
    "calibrated_schedule",
    "calibration_images",
    "monotone_execute",
    "parse_calibrated",
    "plot_calibration",
]

#: PSNR of uniform 8-bit rounding noise, 10·log10(12·255²) dB: an unchanged frame, and any
#: frame closer to the clean image than that, counts as this much.
PSNR_CAP = 10.0 * math.log10(12.0 * 255.0**2)
METRICS = ("psnr", "ssim")
#: Evaluation grid and bisection depth used to invert m(t).
_GRID = 48
_BISECT = 7
#: Candidate severities tried above t_k when a step must be made more damaging.
_SEARCH = 128
#: The weakest positive severity probed: what the gentlest setting of the ops costs.
_LEAST = 1e-4
_EPS = 1e-9


# -- parsing -------------------------------------------------------------------------------


def parse_calibrated(spec: str) -> dict[str, Any]:
    """Parse ``calibrated[:psnr|:ssim][:samples=N][:size=PX]``.

    Examples
    --------
    >>> parse_calibrated("calibrated:ssim:size=32")
    {'metric': 'ssim', 'samples': 16, 'size': 32}
    """
    parts = [p.strip() for p in str(spec).split(":")]
    if parts[0] != "calibrated":
        raise DegradeError(f"not a calibrated schedule: '{spec}'")
    out: dict[str, Any] = {"metric": "psnr", "samples": 16, "size": 64}
    for p in parts[1:]:
        if p in METRICS:
            out["metric"] = p
            continue
        k, eq, v = p.partition("=")
        if not eq or k not in ("samples", "size"):
            raise DegradeError(
                f"schedule '{spec}': options are psnr, ssim, samples=N, size=PX; got '{p}'"
            )
        try:
            n = int(v)
        except ValueError:
            n = 0
        if n < (1 if k == "samples" else 8):
            raise DegradeError(f"schedule '{spec}': {k} must be a whole number ≥ {1 if k == 'samples' else 8}")
        out[k] = n
    return out


# -- the calibration sample ----------------------------------------------------------------


def calibration_images(samples: int = 16, size: int = 64, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Return ``samples`` (key, uint8 image) pairs from the built-in sample pool, seeded.

    The crops are drawn without replacement from the first 1000 pool samples with
    ``rng_for(seed, "calibration")`` and resized to ``size`` px, as a build would.

    Examples
    --------
    >>> [k for k, _ in calibration_images(2, 16)]
    ['sample-000296', 'sample-000691']
    """
    from degrade.sources import list_sources, load_item

    pool = list_sources(["samples"], pool_size=1000)
    idx = rng_for(seed, "calibration").choice(len(pool), size=min(samples, len(pool)), replace=False)
    out = []
    for i in sorted(int(j) for j in idx):
        img, _ = load_item(pool[i], size=size)
        out.append((pool[i].key, img))
    return out


# -- running steps with cached fields ------------------------------------------------------


def _score_fn(metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    if metric == "psnr":
        return lambda a, b: min(psnr(a, b), PSNR_CAP)
    if metric == "ssim":
        return lambda a, b: ssim(a, b)
    raise DegradeError(f"unknown calibration metric '{metric}'; choose from {', '.join(METRICS)}")


class _Runner:
    """Runs single steps of one sample, drawing each op's field once (as ``execute`` does)."""

    def __init__(self, seed: int, key: str, shape: tuple[int, ...],
                 context: Callable[[int, Op], Mapping[str, Any]] | None = None, *,
                 advance: bool = False) -> None:
        self.seed, self.key, self.shape, self.context = seed, key, tuple(shape), context
        self.fields: dict[int, Any] = {}
        # advance=True (absolute sequences): a first op that advances step by step starts from
        # its outputs at the committed steps, as execute does.
        self.advance = advance
        self.chain: dict[int, list[tuple[Mapping[str, Any], np.ndarray]]] = {}
        self.made: tuple[int, list[tuple[Mapping[str, Any], np.ndarray]]] | None = None

    def step(self, base: np.ndarray, entries: Sequence[Mapping[str, Any]]) -> np.ndarray:
        x = to_float(base)
        self.made = None
        for j, e in enumerate(entries):
            op = get_op(e["op"])
            pos = int(e["position"])
            if pos not in self.fields:
                self.fields[pos] = op.make_field(self.shape, seed=self.seed, key=self.key, position=pos)
            ctx = dict(self.context(pos, op)) if (self.context is not None and op.needs) else {}
            advancing = self.advance and j == 0 and op.advance is not None and op.codec is None
            y = op.apply_advance(self.chain.get(pos, []), e["params"]) if advancing else None
            # For codec ops (jpeg) the kernel equals decoding the encoded file, as execute stores.
            x = op.apply(x, e["params"], self.fields[pos], **ctx) if y is None else y
            if advancing:
                self.made = (pos, op.remember(self.chain.get(pos, []), e["params"], x))
        return to_uint8(x)

    def commit(self, made: tuple[int, list[tuple[Mapping[str, Any], np.ndarray]]] | None) -> None:
        """Keep ``made`` (what an accepted :meth:`step` left in ``self.made``) as the chain."""
        if made is not None:
            self.chain[made[0]] = made[1]


def _entries(specs: Sequence[Mapping[str, Any]], positions: Sequence[int], t: float,
             ts: Sequence[float] | None = None) -> list[dict[str, Any]]:
    out = []
    for i in positions:
        s = specs[i]
        op = get_op(s["op"])
        kw = {"t_first": ts[1], "step_ts": ts} if ts is not None else {}
        out.append({"position": i, "op": op.name, "params": op.params_at(t, s.get("params") or {}, **kw)})
    return out


def _same(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    return [e["params"] for e in a] == [e["params"] for e in b]


# -- calibration ---------------------------------------------------------------------------


@dataclass
class Calibration:
    """The outcome of :func:`calibrate`.

    Attributes
    ----------
    metric : str
    ts : list of float
        The calibrated t_1 … t_T.
    targets : list of float
        The mean metric aimed at, for k = 0 … T.
    means : list of float
        The mean metric reached at each calibrated step, k = 0 … T.
    raw_ts, raw_means : list of float
        The linear schedule's t_0 … t_T and its mean metric per step.
    params : list of list of dict
        Per calibrated step, each op's parameters (for absolute and chained modes).
    keys : list of str
        The calibration sample.
    size, seed : int
    repeats : int
        Steps whose mean could not drop below the previous step's (nothing stronger left).

    Examples
    --------
    >>> cal = calibrate("blur", 2, samples=2, size=16)
    >>> cal.record()["metric"], cal.table().splitlines()[0].split()[:2]
    ('psnr', ['k', 't_k'])
    """

    metric: str
    ts: list[float]
    targets: list[float]
    means: list[float]
    raw_ts: list[float]
    raw_means: list[float]
    params: list[list[dict[str, Any]]]
    keys: list[str]
    size: int
    seed: int
    mode: str = "absolute"
    spec: str = ""
    repeats: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The compact JSON record stored with the pipeline (and so in every recipe)."""
        return {
            "metric": self.metric,
            "samples": len(self.keys),
            "size": self.size,
            "seed": self.seed,
            "keys": list(self.keys),
            "means": [round(float(m), 4) for m in self.means],
        }

    def table(self) -> str:
        """Render k, t_k, parameters and the mean metric (calibrated and raw) as text."""
        unit = "dB" if self.metric == "psnr" else ""
        head = f"{'k':>4}  {'t_k':>8}  {'mean ' + self.metric.upper():>12}  {'drop':>7}  {'raw t':>6}  {'raw mean':>9}  params"
        lines = [head]
        for k in range(len(self.means)):
            t = 0.0 if k == 0 else self.ts[k - 1]
            drop = "" if k == 0 else f"{self.means[k - 1] - self.means[k]:7.3f}"
            ps = "" if k == 0 or not self.params else "; ".join(
                f"{e['op']} " + ", ".join(f"{n}={_fmt(v)}" for n, v in e["params"].items())
                for e in self.params[k - 1]
            )
            tt = f"{t:8.5f}" if t == 0 or t >= 1e-3 else f"{t:8.1e}"
            lines.append(
                f"{k:>4}  {tt}  {self.means[k]:9.3f}{unit:>3}  {drop:>7}  {self.raw_ts[k]:6.3f}  "
                f"{self.raw_means[k]:9.3f}  {ps}"
            )
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _check_specs(specs: Sequence[Mapping[str, Any]]) -> None:
    for s in specs:
        for name, v in (s.get("params") or {}).items():
            if isinstance(v, list) or (isinstance(v, Mapping) and "first" in v):
                raise DegradeError(
                    f"--schedule calibrated: {s['op']}:{name} is a per-step list or an a..b range, "
                    "which fix the steps themselves; give a single value or knots instead"
                )


def calibrate(
    ops: Any,
    steps: int,
    *,
    mode: str = "absolute",
    metric: str = "psnr",
    samples: int = 16,
    size: int = 64,
    seed: int = 0,
    images: Sequence[tuple[str, np.ndarray]] | None = None,
) -> Calibration:
    """Choose t_1 … t_T so that the mean metric falls in equal steps (see the module doc).

    Parameters
    ----------
    ops : str or sequence
        The pipeline's ops (``--ops`` syntax, OpSpecs or dicts).
    steps : int
    mode : {"absolute", "chained", "choice"}
    metric : {"psnr", "ssim"}
    samples, size, seed : int
        The calibration sample: ``samples`` pool crops at ``size`` px drawn with ``seed``
        (which is also the pipeline seed of the random fields).
    images : sequence of (key, uint8 image), optional
        Use these instead of the pool.

    Returns
    -------
    Calibration

    Examples
    --------
    >>> cal = calibrate("blur", 4, samples=2, size=16)
    >>> len(cal.ts), cal.ts[-1]
    (4, 1.0)
    """
    from degrade.pipeline import Pipeline

    score = _score_fn(metric)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DegradeError(f"steps must be a positive integer, got {steps!r}")
    raw = Pipeline(ops, steps=steps, mode=mode, schedule="linear", seed=seed)
    specs = [s.to_dict() for s in raw.ops]
    _check_specs(specs)
    imgs = list(images) if images is not None else calibration_images(samples, size, seed)
    if not imgs:
        raise DegradeError("calibration needs at least one image")
    cleans = [(k, np.ascontiguousarray(im if im.ndim == 3 else im[:, :, None])) for k, im in imgs]
    runners = []
    for i, (k, im) in enumerate(cleans):
        other = cleans[(i + 1) % len(cleans)][1]
        ctx = _pool_context(other, im) if any(get_op(s["op"]).needs for s in specs) else None
        runners.append(_Runner(seed, k, im.shape, ctx))
    clean_f = [to_float(im) for _, im in cleans]
    plans = [raw.plan(k) for k, _ in cleans]  # choice mode: which op each step uses
    all_pos = list(range(len(specs)))

    def positions(j: int, k: int) -> list[int]:
        return [e["position"] for e in plans[j][k - 1]["ops"]] if mode == "choice" else all_pos

    def run_step(j: int, base: np.ndarray, k: int, t: float) -> np.ndarray:
        return runners[j].step(base, _entries(specs, positions(j, k), t))

    def mean_at(bases: Sequence[np.ndarray], k: int, t: float) -> tuple[float, list[np.ndarray]]:
        frames = [run_step(j, bases[j], k, t) for j in range(len(cleans))]
        return float(np.mean([score(to_float(f), clean_f[j]) for j, f in enumerate(frames)])), frames

    top = float(np.mean([score(c, c) for c in clean_f]))
    cleans_u8 = [im for _, im in cleans]

    # The raw (linear) schedule, for the end point in sequential modes and for the plot.
    raw_means = [top]
    bases = cleans_u8
    for k in range(1, steps + 1):
        m, frames = mean_at(cleans_u8 if mode == "absolute" else bases, k, raw.ts[k])
        raw_means.append(m)
        bases = frames

    ts: list[float] = []
    means = [top]
    repeats = 0

    def spaced(end: float, least: float) -> list[float]:
        # Equal steps from the clean value to ``end``; when even the weakest setting (t → 0+)
        # already costs more than one equal step (JPEG at quality 100, a 1 px pixelation),
        # step 1 takes that setting and the remaining steps share the rest equally.
        equal = [top + (end - top) * k / steps for k in range(steps + 1)]
        if steps == 1 or top - least <= (top - end) / steps:
            return equal
        return [top, *(least + (end - least) * (k - 1) / (steps - 1) for k in range(1, steps + 1))]

    def strictly_below(fn: Callable[[float], float], t: float, prev_m: float) -> tuple[float, int]:
        # No step may leave the mean where it was: move t up until the mean drops.
        if fn(t) < prev_m - _EPS:
            return t, 0
        for i in range(1, _SEARCH + 1):
            cand = t + (1.0 - t) * i / _SEARCH
            if fn(cand) < prev_m - _EPS:
                return cand, 0
        return t, 1

    if mode == "absolute":
        cache: dict[float, float] = {}

        def f(t: float) -> float:
            if t not in cache:
                cache[t] = mean_at(cleans_u8, 1, t)[0]
            return cache[t]

        targets = spaced(f(1.0), f(_LEAST))
        grid = [i / _GRID for i in range(1, _GRID + 1)]
        env = np.minimum.accumulate([f(g) for g in grid])
        prev_t = 0.0
        for k in range(1, steps + 1):
            y = targets[k]
            if k == steps:
                t = 1.0
            else:
                i = int(np.argmax(env <= y + _EPS)) if (env <= y + _EPS).any() else len(grid) - 1
                lo, hi = (grid[i - 1] if i > 0 else 0.0), grid[i]
                if f(_LEAST) <= y + _EPS:
                    lo, hi = 0.0, min(hi, _LEAST)
                for _ in range(_BISECT):
                    mid = 0.5 * (lo + hi)
                    if f(mid) <= y + _EPS:
                        hi = mid
                    else:
                        lo = mid
                t = hi
            t, rep = strictly_below(f, max(t, prev_t), means[-1])
            repeats += rep
            ts.append(t)
            means.append(f(t))
            prev_t = t
    else:
        targets = spaced(raw_means[-1], mean_at(cleans_u8, 1, _LEAST)[0])
        bases = cleans_u8
        prev_t = 0.0
        for k in range(1, steps + 1):
            y = targets[k]
            memo: dict[float, tuple[float, list[np.ndarray]]] = {}

            def g(t: float, k: int = k, bases: list[np.ndarray] = bases,
                  memo: dict = memo) -> tuple[float, list[np.ndarray]]:
                if t not in memo:
                    memo[t] = mean_at(bases, k, t)
                return memo[t]

            lo_t = prev_t
            grid = [lo_t + (1.0 - lo_t) * i / 16 for i in range(1, 17)]
            hit = next((gt for gt in grid if g(gt)[0] <= y + _EPS), None)
            if hit is None:
                t = 1.0
            else:
                j = grid.index(hit)
                lo, hi = (grid[j - 1] if j > 0 else lo_t), hit
                for _ in range(_BISECT):
                    mid = 0.5 * (lo + hi)
                    if g(mid)[0] <= y + _EPS:
                        hi = mid
                    else:
                        lo = mid
                t = hi
            t, rep = strictly_below(lambda u, g=g: g(u)[0], t, means[-1])
            repeats += rep
            m, frames = g(t)
            ts.append(t)
            means.append(m)
            bases = frames
            prev_t = t
    params = [_entries(specs, all_pos, t) for t in ts] if mode != "choice" else []
    return Calibration(
        metric=metric, ts=ts, targets=targets, means=means, raw_ts=list(raw.ts),
        raw_means=raw_means, params=params, keys=[k for k, _ in cleans], size=int(cleans_u8[0].shape[0]),
        seed=seed, mode=mode, repeats=repeats,
    )


def _pool_context(other: np.ndarray, image: np.ndarray) -> Callable[[int, Op], Mapping[str, Any]]:
    # Ops that mix in other images get another calibration image (channels matched).
    o = other
    if o.shape[2] != image.shape[2]:
        o = np.repeat(o, 3, axis=2) if image.shape[2] == 3 else o.mean(axis=2, keepdims=True).astype(np.uint8)
    part = to_float(o)

    def context(position: int, op: Op) -> Mapping[str, Any]:
        return {"partners": [part] * max(1, int(getattr(op, "partners", 1) or 1)), "partner": part}

    return context


def calibrated_schedule(
    ops: Any, *, steps: int, mode: str, seed: int, spec: str = "calibrated"
) -> tuple[list[float], dict[str, Any]]:
    """Return (t_1 … t_T, calibration record) for a ``calibrated…`` schedule string.

    This is what :class:`degrade.Pipeline` calls for ``schedule="calibrated"``.

    Examples
    --------
    >>> ts, rec = calibrated_schedule("jpeg", steps=3, mode="absolute", seed=0, spec="calibrated:samples=2:size=16")
    >>> len(ts), rec["metric"], rec["samples"]
    (3, 'psnr', 2)
    """
    opts = parse_calibrated(spec)
    cal = calibrate(ops, steps, mode=mode, metric=opts["metric"], samples=opts["samples"],
                    size=opts["size"], seed=seed)
    return list(cal.ts), cal.record()


# -- per-image monotone sequences ----------------------------------------------------------


def monotone_execute(
    clean: np.ndarray,
    recipe: dict[str, Any],
    *,
    context: Callable[[int, Op], Mapping[str, Any]] | None = None,
) -> tuple[list[np.ndarray], list[tuple[str, bytes] | None]]:
    """Make one sample's sequence monotone, write the parameters into ``recipe``, run it.

    Step by step, the frame's metric against the clean image (the pipeline's calibration
    metric, PSNR by default) must not be better than the previous frame's. A step that
    would be better takes the smallest t' > t_k on a grid of :data:`_SEARCH` points whose
    frame is at least as damaged (its params replace the step's in the recipe, with
    ``t_params`` = t'); if none exists the previous frame is held (``hold``: absolute mode
    repeats the previous step's params, sequential modes apply nothing). Then the adjusted
    recipe is executed by :func:`degrade.pipeline.execute`, so replay gives the same frames.

    Examples
    --------
    >>> from degrade.pipeline import Pipeline
    >>> p = Pipeline.parse("jpeg", steps=4)
    >>> img = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    >>> r = p.recipe("a", img.shape)
    >>> frames, _ = monotone_execute(img, r)
    >>> len(frames)
    5
    """
    from degrade.pipeline import execute

    pipe = recipe["pipeline"]
    mode = pipe["mode"]
    specs = pipe["ops"]
    ts = list(recipe["schedule"]["t"])
    metric = (pipe.get("calibration") or {}).get("metric", "psnr")
    score = _score_fn(metric)
    runner = _Runner(int(recipe["seed"]), str(recipe["key"]), clean.shape, context,
                     advance=mode == "absolute")
    clean_f = to_float(clean)
    prev = clean
    prev_score = score(clean_f, clean_f)
    prev_ops: list[dict[str, Any]] = []
    for step in recipe["steps"]:
        base = clean if mode == "absolute" else prev
        if float(step["t"]) == 0.0 or not step["ops"]:
            frame, made = (clean if mode == "absolute" else prev), None
        else:
            frame = runner.step(base, step["ops"])
            made = runner.made
        s = score(to_float(frame), clean_f)
        if s > prev_score + _EPS and step["ops"]:
            positions = [int(e["position"]) for e in step["ops"]]
            t0 = float(step["t"])
            last = step["ops"]
            found = None
            for i in range(1, _SEARCH + 1):
                t2 = t0 + (1.0 - t0) * i / _SEARCH
                cand = _entries(specs, positions, t2, ts)
                if _same(cand, last):
                    continue
                last = cand
                f2 = runner.step(base, cand)
                s2 = score(to_float(f2), clean_f)
                if s2 <= prev_score + _EPS:
                    found = (t2, cand, f2, s2, runner.made)
                    break
            if found is not None:
                step["t_params"], step["ops"], frame, s, made = found
            else:
                step["hold"] = True
                step["ops"] = copy.deepcopy(prev_ops) if mode == "absolute" else []
                frame, s, made = prev, prev_score, None
        runner.commit(made)
        prev, prev_score, prev_ops = frame, s, step["ops"]
    return execute(clean, recipe, context=context)


# -- plot ----------------------------------------------------------------------------------


def plot_calibration(cal: Calibration, path: str | Path, *, title: str = "") -> Path:
    """Write a PNG of the mean metric vs step for the raw (linear) and calibrated schedules.

    Examples
    --------
    >>> import tempfile
    >>> plot_calibration(calibrate("blur", 3, samples=2, size=16), Path(tempfile.mkdtemp()) / "c.png").suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    k = np.arange(len(cal.means))
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        ax.plot(k, cal.raw_means, "o-", ms=3, label="linear schedule (raw)")
        ax.plot(k, cal.means, "s-", ms=3, label="calibrated")
        ax.plot(k, cal.targets, ":", color="grey", label="equal steps")
        ax.set_xlabel("step k")
        ax.set_ylabel(f"mean {cal.metric.upper()}" + (" (dB)" if cal.metric == "psnr" else ""))
        ax.set_title(title or f"{len(cal.keys)} calibration images, {cal.size} px, {cal.mode}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out
