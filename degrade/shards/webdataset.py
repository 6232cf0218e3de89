"""WebDataset tar shards: a deterministic writer and a checking, streaming reader.

One sample is a run of adjacent tar members named ``<key>.<field>`` (DESIGN.md, "On disk")::

    <key>.clean.png      the clean image x0 (PNG)
    <key>.json           the recipe (UTF-8 JSON, sorted keys, compact)
    <key>.s01.png        stored step 1 (``png``, or ``jpg`` for a jpeg step's own bytes, ...)
    <key>.s02.jpg        ...

Step numbers are zero-padded to the width of T (at least two digits: ``s01`` … ``s50``,
``s001`` … ``s100``). Members of a sample are sorted by name; every header has mtime 0,
uid/gid 0, empty user/group names and mode 0o644, so the same records give the same bytes.

The writer uses :mod:`tarfile` directly rather than ``webdataset.TarWriter``: that class
stamps each member with the current time (unless told otherwise), picks the user name from
the environment, and encodes values itself; here the bytes are decided by the records alone.
The label and split travel inside the recipe (``recipe["label"]``, ``recipe["split"]``);
the writer checks that they agree with the record's own fields.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

from degrade.errors import DegradeError
from degrade.shards.manifest import (
    ShardInfo,
    close_quietly,
    finish_atomic,
    remove_quietly,
    temp_path,
    write_error,
)

__all__ = [
    "WebDatasetWriter",
    "check_record",
    "iter_webdataset",
    "member_name",
    "recipe_json",
    "step_width",
]

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_EXT_RE = re.compile(r"^[a-z0-9]+$")
_STEP_FIELD_RE = re.compile(r"^s(\d+)\.([a-z0-9]+)$")
# WebDataset's rule (webdataset.tariterators.base_plus_ext): the key is the name up to the
# first dot of its last path component.
_WDS_NAME_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Every member's modification time; a constant, so bytes never depend on the clock.
MTIME = 0


def step_width(steps: int) -> int:
    """Digits of the step numbers in member names: the width of ``steps``, at least 2.

    Examples
    --------
    >>> step_width(50), step_width(100), step_width(5)
    (2, 3, 2)
    """
    return max(2, len(str(int(steps))))


def member_name(key: str, k: int, ext: str, steps: int) -> str:
    """Return the member name (or Parquet image path) of step ``k`` of a sample.

    Examples
    --------
    >>> member_name("cat-1a2b", 3, "png", 50)
    'cat-1a2b.s03.png'
    """
    return f"{key}.s{k:0{step_width(steps)}d}.{ext}"


def recipe_json(recipe: Mapping[str, Any], *, where: str = "recipe") -> str:
    """Serialise a recipe the one way shards store it: sorted keys, compact, UTF-8, no NaN.

    Examples
    --------
    >>> recipe_json({"split": "train", "key": "a", "t": [0.5]})
    '{"key":"a","split":"train","t":[0.5]}'
    """
    try:
        return json.dumps(
            recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise DegradeError(f"{where}: recipe is not JSON-serialisable ({exc})") from None


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DegradeError(f"steps must be a positive integer, got {steps!r}")
    return steps


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise DegradeError(f"{what} is empty")
        return data
    raise DegradeError(f"{what} must be bytes, got {type(value).__name__}")


def check_record(record: Mapping[str, Any], *, steps: int, shard: str) -> dict[str, Any]:
    """Validate a sample record before it is written and return it normalised.

    Checks the key (``[A-Za-z0-9_-]+``, so no dots), the clean PNG, frames as
    ``(k, ext, bytes)`` with 1 ≤ k ≤ ``steps`` strictly ascending and ``ext`` lowercase
    alphanumeric, a JSON-serialisable recipe whose ``label`` and ``split`` equal the record's.

    Raises
    ------
    DegradeError
        Naming the shard and the sample.

    Examples
    --------
    >>> png = b"\\x89PNG\\r\\n\\x1a\\n..."
    >>> r = {"key": "a", "clean": png, "frames": [(1, "png", png)],
    ...      "recipe": {"label": None, "split": "train"}, "label": None, "split": "train"}
    >>> check_record(r, steps=2, shard="s.tar")["frames"][0][:2]
    (1, 'png')
    """
    if not isinstance(record, Mapping):
        raise DegradeError(f"{shard}: a record is a dict, got {type(record).__name__}")
    missing = [f for f in ("key", "clean", "frames", "recipe", "split") if f not in record]
    if missing:
        raise DegradeError(f"{shard}: record {record.get('key')!r} lacks {', '.join(missing)}")
    key = record["key"]
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise DegradeError(
            f"{shard}: sample key {key!r} must be non-empty and use only A-Z a-z 0-9 _ - (no dots)"
        )
    where = f"{shard}: sample {key!r}"
    clean = _as_bytes(record["clean"], f"{where}: clean")
    if not clean.startswith(_PNG_SIGNATURE):
        raise DegradeError(f"{where}: clean must be PNG bytes")
    raw_frames = record["frames"]
    if not isinstance(raw_frames, (list, tuple)):
        raise DegradeError(f"{where}: frames must be a list of (k, ext, bytes)")
    frames: list[tuple[int, str, bytes]] = []
    last = 0
    for item in raw_frames:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise DegradeError(f"{where}: a frame is (k, ext, bytes), got {item!r:.60}")
        k, ext, data = item
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= steps:
            raise DegradeError(f"{where}: frame step {k!r} is not an integer in 1..{steps}")
        if k <= last:
            raise DegradeError(f"{where}: frame steps must be strictly ascending ({last} then {k})")
        if not isinstance(ext, str) or not _EXT_RE.match(ext):
            raise DegradeError(f"{where}: frame extension {ext!r} must be lowercase a-z 0-9")
        frames.append((k, ext, _as_bytes(data, f"{where}: frame {k}")))
        last = k
    recipe = record["recipe"]
    if not isinstance(recipe, Mapping):
        raise DegradeError(f"{where}: recipe must be a dict, got {type(recipe).__name__}")
    label = record.get("label")
    split = record["split"]
    if label is not None and not isinstance(label, str):
        raise DegradeError(f"{where}: label must be a string or None, got {label!r}")
    if not isinstance(split, str) or not split:
        raise DegradeError(f"{where}: split must be a non-empty string, got {split!r}")
    # WebDataset keeps label and split only inside the recipe; refuse a record whose recipe
    # would read back differently from the record itself.
    if recipe.get("label") != label or recipe.get("split") != split:
        raise DegradeError(
            f"{where}: recipe label/split ({recipe.get('label')!r}, {recipe.get('split')!r}) "
            f"differ from the record's ({label!r}, {split!r}); the builder puts both in the recipe"
        )
    return {
        "key": key,
        "clean": clean,
        "frames": frames,
        "recipe": dict(recipe),
        "recipe_json": recipe_json(recipe, where=where),
        "label": label,
        "split": split,
    }


class HashingFile:
    """A write-only file wrapper that counts and hashes what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.size = 0
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.raw.write(view)
        self._sha.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


