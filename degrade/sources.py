"""Where clean images come from: folders, globs, lists, shards, Parquet, the sample pool.

:func:`list_sources` turns what the user passed to ``--input`` into a sorted, deduplicated
list of small picklable :class:`SourceItem` records; :func:`load_item` reads one of them
(in a worker process) as a normalised ``uint8`` H×W×C array plus its source identity.
Listing never decodes images: a broken file is found, and skipped with its reason, at load
time.

The built-in **sample pool** (``samples``, ``synthetic``) is made in :mod:`degrade.pool`;
its names are re-exported here.

Splits are assigned by a stable hash of a source's *group* (its id for files); pool crops
are grouped by photograph and whole photographs are dealt out to splits
(:func:`pool_split`), so held-out evaluation never sees a training photograph.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import math
import os
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from degrade.errors import DegradeError
from degrade.image import decode, to_uint8
from degrade.pool import (
    POOL_MAX,
    POOL_PHOTOS,
    POOL_SEED,
    SYNTHETIC_DEFAULT,
    SYNTHETIC_KINDS,
    pool_crop,
    synthetic,
)
from degrade.seeding import rng_for

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DEFAULT_SPLIT",
    "IMAGE_EXTENSIONS",
    "POOL_MAX",
    "POOL_PHOTOS",
    "POOL_SEED",
    "SYNTHETIC_DEFAULT",
    "SourceItem",
    "assign_split",
    "list_sources",
    "load_item",
    "load_sequence",
    "parse_split",
    "pool_split",
    "resize_crop",
    "sequence_files",
    "source_key",
    "split_for",
]

#: File extensions (lower case) taken as images in folders and globs.
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm",
)  # fmt: skip
#: The split used when none is given.
DEFAULT_SPLIT = "train=0.9,val=0.05,test=0.05"

# Member extensions taken as the image of a WebDataset sample, in order of preference
# (``clean.png`` first: the clean frame of degrade's own shards).
_TAR_IMAGE_EXTS = ("clean.png", *(e[1:] for e in IMAGE_EXTENSIONS))
_PARQUET_COLUMNS = ("image", "img", "clean")
_WDS_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_SLUG = re.compile(r"[^A-Za-z0-9_-]")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class SourceItem:
    """One clean image to read: small and picklable, sent to worker processes.

    Attributes
    ----------
    id : str
        Stable identity: a relative POSIX path for files (``cats/001.jpg``),
        ``<tar>/<key>``, ``<parquet>/<row>`` (zero-padded), ``pool/<index>`` or
        ``synthetic/<index>`` (zero-padded to 6 digits).
    key : str
        The sample key (:func:`source_key`; ``sample-%06d`` / ``synthetic-%06d``). No dots.
    label : str or None
        First sub-folder under the input folder (ImageFolder), a tar sample's ``cls`` or
        recipe label, a Parquet ``label`` value, the photograph name for the pool, the
        pattern (``gradient``, ``shapes``, ``checkerboard``) for synthetic images.
    group : str
        Unit of split assignment: the id, or the photograph name for the pool.
    kind : str
        ``"file"``, ``"tar"``, ``"parquet"``, ``"pool"`` or ``"synthetic"``.
    location : str
        Absolute path of the file, tar or Parquet file; ``""`` for pool and synthetic.
    member : str
        Tar member name, Parquet row index, or pool / synthetic index, as a string.
    offset, size : int
        Byte range of a tar member's data (``-1``: look the member up by name).
    column : str
        The Parquet image column.

    Examples
    --------
    >>> SourceItem("pool/000003", "sample-000003", "coffee", "coffee", "pool", "", "3").kind
    'pool'
    """

    id: str
    key: str
    label: str | None
    group: str
    kind: str
    location: str
    member: str = ""
    offset: int = -1
    size: int = -1
    column: str = ""


def source_key(source_id: str) -> str:
    """Return the sample key of a source id: slug (at most 40 chars) + ``-`` + sha1[:10].

    Characters outside ``[A-Za-z0-9_-]`` become ``_``, so a key never contains a dot.

    Examples
    --------
    >>> source_key("cats/001.jpg")
    'cats_001_jpg-b7635f6300'
    """
    slug = _SLUG.sub("_", source_id)[:40]
    return f"{slug}-{hashlib.sha1(source_id.encode('utf-8')).hexdigest()[:10]}"


# --------------------------------------------------------------------------- listing


def list_sources(
    inputs: Sequence[str] | str | None,
    *,
    limit: int | None = None,
    pool_size: int = 10_000,
) -> list[SourceItem]:
    """List the clean images named by ``inputs``, sorted by id and deduplicated.

    Parameters
    ----------
    inputs : sequence of str, or None
        Folders (recursive; hidden files skipped; sub-folder names are labels), glob
        patterns, ``.txt`` lists (one path a line, relative to the list's folder; ``#``
        comment lines and blank lines ignored), WebDataset ``.tar`` files, Parquet files
        with an image column, and the reserved words ``samples`` (the sample pool) and
        ``synthetic`` (generated test images). A folder named ``samples`` is ``./samples``.
        None or empty: the sample pool.
    limit : int, optional
        Keep the first ``limit`` items in sorted order. The pool then holds
        ``max(pool_size, limit)`` crops, ``synthetic`` ``limit`` images (else 64).
    pool_size : int
        Crops in the sample pool (at most :data:`POOL_MAX`).

    Returns
    -------
    list of SourceItem

    Raises
    ------
    DegradeError
        For a path that does not exist, a pattern or folder that gives no image, an
        unreadable list / tar / Parquet file, or two different sources with one id.

    Examples
    --------
    >>> [s.key for s in list_sources(None, limit=2)]
    ['sample-000000', 'sample-000001']
    """
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
    ):
        raise DegradeError(f"limit must be a positive integer, got {limit!r}")
    if (
        isinstance(pool_size, bool)
        or not isinstance(pool_size, (int, np.integer))
        or not 1 <= pool_size <= POOL_MAX
    ):
        raise DegradeError(f"pool size must be an integer in [1, {POOL_MAX}], got {pool_size!r}")
    if inputs is None:
        specs: list[str] = []
    elif isinstance(inputs, (str, os.PathLike)):
        specs = [os.fspath(inputs)]
    else:
        specs = [os.fspath(s) for s in inputs]
    if not specs:
        specs = ["samples"]

    found: list[SourceItem] = []
    for spec in specs:
        found.extend(_expand(spec, limit=limit, pool_size=pool_size))

    # The same file reached twice (a folder and a glob) counts once, under its first id.
    seen: set[tuple[str, str, str]] = set()
    by_id: dict[str, SourceItem] = {}
    for item in found:
        ident = (item.kind, os.path.realpath(item.location) if item.location else "", item.member)
        if ident in seen:
            continue
        seen.add(ident)
        other = by_id.get(item.id)
        if other is not None:
            raise DegradeError(
                f"two inputs give the same source id {item.id!r} "
                f"({_where(other)} and {_where(item)}); ids must be unique — pass a common "
                "parent folder or a glob so they are named relative to it"
            )
        by_id[item.id] = item
    items = [by_id[k] for k in sorted(by_id)]
    keys = {item.key for item in items}
    if len(keys) != len(items):  # sha1 prefixes: only a truly astronomical coincidence
        raise DegradeError("two sources have the same key; rename one of them")
    return items[:limit] if limit is not None else items


def _where(item: SourceItem) -> str:
    if not item.location:
        return item.id
    return f"{item.location}:{item.member}" if item.member else item.location


SEQUENCES_PREFIX = "sequences:"


def _expand(spec: str, *, limit: int | None, pool_size: int) -> list[SourceItem]:
    if spec.startswith(SEQUENCES_PREFIX):
        return _list_sequences(spec[len(SEQUENCES_PREFIX) :])
    if spec == "samples":
        return [_pool_item(i) for i in range(min(max(pool_size, limit or 0), POOL_MAX))]
    if spec == "synthetic":
        return [_synthetic_item(i) for i in range(min(limit or SYNTHETIC_DEFAULT, POOL_MAX))]
    if not spec.strip():
        raise DegradeError("empty input path")
    path = os.path.expanduser(spec)
    if os.path.exists(path):
        items = _expand_path(Path(path), root=None, explicit=True)
        if not items:
            what = "folder" if os.path.isdir(path) else "input"
            raise DegradeError(
                f"{what} {spec!r} contains no image files "
                f"(looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        return items
    if _GLOB_CHARS.search(path):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise DegradeError(f"input pattern {spec!r} matches nothing")
        root = _glob_root(path)
        items = []
        for m in matches:
            items.extend(_expand_path(Path(m), root=root, explicit=False))
        if not items:
            raise DegradeError(
                f"input pattern {spec!r} matches no image, list, tar or parquet file"
            )
        return items
    raise DegradeError(f"input {spec!r} does not exist")


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    return Path(*fixed).absolute() if fixed else Path.cwd()


def _relative(path: Path, root: Path) -> str | None:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    rel = Path(rel).as_posix()
    return None if rel == ".." or rel.startswith("../") else rel


def _file_item(path: Path, root: Path) -> SourceItem:
    location = os.path.abspath(path)
    rel = _relative(path, root)
    sid = rel if rel is not None else Path(location).as_posix()
    label = rel.split("/", 1)[0] if rel is not None and "/" in rel else None
    return SourceItem(sid, source_key(sid), label, sid, "file", location)


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _expand_path(path: Path, *, root: Path | None, explicit: bool) -> list[SourceItem]:
    if path.is_dir():
        return _walk(path, root if root is not None else path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return _read_list(path)
    if suffix == ".tar":
        return _list_tar(path, root)
    if suffix == ".parquet":
        return _list_parquet(path, root)
    if _is_image_name(path.name):
        return [_file_item(path, root if root is not None else path.parent)]
    if explicit:
        raise DegradeError(
            f"input {str(path)!r} is not a supported source: expected a folder, a glob, a .txt "
            f"list, a .tar or .parquet file, or an image ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return []


def _walk(folder: Path, root: Path) -> list[SourceItem]:
    items = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a symlink loop
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and _is_image_name(name):
                items.append(_file_item(Path(dirpath) / name, root))
    return items


def _read_list(path: Path) -> list[SourceItem]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DegradeError(f"cannot read list {str(path)!r} ({exc})") from None
    base = path.parent
    items = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(os.path.expanduser(entry))
        # Listed files are not checked here: a missing one is skipped, with its reason,
        # when it is loaded.
        items.append(_file_item(p if p.is_absolute() else base / p, base))
    if not items:
        raise DegradeError(f"list {str(path)!r} names no files")
    return items


def _container_name(path: Path, root: Path | None) -> str:
    rel = _relative(path, root) if root is not None else None
    return rel if rel is not None else path.name


def _list_tar(path: Path, root: Path | None) -> list[SourceItem]:
    location = os.path.abspath(path)
    name = _container_name(path, root)
    samples: dict[str, dict[str, tuple[str, int, int]]] = {}
    labels: dict[str, str] = {}
    try:
        with tarfile.open(location, "r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                match = _WDS_KEY.match(m.name)
                if match is None or os.path.basename(m.name).startswith((".", "__")):
                    continue
                key, ext = match.group(1), match.group(2).lower()
                samples.setdefault(key, {})[ext] = (m.name, m.offset_data, m.size)
                if ext in ("cls", "label") or (ext == "json" and key not in labels):
                    label = _tar_label(tf, m, ext)
                    if label is not None:
                        labels[key] = label
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DegradeError(f"{path}: not a readable tar file ({exc})") from None
    items = []
    for key, members in samples.items():
        ext = next((e for e in _TAR_IMAGE_EXTS if e in members), None)
        if ext is None:  # e.g. "input.jpg": any image-like extension, first by name
            ext = next((e for e in sorted(members) if _is_image_name("x." + e)), None)
        if ext is None:
            continue
        member, offset, size = members[ext]
        sid = f"{name}/{key}"
        items.append(
            SourceItem(sid, source_key(sid), labels.get(key), sid, "tar", location, member,
                       offset, size)
        )  # fmt: skip
    return items


def _tar_label(tf: tarfile.TarFile, m: tarfile.TarInfo, ext: str) -> str | None:
    if m.size > 1 << 20:
        return None
    f = tf.extractfile(m)
    if f is None:
        return None
    raw = f.read()
    if ext in ("cls", "label"):
        text = raw.decode("utf-8", "replace").strip()
        return text or None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # a label is optional: a bad recipe just has none
        return None
    label = value.get("label") if isinstance(value, dict) else None
    return None if label is None or isinstance(label, (dict, list)) else str(label)


def _list_parquet(path: Path, root: Path | None) -> list[SourceItem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    location = os.path.abspath(path)
    name = _container_name(path, root)
    try:
        pf = pq.ParquetFile(location)
        schema = pf.schema_arrow
        column = _image_column(schema)
        if column is None:
            raise DegradeError(
                f"{path}: no image column (expected one named {', '.join(_PARQUET_COLUMNS)} "
                "or a struct<bytes, path> column)"
            )
        rows = pf.metadata.num_rows
        labels: list[object] = [None] * rows
        if "label" in schema.names:
            labels = pf.read(columns=["label"]).column(0).to_pylist()
        names = _class_names(schema.metadata or {})
    except DegradeError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DegradeError(f"{path}: not a readable parquet file ({exc})") from None
    width = max(6, len(str(max(rows - 1, 0))))
    items = []
    for row in range(rows):
        sid = f"{name}/{row:0{width}d}"
        label = labels[row]
        if isinstance(label, int) and names and 0 <= label < len(names):
            label = names[label]
        items.append(
            SourceItem(sid, source_key(sid), None if label is None else str(label), sid,
                       "parquet", location, str(row), column=column)
        )  # fmt: skip
    return items


def _image_column(schema: pa.Schema) -> str | None:
    import pyarrow as pa

    def is_struct_image(t: pa.DataType) -> bool:
        return pa.types.is_struct(t) and t.get_field_index("bytes") >= 0

    def is_binary(t: pa.DataType) -> bool:
        return pa.types.is_binary(t) or pa.types.is_large_binary(t)

    for name in _PARQUET_COLUMNS:
        if name in schema.names:
            t = schema.field(name).type
            if is_struct_image(t) or is_binary(t):
                return name
    for field in schema:
        t = field.type
        if is_struct_image(t) and t.get_field_index("path") >= 0:
            return field.name
    return None


def _class_names(metadata: Mapping[bytes, bytes]) -> list[str] | None:
    # Hugging Face stores ClassLabel names in the schema metadata; map ints back to names.
    try:
        info = json.loads(metadata[b"huggingface"])
        feature = info["info"]["features"]["label"]
        names = feature.get("names") if feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError):
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def _pool_item(index: int) -> SourceItem:
    photo = POOL_PHOTOS[index % len(POOL_PHOTOS)]
    return SourceItem(
        f"pool/{index:06d}", f"sample-{index:06d}", photo, photo, "pool", "", str(index)
    )


def _synthetic_item(index: int) -> SourceItem:
    sid = f"synthetic/{index:06d}"
    kind = SYNTHETIC_KINDS[index % len(SYNTHETIC_KINDS)]
    return SourceItem(sid, f"synthetic-{index:06d}", kind, sid, "synthetic", "", str(index))


# --------------------------------------------------------------------------- loading


def load_item(
    item: SourceItem,
    *,
    size: int,
    background: tuple[int, int, int] = (255, 255, 255),
) -> tuple[np.ndarray, dict]:
    """Read one source as a normalised ``uint8`` H×W×C image (C ∈ {1, 3}) and its identity.

    Parameters
    ----------
    item : SourceItem
        From :func:`list_sources`.
    size : int
        Output side: short side resized to ``size`` and centre-cropped (:func:`resize_crop`);
        0 keeps the original size.
    background : tuple of int
        RGB colour that transparent pixels are composited on.

    Returns
    -------
    image : numpy.ndarray
        ``uint8`` H×W×C, normalised by :func:`degrade.image.decode` (orientation, alpha,
        palette, 16-bit, CMYK, first frame).
    meta : dict
        ``id``, ``sha256`` (of the raw file / member bytes; for the pool and synthetic
        images of the generated array before resizing), ``kind``, ``width`` and ``height``
        (of the decoded image before resizing, after EXIF orientation). Pool items add
        ``photo`` and ``crop`` (``[top, left, side]``).

    Raises
    ------
    DegradeError
        ``"<id>: <reason>"`` for anything unreadable: missing, empty, truncated, not an
        image, a decompression bomb, a missing tar member or Parquet row.

    Examples
    --------
    >>> image, meta = load_item(list_sources(["samples"], limit=1)[0], size=32)
    >>> image.shape, image.dtype.name, meta["kind"]
    ((32, 32, 3), 'uint8', 'pool')
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise DegradeError(f"size must be a non-negative integer, got {size!r}")
    extra: dict[str, object] = {}
    if item.kind == "sequence":
        frames, meta = load_sequence(item, size=size)
        return frames[0], meta
    if item.kind in ("pool", "synthetic"):
        index = _index(item)
        if item.kind == "pool":
            raw, photo, box = pool_crop(index)
            extra = {"photo": photo, "crop": list(box)}
        else:
            raw = synthetic(index)
        digest = hashlib.sha256(np.ascontiguousarray(raw).tobytes()).hexdigest()
    else:
        data = _read_bytes(item)
        digest = hashlib.sha256(data).hexdigest()
        try:
            raw = to_uint8(decode(data, name=item.id, background=background))
        except DegradeError:
            raise
        except Exception as exc:  # a broken file must be a skip, whatever PIL raises
            raise DegradeError(f"{item.id}: cannot decode ({type(exc).__name__}: {exc})") from None
    height, width = raw.shape[:2]
    image = resize_crop(raw, int(size))
    if not image.flags.writeable:  # a view of a cached pool photograph
        image = image.copy()
    meta = {"id": item.id, "sha256": digest, "kind": item.kind, "width": width, "height": height}
    meta.update(extra)
    return image, meta


