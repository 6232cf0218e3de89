"""Step-by-step restoration benchmarks: ``degrade eval``, ``degrade bench``, ``degrade restore``.

:func:`evaluate` answers "how good is my model at step k?": on held-out samples of a built
dataset, for each evaluated step k it restores x_k with every applicable method and scores
the result against the clean frame.

Methods (rows of the tables; :mod:`degrade.sampling` has the algorithms)
    ``degraded`` (x_k itself), ``direct``, ``alg1``, ``alg2`` (models trained with
    ``target="x0"``), ``rollout`` (``target="prev"``), ``alg2_fresh`` (Algorithm 2 with
    another draw of the op's random field, only for pipelines with a stochastic op — the
    honest version of ``alg2`` there), and one classical baseline per op family
    (``unsharp``, ``nlmeans``, ``median``, ``smooth``), tuned per step on other images
    (the ``train`` split by default, never the evaluated ones unless no other exists,
    which ``metrics.json`` then says).

Metrics (one row each in ``metrics.csv``: ``op,step,method,metric,value,convention``)
    ``psnr`` and ``ssim``: per image, then the mean over images (never pooled over a
    batch); ``swd``: the set-level sliced Wasserstein distance of the restored images to
    the clean ones (:func:`degrade.metrics.swd`); ``calls``: network calls per image;
    ``ms_per_image``: wall-clock time per image. The ``convention`` column says how each
    number was computed (data range 1.0, RGB, …).

D is replayed from each sample's recipe (same field, same partner images): the samplers use
exactly the forward process the data came from.

:func:`bench` builds one dataset per corruption from the sample pool (the same images for
every op), trains the same small model with the same budget on each, evaluates each and
writes a leaderboard; with ``blind_holdout`` it also trains one ``blind`` model on the other
ops and evaluates it on the held-out ones. :func:`restore` runs a checkpoint on a user's
own images.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from degrade.errors import DegradeError
from degrade.image import to_float, to_uint8
from degrade.metrics import CONVENTION, psnr, ssim, swd, swd_convention
from degrade.sampling import (
    Degrader,
    Restore,
    apply_baseline,
    baselines_for,
    fresh_recipe,
    run_sampler,
    tune_baseline,
)

__all__ = [
    "CSV_COLUMNS",
    "METRICS",
    "EvalResult",
    "EvalSample",
    "bench",
    "default_steps",
    "evaluate",
    "evaluate_restorer",
    "load_samples",
    "parse_steps",
    "restore",
]

#: The columns of ``metrics.csv``, in order.
CSV_COLUMNS = ("op", "step", "method", "metric", "value", "convention")
#: The metrics recorded per (step, method).
METRICS = ("psnr", "ssim", "swd", "calls", "ms_per_image")
MODEL_METHODS = ("direct", "alg1", "alg2", "alg2_fresh", "rollout")
#: SWD settings of the evaluator: half the patches and directions of Karras et al.'s (128 per
#: image, 4×128): one SWD per (step, method) must stay cheap on a CPU; recorded in every row.
SWD_SETTINGS = {"patches_per_image": 64, "directions": 128, "repeats": 2}


# -- reading held-out samples -----------------------------------------------------------------


@dataclass
class EvalSample:
    """One held-out sample: its clean frame (float32), recipe and stored frames (uint8)."""

    key: str
    clean: np.ndarray
    recipe: dict[str, Any]
    stored: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """T of the sample's sequence."""
        return len(self.recipe["steps"])


def _records(url: str) -> Iterator[dict[str, Any]]:
    from degrade.data import open_url
    from degrade.shards import iter_parquet, iter_webdataset

    if url.lower().endswith(".parquet") and os.path.exists(url):
        yield from iter_parquet(url, name=url)
        return
    stream = open_url(url, seekable=url.lower().endswith(".parquet"))
    try:
        reader = iter_parquet if url.lower().endswith(".parquet") else iter_webdataset
        yield from reader(stream, name=url)
    finally:
        stream.close()


