"""Sampling family: resolution loss resampled back to the input size.

``pixelate`` averages blocks (area down, nearest up), as ImageNet-C's pixelate;
``aliasing`` decimates *without* a prefilter (nearest down), so fine detail folds into
false patterns (moiré, jaggies) instead of being averaged away. ``elastic_transform``
resamples the image along a smooth random displacement field (ImageNet-C's elastic);
``resample`` is a plain down-then-up resize with chosen interpolations (Cold Diffusion's
super-resolution degradation: bicubic down, nearest up).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from degrade.ops._util import restore_channels
from degrade.registry import Op, Param, register

__all__ = ["aliasing", "elastic_displacement", "elastic_transform", "pixelate", "resample"]

# Centre-aligned nearest neighbour: destination pixel i reads source floor((i + 0.5) · src/dst),
# the same rule as PIL's NEAREST (plain INTER_NEAREST is shifted by half a pixel).
_NEAREST = cv2.INTER_NEAREST_EXACT


def _resize(image: np.ndarray, w: int, h: int, interpolation: int) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=interpolation)


def pixelate(image: np.ndarray, *, scale: float) -> np.ndarray:
    """Box-average down to ``scale`` of the size, then nearest-neighbour back up.

    The small size is ⌊W·scale⌋ × ⌊H·scale⌋ (at least 1), truncated as in ImageNet-C, and
    the resampling is ImageNet-C's too: PIL ``BOX`` down (each small pixel the mean of the
    whole pixels whose centres fall in its box), PIL ``NEAREST`` up, here on float32 planes.
    When the sizes divide, every block is constant and equal to the mean of its pixels. The
    default curve passes through ImageNet-C's levels .6 .5 .4 .3 .25 at t = .2 … 1. Not
    monotone: the sizes are whole pixels, and a block grid that divides the image (or lines
    up with its structure, such as edges or a periodic pattern) loses less than a slightly
    finer grid that does not, so PSNR vs the clean image can rise between steps; the
    calibrated schedule fixes that.

    Examples
    --------
    >>> img = np.arange(16, dtype=np.float32).reshape(4, 4, 1) / 15
    >>> (pixelate(img, scale=0.5)[:, :, 0] * 15).round(2).tolist()[0]
    [2.5, 2.5, 4.5, 4.5]
    """
    h, w = image.shape[:2]
    sh, sw = max(1, int(h * scale)), max(1, int(w * scale))
    if (sh, sw) == (h, w):
        return image.copy()
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(image[:, :, c]), mode="F")
        small = plane.resize((sw, sh), Image.Resampling.BOX)
        out[:, :, c] = np.asarray(small.resize((w, h), Image.Resampling.NEAREST), dtype=np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def aliasing(image: np.ndarray, *, factor: float, upsample: str = "nearest") -> np.ndarray:
    """Decimate by ``factor`` without anti-aliasing, then resample back to the input size.

    Down: nearest neighbour to round(H/factor) × round(W/factor) (at least 1), i.e. one
    pixel kept near the centre of each factor × factor cell and the rest dropped. Up:
    ``"nearest"`` (default: blocks, the same up-path as :func:`pixelate`, so the two differ
    only by the missing prefilter) or ``"bilinear"`` (smooth reconstruction that shows the
    moiré more plainly). Not monotone: which pixels survive depends on how the sampling
    grid falls on the image's detail, so a larger factor can land on a grid that happens to
    match the content better (PSNR vs the clean image can rise between steps).

    Examples
    --------
    >>> img = np.arange(16, dtype=np.float32).reshape(4, 4, 1) / 15
    >>> (aliasing(img, factor=2.0)[:, :, 0] * 15).round().astype(int).tolist()[0]
    [5, 5, 7, 7]
    """
    h, w = image.shape[:2]
    sh, sw = max(1, round(h / factor)), max(1, round(w / factor))
    if (sh, sw) == (h, w):
        return image.copy()
    small = _resize(image, sw, sh, _NEAREST)
    up = _NEAREST if upsample == "nearest" else cv2.INTER_LINEAR
    out = restore_channels(_resize(small, w, h, up), image)
    return np.clip(out, 0.0, 1.0, out=out)


register(
    Op(
        "pixelate",
        pixelate,
        (
            Param("scale", 1.0, 0.25, curve="knots",
                  knots=((0.0, 1.0), (0.2, 0.6), (0.4, 0.5), (0.6, 0.4), (0.8, 0.3), (1.0, 0.25)),
                  low=0.001, high=1.0, unit="x", help="size of the low-resolution image, as a fraction"),
        ),
        family="sampling",
        description="block averaging: area down, nearest up (ImageNet-C pixelate)",
        monotone=False,
    )
)

register(
    Op(
        "aliasing",
        aliasing,
        (
            Param("factor", 1.0, 4.0, curve="geometric", low=1.0, high=64.0, unit="x",
                  help="decimation factor (no anti-aliasing)"),
            Param("upsample", "nearest", kind="choice", choices=("nearest", "bilinear"),
                  help="how the decimated image is brought back to size"),
        ),
        family="sampling",
        description="decimation without anti-aliasing, back to size",
        monotone=False,
    )
)


# -- elastic transform ---------------------------------------------------------------------


def _elastic_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Two planes (dx, dy) of uniform numbers in [-1, 1): the raw, unsmoothed displacement.
    return rng.uniform(-1.0, 1.0, size=(2, shape[0], shape[1])).astype(np.float32)


def elastic_displacement(
    field: np.ndarray, *, alpha: float, sigma: float, max_shift: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the smooth displacement (dx, dy) in pixels of :func:`elastic_transform`.

    Each plane of ``field`` (uniform in [−1, 1)) is scaled to ±``max_shift``·H px, smoothed
    by a Gaussian of std ``sigma``·(H, W) px (reflect padding, truncated at 3 std, as
    scikit-image's ``gaussian(..., mode="reflect", truncate=3)``) and multiplied by
    ``alpha``. The displacement is linear in ``alpha``.

    Examples
    --------
    >>> dx, dy = elastic_displacement(np.zeros((2, 4, 4), np.float32), alpha=10, sigma=0.01, max_shift=0.005)
    >>> float(abs(dx).max()), dx.shape
    (0.0, (4, 4))
    """
    h, w = field.shape[1:]
    sy, sx = float(sigma) * h, float(sigma) * w
    out = []
    for plane in field[:2]:
        d = plane.astype(np.float32) * np.float32(max_shift * h)
        if sy > 0 or sx > 0:
            ky = 2 * int(3.0 * sy + 0.5) + 1 if sy > 0 else 1
            kx = 2 * int(3.0 * sx + 0.5) + 1 if sx > 0 else 1
            d = cv2.GaussianBlur(d, (kx, ky), sigmaX=max(sx, 1e-12), sigmaY=max(sy, 1e-12),
                                 borderType=cv2.BORDER_REFLECT)
        out.append((d * np.float32(alpha)).astype(np.float32))
    return out[0], out[1]


