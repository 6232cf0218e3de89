"""Compression family: JPEG, WebP, banding."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin
from skimage import data

import degrade
from degrade.image import to_float, to_uint8
from degrade.ops.compression import (
    banding,
    decode_jpeg,
    decode_webp,
    encode_jpeg,
    encode_webp,
    jpeg,
    webp,
)
from degrade.pipeline import Pipeline
from tests.conftest import varied_images


def _photo(size: int = 128) -> np.ndarray:
    return to_float(data.astronaut()[40 : 40 + size, 180 : 180 + size])


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


# -- JPEG ------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_bytes_and_kernel_equal_what_pil_decodes(channels):
    img = varied_images(40, channels)[0]
    data_ = encode_jpeg(img, quality=30)
    assert data_[:2] == b"\xff\xd8" and data_[-2:] == b"\xff\xd9"
    with Image.open(io.BytesIO(data_)) as im:
        assert im.format == "JPEG"
        assert im.mode == ("L" if channels == 1 else "RGB")
        plain = np.asarray(im).reshape(img.shape)
    assert np.array_equal(decode_jpeg(data_), plain)
    assert np.array_equal(jpeg(img, quality=30), to_float(plain))


def test_jpeg_equals_pillow_default_save_with_420_subsampling():
    img = _photo(64)
    for q in (5, 25, 100):
        buf = io.BytesIO()
        Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=q)  # ImageNet-C's call
        assert encode_jpeg(img, quality=q) == buf.getvalue()
    with Image.open(io.BytesIO(encode_jpeg(img, quality=100))) as im:
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (33, 65, 3), (16, 16, 1), (9, 17, 1)])
def test_jpeg_bytes_are_pillows_at_every_quality_whichever_encoder_runs(shape):
    # RGB goes through OpenCV's encoder for speed: it must write Pillow's bytes exactly.
    img = varied_images(max(shape[:2]), shape[2])[0][: shape[0], : shape[1]]
    u8 = to_uint8(img)
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.fromarray(u8[:, :, 0] if shape[2] == 1 else u8).save(
            buf, format="JPEG", quality=q, subsampling=2, optimize=False, progressive=False)
        assert encode_jpeg(img, quality=q) == buf.getvalue(), q


def test_jpeg_lower_quality_larger_error_on_a_photo():
    img = _photo()
    errs = [_mse(jpeg(img, quality=q), img) for q in (95, 75, 50, 25, 10, 5)]
    assert all(b > a for a, b in itertools.pairwise(errs))


def test_jpeg_input_is_rounded_to_uint8_first():
    img = np.full((8, 8, 1), 0.5, np.float32)
    near = np.full((8, 8, 1), 0.5 + 0.4 / 255, np.float32)  # rounds to the same uint8
    assert encode_jpeg(img, quality=50) == encode_jpeg(near, quality=50)


def test_jpeg_op_spec():
    op = degrade.get_op("jpeg")
    assert degrade.get_op("jpeg_compression") is op
    assert op.codec == "jpg" and op.encode is encode_jpeg and op.decode is decode_jpeg
    assert not op.monotone and "monoton" in (op.kernel.__doc__ or "")
    assert [op.params_at(t)["quality"] for t in (0.0, 0.5, 1.0)] == [100, 53, 5]


def test_pipeline_stores_the_jpeg_bytes_and_their_decoding():
    img = varied_images(32)[1]
    seq = Pipeline.parse("jpeg", steps=3).run_encoded(img, key="k")
    for frame, payload in zip(seq.frames[1:], seq.payloads[1:], strict=True):
        ext, raw = payload
        assert ext == "jpg"
        with Image.open(io.BytesIO(raw)) as im:
            assert np.array_equal(np.asarray(im), frame)


# -- WebP ------------------------------------------------------------------------------------


def test_webp_rgb_is_lossy_and_equal_to_pil_decoding():
    img = varied_images(40)[0]
    raw = encode_webp(img, quality=40)
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
    assert b"VP8 " in raw[:40] and b"VP8L" not in raw  # lossy bitstream
    with Image.open(io.BytesIO(raw)) as im:
        plain = np.asarray(im.convert("RGB"))
    assert np.array_equal(decode_webp(raw), plain)
    assert np.array_equal(webp(img, quality=40), to_float(plain))


def test_webp_grayscale_round_trips_as_one_channel():
    img = varied_images(40, 1)[0]
    raw = encode_webp(img, quality=60)
    out = decode_webp(raw)
    assert out.shape == img.shape
    with Image.open(io.BytesIO(raw)) as im:
        assert np.array_equal(np.asarray(im.convert("L")), out[:, :, 0])  # what an "L" reader gets
    # A grey RGB image stays three channels (only the tag decides, not the content).
    grey_rgb = np.repeat(img, 3, axis=2)
    assert decode_webp(encode_webp(grey_rgb, quality=60)).shape == grey_rgb.shape


def test_webp_lower_quality_larger_error_on_a_photo():
    img = _photo()
    errs = [_mse(webp(img, quality=q), img) for q in (90, 50, 20, 5)]
    assert all(b > a for a, b in itertools.pairwise(errs))


def test_webp_op_spec_and_pipeline_payload():
    op = degrade.get_op("webp")
    assert op.codec == "webp" and not op.monotone
    assert [op.params_at(t)["quality"] for t in (0.0, 1.0)] == [100, 1]
    seq = Pipeline.parse("webp", steps=2).run_encoded(varied_images(24, 1)[2], key="k")
    assert seq.payloads[2][0] == "webp"
    assert seq.frames[2].shape == (24, 24, 1)
    assert np.array_equal(seq.frames[2], decode_webp(seq.payloads[2][1]))


# -- banding ---------------------------------------------------------------------------------


def test_banding_one_bit_gives_exactly_zero_and_one():
    ramp = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, -1, 1)
    out = banding(ramp, bits=1)
    assert set(np.unique(out).tolist()) == {0.0, 1.0}
    assert out[0, 49, 0] == 0.0 and out[0, 50, 0] == 1.0  # 0.5 rounds up


@pytest.mark.parametrize("bits", range(1, 9))
def test_banding_level_counts_and_max_error(bits):
    ramp = np.linspace(0, 1, 4097, dtype=np.float32).reshape(-1, 1, 1)
    out = banding(ramp, bits=bits)
    levels = 2**bits - 1
    np.testing.assert_allclose(np.unique(out), np.arange(levels + 1) / levels, atol=1e-7)
    assert np.abs(out - ramp).max() <= 0.5 / levels + 1e-6


def test_banding_two_bits_exact_values_per_channel():
    img = np.array([[[0.1, 0.2, 0.5], [0.9, 0.34, 0.66]]], np.float32)
    out = banding(img, bits=2)
    expected = np.array([[[0, 1, 2], [3, 1, 2]]], np.float32) / 3
    np.testing.assert_allclose(out, expected, atol=1e-7)


def test_banding_eight_bits_leaves_8bit_images_unchanged():
    img = to_float(np.arange(256, dtype=np.uint8).reshape(16, 16, 1))
    assert np.array_equal(banding(img, bits=8), img)


def test_banding_op_schedule():
    op = degrade.get_op("banding")
    assert [op.params_at(t)["bits"] for t in (0.0, 0.5, 1.0)] == [8, 5, 2]
    assert op.monotone and not op.stochastic
    out = op(varied_images(32)[0], t=1.0)
    for c in range(3):
        assert len(np.unique(out[:, :, c])) <= 4