def load_samples(data: str | os.PathLike[str] | Sequence[str], *, split: str | None = "test",
                 limit: int | None = None) -> list[EvalSample]:
    """Read the samples of ``split`` (all when None) of a dataset, at most ``limit``, in
    shard order.

    Examples
    --------
    >>> import tempfile, degrade
    >>> d = tempfile.mkdtemp()
    >>> _ = degrade.build(["synthetic"], ops="blur", steps=2, limit=4, size=16, out=d, split="test=1",
    ...                   workers=1, progress=False, log=lambda s: None)
    >>> [s.steps for s in load_samples(d, limit=2)]
    [2, 2]
    """
    from degrade.data import decode_image, resolve_source

    refs, _, _ = resolve_source(data if isinstance(data, (str, os.PathLike)) else list(data), split)
    out: list[EvalSample] = []
    for ref in refs:
        if ref.selected == 0:
            continue
        for rec in _records(ref.url):
            if split is not None and rec["split"] != split:
                continue
            stored = {int(k): decode_image(ext, payload) for k, ext, payload in rec["frames"]}
            out.append(EvalSample(rec["key"], to_float(decode_image("png", rec["clean"])),
                                  dict(rec["recipe"]), stored))
            if limit is not None and len(out) >= limit:
                return out
    return out


def _partner_frames(data: Any, samples: Sequence[EvalSample]) -> dict[str, np.ndarray] | None:
    """Clean frames (uint8) of every partner image the samples' recipes name."""
    wanted = {e["key"] for s in samples for v in (s.recipe.get("partners") or {}).values() for e in v}
    if not wanted:
        return None
    from degrade.data import decode_image, resolve_source

    refs, _, _ = resolve_source(data if isinstance(data, (str, os.PathLike)) else list(data), None)
    found: dict[str, np.ndarray] = {}
    for ref in refs:
        for rec in _records(ref.url):
            if rec["key"] in wanted:
                found[rec["key"]] = decode_image("png", rec["clean"])
        if len(found) == len(wanted):
            break
    missing = wanted - set(found)
    if missing:
        raise DegradeError(f"partner images {sorted(missing)[:3]} are not in the dataset; cannot replay D")
    return found


def default_steps(T: int, n: int = 5) -> list[int]:
    """About ``n`` steps spread over 1 … T, both ends included.

    Examples
    --------
    >>> default_steps(20), default_steps(3)
    ([1, 6, 10, 15, 20], [1, 2, 3])
    """
    return sorted({round(v) for v in np.linspace(1, T, min(n, T))})


def parse_steps(spec: str | Sequence[int] | None, T: int) -> list[int]:
    """``--steps-eval``: ``1,5,10``, ``all``, or None (:func:`default_steps`); checked against T.

    Examples
    --------
    >>> parse_steps("10,1,5", 10), parse_steps("all", 3)
    ([1, 5, 10], [1, 2, 3])
    """
    if spec is None:
        return default_steps(T)
    if isinstance(spec, str):
        if spec.strip() == "all":
            return list(range(1, T + 1))
        try:
            ks = [int(p) for p in spec.split(",") if p.strip()]
        except ValueError:
            raise DegradeError(f"--steps-eval takes steps separated by commas or 'all', got '{spec}'") from None
    else:
        ks = [int(k) for k in spec]
    bad = [k for k in ks if not 1 <= k <= T]
    if not ks or bad:
        raise DegradeError(f"--steps-eval: steps must lie in 1..{T}, got {bad or 'none'}")
    return sorted(set(ks))


# -- evaluating one restorer --------------------------------------------------------------------


@dataclass
class EvalResult:
    """What :func:`evaluate_restorer` measured.

    Attributes
    ----------
    rows : list of dict
        One per (step, method, metric): the keys of :data:`CSV_COLUMNS`.
    meta : dict
        Checkpoint, data, split, images, steps, methods, baseline tuning, conventions.
    grid : dict
        The images of the sample grid: ``{"columns": [...], "rows": [(label, [images])]}``.
    """

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    grid: dict[str, Any]

    def value(self, step: int, method: str, metric: str) -> float:
        """One number of the table.

        Raises
        ------
        KeyError
            When that (step, method, metric) was not measured.
        """
        for r in self.rows:
            if r["step"] == step and r["method"] == method and r["metric"] == metric:
                return float(r["value"])
        raise KeyError((step, method, metric))

    def methods(self) -> list[str]:
        """Methods in the order they were run."""
        return list(dict.fromkeys(r["method"] for r in self.rows))


