"""Streaming PyTorch readers over degrade shards: one process, DataLoader workers, or DDP ranks.

:class:`SequenceDataset` turns the samples of a built dataset (WebDataset tars or Parquet
files) into training examples for reverse-step models::

    {"key": str, "k": int, "t": float, "T": int,
     "x": float32 C×H×W in [0, 1],        # the degraded frame x_k
     "target": float32 C×H×W in [0, 1]}   # x_0 (target="x0") or x_{k-1} (target="prev")

Where the shards come from
    A local dataset folder or its ``manifest.json``; an ``http(s)://`` URL of a
    ``manifest.json`` (shards are then fetched beside it); a list of shard paths or URLs, a
    brace pattern (``shards/shard-{000000..000009}.tar``) or a local glob. WebDataset shards
    are read as a stream (``urllib`` for HTTP, ``fsspec`` for other URL schemes), never
    downloaded whole; Parquet keeps its index in a footer, so a remote Parquet shard is read
    through ``fsspec`` when it can seek, else fetched into memory.

Splitting by rank and worker: equal counts
    Every rank must see the same number of examples, or DDP deadlocks on the last batch.
    The per-shard sample counts of the chosen split come from the manifest (a list of shards
    without one is counted by one reading pass when the dataset is created). Each epoch the
    shard order is permuted (seeded, identical on every rank), the samples are numbered
    0 … N−1 in that order, and rank r reads the contiguous range
    ``[r·n, (r+1)·n)`` with ``n = N // world_size``. The remainder — fewer than
    ``world_size`` samples — is **dropped** for that epoch; a different one each epoch,
    since the shard order changes. Within a rank the range is cut into one contiguous piece
    per DataLoader worker (sizes differ by at most one). Ranks and workers therefore read
    disjoint samples; a shard on the border of two ranges is read by both, each keeping its
    own part (the first skips, undecoded, the samples before its range).

    With ``steps="random"`` a sample gives exactly one example, so examples per rank are
    equal. With ``steps="all"`` a sample gives one example per stored step (per stored pair
    for ``target="prev"``): equal per rank with ``--keep all`` / ``every:K``, while
    ``pairs:N`` can store N or N+1 usable pairs per sample — use ``steps="random"`` or
    ``resampled=True`` for DDP training on such data. ``on_error="skip"`` drops bad samples
    and so also gives up the equal-count guarantee.

Randomness
    The step drawn for a sample, its crop offset and the shard order depend only on
    ``(seed, epoch, key)`` / ``(seed, epoch)`` — not on rank, worker count or shuffle buffer
    — so a sample gives the same example wherever it is read. The shuffle buffer's draws
    depend on ``(seed, epoch, rank, worker)``. :meth:`SequenceDataset.set_epoch` changes the
    shard order, the buffer draws and the drawn steps.

Only stored steps
    With ``--keep every:K`` or ``pairs:N`` only the steps that were stored are emitted; with
    ``target="prev"`` a step k is emitted only when k−1 is stored too (k−1 = 0 is the clean
    frame, always stored).

Virtual mode
    A dataset built with ``--keep none`` stores clean frames and recipes only; ``virtual``
    (on by default for such a dataset) replays each recipe in the loader
    (:func:`degrade.pipeline.replay_encoded`) for the steps an example needs. The examples
    are bit for bit those of the same build with ``--keep all``: the same uint8 pixels the
    writer would have stored, converted the same way. Ops that need partner images cannot
    be replayed in the loader yet and raise :class:`~degrade.errors.DegradeError`.

Resuming mid-stream
    ``start`` skips the first ``start`` items (examples, or batches with ``batch_size``)
    of this rank's stream without decoding them. With DataLoader workers, give
    ``batch_size`` here and ``DataLoader(dataset, batch_size=None)``: the loader then takes
    items from workers in turn (its default ``in_order=True``), which is how the skipped
    items are shared out among the workers. The trainer resumes this way.

Examples
--------
>>> import tempfile
>>> from degrade.build import build
>>> d = tempfile.mkdtemp()
>>> _ = build(["synthetic"], ops="blur", steps=4, limit=4, size=16, out=d,
...           split="train=1", workers=1, progress=False, log=lambda s: None)
>>> ds = SequenceDataset(d, seed=0)
>>> ex = next(iter(ds))
>>> sorted(ex), tuple(ex["x"].shape), ex["x"].dtype
(['T', 'k', 'key', 't', 'target', 'x'], (3, 16, 16), torch.float32)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from degrade.errors import DegradeError
from degrade.seeding import rng_for
from degrade.shards.reader import (  # re-exported: the reader's public names live here too
    ShardRef,
    decode_image,
    expand_braces,
    iter_records,
    open_url,
    resolve_source,
)

__all__ = [
    "SequenceDataset",
    "ShardRef",
    "collate",
    "decode_image",
    "expand_braces",
    "open_url",
    "resolve_source",
    "to_tensor",
]

TARGETS = ("x0", "prev")
STEP_MODES = ("random", "all")
ON_ERROR = ("raise", "skip")
def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W×C → float32 C×H×W in [0, 1] (x / 255, the one conversion used everywhere).

    Examples
    --------
    >>> to_tensor(np.full((2, 2, 1), 255, np.uint8)).tolist()
    [[[1.0, 1.0], [1.0, 1.0]]]
    """
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(torch.float32).div_(255.0)


