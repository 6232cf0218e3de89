"""Realistic family: the stages of Real-ESRGAN's second-order degradation (Wang et al. 2021).

Real-ESRGAN draws every setting at random per training sample (kernel type, size and shape,
resize scale and interpolation, noise kind and strength, JPEG quality). Here each op draws
those choices once per sample from its keyed field, as uniform numbers, and maps them onto
the ranges given as parameters, so a recipe replays them exactly. Severity enters through
``prob``: the op acts on a sample when the sample's own uniform number lies below ``prob``
(0 at t = 0, 1 at t = 1 by default), so a sample's step is either untouched or fully
degraded and damage never goes back. ``pipelines/realesrgan.yaml`` chains the ops as the
paper does (first order at step 1, second order at step 2, through per-step ``prob``
lists).

Differences from the reference (xinntao/Real-ESRGAN, BasicSR): every resize resamples back
to the input size straight away, so the noise and JPEG that follow act at the input
resolution; JPEG is libjpeg through Pillow (integer quality) instead of the differentiable
DiffJPEG; the input is not unsharp-masked first; draws are per sample, not per batch.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from degrade.ops._util import restore_channels
from degrade.ops.compression import decode_jpeg, encode_jpeg
from degrade.ops.noise import poisson_quantile
from degrade.registry import Op, Param, register

__all__ = [
    "KERNEL_PROBS",
    "KERNEL_TYPES",
    "circular_lowpass_kernel",
    "mixed_kernel",
    "realesrgan_blur",
    "realesrgan_final",
    "realesrgan_jpeg",
    "realesrgan_noise",
    "realesrgan_resize",
]

#: Real-ESRGAN's kernel types and their probabilities (train_realesrgan_x4plus.yml).
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
KERNEL_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
#: Interpolations a resize draws from, with equal chances (Real-ESRGAN's area/bilinear/bicubic).
RESIZE_MODES = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def _prob_param(default: float = 1.0) -> Param:
    return Param("prob", 0.0, default, low=0.0, high=1.0,
                 help="chance that the op acts on a sample (its own fixed draw decides)")


def _uniforms(n: int):
    def field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.random(n)

    return field


def _between(lo: float, hi: float, u: float) -> float:
    return float(lo) + (float(hi) - float(lo)) * float(u)


def _odd_sizes(lo: int, hi: int) -> list[int]:
    sizes = [k for k in range(int(lo), int(hi) + 1) if k % 2 == 1]
    return sizes or [max(1, int(lo) | 1)]


# -- kernels -------------------------------------------------------------------------------


def circular_lowpass_kernel(cutoff: float, size: int) -> np.ndarray:
    """The 2-D sinc (jinc) kernel of an ideal circular low-pass filter, normalised.

    k(r) = ω·J₁(ω r)/(2π r), k(0) = ω²/(4π), on a ``size``×``size`` grid centred on the
    middle pixel (BasicSR's ``circular_lowpass_kernel``).

    Examples
    --------
    >>> k = circular_lowpass_kernel(np.pi / 2, 7)
    >>> k.shape, round(float(k.sum()), 6), bool(k[3, 3] == k.max())
    ((7, 7), 1.0, True)
    """
    from scipy import special  # here, not at import: keeps build workers' start-up short

    c = (size - 1) / 2.0
    ax = np.arange(size, dtype=np.float64) - c
    r = np.hypot(ax[:, None], ax[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2.0 * np.pi * r)
    k[r == 0] = cutoff**2 / (4.0 * np.pi)
    return (k / k.sum()).astype(np.float32)


def mixed_kernel(
    kind: str, size: int, sigma_x: float, sigma_y: float, rotation: float, beta: float = 1.0
) -> np.ndarray:
    """One of Real-ESRGAN's blur kernels, normalised to sum 1.

    With q = xᵀΣ⁻¹x, Σ = R(rotation)·diag(σx², σy²)·Rᵀ on the centred integer grid:
    Gaussian exp(−q/2) (``iso``, ``aniso``), generalized Gaussian exp(−q^β/2), plateau
    1/(1 + q^β). ``*_iso`` kinds use σy = σx and no rotation.

    Examples
    --------
    >>> k = mixed_kernel("iso", 7, 1.0, 1.0, 0.0)
    >>> round(float(k.sum()), 6), bool(np.allclose(k, k.T))
    (1.0, True)
    """
    if kind.endswith("_iso") or kind == "iso":
        sigma_y, rotation = sigma_x, 0.0
    half = size // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    c, s = math.cos(rotation), math.sin(rotation)
    u = np.array([[c, -s], [s, c]])
    cov = u @ np.diag([sigma_x**2, sigma_y**2]) @ u.T
    inv = np.linalg.inv(cov)
    q = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
    if kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, beta))
    elif kind.startswith("plateau"):
        k = 1.0 / (np.power(q, beta) + 1.0)
    else:
        k = np.exp(-0.5 * q)
    return (k / k.sum()).astype(np.float32)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # BasicSR's filter2D pads by reflection (without repeating the edge).
    out = cv2.filter2D(np.ascontiguousarray(image), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return restore_channels(np.clip(out, 0.0, 1.0), image)


# -- blur ----------------------------------------------------------------------------------


def realesrgan_blur(
    image: np.ndarray,
    *,
    size_min: int,
    size_max: int,
    sigma_min: float,
    sigma_max: float,
    betag_min: float,
    betag_max: float,
    betap_min: float,
    betap_max: float,
    sinc_prob: float,
    prob: float,
    field: np.ndarray,
) -> np.ndarray:
    """Real-ESRGAN's random blur: a kernel drawn per sample from its mixture of kinds.

    The field's uniform numbers pick: whether the op acts (< ``prob``), an odd kernel size in
    [``size_min``, ``size_max``], a sinc kernel with chance ``sinc_prob`` (cutoff uniform in
    [π/3, π], or [π/5, π] for sizes ≥ 13), else a kind by :data:`KERNEL_PROBS` with σx, σy
    uniform in [``sigma_min``, ``sigma_max``], a rotation in [−π, π] and a shape β in
    [β_min, 1] or [1, β_max] (even chances; generalized: ``betag``, plateau: ``betap``).
    Applied with reflect padding. Each sample keeps its kernel at every step.

    Examples
    --------
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> out = realesrgan_blur(img, size_min=7, size_max=21, sigma_min=0.2, sigma_max=3, betag_min=0.5,
    ...                       betag_max=4, betap_min=1, betap_max=2, sinc_prob=0.1, prob=1.0, field=np.full(10, 0.3))
    >>> bool(np.allclose(out, 0.5))
    True
    """
    u = field
    if not u[0] < prob:
        return image.copy()
    sizes = _odd_sizes(size_min, size_max)
    size = sizes[min(int(u[1] * len(sizes)), len(sizes) - 1)]
    if u[2] < sinc_prob:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        kernel = circular_lowpass_kernel(_between(lo, math.pi, u[3]), size)
    else:
        cum = np.cumsum(KERNEL_PROBS)
        kind = KERNEL_TYPES[min(int(np.searchsorted(cum, u[4] * cum[-1], side="right")), len(cum) - 1)]
        sx = _between(sigma_min, sigma_max, u[5])
        sy = _between(sigma_min, sigma_max, u[6])
        rot = _between(-math.pi, math.pi, u[7])
        lo, hi = (betag_min, betag_max) if kind.startswith("generalized") else (betap_min, betap_max)
        beta = _between(lo, 1.0, u[9]) if u[8] < 0.5 else _between(1.0, hi, u[9])
        kernel = mixed_kernel(kind, size, max(sx, 1e-3), max(sy, 1e-3), rot, beta)
    return _filter(image, kernel)


register(
    Op(
        "realesrgan_blur",
        realesrgan_blur,
        (
            Param("size_min", 7, kind="int", curve="constant", low=1, high=63, unit="px",
                  help="smallest kernel size (odd sizes are drawn)"),
            Param("size_max", 21, kind="int", curve="constant", low=1, high=63, unit="px",
                  help="largest kernel size"),
            Param("sigma_min", 0.2, curve="constant", low=0.01, high=32.0, unit="px", help="σ range, low end"),
            Param("sigma_max", 3.0, curve="constant", low=0.01, high=32.0, unit="px", help="σ range, high end"),
            Param("betag_min", 0.5, curve="constant", low=0.05, high=16.0, help="generalized Gaussian β, low end"),
            Param("betag_max", 4.0, curve="constant", low=0.05, high=16.0, help="generalized Gaussian β, high end"),
            Param("betap_min", 1.0, curve="constant", low=0.05, high=16.0, help="plateau β, low end"),
            Param("betap_max", 2.0, curve="constant", low=0.05, high=16.0, help="plateau β, high end"),
            Param("sinc_prob", 0.1, curve="constant", low=0.0, high=1.0, help="chance of a sinc kernel"),
            _prob_param(),
        ),
        family="realistic",
        description="Real-ESRGAN blur: per-sample random kernel (Gaussian, generalized, plateau, sinc)",
        version=1,
        field=_uniforms(10),
    )
)


# -- resize --------------------------------------------------------------------------------


def _size(n: int, f: float) -> int:
    return max(1, int(n * f))


def realesrgan_resize(
    image: np.ndarray,
    *,
    up_prob: float,
    down_prob: float,
    scale_min: float,
    scale_max: float,
    base: float = 1.0,
    prob: float,
    field: np.ndarray,
) -> np.ndarray:
    """Real-ESRGAN's random resize, resampled back to the input size.

    Up with chance ``up_prob`` (scale uniform in [1, ``scale_max``]), down with chance
    ``down_prob`` (scale in [``scale_min``, 1]), else kept; the image is resized to
    ⌊``base``·scale·size⌋ with area, bilinear or bicubic interpolation (even chances) and
    back to its size with another such draw. ``base`` is the size the scale is relative to
    (Real-ESRGAN's second order resizes relative to the output size, 1/4 for ×4).

    Examples
    --------
    >>> img = np.full((8, 8, 1), 0.5, np.float32)
    >>> realesrgan_resize(img, up_prob=0.2, down_prob=0.7, scale_min=0.15, scale_max=1.5, prob=1.0,
    ...                   field=np.full(6, 0.5)).shape
    (8, 8, 1)
    """
    u = field
    if not u[0] < prob:
        return image.copy()
    keep = max(0.0, 1.0 - up_prob - down_prob)
    if u[1] < keep:
        scale = 1.0
    elif u[1] < keep + up_prob:
        scale = _between(1.0, scale_max, u[2])
    else:
        scale = _between(scale_min, 1.0, u[2])
    h, w = image.shape[:2]
    f = float(base) * scale
    sh, sw = _size(h, f), _size(w, f)
    if (sh, sw) == (h, w):
        return image.copy()
    down = RESIZE_MODES[min(int(u[3] * 3), 2)]
    back = RESIZE_MODES[min(int(u[4] * 3), 2)]
    small = cv2.resize(np.ascontiguousarray(image), (sw, sh), interpolation=down)
    out = cv2.resize(small, (w, h), interpolation=back)
    return restore_channels(np.clip(out, 0.0, 1.0), image)


register(
    Op(
        "realesrgan_resize",
        realesrgan_resize,
        (
            Param("up_prob", 0.2, curve="constant", low=0.0, high=1.0, help="chance of upscaling"),
            Param("down_prob", 0.7, curve="constant", low=0.0, high=1.0, help="chance of downscaling"),
            Param("scale_min", 0.15, curve="constant", low=0.01, high=1.0, unit="x", help="smallest scale"),
            Param("scale_max", 1.5, curve="constant", low=1.0, high=16.0, unit="x", help="largest scale"),
            Param("base", 1.0, curve="constant", low=0.01, high=1.0, unit="x",
                  help="size the scale is relative to, as a fraction of the input"),
            _prob_param(),
        ),
        family="realistic",
        description="Real-ESRGAN resize: random scale and interpolation, back to size",
        version=1,
        field=_uniforms(6),
    )
)


# -- noise ---------------------------------------------------------------------------------


def _noise_field(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    h, w, c = shape
    return {
        "u": rng.random(6),
        "z": rng.standard_normal((h, w, c), dtype=np.float32),
        "p": rng.random((h, w, c)),
    }


def realesrgan_noise(
    image: np.ndarray,
    *,
    gaussian_prob: float,
    sigma_min: float,
    sigma_max: float,
    scale_min: float,
    scale_max: float,
    gray_prob: float,
    prob: float,
    field: dict[str, np.ndarray],
) -> np.ndarray:
    """Real-ESRGAN's random noise: Gaussian (chance ``gaussian_prob``) or Poisson, maybe grey.

    Gaussian: σ uniform in [``sigma_min``, ``sigma_max``] on the 0–255 scale. Poisson
    (BasicSR's): with the image rounded to 8 bits and v = 2^⌈log₂(number of distinct
    values)⌉, noise = Poisson(x·v)/v − x, times a scale uniform in [``scale_min``,
    ``scale_max``]. With chance ``gray_prob`` the noise is one value per pixel (computed on
    the grey image for Poisson). The normal and uniform numbers behind the noise are the
    sample's field (Poisson by inverting its CDF), so steps reuse them.

    Examples
    --------
    >>> img = np.full((4, 4, 3), 0.5, np.float32)
    >>> f = {"u": np.array([0.0, 0.0, 1.0, 0.9, 0.0, 0.0]), "z": np.ones((4, 4, 3), np.float32),
    ...      "p": np.full((4, 4, 3), 0.5)}
    >>> round(float(realesrgan_noise(img, gaussian_prob=0.5, sigma_min=1, sigma_max=25.5, scale_min=0.05,
    ...                              scale_max=3, gray_prob=0.4, prob=1.0, field=f)[0, 0, 0]), 6)
    0.6
    """
    u = field["u"]
    if not u[0] < prob:
        return image.copy()
    gray = bool(u[3] < gray_prob)
    if u[1] < gaussian_prob:
        sigma = _between(sigma_min, sigma_max, u[2]) / 255.0
        z = field["z"]
        noise = (z[:, :, :1] if gray else z) * np.float32(sigma)
    else:
        scale = _between(scale_min, scale_max, u[2])
        src = image
        if gray and image.shape[2] == 3:
            src = (image @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
        src = np.clip(np.round(src * 255.0), 0, 255) / 255.0
        levels = len(np.unique(src))
        vals = 2.0 ** math.ceil(math.log2(levels)) if levels > 1 else 1.0
        p = field["p"][:, :, : src.shape[2]]
        out = poisson_quantile(src.astype(np.float64) * vals, np.clip(p, 1e-12, 1 - 1e-12)) / vals
        noise = ((out - src) * scale).astype(np.float32)
    return np.clip(image + noise, 0.0, 1.0).astype(np.float32)


register(
    Op(
        "realesrgan_noise",
        realesrgan_noise,
        (
            Param("gaussian_prob", 0.5, curve="constant", low=0.0, high=1.0,
                  help="chance of Gaussian noise (else Poisson)"),
            Param("sigma_min", 1.0, curve="constant", low=0.0, high=255.0, unit="/255", help="Gaussian σ, low end"),
            Param("sigma_max", 30.0, curve="constant", low=0.0, high=255.0, unit="/255", help="Gaussian σ, high end"),
            Param("scale_min", 0.05, curve="constant", low=0.0, high=100.0, help="Poisson scale, low end"),
            Param("scale_max", 3.0, curve="constant", low=0.0, high=100.0, help="Poisson scale, high end"),
            Param("gray_prob", 0.4, curve="constant", low=0.0, high=1.0, help="chance of grey noise"),
            _prob_param(),
        ),
        family="realistic",
        description="Real-ESRGAN noise: random Gaussian or Poisson, colour or grey",
        version=1,
        field=_noise_field,
    )
)


# -- JPEG ----------------------------------------------------------------------------------


def _jpeg(image: np.ndarray, quality: float) -> np.ndarray:
    q = int(np.clip(round(quality), 1, 100))
    out = decode_jpeg(encode_jpeg(image, quality=q)).astype(np.float32) / 255.0
    return out if out.ndim == 3 else out[:, :, None]


def realesrgan_jpeg(
    image: np.ndarray, *, quality_min: float, quality_max: float, prob: float, field: np.ndarray
) -> np.ndarray:
    """Real-ESRGAN's JPEG: quality drawn uniformly in [``quality_min``, ``quality_max``].

    Encoded with Pillow (libjpeg, 4:2:0) at the rounded quality; the reference uses
    DiffJPEG with the float quality.

    Examples
    --------
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> (realesrgan_jpeg(img, quality_min=30, quality_max=95, prob=1.0, field=np.zeros(2))[0, 0] * 255).round().tolist()
    [128.0, 128.0, 128.0]
    """
    if not field[0] < prob:
        return image.copy()
    return _jpeg(image, _between(quality_min, quality_max, field[1]))


register(
    Op(
        "realesrgan_jpeg",
        realesrgan_jpeg,
        (
            Param("quality_min", 30.0, curve="constant", low=1.0, high=100.0, unit="quality",
                  help="JPEG quality, low end"),
            Param("quality_max", 95.0, curve="constant", low=1.0, high=100.0, unit="quality",
                  help="JPEG quality, high end"),
            _prob_param(),
        ),
        family="realistic",
        description="Real-ESRGAN JPEG: random quality per sample",
        version=1,
        field=_uniforms(2),
    )
)


# -- final stage ---------------------------------------------------------------------------


def realesrgan_final(
    image: np.ndarray,
    *,
    scale: float,
    sinc_prob: float,
    size_min: int,
    size_max: int,
    quality_min: float,
    quality_max: float,
    prob: float,
    field: np.ndarray,
) -> np.ndarray:
    """Real-ESRGAN's last stage: [resize to 1/``scale`` + sinc] and JPEG, in a random order.

    With even chances: resize down to ⌊size/``scale``⌋ (area, bilinear or bicubic), filter
    with a sinc kernel (chance ``sinc_prob``; odd size in [``size_min``, ``size_max``],
    cutoff uniform in [π/3, π]), then JPEG at a quality in [``quality_min``,
    ``quality_max``]; or JPEG first at the current size, then resize and sinc. The result
    is brought back to the input size with bicubic interpolation (the low-resolution image
    as an upsampled frame) and rounded to 8 bits as the reference's last line.

    Examples
    --------
    >>> img = np.full((16, 16, 3), 0.5, np.float32)
    >>> out = realesrgan_final(img, scale=4, sinc_prob=0.8, size_min=7, size_max=21, quality_min=30,
    ...                        quality_max=95, prob=1.0, field=np.full(7, 0.5))
    >>> out.shape, bool(np.allclose(out, 0.5, atol=1 / 255))
    ((16, 16, 3), True)
    """
    u = field
    if not u[0] < prob:
        return image.copy()
    h, w = image.shape[:2]
    sh, sw = _size(h, 1.0 / float(scale)), _size(w, 1.0 / float(scale))
    mode = RESIZE_MODES[min(int(u[3] * 3), 2)]
    quality = _between(quality_min, quality_max, u[6])
    kernel = None
    if u[2] < sinc_prob:
        sizes = _odd_sizes(size_min, size_max)
        size = sizes[min(int(u[4] * len(sizes)), len(sizes) - 1)]
        kernel = circular_lowpass_kernel(_between(math.pi / 3, math.pi, u[5]), size)

    def resize_sinc(x: np.ndarray) -> np.ndarray:
        y = restore_channels(cv2.resize(np.ascontiguousarray(x), (sw, sh), interpolation=mode), x)
        return _filter(y, kernel) if kernel is not None else np.clip(y, 0.0, 1.0)

    x = _jpeg(resize_sinc(image), quality) if u[1] < 0.5 else resize_sinc(_jpeg(image, quality))
    out = restore_channels(cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC), image)
    return (np.round(np.clip(out, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


register(
    Op(
        "realesrgan_final",
        realesrgan_final,
        (
            Param("scale", 4.0, curve="constant", low=1.0, high=16.0, unit="x",
                  help="super-resolution factor: the image is brought to 1/scale"),
            Param("sinc_prob", 0.8, curve="constant", low=0.0, high=1.0, help="chance of the final sinc filter"),
            Param("size_min", 7, kind="int", curve="constant", low=1, high=63, unit="px",
                  help="smallest sinc kernel size"),
            Param("size_max", 21, kind="int", curve="constant", low=1, high=63, unit="px",
                  help="largest sinc kernel size"),
            Param("quality_min", 30.0, curve="constant", low=1.0, high=100.0, unit="quality",
                  help="JPEG quality, low end"),
            Param("quality_max", 95.0, curve="constant", low=1.0, high=100.0, unit="quality",
                  help="JPEG quality, high end"),
            _prob_param(),
        ),
        family="realistic",
        description="Real-ESRGAN final stage: downscale + sinc and JPEG in random order",
        version=1,
        field=_uniforms(7),
    )
)
