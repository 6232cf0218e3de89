"""Mixing family: ops that blend the image with something else or rearrange it.

Sections: ``fade`` (Cold Diffusion's Gaussian mask); ``scramble`` (a patch grid with a
nested, growing set of swapped / rotated / flipped cells); ``mask`` (nested inpainting
masks, blocks or brush strokes); ``patches`` and ``blend`` (other images of the dataset,
given by the caller as partner images).

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

import dataclasses
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from degrade.errors import DegradeError
from degrade.registry import Op, Param, register

__all__ = [
    "MaskField",
    "blend",
    "fade",
    "fade_mask",
    "mask",
    "mask_at",
    "patches",
    "scramble",
    "scramble_cells",
]


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
    with np.errstate(over="ignore"):  # a tiny σ: d²/2σ² overflows to inf, mask → 1
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



# =========================================================================================
# scramble: a patch grid, a nested growing set of transformed cells
# =========================================================================================

#: Largest grid the field is drawn for: the field holds one value per cell of a
#: ``_GRID_MAX`` × ``_GRID_MAX`` grid, and a grid of g uses its top-left g × g block, so the
#: draw does not depend on the ``grid`` parameter.
_GRID_MAX = 64
_SCRAMBLE_MODES = ("mixed", "swap", "rotate", "flip")


def _scramble_field(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    # Four uniforms per cell: activation priority, pairing key, transform choice, swap coin.
    g = _GRID_MAX
    return {name: rng.random((g, g)) for name in ("priority", "pair", "kind", "swap")}


def _edges(n: int, cells: int) -> np.ndarray:
    # Integer cell boundaries: sizes differ by at most one pixel.
    return (np.arange(cells + 1, dtype=np.int64) * n) // cells


def scramble_cells(
    field: dict[str, np.ndarray], shape: tuple[int, ...], grid: int = 8, mode: str = "mixed"
) -> list[dict[str, Any]]:
    """Return the scramble plan: one entry per changed cell, with its activation priority.

    The image is cut into min(grid, H) × min(grid, W) cells with integer boundaries
    ``(i·H) // rows`` (sizes differ by at most 1 px when H is not a multiple of the grid).
    Cells of the same size are paired at random (sorted by the field's pairing key, taken
    two by two; the odd one out stays unpaired), so a swap never resizes anything. Each
    entry is ``{"priority", "dst", "src", "transform"}``: ``dst`` and ``src`` are
    ``(y0, y1, x0, x1)`` boxes, ``transform`` one of ``swap``, ``rot90``, ``rot180``,
    ``rot270``, ``fliplr``, ``flipud``. A cell is changed at ``fraction`` f when its
    priority is < f. Both cells of a swapped pair share the larger of their two priorities,
    so they always swap together and the changed set only grows with f.

    ``mode``: ``mixed`` — each pair swaps with probability ½, every other cell is rotated
    (90°, 180° or 270° if square, 180° otherwise) or flipped; ``swap`` — every pair swaps;
    ``rotate`` — every cell rotates; ``flip`` — every cell flips left-right or up-down.

    Examples
    --------
    >>> f = _scramble_field(np.random.default_rng(0), (4, 4, 1))
    >>> sorted(c["transform"] for c in scramble_cells(f, (4, 4, 1), grid=2, mode="swap"))
    ['swap', 'swap', 'swap', 'swap']
    """
    if mode not in _SCRAMBLE_MODES:
        raise DegradeError(f"scramble: mode must be one of {', '.join(_SCRAMBLE_MODES)}, got {mode!r}")
    h, w = int(shape[0]), int(shape[1])
    grid = max(1, min(int(grid), _GRID_MAX))
    rows, cols = min(grid, h), min(grid, w)
    ye, xe = _edges(h, rows), _edges(w, cols)
    pri = field["priority"][:rows, :cols]
    pair_key = field["pair"][:rows, :cols]
    kind_u = field["kind"][:rows, :cols]
    swap_u = field["swap"][:rows, :cols]
    box = {
        (r, c): (int(ye[r]), int(ye[r + 1]), int(xe[c]), int(xe[c + 1]))
        for r in range(rows)
        for c in range(cols)
    }
    # Pair cells of equal size: within each size class, order by the field's key.
    classes: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for cell, (y0, y1, x0, x1) in box.items():
        classes.setdefault((y1 - y0, x1 - x0), []).append(cell)
    partner: dict[tuple[int, int], tuple[int, int]] = {}
    for size in sorted(classes):
        members = sorted(classes[size], key=lambda rc: (pair_key[rc], rc))
        for a, b in zip(members[0::2], members[1::2]):
            partner[a], partner[b] = b, a
    plan: list[dict[str, Any]] = []
    for cell in sorted(box):
        y0, y1, x0, x1 = box[cell]
        other = partner.get(cell)
        if other is not None and mode in ("mixed", "swap"):
            first = min(cell, other)
            if mode == "swap" or swap_u[first] < 0.5:
                plan.append({"priority": float(max(pri[cell], pri[other])), "dst": box[cell],
                             "src": box[other], "transform": "swap"})
                continue
        if mode == "swap":
            continue
        square = (y1 - y0) == (x1 - x0)
        if mode == "rotate":
            options = ("rot90", "rot180", "rot270") if square else ("rot180",)
        elif mode == "flip":
            options = ("fliplr", "flipud")
        else:
            options = ("rot90", "rot180", "rot270", "fliplr", "flipud") if square else (
                "rot180", "fliplr", "flipud")
        choice = options[min(int(kind_u[cell] * len(options)), len(options) - 1)]
        plan.append({"priority": float(pri[cell]), "dst": box[cell], "src": box[cell],
                     "transform": choice})
    return plan


def _apply_cell(patch: np.ndarray, transform: str) -> np.ndarray:
    if transform == "rot90":
        return np.rot90(patch, 1, axes=(0, 1))
    if transform == "rot180":
        return patch[::-1, ::-1]
    if transform == "rot270":
        return np.rot90(patch, 3, axes=(0, 1))
    if transform == "fliplr":
        return patch[:, ::-1]
    if transform == "flipud":
        return patch[::-1]
    return patch  # swap: the partner's content as it is


def scramble(
    image: np.ndarray,
    *,
    fraction: float,
    grid: int = 8,
    mode: str = "mixed",
    field: dict[str, np.ndarray],
) -> np.ndarray:
    """Scramble a patch grid: swap, rotate or flip the cells whose priority is < ``fraction``.

    The plan (:func:`scramble_cells`) is fixed by the sample's field: each cell's priority,
    partner and transform never change with t, only the threshold ``fraction`` grows, so the
    set of changed cells at a smaller t is contained in the set at a larger one and every
    changed cell looks the same at every later step. Each output pixel is either the clean
    pixel or another clean pixel (a permutation), so the error of every pixel only grows
    with t, also after 8-bit storage: monotone by construction.

    Examples
    --------
    >>> img = np.arange(16, dtype=np.float32).reshape(4, 4, 1) / 15
    >>> f = _scramble_field(np.random.default_rng(0), img.shape)
    >>> out = scramble(img, fraction=1.0, grid=2, mode="swap", field=f)
    >>> sorted(out.ravel().tolist()) == sorted(img.ravel().tolist()), bool((out != img).any())
    (True, True)
    """
    out = image.copy()
    if fraction <= 0:
        return out
    for cell in scramble_cells(field, image.shape, grid, mode):
        if cell["priority"] < fraction:
            y0, y1, x0, x1 = cell["dst"]
            sy0, sy1, sx0, sx1 = cell["src"]
            out[y0:y1, x0:x1] = _apply_cell(image[sy0:sy1, sx0:sx1], cell["transform"])
    return out


register(
    Op(
        "scramble",
        scramble,
        (
            Param("fraction", 0.0, 1.0, low=0.0, high=1.0, unit="of cells",
                  help="share of grid cells transformed (a nested, growing set)"),
            Param("grid", 8, kind="int", curve="constant", low=1, high=_GRID_MAX, unit="cells",
                  help="cells per side (fewer on images smaller than the grid)"),
            Param("mode", "mixed", kind="choice", choices=_SCRAMBLE_MODES,
                  help="mixed: swap pairs or rotate/flip; swap; rotate; flip"),
        ),
        family="mixing",
        description="patch grid with a growing set of swapped, rotated or flipped cells",
        field=_scramble_field,
    )
)


# =========================================================================================
# mask: nested inpainting masks (random blocks or brush strokes)
# =========================================================================================

_MASK_SHAPES = ("blocks", "strokes")
_N_BLOCKS = 96
_N_STROKES = 64
_STROKE_VERTICES = 8
_TILES = 8


@dataclass(frozen=True, eq=False)
class MaskField:
    """The random draw behind ``mask``: shapes, each with an activation threshold.

    Drawn once per sample (both shape families, so the draw does not depend on the
    ``shape`` parameter). :meth:`priority` rasterises them into a priority map: each pixel
    holds the lowest threshold of the shapes that cover it, and pixels no shape covers fall
    into an 8 × 8 grid of tiles with thresholds in [1, 2), so a coverage of 1 is reachable.
    The map is computed on first use and kept on the object (it is the same every time).

    Examples
    --------
    >>> f = MaskField.draw(np.random.default_rng(0), (16, 16, 3))
    >>> f.priority("blocks").shape
    (16, 16)
    """

    shape: tuple[int, int]
    blocks: np.ndarray
    strokes: np.ndarray
    stroke_widths: np.ndarray
    stroke_tau: np.ndarray
    tiles: np.ndarray
    _cache: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def draw(cls, rng: np.random.Generator, shape: tuple[int, ...]) -> MaskField:
        """Draw the shapes for an image of ``shape`` (sizes relative to the image).

        Examples
        --------
        >>> MaskField.draw(np.random.default_rng(1), (8, 8, 1)).blocks.shape
        (96, 5)
        """
        # Blocks: (top, left, height, width) as fractions of the image, threshold.
        size = rng.uniform(0.06, 0.3, (_N_BLOCKS, 2))
        corner = rng.random((_N_BLOCKS, 2)) * (1.0 + size) - size / 2
        tau = rng.random((_N_BLOCKS, 1))
        blocks = np.concatenate([corner, size, tau], axis=1)
        # Strokes: a start point, then a random walk with smoothly turning heading
        # (free-form masks as in DeepFill v2); lengths in units of the longer side.
        start = rng.random((_N_STROKES, 2))
        heading = rng.uniform(0, 2 * np.pi, (_N_STROKES, 1)) + np.cumsum(
            rng.normal(0.0, 0.7, (_N_STROKES, _STROKE_VERTICES - 1)), axis=1)
        seg = rng.uniform(0.04, 0.15, (_N_STROKES, _STROKE_VERTICES - 1))
        steps = np.stack([np.sin(heading) * seg, np.cos(heading) * seg], axis=2)
        verts = np.concatenate([start[:, None, :], start[:, None, :] + np.cumsum(steps, axis=1)], axis=1)
        widths = rng.uniform(0.02, 0.06, _N_STROKES)
        stroke_tau = rng.random(_N_STROKES)
        tiles = 1.0 + rng.random((_TILES, _TILES))
        return cls((int(shape[0]), int(shape[1])), blocks, verts, widths, stroke_tau, tiles)

    def _tiles_map(self) -> np.ndarray:
        h, w = self.shape
        ty = np.minimum((np.arange(h) * _TILES) // h, _TILES - 1)
        tx = np.minimum((np.arange(w) * _TILES) // w, _TILES - 1)
        return self.tiles[ty[:, None], tx[None, :]].astype(np.float64)

    def priority(self, kind: str = "blocks") -> np.ndarray:
        """Return the H×W priority map (float64) for ``blocks`` or ``strokes``.

        Examples
        --------
        >>> f = MaskField.draw(np.random.default_rng(0), (8, 8, 1))
        >>> float(f.priority("strokes").max()) < 2.0
        True
        """
        return self._sorted(kind)[0]

    def _sorted(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind not in _MASK_SHAPES:
            raise DegradeError(f"mask: shape must be one of {', '.join(_MASK_SHAPES)}, got {kind!r}")
        if kind not in self._cache:
            pri = self._tiles_map()
            h, w = self.shape
            if kind == "blocks":
                for top, left, bh, bw, tau in self.blocks:
                    y0, y1 = int(np.floor(top * h)), int(np.ceil((top + bh) * h))
                    x0, x1 = int(np.floor(left * w)), int(np.ceil((left + bw) * w))
                    y0, y1 = max(y0, 0), min(y1, h)
                    x0, x1 = max(x0, 0), min(x1, w)
                    if y1 > y0 and x1 > x0:
                        np.minimum(pri[y0:y1, x0:x1], tau, out=pri[y0:y1, x0:x1])
            else:
                # Draw from the highest threshold down, so a pixel keeps the lowest one.
                strokes = np.full((h, w), 3.0, np.float64)
                side = max(h, w)
                for i in np.argsort(-self.stroke_tau, kind="stable"):
                    pts = np.round(self.strokes[i][:, ::-1] * [w, h]).astype(np.int32)
                    thick = max(1, round(float(self.stroke_widths[i]) * side))
                    cv2.polylines(strokes, [pts.reshape(-1, 1, 2)], False,
                                  float(self.stroke_tau[i]), thickness=thick, lineType=cv2.LINE_8)
                pri = np.minimum(pri, strokes)
            self._cache[kind] = (pri, np.sort(pri, axis=None))
        return self._cache[kind]


def _mask_field(rng: np.random.Generator, shape: tuple[int, ...]) -> MaskField:
    return MaskField.draw(rng, shape)


def mask_at(field: MaskField, shape: tuple[int, ...], coverage: float,
            kind: str = "blocks") -> np.ndarray:
    """Return the H×W boolean mask of the sample at ``coverage`` (fraction of the area).

    The mask is {priority < τ} with τ the (⌊coverage·N⌋ + 1)-th smallest value of the
    priority map (N pixels): the union of whole shapes, taken in order of their thresholds,
    that covers at most ``coverage`` of the image. τ only grows with ``coverage``, so the
    masks are nested: mask(c1) ⊆ mask(c2) for c1 < c2.

    Examples
    --------
    >>> f = MaskField.draw(np.random.default_rng(0), (32, 32, 3))
    >>> a, b = mask_at(f, (32, 32, 3), 0.2), mask_at(f, (32, 32, 3), 0.6)
    >>> bool(a.mean() <= 0.2 and b.mean() <= 0.6 and (b | ~a).all())
    True
    """
    if tuple(int(s) for s in shape[:2]) != field.shape:
        raise DegradeError(f"mask: field drawn for {field.shape}, image is {tuple(shape[:2])}")
    pri, flat = field._sorted(kind)
    n = flat.size
    k = int(np.floor(float(coverage) * n + 1e-9))
    if k <= 0:
        return np.zeros(field.shape, bool)
    if k >= n:
        return np.ones(field.shape, bool)
    return pri < flat[k]


def mask(
    image: np.ndarray,
    *,
    coverage: float,
    shape: str = "blocks",
    fill: float = 0.0,
    field: MaskField,
) -> np.ndarray:
    """Inpainting mask: set the pixels of a growing, nested mask to ``fill``.

    ``shape="blocks"``: random rectangles (6–30 % of each side); ``"strokes"``: free-form
    brush strokes (random walks 2–6 % of the longer side thick). Every shape has a fixed
    random threshold and the mask at ``coverage`` is the union of the shapes, in threshold
    order, that covers at most that fraction of the image (:func:`mask_at`); beyond the
    shapes' union (≈ 0.9 of the area) an 8 × 8 grid of tiles fills the rest. Masks are
    nested as t grows, so damage is monotone by construction.

    Examples
    --------
    >>> img = np.ones((32, 32, 3), np.float32)
    >>> f = MaskField.draw(np.random.default_rng(0), img.shape)
    >>> out = mask(img, coverage=0.5, field=f)
    >>> 0.3 < float((out == 0).all(axis=2).mean()) <= 0.5
    True
    """
    out = image.copy()
    if coverage <= 0:
        return out
    out[mask_at(field, image.shape, coverage, shape)] = np.float32(fill)
    return out


register(
    Op(
        "mask",
        mask,
        (
            Param("coverage", 0.0, 0.6, low=0.0, high=1.0, unit="of area",
                  help="fraction of the image masked (nested: masks only grow with t)"),
            Param("shape", "blocks", kind="choice", choices=_MASK_SHAPES,
                  help="random rectangles or free-form brush strokes"),
            Param("fill", 0.0, curve="constant", low=0.0, high=1.0,
                  help="value of masked pixels (0: black)"),
        ),
        family="mixing",
        description="inpainting mask growing with t (random blocks or brush strokes)",
        field=_mask_field,
    )
)


# -- ops that mix in other images of the dataset: patches, blend ---------------------------
#
# Their partner images come from the caller (the builder draws them, keyed by sample, op
# position and op name, from the build's sorted source list, within the sample's split; replay
# gets them back from the dataset's clean frames by the keys the recipe records). The kernels
# stay pure: partners arrive as arguments.

_PATCH_MAX = 256
PATCH_PARTNERS = 3


def _patch_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Per candidate patch: activation threshold, size, position (y, x), partner index and
    # source position (y, x) in the partner, all as uniforms in [0, 1). Thresholds are sorted,
    # so patches paste in a fixed order and the active set at t is a prefix: nested in t.
    u = rng.random((_PATCH_MAX, 7))
    u[:, 0] = np.sort(rng.random(_PATCH_MAX))
    return u


def patches(
    image: np.ndarray,
    *,
    amount: float,
    count: int,
    size: float,
    partners: list[np.ndarray],
    field: np.ndarray,
) -> np.ndarray:
    """Paste square patches cut from other images of the dataset.

    Of ``count`` candidate patches (positions, sizes from 0.5·``size`` to ``size`` of the
    short side, and sources fixed by the field), those whose threshold is below ``amount``
    are pasted, in threshold order: the set pasted at step k is contained in the set at
    step k+1.

    Examples
    --------
    >>> img = np.zeros((8, 8, 1), np.float32); other = np.ones((8, 8, 1), np.float32)
    >>> f = _patch_field(np.random.default_rng(0), img.shape)
    >>> float(patches(img, amount=1.0, count=4, size=0.5, partners=[other] * 3, field=f).max())
    1.0
    """
    out = image.copy()
    h, w = image.shape[:2]
    short = min(h, w)
    n = int(min(count, _PATCH_MAX))
    for i in range(n):
        th, s, py, px, pj, sy, sx = field[i]
        if th >= amount:
            break
        side = max(1, round(short * size * (0.5 + 0.5 * s)))
        ph, pw = min(side, h), min(side, w)
        y, x = int(py * (h - ph + 1)), int(px * (w - pw + 1))
        src = partners[int(pj * len(partners)) % len(partners)]
        yy, xx = int(sy * (h - ph + 1)), int(sx * (w - pw + 1))
        out[y : y + ph, x : x + pw] = src[yy : yy + ph, xx : xx + pw]
    return out


def blend(
    image: np.ndarray,
    *,
    weight: float,
    curve: str,
    mislabeled: bool,
    partners: list[np.ndarray],
) -> np.ndarray:
    """Mix in another image of the dataset (Cold Diffusion's "animorphosis").

    ``curve="linear"`` (default) is (1−w)·x0 + w·z: the distance to x0 grows in proportion
    to w, so damage is monotone in t. ``curve="sqrt"`` is the reference's variance-
    preserving mix in [−1, 1], x = √(1−w)·x0 + √w·z, so with the cosine schedule
    (t = 1 − ᾱ) and ``weight`` = t it is x_t = √ᾱ·x0 + √(1−ᾱ)·z; it is not monotone near
    w = 1 (the mix overshoots and clips before landing on z), which the Cold Diffusion preset
    accepts as published. ``mislabeled=true`` asks the caller for a partner whose label
    differs (the kernel itself ignores it).

    Examples
    --------
    >>> a = np.zeros((2, 2, 1), np.float32); b = np.ones((2, 2, 1), np.float32)
    >>> float(blend(a, weight=1.0, curve="linear", mislabeled=False, partners=[b])[0, 0, 0])
    1.0
    """
    del mislabeled
    z = partners[0].astype(np.float32)
    w = np.float32(weight)
    if curve == "linear":
        return (1 - w) * image + w * z
    a, b = np.float32(np.sqrt(1.0 - weight)), np.float32(np.sqrt(weight))
    return ((a * (2 * image - 1) + b * (2 * z - 1)) + 1) * np.float32(0.5)


register(
    Op(
        "patches",
        patches,
        (
            Param("amount", 0.0, 1.0, low=0.0, high=1.0, unit="fraction",
                  help="fraction of the candidate patches pasted"),
            Param("count", 16, kind="int", curve="constant", low=1, high=_PATCH_MAX,
                  help="candidate patches"),
            Param("size", 0.3, curve="constant", low=0.01, high=1.0, unit="× short side",
                  help="largest patch side"),
        ),
        family="mixing",
        description="paste patches cut from other images of the dataset (nested, growing)",
        field=_patch_field,
        needs=("partners",),
        partners=PATCH_PARTNERS,
    )
)

register(
    Op(
        "blend",
        blend,
        (
            Param("weight", 0.0, 1.0, low=0.0, high=1.0, help="weight of the other image"),
            Param("curve", "linear", kind="choice", choices=("linear", "sqrt"),
                  help="linear: (1-w)x + wz; sqrt: variance-preserving (Cold Diffusion)"),
            Param("mislabeled", False, kind="bool",
                  help="pick a partner whose label differs from the sample's"),
        ),
        family="mixing",
        description="blend in another image of the dataset (Cold Diffusion animorphosis)",
        needs=("partners",),
        partners=1,
        aliases=("animorphosis",),
    )
)
