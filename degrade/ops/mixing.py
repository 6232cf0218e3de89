"""Mixing family: ops that blend the image with something else (for now: ``fade``).

``fade`` is Cold Diffusion's Gaussian mask. In the reference (Bansal et al. 2022,
``defading_diffusion_gaussian.py``) step i multiplies the image by
mask_i = 1 − G_{σ_i}/max(G_{σ_i}) = 1 − exp(−d²/(2σ_i²)), d the distance to the mask
centre, and x_t is the product of the masks so far times x0. The reference's images live
in [−1, 1], so a multiplicative mask fades them towards 0 there, i.e. mid-grey 0.5 here:
this op fades towards ``fill`` (default 0.5, the reference; 0 fades to black).

One severity: ``sigma`` grows with t and a single mask is applied (absolute mode).
Run in ``chained`` mode with σ_k = kernel_std·(k + initial_mask) / N per step, the op
reproduces the reference's cumulative product of masks exactly (up to 8-bit storage).
"""

from __future__ import annotations

import numpy as np

from degrade.registry import Op, Param, register

__all__ = ["fade", "fade_mask"]


def _centre_field(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[int, int]:
    # One integer pixel per sample, uniform over the image, like the reference's random
    # crop of a larger mask; used when center="random".
    return int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))


def fade_mask(
    shape: tuple[int, ...], sigma: float, centre: tuple[int, int] | None = None
) -> np.ndarray:
    """Return the H×W mask 1 − exp(−d²/(2σ²)) with σ = ``sigma`` · max(H, W) px.

    ``centre`` is a (row, column) pixel; None is the middle ((H−1)//2, (W−1)//2). The mask
    is 0 at the centre and rises towards 1 away from it; it only falls as ``sigma`` grows.

    Examples
    --------
    >>> fade_mask((3, 3), 1 / 3).astype(float).round(3).tolist()[1]
    [0.393, 0.0, 0.393]
    """
    h, w = int(shape[0]), int(shape[1])
    if sigma <= 0:
        return np.ones((h, w), np.float32)
    cy, cx = ((h - 1) // 2, (w - 1) // 2) if centre is None else (int(centre[0]), int(centre[1]))
    s = float(sigma) * max(h, w)
    dy = (np.arange(h, dtype=np.float64) - cy) ** 2
    dx = (np.arange(w, dtype=np.float64) - cx) ** 2
    d2 = dy[:, None] + dx[None, :]
    two_s2 = 2.0 * s * s
    if two_s2 == 0.0:  # σ so small that σ² underflows: only the centre pixel is faded
        return (d2 > 0).astype(np.float32)
    return (-np.expm1(-d2 / two_s2)).astype(np.float32)


def fade(
    image: np.ndarray,
    *,
    sigma: float,
    fill: float = 0.5,
    center: str = "random",
    field: tuple[int, int] | None = None,
) -> np.ndarray:
    """Cold Diffusion's Gaussian fade: fill + mask · (x − fill), mask = 1 − exp(−d²/(2σ²)).

    σ is ``sigma`` times the image's longer side, in pixels; d is the distance to the
    centre: the sample's random pixel (``field``) with ``center="random"``, the middle
    with ``"middle"`` (or when ``field`` is None). The centre pixel takes ``fill`` at once
    and the faded region spreads outwards as σ grows; every pixel only moves towards
    ``fill``, so damage is monotone and later masks are nested inside earlier ones.

    Examples
    --------
    >>> out = fade(np.ones((3, 3, 1), np.float32), sigma=1 / 3, fill=0.0, center="middle")
    >>> out[1, :, 0].astype(float).round(3).tolist()
    [0.393, 0.0, 0.393]
    """
    if sigma <= 0:
        return image.copy()
    centre = field if center == "random" else None
    mask = fade_mask(image.shape, sigma, centre)[:, :, None]
    f = np.float32(fill)
    out = f + mask * (image - f)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


register(
    Op(
        "fade",
        fade,
        (
            Param("sigma", 0.0, 0.75, low=0.0, high=10.0, unit="x side",
                  help="Gaussian mask width as a fraction of the longer image side"),
            Param("fill", 0.5, kind="float", curve="constant", low=0.0, high=1.0,
                  help="value faded towards (0.5: the reference's 0 in [-1, 1]; 0: black)"),
            Param("center", "random", kind="choice", choices=("random", "middle"),
                  help="mask centre: a random pixel per sample, or the middle"),
        ),
        family="mixing",
        description="Gaussian fade from a centre outwards (Cold Diffusion)",
        field=_centre_field,
    )
)
