"""Manifest and atomic JSON writes: no half-written file ever looks finished."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from degrade.errors import DegradeError
from degrade.shards import (
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


def test_names():
    assert (MANIFEST_NAME, PLAN_NAME, MANIFEST_VERSION) == ("manifest.json", "plan.json", 1)


def test_write_json_atomic_format_and_no_temp_left(tmp_path):
    path = tmp_path / PLAN_NAME
    write_json_atomic(path, {"b": [1, 2], "a": "é"})
    assert path.read_bytes() == '{\n  "a": "é",\n  "b": [\n    1,\n    2\n  ]\n}\n'.encode()
    assert os.listdir(tmp_path) == [PLAN_NAME]
    write_json_atomic(path, {"c": 1})
    assert json.loads(path.read_text()) == {"c": 1}
    assert os.listdir(tmp_path) == [PLAN_NAME]


def test_failure_before_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / MANIFEST_NAME
    write_json_atomic(path, {"old": True})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    # A failed write is a one-line DegradeError naming the file (the CLI prints it as is).
    with pytest.raises(DegradeError, match=r"manifest\.json: cannot write \(disk full\)"):
        write_json_atomic(path, {"old": False})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == [MANIFEST_NAME]


def test_killed_process_leaves_old_file_and_a_temp_name(tmp_path):
    path = tmp_path / MANIFEST_NAME
    write_json_atomic(path, {"old": True})
    # The process dies between fsync and rename: no cleanup code runs at all.
    code = textwrap.dedent(
        f"""
        import os
        from degrade.shards.manifest import write_json_atomic
        os.replace = lambda src, dst: os._exit(3)
        write_json_atomic({str(path)!r}, {{"old": False}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == 3
    assert json.loads(path.read_text()) == {"old": True}
    leftovers = sorted(set(os.listdir(tmp_path)) - {MANIFEST_NAME})
    assert len(leftovers) == 1 and is_temp_name(leftovers[0])


def test_unserialisable_json_is_refused(tmp_path):
    with pytest.raises(DegradeError, match="JSON"):
        write_json_atomic(tmp_path / "x.json", {"t": float("nan")})
    with pytest.raises(DegradeError, match="JSON"):
        write_json_atomic(tmp_path / "x.json", {"t": object()})
    assert os.listdir(tmp_path) == []


def test_manifest_roundtrip(tmp_path):
    info = ShardInfo("shard-000000.tar", 2, 10240, "0" * 64)
    path = write_manifest(tmp_path, {"format": "webdataset", "shards": [info.to_dict()]})
    assert path == tmp_path / MANIFEST_NAME
    data = read_manifest(tmp_path)
    assert data["manifest_version"] == MANIFEST_VERSION
    assert [ShardInfo.from_dict(s) for s in data["shards"]] == [info]
    assert read_manifest(path) == data
    with pytest.raises(DegradeError, match="manifest_version 7"):
        write_manifest(tmp_path, {"manifest_version": 7})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no manifest"),
        (b"{not json", "invalid manifest JSON"),
        (b"\xff\xfe", "invalid manifest JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"format": "parquet"}', "manifest_version None"),
        (b'{"manifest_version": 2}', "newer degrade"),
        (b'{"manifest_version": "1"}', "not supported"),
    ],
)
def test_read_manifest_errors(tmp_path, content, message):
    if content is not None:
        (tmp_path / MANIFEST_NAME).write_bytes(content)
    with pytest.raises(DegradeError, match=message) as err:
        read_manifest(tmp_path)
    assert MANIFEST_NAME in str(err.value)


def test_shard_info_from_bad_dict():
    with pytest.raises(DegradeError, match="invalid shard entry"):
        ShardInfo.from_dict({"name": "x.tar", "samples": 1})


def test_sha256_file_streams(tmp_path):
    path = tmp_path / "blob"
    blob = os.urandom(3 * 1024 + 7)
    path.write_bytes(blob)
    assert sha256_file(path, chunk_size=1000) == hashlib.sha256(blob).hexdigest()
    with pytest.raises(DegradeError, match="cannot read"):
        sha256_file(tmp_path / "missing")


def test_temp_names():
    tmp = temp_path("/data/out/shard-000001.parquet")
    assert tmp.parent.as_posix() == "/data/out"
    assert is_temp_name(tmp.name) and tmp.name.endswith(f".tmp-{os.getpid()}")
    assert not is_temp_name("shard-000001.parquet") and not is_temp_name(".hidden")


def test_library_versions():
    v = library_versions()
    for name in ("numpy", "opencv", "pillow", "pyarrow", "webdataset", "scikit-image", "python"):
        assert isinstance(v[name], str) and v[name], name
    assert v["machine"] and v["system"]
    json.dumps(v)


def test_library_versions_never_imports_torch():
    code = (
        "import sys; from degrade.shards import library_versions; v = library_versions(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
