"""The dataset builder: plan shards → ``build_shard`` in parallel → manifest.

Shards are planned by count from the sorted source list, so shard i holds the same samples
whichever machine builds it and whatever the worker count. Each shard is written to a
temporary name and renamed when complete; a small record of it (``.parts/<shard>.json``,
with its checksum) is written after, so a re-run keeps the shards that are finished and
intact, removes stale temporary files and builds the rest. ``plan.json`` (the normalised
config) is written first and ``manifest.json`` last.
"""

from __future__ import annotations

import glob as _glob
import json
import math
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from degrade.errors import DegradeError
from degrade.image import encode_png
from degrade.parallel import default_workers, run_tasks, start_workers, tune_malloc_in_dask_worker
from degrade.pipeline import ExternalPipeline, Pipeline
from degrade.registry import get_op
from degrade.seeding import rng_for
from degrade.shards import (
    SHARD_SUFFIX,
    shard_name,
    writer_for,
)
from degrade.shards.manifest import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    PLAN_NAME,
    is_temp_name,
    library_versions,
    sha256_file,
    write_json_atomic,
)
from degrade.sources import (
    SEQUENCES_PREFIX,
    SourceItem,
    list_sources,
    load_item,
    load_sequence,
    parse_split,
    sequence_files,
    split_for,
)

__all__ = ["BuildResult", "build", "build_shard", "pair_steps", "parse_keep", "stored_steps"]

PLAN_VERSION = 1
PARTS_DIR = ".parts"
POOL_DEFAULT_SIZE = 64
POOL_DEFAULT_LIMIT = 1000
FILE_DEFAULT_SIZE = 256
CODECS = ("auto", "png")
FORMATS = tuple(SHARD_SUFFIX)
BACKENDS = ("loky", "dask", "ray")


# -- options ----------------------------------------------------------------------------

def parse_keep(spec: str, steps: int) -> dict[str, Any]:
    """Parse ``--keep``: ``all``, ``every:K``, ``pairs:N`` or ``none``.

    Examples
    --------
    >>> parse_keep("every:10", 50)
    {'mode': 'every', 'n': 10}
    """
    if not isinstance(spec, str):
        raise DegradeError(f"--keep must be a string, got {spec!r}")
    s = spec.strip()
    if s in ("all", "none"):
        return {"mode": s}
    kind, sep, num = s.partition(":")
    if kind in ("every", "pairs") and sep:
        try:
            n = int(num)
        except ValueError:
            n = 0
        if n < 1:
            raise DegradeError(f"--keep {spec}: {kind}:N needs a positive whole number N")
        if kind == "every" and n > steps:
            raise DegradeError(f"--keep {spec}: K={n} is larger than --steps {steps}")
        if kind == "pairs" and n > steps:
            raise DegradeError(f"--keep {spec}: {n} pairs asked but there are only {steps} steps")
        return {"mode": kind, "n": n}
    raise DegradeError(f"--keep '{spec}' not understood; use all, every:K, pairs:N or none")


def stored_steps(keep: Mapping[str, Any], steps: int, *, seed: int, key: str) -> list[int]:
    """Return the step indices k ≥ 1 stored for one sample (the clean frame is always stored).

    ``every:K`` keeps K, 2K, … and always T; ``pairs:N`` keeps N distinct steps k drawn for
    the sample (seeded) and each one's predecessor k − 1, so (x_k, x_{k-1}) pairs are complete.

    Examples
    --------
    >>> stored_steps({"mode": "every", "n": 4}, 10, seed=0, key="a")
    [4, 8, 10]
    """
    mode = keep["mode"]
    if mode == "all":
        return list(range(1, steps + 1))
    if mode == "none":
        return []
    n = int(keep["n"])
    if mode == "every":
        ks = set(range(n, steps + 1, n)) | {steps}
        return sorted(ks)
    ks = pair_steps(steps, n, seed=seed, key=key)
    out = set(ks) | {k - 1 for k in ks}
    out.discard(0)
    return sorted(out)


def pair_steps(steps: int, n: int, *, seed: int, key: str) -> list[int]:
    """Return the N distinct steps k (ascending) whose (x_k, x_{k-1}) pairs ``pairs:N`` keeps.

    Examples
    --------
    >>> len(pair_steps(10, 3, seed=0, key="a"))
    3
    """
    ks = rng_for(seed, key, "keep-pairs").choice(np.arange(1, steps + 1), size=n, replace=False)
    return sorted(int(k) for k in ks)


