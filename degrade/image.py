"""The image contract and its edges.

Inside the library an image is a NumPy ``float32`` array H×W×C, C ∈ {1, 3}, RGB, values in
[0, 1]. ``uint8`` exists only at the edges: :func:`decode` / :func:`load` turn what users
really have into that contract, :func:`to_uint8` and :func:`encode_png` turn it back.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from degrade.errors import DegradeError

__all__ = [
    "MAX_PIXELS",
    "as_image",
    "check_image",
    "decode",
    "decode_png",
    "encode_png",
    "load",
    "quantize",
    "to_float",
    "to_uint8",
]

#: Largest image (in pixels) that is decoded; larger ones are refused as decompression bombs.
MAX_PIXELS = 20_000 * 20_000


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` follows the contract and return it.

    Raises
    ------
    DegradeError
        If it is not float32 H×W×C with C ∈ {1, 3} and values in [0, 1].

    Examples
    --------
    >>> check_image(np.zeros((2, 3, 1), np.float32)).shape
    (2, 3, 1)
    """
    if not isinstance(image, np.ndarray):
        raise DegradeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.float32:
        raise DegradeError(f"{name} must be float32 in [0, 1], got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise DegradeError(f"{name} must be H×W×C with C in {{1, 3}}, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise DegradeError(f"{name} is empty (shape {image.shape})")
    if image.size and not (np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0):
        raise DegradeError(f"{name} values must lie in [0, 1]")
    return image


def as_image(array: np.ndarray) -> np.ndarray:
    """Convert a user array (uint8, uint16, float; H×W or H×W×C) to the contract.

    Floats are taken as [0, 1] and clipped; integers are scaled by their dtype's maximum.
    RGBA drops its alpha (composite it first with :func:`decode` if it matters).

    Examples
    --------
    >>> as_image(np.full((2, 2), 255, np.uint8)).max()
    np.float32(1.0)
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise DegradeError(f"image must be H×W, H×W×1, H×W×3 or H×W×4, got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype == np.uint8:
        out = a.astype(np.float32) / np.float32(255)
    elif a.dtype == np.uint16:
        out = a.astype(np.float32) / np.float32(65535)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise DegradeError("image contains NaN or infinite values")
        out = np.clip(a, 0.0, 1.0).astype(np.float32)
    elif a.dtype == np.bool_:
        out = a.astype(np.float32)
    else:
        raise DegradeError(f"unsupported image dtype {a.dtype}")
    return np.ascontiguousarray(out)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round a [0, 1] float image to uint8 (round half up, clipped).

    Examples
    --------
    >>> to_uint8(np.array([[[0.5]]], np.float32))
    array([[[128]]], dtype=uint8)
    """
    scaled = np.multiply(image, np.float32(255.0), dtype=np.float32)
    scaled += np.float32(0.5)
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def to_float(image: np.ndarray) -> np.ndarray:
    """Convert a uint8 image to float32 in [0, 1].

    Examples
    --------
    >>> to_float(np.array([[[255]]], np.uint8))
    array([[[1.]]], dtype=float32)
    """
    return image.astype(np.float32) / np.float32(255.0)


def quantize(image: np.ndarray) -> np.ndarray:
    """Return what an 8-bit writer stores: ``to_float(to_uint8(image))``.

    Examples
    --------
    >>> bool(quantize(np.array([[[0.3]]], np.float32))[0, 0, 0] == np.float32(77) / np.float32(255))
    True
    """
    return to_float(to_uint8(image))


def _composite(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def decode(
    data: bytes,
    *,
    name: str = "image",
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode image bytes to the contract, normalising what users really have.

    Grayscale stays one channel; RGB, palette and CMYK become RGB; alpha is composited on
    ``background``; 16-bit is scaled, not clipped; EXIF orientation is applied; animations
    give their first frame.

    Raises
    ------
    DegradeError
        If the bytes are empty, not an image, truncated or larger than ``max_pixels``.

    Examples
    --------
    >>> decode(encode_png(np.zeros((4, 5, 3), np.float32))).shape
    (4, 5, 3)
    """
    if not data:
        raise DegradeError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w < 1 or h < 1:
                raise DegradeError(f"{name}: image has no pixels ({w}×{h})")
            if w * h > max_pixels:
                raise DegradeError(
                    f"{name}: {w}×{h} pixels exceeds the limit of {max_pixels} (decompression bomb?)"
                )
            img.seek(0)
            rawmode = _rawmode(img)  # before load(), which clears the tile list
            img.load()
            if img.mode in ("RGB", "RGBA") and ";16" in rawmode:
                deep = _decode_deep_color(data, img, background)
                if deep is not None:
                    return deep
            peak = _int_peak(img, rawmode) if img.mode == "I" else 65535.0
            img = ImageOps.exif_transpose(img)
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                arr = np.asarray(img, dtype=np.float64)
                if mode == "I" and peak == 0.0:
                    peak = 65535.0 if arr.max() > 255 else 255.0
                arr = np.clip(arr / peak, 0.0, 1.0).astype(np.float32)
                return np.ascontiguousarray(arr[:, :, None])
            if mode == "F":
                arr = np.asarray(img, dtype=np.float32)
                return np.ascontiguousarray(np.clip(arr, 0.0, 1.0)[:, :, None])
            if mode in ("1", "L"):
                return to_float(np.asarray(img.convert("L")))[:, :, None]
            if mode in ("LA", "La") or (mode == "P" and "transparency" in img.info):
                if mode in ("LA", "La"):
                    gray = sum(background) // 3
                    return to_float(np.asarray(_composite(img, (gray,) * 3).convert("L")))[:, :, None]
                return to_float(np.asarray(_composite(img, background)))
            if mode in ("RGBA", "RGBa", "PA"):
                return to_float(np.asarray(_composite(img, background)))
            return to_float(np.asarray(img.convert("RGB")))
    except DegradeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DegradeError(f"{name}: decompression bomb ({exc})") from None
    except Image.DecompressionBombWarning as exc:
        raise DegradeError(f"{name}: decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        kind = _sniff(data)
        if kind is not None:  # Pillow says "unidentified" for a broken header too
            raise DegradeError(f"{name}: cannot decode (a corrupt {kind} file)") from None
        raise DegradeError(f"{name}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DegradeError(f"{name}: cannot decode ({exc})") from None
    except MemoryError:
        raise DegradeError(f"{name}: too large to decode in the memory available") from None
    except Exception as exc:  # a hostile file may trip any error inside a decoder
        raise DegradeError(f"{name}: cannot decode ({type(exc).__name__}: {exc})") from None


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _sniff(data: bytes) -> str | None:
    """The format a file's first bytes announce, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for sig, kind in _SIGNATURES if data.startswith(sig)), None)


def _rawmode(img: Image.Image) -> str:
    """The raw pixel layout of the first tile (``"RGB;16B"`` for a 48-bit PNG), or ``""``."""
    try:
        args = img.tile[0][-1] if img.tile else ""
    except (IndexError, TypeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


# EXIF orientation -> the array transform that displays the image upright (as
# ImageOps.exif_transpose does for PIL images).
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _decode_deep_color(
    data: bytes, img: Image.Image, background: tuple[int, int, int]
) -> np.ndarray | None:
    """16-bit RGB(A): Pillow keeps only the high byte of each sample; OpenCV keeps all 16
    bits, so the result is rounded like 16-bit grayscale instead of truncated. None when
    OpenCV cannot read the file (the caller then uses Pillow's 8 bits)."""
    import cv2

    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    channels = len(img.mode)
    if (
        arr is None
        or arr.dtype != np.uint16
        or arr.ndim != 3
        or arr.shape[2] != channels
        or arr.shape[:2] != (img.size[1], img.size[0])
    ):
        return None
    rgb = arr[:, :, [2, 1, 0]].astype(np.float64) / 65535.0  # OpenCV gives BGR(A)
    if channels == 4:
        alpha = arr[:, :, 3:4].astype(np.float64) / 65535.0
        bg = np.asarray(background, np.float64) / 255.0
        rgb = rgb * alpha + bg * (1.0 - alpha)
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # unreadable EXIF: as Pillow does, keep the stored orientation
        orientation = 1
    rgb = _ORIENT.get(orientation, lambda a: a)(rgb)
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0).astype(np.float32))


def _int_peak(img: Image.Image, rawmode: str) -> float:
    """The full-scale value of a mode ``I`` image, from the file rather than its pixels (a
    dark 16-bit image must not be scaled as if it were 8-bit); 0 when the file does not say."""
    if "16" in rawmode or img.format in ("PNG", "PPM"):
        return 65535.0  # Pillow widens PNM maxval > 255 to 16 bits
    if img.format == "TIFF":
        try:
            bits = img.tag_v2.get(258)  # type: ignore[attr-defined]
            bits = int(bits[0] if isinstance(bits, tuple) else bits)
        except (TypeError, ValueError, IndexError, AttributeError):
            return 0.0
        if 1 <= bits <= 16:
            return float(2**bits - 1)
    return 0.0


def load(path: str | os.PathLike[str], **kwargs: object) -> np.ndarray:
    """Read and :func:`decode` an image file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.png"
    >>> _ = p.write_bytes(encode_png(np.ones((2, 2, 1), np.float32)))
    >>> load(p).shape
    (2, 2, 1)
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DegradeError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return decode(data, name=str(p), **kwargs)  # type: ignore[arg-type]


def encode_png(image: np.ndarray, *, compress_level: int = 1) -> bytes:
    """Encode a float image (or uint8 array) as 8-bit PNG bytes.

    PNG is lossless, so decoding gives back exactly ``to_uint8(image)``.

    Examples
    --------
    >>> encode_png(np.zeros((1, 1, 3), np.float32))[:4]
    b'\\x89PNG'
    """
    arr = image if image.dtype == np.uint8 else to_uint8(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes written by :func:`encode_png` to a uint8 H×W×C array.

    Examples
    --------
    >>> decode_png(encode_png(np.ones((2, 2, 1), np.float32))).shape
    (2, 2, 1)
    """
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr
