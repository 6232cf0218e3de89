"""Image quality metrics: PSNR and SSIM per image (NumPy, OpenCV for the box filter), and a
distribution distance between two sets of images, SWD (NumPy only).

Convention: float images in [0, 1] (data range 1.0), RGB; SSIM is the mean over channels of
Wang et al.'s SSIM with a 7×7 uniform window and sample covariance — the defaults of
``skimage.metrics.structural_similarity`` — so the numbers agree with scikit-image. PSNR and
SSIM are per image; an evaluator averages the per-image values (never pools the error over a
batch: that gives another, larger number — see docs/REFERENCES "metric pitfalls").

SWD is the sliced Wasserstein distance between Laplacian-pyramid patch descriptors of two
image sets, as used for GAN evaluation (Karras et al. 2018, "Progressive growing of GANs"),
with no learned weights. It compares distributions, not pairs: 0 for identical sets, and it
grows as one set drifts from the other. See :func:`swd` for the exact recipe.
"""

from __future__ import annotations

import cv2
import numpy as np

from degrade.errors import DegradeError
from degrade.seeding import rng_for

__all__ = ["CONVENTION", "SWD_CONVENTION", "laplacian_pyramid", "psnr", "ssim", "swd", "swd_convention", "swd_levels"]

#: Recorded beside every number: how it was computed.
CONVENTION = "per-image, data_range=1.0, RGB (grayscale as 1 channel), SSIM 7x7 uniform window mean over channels"

def swd_convention(*, patch: int = 7, patches_per_image: int = 128, directions: int = 128,
                   repeats: int = 4, min_size: int = 16) -> str:
    """How :func:`swd` numbers computed with these settings are to be read (recorded beside them).

    Examples
    --------
    >>> swd_convention(patches_per_image=64).split(";")[0]
    'set-level sliced Wasserstein distance x1e3, data_range=1.0, RGB'
    """
    return (
        "set-level sliced Wasserstein distance x1e3, data_range=1.0, RGB; Laplacian pyramid "
        f"(5-tap binomial, reflect) down to >={min_size} px, {patch}x{patch} patches, "
        f"{patches_per_image} per image and level, descriptors normalised per level and channel "
        f"by the pooled mean/std of both sets, {repeats}x{directions} random directions, mean over levels"
    )