def _list_sequences(folder: str) -> list[SourceItem]:
    root = Path(os.path.expanduser(folder))
    if not root.is_dir():
        raise DegradeError(f"sequences:{folder}: not a folder (expected DIR/<sequence_id>/<step>.<ext>)")
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        sid = f"sequences/{sub.name}"
        items.append(SourceItem(sid, source_key(sid), None, sid, "sequence", str(sub.resolve()), ""))
    if not items:
        raise DegradeError(f"sequences:{folder}: no sequence folders inside (expected DIR/<sequence_id>/<step>.<ext>)")
    return items


def sequence_files(item: SourceItem) -> list[tuple[int, Path]]:
    """Return a sequence's frames as (step number, path), sorted by step number.

    The file stems must be whole numbers (``0.png``, ``1.png``, ``10.png`` or ``000.png``
    …); the lowest is the clean (first) frame.

    Raises
    ------
    DegradeError
        If a stem is not a number, two files share a number, or there are fewer than two.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()) / "seq"; d.mkdir()
    >>> for n in (10, 2, 1): _ = (d / f"{n}.png").write_bytes(b"")
    >>> [k for k, _ in sequence_files(SourceItem("sequences/seq", "k", None, "g", "sequence", str(d)))]
    [1, 2, 10]
    """
    files = [p for p in Path(item.location).iterdir() if p.is_file() and _is_image_name(p.name)]
    out: dict[int, Path] = {}
    for p in files:
        try:
            n = int(p.stem)
        except ValueError:
            raise DegradeError(f"{item.id}: frame '{p.name}' is not named by its step number") from None
        if n in out:
            raise DegradeError(f"{item.id}: step {n} appears twice ({out[n].name}, {p.name})")
        out[n] = p
    if len(out) < 2:
        raise DegradeError(f"{item.id}: a sequence needs at least two frames, found {len(out)}")
    return sorted(out.items())


