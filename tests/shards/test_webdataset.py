"""WebDataset shards: stock readers, determinism, atomic writes, refusal of bad archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from degrade.errors import DegradeError
from degrade.image import encode_png
from degrade.shards import (
    WebDatasetWriter,
    is_temp_name,
    iter_shard,
    iter_webdataset,
    shard_name,
)

STEPS = 12


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=50)
    return buf.getvalue()


def make_records(n: int = 3, *, steps: int = STEPS, size: int = 8) -> tuple[list[dict], dict]:
    """Records with real PNG/JPEG bytes, and the uint8 pixels they encode, by member name."""
    rng = np.random.default_rng(0)
    records, pixels = [], {}
    for i in range(n):
        key = f"img_{i}-{i:010x}"
        clean = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        pixels[(key, "clean.png")] = clean
        frames = []
        for k in (1, 3, steps):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            if k == 3:
                data, ext = _jpeg(arr), "jpg"
                with Image.open(io.BytesIO(data)) as im:
                    pixels[(key, f"s{k:02d}.jpg")] = np.asarray(im.convert("RGB"))
            else:
                data, ext = encode_png(arr), "png"
                pixels[(key, f"s{k:02d}.png")] = arr
            frames.append((k, ext, data))
        label = None if i == 0 else f"class{i % 2}"
        recipe = {"key": key, "label": label, "split": "train", "seed": 0, "note": "ünïcode"}
        records.append(
            {
                "key": key,
                "clean": encode_png(clean),
                "frames": frames,
                "recipe": recipe,
                "label": label,
                "split": "train",
            }
        )
    return records, pixels


def write_shard(path: Path, records: list[dict], steps: int = STEPS):
    with WebDatasetWriter(path, steps=steps) as w:
        for r in records:
            w.write(r)
    return w.info


def test_roundtrip_through_own_reader(tmp_path):
    records, _ = make_records()
    path = tmp_path / shard_name(0, "webdataset")
    info = write_shard(path, records)
    assert info.name == "shard-000000.tar" and info.samples == 3
    assert info.bytes == path.stat().st_size
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    back = list(iter_webdataset(path))
    assert back == records
    assert list(iter_shard(path)) == records


def test_stock_webdataset_reads_samples(tmp_path):
    webdataset = pytest.importorskip("webdataset")
    records, pixels = make_records()
    path = tmp_path / "shard-000000.tar"
    write_shard(path, records)
    ds = webdataset.WebDataset(str(path), shardshuffle=False).decode("pil")
    samples = list(ds)
    assert [s["__key__"] for s in samples] == [r["key"] for r in records]
    for sample, record in zip(samples, records, strict=True):
        fields = {f for f in sample if not f.startswith("__")}
        assert fields == {"clean.png", "json", "s01.png", "s03.jpg", f"s{STEPS}.png"}
        assert sample["json"] == record["recipe"]
        for field in fields - {"json"}:
            got = np.asarray(sample[field].convert("RGB"))
            np.testing.assert_array_equal(got, pixels[(record["key"], field)])


def test_member_layout_and_headers(tmp_path):
    records, _ = make_records(2)
    path = tmp_path / "a.tar"
    write_shard(path, records)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    k0 = records[0]["key"]
    assert names[:5] == [
        f"{k0}.clean.png",
        f"{k0}.json",
        f"{k0}.s01.png",
        f"{k0}.s03.jpg",
        f"{k0}.s12.png",
    ]
    assert len(names) == 10
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
        assert m.isreg()
    raw = tarfile.open(path).extractfile(f"{k0}.json").read()
    assert raw == b'{"key":"img_0-0000000000","label":null,"note":"\xc3\xbcn\xc3\xafcode",' + (
        b'"seed":0,"split":"train"}'
    )


@pytest.mark.parametrize(
    ("steps", "name"), [(5, "s05"), (99, "s05"), (100, "s005"), (1000, "s0005")]
)
def test_step_width(tmp_path, steps, name):
    records, _ = make_records(1)
    records[0]["frames"] = [(5, "png", records[0]["clean"])]
    path = tmp_path / "w.tar"
    write_shard(path, records, steps=steps)
    with tarfile.open(path) as tar:
        assert f"{records[0]['key']}.{name}.png" in tar.getnames()
    assert next(iter_webdataset(path))["frames"][0][0] == 5


def test_same_records_same_bytes(tmp_path):
    records, _ = make_records()
    a = write_shard(tmp_path / "a.tar", records)
    os.utime(tmp_path / "a.tar", (0, 0))
    b = write_shard(tmp_path / "b.tar", records)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert a.sha256 == b.sha256


def test_temp_name_while_writing_and_gone_after(tmp_path):
    records, _ = make_records(1)
    path = tmp_path / "shard-000000.tar"
    w = WebDatasetWriter(path, steps=STEPS)
    w.write(records[0])
    assert not path.exists()
    (tmp,) = os.listdir(tmp_path)
    assert is_temp_name(tmp) and not tmp.endswith(".tar") and tmp.startswith(".")
    info = w.close()
    assert os.listdir(tmp_path) == [path.name]
    assert w.close() == info  # idempotent


def test_exception_inside_with_leaves_nothing(tmp_path):
    records, _ = make_records(2)
    path = tmp_path / "shard-000000.tar"
    with pytest.raises(RuntimeError), WebDatasetWriter(path, steps=STEPS) as w:
        w.write(records[0])
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_abort_leaves_nothing(tmp_path):
    records, _ = make_records(1)
    w = WebDatasetWriter(tmp_path / "x.tar", steps=STEPS)
    w.write(records[0])
    w.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(DegradeError, match="closed"):
        w.write(records[0])


def _bad(record: dict, **changes) -> dict:
    out = dict(record)
    out.update(changes)
    return out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": "a.b"}, "no dots"),
        ({"key": ""}, "non-empty"),
        ({"clean": b"GIF89a"}, "PNG"),
        ({"frames": [(2, "png", b"x"), (1, "png", b"x")]}, "ascending"),
        ({"frames": [(STEPS + 1, "png", b"x")]}, "1..12"),
        ({"frames": [(1, "PNG", b"x")]}, "extension"),
        ({"frames": [(1, "png", b"")]}, "empty"),
        ({"split": "val"}, "differ"),
        ({"label": "dog"}, "differ"),
        ({"recipe": {"split": "train", "label": None, "x": float("nan")}}, "JSON"),
    ],
)
def test_invalid_records_are_refused(tmp_path, changes, message):
    records, _ = make_records(1)
    path = tmp_path / "s.tar"
    with pytest.raises(DegradeError, match=message), WebDatasetWriter(path, steps=STEPS) as w:
        w.write(_bad(records[0], **changes))
    assert os.listdir(tmp_path) == []


def test_duplicate_key_is_refused(tmp_path):
    records, _ = make_records(1)
    with (
        pytest.raises(DegradeError, match="twice"),
        WebDatasetWriter(tmp_path / "s.tar", steps=STEPS) as w,
    ):
        w.write(records[0])
        w.write(records[0])


def _tar_with(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def _link(name: str, kind: bytes, target: str = "a.clean.png") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "member",
    [
        ("../evil.json", b"{}"),
        ("a/../../evil.json", b"{}"),
        ("/abs.clean.png", b"x"),
        _link("a.s01.png", tarfile.SYMTYPE),
        _link("a.s01.png", tarfile.LNKTYPE),
        _link("a.d", tarfile.DIRTYPE, ""),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "directory"],
)
def test_unsafe_members_are_refused(tmp_path, member):
    records, _ = make_records(1)
    png = records[0]["clean"]
    path = _tar_with(tmp_path / "evil.tar", [("a.clean.png", png), member, ("a.json", b"{}")])
    with pytest.raises(DegradeError, match=r"evil\.tar: member"):
        list(iter_webdataset(path))


def test_missing_fields_name_sample_and_shard(tmp_path):
    records, _ = make_records(1)
    png = records[0]["clean"]
    path = _tar_with(tmp_path / "m.tar", [("a.clean.png", png)])
    with pytest.raises(DegradeError, match=r"m\.tar: sample 'a': missing a\.json"):
        list(iter_webdataset(path))
    path = _tar_with(tmp_path / "n.tar", [("b.json", b'{"split": "train"}')])
    with pytest.raises(DegradeError, match=r"n\.tar: sample 'b': missing b\.clean\.png"):
        list(iter_webdataset(path))


def test_non_adjacent_sample_is_refused(tmp_path):
    records, _ = make_records(1)
    png = records[0]["clean"]
    meta = b'{"split": "train"}'
    members = [("a.clean.png", png), ("a.json", meta), ("b.clean.png", png), ("b.json", meta)]
    path = _tar_with(tmp_path / "split.tar", [*members, ("a.s01.png", png)])
    with pytest.raises(DegradeError, match=r"split\.tar: sample 'a' appears twice"):
        list(iter_webdataset(path))


def test_truncated_tar_names_the_shard(tmp_path):
    records, _ = make_records(2)
    path = tmp_path / "shard-000007.tar"
    write_shard(path, records)
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        offsets = [m.offset for m in tar.getmembers()]
        end = max(m.offset_data + m.size for m in tar.getmembers())
    end = -(-end // 512) * 512  # where the end-of-archive blocks start
    # Mid data, mid header, at a member boundary, without / with a partial end-of-archive block.
    cuts = [offsets[1] + 700, offsets[2] + 100, offsets[3], end, end + 100]
    for cut in cuts:
        bad = tmp_path / "shard-000007.tar"
        bad.write_bytes(data[:cut])
        with pytest.raises(DegradeError, match=r"shard-000007\.tar: .*(truncated|corrupt)"):
            list(iter_webdataset(bad))


def test_garbage_is_refused(tmp_path):
    path = tmp_path / "g.tar"
    path.write_bytes(b"this is not a tar file" * 100)
    with pytest.raises(DegradeError, match=r"g\.tar: "):
        list(iter_webdataset(path))
    with pytest.raises(DegradeError, match=r"nope\.tar: cannot open"):
        list(iter_webdataset(tmp_path / "nope.tar"))


class _PipeLike:
    """A read-only stream with no seek or tell, like an HTTP response body."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, 1000) if n and n > 0 else n)