#: How :func:`swd` numbers with the default settings are computed.
SWD_CONVENTION = swd_convention()


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DegradeError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if a.ndim != 3:
        raise DegradeError(f"expected H×W×C images, got shape {a.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio of one image pair in dB (``inf`` when identical).

    Examples
    --------
    >>> a = np.zeros((4, 4, 3), np.float32); b = np.full((4, 4, 3), 0.1, np.float32)
    >>> round(psnr(a, b), 3)
    20.0
    """
    a, b = _pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0, win_size: int = 7) -> float:
    """Structural similarity of one image pair (mean over channels and valid windows).

    The window shrinks to the largest odd size that fits images smaller than ``win_size``.

    Examples
    --------
    >>> a = np.random.default_rng(0).random((16, 16, 3))
    >>> ssim(a, a)
    1.0
    """
    a, b = _pair(a, b)
    h, w = a.shape[:2]
    win = min(win_size, h if h % 2 else h - 1, w if w % 2 else w - 1)
    win = max(win, 1)
    n = win * win
    cov_norm = n / (n - 1) if n > 1 else 1.0
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    pad = (win - 1) // 2
    vals = []
    for c in range(a.shape[2]):
        x = np.ascontiguousarray(a[:, :, c])
        y = np.ascontiguousarray(b[:, :, c])

        def filt(z: np.ndarray) -> np.ndarray:
            return cv2.blur(z, (win, win), borderType=cv2.BORDER_REFLECT)

        ux, uy = filt(x), filt(y)
        vx = cov_norm * (filt(x * x) - ux * ux)
        vy = cov_norm * (filt(y * y) - uy * uy)
        vxy = cov_norm * (filt(x * y) - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        s = s[pad : h - pad, pad : w - pad] if pad else s
        vals.append(float(s.mean()))
    return float(np.mean(vals))


# -- sliced Wasserstein distance on Laplacian-pyramid patches ---------------------------------

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _smooth(x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Separable 5-tap binomial filter (reflect padding) over the first two axes."""
    k = _BINOMIAL * gain
    for axis in (0, 1):
        n = x.shape[axis]
        mode = "reflect" if n > 2 else "edge"
        pad = [(0, 0)] * x.ndim
        pad[axis] = (2, 2)
        xp = np.pad(x, pad, mode=mode)
        out = np.zeros_like(x)
        for i, w in enumerate(k):
            sl = [slice(None)] * x.ndim
            sl[axis] = slice(i, i + n)
            out += w * xp[tuple(sl)]
        x = out
    return x


def _down(x: np.ndarray) -> np.ndarray:
    return _smooth(x)[::2, ::2]


def _up(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    up = np.zeros(shape[:2] + x.shape[2:], dtype=x.dtype)
    up[::2, ::2] = x[: (shape[0] + 1) // 2, : (shape[1] + 1) // 2]
    return _smooth(up, gain=2.0)  # 2 per axis: the zeros inserted halve the mean


def laplacian_pyramid(image: np.ndarray, *, min_size: int = 16) -> list[np.ndarray]:
    """Laplacian pyramid of an H×W×C image: band-pass levels, finest first, then the low-pass
    residual, halving the size while the next level stays ≥ ``min_size`` px.

    Summing the levels back up (upsample the coarser, add) gives the image again, so no
    information is lost.

    Examples
    --------
    >>> levels = laplacian_pyramid(np.random.default_rng(0).random((32, 32, 3)))
    >>> [lv.shape[:2] for lv in levels]
    [(32, 32), (16, 16)]
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise DegradeError(f"expected an H×W×C image, got shape {x.shape}")
    levels = []
    while min(x.shape[:2]) // 2 >= min_size:
        low = _down(x)
        levels.append(x - _up(low, x.shape))
        x = low
    levels.append(x)
    return levels


def _descriptors(levels: list[np.ndarray], level: int, patch: int, n: int, rng: np.random.Generator) -> np.ndarray:
    img = levels[level]
    h, w, _ = img.shape
    p = min(patch, h, w)
    ys = rng.integers(0, h - p + 1, size=n)
    xs = rng.integers(0, w - p + 1, size=n)
    windows = np.lib.stride_tricks.sliding_window_view(img, (p, p), axis=(0, 1))  # h', w', c, p, p
    return windows[ys, xs].transpose(0, 2, 3, 1)  # n, p, p, c


def _w1_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean |quantile difference| per row of two row-sorted arrays (1-D Wasserstein-1)."""
    if a.shape[1] == b.shape[1]:
        return np.abs(a - b).mean(axis=1)
    n = max(a.shape[1], b.shape[1])
    q = (np.arange(n) + 0.5) / n

    def at(v: np.ndarray) -> np.ndarray:
        pos = (np.arange(v.shape[1]) + 0.5) / v.shape[1]
        return np.stack([np.interp(q, pos, row) for row in v])

    return np.abs(at(a) - at(b)).mean(axis=1)


def swd_levels(
    a: list[np.ndarray] | np.ndarray,
    b: list[np.ndarray] | np.ndarray,
    *,
    seed: int = 0,
    patch: int = 7,
    patches_per_image: int = 128,
    directions: int = 128,
    repeats: int = 4,
    min_size: int = 16,
) -> list[float]:
    """Sliced Wasserstein distance (×1e3) per pyramid level, finest first; see :func:`swd`.

    Examples
    --------
    >>> imgs = list(np.random.default_rng(0).random((4, 32, 32, 3)))
    >>> swd_levels(imgs, imgs)
    [0.0, 0.0]
    """
    sa, sb = list(a), list(b)
    if not sa or not sb:
        raise DegradeError("swd needs two non-empty sets of images")
    shapes = {np.shape(x) for x in sa + sb}
    if len(shapes) != 1:
        raise DegradeError(f"swd needs images of one shape, got {sorted(shapes)}")
    pa = [laplacian_pyramid(x, min_size=min_size) for x in sa]
    pb = [laplacian_pyramid(x, min_size=min_size) for x in sb]
    out = []
    for level in range(len(pa[0])):
        # Patch positions are keyed by (level, image index), the same for both sets: an
        # image paired with itself gives identical descriptors, so identical sets give 0.
        da = np.concatenate([_descriptors(p, level, patch, patches_per_image,
                                          rng_for(seed, "swd-patches", level, i)) for i, p in enumerate(pa)])
        db = np.concatenate([_descriptors(p, level, patch, patches_per_image,
                                          rng_for(seed, "swd-patches", level, i)) for i, p in enumerate(pb)])
        # Normalise each channel by the statistics of both sets pooled (Karras et al. use
        # each set's own, which hides a shift of mean or contrast; pooled keeps it and is
        # still symmetric in a and b).
        # Sums taken per set and then added: a + b == b + a in floating point, so swapping
        # the sets gives exactly the same number.
        count = da.shape[0] * da.shape[1] * da.shape[2] + db.shape[0] * db.shape[1] * db.shape[2]
        mean = (da.sum(axis=(0, 1, 2)) + db.sum(axis=(0, 1, 2))) / count
        var = (((da - mean) ** 2).sum(axis=(0, 1, 2)) + ((db - mean) ** 2).sum(axis=(0, 1, 2))) / count
        std = np.sqrt(var)
        std[std == 0] = 1.0
        da = ((da - mean) / std).reshape(len(da), -1).astype(np.float32)
        db = ((db - mean) / std).reshape(len(db), -1).astype(np.float32)
        dists = []
        for r in range(repeats):
            dirs = rng_for(seed, "swd-directions", level, r).standard_normal((da.shape[1], directions)).astype(np.float32)
            dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
            # One row per direction: sorting contiguous rows is several times faster.
            proj_a = np.sort(np.ascontiguousarray((da @ dirs).T), axis=1)
            proj_b = np.sort(np.ascontiguousarray((db @ dirs).T), axis=1)
            dists.append(_w1_sorted(proj_a, proj_b).mean())
        out.append(float(np.mean(dists)) * 1e3)
    return out


def swd(
    a: list[np.ndarray] | np.ndarray,
    b: list[np.ndarray] | np.ndarray,
    *,
    seed: int = 0,
    patch: int = 7,
    patches_per_image: int = 128,
    directions: int = 128,
    repeats: int = 4,
    min_size: int = 16,
) -> float:
    """Sliced Wasserstein distance between two sets of images, ×1e3 (:func:`swd_convention`).

    Each image (H×W×C float in [0, 1]) is split into a Laplacian pyramid
    (:func:`laplacian_pyramid`); ``patches_per_image`` random ``patch``×``patch`` patches
    per level and image are the descriptors. Per level, descriptors are normalised per
    channel by the mean and standard deviation of both sets pooled, projected on
    ``repeats`` × ``directions`` random unit directions, and the 1-D Wasserstein-1 distance
    between the two sets' projections (sorted, matched by quantile) is averaged; the result
    is the mean over levels. Every draw comes from :func:`degrade.seeding.rng_for` with
    ``seed``, so the value is deterministic. Symmetric in ``a`` and ``b``; 0 when the sets are
    equal; the sets may differ in size.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = list(rng.random((4, 32, 32, 3)))
    >>> swd(a, a)
    0.0
    >>> swd(a, [np.clip(x + 0.2, 0, 1) for x in a]) > swd(a, [np.clip(x + 0.05, 0, 1) for x in a])
    True
    """
    return float(np.mean(swd_levels(a, b, seed=seed, patch=patch, patches_per_image=patches_per_image,
                                    directions=directions, repeats=repeats, min_size=min_size)))