def collate(examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack examples into a batch: ``x``/``target`` B×C×H×W, ``k``/``T`` int64, ``t``
    float32, ``key`` a list.

    Raises
    ------
    DegradeError
        If the images differ in shape (build with one ``--size``, or give ``crop``).

    Examples
    --------
    >>> ex = {"key": "a", "k": 1, "t": 0.5, "T": 2, "x": torch.zeros(3, 4, 4),
    ...       "target": torch.zeros(3, 4, 4)}
    >>> b = collate([ex, ex])
    >>> tuple(b["x"].shape), b["k"].tolist(), b["key"]
    ((2, 3, 4, 4), [1, 1], ['a', 'a'])
    """
    if not examples:
        raise DegradeError("cannot collate an empty batch")
    shapes = {tuple(e["x"].shape) for e in examples} | {tuple(e["target"].shape) for e in examples}
    if len(shapes) > 1:
        raise DegradeError(
            f"examples of different shapes in one batch ({sorted(shapes)}); build the dataset "
            "with one --size or read it with crop=S"
        )
    return {
        "key": [e["key"] for e in examples],
        "k": torch.tensor([int(e["k"]) for e in examples], dtype=torch.int64),
        "t": torch.tensor([float(e["t"]) for e in examples], dtype=torch.float32),
        "T": torch.tensor([int(e["T"]) for e in examples], dtype=torch.int64),
        "x": torch.stack([e["x"] for e in examples]),
        "target": torch.stack([e["target"] for e in examples]),
    }


# -- partition ---------------------------------------------------------------------------------


def _ranges(counts: Sequence[int], start: int, stop: int) -> list[tuple[int, int, int]]:
    """Map a global sample range to ``(position, lo, hi)`` pieces of the shards in order."""
    pieces = []
    offset = 0
    for pos, n in enumerate(counts):
        lo, hi = max(start, offset), min(stop, offset + n)
        if lo < hi:
            pieces.append((pos, lo - offset, hi - offset))
        offset += n
        if offset >= stop:
            break
    return pieces


def _draw_step(seed: int, epoch: int, key: str, ks: Sequence[int]) -> int:
    return int(ks[int(rng_for(seed, "data-step", epoch, key).integers(len(ks)))])


def _shuffled(items: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """A shuffle buffer: hold ``size`` items, emit a random one as each new one arrives."""
    buf: list[Any] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        i = int(rng.integers(size))
        out, buf[i] = buf[i], item
        yield out
    order = rng.permutation(len(buf))
    for i in order:
        yield buf[int(i)]


def _default_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _int_arg(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise DegradeError(f"{name} must be a whole number ≥ {lo}, got {value!r}")
    return int(value)


# -- the dataset -------------------------------------------------------------------------------


class SequenceDataset(IterableDataset):
    """Training examples (x_k, k, t_k, target) streamed from degrade shards.

    Parameters
    ----------
    source : str, path or list of str
        A dataset folder, a ``manifest.json`` path or ``http(s)://`` URL, one shard, a list
        of shards, a brace pattern or a local glob (see the module docs).
    rank, world_size : int, optional
        This process's rank and the number of ranks. Default: torch.distributed's when it is
        initialised when the dataset is created, else 0 and 1.
    seed : int
        Seed of the shard order, shuffle buffer, drawn steps and crops.
    target : {"x0", "prev"}
        The clean image (Cold Diffusion) or the previous step x_{k-1} ("given image k,
        predict k-1"; k−1 = 0 is the clean frame).
    split : str or None
        Samples of this split only (``"train"``, ``"val"``, ``"test"``); None reads all.
    steps : {"random", "all"}
        One example per sample with a step drawn uniformly among the usable ones (seeded by
        seed, epoch and key), or one example per usable step, in ascending k.
    shuffle_buffer : int
        Samples held by the shuffle buffer (per worker); 0 reads in shard order without
        permuting the shards (for evaluation). With ``steps="random"`` only the drawn
        frames of a sample are held.
    resampled : bool
        An endless stream: epoch after epoch (``epoch``, ``epoch + 1``, ...) instead of one
        pass that ends.
    virtual : bool, optional
        Replay recipes instead of reading stored frames. Default: on for a ``--keep none``
        dataset (or a sample stored without frames), off otherwise.
    on_error : {"raise", "skip"}
        A corrupt sample or unreadable shard stops the stream (``raise``), or is dropped with
        a warning (``skip``; equal counts per rank are then not guaranteed).
    crop : int, optional
        Cut an S×S window (the same for x and target) out of larger images: at a seeded
        random offset when shuffling, centred when ``shuffle_buffer=0``.
    batch_size : int, optional
        Yield collated batches (:func:`collate`) of this many examples instead of single
        examples; use with ``DataLoader(batch_size=None)``.
    start : int
        Items (examples, or batches with ``batch_size``) of this rank's stream to skip —
        how a resumed run continues where it stopped. See the module docs.
    epoch : int
        The first epoch (also settable with :meth:`set_epoch`).

    Attributes
    ----------
    shards : list of ShardRef
    manifest : dict or None
    manifest_sha256 : str or None
        SHA-256 of the manifest's bytes (what checkpoints record).
    steps_total : int or None
        T, when the manifest gives it.
    samples_per_rank : int
        Samples each rank reads per epoch.

    Raises
    ------
    DegradeError
        For a source that cannot be read, fewer samples than ranks, a bad option, or
        ``target="prev"`` on a dataset whose stored steps hold no (k−1, k) pair.

    Examples
    --------
    >>> import tempfile
>>> from degrade.build import build
    >>> d = tempfile.mkdtemp()
    >>> _ = build(["synthetic"], ops="blur", steps=4, limit=6, size=16, out=d,
    ...           split="train=1", shard_size=2, workers=1, progress=False,
    ...           log=lambda s: None)
    >>> [SequenceDataset(d, rank=r, world_size=2).samples_per_rank for r in (0, 1)]
    [3, 3]
    >>> len(list(SequenceDataset(d, steps="all", target="prev")))
    24
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        rank: int | None = None,
        world_size: int | None = None,
        seed: int = 0,
        target: str = "x0",
        split: str | None = "train",
        steps: str = "random",
        shuffle_buffer: int = 500,
        resampled: bool = False,
        virtual: bool | None = None,
        on_error: str = "raise",
        crop: int | None = None,
        batch_size: int | None = None,
        start: int = 0,
        epoch: int = 0,
    ) -> None:
        super().__init__()
        if target not in TARGETS:
            raise DegradeError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        if steps not in STEP_MODES:
            raise DegradeError(f"steps must be one of {', '.join(STEP_MODES)}, got {steps!r}")
        if on_error not in ON_ERROR:
            raise DegradeError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        self.seed = _int_arg("seed", seed, 0)
        self.target = target
        self.split = split
        self.steps = steps
        self.shuffle_buffer = _int_arg("shuffle_buffer", shuffle_buffer, 0)
        self.resampled = bool(resampled)
        self.virtual = virtual
        self.on_error = on_error
        self.crop = None if crop is None else _int_arg("crop", crop, 1)
        self.batch_size = None if batch_size is None else _int_arg("batch_size", batch_size, 1)
        self.start = _int_arg("start", start, 0)
        self.epoch = _int_arg("epoch", epoch, 0)
        default_rank, default_world = _default_rank_world()
        self.world_size = _int_arg("world_size", default_world if world_size is None else world_size, 1)
        self.rank = _int_arg("rank", default_rank if rank is None else rank, 0)
        if self.rank >= self.world_size:
            raise DegradeError(f"rank {self.rank} is not below world_size {self.world_size}")

        self.shards, self.manifest, self.manifest_sha256 = resolve_source(source, split)
        total = sum(r.selected for r in self.shards)
        where = f" of split {split!r}" if split is not None else ""
        if total == 0:
            raise DegradeError(f"{_describe(source)}: no samples{where} to read")
        self.samples_per_rank = total // self.world_size
        if self.samples_per_rank == 0:
            raise DegradeError(
                f"{_describe(source)}: {total} samples{where} cannot be shared among "
                f"{self.world_size} ranks (each rank needs at least one)"
            )
        self.steps_total: int | None = None
        self._keep: dict[str, Any] | None = None
        if self.manifest is not None:
            self.steps_total = int(self.manifest.get("steps") or 0) or None
            self._keep = (self.manifest.get("config") or {}).get("keep")
            self._check_keep()

    def _check_keep(self) -> None:
        keep = self._keep or {}
        if keep.get("mode") == "none" and self.virtual is False:
            raise DegradeError(
                "the dataset was built with --keep none (no frames stored); read it with virtual=True"
            )
        if self.target == "prev" and keep.get("mode") == "every" and not self._virtual_for([]):
            from degrade.build import stored_steps

            ks = set(stored_steps(keep, int(self.steps_total or 0), seed=0, key=""))
            if not any(k - 1 in ks or k == 1 for k in ks):
                raise DegradeError(
                    f"target='prev' needs stored (k-1, k) pairs, but --keep every:{keep.get('n')} "
                    f"stores steps {sorted(ks)}; use target='x0', a dataset built with --keep all "
                    "or pairs:N, or virtual=True"
                )
        if self._virtual_for([]):
            pipeline = ((self.manifest or {}).get("config") or {}).get("pipeline") or {}
            for entry in pipeline.get("ops", []):
                _check_replayable(entry.get("op") if isinstance(entry, Mapping) else None)

    def _virtual_for(self, frames: Sequence[Any]) -> bool:
        if self.virtual is not None:
            return bool(self.virtual)
        if self._keep is not None:
            return self._keep.get("mode") == "none"
        return len(frames) == 0

    # -- epochs and partition ---------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: it changes the shard order, shuffle draws and drawn steps."""
        self.epoch = _int_arg("epoch", epoch, 0)

    def __len__(self) -> int:
        raise TypeError(
            "a SequenceDataset streams; its length per rank is samples_per_rank (one example "
            "per sample with steps='random')"
        )

    def _order(self, epoch: int) -> list[int]:
        if self.shuffle_buffer == 0:
            return list(range(len(self.shards)))
        return [int(i) for i in rng_for(self.seed, "data-shards", epoch).permutation(len(self.shards))]

    def _worker_range(self, worker: int, workers: int) -> tuple[int, int]:
        n = self.samples_per_rank
        base = self.rank * n
        return base + (n * worker) // workers, base + (n * (worker + 1)) // workers

    def _pieces(self, epoch: int, worker: int, workers: int) -> list[tuple[ShardRef, int, int]]:
        order = self._order(epoch)
        counts = [self.shards[i].selected for i in order]
        a, b = self._worker_range(worker, workers)
        return [(self.shards[order[pos]], lo, hi) for pos, lo, hi in _ranges(counts, a, b)]

    # -- records ----------------------------------------------------------------------------
    def _records(self, pieces: list[tuple[ShardRef, int, int]], epoch: int) -> Iterator[dict[str, Any]]:
        for ref, lo, hi in pieces:
            idx = 0
            stream = iter_records(ref.url)
            try:
                while idx < hi:
                    try:
                        rec = next(stream, None)
                    except DegradeError as exc:
                        if self.on_error == "raise":
                            raise
                        warnings.warn(f"degrade.data: skipping the rest of a shard: {exc}", stacklevel=2)
                        break
                    if rec is None:
                        if self.on_error == "raise":
                            raise DegradeError(
                                f"{ref.url}: ended after {idx} samples{self._of_split()}, "
                                f"the manifest says {ref.selected}"
                            )
                        break
                    if self.split is not None and rec["split"] != self.split:
                        continue
                    idx += 1
                    if idx - 1 < lo:
                        continue
                    try:
                        slim = self._prepare(rec, epoch)
                    except DegradeError as exc:
                        if self.on_error == "raise":
                            raise
                        warnings.warn(f"degrade.data: skipping sample {rec.get('key')!r}: {exc}", stacklevel=2)
                        continue
                    if slim is not None:
                        yield slim
            finally:
                stream.close()

    def _of_split(self) -> str:
        return f" of split {self.split!r}" if self.split is not None else ""

    def _prepare(self, rec: dict[str, Any], epoch: int) -> dict[str, Any]:
        """Decide the sample's steps now and keep only the bytes they need."""
        recipe = rec["recipe"]
        key = rec["key"]
        steps_list = recipe.get("steps")
        if not isinstance(steps_list, list) or not steps_list:
            raise DegradeError(f"sample {key!r}: the recipe has no steps")
        T = len(steps_list)
        virtual = self._virtual_for(rec["frames"])
        if virtual:
            for entry in recipe.get("ops", []):
                _check_replayable(entry.get("op") if isinstance(entry, Mapping) else None)
            stored = set(range(1, T + 1))
        else:
            stored = {k for k, _, _ in rec["frames"]}
            if not stored:
                raise DegradeError(
                    f"sample {key!r} has no stored frames (built with --keep none?); read it with virtual=True"
                )
        if self.target == "prev":
            usable = sorted(k for k in stored if k == 1 or k - 1 in stored)
        else:
            usable = sorted(stored)
        if not usable:
            raise DegradeError(f"sample {key!r}: no stored (k-1, k) pair for target='prev'")
        ks = usable if self.steps == "all" else [_draw_step(self.seed, epoch, key, usable)]
        need = set(ks) | ({k - 1 for k in ks} if self.target == "prev" else set())
        frames = {k: (ext, data) for k, ext, data in rec["frames"] if k in need} if not virtual else {}
        return {"key": key, "clean": rec["clean"], "frames": frames, "recipe": recipe,
                "ks": ks, "T": T, "virtual": virtual}

    # -- examples ---------------------------------------------------------------------------
    def _example(self, rec: dict[str, Any], k: int, epoch: int, cache: dict[Any, Any]) -> dict[str, Any]:
        key = rec["key"]
        clean = decode_image("png", rec["clean"])
        if rec["virtual"]:
            # With steps="all" the examples of a sample come one after another: replay once.
            ident = (key, tuple(rec["ks"]))
            frames = cache.get(ident)
            if frames is None:
                frames = _replay(rec["recipe"], clean, max(rec["ks"]), self.target, rec["ks"])
                cache.clear()
                cache[ident] = frames
            x = frames[k]
            y = clean if self.target == "x0" or k == 1 else frames[k - 1]
        else:
            x = decode_image(*rec["frames"][k])
            if self.target == "x0" or k == 1:
                y = clean
            else:
                y = decode_image(*rec["frames"][k - 1])
        if x.shape != y.shape:
            raise DegradeError(f"sample {key!r}: step {k} has shape {x.shape}, its target {y.shape}")
        if self.crop is not None:
            x, y = self._crop(x, y, key, epoch)
        t = rec["recipe"]["steps"][k - 1].get("t")
        return {"key": key, "k": int(k), "t": float(t) if t is not None else k / rec["T"],
                "T": int(rec["T"]), "x": to_tensor(x), "target": to_tensor(y)}

    def _crop(self, x: np.ndarray, y: np.ndarray, key: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.crop
        h, w = x.shape[:2]
        if h < s or w < s:
            raise DegradeError(f"sample {key!r}: image {h}×{w} is smaller than crop={s}")
        if self.shuffle_buffer == 0:
            top, left = (h - s) // 2, (w - s) // 2
        else:
            rng = rng_for(self.seed, "data-crop", epoch, key)
            top, left = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
        return x[top : top + s, left : left + s], y[top : top + s, left : left + s]

    def _light(self, epoch: int, worker: int, workers: int) -> Iterator[tuple[dict[str, Any], int]]:
        records = self._records(self._pieces(epoch, worker, workers), epoch)
        if self.shuffle_buffer > 0:
            rng = rng_for(self.seed, "data-shuffle", epoch, self.rank, worker)
            records = _shuffled(records, self.shuffle_buffer, rng)
        for rec in records:
            for k in rec["ks"]:
                yield rec, k

    def _examples(self, worker: int, workers: int, skip: int) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        if self.steps == "random" and self.on_error == "raise":
            a, b = self._worker_range(worker, workers)
            per_epoch = b - a
            if per_epoch == 0:
                return
            if self.resampled:  # whole epochs skipped by arithmetic: nothing read
                epoch += skip // per_epoch
                skip %= per_epoch
        cache: dict[Any, Any] = {}
        while True:
            for rec, k in self._light(epoch, worker, workers):
                if skip:
                    skip -= 1
                    continue
                try:
                    yield self._example(rec, k, epoch, cache)
                except DegradeError as exc:
                    if self.on_error == "raise":
                        raise
                    warnings.warn(f"degrade.data: skipping sample {rec['key']!r}: {exc}", stacklevel=2)
            if not self.resampled:
                return
            epoch += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        # The loader takes items from workers 0, 1, ..., W-1 in turn, so in the first run
        # worker w produced items w, w + W, ... A resumed loader again asks worker 0 first,
        # for item `start`: worker w plays the part of worker (w + start) mod W and skips
        # the items that worker had produced.
        worker = (worker + self.start) % workers
        skip_items = len(range(worker, self.start, workers))
        per_item = self.batch_size or 1
        examples = self._examples(worker, workers, skip_items * per_item)
        if self.batch_size is None:
            yield from examples
            return
        batch: list[dict[str, Any]] = []
        for ex in examples:
            batch.append(ex)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch:
            yield collate(batch)


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    items = [os.fspath(s) for s in source]
    return items[0] + (f" (+{len(items) - 1} more)" if len(items) > 1 else "")


def _check_replayable(name: Any) -> None:
    if not isinstance(name, str):
        return
    from degrade.registry import get_op

    op = get_op(name)
    if op.needs:
        raise DegradeError(
            f"virtual mode cannot replay op '{op.name}': it needs {', '.join(op.needs)} "
            "(other images of the dataset), which the loader does not provide yet; build the "
            "dataset with --keep all (or every:K / pairs:N)"
        )


def _replay(recipe: Mapping[str, Any], clean: np.ndarray, kmax: int, target: str,
            ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Replay only what the examples need: the needed steps (absolute) or steps 1…kmax.

    The recipe is checked whole (:func:`degrade.pipeline.check_recipe`, as
    :func:`~degrade.pipeline.replay_encoded` does), then the chosen steps run through
    :func:`~degrade.pipeline.execute`, the one code path of building and replaying.
    """
    from degrade.pipeline import check_recipe, execute

    check_recipe(recipe)
    key = recipe["key"]
    if recipe.get("external"):
        raise DegradeError(f"sample {key!r} is an external sequence: its frames cannot be replayed")
    if recipe.get("partners"):
        raise DegradeError(
            f"virtual mode cannot replay sample {key!r}: it mixes in other images of the dataset "
            "(partners), which the loader does not provide yet; build with --keep all"
        )
    if list(clean.shape) != list(recipe["shape"]):
        raise DegradeError(
            f"sample {key!r}: clean frame has shape {list(clean.shape)}, the recipe says {recipe['shape']}"
        )
    steps = recipe["steps"]
    if recipe["pipeline"]["mode"] == "absolute":
        # Only the needed steps' frames are made; of the others, execute computes just what
        # later steps build on (an op that advances step by step, such as blur).
        need = sorted(set(ks) | ({k - 1 for k in ks if k > 1} if target == "prev" else set()))
        frames, _ = execute(clean, dict(recipe, steps=steps[: need[-1]]), only=need)
        return {k: frames[k] for k in need}
    frames, _ = execute(clean, dict(recipe, steps=steps[:kmax]))
    return {k: frames[k] for k in range(1, kmax + 1)}