_W = TypeVar("_W", bound="_ShardWriter")


class _ShardWriter:
    """What every shard writer shares: a temporary file, checked records, an atomic finish.

    The bytes go to :func:`~degrade.shards.manifest.temp_path` through a
    :class:`HashingFile`; :meth:`close` fsyncs them, renames the file into place and returns
    its :class:`~degrade.shards.manifest.ShardInfo`; :meth:`abort` (or an exception inside a
    ``with`` block) deletes it. A subclass opens the file with :meth:`_open` and supplies the
    format: :meth:`_add` (one checked record), :meth:`_finish` (the file's last bytes) and
    :meth:`_drop` (forget the format's state when the shard is dropped).

    Parameters
    ----------
    path : str or Path
        The finished shard's path.
    steps : int
        T, which fixes the zero-padding of step numbers.
    """

    def __init__(self, path: str | os.PathLike[str], *, steps: int) -> None:
        self.path = Path(path)
        self.steps = _check_steps(steps)
        self.info: ShardInfo | None = None
        self._tmp = temp_path(self.path)
        self._keys: set[str] = set()
        self._samples = 0
        self._file: HashingFile | None = None

    def _open(self) -> HashingFile:
        """Create the temporary file (``"<path>: cannot create (...)"`` if that fails)."""
        try:
            raw = open(self._tmp, "wb")  # closed by close()/abort()
        except OSError as exc:
            raise DegradeError(f"{self.path}: cannot create ({exc.strerror or exc})") from None
        self._file = HashingFile(raw)
        return self._file

    @property
    def samples(self) -> int:
        """Samples written so far (any still buffered in memory included)."""
        return self._samples

    @property
    def temp_path(self) -> Path:
        """Where the bytes live until :meth:`close` renames them into place."""
        return self._tmp

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one sample (see the module docs for how the format stores it).

        Raises
        ------
        DegradeError
            If the writer is closed, the record is invalid or its key was already written to
            this shard, or the write fails (a full disk; the partial shard is then dropped).
        """
        if self._file is None:
            raise DegradeError(f"{self.path}: writer is closed")
        rec = check_record(record, steps=self.steps, shard=str(self.path))
        if rec["key"] in self._keys:
            raise DegradeError(f"{self.path}: sample key {rec['key']!r} written twice")
        try:
            self._add(rec)
        except OSError as exc:  # a full disk: drop the partial shard, say so in one line
            self.abort()
            raise write_error(self.path, exc) from None

    def _count(self, key: str) -> None:
        """Record that the sample ``key`` is in the shard (called by :meth:`_add`)."""
        self._keys.add(key)
        self._samples += 1

    def _add(self, rec: dict[str, Any]) -> None:
        """Store one record checked by :func:`check_record` and :meth:`_count` it."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Write the format's last bytes; the file itself stays open for :meth:`close`."""
        raise NotImplementedError

    def _drop(self) -> None:
        """Forget the format's state when the shard is dropped (must not raise)."""
        raise NotImplementedError

    def close(self) -> ShardInfo:
        """Finish the file, fsync, rename it into place and return its :class:`ShardInfo`.

        A second call returns the same info.

        Raises
        ------
        DegradeError
            If the writer was aborted, or the file cannot be written (nothing is left then).
        """
        if self.info is not None:
            return self.info
        if self._file is None:
            raise DegradeError(f"{self.path}: writer was aborted")
        try:
            self._finish()
            finish_atomic(self._file, self._tmp, self.path)  # type: ignore[arg-type]
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from None
        except BaseException:
            self.abort()
            raise
        self.info = ShardInfo(
            self.path.name, self._samples, self._file.size, self._file.hexdigest()
        )
        self._file = None
        return self.info

    def abort(self) -> None:
        """Drop the shard: close and delete the temporary file; nothing appears at ``path``."""
        self._drop()
        close_quietly(self._file)  # type: ignore[arg-type]
        self._file = None
        remove_quietly(self._tmp)

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_MAX_OCTAL = 8**11  # sizes from here need a PAX header


