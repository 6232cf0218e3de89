"""Blur family: Gaussian, motion and defocus blur, and DCT heat dissipation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from degrade.ops._util import restore_channels
from degrade.registry import Op, Param, register


def gaussian_kernel_size(sigma: float, size: int = 0) -> int:
    """Return the odd kernel size used for ``sigma``: ``size`` if given, else 2·⌈3σ⌉ + 1.

    Examples
    --------
    >>> gaussian_kernel_size(1.0), gaussian_kernel_size(2.0, 11)
    (7, 11)
    """
    if size > 0:
        return int(size) | 1
    return 2 * int(np.ceil(3.0 * sigma)) + 1


#: A blur step advances from an earlier one only when both the earlier σ and the remaining σ
#: are at least this (px): from 0.8 px on, the sampled Gaussian keeps its variance (within
#: 0.05 %), so blurring by σ₁ and then σ₂ matches blurring by √(σ₁² + σ₂²) to well under
#: one 8-bit level.
ADVANCE_MIN_SIGMA = 0.8

#: How many earlier steps a blur step may advance from (the pipeline keeps them).
ADVANCE_HISTORY = 4


def blur(image: np.ndarray, *, sigma: float, kernel: int = 0) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` px and reflect padding.

    ``kernel`` fixes the kernel size (Cold Diffusion uses 11×11); 0 picks 2·⌈3σ⌉ + 1.
    In an absolute-mode sequence that starts with ``blur``, a step is computed from an
    earlier step with the small remaining σ (:func:`blur_advance`; op version 2).

    Examples
    --------
    >>> img = np.zeros((9, 9, 1), np.float32); img[4, 4] = 1
    >>> round(float(blur(img, sigma=1.0).sum()), 3)
    1.0
    """
    if sigma <= 0:
        return image.copy()
    k = gaussian_kernel_size(sigma, kernel)
    out = cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    return restore_channels(out, image)


def blur_advance(history: Sequence[tuple[Mapping[str, Any], np.ndarray]],
                 params: Mapping[str, Any]) -> np.ndarray | None:
    """A blur step from an earlier step's output: Gaussians compose, σ² adds up.

    ``history`` holds (params, output) of the sequence's latest steps on the same input,
    oldest first. The newest entry with the same σ is copied; otherwise the newest with
    σ₀ ≥ :data:`ADVANCE_MIN_SIGMA` and σ² − σ₀² ≥ :data:`ADVANCE_MIN_SIGMA`² is blurred by
    √(σ² − σ₀²): at 256 px and σ → 4 px a step costs a 7-tap blur instead of a 25-tap one.
    None (blur the input directly) when no entry qualifies or a ``kernel`` size is fixed.
    The result is within one 8-bit level of the direct blur.

    Examples
    --------
    >>> img = np.zeros((15, 15, 1), np.float32); img[7, 7] = 1
    >>> a = blur_advance([({"sigma": 1.0, "kernel": 0}, blur(img, sigma=1.0))], {"sigma": 2.0, "kernel": 0})
    >>> bool(np.abs(a - blur(img, sigma=2.0)).max() < 1e-3)
    True
    """
    if int(params.get("kernel", 0)):
        return None
    s1 = float(params["sigma"])
    floor = ADVANCE_MIN_SIGMA
    for before, previous in reversed(history):
        if int(before.get("kernel", 0)):
            continue
        s0 = float(before["sigma"])
        if s0 == s1:
            return previous.copy()
        if s0 >= floor and s1 * s1 - s0 * s0 >= floor * floor:
            return blur(previous, sigma=math.sqrt(s1 * s1 - s0 * s0))
    return None


register(
    Op(
        "blur",
        blur,
        (
            Param("sigma", 0.0, 4.0, low=0.0, high=64.0, unit="px", help="Gaussian standard deviation"),
            Param("kernel", 0, kind="int", curve="constant", low=0, high=255, unit="px",
                  help="kernel size (odd); 0 = 2·ceil(3σ)+1"),
        ),
        family="blur",
        description="Gaussian blur, reflect padding",
        version=2,
        aliases=("gaussian_blur",),
        advance=blur_advance,
        advance_history=ADVANCE_HISTORY,
    )
)