def load_sequence(item: SourceItem, *, size: int) -> tuple[list[np.ndarray], dict]:
    """Read an external sequence: its frames as uint8 arrays of one shape, and its identity.

    Frames are decoded and resized like any source (:func:`load_item`); a grayscale frame in
    a colour sequence is made RGB. ``meta`` has ``id``, ``kind``, ``steps`` (the numbers in the
    file names), ``files`` and ``sha256`` (one per file).

    Examples
    --------
    >>> import tempfile
    >>> from degrade.image import encode_png
    >>> d = Path(tempfile.mkdtemp()) / "s"; d.mkdir()
    >>> for n in range(3): _ = (d / f"{n}.png").write_bytes(encode_png(np.full((4, 4, 3), n / 2, np.float32)))
    >>> frames, meta = load_sequence(SourceItem("sequences/s", "k", None, "g", "sequence", str(d)), size=0)
    >>> len(frames), meta["steps"]
    (3, [0, 1, 2])
    """
    frames = []
    digests = []
    for _, path in sequence_files(item):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DegradeError(f"{item.id}: cannot read {path.name} ({exc.strerror or exc})") from None
        digests.append(hashlib.sha256(data).hexdigest())
        frames.append(resize_crop(to_uint8(decode(data, name=f"{item.id}/{path.name}")), int(size)))
    if any(f.shape[2] == 3 for f in frames):
        frames = [np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f for f in frames]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise DegradeError(f"{item.id}: frames differ in size ({sorted(shapes)}); use --size to make them equal")
    files = sequence_files(item)
    meta = {"id": item.id, "kind": "sequence", "steps": [k for k, _ in files],
            "files": [p.name for _, p in files], "sha256": digests}
    return frames, meta


