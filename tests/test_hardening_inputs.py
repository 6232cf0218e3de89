"""Hardening: the inputs users really have (issue 9, "Inputs users really have").

A corpus is generated here, in ``tmp_path`` (nothing binary is committed): broken files,
decompression bombs with hand-made headers, every pixel format the sources normalise, thin
and tiny images, and hostile file names. Each file is either normalised (and its pixels are
checked against an expectation computed here, independently of the decoder) or skipped with
a reason in ``manifest.json``; the build always finishes and ``samples + skipped == inputs``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from degrade.build import build
from degrade.cli import main
from degrade.errors import DegradeError
from degrade.image import decode
from degrade.shards import iter_shard
from degrade.sources import list_sources, load_item

KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")

# -- file makers ---------------------------------------------------------------------------


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR (valid CRC) claims width × height pixels and holds none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def png_real_bomb(side: int) -> bytes:
    """A complete, valid grey PNG of side × side black pixels: ~100 KB that inflate to side² bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 + black pixels
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.compress(row * (side % 1000)))
    parts.append(comp.flush())
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )  # fmt: skip


def gif_huge(width: int = 65535, height: int = 65535) -> bytes:
    """A GIF whose screen and image descriptors claim width × height (the format's maximum)."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02\x02\x44\x01\x00"  # min code size 2, one sub-block: clear, one pixel, end
    return head + image + lzw + b";"


def jpeg_huge(width: int = 65500, height: int = 65500) -> bytes:
    """A small, valid JPEG whose SOF0 header is patched to claim width × height."""
    data = bytearray(_save(Image.new("RGB", (8, 8), (10, 20, 30)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def png_bad_crc() -> bytes:
    data = bytearray(_save(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG"))
    data[29] ^= 0xFF  # the last byte of IHDR's CRC (8 signature + 4 length + 4 type + 13 body)
    return bytes(data)


def png_zero_width() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def quadrants(h: int = 32, w: int = 48) -> np.ndarray:
    """An asymmetric test card: red, green / blue, yellow quadrants."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = (255, 255, 0)
    return a


# Orientation tag -> how the stored pixels are displayed (EXIF 2.3, written out here with
# numpy rather than taken from the decoder under test).
DISPLAY = {
    3: lambda a: np.rot90(a, 2),  # rotate 180°
    6: lambda a: np.rot90(a, -1),  # rotate 90° clockwise
    8: lambda a: np.rot90(a, 1),  # rotate 90° counter-clockwise
}


def with_orientation(arr: np.ndarray, orientation: int, fmt: str) -> bytes:
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    kw: dict[str, object] = {"exif": exif}
    if fmt == "JPEG":
        kw.update(quality=95, subsampling=0)
    return _save(img, fmt, **kw)


def cv2_bytes(ext: str, arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, arr)
    assert ok
    return buf.tobytes()


