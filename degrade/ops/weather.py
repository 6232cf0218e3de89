"""Weather family: snow, frost, fog and spatter (ImageNet-C's weather corruptions).

Each op draws its random layer once per sample (the snow noise and its direction, the frost
texture, the plasma fractal's draws, the liquid noise) and every step reuses it, with the
strength parameters moving through ImageNet-C's five levels at t = .2 … 1 by default.
Differences from the reference code (``imagecorruptions`` / hendrycks/robustness) are
stated per op; the main ones: one fixed random layer across levels instead of a fresh
draw per level, any image size, and a procedural frost texture instead of the reference's
six frost photographs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from degrade.ops._util import restore_channels
from degrade.ops.blur import clipped_zoom, gaussian_truncate4, motion_kernel
from degrade.ops.noise import PerlinLattice, perlin_texture
from degrade.registry import Op, Param, register

__all__ = [
    "FogField",
    "SnowField",
    "fog",
    "frost",
    "frost_texture",
    "plasma_fractal",
    "snow",
    "snow_layer",
    "spatter",
]

#: ITU-R 601 luma weights (``cv2.COLOR_RGB2GRAY``), used where ImageNet-C converts to grey.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        return image[:, :, 0]
    return image @ _LUMA


def _knots(*levels: float, at0: float) -> tuple[tuple[float, float], ...]:
    """Knots at t = 0, .2, …, 1: the value at t = 0 and then ImageNet-C's five levels."""
    return ((0.0, at0), *((round(0.2 * (i + 1), 1), float(v)) for i, v in enumerate(levels)))


# -- snow ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnowField:
    """A sample's snow: standard-normal noise (H×W), a streak angle and an axis coin.

    Examples
    --------
    >>> SnowField(np.zeros((2, 2), np.float32), -90.0, True).angle
    -90.0
    """

    z: np.ndarray
    angle: float
    vertical: bool


def _snow_field(rng: np.random.Generator, shape: tuple[int, ...]) -> SnowField:
    z = rng.standard_normal((shape[0], shape[1]), dtype=np.float32)
    angle = float(rng.uniform(-135.0, -45.0))  # ImageNet-C: roughly downwards
    vertical = bool(rng.random() > 0.5)  # Cold Diffusion's "line" streaks: which axis
    return SnowField(z, angle, vertical)


def _line_kernel(radius: float, sigma: float, vertical: bool) -> np.ndarray:
    # Cold Diffusion's streak: a centred 1-D Gaussian of 2·radius + 1 taps on one axis.
    n = 2 * round(radius) + 1
    x = np.arange(n, dtype=np.float64) - n // 2
    g = np.exp(-(x**2) / (2.0 * max(float(sigma), 1e-12) ** 2))
    g = (g / g.sum()).astype(np.float32)
    return g[:, None] if vertical else g[None, :]