def elastic_transform(
    image: np.ndarray, *, alpha: float, sigma: float = 0.01, max_shift: float = 0.005,
    field: np.ndarray,
) -> np.ndarray:
    """Elastic deformation (ImageNet-C, ``imagecorruptions`` version, any image size).

    out(y, x) = image(y + dy, x + dx), bilinear with reflect padding, the displacement from
    :func:`elastic_displacement`: uniform noise of ±``max_shift``·H px smoothed at
    ``sigma``·(H, W) px, times ``alpha``. The field is fixed per sample, so the
    deformation keeps its shape and grows linearly with ``alpha``. The default passes
    through the package's levels α = 250·(.05, .065, .085, .1, .12) at t = .2 … 1 with
    σ = .01 and max shift .005 of the image size. (The original ImageNet-C code instead
    uses fixed pixel values for 224 px images plus a random affine part.)

    Examples
    --------
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> fld = _elastic_field(np.random.default_rng(0), img.shape)
    >>> bool(np.allclose(elastic_transform(img, alpha=30.0, field=fld), 0.5))
    True
    """
    if alpha <= 0:
        return image.copy()
    h, w = image.shape[:2]
    dx, dy = elastic_displacement(field, alpha=alpha, sigma=sigma, max_shift=max_shift)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = cv2.remap(np.ascontiguousarray(image), gx + dx, gy + dy, interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT)
    out = restore_channels(out, image)
    return np.clip(out, 0.0, 1.0, out=out)


