"""Finding and reading shards: paths, globs, brace patterns, URLs and manifests.

:func:`resolve_source` turns what a reader is given (a dataset folder, a ``manifest.json``
path or URL, shard paths, globs, ``{000..009}`` patterns) into :class:`ShardRef` records with
their sample counts; :func:`open_url` opens local files, ``http(s)`` URLs (streamed) and what
``fsspec`` can open; :func:`decode_image` decodes a stored frame. No torch here: the torch
readers (:mod:`degrade.data`), the evaluator and the tools share these.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import io
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from degrade.errors import DegradeError
from degrade.shards import MANIFEST_NAME, iter_parquet, iter_webdataset

__all__ = ["HTTP_TIMEOUT", "ShardRef", "decode_image", "expand_braces", "iter_records", "open_url",
           "resolve_source"]

#: Seconds a network read may stall before it fails.
HTTP_TIMEOUT = 60.0

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BRACE_RANGE_RE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


# -- sources -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardRef:
    """One shard as the reader sees it.

    Attributes
    ----------
    url : str
        Local path or URL.
    samples : int
        Samples in the shard (all splits).
    selected : int
        Samples of the split being read (equal to ``samples`` when no split is chosen).
    """

    url: str
    samples: int
    selected: int

    @property
    def format(self) -> str:
        """``"webdataset"`` or ``"parquet"``, from the name's suffix."""
        return _format_of(self.url)


def _is_url(s: str) -> bool:
    return bool(_SCHEME_RE.match(s))


def _is_http(s: str) -> bool:
    return s.lower().startswith(("http://", "https://"))


