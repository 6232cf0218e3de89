"""Blur family: Gaussian blur (more to come in this module)."""

from __future__ import annotations

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


def blur(image: np.ndarray, *, sigma: float, kernel: int = 0) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` px and reflect padding.

    ``kernel`` fixes the kernel size (Cold Diffusion uses 11×11); 0 picks 2·⌈3σ⌉ + 1.

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
        aliases=("gaussian_blur",),
    )
)
