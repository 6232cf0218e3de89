"""Step-by-step restoration benchmarks: ``degrade eval`` (issue 7).

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

Built on this: :func:`degrade.bench.bench` (``degrade bench``: one model per corruption, a
leaderboard) and :func:`degrade.restore.restore` (``degrade restore``: a user's own images).
Reports are written by :mod:`degrade.report`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from degrade.errors import DegradeError
from degrade.image import to_float
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
    "default_steps",
    "evaluate",
    "evaluate_restorer",
    "load_ckpt",
    "load_samples",
    "parse_steps",
    "write_json",
    "write_rows_csv",
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
    from degrade.shards.reader import decode_image, iter_records, resolve_source

    refs, _, _ = resolve_source(data if isinstance(data, (str, os.PathLike)) else list(data), split)
    out: list[EvalSample] = []
    for ref in refs:
        if ref.selected == 0:
            continue
        for rec in iter_records(ref.url):
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
    from degrade.shards.reader import decode_image, iter_records, resolve_source

    refs, _, _ = resolve_source(data if isinstance(data, (str, os.PathLike)) else list(data), None)
    found: dict[str, np.ndarray] = {}
    for ref in refs:
        for rec in iter_records(ref.url):
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


def load_ckpt(ckpt: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint dict: loaded from ``RUN/ckpt.pt`` (or the run folder), or passed through.

    Examples
    --------
    >>> load_ckpt({"model": {}, "config": {}})["config"]
    {}
    """
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

    c = load_ckpt(ckpt)
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
