"""Noise family: Gaussian, shot (Poisson), impulse (salt & pepper), speckle, Perlin and
spatially non-uniform Gaussian noise.

Every op draws its noise once per sample as a *field* and scales it with t, so step k+1 is
step k with more of the same noise (common random numbers): Gaussian-type ops add
``strength · z`` for a fixed texture z, impulse noise corrupts the elements whose fixed
uniform value lies below the amount (nested sets), shot noise inverts the Poisson CDF at a
fixed uniform value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from degrade.registry import Op, Param, register

__all__ = [
    "NonuniformField",
    "PerlinLattice",
    "gaussian_noise",
    "gradient_map",
    "impulse_noise",
    "nonuniform_noise",
    "perlin_map",
    "perlin_noise",
    "perlin_texture",
    "poisson_quantile",
    "shot_noise",
    "speckle_noise",
]

# Standard deviation of one octave of 2-D Perlin noise with unit gradients at uniformly
# spread angles and the quintic fade f(u) = 6u⁵ − 15u⁴ + 10u³: var = 4·A·B with
# A = ∫₀¹ (1 − f(u))² u² du and B = ∫₀¹ (1 − f(u))² du (independent corner gradients,
# E[(g·d)²] = |d|²/2). Dividing by it makes the texture roughly unit std.
_PERLIN_STD = 0.2157108
_LATTICE = 256  # the lattice repeats every 256 cells (classic Perlin permutation table)
MAX_OCTAVES = 12
# Below this Poisson mean the quantile is found exactly by summing the pmf; above it the
# asymptotic expansion of Giles (2016) is used (see poisson_quantile).
_EXACT_BELOW = 10.0


def _clip01(out: np.ndarray) -> np.ndarray:
    return np.clip(out, 0.0, 1.0, out=out)


def _normal_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Draw a standard-normal float32 texture of ``shape`` (H×W×C)."""
    return rng.standard_normal(shape, dtype=np.float32)


# -- Gaussian, speckle ----------------------------------------------------------------------


def gaussian_noise(
    image: np.ndarray, *, sigma: float, gray: bool = False, field: np.ndarray
) -> np.ndarray:
    """Add Gaussian noise: ``clip(x + sigma · z)`` with the fixed standard-normal texture z.

    Parameters
    ----------
    image : ndarray
        float32 H×W×C in [0, 1].
    sigma : float
        Noise standard deviation (ImageNet-C levels 1-5: .08 .12 .18 .26 .38).
    gray : bool
        One noise value per pixel shared by all channels (the texture's first channel).
    field : ndarray
        Standard-normal float32 texture of the image's shape.

    Returns
    -------
    ndarray
        A new float32 image.

    Examples
    --------
    >>> img = np.full((1, 2, 1), 0.5, np.float32)
    >>> gaussian_noise(img, sigma=0.1, field=np.array([[[1.0], [-2.0]]], np.float32)).ravel()
    array([0.6, 0.3], dtype=float32)
    """
    z = field[:, :, :1] if gray else field
    out = image + np.float32(sigma) * z
    return _clip01(out.astype(np.float32, copy=False))


def speckle_noise(image: np.ndarray, *, sigma: float, field: np.ndarray) -> np.ndarray:
    """Multiplicative (speckle) noise: ``clip(x + x · sigma · z)`` with fixed normal z.

    Parameters
    ----------
    image : ndarray
        float32 H×W×C in [0, 1].
    sigma : float
        Relative noise strength (ImageNet-C levels 1-5: .15 .2 .35 .45 .6).
    field : ndarray
        Standard-normal float32 texture of the image's shape.

    Returns
    -------
    ndarray
        A new float32 image; black stays black.

    Examples
    --------
    >>> img = np.array([[[0.0], [0.5]]], np.float32)
    >>> speckle_noise(img, sigma=0.5, field=np.ones((1, 2, 1), np.float32)).ravel()
    array([0.  , 0.75], dtype=float32)
    """
    out = image + image * (np.float32(sigma) * field)
    return _clip01(out.astype(np.float32, copy=False))


# -- shot (Poisson) noise -------------------------------------------------------------------


