"""Image quality metrics, per image: PSNR and SSIM in NumPy (OpenCV for the box filter).

Convention: float images in [0, 1] (data range 1.0), RGB; SSIM is the mean over channels of
Wang et al.'s SSIM with a 7×7 uniform window and sample covariance — the defaults of
``skimage.metrics.structural_similarity`` — so the numbers agree with scikit-image.
"""

from __future__ import annotations

import cv2
import numpy as np

from degrade.errors import DegradeError

__all__ = ["CONVENTION", "psnr", "ssim"]

#: Recorded beside every number: how it was computed.
CONVENTION = "per-image, data_range=1.0, RGB (grayscale as 1 channel), SSIM 7x7 uniform window mean over channels"


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