def _index(item: SourceItem) -> int:
    try:
        index = int(item.member)
    except ValueError:
        raise DegradeError(f"{item.id}: bad {item.kind} index {item.member!r}") from None
    if not 0 <= index < POOL_MAX:
        raise DegradeError(f"{item.id}: {item.kind} index {index} outside [0, {POOL_MAX})")
    return index


def _read_bytes(item: SourceItem) -> bytes:
    try:
        if item.kind == "file":
            return Path(item.location).read_bytes()
        if item.kind == "tar":
            return _read_tar_member(item)
        if item.kind == "parquet":
            return _read_parquet_row(item)
    except DegradeError:
        raise
    except OSError as exc:
        raise DegradeError(f"{item.id}: cannot read ({exc.strerror or exc})") from None
    raise DegradeError(f"{item.id}: unknown source kind {item.kind!r}")


def _read_tar_member(item: SourceItem) -> bytes:
    if item.offset >= 0:
        # Listed offsets make a read one seek, not a scan of the whole tar per sample.
        with open(item.location, "rb") as f:
            f.seek(item.offset)
            data = f.read(item.size)
        if len(data) != item.size:
            raise DegradeError(f"{item.id}: tar member {item.member!r} is truncated")
        return data
    try:
        with tarfile.open(item.location, "r:") as tf:
            f = tf.extractfile(tf.getmember(item.member))
            if f is None:
                raise KeyError(item.member)
            return f.read()
    except KeyError:
        raise DegradeError(f"{item.id}: tar has no member {item.member!r}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise DegradeError(f"{item.id}: cannot read tar ({exc})") from None


def _read_parquet_row(item: SourceItem) -> bytes:
    import pyarrow as pa

    try:
        row = int(item.member)
        stat = os.stat(item.location)
        starts = _row_group_starts(item.location, stat.st_mtime_ns, stat.st_size)
        if not 0 <= row < starts[-1]:
            raise DegradeError(f"{item.id}: parquet file has no row {row}")
        group = int(np.searchsorted(starts, row, side="right")) - 1
        column = _row_group_column(
            item.location, stat.st_mtime_ns, stat.st_size, group, item.column
        )
        value = column[row - starts[group]].as_py()
    except DegradeError:
        raise
    except (pa.ArrowException, ValueError, KeyError, IndexError) as exc:
        raise DegradeError(f"{item.id}: cannot read parquet row ({exc})") from None
    if isinstance(value, dict):
        data, ref = value.get("bytes"), value.get("path")
        if not data and ref:  # a Hugging Face image stored by reference
            p = Path(ref)
            return (p if p.is_absolute() else Path(item.location).parent / p).read_bytes()
        value = data
    if not isinstance(value, bytes):
        raise DegradeError(f"{item.id}: empty image cell")
    return value


@functools.lru_cache(maxsize=8)
def _row_group_starts(location: str, mtime_ns: int, nbytes: int) -> list[int]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(location).metadata
    starts = [0]
    for i in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(i).num_rows)
    return starts


