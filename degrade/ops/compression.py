"""Compression family: JPEG and WebP (encoded through Pillow both ways), and bit-depth banding.

``jpeg`` and ``webp`` are ops whose output *is* a file: a pipeline step ending with one of
them stores the encoder's bytes, and the frame is what Pillow decodes from them — the same
pixels a PIL-based reader (webdataset's default decoders, ``datasets``) gets back.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from degrade.image import to_float, to_uint8
from degrade.registry import Op, Param, register

#: EXIF tag PhotometricInterpretation; 1 = BlackIsZero (grayscale). WebP has no grayscale
#: mode, so a one-channel image is stored as RGB with this tag, and :func:`decode_webp`
#: gives it back as one channel.
_PHOTOMETRIC = 0x0106
_WEBP_METHOD = 4


def _pil_image(image: np.ndarray) -> Image.Image:
    arr = to_uint8(image)
    if arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0])
    return Image.fromarray(arr)


def _to_hwc(img: Image.Image) -> np.ndarray:
    if img.mode != "L":
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr)


# -- JPEG ----------------------------------------------------------------------------------


def encode_jpeg(image: np.ndarray, *, quality: int) -> bytes:
    """Encode a float image as baseline JPEG bytes with Pillow (libjpeg).

    The image is first rounded to uint8 (:func:`degrade.image.to_uint8`); one channel is
    written as a grayscale JPEG, three as YCbCr with 4:2:0 chroma subsampling (Pillow's
    default, also at quality 100, and ImageNet-C's), no ``optimize``, not progressive: the
    bytes depend only on the pixels and ``quality``.

    Examples
    --------
    >>> encode_jpeg(np.zeros((8, 8, 3), np.float32), quality=50)[:2]
    b'\\xff\\xd8'
    """
    arr = to_uint8(image)
    if arr.shape[2] == 3:
        # OpenCV's encoder writes the very bytes Pillow's settings below give (both bundle
        # libjpeg-turbo; tests/ops/test_compression.py checks it) in about half the time. For one
        # channel they differ in a header byte (sampling factor), so Pillow stays.
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if ok:
            return buf.tobytes()
    return _encode_jpeg_pil(arr, quality)


def _encode_jpeg_pil(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    img.save(buf, format="JPEG", quality=int(quality), subsampling=2, optimize=False, progressive=False)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes with Pillow to a uint8 H×W×C array (C = 1 for grayscale).

    Examples
    --------
    >>> decode_jpeg(encode_jpeg(np.ones((4, 6, 1), np.float32), quality=90)).shape
    (4, 6, 1)
    """
    with Image.open(io.BytesIO(data)) as img:
        return _to_hwc(img)


def jpeg(image: np.ndarray, *, quality: int) -> np.ndarray:
    """JPEG compression at ``quality`` (1–100): ``decode_jpeg(encode_jpeg(image)) / 255``.

    Not monotone (``monotone=False``): a higher quality is not always closer to the clean
    image. Per image, PSNR rises at up to ~25 of the 99 steps quality q → q − 1 (block
    and chroma-subsampling effects; measured on 64 px crops of scikit-image samples and
    synthetic images, worst on smooth ones: the moon, a gradient), and the mean over 8
    varied 64 px images still rises at a few steps (e.g. 87 → 86, 44 → 43). On 34 64 px
    photo crops the mean is monotone. Use a calibrated schedule for sequences that must be
    monotone per image.

    Examples
    --------
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> (jpeg(img, quality=75)[0, 0] * 255).round().tolist()
    [128.0, 128.0, 128.0]
    """
    return to_float(decode_jpeg(encode_jpeg(image, quality=quality)))


register(
    Op(
        "jpeg",
        jpeg,
        (
            Param("quality", 100, 5, kind="int", low=1, high=100, unit="quality",
                  help="JPEG quality (ImageNet-C levels 25 18 15 10 7)"),
        ),
        family="compression",
        description="JPEG compression (Pillow/libjpeg, 4:2:0); frames are the decoded file",
        version=1,
        monotone=False,
        aliases=("jpeg_compression",),
        codec="jpg",
        encode=encode_jpeg,
        decode=decode_jpeg,
    )
)


# -- WebP ----------------------------------------------------------------------------------


def encode_webp(image: np.ndarray, *, quality: int) -> bytes:
    """Encode a float image as lossy WebP bytes with Pillow (libwebp).

    The image is rounded to uint8 first. Fixed settings: lossy, ``method=4``, no sharp YUV,
    no alpha. WebP has no grayscale mode: one channel is written as RGB tagged with the
    EXIF PhotometricInterpretation = 1 (BlackIsZero), which :func:`decode_webp` reads to
    give back one channel.

    Examples
    --------
    >>> encode_webp(np.zeros((8, 8, 3), np.float32), quality=50)[8:12]
    b'WEBP'
    """
    img = _pil_image(image)
    kwargs: dict[str, object] = {}
    if img.mode == "L":
        exif = Image.Exif()
        exif[_PHOTOMETRIC] = 1
        kwargs["exif"] = exif.tobytes()
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="WEBP", lossless=False, quality=int(quality), method=_WEBP_METHOD,
             **kwargs)
    return buf.getvalue()