def _poisson_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Draw uniforms U strictly inside (0, 1) and their normal scores, shape (2, *shape).

    ``U = (k + ½)/2³²`` with k uniform on 32 bits (never 0 or 1); ``field[1] = Φ⁻¹(U)`` is
    stored so that the steps do not recompute it.
    """
    from scipy import special  # here, not at import: keeps build workers' start-up short

    k = rng.integers(0, 2**32, size=shape, dtype=np.uint64)
    u = (k.astype(np.float64) + 0.5) * 2.0**-32
    return np.stack([u, special.ndtri(u)])


def _quantile_small(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    # Exact: k = #{j ≥ 0 : P(X ≤ j) < u}, summing the pmf upwards from 0 (means below
    # _EXACT_BELOW need few terms). The CDF only grows, so finished elements may ride
    # along; the arrays are compacted whenever half of them are finished.
    out = np.zeros(lam.shape, np.float64)
    p = np.exp(-lam)
    idx = np.flatnonzero(p < u)
    p, la, ua = p[idx], lam[idx], u[idx]
    cdf = p.copy()
    k = np.ones(idx.size, np.float64)
    live, j = idx.size, 0
    while live and j < 200:
        j += 1
        p *= la
        p *= 1.0 / j
        cdf += p
        below = cdf < ua
        k += below
        live = int(np.count_nonzero(below))
        if live <= cdf.size // 2:
            out[idx] = k
            keep = np.flatnonzero(below)
            idx, p, cdf, la, ua, k = idx[keep], p[keep], cdf[keep], la[keep], ua[keep], k[keep]
    out[idx] = k
    return out


def _quantile_large(lam: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Asymptotic (Cornish-Fisher type) expansion of the Poisson quantile in the normal score
    # w = Φ⁻¹(u), three terms, from M. Giles, "Algorithm 955: approximation of the inverse
    # Poisson cumulative distribution function" (ACM TOMS, 2016). Against the exact quantile
    # it is off by one count for ~0.05 % of draws at mean 10, fewer above (none seen in
    # 2·10⁶ draws at mean ≥ 300). In place, to spare temporaries.
    lam = np.maximum(lam, _EXACT_BELOW)  # (smaller means are overwritten by the caller)
    s = np.sqrt(lam)
    w2 = w * w
    x = w2 * (1.0 / 6.0)
    x += 1.0 / 3.0
    x += lam
    tmp = s * w
    x += tmp
    np.multiply(w2, -1.0 / 72.0, out=tmp)
    tmp -= 1.0 / 36.0
    tmp *= w
    tmp /= s
    x += tmp
    np.multiply(w2, 1.0 / 270.0, out=tmp)
    tmp += 7.0 / 810.0
    tmp *= w2
    tmp -= 8.0 / 405.0
    tmp /= lam
    x += tmp
    np.floor(x, out=x)
    return np.maximum(x, 0.0, out=x)


def poisson_quantile(
    lam: np.ndarray, u: np.ndarray, w: np.ndarray | None = None
) -> np.ndarray:
    """Poisson inverse CDF: the smallest k with P(Poisson(lam) ≤ k) ≥ u, elementwise.

    Exact for ``lam < 10`` (pmf summation); above, the asymptotic expansion of Giles
    (2016), which is off by one count for fewer than 0.05 % of draws: a vectorised stand-in
    for ``scipy.stats.poisson.ppf``, ~20-50× faster. Nondecreasing in ``u``, and in
    ``lam`` up to those rare one-count slips.

    Parameters
    ----------
    lam : ndarray
        Means, ≥ 0.
    u : ndarray
        Probabilities in (0, 1), same shape.
    w : ndarray, optional
        ``scipy.special.ndtri(u)``, when already known.

    Returns
    -------
    ndarray
        float64 counts.

    Examples
    --------
    >>> poisson_quantile(np.array([0.0, 1.0, 1.0, 100.0]), np.array([0.5, 0.3, 0.9, 0.5]))
    array([  0.,   0.,   2., 100.])
    """
    from scipy import special

    lam = np.asarray(lam, np.float64)
    u = np.asarray(u, np.float64)
    small = lam < _EXACT_BELOW
    n_small = int(np.count_nonzero(small))
    if n_small == lam.size:
        return _quantile_small(lam.ravel(), u.ravel()).reshape(lam.shape)
    out = _quantile_large(lam, special.ndtri(u) if w is None else np.asarray(w, np.float64))
    if n_small:
        idx = np.flatnonzero(small)
        out.reshape(-1)[idx] = _quantile_small(lam.reshape(-1)[idx], u.reshape(-1)[idx])
    return out


def shot_noise(image: np.ndarray, *, photons: float, field: np.ndarray) -> np.ndarray:
    """Shot (Poisson) noise: ``clip(Poisson(x · c) / c)`` with ``c = photons``.

    The Poisson draw is the inverse CDF (:func:`poisson_quantile`) at a fixed uniform U, so
    fewer photons (more severity) move each pixel further in the same direction.

    Parameters
    ----------
    image : ndarray
        float32 H×W×C in [0, 1].
    photons : float
        Photon count c at full intensity (ImageNet-C levels 1-5: 60 25 12 5 3); the noise
        variance at intensity x is x / c.
    field : ndarray
        Shape (2, H, W, C): U in (0, 1) and, optionally used, ``ndtri(U)``.

    Returns
    -------
    ndarray
        A new float32 image with values in multiples of 1/c (then clipped to [0, 1]).

    Examples
    --------
    >>> img = np.array([[[0.0], [0.5], [0.5]]], np.float32)
    >>> u = np.array([[[0.9], [0.1], [0.8]]])
    >>> shot_noise(img, photons=4, field=np.stack([u, u])).ravel()
    array([0.  , 0.  , 0.75], dtype=float32)
    """
    c = float(photons)
    k = poisson_quantile(image.astype(np.float64) * c, field[0], field[1])
    k /= c
    return _clip01(k.astype(np.float32))


# -- impulse (salt & pepper) ----------------------------------------------------------------


def _impulse_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Draw two float32 uniform fields stacked: [0] which elements flip, [1] salt or pepper."""
    return rng.random((2, *shape), dtype=np.float32)