# Samples of a shard are loaded in sorted order, so consecutive rows share a row group:
# keep the last two groups read (per process), not the whole file.
@functools.lru_cache(maxsize=2)
def _row_group_column(
    location: str, mtime_ns: int, nbytes: int, group: int, column: str
) -> pa.ChunkedArray:
    import pyarrow.parquet as pq

    return pq.ParquetFile(location).read_row_group(group, columns=[column]).column(0)


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop to ``size``×``size``.

    The centred square is cut first and then resized (the same picture as resizing first,
    without resampling pixels that are thrown away): ``cv2.INTER_AREA`` when shrinking,
    ``cv2.INTER_CUBIC`` when enlarging. ``size`` 0 returns the image unchanged.

    Parameters
    ----------
    image : numpy.ndarray
        ``uint8`` H×W×C (or H×W).
    size : int
        Output side in pixels, or 0.

    Returns
    -------
    numpy.ndarray
        ``uint8``, ``size``×``size``×C.

    Examples
    --------
    >>> resize_crop(np.zeros((30, 40, 3), np.uint8), 16).shape
    (16, 16, 3)
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DegradeError(
            f"resize_crop needs a uint8 H×W×C image, got {image.dtype} {image.shape}"
        )
    if size == 0:
        return image
    if size < 0:
        raise DegradeError(f"size must be non-negative, got {size}")
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(square), (size, size), interpolation=interpolation)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- splits


