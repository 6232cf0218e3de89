"""``degrade restore``: run a trained model on a user's own images (issue 7).

A user's image has no recipe. ``direct`` needs none; ``alg1``/``alg2`` replay the checkpoint's
dataset pipeline (from its ``manifest.json``) with a fresh key per image; ``rollout`` applies
a ``target="prev"`` model k times; ``--blind`` runs a ``blind`` model with no step at all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from degrade.errors import DegradeError
from degrade.evaluate import load_ckpt
from degrade.image import to_float, to_uint8
from degrade.sampling import Degrader, run_sampler

__all__ = ["restore"]


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
    c = load_ckpt(ckpt)
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