def _frame(sample: EvalSample, k: int, degrader: Degrader | None) -> np.ndarray:
    if k in sample.stored:
        return to_float(sample.stored[k])
    if degrader is None:
        raise DegradeError(f"sample {sample.key!r}: step {k} is not stored and cannot be replayed")
    return degrader(sample.clean, k)


def _op_label(recipe: Mapping[str, Any]) -> str:
    from degrade.pipeline import Pipeline

    pipe = recipe.get("pipeline") or {}
    if recipe.get("external") or pipe.get("mode") == "external":
        return "external"
    try:
        return Pipeline.from_dict(pipe).spec
    except DegradeError:
        return ",".join(str(o.get("op")) for o in pipe.get("ops", []))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def evaluate_restorer(
    restore: Restore | None,
    samples: Sequence[EvalSample],
    *,
    target: str = "x0",
    steps_eval: str | Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    baselines: bool | Sequence[str] = True,
    tuning: Sequence[EvalSample] | None = None,
    partners: Mapping[str, np.ndarray] | None = None,
    batch_size: int = 64,
    seed: int = 0,
    grid_images: int = 4,
    grid_steps: Sequence[int] | None = None,
    timing_note: str = "",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> EvalResult:
    """Restore every sample at every evaluated step with every method and score it.

    Parameters
    ----------
    restore : Restore or None
        The model as ``restore(x, k, t)`` (:class:`degrade.sampling.ModelRestorer`, or an
        oracle in tests); None evaluates ``degraded`` and the baselines only.
    samples : list of EvalSample
        Held-out samples (:func:`load_samples`); one pipeline, one image shape.
    target : {"x0", "prev"}
        What the model predicts: x0 enables ``direct``/``alg1``/``alg2``, prev ``rollout``.
    steps_eval : str or list of int, optional
        Steps k to evaluate (:func:`parse_steps`).
    methods : list of str, optional
        Model methods to run; default all that apply.
    baselines : bool or list of str
        Run the classical baselines that apply to the ops (True), none, or these.
    tuning : list of EvalSample, optional
        Images the baselines are tuned on (per step); default the evaluated ones (noted).
    partners : mapping, optional
        Clean frames of partner images, for recipes that mix in other images.
    batch_size, seed : int
        Images per network call; seed of the SWD draws.
    grid_images : int
        Samples shown in the sample grid, at ``grid_steps`` (default: the middle and last
        evaluated steps).

    Returns
    -------
    EvalResult
    """
    if not samples:
        raise DegradeError("no samples to evaluate (is the split empty? try --split val or train)")
    say = log or (lambda s: None)
    T = samples[0].steps
    if any(s.steps != T for s in samples):
        raise DegradeError("the samples have sequences of different lengths; evaluate one dataset at a time")
    ks = parse_steps(steps_eval, T)
    op = _op_label(samples[0].recipe)
    replayable = not any(s.recipe.get("external") for s in samples)
    degraders = [Degrader(s.recipe, partners) for s in samples] if replayable else None
    stochastic = bool(degraders) and any(d.stochastic for d in degraders)
    fresh = [Degrader(fresh_recipe(s.recipe), partners) for s in samples] if (replayable and stochastic) else None

    if target not in ("x0", "prev"):
        raise DegradeError(f"target must be 'x0' or 'prev', got {target!r}")
    applicable = [] if restore is None else (
        ["rollout"] if target == "prev" else
        ["direct"] + (["alg1", "alg2"] if replayable else []) + (["alg2_fresh"] if fresh else []))
    if methods is None:
        chosen = applicable
    else:
        unknown = [m for m in methods if m not in MODEL_METHODS]
        if unknown:
            raise DegradeError(f"unknown method(s) {unknown}; choose from {', '.join(MODEL_METHODS)}")
        chosen = [m for m in methods if m in applicable]
        skipped = [m for m in methods if m not in applicable]
        if skipped:
            say(f"degrade eval: skipping {', '.join(skipped)} (not applicable to this model/data)")
    ops = [e["op"] for e in samples[0].recipe.get("ops", [])]
    if baselines is True:
        base_names = baselines_for(ops) if ops else []
    elif baselines is False:
        base_names = []
    else:
        base_names = list(baselines)
    tune_on = list(tuning) if tuning else list(samples)
    tune_degs = [Degrader(s.recipe, partners) for s in tune_on] if (replayable and base_names) else None

    grid_at = list(grid_steps) if grid_steps is not None else sorted({ks[len(ks) // 2], ks[-1]})
    grid_at = [k for k in grid_at if k in ks]
    show = list(range(min(grid_images, len(samples))))
    shown: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    clean = np.stack([s.clean for s in samples])
    n = len(samples)
    rows: list[dict[str, Any]] = []
    tuned: dict[str, dict[int, dict[str, float]]] = {b: {} for b in base_names}
    conv = {
        "psnr": f"mean over {n} images of per-image PSNR in dB; {CONVENTION}",
        "ssim": f"mean over {n} images of per-image SSIM; {CONVENTION}",
        "swd": f"{swd_convention(**SWD_SETTINGS)}; restored vs clean set of {n} images, seed {seed}",
        "calls": "network calls per image",
        "ms_per_image": f"wall-clock ms per image{timing_note}",
    }

    def record(k: int, method: str, out: np.ndarray, calls: int, seconds: float) -> None:
        ps = [psnr(o, c) for o, c in zip(out, clean, strict=True)]
        ss = [ssim(o, c) for o, c in zip(out, clean, strict=True)]
        values = {"psnr": _mean(ps), "ssim": _mean(ss), "swd": swd(list(out), list(clean), seed=seed, **SWD_SETTINGS),
                  "calls": float(calls), "ms_per_image": 1000.0 * seconds / n}
        for metric in METRICS:
            rows.append({"op": op, "step": k, "method": method, "metric": metric,
                         "value": values[metric], "convention": conv[metric]})
        for i in show:
            if k in grid_at:
                shown.setdefault((i, k), {})[method] = out[i]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ks), desc="degrade eval", unit="step", dynamic_ncols=True)
    for k in ks:
        xk = np.stack([_frame(s, k, d) for s, d in zip(samples, degraders or [None] * n, strict=True)])
        record(k, "degraded", xk, 0, 0.0)
        for i in show:
            if k in grid_at:
                shown.setdefault((i, k), {})["clean"] = samples[i].clean
        for method in chosen:
            outs, secs = [], 0.0
            for a in range(0, n, batch_size):
                b = min(n, a + batch_size)
                degs = None
                if method == "alg2_fresh":
                    degs = fresh[a:b] if fresh else None
                elif degraders is not None:
                    degs = degraders[a:b]
                name = "alg2" if method == "alg2_fresh" else method
                # The model is told the sample's own severities (t from its recipe).
                ts = np.array([d.ts for d in degraders[a:b]], np.float32) if degraders else None
                res = run_sampler(name, restore, xk[a:b], k, degs, ts=ts)  # type: ignore[arg-type]
                outs.append(res.x0)
                secs += res.seconds
                calls = res.calls
            record(k, method, np.concatenate(outs), calls, secs)
        for bname in base_names:
            if tune_degs is None:
                continue
            tune_x = [_frame(s, k, d) for s, d in zip(tune_on, tune_degs, strict=True)]
            params = tune_baseline(bname, tune_x, [s.clean for s in tune_on])
            tuned[bname][k] = params
            t0 = time.perf_counter()
            out = np.stack([apply_baseline(bname, x, params) for x in xk])
            record(k, bname, out, 0, time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
        say(f"degrade eval: step {k}: " + ", ".join(
            f"{r['method']} {r['value']:.2f}" for r in rows if r["step"] == k and r["metric"] == "psnr") + " dB")
    if bar is not None:
        bar.close()

    columns = ["clean", "degraded"] + [m for m in ("direct", "alg1", "alg2", "rollout") if m in chosen]
    grid_rows = []
    for (i, k), imgs in sorted(shown.items(), key=lambda it: (it[0][1], it[0][0])):
        grid_rows.append((f"{samples[i].key} k={k}", [imgs[c] for c in columns if c in imgs]))
    meta = {
        "op": op,
        "steps": T,
        "steps_eval": ks,
        "images": n,
        "keys": [s.key for s in samples],
        "target": target,
        "methods": ["degraded", *chosen, *base_names],
        "stochastic_field": stochastic,
        "baselines": {b: {str(k): p for k, p in v.items()} for b, v in tuned.items()},
        "baseline_tuning": ("the evaluated images themselves (no other split)" if not tuning
                            else f"{len(tune_on)} other samples"),
        "conventions": conv,
        "seed": seed,
    }
    return EvalResult(rows, meta, {"columns": columns, "rows": grid_rows})


# -- evaluating a checkpoint ----------------------------------------------------------------------


def _load_ckpt(ckpt: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(ckpt, Mapping):
        return dict(ckpt)
    from degrade.train import load_checkpoint

    return load_checkpoint(ckpt)


def _threads_note(device: str) -> str:
    try:
        import torch

        return f", {device}, {torch.get_num_threads()} torch threads"
    except ModuleNotFoundError:  # pragma: no cover - the evaluator needs torch anyway
        return f", {device}"


def evaluate(
    ckpt: str | os.PathLike[str] | Mapping[str, Any],
    data: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    split: str = "test",
    steps_eval: str | Sequence[int] | None = None,
    limit: int | None = None,
    methods: Sequence[str] | None = None,
    baselines: bool | Sequence[str] = True,
    tune_split: str | None = "train",
    tune_limit: int = 8,
    device: str = "cpu",
    batch_size: int = 64,
    seed: int = 0,
    grid_images: int = 4,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> EvalResult:
    """Evaluate a checkpoint on held-out data, step by step; write a report when ``out`` is set.

    Parameters
    ----------
    ckpt : path or dict
        ``RUN/ckpt.pt`` (or the run folder) of :func:`degrade.train.train`, or the loaded dict.
    data : path, optional
        The dataset; default the one the checkpoint was trained on (``config.data``).
    out : path, optional
        Report folder: ``metrics.json``, ``metrics.csv``, ``plots/*.png``, ``samples.png``,
        ``summary.md`` (:func:`degrade.report.write_report`).
    split : str
        Evaluated split (``test``; ``val``/``train`` if that is what there is).
    steps_eval : str or list of int, optional
        Steps k (default about five spread over 1 … T).
    limit : int, optional
        At most this many samples.
    methods, baselines
        As for :func:`evaluate_restorer`.
    tune_split : str, optional
        Split whose first ``tune_limit`` samples tune the baselines; None or an empty split:
        the evaluated samples (recorded in ``metrics.json``).

    Returns
    -------
    EvalResult
    """
    from degrade.sampling import ModelRestorer

    c = _load_ckpt(ckpt)
    cfg = c["config"]
    data = data if data is not None else cfg.get("data")
    if not data:
        raise DegradeError("give --data: the checkpoint does not name its dataset")
    samples = load_samples(data, split=split, limit=limit)
    if not samples:
        raise DegradeError(f"{data}: no samples of split {split!r} (try --split val or train)")
    tuning = None
    if tune_split and tune_split != split:
        tuning = load_samples(data, split=tune_split, limit=tune_limit) or None
    partners = _partner_frames(data, [*samples, *(tuning or [])])
    restorer = ModelRestorer.from_checkpoint(c, steps=samples[0].steps, device=device, batch_size=batch_size)
    result = evaluate_restorer(
        restorer, samples, target=cfg.get("target", "x0"), steps_eval=steps_eval, methods=methods,
        baselines=baselines, tuning=tuning, partners=partners, batch_size=batch_size, seed=seed,
        grid_images=grid_images, timing_note=f", batches of ≤{batch_size}" + _threads_note(device),
        progress=progress, log=log,
    )
    result.meta.update({
        "checkpoint": str(ckpt) if not isinstance(ckpt, Mapping) else "(in memory)",
        "checkpoint_step": int(c.get("step", 0)),
        "model": cfg.get("model"),
        "data": str(data),
        "split": split,
        "degrade_version": c.get("degrade_version"),
    })
    if out is not None:
        from degrade.report import write_report

        write_report(result, out)
    return result


# -- the benchmark ----------------------------------------------------------------------------------


def bench(
    ops: str | Sequence[str] = ("blur", "noise", "jpeg", "pixelate"),
    *,
    steps: int = 10,
    size: int = 32,
    max_steps: int = 300,
    limit: int = 256,
    out: str | os.PathLike[str] = "degrade-bench",
    blind_holdout: str | Sequence[str] | None = None,
    batch_size: int = 32,
    base_channels: int = 16,
    channel_mults: Sequence[int] = (1, 2),
    lr: float = 1e-3,
    threads: int = 0,
    workers: int = 0,
    eval_limit: int | None = None,
    steps_eval: str | Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate the same small model once per corruption; write a leaderboard.

    For each op: build ``limit`` images of the sample pool at ``size`` px with ``steps``
    steps (split ``train=0.8,test=0.2`` by photograph, so every op sees the same images),
    train a UNet for ``max_steps`` steps (same config, same seed, same budget), evaluate
    it on the test split (:func:`evaluate`, baselines tuned on train images) and collect
    the results in ``OUT/leaderboard.{md,csv,json,png}``; each op's full report is in
    ``OUT/<op>/report``.

    ``blind_holdout``: ops left out of a ``blind`` model's training (it is trained on the
    union of the other ops' datasets, with no step input, the same budget) and evaluated on
    every op — the held-out ones show how it does on corruptions it never saw. Held-out ops
    not in ``ops`` get a dataset (no specialist model).

    Returns
    -------
    dict
        ``ops`` (per-op summary rows), ``blind`` (rows or None), ``seconds``, ``out``.
    """
    import torch

    from degrade.build import build
    from degrade.pipeline import parse_ops
    from degrade.report import summarise_bench, write_leaderboard
    from degrade.train import TrainConfig, train

    say = log or (lambda s: print(s, file=sys.stderr))
    names = [s.strip() for s in (ops.split(",") if isinstance(ops, str) else ops) if s.strip()]
    if not names:
        raise DegradeError("--ops is empty; give ops separated by commas, e.g. blur,noise")
    for nm in names:
        if ":" in nm:
            raise DegradeError(f"bench takes op names only (the ops' default schedules), got '{nm}'")
        parse_ops(nm)
    held = [s.strip() for s in (blind_holdout.split(",") if isinstance(blind_holdout, str) else (blind_holdout or []))
            if s.strip()]
    seen = [o for o in names if o not in held]
    if held and not seen:
        raise DegradeError("--blind-holdout leaves no op to train the blind model on")
    if held and len(seen) < 1:
        raise DegradeError("the blind model needs at least one training op")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    common = dict(max_steps=max_steps, batch_size=batch_size, base_channels=base_channels,
                  channel_mults=tuple(channel_mults), lr=lr, min_lr=lr / 10,
                  warmup_steps=max(1, min(100, max_steps // 10)), threads=threads, workers=workers,
                  seed=seed, progress=progress, log_every=max(1, min(10, max_steps)),
                  ckpt_every=max_steps)
    quiet = (lambda s: None) if not progress else say
    try:
        data_dirs: dict[str, Path] = {}
        for op in dict.fromkeys([*names, *held]):
            d = root / op / "data"
            if not (d / "manifest.json").exists():
                t0 = time.perf_counter()
                build(None, ops=op, steps=steps, size=size, limit=limit, out=d, seed=seed,
                      split="train=0.8,test=0.2", workers=1, progress=False, log=lambda s: None)
                say(f"degrade bench: {op}: built {limit} sequences in {time.perf_counter() - t0:.1f} s")
            data_dirs[op] = d

        results: dict[str, dict[str, Any]] = {}
        for op in names:
            run = root / op / "run"
            t0 = time.perf_counter()
            summary = _train_once(train, TrainConfig(data=str(data_dirs[op]), out=str(run), **common), quiet)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = evaluate(run / "ckpt.pt", data_dirs[op], out=root / op / "report", split="test",
                           limit=eval_limit, steps_eval=steps_eval, seed=seed, log=quiet)
            results[op] = {"result": res, "train_seconds": t_train, "eval_seconds": time.perf_counter() - t0,
                           "train_loss": summary.get("loss")}
            say(f"degrade bench: {op}: trained {max_steps} steps in {t_train:.0f} s, evaluated in "
                f"{results[op]['eval_seconds']:.0f} s")

        blind: dict[str, dict[str, Any]] | None = None
        if held:
            run = root / "blind" / "run"
            pattern = str(root / ("{" + ",".join(seen) + "}" if len(seen) > 1 else seen[0]) / "data" / "shard-*.tar")
            t0 = time.perf_counter()
            _train_once(train, TrainConfig(data=pattern, out=str(run), model="blind", **common), quiet)
            t_train = time.perf_counter() - t0
            blind = {}
            for op in dict.fromkeys([*names, *held]):
                t0 = time.perf_counter()
                res = evaluate(run / "ckpt.pt", data_dirs[op], out=root / "blind" / op, split="test",
                               limit=eval_limit, steps_eval=steps_eval, seed=seed,
                               methods=("direct", "alg2"), baselines=False, log=quiet)
                blind[op] = {"result": res, "seen": op in seen, "train_seconds": t_train,
                             "eval_seconds": time.perf_counter() - t0}
            say(f"degrade bench: blind model on {', '.join(seen)} trained in {t_train:.0f} s; "
                f"held out: {', '.join(held)}")
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - t_all
    config = {"ops": names, "steps": steps, "size": size, "max_steps": max_steps, "limit": limit,
              "batch_size": batch_size, "base_channels": base_channels,
              "channel_mults": list(channel_mults), "lr": lr, "threads": threads, "seed": seed,
              "blind_holdout": held, "eval_limit": eval_limit}
    board = summarise_bench(results, blind)
    write_leaderboard(board, root, config=config, seconds=seconds)
    say(f"degrade bench: leaderboard in {root / 'leaderboard.md'} ({seconds:.0f} s in all)")
    return {"ops": board["ops"], "blind": board["blind"], "seconds": seconds, "out": str(root),
            "config": config}


def _train_once(train: Any, cfg: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """Train, or reuse a finished run of the same config (a re-run of bench resumes)."""
    ckpt = Path(cfg.out) / "ckpt.pt"
    if ckpt.exists():
        from degrade.train import load_checkpoint

        c = load_checkpoint(ckpt)
        if int(c.get("step", 0)) >= cfg.max_steps:
            return {"step": c["step"], "loss": float("nan")}
        cfg.resume = True
    return train(cfg, log=log)


# -- restoring a user's images ------------------------------------------------------------------


def _pipeline_of(cfg: Mapping[str, Any], data: str | os.PathLike[str] | None) -> tuple[Any, dict[str, Any]]:
    from degrade.pipeline import Pipeline
    from degrade.shards.manifest import read_manifest

    where = data if data is not None else cfg.get("data")
    if not where:
        raise DegradeError("the checkpoint does not name its dataset; give --data DATASET")
    try:
        manifest = read_manifest(where)
    except DegradeError as exc:
        raise DegradeError(f"cannot read the checkpoint's dataset manifest ({exc}); give --data DATASET") from None
    pipe = Pipeline.from_dict(manifest["config"]["pipeline"])
    return pipe, manifest


def restore(
    ckpt: str | os.PathLike[str] | Mapping[str, Any],
    input: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    step: int | None = None,
    blind: bool = False,
    sampler: str = "direct",
    data: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Restore a user's images with a trained model; write one PNG per input into ``out``.

    Parameters
    ----------
    ckpt : path or dict
        A checkpoint of :func:`degrade.train.train`.
    input : path
        A folder (recursive), glob, ``.txt`` list or single image — anything
        :func:`degrade.sources.list_sources` reads; images keep their size.
    out : path
        Output folder; ``<input's relative path>.png`` per image.
    step : int, optional
        How degraded the images are, as a step k of the training data's T (the model is
        told k/T, or t_k). Required unless ``blind``.
    blind : bool
        The model infers the degradation itself (a ``blind`` checkpoint); only
        ``sampler="direct"``.
    sampler : {"direct", "alg1", "alg2", "rollout"}
        ``rollout`` needs a ``target="prev"`` model, the others ``target="x0"``.
    data : path, optional
        The training dataset (for T and the forward process); default the checkpoint's.

    Notes
    -----
    ``alg1``/``alg2`` need the forward process D. A user's image has no recipe, so D is the
    checkpoint's dataset pipeline (read from its ``manifest.json``) with a fresh key per image,
    ``restore-<image key>``: deterministic ops (blur, JPEG, pixelate, …) are replayed exactly;
    a stochastic op's random field (a noise texture) is a new draw, not the unknown one in the
    image — as ``alg2_fresh`` in :func:`evaluate`. Ops that mix in other images cannot run.

    Returns
    -------
    list of Path
        The files written.
    """
    from PIL import Image

    from degrade.sampling import SAMPLERS, ModelRestorer
    from degrade.sources import list_sources, load_item

    say = log or (lambda s: print(s, file=sys.stderr))
    if sampler not in SAMPLERS:
        raise DegradeError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if blind == (step is not None):
        raise DegradeError("give either --step k (how degraded the images are) or --blind")
    c = _load_ckpt(ckpt)
    cfg = c["config"]
    target = cfg.get("target", "x0")
    if blind:
        if cfg.get("model") != "blind":
            raise DegradeError("this checkpoint's model takes a step input; give --step k (or train --model blind)")
        if sampler != "direct":
            raise DegradeError(f"--blind restores in one call (--sampler direct); {sampler} needs --step k")
        if target != "x0":
            raise DegradeError("--blind needs a model trained with --target x0")
    elif sampler == "rollout" and target != "prev":
        raise DegradeError("--sampler rollout needs a model trained with --target prev")
    elif sampler != "rollout" and target != "x0":
        raise DegradeError(f"--sampler {sampler} needs a model trained with --target x0; use --sampler rollout")

    pipe = None
    T = 1
    if not blind:
        pipe, manifest = _pipeline_of(cfg, data)
        T = int(manifest.get("steps") or pipe.steps)
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 1 <= step <= T:
            raise DegradeError(f"--step must be a whole number in 1..{T} (the training data's T), got {step!r}")
    items = list_sources([os.fspath(input)])
    restorer = ModelRestorer.from_checkpoint(c, steps=T, device=device, batch_size=1)
    channels = int(c["channels"])
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="degrade restore", unit="image", dynamic_ncols=True)
    for item in items:
        img_u8, _ = load_item(item, size=0)
        if img_u8.shape[2] != channels:
            img_u8 = (np.repeat(img_u8, 3, axis=2) if channels == 3
                      else to_uint8(to_float(img_u8).mean(axis=2, keepdims=True)))
        x = to_float(img_u8)[None]
        if blind:
            res = run_sampler("direct", restorer, x, 1, ts=np.zeros((1, 2), np.float32))
        else:
            assert pipe is not None and step is not None
            degs = None
            ts = np.array([pipe.ts], np.float32)
            if sampler in ("alg1", "alg2"):
                # A fresh key per image: the pipeline's own recipe for this image.
                recipe = pipe.run_encoded(img_u8, key=f"restore-{item.key}").recipe
                degs = [Degrader(recipe)]
            res = run_sampler(sampler, restorer, x, int(step), degs, ts=ts)
        rel = Path(item.id if item.kind == "file" else item.key)
        dest = out_dir / rel.with_suffix(".png")
        dest.parent.mkdir(parents=True, exist_ok=True)
        arr = to_uint8(res.x0[0])
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(dest)
        written.append(dest)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    say(f"degrade restore: {len(written)} image(s) restored ({sampler}"
        f"{', blind' if blind else f', step {step}'}) into {out_dir}")
    return written


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def write_rows_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write rows with exactly :data:`CSV_COLUMNS` (``inf`` written as ``inf``)."""
    p = Path(path)
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([r["op"], r["step"], r["method"], r["metric"], repr(float(r["value"])), r["convention"]])
    return p


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write JSON with non-finite numbers as strings (``"inf"``)."""
    p = Path(path)
    p.write_text(json.dumps(_jsonable(obj), indent=2) + "\n")
    return p