def parse_split(spec: str | Mapping[str, float] | None = None) -> dict[str, float]:
    """Parse ``"train=0.9,val=0.05,test=0.05"`` (the default, used for None) into a dict.

    Names match ``[A-Za-z0-9_-]+`` and are unique; fractions are > 0 and sum to 1
    (within 1e-6). The order is kept: it is the order of the cumulative assignment.

    Raises
    ------
    DegradeError
        Naming the bad part of the spec.

    Examples
    --------
    >>> parse_split("train=0.8,test=0.2")
    {'train': 0.8, 'test': 0.2}
    """
    if spec is None:
        spec = DEFAULT_SPLIT
    pairs: list[tuple[object, object]] = []
    if isinstance(spec, str):
        if not spec.strip():
            raise DegradeError(f"empty split spec; expected e.g. {DEFAULT_SPLIT!r}")
        for part in spec.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep:
                raise DegradeError(
                    f"bad split {part.strip()!r}: expected name=fraction, e.g. {DEFAULT_SPLIT!r}"
                )
            try:
                fraction = float(value)
            except ValueError:
                raise DegradeError(
                    f"bad split {part.strip()!r}: {value.strip()!r} is not a number"
                ) from None
            pairs.append((name.strip(), fraction))
    elif isinstance(spec, Mapping):
        pairs = list(spec.items())
    else:
        raise DegradeError(f"split must be a string or a mapping, got {type(spec).__name__}")
    splits: dict[str, float] = {}
    for name, fraction in pairs:
        if not isinstance(name, str) or not _SPLIT_NAME.match(name):
            raise DegradeError(f"bad split name {name!r}: use letters, digits, '_' and '-'")
        if name in splits:
            raise DegradeError(f"split {name!r} is given twice")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
            raise DegradeError(f"split {name!r}: fraction must be a number, got {fraction!r}")
        if not math.isfinite(fraction) or fraction <= 0:
            raise DegradeError(f"split {name!r}: fraction must be > 0, got {fraction}")
        splits[name] = float(fraction)
    if not splits:
        raise DegradeError(f"empty split spec; expected e.g. {DEFAULT_SPLIT!r}")
    total = math.fsum(splits.values())
    if abs(total - 1.0) > 1e-6:
        listed = ", ".join(f"{k}={v:g}" for k, v in splits.items())
        raise DegradeError(f"split fractions must sum to 1, got {total:g} ({listed})")
    return splits


