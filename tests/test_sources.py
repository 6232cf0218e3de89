"""Sources: listing, keys, loading and normalisation, the sample pool, splits."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import re
import socket
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from degrade import pool
from degrade.errors import DegradeError
from degrade.sources import (
    POOL_PHOTOS,
    SourceItem,
    assign_split,
    list_sources,
    load_item,
    parse_split,
    pool_split,
    resize_crop,
    source_key,
    split_for,
)


def _rgb(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(arr: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    # A PNG that claims width × height pixels and holds none: a decompression bomb's header.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _expected_key(source_id: str) -> str:
    # The documented rule, written out independently of the implementation.
    slug = "".join(c if (c.isascii() and (c.isalnum() or c in "_-")) else "_" for c in source_id)
    return slug[:40] + "-" + hashlib.sha1(source_id.encode()).hexdigest()[:10]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "cats" / "sub").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / ".hidden").mkdir()
    (root / "cats" / "001.png").write_bytes(_png(_rgb(1)))
    (root / "cats" / "sub" / "002.PNG").write_bytes(_png(_rgb(2)))
    Image.fromarray(_rgb(3)).save(root / "dogs" / "a b.bmp")
    (root / "top.png").write_bytes(_png(_rgb(4)))
    (root / ".secret.png").write_bytes(_png(_rgb(5)))
    (root / ".hidden" / "x.png").write_bytes(_png(_rgb(6)))
    (root / "dogs" / "notes.md").write_text("not an image")
    return root


# ------------------------------------------------------------------- keys and listing


def test_keys_follow_the_documented_rule() -> None:
    for sid in ["cats/001.jpg", "a" * 80 + ".png", "é/ü.tif", "x.tar/k.1"]:
        key = source_key(sid)
        assert key == _expected_key(sid)
        assert "." not in key and re.fullmatch(r"[A-Za-z0-9_-]+", key)
    assert source_key("cats/001.jpg") == "cats_001_jpg-" + "b7635f6300"
    assert len(source_key("a" * 80)) == 40 + 1 + 10


def test_folder_listing_labels_order_and_hidden(folder: Path) -> None:
    items = list_sources([str(folder)])
    assert [i.id for i in items] == ["cats/001.png", "cats/sub/002.PNG", "dogs/a b.bmp", "top.png"]
    assert [i.label for i in items] == ["cats", "cats", "dogs", None]
    assert all(i.kind == "file" and i.group == i.id for i in items)
    assert all(Path(i.location).is_absolute() and Path(i.location).exists() for i in items)
    keys = [i.key for i in items]
    assert keys == [_expected_key(i.id) for i in items] and len(set(keys)) == len(keys)
    assert all("." not in k for k in keys)
    assert pickle.loads(pickle.dumps(items)) == items
    assert [i.id for i in list_sources([str(folder)], limit=2)] == [
        "cats/001.png",
        "cats/sub/002.PNG",
    ]


def test_glob_and_dedup(folder: Path) -> None:
    items = list_sources([str(folder / "*" / "*.png")])
    assert [i.id for i in items] == ["cats/001.png"]  # relative to the fixed part of the pattern
    assert items[0].label == "cats"
    # The same file through a folder and a glob counts once.
    both = list_sources([str(folder), str(folder / "**" / "*.png")])
    assert len(both) == 4 and len({i.key for i in both}) == 4


def test_txt_list(folder: Path, tmp_path: Path) -> None:
    listing = folder / "list.txt"
    listing.write_text(
        "# a comment\n\ncats/001.png\n  dogs/a b.bmp  \n# cats/sub/002.PNG\n"
        f"{folder / 'top.png'}\nmissing.png\n"
    )
    items = list_sources([str(listing)])
    assert [i.id for i in items] == ["cats/001.png", "dogs/a b.bmp", "missing.png", "top.png"]
    direct = {i.id: i for i in list_sources([str(folder)])}
    for item in items:
        if item.id != "missing.png":
            a, _ = load_item(item, size=0)
            b, _ = load_item(direct[item.id], size=0)
            np.testing.assert_array_equal(a, b)
    # Listed but missing: found at load time, as a DegradeError naming the source.
    missing = next(i for i in items if i.id == "missing.png")
    with pytest.raises(DegradeError, match=r"^missing\.png: cannot read"):
        load_item(missing, size=0)


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def test_webdataset_tars_read_back_the_same_pixels(tmp_path: Path) -> None:
    arrays = {f"s{i}": _rgb(10 + i) for i in range(3)}
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tf:
        for key, arr in arrays.items():
            _tar_add(tf, f"{key}.cls", b"7\n")
            _tar_add(tf, f"{key}.jpg", b"not used: png is preferred")
            _tar_add(tf, f"{key}.png", _png(arr))
        _tar_add(tf, "nolabel.txt", b"a caption without an image")
    # degrade's own shards: the clean frame is the source, the recipe carries the label.
    ours = tmp_path / "shard-000000.tar"
    with tarfile.open(ours, "w") as tf:
        _tar_add(tf, "k1.clean.png", _png(arrays["s0"]))
        _tar_add(tf, "k1.json", json.dumps({"key": "k1", "label": "cats"}).encode())
        _tar_add(tf, "k1.s01.png", _png(255 - arrays["s0"]))
    items = list_sources([str(plain), str(ours)])
    assert [i.id for i in items] == [
        "plain.tar/s0", "plain.tar/s1", "plain.tar/s2", "shard-000000.tar/k1",
    ]  # fmt: skip
    assert [i.label for i in items] == ["7", "7", "7", "cats"]
    assert items[0].member == "s0.png" and items[-1].member == "k1.clean.png"
    for item in items:
        image, meta = load_item(item, size=0)
        expected = (
            arrays[item.id.rsplit("/", 1)[1]] if item.id.startswith("plain") else arrays["s0"]
        )
        np.testing.assert_array_equal(image, expected)
        # The listed byte range and a lookup by member name agree.
        by_name, _ = load_item(dataclasses.replace(item, offset=-1, size=-1), size=0)
        np.testing.assert_array_equal(by_name, image)
        assert meta["kind"] == "tar" and (meta["width"], meta["height"]) == (32, 24)
    with pytest.raises(DegradeError, match="has no member"):
        load_item(dataclasses.replace(items[0], member="zz.png", offset=-1), size=0)


def test_parquet_image_column_reads_back_the_same_pixels(tmp_path: Path) -> None:
    arrays = [_rgb(20 + i) for i in range(5)]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array(
        [{"bytes": _png(a), "path": f"{i}.png"} for i, a in enumerate(arrays)], type=image_type
    )
    features = {
        "image": {"_type": "Image"},
        "label": {"_type": "ClassLabel", "names": ["cat", "dog"]},
    }
    table = pa.table({"image": images, "label": pa.array([0, 1, 0, 1, 1], pa.int64())})
    table = table.replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": features}})}
    )
    path = tmp_path / "train.parquet"
    pq.write_table(table, path, row_group_size=2)  # several row groups
    items = list_sources([str(path)])
    assert [i.id for i in items] == [f"train.parquet/{r:06d}" for r in range(5)]
    assert [i.label for i in items] == ["cat", "dog", "cat", "dog", "dog"]
    for row in [4, 0, 3, 1, 2]:
        image, meta = load_item(items[row], size=0)
        np.testing.assert_array_equal(image, arrays[row])
        assert meta["sha256"] == hashlib.sha256(_png(arrays[row])).hexdigest()


def test_file_meta_and_resize(folder: Path) -> None:
    item = next(i for i in list_sources([str(folder)]) if i.id == "top.png")
    image, meta = load_item(item, size=16)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    raw = (folder / "top.png").read_bytes()
    assert meta == {
        "id": "top.png",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "kind": "file",
        "width": 32,
        "height": 24,
    }
    full, _ = load_item(item, size=0)
    np.testing.assert_array_equal(full, _rgb(4))


# ------------------------------------------------------------------- normalisation


def _load_bytes(tmp_path: Path, name: str, data: bytes, size: int = 0) -> np.ndarray:
    (tmp_path / name).write_bytes(data)
    (item,) = list_sources([str(tmp_path / name)])
    return load_item(item, size=size)[0]


def test_normalisation_of_what_users_have(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top opaque red, bottom transparent -> white background
    out = _load_bytes(tmp_path, "rgba.png", _png(rgba))
    assert out.shape == (4, 4, 3)
    assert (out[:2] == [255, 0, 0]).all() and (out[2:] == 255).all()

    (item,) = list_sources([str(tmp_path / "rgba.png")])
    black = load_item(item, size=0, background=(0, 0, 0))[0]
    assert (black[:2] == [255, 0, 0]).all() and (black[2:] == 0).all()

    deep = np.array([[0, 32768, 65535]], np.uint16)
    out = _load_bytes(tmp_path, "deep.png", _png(deep))
    assert out.dtype == np.uint8 and out[0, :, 0].tolist() == [0, 128, 255]

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    out = _load_bytes(tmp_path, "pal.png", buf.getvalue())
    assert (
        out.shape == (2, 2, 3)
        and out[0, 0].tolist() == [255, 0, 0]
        and out[0, 1].tolist() == [0, 0, 255]
    )

    gray = _load_bytes(tmp_path, "gray.png", _png(np.full((3, 5), 77, np.uint8)))
    assert gray.shape == (3, 5, 1) and (gray == 77).all()
    small = _load_bytes(tmp_path, "gray2.png", _png(np.full((3, 5), 77, np.uint8)), 8)
    assert small.shape == (8, 8, 1)

    cmyk = Image.new("CMYK", (6, 4), (0, 255, 255, 0))  # red
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG", quality=95)
    out = _load_bytes(tmp_path, "cmyk.jpg", buf.getvalue())
    assert out.shape == (4, 6, 3) and out[..., 0].min() > 200 and out[..., 1:].max() < 60

    frames = [Image.new("RGB", (4, 4), c) for c in [(0, 255, 0), (255, 0, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = _load_bytes(tmp_path, "anim.gif", buf.getvalue())
    assert out.shape == (4, 4, 3) and (out[..., 1] > 200).all() and (out[..., 0] < 50).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 20 high × 40 wide with a red left half; orientation 6 = "rotate 90° clockwise
    # to display", so the displayed image is 40 high × 20 wide with red on top.
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, exif=exif)
    out = _load_bytes(tmp_path, "rot.jpg", buf.getvalue())
    assert out.shape == (40, 20, 3)
    assert out[:18, :, 0].min() > 200 and out[22:, :, 0].max() < 50


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.png", b""),
        ("text.png", b"hello, I am not a picture\n" * 10),
        ("truncated.png", _png(_rgb(9, 64, 64))[:200]),
        ("bomb.png", _png_header_only(100_000, 100_000)),
    ],
)
def test_broken_files_give_degrade_errors(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    (item,) = list_sources([str(tmp_path / name)])  # listing does not decode
    with pytest.raises(DegradeError, match=rf"^{re.escape(name)}: "):
        load_item(item, size=32)


# ------------------------------------------------------------------- errors


def test_input_errors(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(DegradeError, match=r"'.*nope' does not exist"):
        list_sources([str(tmp_path / "nope")])
    with pytest.raises(DegradeError, match="matches nothing"):
        list_sources([str(tmp_path / "*.nothing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DegradeError, match="contains no image files"):
        list_sources([str(tmp_path / "empty")])
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(DegradeError, match="not a supported source"):
        list_sources([str(tmp_path / "table.csv")])
    (tmp_path / "bad.tar").write_bytes(b"\x01" * 1000)
    with pytest.raises(DegradeError, match="not a readable tar"):
        list_sources([str(tmp_path / "bad.tar")])
    # Two different files with one id.
    other = tmp_path / "other"
    (other / "cats").mkdir(parents=True)
    (other / "cats" / "001.png").write_bytes(_png(_rgb(1)))
    with pytest.raises(DegradeError, match=re.escape("same source id 'cats/001.png'")):
        list_sources([str(folder), str(other)])
    with pytest.raises(DegradeError, match="limit"):
        list_sources(None, limit=0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("train=0.9,val=0.2", "sum to 1, got 1.1"),
        ("train=1.1,val=-0.1", "must be > 0"),
        ("train=1,val=0", "must be > 0"),
        ("tr ain=1", "bad split name"),
        ("train.x=1", "bad split name"),
        ("train=0.5,train=0.5", "given twice"),
        ("train", "expected name=fraction"),
        ("train=abc", "not a number"),
        ("", "empty split"),
        ({"train": float("nan")}, "must be > 0"),
    ],
)
def test_bad_split_specs(spec: str, message: str) -> None:
    with pytest.raises(DegradeError, match=re.escape(message)):
        parse_split(spec)


def test_parse_split() -> None:
    assert parse_split(None) == {"train": 0.9, "val": 0.05, "test": 0.05}
    assert list(parse_split(" b=0.25 , a=0.75 ")) == ["b", "a"]  # order is kept
    assert parse_split({"all": 1}) == {"all": 1.0}


# ------------------------------------------------------------------- splits


def test_split_assignment_is_deterministic_and_proportional() -> None:
    splits = parse_split(None)
    groups = [f"img/{i:05d}.png" for i in range(10_000)]
    first = [assign_split(g, splits, 0) for g in groups]
    assert first == [assign_split(g, splits, 0) for g in groups]
    counts = {name: first.count(name) / len(groups) for name in splits}
    assert abs(counts["train"] - 0.9) < 0.012
    assert abs(counts["val"] - 0.05) < 0.01 and abs(counts["test"] - 0.05) < 0.01
    other = [assign_split(g, splits, 1) for g in groups]
    assert other != first  # the seed matters
    assert assign_split("x.png", "a=1", 0) == "a"


def test_pool_photographs_are_dealt_to_every_split() -> None:
    splits = parse_split(None)
    for seed in range(20):
        got = [pool_split(p, splits, seed) for p in POOL_PHOTOS]
        assert {s: got.count(s) for s in splits} == {"train": 13, "val": 1, "test": 1}
        assert got == [assign_split(p, splits, seed) for p in POOL_PHOTOS]
    # More splits than would round to a photograph each still get one.
    many = parse_split("a=0.94,b=0.02,c=0.02,d=0.02")
    assert {pool_split(p, many, 3) for p in POOL_PHOTOS} == set(many)
    items = list_sources(None, limit=300)
    by_split: dict[str, set[str]] = {}
    for item in items:
        by_split.setdefault(split_for(item, splits, 0), set()).add(item.group)
    assert set(by_split) == set(splits)
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    # Files are split by their own id.
    file_item = SourceItem("a.png", source_key("a.png"), None, "a.png", "file", "/x/a.png")
    assert split_for(file_item, splits, 0) == assign_split("a.png", splits, 0)


# ------------------------------------------------------------------- the pool


def test_pool_listing() -> None:
    items = list_sources(None)
    assert len(items) == 10_000 and items == list_sources([])
    assert len({i.id for i in items}) == 10_000 and len({i.key for i in items}) == 10_000
    assert items[0].id == "pool/000000" and items[0].key == "sample-000000"
    assert items[9999].key == "sample-009999"
    assert {i.label for i in items} == set(POOL_PHOTOS)
    assert all(i.kind == "pool" and i.group == i.label for i in items)
    assert [i.key for i in list_sources(["samples"], limit=3)] == [
        "sample-000000", "sample-000001", "sample-000002",
    ]  # fmt: skip
    assert len(list_sources(None, limit=12_000)) == 12_000  # a limit past the default size
    assert len(list_sources(None, pool_size=50)) == 50


def test_pool_crops_are_deterministic_and_distinct() -> None:
    items = list_sources(None, limit=40)
    first = [load_item(i, size=48) for i in items]
    pool.photo.cache_clear()
    second = [load_item(i, size=48) for i in items]
    for (a, ma), (b, mb) in zip(first, second, strict=True):
        assert a.shape == (48, 48, 3) and a.dtype == np.uint8
        assert a.tobytes() == b.tobytes() and ma == mb
    assert len({m["sha256"] for _, m in first}) == 40
    full, meta = load_item(items[0], size=0)  # the crop itself, a writable copy
    assert full.shape == (meta["height"], meta["width"], 3) and meta["crop"][2] == meta["width"]
    full[0, 0, 0] ^= 1
    assert meta["sha256"] == first[0][1]["sha256"]
    assert first[0][1]["photo"] == POOL_PHOTOS[0] and first[0][1]["id"] == "pool/000000"
    # The first 10,000 crops are pairwise different rectangles.
    boxes = set()
    for index in range(10_000):
        photo = POOL_PHOTOS[index % len(POOL_PHOTOS)]
        boxes.add((photo, *pool.pool_box(index, *pool.photo(photo).shape[:2])))
    assert len(boxes) == 10_000


def test_pool_photographs_load_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sample pool must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pool.photo.cache_clear()
    try:
        for photo in POOL_PHOTOS:
            arr = pool.photo(photo)
            assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
            assert min(arr.shape[:2]) >= 160
    finally:
        pool.photo.cache_clear()


def test_synthetic_images() -> None:
    items = list_sources(["synthetic"])
    assert len(items) == 64 and items[0].key == "synthetic-000000"
    assert len(list_sources(["synthetic"], limit=5)) == 5
    a, meta = load_item(items[4], size=0)
    b, _ = load_item(items[4], size=0)
    assert a.shape == (256, 256, 3) and a.tobytes() == b.tobytes()
    assert meta["sha256"] == hashlib.sha256(a.tobytes()).hexdigest()
    assert len({load_item(i, size=8)[1]["sha256"] for i in items[:9]}) == 9
    # Mixed with other inputs; sorted by id across them.
    mixed = list_sources(["synthetic", "samples"], limit=3)
    assert [i.id for i in mixed] == ["pool/000000", "pool/000001", "pool/000002"]


# ------------------------------------------------------------------- resize_crop


def test_resize_crop() -> None:
    img = np.zeros((30, 60, 3), np.uint8)
    img[:, 15:45] = 200  # the centred square
    out = resize_crop(img, 10)
    assert out.shape == (10, 10, 3) and (out == 200).all()
    assert resize_crop(img, 0) is img
    assert resize_crop(img, 30).shape == (30, 30, 3)
    up = resize_crop(np.full((5, 7, 1), 9, np.uint8), 20)
    assert up.shape == (20, 20, 1) and (up == 9).all()
    with pytest.raises(DegradeError):
        resize_crop(np.zeros((4, 4, 3), np.float32), 2)


def test_pool_photographs_read_from_files_equal_skimage_data():
    import skimage.data

    from degrade.pool import _photo_file, photo

    for name in POOL_PHOTOS:
        assert _photo_file(name) is not None, name  # read directly, not through skimage.io
        ref = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
        ref = np.asarray(ref, np.uint8)
        ref = np.repeat(ref[:, :, None], 3, axis=2) if ref.ndim == 2 else ref[:, :, :3]
        assert np.array_equal(photo(name), ref), name