def decode_webp(data: bytes) -> np.ndarray:
    """Decode WebP bytes with Pillow to a uint8 H×W×C array.

    A file written from a one-channel image (see :func:`encode_webp`) is converted to
    Pillow's ``L`` (ITU-R 601 luma of the decoded RGB) and returned with C = 1.

    Examples
    --------
    >>> decode_webp(encode_webp(np.ones((4, 6, 1), np.float32), quality=90)).shape
    (4, 6, 1)
    """
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        if img.getexif().get(_PHOTOMETRIC) == 1:
            img = img.convert("RGB").convert("L")
        return _to_hwc(img)


def webp(image: np.ndarray, *, quality: int) -> np.ndarray:
    """Lossy WebP compression at ``quality`` (1–100): ``decode_webp(encode_webp(image)) / 255``.

    Not monotone (``monotone=False``): a higher WebP quality is often *not* closer to the
    clean image — the encoder's choice of prediction modes and loop filter changes with
    quality. Measured per image: PSNR rises at a median of 12–16 of the 99 steps
    q → q − 1 on 64 px images; the mean over 8 varied images rises at 10–17 steps, at 64
    and at 256 px alike. Use a calibrated schedule for sequences that must be monotone.

    Examples
    --------
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> webp(img, quality=80).shape
    (8, 8, 3)
    """
    return to_float(decode_webp(encode_webp(image, quality=quality)))


register(
    Op(
        "webp",
        webp,
        (
            Param("quality", 100, 1, kind="int", low=0, high=100, unit="quality",
                  help="WebP quality (lossy, method 4)"),
        ),
        family="compression",
        description="lossy WebP compression (Pillow/libwebp); frames are the decoded file",
        version=1,
        monotone=False,
        codec="webp",
        encode=encode_webp,
        decode=decode_webp,
    )
)


# -- banding -------------------------------------------------------------------------------


def banding(image: np.ndarray, *, bits: int) -> np.ndarray:
    """Reduce each channel to ``bits`` bits (2^bits uniform levels), without dithering.

    Each value x becomes ⌊x·(2^bits − 1) + ½⌋ / (2^bits − 1): the nearest of the levels
    0, 1/(L−1), …, 1 (halves round up). At 8 bits this is exactly the uint8 rounding a
    writer applies, so it leaves 8-bit images unchanged; at 1 bit only 0 and 1 remain.

    Examples
    --------
    >>> banding(np.array([[[0.2], [0.5], [0.9]]], np.float32), bits=1).ravel().tolist()
    [0.0, 1.0, 1.0]
    """
    levels = float(2 ** int(bits) - 1)
    out = np.floor(image.astype(np.float64) * levels + 0.5) / levels
    return np.clip(out, 0.0, 1.0).astype(np.float32)


register(
    Op(
        "banding",
        banding,
        (
            Param("bits", 8, 2, kind="int", low=1, high=8, unit="bits",
                  help="bits per channel (2^bits uniform levels)"),
        ),
        family="compression",
        description="bit-depth reduction (uniform quantisation, no dithering)",
        version=1,
    )
)