def _hash_split(group: str, splits: Mapping[str, float], seed: int) -> str:
    u = float(rng_for(seed, "split", group).random())
    total = 0.0
    for name, fraction in splits.items():
        total += fraction
        if u < total:
            return name
    return next(reversed(list(splits)))  # u just under 1 and fractions summing to 1 - eps


def assign_split(group: str, splits: Mapping[str, float] | str | None, seed: int) -> str:
    """Return the split of a group: a stable hash of ``(seed, group)`` mapped to [0, 1).

    The split whose cumulative fraction (in the given order) first exceeds the draw wins.
    Pool photograph names are dealt out by :func:`pool_split` instead.

    Examples
    --------
    >>> assign_split("cats/001.jpg", {"train": 1.0}, seed=0)
    'train'
    """
    splits = parse_split(splits) if splits is None or isinstance(splits, str) else splits
    if not splits:
        raise DegradeError("no splits given")
    if group in POOL_PHOTOS:
        return pool_split(group, splits, seed)
    return _hash_split(group, splits, seed)


def pool_split(photo: str, splits: Mapping[str, float] | str | None, seed: int) -> str:
    """Return the split of a whole pool photograph.

    The photographs are ordered by a stable hash with ``seed`` and dealt out in that order
    by split fractions (largest remainder). Special rule: when there are at least as many
    photographs as splits, every split gets at least one photograph (taken from the
    largest), so the default ``train=0.9,val=0.05,test=0.05`` gives 13 / 1 / 1 of the 15.

    Examples
    --------
    >>> sorted({pool_split(p, None, seed=0) for p in POOL_PHOTOS})
    ['test', 'train', 'val']
    """
    splits = parse_split(splits) if splits is None or isinstance(splits, str) else splits
    if photo not in POOL_PHOTOS:
        return _hash_split(photo, splits, seed)
    return _pool_assignment(tuple(splits.items()), seed)[photo]


