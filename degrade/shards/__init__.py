"""On-disk formats: WebDataset tars, Parquet files, and the manifest that lists them.

A writer takes sample records and produces one complete, immutable shard, written to a
temporary name and renamed into place; a reader gives the same records back. A record is a
plain dict::

    {"key": str,                                  # [A-Za-z0-9_-]+, no dots
     "clean": bytes,                              # PNG bytes of x0
     "frames": [(k, ext, bytes), ...],            # stored steps, k ascending; ext "png", "jpg", ...
     "recipe": dict,                              # JSON; holds "label" and "split" too
     "label": str | None, "split": str}

Examples
--------
>>> shard_name(3, "parquet")
'shard-000003.parquet'
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from degrade.errors import DegradeError
from degrade.shards.manifest import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    PLAN_NAME,
    ShardInfo,
    is_temp_name,
    library_versions,
    read_manifest,
    sha256_file,
    temp_path,
    write_json_atomic,
    write_manifest,
)
from degrade.shards.parquet import HF_FEATURES, SCHEMA, ParquetWriter, iter_parquet
from degrade.shards.webdataset import (
    WebDatasetWriter,
    check_record,
    iter_webdataset,
    member_name,
    recipe_json,
    step_width,
)

__all__ = [
    "FORMATS",
    "HF_FEATURES",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "PLAN_NAME",
    "SCHEMA",
    "SHARD_SUFFIX",
    "ParquetWriter",
    "ShardInfo",
    "WebDatasetWriter",
    "check_record",
    "is_temp_name",
    "iter_parquet",
    "iter_shard",
    "iter_webdataset",
    "library_versions",
    "member_name",
    "read_manifest",
    "recipe_json",
    "sha256_file",
    "shard_name",
    "step_width",
    "temp_path",
    "write_json_atomic",
    "write_manifest",
    "writer_for",
]

#: File suffix of each format's shards.
SHARD_SUFFIX = {"webdataset": ".tar", "parquet": ".parquet"}
#: The format names, in the order the command line lists them.
FORMATS = tuple(SHARD_SUFFIX)


def _check_format(format: str) -> str:
    if format not in SHARD_SUFFIX:
        raise DegradeError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    return format


def shard_name(index: int, format: str) -> str:
    """Return the file name of shard ``index``: ``shard-000000.tar`` / ``.parquet``.

    Examples
    --------
    >>> shard_name(0, "webdataset")
    'shard-000000.tar'
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise DegradeError(f"shard index must be a non-negative integer, got {index!r}")
    return f"shard-{index:06d}{SHARD_SUFFIX[_check_format(format)]}"


def writer_for(
    format: str, path: str | os.PathLike[str], *, steps: int
) -> WebDatasetWriter | ParquetWriter:
    """Open the writer of ``format`` (``"webdataset"`` or ``"parquet"``) for ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with writer_for("webdataset", d / shard_name(0, "webdataset"), steps=4) as w:
    ...     pass
    >>> w.info.samples
    0
    """
    if _check_format(format) == "webdataset":
        return WebDatasetWriter(path, steps=steps)
    return ParquetWriter(path, steps=steps)


def iter_shard(
    path: str | os.PathLike[str], *, name: str | None = None, sha256: str | None = None
) -> Iterator[dict[str, Any]]:
    """Read the records of a shard, choosing the reader by suffix (``.tar``, ``.parquet``).

    ``sha256`` (the manifest's checksum of the shard) makes the reader check the file's
    bytes too; see :func:`iter_webdataset` and :func:`iter_parquet`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "shard-000000.parquet"
    >>> ParquetWriter(p, steps=2).close().samples
    0
    >>> list(iter_shard(p))
    []
    """
    suffix = Path(path).suffix.lower()
    if suffix == SHARD_SUFFIX["webdataset"]:
        return iter_webdataset(path, name=name, sha256=sha256)
    if suffix == SHARD_SUFFIX["parquet"]:
        return iter_parquet(path, name=name, sha256=sha256)
    raise DegradeError(
        f"{os.fspath(path)}: unknown shard type {suffix or '(no suffix)'}; expected .tar or .parquet"
    )