register(
    Op(
        "elastic_transform",
        elastic_transform,
        (
            Param("alpha", 0.0, 30.0, curve="knots",
                  knots=((0.0, 0.0), (0.2, 12.5), (0.4, 16.25), (0.6, 21.25), (0.8, 25.0), (1.0, 30.0)),
                  low=0.0, high=1000.0, help="displacement gain (imagecorruptions levels 250·.05 … 250·.12)"),
            Param("sigma", 0.01, curve="constant", low=0.0, high=1.0, unit="x side",
                  help="smoothing std as a fraction of the image size"),
            Param("max_shift", 0.005, curve="constant", low=0.0, high=1.0, unit="x height",
                  help="raw displacement range as a fraction of the image height"),
        ),
        family="sampling",
        description="elastic deformation along a smooth seeded field (ImageNet-C elastic_transform)",
        version=1,
        field=_elastic_field,
    )
)


# -- resample ------------------------------------------------------------------------------

#: Interpolations of :func:`resample` by name. ``nearest`` is OpenCV's INTER_NEAREST
#: (source pixel ⌊i·src/dst⌋, as torch's ``nearest``).
RESAMPLE_MODES = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}


def resample(image: np.ndarray, *, scale: float, down: str = "bicubic", up: str = "nearest") -> np.ndarray:
    """Resize to ``scale`` of the size with ``down``, then back to the input size with ``up``.

    The small size is ⌊H·scale⌋ × ⌊W·scale⌋ (at least 1). ``bilinear`` and ``bicubic`` are
    OpenCV's (half-pixel centres, cubic a = −0.75, no anti-aliasing: torch's
    ``F.interpolate(..., align_corners=False)``); ``area`` averages. Cold Diffusion's
    super-resolution degradation is bicubic down, nearest up, halving the size per step.
    Not monotone: sizes are whole pixels and bicubic rings, so a smaller size can land
    closer to the clean image than a slightly larger one.

    Examples
    --------
    >>> img = np.arange(16, dtype=np.float32).reshape(4, 4, 1) / 15
    >>> (resample(img, scale=0.5, down="area")[:, :, 0] * 15).round(2).tolist()[0]
    [2.5, 2.5, 4.5, 4.5]
    """
    h, w = image.shape[:2]
    sh, sw = max(1, int(h * scale)), max(1, int(w * scale))
    if (sh, sw) == (h, w):
        return image.copy()
    small = _resize(image, sw, sh, RESAMPLE_MODES[down])
    out = restore_channels(_resize(small, w, h, RESAMPLE_MODES[up]), image)
    return np.clip(out, 0.0, 1.0, out=out)


register(
    Op(
        "resample",
        resample,
        (
            Param("scale", 1.0, 0.125, curve="geometric", low=0.001, high=1.0, unit="x",
                  help="size of the low-resolution image, as a fraction"),
            Param("down", "bicubic", kind="choice", choices=tuple(RESAMPLE_MODES),
                  help="interpolation going down"),
            Param("up", "nearest", kind="choice", choices=tuple(RESAMPLE_MODES),
                  help="interpolation going back up"),
        ),
        family="sampling",
        description="resize down and back up with chosen interpolations (Cold Diffusion super-resolution)",
        version=1,
        monotone=False,
    )
)