@functools.lru_cache(maxsize=64)
def _pool_assignment(splits: tuple[tuple[str, float], ...], seed: int) -> dict[str, str]:
    order = sorted(POOL_PHOTOS, key=lambda p: (float(rng_for(seed, "pool-split", p).random()), p))
    n, k = len(order), len(splits)
    raw = [fraction * n for _, fraction in splits]
    counts = [math.floor(r) for r in raw]
    rest = max(0, min(k, n - sum(counts)))
    for j in sorted(range(k), key=lambda j: (-(raw[j] - counts[j]), j))[:rest]:
        counts[j] += 1
    if n >= k:
        for j in range(k):
            while counts[j] == 0:
                donor = max(range(k), key=lambda i: (counts[i], -i))
                counts[donor] -= 1
                counts[j] += 1
    out: dict[str, str] = {}
    pos = 0
    for (name, _), count in zip(splits, counts, strict=True):
        for photo in order[pos : pos + count]:
            out[photo] = name
        pos += count
    for photo in order[pos:]:  # only if fractions summed to a hair under 1
        out[photo] = splits[-1][0]
    return out


def split_for(item: SourceItem, splits: Mapping[str, float] | str | None, seed: int) -> str:
    """Return the split of a source: whole photographs for the pool, its group otherwise.

    Examples
    --------
    >>> item = list_sources(["samples"], limit=1)[0]
    >>> split_for(item, None, 0) == pool_split(item.group, None, 0)
    True
    """
    splits = parse_split(splits) if splits is None or isinstance(splits, str) else splits
    if not splits:
        raise DegradeError("no splits given")
    if item.kind == "pool":
        return pool_split(item.group, splits, seed)
    return _hash_split(item.group, splits, seed)