# -- motion blur ---------------------------------------------------------------------------

#: Sub-pixel step (px) at which the streak's profile is sampled and splatted: small enough
#: that the kernel changes continuously with the radius.
_MOTION_STEP = 0.125


def motion_kernel(radius: float, sigma: float, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Return the normalised motion-blur kernel and its anchor ``(x, y)``.

    As in ImageMagick's motion blur (which ImageNet-C calls): a one-sided streak of reach
    2·``radius`` px along ``angle`` degrees (counter-clockwise from +x, image y pointing
    down), weighted by exp(−s²/2σ²) at distance s. The continuous profile is integrated in
    1/8 px pieces and each piece splatted bilinearly (anti-aliased), so the kernel grows
    continuously with ``radius``. It is cropped to its support; ``anchor`` is where the
    streak starts.

    Examples
    --------
    >>> k, anchor = motion_kernel(2.0, 1.0, 0.0)
    >>> k.shape, anchor, round(float(k.sum()), 6)
    ((1, 5), (0, 0), 1.0)
    """
    reach = 2.0 * float(radius)
    if reach <= 0.0 or sigma <= 0.0:
        return np.ones((1, 1), np.float32), (0, 0)
    n_full = int(np.floor(reach / _MOTION_STEP))
    starts = np.arange(n_full + 1, dtype=np.float64) * _MOTION_STEP
    lengths = np.minimum(reach - starts, _MOTION_STEP)
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    s = starts + lengths / 2.0
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        w = lengths * np.exp(-0.5 * (s / float(sigma)) ** 2)
    if not (np.isfinite(w).all() and w.sum() > 0):
        # σ so small that every weight underflows: the limit is no blur at all.
        return np.ones((1, 1), np.float32), (0, 0)
    theta = np.deg2rad(float(angle))
    half = int(np.ceil(reach)) + 1
    x = half + s * np.cos(theta)
    y = half - s * np.sin(theta)
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    fx, fy = x - x0, y - y0
    grid = np.zeros((2 * half + 2, 2 * half + 2), np.float64)
    np.add.at(grid, (y0, x0), w * (1 - fx) * (1 - fy))
    np.add.at(grid, (y0, x0 + 1), w * fx * (1 - fy))
    np.add.at(grid, (y0 + 1, x0), w * (1 - fx) * fy)
    np.add.at(grid, (y0 + 1, x0 + 1), w * fx * fy)
    rows = np.flatnonzero(grid.any(axis=1))
    cols = np.flatnonzero(grid.any(axis=0))
    grid = grid[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    grid /= grid.sum()
    return grid.astype(np.float32), (half - int(cols[0]), half - int(rows[0]))


def motion_field(rng: np.random.Generator, shape: tuple[int, ...]) -> float:
    """Draw the motion direction: an angle in degrees, uniform in [−45, 45] (ImageNet-C).

    Examples
    --------
    >>> -45.0 <= motion_field(np.random.default_rng(0), (8, 8, 3)) <= 45.0
    True
    """
    return float(rng.uniform(-45.0, 45.0))


def motion_blur(image: np.ndarray, *, radius: float, sigma: float, field: float) -> np.ndarray:
    """Motion blur: a one-sided streak of reach 2·``radius`` px along the angle ``field``.

    Weights fall off as a Gaussian of std ``sigma`` px along the streak (ImageMagick's and so
    ImageNet-C's (radius, sigma) convention); the anti-aliased kernel is applied with
    ``cv2.filter2D`` and reflect padding (``BORDER_REFLECT_101``). The angle is drawn once
    per sample, so every step blurs along the same direction, only longer.

    Examples
    --------
    >>> img = np.full((16, 16, 3), 0.25, np.float32)
    >>> bool(np.allclose(motion_blur(img, radius=5.0, sigma=3.0, field=30.0), 0.25, atol=1e-6))
    True
    """
    kernel, anchor = motion_kernel(radius, sigma, field)
    if kernel.size == 1:
        return image.copy()
    out = cv2.filter2D(image, -1, kernel, anchor=anchor, borderType=cv2.BORDER_REFLECT_101)
    return restore_channels(np.clip(out, 0.0, 1.0), image)


# ImageNet-C motion_blur levels 1…5: (radius, sigma) = (10,3) (15,5) (15,8) (15,12) (20,15).
_MOTION_RADIUS = ((0.0, 0.0), (0.2, 10.0), (0.4, 15.0), (0.6, 15.0), (0.8, 15.0), (1.0, 20.0))
_MOTION_SIGMA = ((0.0, 0.0), (0.2, 3.0), (0.4, 5.0), (0.6, 8.0), (0.8, 12.0), (1.0, 15.0))

register(
    Op(
        "motion_blur",
        motion_blur,
        (
            Param("radius", 0.0, 20.0, curve="knots", knots=_MOTION_RADIUS, low=0.0, high=256.0,
                  unit="px", help="streak reach is 2·radius (ImageNet-C levels at t = k/5)"),
            Param("sigma", 0.0, 15.0, curve="knots", knots=_MOTION_SIGMA, low=0.0, high=256.0,
                  unit="px", help="Gaussian fall-off along the streak (ImageNet-C levels at t = k/5)"),
        ),
        family="blur",
        description="motion blur along a seeded direction (angle ~ U(-45°, 45°))",
        version=1,
        field=motion_field,
    )
)


# -- defocus blur --------------------------------------------------------------------------


def _hard_disk(n: int, half: int) -> np.ndarray:
    ax = np.arange(-half, half + 1, dtype=np.float64)
    disk = (ax[None, :] ** 2 + ax[:, None] ** 2 <= float(n) ** 2).astype(np.float64)
    return disk / disk.sum()


def disk_kernel(radius: float, alias_sigma: float) -> np.ndarray:
    """Return the normalised anti-aliased disk kernel of a defocus blur.

    At an integer radius n this is ImageNet-C's disk (pixels with x² + y² ≤ n², normalised)
    smoothed by a Gaussian of std ``alias_sigma``; between integers the two neighbouring
    disks are mixed linearly, so the kernel grows continuously with ``radius``. Unlike
    ImageNet-C the alias blur is not truncated to 3×3 / 5×5 (and never folds mass back).

    Examples
    --------
    >>> k = disk_kernel(3.0, 0.0)
    >>> k.shape, int((k > 0).sum()), round(float(k.sum()), 6)
    ((9, 9), 29, 1.0)
    """
    r = max(float(radius), 0.0)
    n = int(np.floor(r))
    frac = r - n
    pad = int(np.ceil(3.0 * alias_sigma)) if alias_sigma > 0 else 0
    half = n + 1 + pad
    k = _hard_disk(n, half)
    if frac > 0:
        k = (1.0 - frac) * k + frac * _hard_disk(n + 1, half)
    if alias_sigma > 0:
        size = 2 * pad + 1
        k = cv2.GaussianBlur(k, (size, size), sigmaX=alias_sigma, sigmaY=alias_sigma,
                             borderType=cv2.BORDER_CONSTANT)
    return (k / k.sum()).astype(np.float32)


def defocus_blur(image: np.ndarray, *, radius: float, alias_sigma: float) -> np.ndarray:
    """Defocus (lens) blur: convolution with an anti-aliased disk of ``radius`` px.

    See :func:`disk_kernel`; applied with ``cv2.filter2D`` and reflect padding
    (``BORDER_REFLECT_101``, as ImageNet-C). Deterministic.

    Examples
    --------
    >>> img = np.zeros((15, 15, 1), np.float32); img[7, 7] = 1
    >>> round(float(defocus_blur(img, radius=3.0, alias_sigma=0.5).sum()), 4)
    1.0
    """
    if radius <= 0:
        return image.copy()
    kernel = disk_kernel(radius, alias_sigma)
    out = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return restore_channels(np.clip(out, 0.0, 1.0), image)


# ImageNet-C defocus_blur levels 1…5: (radius, alias σ) = (3,.1) (4,.5) (6,.5) (8,.5) (10,.5).
_DEFOCUS_RADIUS = ((0.0, 0.0), (0.2, 3.0), (0.4, 4.0), (0.6, 6.0), (0.8, 8.0), (1.0, 10.0))
_DEFOCUS_ALIAS = ((0.0, 0.1), (0.2, 0.1), (0.4, 0.5), (1.0, 0.5))

register(
    Op(
        "defocus_blur",
        defocus_blur,
        (
            Param("radius", 0.0, 10.0, curve="knots", knots=_DEFOCUS_RADIUS, low=0.0, high=128.0,
                  unit="px", help="disk radius (ImageNet-C levels at t = k/5)"),
            Param("alias_sigma", 0.1, 0.5, curve="knots", knots=_DEFOCUS_ALIAS, low=0.0, high=8.0,
                  unit="px", help="Gaussian smoothing of the disk's edge"),
        ),
        family="blur",
        description="defocus blur with an anti-aliased disk kernel",
        version=1,
    )
)


# -- heat dissipation ----------------------------------------------------------------------


def heat_factors(height: int, width: int, sigma: float) -> np.ndarray:
    """Return the H×W damping exp(−λ_ij σ²/2), λ_ij = (πi/H)² + (πj/W)², of :func:`heat`.

    Examples
    --------
    >>> heat_factors(2, 2, 0.0).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    half_s2 = float(sigma) ** 2 / 2.0
    fy = np.exp(-((np.pi * np.arange(height) / height) ** 2) * half_s2)
    fx = np.exp(-((np.pi * np.arange(width) / width) ** 2) * half_s2)
    return fy[:, None] * fx[None, :]


def heat(image: np.ndarray, *, sigma: float) -> np.ndarray:
    """Heat dissipation (Rissanen et al., ICLR 2023): u = IDCT(exp(−λσ²/2) ⊙ DCT(u₀)).

    Orthonormal 2-D DCT-II per channel (Neumann boundaries), λ_ij = (πi/H)² + (πj/W)²:
    the heat equation run for time σ²/2, i.e. about a Gaussian blur of std ``sigma`` px
    that conserves each channel's mean. Large ``sigma`` tends to the flat mean image.
    Computed in float64 with ``scipy.fft`` (any size, single-threaded).

    Examples
    --------
    >>> img = np.zeros((8, 8, 1), np.float32); img[:, :4] = 1
    >>> round(float(heat(img, sigma=100.0).std()), 6), round(float(heat(img, sigma=2.0).mean()), 6)
    (0.0, 0.5)
    """
    if sigma <= 0:
        return image.copy()
    from scipy.fft import dctn, idctn  # here, not at import: scipy.fft takes 0.2 s to import

    h, w = image.shape[:2]
    coef = dctn(image.astype(np.float64), type=2, norm="ortho", axes=(0, 1), workers=1)
    coef *= heat_factors(h, w, sigma)[:, :, None]
    out = idctn(coef, type=2, norm="ortho", axes=(0, 1), workers=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


register(
    Op(
        "heat",
        heat,
        (
            Param("sigma", 0.5, 20.0, curve="geometric", low=0.0, high=1024.0, unit="px",
                  help="diffusion time σ²/2 (Gaussian-equivalent std), log-spaced"),
        ),
        family="blur",
        description="DCT heat dissipation (Inverse Heat Dissipation), Neumann boundaries",
        version=1,
    )
)


# -- zoom blur -----------------------------------------------------------------------------


def zoom_factors(zoom: float, step: float) -> np.ndarray:
    """Return the zoom factors ``numpy.arange(1, zoom, step)`` averaged by :func:`zoom_blur`.

    The same call as ImageNet-C's, so its levels get exactly its factors (float rounding
    included: level 1, ``arange(1, 1.11, .01)``, has 12 factors, 1.00 … 1.11).

    Examples
    --------
    >>> zoom_factors(1.31, 0.03).round(2).tolist()
    [1.0, 1.03, 1.06, 1.09, 1.12, 1.15, 1.18, 1.21, 1.24, 1.27, 1.3]
    """
    if zoom <= 1.0 or step <= 0:
        return np.ones(0)
    return np.arange(1.0, float(zoom), float(step))


def _zoom_axis(n: int, z: float) -> np.ndarray:
    # ImageNet-C's clipped_zoom along one axis: crop the central ceil(n/z) pixels, zoom them
    # by z with scipy.ndimage.zoom (order 1, corners aligned: output size round(ch·z)), and
    # trim the centre n pixels. Returns the source coordinate of each output pixel.
    ch = int(np.ceil(n / z))
    top = (n - ch) // 2
    out = round(ch * z)
    trim = (out - n) // 2
    if out <= 1:
        return np.full(n, float(top))
    return top + (np.arange(n) + trim) * ((ch - 1) / (out - 1))


def clipped_zoom(image: np.ndarray, z: float) -> np.ndarray:
    """Zoom into the centre of ``image`` by ``z`` ≥ 1 (bilinear), keeping its size.

    The sampling grid of ImageNet-C's ``clipped_zoom`` (central crop of ⌈n/z⌉ px zoomed
    corner-to-corner, centre trimmed), per axis, so non-square images work too.

    Examples
    --------
    >>> img = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    >>> bool((clipped_zoom(img, 1.0) == img).all())
    True
    """
    h, w = image.shape[:2]
    ys = _zoom_axis(h, z)
    xs = _zoom_axis(w, z)
    # An axis-aligned affine map: the source coordinate is linear in the output one.
    ay = (ys[-1] - ys[0]) / (h - 1) if h > 1 else 0.0
    ax = (xs[-1] - xs[0]) / (w - 1) if w > 1 else 0.0
    m = np.array([[ax, 0.0, xs[0]], [0.0, ay, ys[0]]], np.float64)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return restore_channels(out, image)


def zoom_blur(image: np.ndarray, *, zoom: float, step: float) -> np.ndarray:
    """Zoom blur (ImageNet-C): the mean of the image and its centre zooms by each factor.

    out = (x + Σ_z zoom_z(x)) / (n + 1) over the n factors of :func:`zoom_factors`
    (``arange(1, zoom, step)``), each zoom as :func:`clipped_zoom`. The defaults pass
    through ImageNet-C's (zoom, step) levels (1.11, .01) (1.16, .01) (1.21, .02)
    (1.26, .02) (1.31, .03) at t = .2 … 1. Bilinear sampling with OpenCV (1/32 px
    sub-pixel steps) instead of scipy: within a grey level or two of the reference. Not
    monotone: the factors are a discrete set, and where ``step`` grows faster than ``zoom``
    (between levels 4 and 5) factors drop out and the blur can lessen between steps.

    Examples
    --------
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> bool(np.allclose(zoom_blur(img, zoom=1.31, step=0.03), 0.5))
    True
    """
    zs = zoom_factors(zoom, step)
    if len(zs) == 0:
        return image.copy()
    acc = image.astype(np.float64)
    for z in zs:
        acc += clipped_zoom(image, float(z))
    out = (acc / (len(zs) + 1)).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


register(
    Op(
        "zoom_blur",
        zoom_blur,
        (
            Param("zoom", 1.0, 1.31, curve="knots",
                  knots=((0.0, 1.0), (0.2, 1.11), (0.4, 1.16), (0.6, 1.21), (0.8, 1.26), (1.0, 1.31)),
                  low=1.0, high=4.0, unit="x", help="largest zoom factor (exclusive end of the range)"),
            Param("step", 0.01, 0.03, curve="knots",
                  knots=((0.0, 0.01), (0.2, 0.01), (0.4, 0.01), (0.6, 0.02), (0.8, 0.02), (1.0, 0.03)),
                  low=0.001, high=1.0, unit="x", help="spacing of the zoom factors"),
        ),
        family="blur",
        description="zoom blur: mean of centre zooms (ImageNet-C zoom_blur)",
        version=1,
        monotone=False,
    )
)


# -- glass blur ----------------------------------------------------------------------------

#: Most shuffling passes a glass blur can make (ImageNet-C uses at most 3); the field holds
#: one offset table per pass.
GLASS_MAX_ITERATIONS = 6


def gaussian_truncate4(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur as ``skimage.filters.gaussian`` does it: radius ⌊4σ + ½⌋, edge padding.

    Examples
    --------
    >>> img = np.zeros((9, 9, 1), np.float32); img[4, 4] = 1
    >>> round(float(gaussian_truncate4(img, 1.0).sum()), 4)
    1.0
    """
    if sigma <= 0:
        return image.copy()
    k = 2 * int(4.0 * sigma + 0.5) + 1
    out = cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    return restore_channels(out, image)


def _glass_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Per pass and axis, one uniform number per pixel (16-bit): the offset for a maximum
    # displacement d is floor(u·2d) − d, so the same field serves every d.
    return rng.integers(0, 65536, size=(GLASS_MAX_ITERATIONS, 2, shape[0], shape[1]), dtype=np.uint16)


def glass_blur(
    image: np.ndarray, *, sigma: float, max_delta: int, iterations: int, field: np.ndarray
) -> np.ndarray:
    """Glass blur (ImageNet-C): Gaussian blur, local pixel shuffling, Gaussian blur again.

    As the reference, the first blur's result is truncated to 8 bits and both blurs use
    scikit-image's Gaussian (radius ⌊4σ + ½⌋, edge padding). The shuffle differs: the
    reference swaps pixels one at a time in a Python loop; here each of ``iterations``
    passes moves every pixel at once, pixel (y, x) taking the value at (y + dy, x + dx)
    with dy, dx = ⌊u·2d⌋ − d ∈ [−d, d − 1] from the sample's fixed field (d =
    ``max_delta``, the reference's ``randint(-d, d)`` range; positions clamped to the
    image). Not monotone: ImageNet-C's (σ, d, passes) levels (.7, 1, 2) (.9, 2, 1)
    (1, 2, 3) (1.1, 3, 2) (1.5, 4, 2) are not ordered by damage (level 2 shuffles once
    after level 1 shuffled twice), and a larger d redraws which offsets each pixel gets.

    Examples
    --------
    >>> img = np.full((8, 8, 1), 0.5, np.float32)
    >>> fld = _glass_field(np.random.default_rng(0), img.shape)
    >>> bool(np.allclose(glass_blur(img, sigma=1.0, max_delta=2, iterations=2, field=fld), 0.5, atol=1 / 255))
    True
    """
    if sigma <= 0 and (max_delta <= 0 or iterations <= 0):
        return image.copy()
    h, w = image.shape[:2]
    x = np.floor(gaussian_truncate4(image, sigma) * 255.0) / 255.0
    x = x.astype(np.float32)
    d = int(max_delta)
    n = min(int(iterations), GLASS_MAX_ITERATIONS)
    if d > 0 and n > 0:
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(n):
            off = (field[i].astype(np.int64) * (2 * d)) >> 16  # floor(u·2d), u = field/65536
            sy = np.clip(yy + off[0] - d, 0, h - 1)
            sx = np.clip(xx + off[1] - d, 0, w - 1)
            x = x[sy, sx]
    out = gaussian_truncate4(np.ascontiguousarray(x), sigma)
    return np.clip(out, 0.0, 1.0, out=out)


register(
    Op(
        "glass_blur",
        glass_blur,
        (
            Param("sigma", 0.0, 1.5, curve="knots",
                  knots=((0.0, 0.0), (0.2, 0.7), (0.4, 0.9), (0.6, 1.0), (0.8, 1.1), (1.0, 1.5)),
                  low=0.0, high=32.0, unit="px", help="Gaussian std of both blurs"),
            Param("max_delta", 0, 4, kind="int", curve="knots",
                  knots=((0.0, 0), (0.2, 1), (0.4, 2), (0.6, 2), (0.8, 3), (1.0, 4)),
                  low=0, high=64, unit="px", help="largest shuffle offset"),
            Param("iterations", 0, 2, kind="int", curve="knots",
                  knots=((0.0, 0), (0.2, 2), (0.4, 1), (0.6, 3), (0.8, 2), (1.0, 2)),
                  low=0, high=GLASS_MAX_ITERATIONS, help="shuffling passes"),
        ),
        family="blur",
        description="glass blur: blur, local pixel shuffle, blur (ImageNet-C glass_blur)",
        version=1,
        monotone=False,
        field=_glass_field,
    )
)