def snow_layer(
    shape: tuple[int, ...],
    field: SnowField,
    *,
    loc: float,
    scale: float,
    zoom: float,
    threshold: float,
    radius: float,
    sigma: float,
    streak: str = "motion",
) -> np.ndarray:
    """Return the H×W snow layer in [0, 1] (before its 180° copy is added).

    loc + scale·z zoomed into by ``zoom`` (bilinear), values below ``threshold`` set to
    0, clipped to [0, 1], streaked, and rounded to 8 bits. ``streak="motion"``:
    ImageNet-C's one-sided motion blur of reach 2·``radius`` px along the field's angle
    (:func:`degrade.ops.blur.motion_kernel`); ``"line"``: Cold Diffusion's centred
    Gaussian line of 2·``radius`` + 1 taps, horizontal or vertical by the field's coin.

    Examples
    --------
    >>> f = SnowField(np.zeros((4, 4), np.float32), -90.0, True)
    >>> float(snow_layer((4, 4, 3), f, loc=0.1, scale=0.3, zoom=2, threshold=0.5, radius=3, sigma=1).max())
    0.0
    """
    h, w = int(shape[0]), int(shape[1])
    base = (np.float32(loc) + np.float32(scale) * field.z[:h, :w])[:, :, None]
    layer = clipped_zoom(base, float(zoom))[:, :, 0] if zoom > 1.0 else base[:, :, 0].copy()
    layer[layer < threshold] = 0.0
    np.clip(layer, 0.0, 1.0, out=layer)
    if not layer.any():
        return layer
    if streak == "line":
        kernel = _line_kernel(radius, sigma, field.vertical)
        layer = cv2.filter2D(layer, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    else:
        kernel, anchor = motion_kernel(radius, sigma, field.angle)
        if kernel.size > 1:
            layer = cv2.filter2D(layer, -1, kernel, anchor=anchor, borderType=cv2.BORDER_REFLECT_101)
    return (np.round(np.clip(layer, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def snow(
    image: np.ndarray,
    *,
    loc: float,
    scale: float,
    zoom: float,
    threshold: float,
    radius: float,
    sigma: float,
    mix: float,
    streak: str = "motion",
    field: SnowField,
) -> np.ndarray:
    """Snow (ImageNet-C): a streaked snow layer, added twice (as is and turned 180°).

    The image is first brightened: mix·x + (1 − mix)·max(x, 1.5·grey(x) + 0.5); then
    out = clip(x' + L + rot180(L)) with L = :func:`snow_layer`. ImageNet-C's levels
    (loc, scale, zoom, threshold, radius, sigma, mix) = (.1, .3, 3, .5, 10, 4, .8)
    (.2, .3, 2, .5, 12, 4, .7) (.55, .3, 4, .9, 12, 8, .7) (.55, .3, 4.5, .85, 12, 8, .65)
    (.55, .3, 2.5, .85, 12, 12, .55) are the knots at t = .2 … 1; towards t = 0 the
    threshold rises to 1.5 (no snow) and mix to 1. Differences: one noise layer for every
    level (the reference redraws it), ImageNet-C's ImageMagick motion blur rebuilt as in
    ``motion_blur``, the zoom centred as in hendrycks/robustness. Not monotone: the levels
    change the zoom and the noise mean up and down, so flakes change size between steps.

    Examples
    --------
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> f = SnowField(np.zeros((8, 8), np.float32), -90.0, True)
    >>> snow(img, loc=0.1, scale=0.3, zoom=3, threshold=0.5, radius=10, sigma=4, mix=0.5, field=f)[0, 0].tolist()
    [0.875, 0.875, 0.875]
    """
    lum = _gray(image)[:, :, None]
    bright = np.maximum(image, lum * np.float32(1.5) + np.float32(0.5))
    m = np.float32(mix)
    x = m * image + (np.float32(1.0) - m) * bright
    layer = snow_layer(image.shape, field, loc=loc, scale=scale, zoom=zoom, threshold=threshold,
                       radius=radius, sigma=sigma, streak=streak)
    out = x + (layer + layer[::-1, ::-1])[:, :, None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


register(
    Op(
        "snow",
        snow,
        (
            Param("loc", 0.1, 0.55, curve="knots", knots=_knots(0.1, 0.2, 0.55, 0.55, 0.55, at0=0.1),
                  low=-10.0, high=10.0, help="mean of the snow noise"),
            Param("scale", 0.3, 0.3, low=0.0, high=10.0, help="std of the snow noise"),
            Param("zoom", 3.0, 2.5, curve="knots", knots=_knots(3, 2, 4, 4.5, 2.5, at0=3.0),
                  low=1.0, high=64.0, unit="x", help="zoom into the noise (flake size)"),
            Param("threshold", 1.5, 0.85, curve="knots",
                  knots=_knots(0.5, 0.5, 0.9, 0.85, 0.85, at0=1.5), low=-10.0, high=10.0,
                  help="noise below this is no snow"),
            Param("radius", 10.0, 12.0, curve="knots", knots=_knots(10, 12, 12, 12, 12, at0=10.0),
                  low=0.0, high=256.0, unit="px", help="streak reach 2·radius (line: 2·radius+1 taps)"),
            Param("sigma", 4.0, 12.0, curve="knots", knots=_knots(4, 4, 8, 8, 12, at0=4.0),
                  low=0.0, high=256.0, unit="px", help="Gaussian fall-off along the streak"),
            Param("mix", 1.0, 0.55, curve="knots", knots=_knots(0.8, 0.7, 0.7, 0.65, 0.55, at0=1.0),
                  low=0.0, high=1.0, help="weight of the image against its brightened copy"),
            Param("streak", "motion", kind="choice", choices=("motion", "line"),
                  help="motion: ImageNet-C's streaks; line: Cold Diffusion's centred line"),
        ),
        family="weather",
        description="snow: streaked snow layer over a brightened image (ImageNet-C snow)",
        version=1,
        monotone=False,
        field=_snow_field,
    )
)


# -- frost ---------------------------------------------------------------------------------

#: Tint of the frost texture (pale blue-white) and its grey level: base + span·veins. Chosen
#: so that the texture's mean colour (about .56 .65 .69) and spread (std about .1) match
#: those of the five frost photographs ImageNet-C draws from, and with them its PSNR per level.
_FROST_TINT = np.array([0.87, 1.0, 1.07], np.float32)
_FROST_BASE, _FROST_SPAN = 0.5, 0.6


def frost_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Draw a procedural frost texture, H×W×3 float32 in [0, 1] (mean about .65).

    Ice-crystal veins are the zero crossings of Perlin noise at five scales (a ridge
    exp(−(n/0.3)²) per octave, from a third of the longer side down by halves), summed
    with weights 0.6^o, plus a fine grain; contrast-stretched, gamma-adjusted, lifted to a
    bright grey and tinted pale blue. A stand-in for ImageNet-C's frost photographs, which
    are not shipped; its mean colour and spread match theirs.

    Examples
    --------
    >>> tex = frost_texture(np.random.default_rng(0), 32, 48)
    >>> tex.shape, bool(0.0 <= tex.min() and tex.max() <= 1.0)
    ((32, 48, 3), True)
    """
    h, w = int(height), int(width)
    side = float(max(h, w))
    acc = np.zeros((h, w), np.float32)
    total = 0.0
    for o in range(5):
        n = perlin_texture(h, w, PerlinLattice.draw(rng), scale=max(side / (3.0 * 2.0**o), 2.0),
                           octaves=1)
        weight = 0.6**o
        acc += np.float32(weight) * np.exp(-((n / np.float32(0.3)) ** 2))
        total += weight
    acc /= np.float32(total)
    acc += np.float32(0.15) * rng.random((h, w), dtype=np.float32)
    lo, hi = np.percentile(acc, [1.0, 99.5]) if acc.size > 1 else (0.0, 1.0)
    acc = np.clip((acc - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0) ** np.float32(1.3)
    grey = np.float32(_FROST_BASE) + np.float32(_FROST_SPAN) * acc
    return np.ascontiguousarray(np.clip(grey[:, :, None] * _FROST_TINT, 0.0, 1.0), dtype=np.float32)


def _frost_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return frost_texture(rng, shape[0], shape[1])


def frost(image: np.ndarray, *, keep: float, frost: float, field: np.ndarray) -> np.ndarray:
    """Frost (ImageNet-C): clip(keep·x + frost·F), F the sample's frost texture.

    ImageNet-C's (keep, frost) levels (1, .4) (.8, .6) (.7, .7) (.65, .7) (.6, .75) are the
    knots at t = .2 … 1. F is procedural (:func:`frost_texture`) instead of a random crop
    of one of the reference's six frost photographs; on one channel its luminance is used
    (the reference's ``rgb2gray``). Not monotone: ``keep`` falls while ``frost`` rises, so
    on bright pixels the darkening and the added frost partly cancel and a pixel can come
    back towards its clean value between levels 1 and 2.

    Examples
    --------
    >>> img = np.full((2, 2, 3), 0.5, np.float32)
    >>> frost(img, keep=0.6, frost=0.75, field=np.full((2, 2, 3), 0.4, np.float32))[0, 0].astype(float).round(3).tolist()
    [0.6, 0.6, 0.6]
    """
    tex = field if image.shape[2] == 3 else (field @ np.array([0.2989, 0.587, 0.114], np.float32))[:, :, None]
    out = np.float32(keep) * image + np.float32(frost) * tex
    return np.clip(out, 0.0, 1.0).astype(np.float32)


register(
    Op(
        "frost",
        frost,
        (
            Param("keep", 1.0, 0.6, curve="knots", knots=_knots(1, 0.8, 0.7, 0.65, 0.6, at0=1.0),
                  low=0.0, high=2.0, help="weight of the image"),
            Param("frost", 0.0, 0.75, curve="knots", knots=_knots(0.4, 0.6, 0.7, 0.7, 0.75, at0=0.0),
                  low=0.0, high=2.0, help="weight of the frost texture"),
        ),
        family="weather",
        description="frost: procedural ice texture over the image (ImageNet-C frost)",
        version=1,
        monotone=False,
        field=_frost_field,
    )
)


# -- fog -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FogField:
    """The random draws of a plasma fractal: per diamond-square stage, the uniform numbers
    (in [−1, 1)) of its square step and its two diamond steps.

    Examples
    --------
    >>> f = _fog_field(np.random.default_rng(0), (5, 3, 3))
    >>> f.size, len(f.draws)
    (8, 3)
    """

    size: int
    draws: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


def _fog_field(rng: np.random.Generator, shape: tuple[int, ...]) -> FogField:
    side = max(int(shape[0]), int(shape[1]), 1)
    size = 1 << (side - 1).bit_length() if side > 1 else 1
    draws = []
    n = 1
    while n < size:
        draws.append(tuple(rng.uniform(-1.0, 1.0, size=(n, n)) for _ in range(3)))
        n *= 2
    return FogField(size, tuple(draws))  # type: ignore[arg-type]


def plasma_fractal(field: FogField, decay: float) -> np.ndarray:
    """Diamond-square plasma fractal of side ``field.size``, in [0, 1] (ImageNet-C's fog).

    Toroidal diamond-square: each stage sets the centres of the current squares to the
    mean of their 4 corners and then the edge midpoints to the mean of their 4 neighbours,
    each plus w²·u with u the field's uniform number and w starting at 100 and divided by
    ``decay`` per stage (the reference's "wibble"); the map is min–max normalised. The
    field fixes every u, so changing ``decay`` reshapes the same fractal.

    Examples
    --------
    >>> p = plasma_fractal(_fog_field(np.random.default_rng(0), (16, 16, 3)), 2.0)
    >>> p.shape, float(p.min()), float(p.max())
    ((16, 16), 0.0, 1.0)
    """
    size = field.size
    m = np.zeros((size, size), np.float64)
    step = size
    wibble = 100.0
    for us, ud1, ud2 in field.draws:
        half = step // 2
        amp = wibble * wibble
        corners = m[0::step, 0::step]
        s = corners + np.roll(corners, -1, axis=0)
        s = s + np.roll(s, -1, axis=1)
        m[half::step, half::step] = s / 4.0 + amp * us
        centres = m[half::step, half::step]
        corners = m[0::step, 0::step]
        # Midpoints of horizontal edges: the centres above and below, the corners left and right.
        tot = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        m[0::step, half::step] = tot / 4.0 + amp * ud1
        # Midpoints of vertical edges: the centres left and right, the corners above and below.
        tot = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        m[half::step, 0::step] = tot / 4.0 + amp * ud2
        step = half
        wibble /= float(decay)
    m -= m.min()
    top = m.max()
    return m / top if top > 0 else m


def fog(image: np.ndarray, *, strength: float, decay: float, field: FogField) -> np.ndarray:
    """Fog (ImageNet-C): clip((x + s·P) · M / (M + s)), P a plasma fractal, M = max(x).

    P is :func:`plasma_fractal` with the given ``decay`` (smaller: rougher), cropped to the
    image from the top-left of a power-of-two map as in the reference. ImageNet-C's
    (strength, decay) levels (1.5, 2) (2, 2) (2.5, 1.7) (2.5, 1.5) (3, 1.4) are the knots
    at t = .2 … 1. One set of random draws serves every level (the reference redraws the
    fractal per call), so the fog keeps its layout and thickens.

    Examples
    --------
    >>> img = np.full((4, 4, 1), 0.5, np.float32)
    >>> out = fog(img, strength=1.0, decay=2.0, field=_fog_field(np.random.default_rng(0), img.shape))
    >>> bool(out.min() >= 1 / 6 - 1e-6 and out.max() <= 0.5)
    True
    """
    if strength <= 0:
        return image.copy()
    h, w = image.shape[:2]
    p = plasma_fractal(field, decay)[:h, :w].astype(np.float32)
    top = np.float32(image.max())
    s = np.float32(strength)
    out = (image + s * p[:, :, None]) * (top / (top + s))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


register(
    Op(
        "fog",
        fog,
        (
            Param("strength", 0.0, 3.0, curve="knots", knots=_knots(1.5, 2, 2.5, 2.5, 3, at0=0.0),
                  low=0.0, high=100.0, help="weight of the fog layer"),
            Param("decay", 2.0, 1.4, curve="knots", knots=_knots(2, 2, 1.7, 1.5, 1.4, at0=2.0),
                  low=1.01, high=16.0, help="per-stage amplitude decay of the fractal (lower: rougher)"),
        ),
        family="weather",
        description="fog: plasma-fractal haze (ImageNet-C fog)",
        version=1,
        field=_fog_field,
    )
)


# -- spatter -------------------------------------------------------------------------------

#: Colours of ImageNet-C's spatter: pale turquoise water and mud brown (RGB, 0-255).
_WATER = np.array([175, 238, 238], np.float32) / 255.0
_MUD = np.array([63, 42, 20], np.float32) / 255.0
_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)


def _spatter_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal((shape[0], shape[1]), dtype=np.float32)


def _liquid(field: np.ndarray, loc: float, scale: float, sigma: float, threshold: float) -> np.ndarray:
    liquid = (np.float32(loc) + np.float32(scale) * field)[:, :, None]
    liquid = gaussian_truncate4(liquid, sigma)[:, :, 0]
    liquid[liquid < threshold] = 0.0
    return liquid


def _water(image: np.ndarray, liquid: np.ndarray, intensity: float) -> np.ndarray:
    # ImageNet-C's water: an embossed, edge-distance-shaded version of the liquid layer.
    lq = np.clip(liquid * 255.0, 0, 255).astype(np.uint8)
    dist = (255 - cv2.Canny(lq, 50, 150)).astype(np.uint8)
    dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
    dist = cv2.equalizeHist(dist)
    dist = cv2.filter2D(dist, cv2.CV_8U, _EMBOSS)
    dist = cv2.blur(dist, (3, 3)).astype(np.float32)
    m = lq.astype(np.float32) * dist
    top = float(m.max())
    if top <= 0:
        return image.copy()
    m *= np.float32(intensity / top)
    if image.shape[2] == 1:
        add = (m[:, :, None] * _WATER) @ np.array([0.2989, 0.587, 0.114], np.float32)
        return np.clip(image + add[:, :, None], 0.0, 1.0)
    return np.clip(image + m[:, :, None] * _WATER, 0.0, 1.0)


def _mud(image: np.ndarray, liquid: np.ndarray, threshold: float, mud_sigma: float) -> np.ndarray:
    m = (liquid > threshold).astype(np.float32)[:, :, None]
    m = gaussian_truncate4(m, mud_sigma)
    m[m < 0.8] = 0.0
    color = _MUD if image.shape[2] == 3 else np.array([float(_MUD @ np.array([0.2989, 0.587, 0.114]))], np.float32)
    return np.clip(image * (1.0 - m) + color * m, 0.0, 1.0)


def spatter(
    image: np.ndarray,
    *,
    loc: float,
    scale: float,
    sigma: float,
    threshold: float,
    intensity: float,
    mud: float,
    mud_sigma: float = 1.5,
    field: np.ndarray,
) -> np.ndarray:
    """Spatter (ImageNet-C): water drops (levels 1–3) or mud splashes (levels 4–5).

    The liquid layer is loc + scale·z (z the sample's normal field) blurred by ``sigma`` px
    (scikit-image's Gaussian) and zeroed below ``threshold``. Water: the layer shaded by an
    embossed distance-to-edge map (Canny, distance transform, histogram equalisation, as
    the reference) adds ``intensity`` × pale turquoise; mud: where the layer is wet, a mask
    blurred by ``mud_sigma`` and cut below .8 blends in mud brown. ``mud`` ∈ [0, 1] mixes
    the two results (the reference switches: 0 at levels 1–3, 1 at 4–5). Levels
    (loc, scale, sigma, threshold, intensity | mud σ, mud) = (.65, .3, 4, .69, .6, 0)
    (.65, .3, 3, .68, .6, 0) (.65, .3, 2, .68, .5, 0) (.65, .3, 1, .65, 1.5, 1)
    (.67, .4, 1, .65, 1.5, 1). Not monotone: the switch from water to mud and the
    shrinking blur reshape the drops between levels, as in the reference.

    Examples
    --------
    >>> img = np.full((16, 16, 3), 0.5, np.float32)
    >>> z = np.zeros((16, 16), np.float32)
    >>> float(spatter(img, loc=0.65, scale=0.3, sigma=4, threshold=0.69, intensity=0.6, mud=0.0, field=z).max())
    0.5
    """
    if intensity <= 0 and mud <= 0:
        return image.copy()
    liquid = _liquid(field, loc, scale, sigma, threshold)
    w = float(np.clip(mud, 0.0, 1.0))
    out = np.zeros_like(image)
    if w < 1.0:
        out += np.float32(1.0 - w) * _water(image, liquid, intensity)
    if w > 0.0:
        out += np.float32(w) * _mud(image, liquid, threshold, mud_sigma)
    return restore_channels(np.clip(out, 0.0, 1.0), image)


register(
    Op(
        "spatter",
        spatter,
        (
            Param("loc", 0.65, 0.67, curve="knots", knots=_knots(0.65, 0.65, 0.65, 0.65, 0.67, at0=0.65),
                  low=-10.0, high=10.0, help="mean of the liquid noise"),
            Param("scale", 0.3, 0.4, curve="knots", knots=_knots(0.3, 0.3, 0.3, 0.3, 0.4, at0=0.3),
                  low=0.0, high=10.0, help="std of the liquid noise"),
            Param("sigma", 4.0, 1.0, curve="knots", knots=_knots(4, 3, 2, 1, 1, at0=4.0),
                  low=0.0, high=64.0, unit="px", help="blur of the liquid noise (drop size)"),
            Param("threshold", 0.69, 0.65, curve="knots",
                  knots=_knots(0.69, 0.68, 0.68, 0.65, 0.65, at0=0.69), low=-10.0, high=10.0,
                  help="liquid below this is dry"),
            Param("intensity", 0.0, 0.5, curve="knots", knots=_knots(0.6, 0.6, 0.5, 0.5, 0.5, at0=0.0),
                  low=0.0, high=10.0, help="strength of the water colour"),
            Param("mud", 0.0, 1.0, curve="knots", knots=_knots(0, 0, 0, 1, 1, at0=0.0),
                  low=0.0, high=1.0, help="0 water, 1 mud, between: a mix"),
            Param("mud_sigma", 1.5, curve="constant", low=0.0, high=64.0, unit="px",
                  help="blur of the mud mask"),
        ),
        family="weather",
        description="spatter: water drops or mud splashes (ImageNet-C spatter)",
        version=1,
        monotone=False,
        field=_spatter_field,
    )
)