def round16(v: np.ndarray) -> np.ndarray:
    """What a 16-bit sample becomes in 8 bits: v / 65535 · 255 rounded half up."""
    return np.floor(v.astype(np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)


# -- the corpus ----------------------------------------------------------------------------


@dataclass
class Good:
    data: bytes
    expected: np.ndarray  # uint8 H×W×C as stored at --size 0
    tol: int = 0  # largest allowed |difference| (lossy codecs)


@dataclass
class Bad:
    data: bytes | None  # None: a dangling symbolic link
    reason: str  # a regular expression the skip reason must match


def corpus() -> dict[str, Good | Bad]:
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    files: dict[str, Good | Bad] = {}

    files["rgb.png"] = Good(_save(Image.fromarray(rgb), "PNG"), rgb)
    files["upper case.PNG"] = Good(_save(Image.fromarray(rgb), "PNG"), rgb)
    files["bitmap.bmp"] = Good(_save(Image.fromarray(rgb), "BMP"), rgb)
    files["lossless.webp"] = Good(_save(Image.fromarray(rgb), "WEBP", lossless=True), rgb)
    files["trailing garbage.png"] = Good(_save(Image.fromarray(rgb), "PNG") + b"junk" * 50, rgb)

    # Alpha: composited on white. Half-transparent red -> (255, 127, 127).
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255
    rgba[2:, :3, 3] = 0
    rgba[2:, 3:, 3] = 128
    exp = np.zeros((4, 6, 3), np.uint8)
    exp[:2] = (255, 0, 0)
    exp[2:, :3] = (255, 255, 255)
    exp[2:, 3:] = (255, 127, 127)
    files["rgba.png"] = Good(_save(Image.fromarray(rgba), "PNG"), exp, tol=1)

    # Palette, without and with a transparent index.
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = [255, 0, 0, 0, 0, 255, 0, 200, 0] + [0] * 759
    img = Image.fromarray(idx, mode="P")
    img.putpalette(pal)
    colours = np.array(pal[:9], np.uint8).reshape(3, 3)
    files["palette.png"] = Good(_save(img, "PNG"), colours[idx])
    see_through = colours.copy()
    see_through[0] = 255  # index 0 is transparent -> the white background
    files["palette transparent.png"] = Good(_save(img, "PNG", transparency=0), see_through[idx])
    files["palette transparent.gif"] = Good(_save(img, "GIF", transparency=0), see_through[idx])

    # Grayscale stays one channel.
    files["gray.png"] = Good(_save(Image.fromarray(gray), "PNG"), gray[:, :, None])
    la = np.stack([gray, np.where(np.arange(7) < 3, 255, 0)[None, :].repeat(5, 0)], axis=2)
    la_exp = np.where(np.arange(7) < 3, gray, 255)[:, :, None].astype(np.uint8)
    files["gray alpha.png"] = Good(_save(Image.fromarray(la.astype(np.uint8), mode="LA"), "PNG"), la_exp)
    bits = rng.integers(0, 2, (3, 9)).astype(bool)
    files["bilevel.png"] = Good(
        _save(Image.fromarray(bits).convert("1"), "PNG"), (bits * 255).astype(np.uint8)[:, :, None]
    )

    # 16 bits: scaled (rounded), never clipped or truncated.
    deep = np.array([[0, 129, 383, 32768, 65279, 65535]], np.uint16)
    files["deep gray.png"] = Good(_save(Image.fromarray(deep), "PNG"), round16(deep)[:, :, None])
    files["deep gray.tif"] = Good(_save(Image.fromarray(deep), "TIFF"), round16(deep)[:, :, None])
    deep_rgb = np.stack([deep, deep[:, ::-1], np.full_like(deep, 40000)], axis=2)
    files["deep rgb.png"] = Good(cv2_bytes(".png", deep_rgb[:, :, ::-1]), round16(deep_rgb))
    files["deep rgb.tif"] = Good(cv2_bytes(".tiff", deep_rgb[:, :, ::-1]), round16(deep_rgb))
    deep_rgba = np.concatenate([deep_rgb, np.full_like(deep[:, :, None], 65535)], axis=2)
    files["deep rgba.png"] = Good(cv2_bytes(".png", deep_rgba[:, :, [2, 1, 0, 3]]), round16(deep_rgb))
    # A dark 16-bit PGM (every value <= 255) is still 16-bit: not brightened 257 times.
    dark = np.array([[0, 100, 200, 255, 1000]], np.uint16)
    files["dark16.pgm"] = Good(
        b"P5 5 1 65535\n" + dark.astype(">u2").tobytes(), round16(dark)[:, :, None]
    )
    floats = np.array([[0.0, 0.25, 0.5, 1.0, 2.0]], np.float32)
    files["float.tif"] = Good(
        _save(Image.fromarray(floats, mode="F"), "TIFF"),
        np.array([[0, 64, 128, 255, 255]], np.uint8)[:, :, None],
    )

    # CMYK: pure red in ink (0 cyan, full magenta and yellow, no black).
    red = np.zeros((4, 6, 3), np.uint8)
    red[...] = (255, 0, 0)
    files["cmyk.jpg"] = Good(_save(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), "JPEG", quality=95), red, tol=40)
    files["cmyk.tif"] = Good(_save(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), "TIFF"), red)

    # EXIF orientation: the displayed image, not the stored one.
    card = quadrants()
    for o in (3, 6, 8):
        files[f"exif{o}.jpg"] = Good(with_orientation(card, o, "JPEG"), DISPLAY[o](card), tol=40)
    files["exif6.png"] = Good(with_orientation(card, 6, "PNG"), DISPLAY[6](card))

    # Animations give their first frame.
    frames = [Image.new("RGB", (5, 4), c) for c in [(0, 255, 0), (255, 0, 0), (0, 0, 255)]]
    anim = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    files["animated.gif"] = Good(anim, np.full((4, 5, 3), (0, 255, 0), np.uint8))

    # Tiny and thin.
    files["one.png"] = Good(_save(Image.new("RGB", (1, 1), (7, 8, 9)), "PNG"), np.array([[[7, 8, 9]]], np.uint8))
    thin = rng.integers(0, 256, (1, 500, 3), dtype=np.uint8)
    files["thin wide.png"] = Good(_save(Image.fromarray(thin), "PNG"), thin)
    tall = rng.integers(0, 256, (500, 1), dtype=np.uint8)
    files["thin tall.png"] = Good(_save(Image.fromarray(tall), "PNG"), tall[:, :, None])

    # Names: dots, `..`, spaces, non-ASCII, a sub-folder (label) with all of them.
    files["a.b.c.png"] = Good(_save(Image.fromarray(rgb), "PNG"), rgb)
    files["x..y.png"] = Good(_save(Image.fromarray(rgb), "PNG"), rgb)
    files["été 猫.png"] = Good(_save(Image.fromarray(gray), "PNG"), gray[:, :, None])
    files["with space.jpg"] = Good(_save(Image.fromarray(quadrants()), "JPEG", quality=95, subsampling=0), quadrants(), tol=40)
    files["dir. é..x/nested name.png"] = Good(_save(Image.fromarray(rgb), "PNG"), rgb)

    # Broken: skipped with a reason.
    png = _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    jpg = _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG", quality=90)
    files["truncated.png"] = Bad(png[: len(png) // 2], r"cannot decode|truncated")
    files["truncated.jpg"] = Bad(jpg[: len(jpg) // 2], r"cannot decode|truncated")
    files["empty.png"] = Bad(b"", r"empty file")
    files["empty.jpg"] = Bad(b"", r"empty file")
    files["café vide.png"] = Bad(b"", r"empty file")
    files["text.png"] = Bad(b"hello, I am not a picture\n" * 20, r"not an image")
    files["page.gif"] = Bad(b"<!doctype html><title>404</title>", r"not an image")
    files["bad crc.png"] = Bad(png_bad_crc(), r"cannot decode \(a corrupt PNG file\)")
    files["zero width.png"] = Bad(png_zero_width(), r"cannot decode|no pixels|not an image")
    files["bomb header.png"] = Bad(png_header_only(100_000, 100_000), r"bomb|exceeds")
    files["bomb real.png"] = Bad(png_real_bomb(10_000), r"bomb|exceeds")
    files["bomb.gif"] = Bad(gif_huge(), r"bomb|exceeds")
    files["bomb.jpg"] = Bad(jpeg_huge(), r"bomb|exceeds")
    files["dangling.png"] = Bad(None, r"cannot read")
    return files


def write_corpus(root: Path, files: dict[str, Good | Bad]) -> Path:
    for name, f in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if f.data is None:
            os.symlink(root / "no such file.png", path)
        else:
            path.write_bytes(f.data)
    return root


@pytest.fixture(scope="module")
def files() -> dict[str, Good | Bad]:
    return corpus()


@pytest.fixture(scope="module")
def corpus_dir(files, tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "in put", files)


QUIET: dict[str, object] = {"workers": 1, "progress": False, "log": lambda s: None}


def _by_source(out: Path) -> dict[str, dict]:
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {
        r["recipe"]["source"]["id"]: r for s in m["shards"] for r in iter_shard(out / s["name"])
    }


def _png_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    return arr[:, :, None] if arr.ndim == 2 else arr


@pytest.fixture(scope="module")
def built(corpus_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "out"
    build(str(corpus_dir), ops="blur,jpeg", steps=2, size=0, shard_size=7, out=out, **QUIET)
    return out


# -- the tests ----------------------------------------------------------------------------


def test_the_build_finishes_and_the_counts_add_up(files, built):
    m = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    good = {n for n, f in files.items() if isinstance(f, Good)}
    bad = {n for n, f in files.items() if isinstance(f, Bad)}
    assert m["totals"]["inputs"] == len(files)
    assert m["samples"] + len(m["skipped"]) == m["totals"]["inputs"]
    assert m["samples"] == len(good) == sum(s["samples"] for s in m["shards"])
    assert {s["source"] for s in m["skipped"]} == bad
    assert set(_by_source(built)) == good


def test_every_skip_has_a_clear_reason(files, built):
    m = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    for s in m["skipped"]:
        f = files[s["source"]]
        assert isinstance(f, Bad)
        assert s["reason"].startswith(f"{s['source']}: "), s
        assert re.search(f.reason, s["reason"]), s
        assert "\n" not in s["reason"] and len(s["reason"]) < 400, s


def test_what_is_kept_is_normalised_exactly(files, built):
    recs = _by_source(built)
    for name, f in files.items():
        if not isinstance(f, Good):
            continue
        clean = _png_pixels(recs[name]["clean"])
        assert clean.shape == f.expected.shape, name
        diff = np.abs(clean.astype(int) - f.expected.astype(int)).max()
        assert diff <= f.tol, (name, diff)


def test_recipes_record_the_source_bytes_and_keys_have_no_dots(corpus_dir, files, built):
    for name, rec in _by_source(built).items():
        assert KEY_RE.match(rec["key"]), rec["key"]
        source = rec["recipe"]["source"]
        assert source["sha256"] == hashlib.sha256((corpus_dir / name).read_bytes()).hexdigest()
        steps = [k for k, _, _ in rec["frames"]]
        assert steps == [1, 2]
        for _, ext, data in rec["frames"]:
            assert ext == "jpg"  # the last op is jpeg: its own bytes
            assert _png_pixels(data).shape[:2] == files[name].expected.shape[:2]
    labels = {n: r["label"] for n, r in _by_source(built).items()}
    assert labels["dir. é..x/nested name.png"] == "dir. é..x"
    assert labels["rgb.png"] is None


def test_tar_members_are_key_dot_field(built):
    import tarfile

    for shard in sorted(built.glob("shard-*.tar")):
        with tarfile.open(shard) as tf:
            for name in tf.getnames():
                key, _, field = name.partition(".")
                assert KEY_RE.match(key) and field in {"clean.png", "json", "s01.jpg", "s02.jpg"}, name


def test_sixteen_pixels_on_a_side_for_everything_kept(corpus_dir, files, tmp_path):
    out = tmp_path / "pq"
    r = build(str(corpus_dir), ops="blur,jpeg", steps=2, size=16, shard_size=9, out=out,
              format="parquet", **QUIET)  # fmt: skip
    assert r.manifest["samples"] + len(r.manifest["skipped"]) == len(files)
    recs = _by_source(out)
    assert set(recs) == {n for n, f in files.items() if isinstance(f, Good)}
    for name, rec in recs.items():
        clean = _png_pixels(rec["clean"])
        assert clean.shape == (16, 16, files[name].expected.shape[2]), name
    # A 1×500 strip is cut to its centre pixel (column 249), then enlarged: one flat colour.
    wide = _png_pixels(recs["thin wide.png"]["clean"])
    assert (wide == files["thin wide.png"].expected[0, 249]).all()
    tall = _png_pixels(recs["thin tall.png"]["clean"])
    assert (tall == files["thin tall.png"].expected[249, 0]).all()
    one = _png_pixels(recs["one.png"]["clean"])
    assert (one == [7, 8, 9]).all()


def test_the_command_line_builds_the_corpus_the_same_bytes(corpus_dir, files, built, tmp_path):
    # A real process under the C locale: non-ASCII names must survive printing and JSON.
    out = tmp_path / "cli out"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    env.pop("PYTHONUTF8", None)
    cmd = [sys.executable, "-m", "degrade", "build", "--input", str(corpus_dir), "--ops", "blur,jpeg",
           "--steps", "2", "--size", "0", "--shard-size", "7", "--workers", "1", "--quiet",
           "--out", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in res.stderr
    n_bad = sum(isinstance(f, Bad) for f in files.values())
    assert f"{n_bad} inputs skipped".encode() in res.stdout
    for shard in sorted(built.glob("shard-*")):
        assert (out / shard.name).read_bytes() == shard.read_bytes(), shard.name
    res = subprocess.run([sys.executable, "-m", "degrade", "verify", str(out)],
                         capture_output=True, env=env, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_strict_stops_on_the_first_skip_with_one_line(corpus_dir, tmp_path, capsys):
    rc = main(["build", "--input", str(corpus_dir), "--ops", "blur", "--steps", "1", "--size", "8",
               "--workers", "1", "--quiet", "--strict", "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("degrade: error: "), err
    assert "--strict" in err[0]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_pixel_layout(orientation):
    # Quadrant centres of the displayed image: red must land where the rotation puts it.
    card = quadrants(32, 48)
    got = (decode(with_orientation(card, orientation, "JPEG")) * 255).round().astype(int)
    want = DISPLAY[orientation](card).astype(int)
    assert got.shape == want.shape
    h, w = want.shape[:2]
    for y in (h // 4, 3 * h // 4):
        for x in (w // 4, 3 * w // 4):
            assert np.abs(got[y, x] - want[y, x]).max() < 40, (orientation, y, x)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_sixteen_bit_colour_follows_exif_orientation_like_eight_bit(orientation):
    card = quadrants(8, 12).astype(np.uint16) * 257
    img = Image.fromarray(quadrants(8, 12))
    exif = img.getexif()
    exif[0x0112] = orientation
    eight = decode(_save(img, "PNG", exif=exif))
    # The same card at 16 bits with the same EXIF block, via a PNG eXIf chunk.
    deep = bytearray(cv2_bytes(".png", card[:, :, ::-1]))
    iend = deep.rfind(b"IEND") - 4
    deep[iend:iend] = _chunk(b"eXIf", exif.tobytes())
    got = decode(bytes(deep))
    assert got.shape == eight.shape
    assert np.array_equal((got * 255).round(), (eight * 255).round())


@pytest.mark.parametrize(
    "maker",
    [lambda: png_header_only(100_000, 100_000), gif_huge, jpeg_huge, lambda: png_real_bomb(10_000)],
    ids=["png-header", "gif", "jpeg", "png-real"],
)
def test_bombs_are_refused_before_decoding(maker, monkeypatch):
    # Refused from the header: the pixel buffer is never allocated.
    data = maker()
    loaded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: loaded.append(1) or real_load(self))
    with pytest.raises(DegradeError, match=r"^bomb: .*(bomb|exceeds)"):
        decode(data, name="bomb")
    assert not loaded


def test_max_pixels_is_a_parameter():
    data = _save(Image.new("RGB", (10, 10)), "PNG")
    assert decode(data, max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(DegradeError, match="exceeds the limit of 99"):
        decode(data, max_pixels=99)


def test_load_item_names_the_source_for_every_bad_file(corpus_dir, files):
    items = {it.id: it for it in list_sources([str(corpus_dir)])}
    assert set(items) == set(files)
    for name, f in files.items():
        if isinstance(f, Bad):
            with pytest.raises(DegradeError, match=rf"^{re.escape(name)}: "):
                load_item(items[name], size=16)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about corrupt EXIF/TIFF tags
def test_hostile_bytes_give_a_degrade_error_or_a_valid_image():
    # Truncations and flips of every format at a few positions (the fuzzer goes further).
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    seeds = [_save(Image.fromarray(base), f) for f in ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP")]
    seeds.append(cv2_bytes(".png", base.astype(np.uint16) * 257))
    for data in seeds:
        for cut in (1, 8, 16, 33, len(data) // 3, len(data) - 1):
            variants = [data[:cut], data[:cut] + bytes(7), bytes(data[:cut]) + data[cut + 1 :]]
            flipped = bytearray(data)
            flipped[cut % len(data)] ^= 0x5A
            variants.append(bytes(flipped))
            for v in variants:
                _decode_or_degrade_error(v)


def _decode_or_degrade_error(data: bytes) -> None:
    try:
        out = decode(data)
    except DegradeError:
        return
    assert out.dtype == np.float32 and out.ndim == 3 and out.shape[2] in (1, 3)
    assert np.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0


def test_a_folder_named_like_an_image_is_not_an_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "folder.png").mkdir()
    (tmp_path / "in" / "folder.png" / "real.png").write_bytes(_save(Image.new("RGB", (2, 2)), "PNG"))
    assert [it.id for it in list_sources([str(tmp_path / "in")])] == ["folder.png/real.png"]