# -- one shard ----------------------------------------------------------------------------

@dataclass
class ShardTask:
    """What a worker needs to build one shard (small and picklable)."""

    index: int
    name: str
    path: str
    items: list[SourceItem]
    config: dict[str, Any]
    #: The build's whole sorted source list, only when an op mixes in other images.
    everything: list[SourceItem] | None = None


class SourcePartners:
    """Partner images for ops that mix in other images (``patches``, ``blend``).

    Partners are drawn, keyed by (seed, sample key, op position, op name), from the build's
    sorted source list, within the sample's split (so held-out samples never show training
    images), never the sample itself; ``mislabeled=true`` also requires another label.
    Unreadable candidates are passed over in the drawn order. The same draw happens in any
    worker, so the bytes do not depend on the worker count.

    Examples
    --------
    >>> from degrade.sources import list_sources
    >>> items = list_sources(["synthetic"], limit=4)
    >>> prov = SourcePartners(items, size=8, splits={"train": 1.0}, seed=0)
    >>> [k for k, _ in prov.choose(seed=0, key=items[0].key, position=0, op=None, count=2,
    ...                           params={}, shape=(8, 8, 3))] != []
    True
    """

    def __init__(self, items: Sequence[SourceItem], *, size: int, splits: Mapping[str, float], seed: int) -> None:
        self.items = list(items)
        self.size = size
        self.by_key = {it.key: it for it in self.items}
        self.split = {it.key: split_for(it, splits, seed) for it in self.items}

    def choose(self, *, seed: int, key: str, position: int, op: Any, count: int,
               params: Mapping[str, Any], shape: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
        """Return ``count`` (key, uint8 image of ``shape``) partner pairs for sample ``key``."""
        import cv2

        me = self.by_key.get(key)
        my_split = self.split.get(key)
        want_other_label = bool(params.get("mislabeled", False))
        cands = [
            it for it in self.items
            if it.key != key and self.split[it.key] == my_split
            and (not want_other_label or (it.label is not None and me is not None and it.label != me.label))
        ]
        name = op.name if op is not None else "op"
        order = rng_for(seed, key, position, name, "partners").permutation(len(cands))
        picks: list[tuple[str, np.ndarray]] = []
        for j in order:
            if len(picks) == count:
                break
            try:
                img, _ = load_item(cands[int(j)], size=self.size)
            except DegradeError:
                continue
            if img.shape[:2] != tuple(shape[:2]):
                img = cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
                if img.ndim == 2:
                    img = img[:, :, None]
            picks.append((cands[int(j)].key, img))
        if not picks:
            what = " with another label" if want_other_label else ""
            raise DegradeError(
                f"{key}: op '{name}' needs partner images{what} in split '{my_split}' and found none"
            )
        # Small splits may hold fewer distinct partners than asked: reuse them in draw order.
        return [picks[i % len(picks)] for i in range(count)]


def _sample_meta(item: SourceItem, meta: Mapping[str, Any], split: str) -> dict[str, Any]:
    return {"source": dict(meta), "split": split, "label": item.label}


def build_shard(task: ShardTask, progress: Any = None) -> dict[str, Any]:
    """Build one shard: load, degrade and write every sample of ``task``; return its record.

    Unreadable sources are skipped and listed (``strict`` turns a skip into an error). The
    shard is complete on disk when this returns, and only then.

    Examples
    --------
    >>> # see degrade.build(); build_shard is its unit of parallel work
    """
    tune_malloc_in_dask_worker()
    cfg = task.config
    pipe = Pipeline.from_dict(cfg["pipeline"])
    splits = cfg["split"]
    keep = cfg["keep"]
    skipped: list[dict[str, str]] = []
    split_counts: Counter[str] = Counter()
    frames_written = 0
    keys: list[str] = []
    partners = (
        SourcePartners(task.everything, size=cfg["size"], splits=splits, seed=cfg["seed"])
        if task.everything is not None else None
    )
    with writer_for(cfg["format"], task.path, steps=pipe.steps) as writer:
        for item in task.items:
            try:
                clean, meta = load_item(item, size=cfg["size"])
            except DegradeError as exc:
                if cfg["strict"]:
                    raise DegradeError(f"{exc} (--strict: stopping)") from None
                skipped.append({"source": item.id, "reason": str(exc)})
                if progress is not None:
                    progress.put(pipe.steps + 1)
                continue
            split = split_for(item, splits, cfg["seed"])
            try:
                if isinstance(pipe, ExternalPipeline):
                    frames_u8, meta = load_sequence(item, size=cfg["size"])
                    seq = pipe.from_frames(frames_u8, item.key, **_sample_meta(item, meta, split))
                else:
                    seq = pipe.run_encoded(
                        clean, item.key, partners=partners, decode=cfg["codec"] != "auto",
                        **_sample_meta(item, meta, split)
                    )
            except DegradeError as exc:
                if cfg["strict"]:
                    raise
                skipped.append({"source": item.id, "reason": str(exc)})
                if progress is not None:
                    progress.put(pipe.steps + 1)
                continue
            ks = stored_steps(keep, pipe.steps, seed=pipe.seed, key=item.key)
            seq.recipe["stored_steps"] = ks
            frames = []
            for k in ks:
                payload = seq.payloads[k]
                if payload is not None and cfg["codec"] == "auto":
                    frames.append((k, payload[0], payload[1]))
                else:
                    frames.append((k, "png", encode_png(seq.frames[k], compress_level=cfg["png_level"])))
            writer.write(
                {
                    "key": item.key,
                    "clean": encode_png(seq.frames[0], compress_level=cfg["png_level"]),
                    "frames": frames,
                    "recipe": seq.recipe,
                    "label": item.label,
                    "split": split,
                }
            )
            keys.append(item.key)
            split_counts[split] += 1
            frames_written += 1 + len(frames)
            if progress is not None:
                progress.put(pipe.steps + 1)
    info = writer.info.to_dict()
    record = {
        **info,
        "index": task.index,
        "skipped": skipped,
        "splits": dict(sorted(split_counts.items())),
        "frames": frames_written,
        "keys_digest": _digest(keys),
        "planned": len(task.items),
        "ids_digest": _digest(i.id for i in task.items),
    }
    # The shard's record is written by the worker right after the shard itself, so a build
    # killed after this point keeps the shard on resume (the record carries its sha256).
    parts = Path(task.path).parent / PARTS_DIR
    try:
        parts.mkdir(exist_ok=True)
        write_json_atomic(parts / f"{task.name}.json", record)
    except BaseException:
        # A shard without its record would be rebuilt anyway; remove it now so the disk
        # holds nothing that looks finished (and the space comes back on a full disk).
        Path(task.path).unlink(missing_ok=True)
        raise
    return record


def _worker_ready() -> bool:
    # Run in a fresh loky worker: unpickling it imports this module, all build_shard needs.
    return True


def _digest(values: Iterable[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for v in values:
        h.update(v.encode("utf-8") + b"\n")
    return h.hexdigest()


# -- the build -------------------------------------------------------------------------------

@dataclass
class BuildResult:
    """What :func:`build` returns: where the data is and its manifest (None for a dry run)."""

    out: Path
    manifest: dict[str, Any] | None
    plan: dict[str, Any]
    summary: str
    kept_shards: int = 0
    built_shards: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _resolve_inputs(inputs: Sequence[str] | None) -> list[str]:
    if inputs is None:
        return []
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return [str(i) for i in inputs]


def _config_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    # Nested dicts (the pipeline) are compared key by key, so the message names the field
    # that differs ("pipeline.steps: 4 -> 5") instead of two truncated JSON blobs.
    diffs = []
    for k in sorted(set(old) | set(new)):
        a_v, b_v = old.get(k), new.get(k)
        if isinstance(a_v, Mapping) and isinstance(b_v, Mapping) and a_v != b_v:
            diffs += _config_diff(a_v, b_v, f"{prefix}{k}.")
        elif a_v != b_v:
            a = json.dumps(old.get(k), sort_keys=True)
            b = json.dumps(new.get(k), sort_keys=True)
            if len(a) > 60:
                a = a[:57] + "..."
            if len(b) > 60:
                b = b[:57] + "..."
            diffs.append(f"{prefix}{k}: {a} -> {b}")
    return diffs


def _our_files(out: Path) -> list[Path]:
    pats = ["shard-*", ".shard-*", PLAN_NAME, MANIFEST_NAME, f".{MANIFEST_NAME}*", f".{PLAN_NAME}*"]
    found: list[Path] = []
    for p in pats:
        found += [Path(x) for x in _glob.glob(str(out / p))]
    if (out / PARTS_DIR).is_dir():
        found.append(out / PARTS_DIR)
    return found


def _remove(paths: Iterable[Path]) -> None:
    import shutil

    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _check_kept_shard(out: Path, name: str, planned_ids_digest: str) -> dict[str, Any] | None:
    part = out / PARTS_DIR / f"{name}.json"
    shard = out / name
    if not shard.exists() or not part.exists():
        return None
    try:
        record = json.loads(part.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("ids_digest") != planned_ids_digest:
        return None
    if shard.stat().st_size != record.get("bytes") or sha256_file(shard) != record.get("sha256"):
        return None
    return record


def _remove_temp_files(out_dir: Path) -> None:
    _remove(p for d in (out_dir, out_dir / PARTS_DIR) if d.is_dir()
            for p in d.iterdir() if p.is_file() and is_temp_name(p.name))


def build(
    inputs: Sequence[str] | str | None = None,
    *,
    ops: str | None = None,
    steps: int | None = None,
    pipeline: Pipeline | None = None,
    out: str | os.PathLike[str] = "degrade-data",
    format: str = "webdataset",
    size: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    shard_size: int = 256,
    keep: str = "all",
    codec: str = "auto",
    mode: str = "absolute",
    schedule: str | Sequence[float] = "linear",
    split: str | Mapping[str, float] | None = None,
    overwrite: bool = False,
    strict: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
) -> BuildResult:
    """Build a sharded dataset of degradation sequences.

    Parameters
    ----------
    inputs : str or list of str, optional
        Folders, globs, ``.txt`` lists, WebDataset tars, Parquet files, ``samples`` or
        ``synthetic``. None: the built-in sample pool (``POOL_DEFAULT_LIMIT`` crops unless
        ``limit`` says otherwise).
    ops, steps : str, int
        The ``--ops`` list and T (or give ``pipeline``).
    out : path
        Output folder (created).
    format : {"webdataset", "parquet"}
    size : int, optional
        Short side resized and centre-cropped to size×size; 0 keeps originals. Default 64
        for the sample pool, 256 otherwise.
    limit : int, optional
        The first N sources in sorted order.
    seed : int
        Seed of every random field, split and kept-step draw.
    workers : int, optional
        Parallel processes (default: all cores). Does not change the output bytes.
    shard_size : int
        Samples per shard.
    keep : str
        ``all``, ``every:K``, ``pairs:N`` or ``none``.
    codec : {"auto", "png"}
        ``auto`` stores ``jpeg`` steps as their JPEG bytes, the rest as PNG; ``png`` stores
        every frame as PNG.
    mode, schedule : str
        Pipeline mode and schedule (when ``ops`` is given).
    split : str or mapping
        ``train=0.9,val=0.05,test=0.05`` by default; assigned by source.
    overwrite, strict, dry_run, progress : bool
    backend : {"loky", "dask", "ray"}
        Where the shard tasks run: local processes (joblib's loky), a Dask cluster or Ray,
        through joblib's backends. The bytes are the same whatever the backend.
    scheduler : str, optional
        With ``backend="dask"``: the scheduler address (``tcp://host:8786``); without it a
        local Dask cluster with ``workers`` processes is started. With ``ray``: the
        ``ray.init`` address (default: a local Ray).

    Returns
    -------
    BuildResult

    Examples
    --------
    >>> import tempfile
    >>> r = build(["synthetic"], ops="blur", steps=2, limit=3, size=16,
    ...           out=tempfile.mkdtemp(), workers=1, progress=False, log=lambda s: None)
    >>> r.manifest["samples"]
    3
    """
    say = log if log is not None else (lambda s: print(s, file=sys.stderr))
    t_start = time.perf_counter()
    in_list = _resolve_inputs(inputs)
    external = [i for i in in_list if i.startswith(SEQUENCES_PREFIX)]
    if external:
        if len(external) != len(in_list):
            raise DegradeError("sequences:DIR inputs cannot be mixed with other inputs in one build")
        if ops is not None or pipeline is not None:
            raise DegradeError("sequences:DIR inputs carry their own frames; give no --ops or --pipeline")
        if keep == "none":
            raise DegradeError("--keep none needs recipes that replay; external sequences cannot be replayed")
        if steps is None:
            first = list_sources(external, limit=1)[0]
            steps = len(sequence_files(first)) - 1
        pipeline = ExternalPipeline(steps=steps, seed=seed)  # type: ignore[assignment]
    if pipeline is None:
        if ops is None or steps is None:
            raise DegradeError("give --ops and --steps (or --pipeline)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise DegradeError(f"--steps must be a whole number ≥ 1, got {steps!r}")
        pipeline = Pipeline.parse(ops, steps=steps, mode=mode, schedule=schedule, seed=seed)
    if format not in FORMATS:
        raise DegradeError(f"--format '{format}' unknown; choose from {', '.join(FORMATS)}")
    if codec not in CODECS:
        raise DegradeError(f"--codec '{codec}' unknown; choose from {', '.join(CODECS)}")
    for name, v, lo in (("--shard-size", shard_size, 1), ("--limit", limit, 1), ("--size", size, 0)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise DegradeError(f"{name} must be a whole number ≥ {lo}, got {v!r}")
    if backend not in BACKENDS:
        raise DegradeError(f"--backend '{backend}' unknown; choose from {', '.join(BACKENDS)}")
    if scheduler is not None and backend == "loky":
        raise DegradeError("--scheduler goes with --backend dask or ray")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise DegradeError(f"--workers must be a whole number ≥ 1, got {workers!r}")
    keep_spec = parse_keep(keep, pipeline.steps)
    splits = parse_split(split)
    if backend == "loky" and not dry_run and (workers or default_workers()) > 1:
        start_workers((workers or default_workers()) - 1, _worker_ready)
    pool_only = not in_list or all(i == "samples" for i in in_list)
    if size is None:
        size = POOL_DEFAULT_SIZE if pool_only else FILE_DEFAULT_SIZE
    if limit is None and pool_only:
        limit = POOL_DEFAULT_LIMIT
    items = list_sources(in_list or None, limit=limit)
    if not items:
        raise DegradeError("no input images found")
    out_dir = Path(out)
    n_shards = math.ceil(len(items) / shard_size)
    config = {
        "pipeline": pipeline.to_dict(),
        "format": format,
        "size": size,
        "seed": pipeline.seed,
        "shard_size": shard_size,
        "keep": keep_spec,
        "codec": codec,
        "png_level": 1,
        "split": splits,
        # JSON sorts the keys of "split", yet the order decides the assignment.
        "split_order": list(splits),
        "strict": strict,
        "inputs": [os.path.abspath(i) if os.path.exists(i) else i for i in in_list] or ["samples"],
        "limit": limit,
        "sources": len(items),
        "sources_digest": _digest(i.id for i in items),
    }
    shard_plan = []
    for s in range(n_shards):
        chunk = items[s * shard_size : (s + 1) * shard_size]
        shard_plan.append(
            {"index": s, "name": shard_name(s, format), "samples": len(chunk),
             "first": chunk[0].id, "last": chunk[-1].id, "ids_digest": _digest(i.id for i in chunk)}
        )
    plan = {"plan_version": PLAN_VERSION, "config": config, "shards": shard_plan}
    frames_total = len(items) * (pipeline.steps + 1)

    if dry_run:
        summary = _dry_run_summary(pipeline, items, config, plan, keep_spec)
        say(summary)
        return BuildResult(out_dir, None, plan, summary)

    # -- resume / refuse / overwrite -----------------------------------------------------
    if out_dir.exists() and not out_dir.is_dir():
        raise DegradeError(f"--out {out_dir} is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DegradeError(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc})") from None
    plan_path = out_dir / PLAN_NAME
    existing = [p for p in out_dir.iterdir()]
    if existing:
        if overwrite:
            _remove(_our_files(out_dir))
        elif plan_path.exists():
            try:
                old = json.loads(plan_path.read_text())
            except (OSError, json.JSONDecodeError):
                raise DegradeError(
                    f"{out_dir}: {PLAN_NAME} is unreadable; use --overwrite to start again"
                ) from None
            # --strict changes no byte of a finished build (checked on kept shards below),
            # so re-running without it after a strict stop resumes instead of refusing.
            old_cfg = {k: v for k, v in old.get("config", {}).items() if k != "strict"}
            if old_cfg != {k: v for k, v in config.items() if k != "strict"}:
                diffs = _config_diff(old_cfg, {k: v for k, v in config.items() if k != "strict"})
                if len(diffs) > 4:
                    diffs = [*diffs[:4], f"and {len(diffs) - 4} more"]
                raise DegradeError(
                    f"{out_dir} holds a build with another config ({'; '.join(diffs)}); "
                    "use --overwrite or another --out"
                )
        else:
            raise DegradeError(
                f"{out_dir} is not empty and holds no degrade build; use --overwrite or another --out"
            )
    # Stale temporary files of a killed run never look finished; remove them.
    _remove_temp_files(out_dir)
    write_json_atomic(plan_path, plan)
    (out_dir / PARTS_DIR).mkdir(exist_ok=True)

    records: dict[int, dict[str, Any]] = {}
    tasks = []
    needs_partners = any("partners" in get_op(op.op).needs for op in pipeline.ops)
    for sp in shard_plan:
        kept = _check_kept_shard(out_dir, sp["name"], sp["ids_digest"])
        if kept is not None:
            records[sp["index"]] = kept
            continue
        for stale in (out_dir / sp["name"], out_dir / PARTS_DIR / f"{sp['name']}.json"):
            if stale.exists():
                stale.unlink()
        chunk = items[sp["index"] * shard_size : sp["index"] * shard_size + sp["samples"]]
        # Absolute: loky reuses worker processes, whose cwd need not be ours.
        tasks.append(ShardTask(sp["index"], sp["name"], str((out_dir / sp["name"]).absolute()), chunk, config,
                               everything=items if needs_partners else None))
    kept_n = len(records)
    if strict:
        kept_skips = [s for i in sorted(records) for s in records[i]["skipped"]]
        if kept_skips:
            raise DegradeError(f"{kept_skips[0]['reason']} (--strict: stopping)")
    if kept_n:
        say(f"degrade: resuming: {kept_n} of {n_shards} shards already complete")

    n_workers = min(workers or default_workers(), max(1, len(tasks)))
    done_frames = sum(r["planned"] for r in records.values()) * (pipeline.steps + 1)
    bar = _progress_bar(frames_total, done_frames, progress)
    t_build = time.perf_counter()
    try:
        frames_per_sample = pipeline.steps + 1
        for rec in run_tasks(build_shard, tasks, n_workers, bar, backend=backend, scheduler=scheduler,
                             units=lambda rec: rec["planned"] * frames_per_sample, warm=_worker_ready):
            records[rec["index"]] = rec
    except BaseException:
        # A failed task makes joblib stop the other workers mid-shard: their temporary files
        # would stay behind (and keep the space a full disk needs back).
        _remove_temp_files(out_dir)
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t_build

    ordered = [records[i] for i in range(n_shards)]
    samples = sum(r["samples"] for r in ordered)
    skipped = [s for r in ordered for s in r["skipped"]]
    split_counts: Counter[str] = Counter()
    for r in ordered:
        split_counts.update(r["splits"])
    new_frames = sum(len(t.items) for t in tasks) * (pipeline.steps + 1)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "format": format,
        "degrade_version": _version(),
        "versions": library_versions(),
        "command": command or _python_command(in_list, pipeline, out_dir, format, size, limit,
                                              shard_size, keep, codec, split),
        "config": config,
        "seed": pipeline.seed,
        "steps": pipeline.steps,
        "pipeline": pipeline.spec,
        "samples": samples,
        "splits": {k: split_counts.get(k, 0) for k in splits},
        "shards": [
            {"name": r["name"], "samples": r["samples"], "bytes": r["bytes"], "sha256": r["sha256"],
             "splits": r["splits"]}
            for r in ordered
        ],
        "skipped": skipped,
        "totals": {
            "inputs": len(items),
            "samples": samples,
            "skipped": len(skipped),
            "frames_computed": samples * (pipeline.steps + 1),
            "frames_stored": sum(r["frames"] for r in ordered),
            "bytes": sum(r["bytes"] for r in ordered),
            "shards": n_shards,
        },
        "timings": {
            "seconds": round(seconds, 3),
            "frames_per_second": round(new_frames / seconds, 1) if seconds > 0 and new_frames else None,
            "workers": n_workers,
            "backend": backend,
            "shards_built": len(tasks),
            "shards_kept": kept_n,
        },
    }
    write_json_atomic(out_dir / MANIFEST_NAME, manifest)
    total_s = time.perf_counter() - t_start
    summary = _summary(manifest, out_dir, total_s)
    say(summary)
    return BuildResult(out_dir, manifest, plan, summary, kept_shards=kept_n, built_shards=len(tasks))


def _version() -> str:
    from degrade import __version__

    return __version__


def _python_command(*args: Any) -> str:
    in_list, pipeline, out_dir, fmt, size, limit, shard_size, keep, codec, split = args
    parts = ["degrade", "build"]
    for i in in_list:
        parts += ["--input", i]
    parts += ["--ops", pipeline.spec, "--steps", str(pipeline.steps), "--mode", pipeline.mode]
    if isinstance(pipeline.schedule, str):
        parts += ["--schedule", pipeline.schedule]
    parts += ["--seed", str(pipeline.seed), "--out", str(out_dir), "--format", fmt, "--size", str(size)]
    if limit is not None:
        parts += ["--limit", str(limit)]
    parts += ["--shard-size", str(shard_size), "--keep", keep, "--codec", codec]
    if split is not None and isinstance(split, str):
        parts += ["--split", split]
    return " ".join(shlex.quote(p) for p in parts)


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="frame", unit_scale=True, desc="degrade build",
                dynamic_ncols=True, smoothing=0.1)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _summary(m: Mapping[str, Any], out: Path, seconds: float) -> str:
    t = m["totals"]
    splits = ", ".join(f"{k} {v}" for k, v in m["splits"].items())
    fps = m["timings"]["frames_per_second"]
    speed = f" ({fps:,.0f} frames/s)" if fps else ""
    skipped = (f"; {t['skipped']} input{'s' if t['skipped'] != 1 else ''} skipped (listed in manifest.json)"
               if t["skipped"] else "")
    return (
        f"degrade: built {t['samples']} samples × {m['steps'] + 1} frames "
        f"({t['frames_stored']} stored) in {t['shards']} {m['format']} shards, "
        f"{_human_bytes(t['bytes'])}, in {seconds:.1f} s{speed}; splits: {splits}{skipped}.\n"
        f"  data: {out.resolve()}\n"
        f"  look: degrade inspect {shlex.quote(str(out))}    check: degrade verify {shlex.quote(str(out))}"
    )


def _dry_run_summary(pipeline: Pipeline, items: list[SourceItem], config: Mapping[str, Any],
                     plan: Mapping[str, Any], keep: Mapping[str, Any]) -> str:
    probe = items[: min(3, len(items))]
    partners = None
    if any("partners" in get_op(op.op).needs for op in pipeline.ops):
        partners = SourcePartners(items, size=config["size"], splits=config["split"], seed=config["seed"])
    t0 = time.perf_counter()
    nbytes = 0
    probed = 0
    for it in probe:
        try:
            if isinstance(pipeline, ExternalPipeline):
                frames_u8, _ = load_sequence(it, size=config["size"])
                seq = pipeline.from_frames(frames_u8, it.key)
            else:
                clean, _ = load_item(it, size=config["size"])
                seq = pipeline.run_encoded(clean, it.key, partners=partners)
        except DegradeError:
            continue
        ks = stored_steps(keep, pipeline.steps, seed=pipeline.seed, key=it.key)
        nbytes += len(encode_png(seq.frames[0], compress_level=config["png_level"]))
        for k in ks:
            p = seq.payloads[k]
            nbytes += len(p[1]) if (p is not None and config["codec"] == "auto") else len(
                encode_png(seq.frames[k], compress_level=config["png_level"]))
        probed += 1
    dt = time.perf_counter() - t0
    n = len(items)
    frames = n * (pipeline.steps + 1)
    per = dt / probed if probed else 0.0
    est_bytes = nbytes / probed * n if probed else 0
    w = default_workers()
    return (
        f"degrade build (dry run, nothing written): {n} samples × {pipeline.steps + 1} frames = {frames} frames, "
        f"{len(plan['shards'])} {config['format']} shards of ≤ {config['shard_size']}, "
        f"ops {pipeline.spec}, mode {pipeline.mode}, size {config['size']}; "
        f"estimated {_human_bytes(est_bytes)} and {per * n / w:.0f} s on {w} workers "
        f"(probe: {probed} samples)"
    )
