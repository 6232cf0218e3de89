"""Sampling family: resolution loss resampled back to the input size.

``pixelate`` averages blocks (area down, nearest up), as ImageNet-C's pixelate;
``aliasing`` decimates *without* a prefilter (nearest down), so fine detail folds into
false patterns (moiré, jaggies) instead of being averaged away.
"""

from __future__ import annotations

import cv2
import numpy as np

from degrade.ops._util import restore_channels
from degrade.registry import Op, Param, register

__all__ = ["aliasing", "pixelate"]

# Centre-aligned nearest neighbour: destination pixel i reads source floor((i + 0.5) · src/dst),
# the same rule as PIL's NEAREST (plain INTER_NEAREST is shifted by half a pixel).
_NEAREST = cv2.INTER_NEAREST_EXACT


def _resize(image: np.ndarray, w: int, h: int, interpolation: int) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=interpolation)


def pixelate(image: np.ndarray, *, scale: float) -> np.ndarray:
    """Box-average down to ``scale`` of the size, then nearest-neighbour back up.

    The small size is ⌊W·scale⌋ × ⌊H·scale⌋ (at least 1), truncated as in ImageNet-C
    (PIL ``BOX`` down, ``NEAREST`` up; here OpenCV ``INTER_AREA`` down, which averages the
    same areas, and centre-aligned nearest up). When the sizes divide, every block is
    constant and equal to the mean of its pixels. The default curve passes through
    ImageNet-C's levels .6 .5 .4 .3 .25 at t = .2 … 1. Not monotone: the sizes are whole
    pixels, and a block grid that divides the image (or lines up with its structure, such
    as edges or a periodic pattern) loses less than a slightly finer grid that does not,
    so PSNR vs the clean image can rise between steps; the calibrated schedule fixes that.

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
    small = _resize(image, sw, sh, cv2.INTER_AREA)
    out = restore_channels(_resize(small, w, h, _NEAREST), image)
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
