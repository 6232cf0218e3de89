"""The manifest of a build and the atomic-file helpers every on-disk writer shares.

A dataset folder holds ``plan.json`` (written first, the normalised config), the shards, and
``manifest.json`` (written last). Everything here is written to a temporary name in the same
folder (``.<name>.tmp-<pid>``, a name that never looks finished), fsynced, and renamed into
place with :func:`os.replace`, so a killed build never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from degrade.errors import DegradeError

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "PLAN_NAME",
    "ShardInfo",
    "is_temp_name",
    "library_versions",
    "read_manifest",
    "sha256_file",
    "temp_path",
    "write_json_atomic",
    "write_manifest",
]

#: Version of the manifest layout; :func:`read_manifest` refuses any other.
MANIFEST_VERSION = 1
#: File name of the manifest inside a dataset folder (written last).
MANIFEST_NAME = "manifest.json"
#: File name of the build plan inside a dataset folder (written first).
PLAN_NAME = "plan.json"

_TEMP_RE = re.compile(r"^\..+\.tmp-\d+$")


@dataclass(frozen=True)
class ShardInfo:
    """What the manifest records about one finished shard.

    Attributes
    ----------
    name : str
        File name inside the dataset folder, e.g. ``shard-000000.tar``.
    samples : int
        Number of samples (rows) in the shard.
    bytes : int
        File size in bytes.
    sha256 : str
        Hex SHA-256 of the file bytes.

    Examples
    --------
    >>> info = ShardInfo("shard-000000.tar", 2, 10240, "ab" * 32)
    >>> ShardInfo.from_dict(info.to_dict()) == info
    True
    """

    name: str
    samples: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form ``{"name", "samples", "bytes", "sha256"}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardInfo:
        """Build from the JSON form, with a :class:`DegradeError` if a field is missing."""
        try:
            return cls(
                name=str(data["name"]),
                samples=int(data["samples"]),
                bytes=int(data["bytes"]),
                sha256=str(data["sha256"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DegradeError(f"invalid shard entry {dict(data)!r} ({exc!r})") from None


def temp_path(path: str | os.PathLike[str]) -> Path:
    """Return the temporary name a writer uses for ``path``: ``.<name>.tmp-<pid>`` beside it.

    The leading dot and the suffix mean it never matches a shard or manifest name; a resumed
    build removes such files (see :func:`is_temp_name`).

    Examples
    --------
    >>> temp_path("out/shard-000000.tar").name.startswith(".shard-000000.tar.tmp-")
    True
    """
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}")


def is_temp_name(name: str) -> bool:
    """Tell whether a file name is one of :func:`temp_path`'s temporary names.

    Examples
    --------
    >>> is_temp_name(".shard-000000.tar.tmp-123"), is_temp_name("shard-000000.tar")
    (True, False)
    """
    return bool(_TEMP_RE.match(name))


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entry table so a rename inside it survives a power cut (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some file systems (network mounts) refuse fsync on a folder; the rename still happened.
        pass
    finally:
        os.close(fd)


def finish_atomic(fileobj: IO[bytes], tmp: Path, final: Path) -> None:
    """Flush, fsync and close ``fileobj`` (open on ``tmp``), then rename it to ``final``."""
    fileobj.flush()
    os.fsync(fileobj.fileno())
    fileobj.close()
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_error(path: str | os.PathLike[str], exc: OSError) -> DegradeError:
    """The one-line error for a failed write: ``"<path>: cannot write (No space left on device)"``."""
    return DegradeError(f"{os.fspath(path)}: cannot write ({exc.strerror or exc})")


def close_quietly(fileobj: IO[bytes] | None) -> None:
    """Close a file after a failed write. Closing flushes what is still buffered, which on a
    full disk fails again; the descriptor is released all the same and the first error is
    the one that matters, so this one is dropped."""
    if fileobj is None:
        return
    try:
        if not fileobj.closed:
            fileobj.close()
    except (OSError, ValueError):
        pass


def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it exists (cleanup after a failed write)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:  # e.g. a read-only folder: the temporary name never looks finished anyway
        pass


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, UTF-8) atomically to ``path``.

    The bytes go to :func:`temp_path` first, are fsynced and then renamed over ``path``:
    a crash at any moment leaves either the old file or the new one, never half of one.

    Raises
    ------
    DegradeError
        If ``obj`` is not JSON-serialisable (NaN and infinities included), or the file
        cannot be written (a full disk, a read-only folder); nothing is left behind then.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> write_json_atomic(p, {"b": 1, "a": [1.5]}).read_text()
    '{\\n  "a": [\\n    1.5\\n  ],\\n  "b": 1\\n}\\n'
    """
    final = Path(path)
    try:
        text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DegradeError(f"{final}: cannot write as JSON ({exc})") from None
    tmp = temp_path(final)
    f = None
    try:
        f = open(tmp, "wb")
        f.write((text + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, final)
    except OSError as exc:
        close_quietly(f)
        remove_quietly(tmp)
        raise write_error(final, exc) from None
    except BaseException:
        close_quietly(f)
        remove_quietly(tmp)
        raise
    fsync_dir(final.parent)
    return final


def write_manifest(out_dir: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` into ``out_dir`` atomically and return its path.

    ``manifest_version`` is filled in when absent; any other version is refused.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> read_manifest(write_manifest(d, {"format": "webdataset"}))["manifest_version"]
    1
    """
    data = dict(manifest)
    version = data.setdefault("manifest_version", MANIFEST_VERSION)
    if version != MANIFEST_VERSION:
        raise DegradeError(
            f"manifest_version {version!r} cannot be written (this degrade writes {MANIFEST_VERSION})"
        )
    return write_json_atomic(Path(out_dir) / MANIFEST_NAME, data)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a dataset's manifest, given the dataset folder or the manifest file itself.

    Raises
    ------
    DegradeError
        If the manifest is missing (not a dataset, or an unfinished build), is not valid JSON,
        is not an object, or has a ``manifest_version`` this degrade does not read.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = write_manifest(d, {"samples": 3})
    >>> read_manifest(d)["samples"]
    3
    """
    p = Path(path)
    if "\0" in str(p):  # no file has such a name; os calls raise ValueError for it
        raise DegradeError(f"{str(p)!r}: not a path (it contains a NUL byte)")
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DegradeError(
            f"{p}: no manifest (not a degrade dataset, or its build has not finished)"
        ) from None
    except OSError as exc:
        raise DegradeError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # (absurdly deep nesting)
        raise DegradeError(f"{p}: invalid manifest JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DegradeError(f"{p}: a manifest is a JSON object, got {type(data).__name__}")
    version = data.get("manifest_version")
    if version != MANIFEST_VERSION:
        if (
            isinstance(version, int)
            and not isinstance(version, bool)
            and version > MANIFEST_VERSION
        ):
            hint = "written by a newer degrade; upgrade degrade to read it"
        else:
            hint = "not a manifest this degrade understands"
        raise DegradeError(
            f"{p}: manifest_version {version!r} is not supported "
            f"(this degrade reads {MANIFEST_VERSION}; {hint})"
        )
    return data


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks (flat memory for any size).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk_size):
                h.update(block)
    except OSError as exc:
        raise DegradeError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Return the versions that decide a build's bytes, for the manifest.

    numpy, OpenCV, Pillow (and the zlib it encodes PNG with), pyarrow, webdataset,
    scikit-image, Python, and the platform. torch appears only when installed, and is looked
    up in the package metadata, never imported (importing it costs seconds and memory).
    A missing library is ``None``.

    Examples
    --------
    >>> v = library_versions()
    >>> sorted(k for k in ("numpy", "python", "machine") if v.get(k))
    ['machine', 'numpy', 'python']
    """
    import cv2
    import numpy
    import PIL
    import PIL.features
    import pyarrow

    try:
        pillow_zlib = PIL.features.version("zlib")
    except Exception:  # an exotic Pillow build without the feature table
        pillow_zlib = None
    versions: dict[str, str | None] = {
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
        "pillow_zlib": pillow_zlib,
        "pyarrow": pyarrow.__version__,
        "webdataset": _dist_version("webdataset"),
        "scikit-image": _dist_version("scikit-image"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "system": platform.system(),
    }
    torch = sys.modules.get("torch")
    torch_version = getattr(torch, "__version__", None) if torch is not None else None
    torch_version = torch_version or _dist_version("torch")
    if torch_version is not None:
        versions["torch"] = str(torch_version)
    return versions