def _format_of(name: str) -> str:
    path = urllib.parse.urlparse(name).path if _is_url(name) else name
    low = path.lower()
    if low.endswith(".tar"):
        return "webdataset"
    if low.endswith(".parquet"):
        return "parquet"
    raise DegradeError(f"{name}: not a shard (expected a .tar or .parquet name)")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{a..b}`` ranges (zero-padded to the width of ``a``) and ``{x,y}`` lists.

    Examples
    --------
    >>> expand_braces("s-{00..02}.tar")
    ['s-00.tar', 's-01.tar', 's-02.tar']
    >>> expand_braces("{a,b}/{1..2}")
    ['a/1', 'a/2', 'b/1', 'b/2']
    """
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    end = pattern.find("}", start)
    if end < 0:
        raise DegradeError(f"{pattern}: unbalanced '{{' in the shard pattern")
    body = pattern[start + 1 : end]
    m = _BRACE_RANGE_RE.match(body)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        width = len(m.group(1)) if m.group(1).startswith("0") else 0
        step = 1 if b >= a else -1
        choices = [f"{i:0{width}d}" for i in range(a, b + step, step)]
    else:
        choices = body.split(",")
    head, tail = pattern[:start], pattern[end + 1 :]
    return [head + c + rest for c in choices for rest in expand_braces(tail)]


def open_url(url: str, *, seekable: bool = False) -> IO[bytes]:
    """Open a shard or manifest for reading as a binary stream.

    Local paths open as files. ``http(s)://`` URLs stream through :mod:`urllib` (nothing is
    downloaded ahead); with ``seekable=True`` (Parquet) they go through ``fsspec`` when it
    can seek, else the body is read into memory. Other schemes (``s3://``, ``gs://``,
    ``file://``, ...) need ``fsspec`` and its backend.

    Raises
    ------
    DegradeError
        ``"<url>: cannot open (...)"``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.tar")
    >>> _ = open(p, "wb").write(b"abc")
    >>> with open_url(p) as f:
    ...     f.read()
    b'abc'
    """
    if not _is_url(url):
        try:
            return open(url, "rb")
        except OSError as exc:
            raise DegradeError(f"{url}: cannot open ({exc.strerror or exc})") from None
    if _is_http(url) and not seekable:
        try:
            return urllib.request.urlopen(url, timeout=HTTP_TIMEOUT)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DegradeError(f"{url}: cannot open ({exc})") from None
    try:
        import fsspec
    except ModuleNotFoundError:
        fsspec = None
    if fsspec is not None:
        try:
            return fsspec.open(url, "rb").open()
        except ImportError as exc:  # a scheme whose backend (aiohttp, s3fs, ...) is missing
            if not _is_http(url):
                raise DegradeError(f"{url}: cannot open ({exc})") from None
        except (OSError, ValueError) as exc:
            raise DegradeError(f"{url}: cannot open ({exc})") from None
    elif not _is_http(url):
        raise DegradeError(f"{url}: reading this URL scheme needs fsspec (pip install fsspec)")
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
            return io.BytesIO(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DegradeError(f"{url}: cannot open ({exc})") from None


def _read_bytes(url: str) -> bytes:
    with open_url(url) as f:
        try:
            return f.read()
        except (OSError, ValueError) as exc:
            raise DegradeError(f"{url}: cannot read ({exc})") from None


def _join(base: str, name: str) -> str:
    if _is_url(base):
        return urllib.parse.urljoin(base, name)
    return os.path.join(os.path.dirname(base), name)


def _parent_manifest(url: str) -> str:
    return _join(url, MANIFEST_NAME)


def _load_manifest(url: str) -> tuple[dict[str, Any], str]:
    """Read a manifest (path or URL); return it and the sha256 of its bytes."""
    if not _is_url(url) and os.path.isdir(url):
        url = os.path.join(url, MANIFEST_NAME)
    raw = _read_bytes(url)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DegradeError(f"{url}: invalid manifest JSON ({exc})") from None
    if not isinstance(data, dict) or "shards" not in data:
        raise DegradeError(f"{url}: not a degrade manifest (no 'shards')")
    from degrade.shards import MANIFEST_VERSION

    if data.get("manifest_version") != MANIFEST_VERSION:
        raise DegradeError(
            f"{url}: manifest_version {data.get('manifest_version')!r} is not supported "
            f"(this degrade reads {MANIFEST_VERSION})"
        )
    return data, hashlib.sha256(raw).hexdigest()


def _selected_count(entry: Mapping[str, Any], split: str | None) -> int | None:
    if split is None:
        return int(entry["samples"])
    splits = entry.get("splits")
    if not isinstance(splits, Mapping):
        return None
    return int(splits.get(split, 0))


def resolve_source(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    split: str | None,
) -> tuple[list[ShardRef], dict[str, Any] | None, str | None]:
    """Turn a ``source`` into shard refs with counts, plus the manifest and its sha256.

    Examples
    --------
    >>> import tempfile
>>> from degrade.build import build
    >>> d = tempfile.mkdtemp()
    >>> _ = build(["synthetic"], ops="blur", steps=2, limit=3, size=16, out=d,
    ...           shard_size=2, workers=1, progress=False, log=lambda s: None)
    >>> refs, manifest, sha = resolve_source(d, None)
    >>> [r.samples for r in refs], manifest["samples"]
    ([2, 1], 3)
    """
    if isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        local_dir = not _is_url(s) and os.path.isdir(s)
        if local_dir or s.endswith((".json", "/")):
            where = os.path.join(s, MANIFEST_NAME) if local_dir else (
                s + MANIFEST_NAME if s.endswith("/") else s)
            if not _is_url(where) and not os.path.exists(where):
                raise DegradeError(
                    f"{where}: no manifest (not a degrade dataset, or its build has not finished)"
                )
            manifest, sha = _load_manifest(where)
            urls = [_join(where, str(e["name"])) for e in manifest["shards"]]
            return _refs(urls, manifest["shards"], split), manifest, sha
        urls = _expand_pattern(s)
    else:
        urls = [os.fspath(u) for u in source]
        if not urls:
            raise DegradeError("no shards given (an empty list)")
    for u in urls:
        _format_of(u)
    # A list of shards: use the manifest beside them when there is one that lists them all.
    parents = {_parent_manifest(u) for u in urls}
    if len(parents) == 1:
        where = parents.pop()
        try:
            found = _load_manifest(where) if (_is_url(where) or os.path.exists(where)) else None
        except DegradeError:
            found = None
        if found is not None:
            by_name = {str(e["name"]): e for e in found[0]["shards"]}
            names = [_basename(u) for u in urls]
            if all(n in by_name for n in names):
                return _refs(urls, [by_name[n] for n in names], split), found[0], found[1]
    return _count_by_reading([ShardRef(u, -1, -1) for u in urls], split), None, None


def _basename(url: str) -> str:
    return os.path.basename(urllib.parse.urlparse(url).path if _is_url(url) else url)


def _refs(urls: list[str], entries: Sequence[Mapping[str, Any]], split: str | None) -> list[ShardRef]:
    """Shard refs with the manifest's counts (counted by reading if it lacks per-split ones)."""
    counts = [_selected_count(e, split) for e in entries]
    refs = [ShardRef(u, int(e["samples"]), -1 if n is None else n)
            for u, e, n in zip(urls, entries, counts, strict=True)]
    if any(n is None for n in counts):
        refs = _count_by_reading(refs, split)
    return refs


def _expand_pattern(s: str) -> list[str]:
    urls = expand_braces(s)
    out: list[str] = []
    for u in urls:
        if not _is_url(u) and any(c in u for c in "*?["):
            found = sorted(_glob.glob(os.path.expanduser(u)))
            if not found:
                raise DegradeError(f"{u}: no shard matches this pattern")
            out += found
        else:
            out.append(u)
    return out


def _count_by_reading(refs: list[ShardRef], split: str | None) -> list[ShardRef]:
    """Count each shard's samples (of ``split``) by reading it once (no manifest to ask)."""
    out = []
    for ref in refs:
        total = selected = 0
        for rec in iter_records(ref.url):
            total += 1
            selected += split is None or rec["split"] == split
        out.append(ShardRef(ref.url, total, selected))
    return out


def iter_records(url: str) -> Iterator[dict[str, Any]]:
    """The records of one shard (a path or URL), streamed; the format from its suffix.

    Examples
    --------
    >>> import tempfile, degrade
    >>> d = tempfile.mkdtemp()
    >>> _ = degrade.build(["synthetic"], ops="blur", steps=2, limit=2, size=8, out=d, workers=1,
    ...                   progress=False, log=lambda s: None)
    >>> [r["key"] for r in iter_records(d + "/shard-000000.tar")]
    ['synthetic-000000', 'synthetic-000001']
    """
    if _format_of(url) == "webdataset":
        stream = open_url(url)
        try:
            yield from iter_webdataset(stream, name=url)
        finally:
            stream.close()
    else:
        if not _is_url(url):
            yield from iter_parquet(url, name=url)
            return
        stream = open_url(url, seekable=True)
        try:
            yield from iter_parquet(stream, name=url)
        finally:
            stream.close()


# -- decoding ----------------------------------------------------------------------------------

_DECODERS: dict[str, Any] = {}


def decode_image(ext: str, data: bytes) -> np.ndarray:
    """Decode a stored frame to uint8 H×W×C, exactly as :func:`degrade.verify.decode_frame`.

    The same decoders (a codec op's own decoder for ``jpg``/``webp``, else PIL), with the
    lookup done once per extension instead of on every call.

    Examples
    --------
    >>> from degrade.image import encode_png
    >>> decode_image("png", encode_png(np.zeros((2, 2, 3), np.float32))).shape
    (2, 2, 3)
    """
    dec = _DECODERS.get(ext)
    if dec is None:
        dec = _find_decoder(ext)
        _DECODERS[ext] = dec
    arr = dec(data)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _find_decoder(ext: str) -> Any:
    from degrade.registry import get_op, list_ops

    for name in ("jpeg", "webp"):
        if name in list_ops():
            op = get_op(name)
            if op.codec == ext and op.decode is not None:
                return op.decode

    def pil(data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img)

    return pil