def tar_header(name: str, size: int) -> bytes:
    """The header ``tarfile`` writes (PAX format, UTF-8) for a member of ours, made fast.

    For an ASCII name of at most 100 bytes and a size below 8 GiB ``tarfile`` writes one plain
    ustar block; building it here costs a fraction of ``TarInfo.tobuf`` (a third of a 64 px
    shard's time went to tar headers). Other names go through ``tobuf`` itself. The tests
    compare both against ``tarfile``.

    Examples
    --------
    >>> tar_header("a.json", 3) == _tarinfo("a.json", 3).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    True
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > 100 or not raw.isascii() or size >= _MAX_OCTAL or not name:
        return _tarinfo(name, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    h = bytearray(_BLOCK)
    h[0 : len(raw)] = raw
    h[100:124] = b"0000644\x000000000\x000000000\x00"  # mode, uid, gid
    h[124:136] = b"%011o\x00" % size
    h[136:148] = b"%011o\x00" % MTIME
    h[148:157] = b"        0"  # checksum placeholder (8 spaces), type: regular file
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\x00 " % sum(h)
    return bytes(h)


class WebDatasetWriter(_ShardWriter):
    """Write one WebDataset shard, atomically and deterministically.

    Parameters
    ----------
    path : str or Path
        The finished shard's path (``.../shard-000000.tar``). Until :meth:`close` the bytes
        live in ``.<name>.tmp-<pid>`` beside it.
    steps : int
        T, which fixes the zero-padding of step numbers.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from degrade.image import encode_png
    >>> png = encode_png(np.zeros((2, 2, 3), np.float32))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "shard-000000.tar"
    >>> with WebDatasetWriter(out, steps=10) as w:
    ...     w.write({"key": "a", "clean": png, "frames": [(1, "png", png)],
    ...              "recipe": {"label": None, "split": "train"}, "label": None, "split": "train"})
    >>> w.info.samples, w.info.bytes
    (1, 10240)
    >>> [r["key"] for r in iter_webdataset(out)]
    ['a']
    """

    def __init__(self, path: str | os.PathLike[str], *, steps: int) -> None:
        super().__init__(path, steps=steps)
        # The bytes are tarfile's (PAX format, UTF-8: plain ustar headers for our names, see
        # tar_header), written here a sample at a time: one write and one hash update per
        # sample instead of three per member.
        self._open()
        self._offset = 0

    def _add(self, rec: dict[str, Any]) -> None:
        """Add the sample's members, sorted by name."""
        assert self._file is not None
        key = rec["key"]
        members = [(f"{key}.clean.png", rec["clean"]), (f"{key}.json", rec["recipe_json"].encode())]
        members += [(member_name(key, k, ext, self.steps), data) for k, ext, data in rec["frames"]]
        members.sort(key=lambda m: m[0])
        parts: list[bytes] = []
        for name, data in members:
            parts.append(tar_header(name, len(data)))
            parts.append(data)
            pad = -len(data) % _BLOCK
            if pad:
                parts.append(bytes(pad))
        buf = b"".join(parts)
        self._file.write(buf)
        self._offset += len(buf)
        self._count(key)

    def _finish(self) -> None:
        """Write the end-of-archive blocks as tarfile does (the file object stays open)."""
        assert self._file is not None
        end = 2 * _BLOCK
        end += -(self._offset + end) % _RECORD
        self._file.write(bytes(end))
        self._offset += end

    def _drop(self) -> None:
        """Nothing to forget (:meth:`abort` closes and deletes the file)."""


