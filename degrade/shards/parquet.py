"""Parquet shards: one row per sample, images in the Hugging Face ``Image`` convention.

Columns (DESIGN.md, "On disk")::

    key     string
    clean   struct<bytes: binary, path: string>          path = "<key>.clean.png"
    steps   list<int32>                                   stored step indices, ascending
    frames  list<struct<bytes: binary, path: string>>     path = "<key>.s01.png", ...
    recipe  string                                        JSON, sorted keys, compact
    label   string (null when unlabelled)
    split   string

The schema metadata carries the ``datasets`` features under ``b"huggingface"`` exactly as
``datasets`` 5 writes them itself, so ``load_dataset("parquet", ...)`` decodes ``clean`` and
``frames`` to PIL images. As ``datasets`` does, image columns are stored uncompressed and
without dictionary encoding (PNG and JPEG bytes do not compress further); the other columns
use zstd, and every page carries a CRC that the reader checks. Rows are buffered up to one
row group (64 MiB or 100 rows, whichever comes first), so memory stays flat however large
the shard. Parquet stores no timestamps, so the same
records give the same bytes (with the same pyarrow, whose version is in the footer).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from degrade.errors import DegradeError
from degrade.shards.webdataset import (
    _check_expected,
    _ShardWriter,
    _source_name,
    check_sha256,
    member_name,
)

__all__ = ["HF_FEATURES", "SCHEMA", "ParquetWriter", "iter_parquet"]

#: The ``datasets`` Image storage type.
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

#: The ``datasets`` features of a shard, as ``datasets`` 5.x writes them (``List``, not the
#: older ``Sequence``); stored as JSON under the schema metadata key ``huggingface``.
HF_FEATURES: dict[str, Any] = {
    "info": {
        "features": {
            "key": {"dtype": "string", "_type": "Value"},
            "clean": {"_type": "Image"},
            "steps": {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "List"},
            "frames": {"feature": {"_type": "Image"}, "_type": "List"},
            "recipe": {"dtype": "string", "_type": "Value"},
            "label": {"dtype": "string", "_type": "Value"},
            "split": {"dtype": "string", "_type": "Value"},
        }
    }
}

# List children are named "element", as Parquet's nested-type rules (and pyarrow on read)
# name them, so the schema read back equals the schema written.
SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("clean", IMAGE_TYPE),
        ("steps", pa.list_(pa.field("element", pa.int32()))),
        ("frames", pa.list_(pa.field("element", IMAGE_TYPE))),
        ("recipe", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
    ],
    # json.dumps with default separators: byte-for-byte what ``datasets`` writes.
    metadata={b"huggingface": json.dumps(HF_FEATURES).encode("utf-8")},
)

_IMAGE_LEAVES = (
    "clean.bytes",
    "clean.path",
    "frames.list.element.bytes",
    "frames.list.element.path",
)
_OTHER_LEAVES = ("key", "steps.list.element", "recipe", "label", "split")
#: Row-group bounds: the first reached closes the group.
ROW_GROUP_BYTES = 64 << 20
ROW_GROUP_ROWS = 100


class ParquetWriter(_ShardWriter):
    """Write one Parquet shard, atomically and deterministically.

    Parameters
    ----------
    path : str or Path
        The finished shard's path (``.../shard-000000.parquet``). Until :meth:`close` the
        bytes live in ``.<name>.tmp-<pid>`` beside it.
    steps : int
        T, which fixes the zero-padding of step numbers in the image paths.
    row_group_bytes, row_group_rows : int
        Bounds of one row group (and of the rows held in memory).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from degrade.image import encode_png
    >>> png = encode_png(np.zeros((2, 2, 3), np.float32))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "shard-000000.parquet"
    >>> with ParquetWriter(out, steps=10) as w:
    ...     w.write({"key": "a", "clean": png, "frames": [(1, "png", png)],
    ...              "recipe": {"label": None, "split": "train"}, "label": None, "split": "train"})
    >>> w.info.samples
    1
    >>> [(r["key"], r["frames"][0][:2]) for r in iter_parquet(out)]
    [('a', (1, 'png'))]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        steps: int,
        row_group_bytes: int = ROW_GROUP_BYTES,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        super().__init__(path, steps=steps)
        self.row_group_bytes = int(row_group_bytes)
        self.row_group_rows = max(1, int(row_group_rows))
        self._rows: list[dict[str, Any]] = []
        self._buffered = 0
        file = self._open()
        self._writer: pq.ParquetWriter | None = None
        try:
            self._writer = pq.ParquetWriter(
                file,
                SCHEMA,
                compression={
                    **dict.fromkeys(_IMAGE_LEAVES, "none"),
                    **dict.fromkeys(_OTHER_LEAVES, "zstd"),
                },
                use_dictionary=["label", "split"],
                # Min/max of image bytes would be large and useless.
                write_statistics=["key", "steps.list.element", "label", "split"],
                # A CRC per page: the reader notices a flipped byte even in the image bytes,
                # which no decoder would (uncompressed pages carry no other check).
                write_page_checksum=True,
            )
        except BaseException:
            self.abort()
            raise

    def _add(self, rec: dict[str, Any]) -> None:
        """Buffer the sample as a row; write a row group once the buffer is full."""
        key = rec["key"]
        frames = rec["frames"]
        row = {
            "key": key,
            "clean": {"bytes": rec["clean"], "path": f"{key}.clean.png"},
            "steps": [k for k, _, _ in frames],
            "frames": [
                {"bytes": data, "path": member_name(key, k, ext, self.steps)}
                for k, ext, data in frames
            ],
            "recipe": rec["recipe_json"],
            "label": rec["label"],
            "split": rec["split"],
        }
        self._rows.append(row)
        self._count(key)
        self._buffered += len(rec["clean"]) + sum(len(d) for _, _, d in frames)
        self._buffered += len(rec["recipe_json"])
        if self._buffered >= self.row_group_bytes or len(self._rows) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._rows or self._writer is None:
            return
        table = pa.Table.from_pylist(self._rows, schema=SCHEMA)
        self._writer.write_table(table, row_group_size=len(self._rows))
        self._rows = []
        self._buffered = 0

    def _finish(self) -> None:
        """Write the last row group and the footer (the file object stays open)."""
        assert self._writer is not None  # open while self._file is
        self._flush()
        self._writer.close()
        self._writer = None

    def _drop(self) -> None:
        """Close the Parquet writer quietly and forget the buffered rows."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # the file is deleted anyway; the first error is what matters
                pass
        self._rows = []


_REQUIRED = ("key", "clean", "steps", "frames", "recipe", "label", "split")


def _row_record(row: dict[str, Any], shard: str) -> dict[str, Any]:
    key = row["key"]
    if not isinstance(key, str) or not key:
        raise DegradeError(f"{shard}: a row has no key")
    where = f"{shard}: sample {key!r}"
    clean = row["clean"]
    if not clean or clean.get("bytes") is None:
        raise DegradeError(f"{where}: missing clean image")
    steps, images = row["steps"] or [], row["frames"] or []
    if len(steps) != len(images):
        raise DegradeError(f"{where}: {len(steps)} steps but {len(images)} frames")
    frames: list[tuple[int, str, bytes]] = []
    for k, image in zip(steps, images, strict=True):
        if k is None or not image or image.get("bytes") is None:
            raise DegradeError(f"{where}: frame of step {k} is missing")
        path = image.get("path") or ""
        stem, dot, ext = path.rpartition(".")
        # The path is "<key>.s<k>.<ext>": the ext comes from it, the step must agree.
        prefix = f"{key}.s"
        if not dot or not stem.startswith(prefix) or not stem[len(prefix) :].isdigit():
            raise DegradeError(f"{where}: frame path {path!r} is not {key}.s<k>.<ext>")
        if int(stem[len(prefix) :]) != k:
            raise DegradeError(f"{where}: frame path {path!r} does not match step {k}")
        frames.append((int(k), ext, image["bytes"]))
    if any(a[0] >= b[0] for a, b in itertools.pairwise(frames)):
        raise DegradeError(f"{where}: steps are not strictly ascending")
    try:
        recipe = json.loads(row["recipe"])
    except (TypeError, ValueError, RecursionError) as exc:  # (absurdly deep nesting)
        raise DegradeError(f"{where}: invalid recipe JSON ({exc})") from None
    if not isinstance(recipe, dict):
        raise DegradeError(f"{where}: the recipe is not a JSON object")
    if not isinstance(row["split"], str):
        raise DegradeError(f"{where}: missing split")
    return {
        "key": key,
        "clean": clean["bytes"],
        "frames": frames,
        "recipe": recipe,
        "label": row["label"],
        "split": row["split"],
    }


def _iter_rows(pf: pq.ParquetFile, shard: str, batch_size: int) -> Iterator[dict[str, Any]]:
    batches = pf.iter_batches(batch_size=batch_size, columns=list(_REQUIRED))
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            rows = batch.to_pylist()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DegradeError(f"{shard}: corrupt Parquet data ({exc})") from None
        yield from rows


def iter_parquet(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    name: str | None = None,
    batch_size: int = 16,
    sha256: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Read the sample records of a Parquet shard written by :class:`ParquetWriter`.

    Reads ``batch_size`` rows at a time. Parquet keeps its index in a footer, so a file
    object must be seekable (unlike :func:`~degrade.shards.webdataset.iter_webdataset`).

    Parameters
    ----------
    source : path or seekable binary file object
    name : str, optional
        The shard's name in error messages (default: the path or the stream's ``name``).
    batch_size : int
        Rows decoded at a time.
    sha256 : str, optional
        The shard's checksum from the manifest, compared before the first row is read
        (Parquet is read from its footer, so the whole file is hashed first). Every page
        also carries a CRC that is checked as it is read.

    Yields
    ------
    dict
        ``{"key", "clean", "frames", "recipe", "label", "split"}``; each frame is
        ``(k, ext, bytes)`` with ``ext`` taken from the image path's suffix.

    Raises
    ------
    DegradeError
        ``"<shard>: ..."`` if the file is not Parquet, is truncated or corrupt, lacks a
        column, a row is inconsistent, or (with ``sha256``) its checksum differs.

    Examples
    --------
    >>> import io
    >>> try:
    ...     next(iter_parquet(io.BytesIO(b"not parquet"), name="x.parquet"))
    ... except DegradeError as exc:
    ...     print(str(exc).split(" (")[0])
    x.parquet: not a readable Parquet file
    """
    shard = _source_name(source, name)
    src = os.fspath(source) if isinstance(source, (str, os.PathLike)) else source
    expected = _check_expected(sha256)
    if expected is not None:
        check_sha256(shard, _sha256_of(src, shard), expected)
    try:
        pf = pq.ParquetFile(src, page_checksum_verification=True)
    except FileNotFoundError as exc:
        raise DegradeError(f"{shard}: cannot open ({exc.strerror or exc})") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DegradeError(f"{shard}: not a readable Parquet file ({exc})") from None
    with pf:
        missing = [c for c in _REQUIRED if c not in pf.schema_arrow.names]
        if missing:
            raise DegradeError(f"{shard}: not a degrade shard (no column {', '.join(missing)})")
        for row in _iter_rows(pf, shard, batch_size):
            yield _row_record(row, shard)


def _sha256_of(src: str | IO[bytes], shard: str) -> str:
    h = hashlib.sha256()
    try:
        if isinstance(src, str):
            with open(src, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        else:
            start = src.tell()
            while block := src.read(1 << 20):
                h.update(block)
            src.seek(start)
    except FileNotFoundError as exc:
        raise DegradeError(f"{shard}: cannot open ({exc.strerror or exc})") from None
    except (OSError, ValueError) as exc:
        raise DegradeError(f"{shard}: cannot read ({exc})") from None
    return h.hexdigest()
