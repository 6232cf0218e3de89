"""Colour family: exposure, saturation, desaturation, hue shift, colour cast, contrast.

Colour ops act on each pixel's RGB triple (contrast also uses each channel's image mean).
Those that change the balance between channels (saturation, desaturate, hue_shift,
color_cast) are the identity on single-channel images, which have no colour to change.
Exposure and colour cast work in linear light by default (``linear=true``): the sRGB
values are decoded with the IEC 61966-2-1 transfer curve, scaled, clipped and re-encoded,
as a camera's exposure and white balance act on sensor values, not on encoded ones.
"""

from __future__ import annotations

import cv2
import numpy as np

from degrade.registry import Op, Param, register

__all__ = [
    "brightness",
    "cast_gains",
    "color_cast",
    "contrast",
    "desaturate",
    "exposure",
    "hue_shift",
    "linear_to_srgb",
    "saturation",
    "srgb_to_linear",
]


# -- helpers ------------------------------------------------------------------------------


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1), float32.

    Examples
    --------
    >>> srgb_to_linear(np.array([0.0, 0.5, 1.0], np.float32)).astype(float).round(4).tolist()
    [0.0, 0.214, 1.0]
    """
    x = np.clip(x, 0.0, 1.0).astype(np.float32, copy=False)
    out = x + np.float32(0.055)
    out *= np.float32(1 / 1.055)
    np.power(out, np.float32(2.4), out=out)
    np.divide(x, np.float32(12.92), out=out, where=x <= np.float32(0.04045))
    return out


def linear_to_srgb(y: np.ndarray) -> np.ndarray:
    """Encode linear light in [0, 1] to sRGB values (IEC 61966-2-1), float32.

    Examples
    --------
    >>> linear_to_srgb(np.array([0.0, 0.214, 1.0], np.float32)).astype(float).round(3).tolist()
    [0.0, 0.5, 1.0]
    """
    y = np.clip(y, 0.0, 1.0).astype(np.float32, copy=False)
    out = np.power(y, np.float32(1 / 2.4))
    out *= np.float32(1.055)
    out -= np.float32(0.055)
    np.multiply(y, np.float32(12.92), out=out, where=y <= np.float32(0.0031308))
    return np.clip(out, 0.0, 1.0, out=out)


def _sign_field(rng: np.random.Generator, shape: tuple[int, ...]) -> float:
    # One fair coin per sample: the direction of the shift, fixed for the whole sequence.
    return 1.0 if rng.random() < 0.5 else -1.0


def _sign(field: object) -> float:
    return -1.0 if field is not None and float(field) < 0 else 1.0  # type: ignore[arg-type]


def _to_hsv(image: np.ndarray) -> np.ndarray:
    # OpenCV's float HSV: H in degrees [0, 360), S and V in [0, 1]; per pixel, so
    # independent of the thread count.
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2HSV)


def _from_hsv(hsv: np.ndarray) -> np.ndarray:
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(out, 0.0, 1.0, out=out)


# -- kernels ------------------------------------------------------------------------------


def exposure(
    image: np.ndarray,
    *,
    stops: float,
    direction: str = "random",
    linear: bool = True,
    field: object = None,
) -> np.ndarray:
    """Under- or over-exposure by ``stops`` f-stops, clipped: x · 2^(±stops).

    With ``linear`` (the default) the gain acts on linear light and the result is
    re-encoded to sRGB; otherwise on the stored values directly. ``direction`` is
    ``"over"``, ``"under"`` or ``"random"``: the sign then comes from ``field`` (±1, one
    coin per sample; ``None`` counts as over). Every pixel moves monotonically away from
    its clean value as ``stops`` grows, so damage is monotone.

    Examples
    --------
    >>> img = np.array([[[0.2], [0.4], [0.6]]], np.float32)
    >>> exposure(img, stops=1.0, direction="over", linear=False)[0, :, 0].astype(float).round(2).tolist()
    [0.4, 0.8, 1.0]
    """
    if stops <= 0:
        return image.copy()
    if direction == "random":
        sign = _sign(field)
    else:
        sign = 1.0 if direction == "over" else -1.0
    gain = np.float32(2.0 ** (sign * stops))
    if not linear:
        return np.clip(image * gain, 0.0, 1.0).astype(np.float32)
    return linear_to_srgb(srgb_to_linear(image) * gain)


def saturation(image: np.ndarray, *, factor: float, offset: float = 0.0) -> np.ndarray:
    """Scale HSV saturation: S' = clip(S · factor + offset, 0, 1), as ImageNet-C ``saturate``.

    ImageNet-C's levels (S×, S+) = (.3, 0) (.1, 0) (2, 0) (5, .1) (20, .2) first desaturate
    then oversaturate, which is not a monotone path; this op moves one way only (factor from
    1 up, offset from 0 up), and each pixel's RGB change grows with |S' − S| at fixed hue and
    value, so it is monotone. As in the reference, a grey pixel (S = 0) given an offset gets
    hue 0 (red). Identity on single-channel images.

    Examples
    --------
    >>> px = np.array([[[0.8, 0.6, 0.6]]], np.float32)  # S = 0.25
    >>> saturation(px, factor=2.0)[0, 0].astype(float).round(3).tolist()
    [0.8, 0.4, 0.4]
    """
    if image.shape[2] != 3 or (factor == 1.0 and offset == 0.0):
        return image.copy()
    hsv = _to_hsv(image)
    s = hsv[:, :, 1]
    np.clip(s * np.float32(factor) + np.float32(offset), 0.0, 1.0, out=s)
    return _from_hsv(hsv)


def desaturate(image: np.ndarray, *, keep: float) -> np.ndarray:
    """Cold Diffusion's desaturation: keep · I + (1 − keep) · (channel mean).

    A 1×1 colour mixing with (1/3)·𝟙𝟙ᵀ; ``keep`` is the fraction of colour that remains
    (1 = unchanged, 0 = grey). Identity on single-channel images.

    Examples
    --------
    >>> desaturate(np.array([[[0.9, 0.3, 0.0]]], np.float32), keep=0.0)[0, 0].astype(float).round(3).tolist()
    [0.4, 0.4, 0.4]
    """
    if image.shape[2] != 3 or keep >= 1.0:
        return image.copy()
    mean = image.mean(axis=2, keepdims=True, dtype=np.float32)
    k = np.float32(keep)
    out = k * image + (np.float32(1.0) - k) * mean
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def hue_shift(image: np.ndarray, *, degrees: float, field: object = None) -> np.ndarray:
    """Rotate the HSV hue by ``degrees``; the direction (sign) comes from ``field`` (±1).

    At fixed saturation and value a pixel walks round the RGB hexagon, and its distance from
    where it started grows monotonically for rotations up to 120° (either way); past that
    it can shrink again (for almost every colour before 180°, where the complementary hue
    lies), so damage is monotone with the default end of 120° but not for overrides above
    it. Identity on single-channel images.

    Examples
    --------
    >>> hue_shift(np.array([[[1.0, 0.0, 0.0]]], np.float32), degrees=120.0, field=1.0)[0, 0].astype(float).round(3).tolist()
    [0.0, 1.0, 0.0]
    """
    if image.shape[2] != 3 or degrees == 0:
        return image.copy()
    hsv = _to_hsv(image)
    h = hsv[:, :, 0]
    h += np.float32(_sign(field) * degrees)
    np.mod(h, np.float32(360.0), out=h)
    # float32 rounding can land exactly on 360 after mod of a tiny negative number.
    h[h >= 360.0] = 0.0
    return _from_hsv(hsv)


def _direction_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # A random unit direction in 3-channel log-gain space, zero-mean across channels so the
    # product of the gains is 1 (a cast, not a brightness change).
    v = rng.standard_normal(3)
    v -= v.mean()
    n = float(np.linalg.norm(v))
    if n < 1e-12:  # practically never; keep the field well defined
        v, n = np.array([1.0, -0.5, -0.5]), float(np.sqrt(1.5))
    return v / n


def cast_gains(strength: float, field: np.ndarray | None) -> np.ndarray:
    """Return the per-channel gains exp(strength · direction) of :func:`color_cast`.

    ``field`` is a zero-mean unit vector (None: the fixed direction (2, −1, −1)/√6, a
    warm cast), so the gains' product is 1.

    Examples
    --------
    >>> g = cast_gains(0.5, np.array([1.0, -1.0, 0.0]) / np.sqrt(2))
    >>> round(float(np.prod(g)), 6)
    1.0
    """
    d = np.array([2.0, -1.0, -1.0]) / np.sqrt(6.0) if field is None else np.asarray(field, float)
    return np.exp(float(strength) * d)


def color_cast(
    image: np.ndarray, *, strength: float, linear: bool = True, field: np.ndarray | None = None
) -> np.ndarray:
    """White-balance error: per-channel gains exp(strength · direction), clipped.

    ``field`` is a per-sample random unit direction in log-gain space with zero mean across
    channels (so the gains multiply to 1); ``strength`` is its length in natural-log units.
    With ``linear`` the gains act on linear light, as a camera's white balance does. Each
    channel moves monotonically away from its clean value as ``strength`` grows. Identity on
    single-channel images.

    Examples
    --------
    >>> img = np.full((1, 1, 3), 0.25, np.float32)
    >>> color_cast(img, strength=np.log(2) * np.sqrt(2), linear=False,
    ...            field=np.array([1.0, -1.0, 0.0]) / np.sqrt(2))[0, 0].astype(float).round(3).tolist()
    [0.5, 0.125, 0.25]
    """
    if image.shape[2] != 3 or strength <= 0:
        return image.copy()
    gains = cast_gains(strength, field).astype(np.float32)
    if not linear:
        return np.clip(image * gains, 0.0, 1.0).astype(np.float32)
    return linear_to_srgb(srgb_to_linear(image) * gains)


def contrast(image: np.ndarray, *, factor: float) -> np.ndarray:
    """ImageNet-C contrast: (x − m) · factor + m, m the mean of each channel over the image.

    The default curve passes through ImageNet-C's levels .4 .3 .2 .1 .05 at t = .2 … 1.

    Examples
    --------
    >>> contrast(np.array([[[0.2], [0.6]]], np.float32), factor=0.5)[0, :, 0].astype(float).round(3).tolist()
    [0.3, 0.5]
    """
    if factor == 1.0:
        return image.copy()
    mean = image.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
    out = (image - mean) * np.float32(factor) + mean
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def brightness(image: np.ndarray, *, amount: float) -> np.ndarray:
    """ImageNet-C brightness: add ``amount`` to the HSV value, V' = clip(V + amount, 0, 1).

    Hue and saturation are kept (OpenCV's float HSV, the same conversion as scikit-image's
    ``rgb2hsv`` up to float rounding). On one channel the value *is* the pixel, so this is
    clip(x + amount), as the ``imagecorruptions`` package does for grayscale. The levels
    .1 .2 .3 .4 .5 lie on the default line at t = .2 … 1. Each pixel's RGB triple is
    scaled by (V + amount)/V (clipped), so its change only grows with ``amount``: monotone.

    Examples
    --------
    >>> brightness(np.array([[[0.4, 0.2, 0.2]]], np.float32), amount=0.2)[0, 0].astype(float).round(3).tolist()
    [0.6, 0.3, 0.3]
    """
    if amount <= 0:
        return image.copy()
    if image.shape[2] == 1:
        return np.clip(image + np.float32(amount), 0.0, 1.0).astype(np.float32)
    hsv = _to_hsv(image)
    v = hsv[:, :, 2]
    np.clip(v + np.float32(amount), 0.0, 1.0, out=v)
    return _from_hsv(hsv)


# -- registration -------------------------------------------------------------------------

_LINEAR = Param("linear", True, kind="bool", help="apply in linear light (sRGB decoded) instead of on stored values")

register(
    Op(
        "exposure",
        exposure,
        (
            Param("stops", 0.0, 3.0, low=0.0, high=10.0, unit="stops", help="exposure error in f-stops"),
            Param("direction", "random", kind="choice", choices=("random", "over", "under"),
                  help="over, under, or random per sample"),
            _LINEAR,
        ),
        family="color",
        description="under- or over-exposure, clipped",
        field=_sign_field,
    )
)

register(
    Op(
        "saturation",
        saturation,
        (
            Param("factor", 1.0, 5.0, curve="geometric", low=0.0, high=100.0, unit="x",
                  help="HSV saturation multiplier"),
            Param("offset", 0.0, 0.1, low=0.0, high=1.0, help="added to HSV saturation after scaling"),
        ),
        family="color",
        description="HSV saturation scaled (oversaturation), as ImageNet-C saturate",
        aliases=("saturate",),
    )
)

register(
    Op(
        "desaturate",
        desaturate,
        (Param("keep", 1.0, 0.0, low=0.0, high=1.0, help="fraction of colour kept"),),
        family="color",
        description="blend towards the channel mean (Cold Diffusion desaturation)",
    )
)

register(
    Op(
        "hue_shift",
        hue_shift,
        (
            Param("degrees", 0.0, 120.0, low=0.0, high=180.0, unit="deg",
                  help="hue rotation (damage monotone up to 120)"),
        ),
        family="color",
        description="HSV hue rotation, direction random per sample",
        field=_sign_field,
    )
)

register(
    Op(
        "color_cast",
        color_cast,
        (
            Param("strength", 0.0, 0.5, low=0.0, high=3.0, unit="log-gain",
                  help="length of the log-gain vector"),
            _LINEAR,
        ),
        family="color",
        description="white-balance error: random per-channel gains with product 1",
        field=_direction_field,
    )
)

register(
    Op(
        "contrast",
        contrast,
        (
            Param("factor", 1.0, 0.05, curve="knots",
                  knots=((0.0, 1.0), (0.2, 0.4), (0.4, 0.3), (0.6, 0.2), (0.8, 0.1), (1.0, 0.05)),
                  low=0.0, high=10.0, unit="x", help="contrast factor around each channel's mean"),
        ),
        family="color",
        description="contrast reduced around each channel's mean (ImageNet-C contrast)",
    )
)

register(
    Op(
        "brightness",
        brightness,
        (
            Param("amount", 0.0, 0.5, low=0.0, high=1.0,
                  help="added to HSV value (ImageNet-C levels .1 .2 .3 .4 .5)"),
        ),
        family="color",
        description="brightness: HSV value raised (ImageNet-C brightness)",
    )
)