class _EndCheckingTarInfo(tarfile.TarInfo):
    """Records how the archive ended: ``tarfile`` silently treats a missing or truncated
    end-of-archive marker as the end, so a tar cut at a member boundary would read as a
    shorter, complete one. The reader requires the zero block that closes every archive."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as exc:
            tarfile_._degrade_end = type(exc).__name__  # type: ignore[attr-defined]
            raise


class _HashingReader:
    """A read-only wrapper that hashes every byte read through it (the reader's optional
    ``sha256`` check: a tar has no checksum over member data, so a flipped byte inside an
    image or a recipe is only seen by comparing the whole file with the manifest)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.name = getattr(raw, "name", None)
        self._sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self._sha.update(data)
        return data

    def drain(self) -> str:
        """Read (and hash) whatever is left and return the hex digest of the whole file."""
        while self.read(1 << 20):
            pass
        return self._sha.hexdigest()


def check_sha256(shard: str, got: str, expected: str) -> None:
    """Raise the reader's error for a file whose sha256 is not the one its manifest lists."""
    if got != expected.lower():
        raise DegradeError(
            f"{shard}: sha256 {got[:16]}… differs from the manifest's {expected[:16]}… "
            "(the shard is corrupt or was changed)"
        )


def _check_expected(sha256: str | None) -> str | None:
    if sha256 is not None and (
        not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256)
    ):
        raise DegradeError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return sha256


def _source_name(source: Any, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)  # type: ignore[return-value]
    n = getattr(source, "name", None)
    return n if isinstance(n, str) else "<stream>"


