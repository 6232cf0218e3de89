"""Checking and looking at a built dataset: :func:`verify` and :func:`inspect`."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from degrade.errors import DegradeError
from degrade.pipeline import replay_encoded
from degrade.registry import get_op
from degrade.seeding import rng_for
from degrade.shards import iter_shard
from degrade.shards.manifest import read_manifest, sha256_file

__all__ = ["VerifyReport", "decode_frame", "inspect", "verify"]


def decode_frame(ext: str, data: bytes) -> np.ndarray:
    """Decode a stored frame to uint8 H×W×C with the decoder its codec's op uses.

    Examples
    --------
    >>> from degrade.image import encode_png
    >>> decode_frame("png", encode_png(np.zeros((2, 2, 3), np.float32))).shape
    (2, 2, 3)
    """
    for name in ("jpeg", "webp"):
        op = get_op(name) if name in _codec_ops() else None
        if op is not None and op.codec == ext and op.decode is not None:
            arr = op.decode(data)
            return arr[:, :, None] if arr.ndim == 2 else arr
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _codec_ops() -> set[str]:
    from degrade.registry import list_ops

    return {n for n in list_ops() if get_op(n).codec is not None}


@dataclass
class VerifyReport:
    """Result of :func:`verify`: ``ok`` and, when not, the problems found (first one first)."""

    ok: bool
    shards: int
    samples: int
    regenerated: int
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = (
            f"degrade verify: {'OK' if self.ok else 'FAILED'}: {self.shards} shards, "
            f"{self.samples} samples checked, {self.regenerated} regenerated from their recipes"
        )
        if self.ok:
            return head
        more = f"\n  (+{len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        return head + "\n" + "\n".join(f"  {p}" for p in self.problems[:10]) + more


def verify(path: str | os.PathLike[str], *, regenerate: int = 8, seed: int = 0) -> VerifyReport:
    """Check a built dataset: checksums, counts, every shard opens, and determinism.

    ``regenerate`` samples (drawn with ``seed``) are rebuilt from their recipes and compared
    pixel for pixel with the stored frames.

    Examples
    --------
    >>> import tempfile, degrade
    >>> d = tempfile.mkdtemp()
    >>> _ = degrade.build(["synthetic"], ops="blur", steps=2, limit=2, size=16, out=d,
    ...                   workers=1, progress=False, log=lambda s: None)
    >>> verify(d).ok
    True
    """
    if isinstance(regenerate, bool) or not isinstance(regenerate, int) or regenerate < 0:
        raise DegradeError(f"--regenerate must be a whole number ≥ 0, got {regenerate!r}")
    manifest = read_manifest(path)
    root = Path(path) if Path(path).is_dir() else Path(path).parent
    problems: list[str] = []
    shards = manifest.get("shards", [])
    total = sum(int(s.get("samples", 0)) for s in shards)
    pick: set[int] = set()
    if total and regenerate:
        pick = {int(i) for i in rng_for(seed, "verify").choice(total, size=min(regenerate, total), replace=False)}
    seen = 0
    checked = 0
    regenerated = 0
    keys: set[str] = set()
    deferred: list[tuple[str, Mapping[str, Any]]] = []
    for s in shards:
        name = s["name"]
        p = root / name
        if not p.exists():
            problems.append(f"{name}: missing")
            seen += int(s.get("samples", 0))
            continue
        if p.stat().st_size != s["bytes"]:
            problems.append(f"{name}: size {p.stat().st_size} bytes, manifest says {s['bytes']}")
        elif sha256_file(p) != s["sha256"]:
            problems.append(f"{name}: sha256 does not match the manifest (the file changed)")
        n = 0
        try:
            for rec in iter_shard(p):
                idx = seen + n
                n += 1
                checked += 1
                if rec["key"] in keys:
                    problems.append(f"{name}: sample {rec['key']}: key appears twice in the dataset")
                keys.add(rec["key"])
                if idx in pick and not rec["recipe"].get("external"):
                    # External sequences came from outside: nothing to regenerate.
                    if rec["recipe"].get("partners"):
                        deferred.append((name, rec))  # needs other samples' clean frames
                        continue
                    regenerated += 1
                    bad = _regenerate_matches(rec)
                    if bad:
                        problems.append(f"{name}: sample {rec['key']}: {bad}")
        except DegradeError as exc:
            problems.append(f"{name}: cannot be read ({exc})")
        if n != s["samples"]:
            problems.append(f"{name}: {n} samples, manifest says {s['samples']}")
        seen += int(s.get("samples", 0))
    if deferred:
        wanted = {e["key"] for _, rec in deferred for v in rec["recipe"]["partners"].values() for e in v}
        cleans = _clean_frames(root, shards, wanted)
        for name, rec in deferred:
            regenerated += 1
            bad = _regenerate_matches(rec, partners=cleans)
            if bad:
                problems.append(f"{name}: sample {rec['key']}: {bad}")
    if total != manifest.get("samples"):
        problems.append(f"manifest: shard counts add up to {total}, 'samples' says {manifest.get('samples')}")
    return VerifyReport(not problems, len(shards), checked, regenerated, problems)


def _clean_frames(root: Path, shards: list[Mapping[str, Any]], wanted: set[str]) -> dict[str, np.ndarray]:
    """The clean frames of the samples named in ``wanted`` (partner images for replay)."""
    found: dict[str, np.ndarray] = {}
    for s in shards:
        p = root / s["name"]
        if not p.exists():
            continue
        try:
            for rec in iter_shard(p):
                if rec["key"] in wanted:
                    found[rec["key"]] = decode_frame("png", rec["clean"])
        except DegradeError:
            continue
        if len(found) == len(wanted):
            break
    return found


def _regenerate_matches(rec: Mapping[str, Any], partners: Mapping[str, np.ndarray] | None = None) -> str | None:
    clean = decode_frame("png", rec["clean"])
    try:
        seq = replay_encoded(rec["recipe"], clean, partners=partners)
    except DegradeError as exc:
        return f"recipe does not replay ({exc})"
    for k, ext, data in rec["frames"]:
        try:
            stored = decode_frame(ext, data)
        except Exception as exc:  # a corrupt frame of any codec
            return f"step {k} ({ext}) does not decode ({exc})"
        if k >= len(seq.frames):
            return f"step {k} is beyond the recipe's {len(seq.frames) - 1} steps"
        if stored.shape != seq.frames[k].shape or not np.array_equal(stored, seq.frames[k]):
            diff = "shape differs" if stored.shape != seq.frames[k].shape else (
                f"{int((stored != seq.frames[k]).any(axis=2).sum())} pixels differ"
            )
            return f"step {k} differs from its regeneration ({diff})"
    return None


def inspect(
    path: str | os.PathLike[str], *, sheet: str | os.PathLike[str] | None = "inspect.png",
    samples: int = 4, max_columns: int = 9,
) -> str:
    """Summarise a built dataset and write a contact sheet of a few samples.

    Returns the summary text (the op/param table included).

    Examples
    --------
    >>> import tempfile, degrade
    >>> d = tempfile.mkdtemp()
    >>> _ = degrade.build(["synthetic"], ops="blur", steps=2, limit=2, size=16, out=d,
    ...                   workers=1, progress=False, log=lambda s: None)
    >>> "blur" in inspect(d, sheet=None)
    True
    """
    from degrade.pipeline import Pipeline

    m = read_manifest(path)
    root = Path(path) if Path(path).is_dir() else Path(path).parent
    pipe = Pipeline.from_dict(m["config"]["pipeline"])
    t = m["totals"]
    lines = [
        f"{root}: {m['format']} dataset, degrade {m['degrade_version']}",
        f"  samples {m['samples']} in {len(m['shards'])} shards ({t['bytes']:,} bytes); "
        f"splits: " + ", ".join(f"{k} {v}" for k, v in m["splits"].items()),
        f"  pipeline: {pipe.spec}  steps {pipe.steps}  mode {pipe.mode}  schedule "
        f"{pipe.schedule if isinstance(pipe.schedule, str) else 'explicit'}  seed {pipe.seed}",
        f"  stored: keep {m['config']['keep']['mode']}"
        + (f":{m['config']['keep']['n']}" if "n" in m["config"]["keep"] else "")
        + f", codec {m['config']['codec']}, size {m['config']['size']}",
        f"  skipped inputs: {len(m['skipped'])}",
        f"  command: {m['command']}",
        "",
        f"  {'op':<16} {'param':<12} {'step 1':>10} {'step T':>10}",
    ]
    plannable = pipe.mode not in ("choice", "external")
    first = pipe.plan("inspect")[0]["ops"] if plannable else None
    last = pipe.plan("inspect")[-1]["ops"] if plannable else None
    if pipe.mode == "external":
        lines.append("  (external sequences: frames stored as given, nothing to replay)")
    for i, spec in enumerate(pipe.ops):
        op = get_op(spec.op)
        p1 = op.params_at(pipe.ts[1], spec.params, t_first=pipe.ts[1], step_ts=pipe.ts)
        pT = op.params_at(1.0, spec.params, t_first=pipe.ts[1], step_ts=pipe.ts)
        if first is not None and last is not None:
            p1, pT = first[i]["params"], last[i]["params"]
        for p in op.params:
            lines.append(f"  {op.name:<16} {p.name:<12} {_fmt(p1[p.name]):>10} {_fmt(pT[p.name]):>10} {p.unit}")
    if m["skipped"]:
        lines.append("")
        for s in m["skipped"][:5]:
            lines.append(f"  skipped {s['source']}: {s['reason']}")
    if sheet is not None:
        out = _sheet(root, m, pipe.steps, samples, max_columns, Path(sheet))
        lines.append("")
        lines.append(f"  contact sheet: {out}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _sheet(root: Path, m: Mapping[str, Any], steps: int, n: int, max_columns: int, out: Path) -> Path:
    from degrade.preview import contact_sheet

    rows: list[list[np.ndarray]] = []
    labels: list[str] = []
    col_ks: list[int] | None = None
    for s in m["shards"]:
        for rec in iter_shard(root / s["name"]):
            stored = {k: decode_frame(ext, data) for k, ext, data in rec["frames"]}
            stored[0] = decode_frame("png", rec["clean"])
            ks = sorted(stored)
            if col_ks is None:
                idx = np.unique(np.linspace(0, len(ks) - 1, min(max_columns, len(ks))).round().astype(int))
                col_ks = [ks[i] for i in idx]
            rows.append([stored[k] if k in stored else stored[0] for k in col_ks])
            labels.append(rec["key"])
            if len(rows) >= n:
                break
        if len(rows) >= n:
            break
    if not rows:
        raise DegradeError(f"{root}: the dataset has no samples to show")
    sheet = contact_sheet([[r.astype(np.float32) / 255 for r in row] for row in rows],
                          [f"k={k}" for k in (col_ks or [])], labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    return out