def impulse_noise(
    image: np.ndarray, *, amount: float, salt_vs_pepper: float = 0.5, field: np.ndarray
) -> np.ndarray:
    """Salt-and-pepper noise on each element (pixel and channel), as scikit-image's ``s&p``.

    An element is replaced iff its fixed uniform ``field[0]`` is below ``amount``, so the
    corrupted set only grows with the amount; it becomes 1 (salt) where ``field[1] <
    salt_vs_pepper``, else 0 (pepper).

    Parameters
    ----------
    image : ndarray
        float32 H×W×C in [0, 1].
    amount : float
        Fraction of elements replaced (ImageNet-C levels 1-5: .03 .06 .09 .17 .27).
    salt_vs_pepper : float
        Fraction of replaced elements that become white.
    field : ndarray
        float32 uniforms, shape (2, H, W, C).

    Returns
    -------
    ndarray
        A new float32 image.

    Examples
    --------
    >>> img = np.full((1, 3, 1), 0.5, np.float32)
    >>> fld = np.array([[[[0.1], [0.1], [0.9]]], [[[0.2], [0.8], [0.2]]]], np.float32)
    >>> impulse_noise(img, amount=0.5, field=fld).ravel()
    array([1. , 0. , 0.5], dtype=float32)
    """
    hit = field[0] < np.float32(amount)
    salt = field[1] < np.float32(salt_vs_pepper)
    out = np.where(hit, salt.astype(np.float32), image)
    return out.astype(np.float32, copy=False)


# -- Perlin ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PerlinLattice:
    """The random part of Perlin noise: a permutation table and per-octave offsets.

    Classic gradient noise: lattice point (i, j) gets the unit gradient at angle
    2π·h/256 with ``h = perm[(perm[i mod 256] + j) mod 256]``; each octave samples the
    lattice at its own random offset so that octaves are independent. The lattice does not
    depend on the image size, so any size (1×1 to large) is served by the same draw.

    Attributes
    ----------
    perm : ndarray
        A permutation of 0 … 255.
    offsets : ndarray
        (MAX_OCTAVES, 2) offsets in lattice cells, uniform in [0, 256).

    Examples
    --------
    >>> lat = PerlinLattice.draw(np.random.default_rng(0))
    >>> lat.perm.shape, lat.offsets.shape
    ((256,), (12, 2))
    """

    perm: np.ndarray
    offsets: np.ndarray
    _cache: dict[Any, np.ndarray] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> PerlinLattice:
        """Draw a lattice from ``rng``.

        Examples
        --------
        >>> int(PerlinLattice.draw(np.random.default_rng(0)).perm.sum())
        32640
        """
        perm = rng.permutation(_LATTICE).astype(np.intp)
        offsets = rng.uniform(0.0, float(_LATTICE), size=(MAX_OCTAVES, 2))
        return cls(perm, offsets)