def _iter_members(fileobj: IO[bytes], shard: str) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` of each member, refusing unsafe or corrupt archives."""
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|*", tarinfo=_EndCheckingTarInfo)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise DegradeError(f"{shard}: not a readable tar file ({exc})") from None
    with tar:
        while True:
            try:
                info = tar.next()
                if info is None:
                    break
                name = info.name
                parts = name.split("/")
                if name.startswith("/") or os.path.isabs(name) or ".." in parts or "\\" in name:
                    raise DegradeError(f"{shard}: member {name!r} has an unsafe path")
                if not info.isreg():
                    raise DegradeError(f"{shard}: member {name!r} is not a regular file")
                member = tar.extractfile(info)
                data = member.read() if member is not None else b""
                if len(data) != info.size:
                    raise DegradeError(f"{shard}: member {name!r} is truncated")
            except DegradeError:
                raise
            except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
                raise DegradeError(f"{shard}: corrupt or truncated tar ({exc})") from None
            yield name, data
        if getattr(tar, "_degrade_end", None) != "EOFHeaderError":
            raise DegradeError(f"{shard}: truncated tar (the end-of-archive marker is missing)")


def _build_record(key: str, fields: dict[str, bytes], shard: str) -> dict[str, Any]:
    where = f"{shard}: sample {key!r}"
    for required in ("clean.png", "json"):
        if required not in fields:
            raise DegradeError(f"{where}: missing {key}.{required}")
    try:
        recipe = json.loads(fields["json"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # (absurdly deep nesting)
        raise DegradeError(f"{where}: invalid recipe JSON ({exc})") from None
    if not isinstance(recipe, dict):
        raise DegradeError(f"{where}: the recipe is not a JSON object")
    frames: list[tuple[int, str, bytes]] = []
    for field, data in fields.items():
        if field in ("clean.png", "json"):
            continue
        m = _STEP_FIELD_RE.match(field)
        if m is None:
            raise DegradeError(f"{where}: unexpected member {key}.{field}")
        frames.append((int(m.group(1)), m.group(2), data))
    frames.sort(key=lambda f: f[0])
    for a, b in itertools.pairwise(frames):
        if a[0] == b[0]:
            raise DegradeError(f"{where}: step {a[0]} stored twice")
    split = recipe.get("split")
    if not isinstance(split, str):
        raise DegradeError(f"{where}: the recipe has no split")
    label = recipe.get("label")
    return {
        "key": key,
        "clean": fields["clean.png"],
        "frames": frames,
        "recipe": recipe,
        "label": None if label is None else str(label),
        "split": split,
    }


def iter_webdataset(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    name: str | None = None,
    sha256: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Read the sample records of a WebDataset shard written by :class:`WebDatasetWriter`.

    Reads sequentially (``tarfile`` mode ``"r|*"``), so ``source`` may be a path or any
    readable binary stream, seekable or not (an HTTP response, a pipe).

    Parameters
    ----------
    source : path or binary file object
    name : str, optional
        The shard's name in error messages (default: the path or the stream's ``name``).
    sha256 : str, optional
        The shard's checksum from the manifest. The bytes are hashed as they stream by and
        compared at the end of the archive, before the last record is given: a flipped byte
        inside a member (which a tar does not checksum) is then an error too. Records before
        the last one have been given by then; to refuse a shard before reading any of it,
        check the whole file first (``degrade verify``).

    Yields
    ------
    dict
        ``{"key", "clean", "frames", "recipe", "label", "split"}`` with ``frames`` a list of
        ``(k, ext, bytes)`` in ascending ``k``.

    Raises
    ------
    DegradeError
        ``"<shard>: ..."`` for a corrupt or truncated tar, a member with an absolute path,
        ``..`` or a non-regular type (links, devices, folders), members of one sample that are
        not adjacent, a sample missing its clean image or recipe, or (with ``sha256``) a file
        whose checksum differs.

    Examples
    --------
    >>> import io
    >>> list(iter_webdataset(io.BytesIO(b"\\0" * 1024), name="empty.tar"))
    []
    """
    shard = _source_name(source, name)
    expected = _check_expected(sha256)
    if isinstance(source, (str, os.PathLike)):
        try:
            fileobj: IO[bytes] = open(source, "rb")  # closed below
        except OSError as exc:
            raise DegradeError(f"{shard}: cannot open ({exc.strerror or exc})") from None
        owned = True
    else:
        fileobj, owned = source, False
    hashing = _HashingReader(fileobj) if expected is not None else None
    try:
        seen: set[str] = set()
        key: str | None = None
        fields: dict[str, bytes] = {}
        stream: IO[bytes] = hashing if hashing is not None else fileobj  # type: ignore[assignment]
        for member, data in _iter_members(stream, shard):
            m = _WDS_NAME_RE.match(member)
            if m is None:
                raise DegradeError(f"{shard}: member {member!r} has no <key>.<field> name")
            mkey, field = m.group(1), m.group(2)
            if mkey != key:
                if key is not None:
                    yield _build_record(key, fields, shard)
                if mkey in seen:
                    raise DegradeError(
                        f"{shard}: sample {mkey!r} appears twice (its members are not adjacent)"
                    )
                seen.add(mkey)
                key, fields = mkey, {}
            if field in fields:
                raise DegradeError(f"{shard}: member {member!r} appears twice")
            fields[field] = data
        if hashing is not None and expected is not None:
            try:
                got = hashing.drain()
            except (OSError, ValueError) as exc:
                raise DegradeError(f"{shard}: cannot read ({exc})") from None
            check_sha256(shard, got, expected)
        if key is not None:
            yield _build_record(key, fields, shard)
    finally:
        if owned:
            fileobj.close()