def test_reads_non_seekable_stream(tmp_path):
    records, _ = make_records(3)
    path = tmp_path / "s.tar"
    write_shard(path, records)
    back = list(iter_webdataset(_PipeLike(path.read_bytes()), name="http://host/s.tar"))
    assert back == records
    with pytest.raises(DegradeError, match=r"http://host/s\.tar: "):
        list(iter_webdataset(_PipeLike(path.read_bytes()[:3000]), name="http://host/s.tar"))


def test_empty_shard(tmp_path):
    path = tmp_path / "e.tar"
    info = write_shard(path, [])
    assert info.samples == 0
    assert list(iter_webdataset(path)) == []


@pytest.mark.parametrize("name,size", [
    ("a.json", 0), ("k-0123456789.s01.png", 511), ("x" * 100, 512), ("x" * 101, 7),
    ("clé.png", 3), ("k.s50.jpg", 8**11 - 1), ("k.s50.jpg", 8**11),
])
def test_tar_header_is_tarfiles_header(name, size):
    from degrade.shards.webdataset import MTIME, tar_header

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = size, MTIME, 0o644, 0, 0
    info.uname = info.gname = ""
    assert tar_header(name, size) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def test_webdataset_writer_bytes_are_what_tarfile_writes(tmp_path):
    from degrade.shards.webdataset import member_name, recipe_json

    rng = np.random.default_rng(3)
    records = []
    for i in range(3):
        png = encode_png(rng.random((5 + i, 7, 3), dtype=np.float32))
        frames = [(k, "png", bytes(rng.integers(0, 256, 100 * k + i, dtype=np.uint8))) for k in (1, 2)]
        records.append({"key": f"s{i}", "clean": png, "frames": frames,
                        "recipe": {"label": None, "split": "train", "i": i}, "label": None, "split": "train"})
    out = tmp_path / "shard-000000.tar"
    with WebDatasetWriter(out, steps=2) as w:
        for r in records:
            w.write(r)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for r in records:
            members = [(f"{r['key']}.clean.png", r["clean"]), (f"{r['key']}.json", recipe_json(r["recipe"]).encode())]
            members += [(member_name(r["key"], k, ext, 2), data) for k, ext, data in r["frames"]]
            for name, data in sorted(members):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.uname, info.gname = len(data), 0o644, "", ""
                tf.addfile(info, io.BytesIO(data))
    assert out.read_bytes() == buf.getvalue()
    assert w.info.bytes == len(buf.getvalue()) and w.info.sha256 == hashlib.sha256(buf.getvalue()).hexdigest()