def _perlin_field(rng: np.random.Generator, shape: tuple[int, ...]) -> PerlinLattice:
    """Draw the Perlin lattice (independent of ``shape``)."""
    return PerlinLattice.draw(rng)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * np.float32(6.0) - np.float32(15.0)) + np.float32(10.0))


def _perlin_octave(h: int, w: int, cell: float, lattice: PerlinLattice, octave: int) -> np.ndarray:
    # One octave at cell size `cell` px, vectorised over rows and columns (separable
    # coordinates, 2-D hash and interpolation).
    perm = lattice.perm
    ox, oy = lattice.offsets[octave]
    xs = (np.arange(w, dtype=np.float64) + 0.5) / cell + ox
    ys = (np.arange(h, dtype=np.float64) + 0.5) / cell + oy
    xi, yi = np.floor(xs), np.floor(ys)
    xf = (xs - xi).astype(np.float32)[None, :]
    yf = (ys - yi).astype(np.float32)[:, None]
    xi = xi.astype(np.intp) & (_LATTICE - 1)
    yi = (yi.astype(np.intp) & (_LATTICE - 1))[:, None]
    angle = np.arange(_LATTICE, dtype=np.float64) * (2.0 * np.pi / _LATTICE)
    gx, gy = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    px0 = perm[xi][None, :]
    px1 = perm[(xi + 1) & (_LATTICE - 1)][None, :]
    mask = _LATTICE - 1

    def corner(px: np.ndarray, dy: int, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        hsh = perm[(px + yi + dy) & mask]
        return gx[hsh] * fx + gy[hsh] * fy

    n00 = corner(px0, 0, xf, yf)
    n10 = corner(px1, 0, xf - 1, yf)
    n01 = corner(px0, 1, xf, yf - 1)
    n11 = corner(px1, 1, xf - 1, yf - 1)
    u, v = _fade(xf), _fade(yf)
    nx0 = n00 + u * (n10 - n00)
    nx1 = n01 + u * (n11 - n01)
    return nx0 + v * (nx1 - nx0)


def perlin_texture(
    h: int,
    w: int,
    lattice: PerlinLattice,
    *,
    scale: float = 32.0,
    octaves: int = 4,
    persistence: float = 0.5,
) -> np.ndarray:
    """Fractal Perlin noise, H×W float32, zero mean and roughly unit std.

    Octave o has cell size ``scale / 2**o`` px and weight ``persistence**o``; the sum is
    divided by its theoretical std, so the texture is not re-normalised per image (a small
    image may well be all above or all below zero). Results are cached on the lattice.

    Parameters
    ----------
    h, w : int
        Size in pixels.
    lattice : PerlinLattice
        The random draw.
    scale : float
        Cell size of the coarsest octave, px.
    octaves : int
        Number of octaves, 1 … 12.
    persistence : float
        Weight ratio between successive octaves.

    Returns
    -------
    ndarray
        float32 H×W.

    Examples
    --------
    >>> tex = perlin_texture(64, 64, PerlinLattice.draw(np.random.default_rng(0)))
    >>> tex.shape, tex.dtype
    ((64, 64), dtype('float32'))
    """
    octaves = int(octaves)
    if not 1 <= octaves <= MAX_OCTAVES:
        raise ValueError(f"octaves must be in 1 … {MAX_OCTAVES}, got {octaves}")
    key = (int(h), int(w), float(scale), octaves, float(persistence))
    hit = lattice._cache.get(key)
    if hit is not None:
        return hit
    total = np.zeros((h, w), np.float32)
    norm = 0.0
    for o in range(octaves):
        weight = float(persistence) ** o
        if weight == 0.0:
            break
        total += np.float32(weight) * _perlin_octave(h, w, float(scale) / 2.0**o, lattice, o)
        norm += weight * weight
    total *= np.float32(1.0 / (np.sqrt(norm) * _PERLIN_STD))
    total.setflags(write=False)
    lattice._cache[key] = total
    return total


def perlin_noise(
    image: np.ndarray,
    *,
    amplitude: float,
    scale: float = 32.0,
    octaves: int = 4,
    persistence: float = 0.5,
    field: PerlinLattice,
) -> np.ndarray:
    """Add fractal Perlin noise: ``clip(x + amplitude · T)``, T shared by all channels.

    T is :func:`perlin_texture` (zero mean, roughly unit std, H×W); one texture for every
    channel gives brightness blotches rather than colour ones.

    Parameters
    ----------
    image : ndarray
        float32 H×W×C in [0, 1].
    amplitude : float
        Scale of the texture (its std in intensity units).
    scale : float
        Cell size of the coarsest octave, px.
    octaves : int
        Number of octaves.
    persistence : float
        Weight ratio between successive octaves.
    field : PerlinLattice
        The random lattice.

    Returns
    -------
    ndarray
        A new float32 image.

    Examples
    --------
    >>> img = np.full((16, 16, 3), 0.5, np.float32)
    >>> out = perlin_noise(img, amplitude=0.1, field=PerlinLattice.draw(np.random.default_rng(0)))
    >>> bool((out[..., 0] == out[..., 2]).all()), bool(out.std() > 0)
    (True, True)
    """
    h, w = image.shape[:2]
    tex = perlin_texture(h, w, field, scale=scale, octaves=octaves, persistence=persistence)
    out = image + np.float32(amplitude) * tex[:, :, None]
    return _clip01(out.astype(np.float32, copy=False))


# -- non-uniform Gaussian noise -------------------------------------------------------------


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-6:  # a constant map (1×1 images, a gradient along a single row)
        return np.ones(a.shape, np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)


def perlin_map(h: int, w: int, lattice: PerlinLattice) -> np.ndarray:
    """A smooth strength map in [0, 1]: 2-octave Perlin noise at half the image size, min-max
    normalised (so each image has a noise-free spot and a full-strength spot).

    Examples
    --------
    >>> m = perlin_map(32, 48, PerlinLattice.draw(np.random.default_rng(0)))
    >>> float(m.min()), float(m.max())
    (0.0, 1.0)
    """
    tex = perlin_texture(h, w, lattice, scale=max(h, w) / 2.0, octaves=2, persistence=0.5)
    return _minmax(tex)


def gradient_map(h: int, w: int, angle: float) -> np.ndarray:
    """A linear ramp in [0, 1] rising in direction ``angle`` (radians, 0 = left to right,
    π/2 = top to bottom).

    Examples
    --------
    >>> gradient_map(1, 3, 0.0)
    array([[0. , 0.5, 1. ]], dtype=float32)
    """
    ys = np.arange(h, dtype=np.float64)[:, None] - (h - 1) / 2.0
    xs = np.arange(w, dtype=np.float64)[None, :] - (w - 1) / 2.0
    return _minmax(np.cos(angle) * xs + np.sin(angle) * ys)


@dataclass(frozen=True, eq=False)
class NonuniformField:
    """Field of :func:`nonuniform_noise`: the normal texture and both strength maps.

    Attributes
    ----------
    z : ndarray
        Standard-normal float32 H×W×C.
    perlin : ndarray
        :func:`perlin_map`, float32 H×W.
    gradient : ndarray
        :func:`gradient_map` in a random direction, float32 H×W.

    Examples
    --------
    >>> f = NonuniformField(np.ones((1, 1, 1), np.float32), np.ones((1, 1), np.float32),
    ...                     np.ones((1, 1), np.float32))
    >>> f.z.shape
    (1, 1, 1)
    """

    z: np.ndarray
    perlin: np.ndarray
    gradient: np.ndarray


def _nonuniform_field(rng: np.random.Generator, shape: tuple[int, ...]) -> NonuniformField:
    """Draw a Perlin lattice for the smooth map, a ramp direction and the normal texture.

    The maps are drawn first, so they do not depend on the channel count.
    """
    h, w = shape[:2]
    lattice = PerlinLattice.draw(rng)
    angle = float(rng.uniform(0.0, 2.0 * np.pi))
    z = rng.standard_normal(shape, dtype=np.float32)
    return NonuniformField(z, perlin_map(h, w, lattice), gradient_map(h, w, angle))


def nonuniform_noise(
    image: np.ndarray, *, sigma: float, pattern: str = "perlin", field: NonuniformField
) -> np.ndarray:
    """Gaussian noise of spatially varying strength: ``clip(x + sigma · m(x, y) · z)``.

    Parameters
    ----------
    image : ndarray
        float32 H×W×C in [0, 1].
    sigma : float
        Noise std where the map is 1.
    pattern : {"perlin", "gradient"}
        The map m: smooth Perlin blobs or a linear ramp in a random direction, both
        spanning [0, 1].
    field : NonuniformField
        z, and the two maps.

    Returns
    -------
    ndarray
        A new float32 image.

    Examples
    --------
    >>> img = np.full((1, 3, 1), 0.5, np.float32)
    >>> fld = NonuniformField(np.ones((1, 3, 1), np.float32), np.ones((1, 3), np.float32),
    ...                       gradient_map(1, 3, 0.0))
    >>> nonuniform_noise(img, sigma=0.2, pattern="gradient", field=fld).ravel()
    array([0.5, 0.6, 0.7], dtype=float32)
    """
    if pattern not in ("perlin", "gradient"):
        raise ValueError(f"pattern must be 'perlin' or 'gradient', got {pattern!r}")
    m = field.perlin if pattern == "perlin" else field.gradient
    out = image + (np.float32(sigma) * m)[:, :, None] * field.z
    return _clip01(out.astype(np.float32, copy=False))


# -- registration ---------------------------------------------------------------------------

register(
    Op(
        "noise",
        gaussian_noise,
        (
            Param("sigma", 0.0, 0.38, low=0.0, high=2.0,
                  help="noise standard deviation (ImageNet-C level 5: 0.38)"),
            Param("gray", False, kind="bool", curve="constant",
                  help="one noise value per pixel, shared by the channels"),
        ),
        family="noise",
        description="additive Gaussian noise",
        aliases=("gaussian_noise",),
        field=_normal_field,
    )
)

register(
    Op(
        "shot_noise",
        shot_noise,
        (
            Param("photons", 10000.0, 3.0, curve="geometric", low=0.1, high=1e7,
                  unit="photons", help="photon count at full intensity (ImageNet-C level 5: 3)"),
        ),
        family="noise",
        description="Poisson (shot) noise, Poisson(x·c)/c",
        field=_poisson_field,
    )
)

register(
    Op(
        "impulse_noise",
        impulse_noise,
        (
            Param("amount", 0.0, 0.27, low=0.0, high=1.0,
                  help="fraction of elements replaced (ImageNet-C level 5: 0.27)"),
            Param("salt_vs_pepper", 0.5, curve="constant", low=0.0, high=1.0,
                  help="fraction of replaced elements set to white"),
        ),
        family="noise",
        description="salt-and-pepper noise per element, nested as the amount grows",
        field=_impulse_field,
    )
)

register(
    Op(
        "speckle_noise",
        speckle_noise,
        (
            Param("sigma", 0.0, 0.6, low=0.0, high=4.0,
                  help="relative noise std (ImageNet-C level 5: 0.6)"),
        ),
        family="noise",
        description="multiplicative Gaussian noise x + x·σ·z",
        field=_normal_field,
    )
)

register(
    Op(
        "perlin",
        perlin_noise,
        (
            Param("amplitude", 0.0, 0.5, low=0.0, high=4.0, help="texture std"),
            Param("scale", 32.0, curve="constant", low=1.0, high=4096.0, unit="px",
                  help="cell size of the coarsest octave"),
            Param("octaves", 4, kind="int", curve="constant", low=1, high=MAX_OCTAVES,
                  help="number of octaves"),
            Param("persistence", 0.5, curve="constant", low=0.0, high=1.0,
                  help="weight ratio between successive octaves"),
        ),
        family="noise",
        description="additive fractal Perlin noise, shared by the channels",
        field=_perlin_field,
    )
)

register(
    Op(
        "nonuniform_noise",
        nonuniform_noise,
        (
            Param("sigma", 0.0, 0.4, low=0.0, high=2.0, help="noise std where the map is 1"),
            Param("pattern", "perlin", kind="choice", curve="constant",
                  choices=("perlin", "gradient"), help="strength map: Perlin blobs or a ramp"),
        ),
        family="noise",
        description="Gaussian noise whose strength varies smoothly across the image",
        field=_nonuniform_field,
    )
)
