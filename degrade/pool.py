"""The built-in sample pool: seeded crops of scikit-image's photographs, and synthetic images.

The **sample pool** is made of seeded square crops of the photographs that scikit-image
ships inside its wheel (no download). Its seed is fixed (:data:`POOL_SEED`), so the pool is
the same for every user whatever the build's ``--seed``. Grayscale photographs are converted
to 3-channel RGB so that every pool sample has one shape. ``synthetic`` images (gradients,
shapes, checkerboards) are generated from the same seed. :mod:`degrade.sources` lists and
loads them like any other input.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np

from degrade.errors import DegradeError
from degrade.seeding import rng_for

__all__ = ["POOL_MAX", "POOL_PHOTOS", "POOL_SEED", "SYNTHETIC_DEFAULT", "SYNTHETIC_KINDS",
           "photo", "pool_crop", "synthetic"]

#: The scikit-image photographs of the sample pool (all read from the installed package;
#: ``clock`` is motion-blurred, ``retina`` mostly black corners, ``cell`` nearly flat, so
#: they are left out). ``motorcycle`` is the left view of ``stereo_motorcycle``.
POOL_PHOTOS: tuple[str, ...] = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "motorcycle", "page", "rocket", "text",
)  # fmt: skip
#: The pool's own seed: fixed, so the pool does not depend on a build's ``--seed``.
POOL_SEED = 0
#: Largest pool / synthetic index + 1 (ids are zero-padded to 6 digits so they sort by index).
POOL_MAX = 1_000_000
#: Synthetic images made for the reserved input ``synthetic`` when no limit is given.
SYNTHETIC_DEFAULT = 64
#: The kinds of synthetic image, in turn by index.
SYNTHETIC_KINDS = ("gradient", "shapes", "checkerboard")

_SYNTHETIC_SIZE = 256
# Crop side as a fraction of the photograph's short side (log-uniform); small enough to
# show fine detail, large enough that a 64 px sample is not a blurry enlargement.
_POOL_SCALE = (0.3, 0.9)



#: Files of the pool photographs inside scikit-image's ``data`` folder (its wheel ships
#: them); read with Pillow directly, as ``skimage.data`` does, without importing
#: ``skimage.io`` (0.2 s per build worker). Checked pixel for pixel against ``skimage.data``.
_POOL_FILES = {"immunohistochemistry": "ihc.png", "motorcycle": "motorcycle_left.png",
               "hubble_deep_field": "hubble_deep_field.jpg", "rocket": "rocket.jpg"}


@functools.cache
def photo(name: str) -> np.ndarray:
    """One pool photograph as read-only uint8 H×W×3, decoded once per process.

    Examples
    --------
    >>> photo("astronaut").shape
    (512, 512, 3)
    """
    if name not in POOL_PHOTOS:
        raise DegradeError(f"{name!r} is not a pool photograph")
    arr = _photo_file(name)
    if arr is None:
        import skimage.data

        try:
            arr = (
                skimage.data.stereo_motorcycle()[0]
                if name == "motorcycle"
                else getattr(skimage.data, name)()
            )
        except Exception as exc:  # e.g. a scikit-image that no longer ships the file
            raise DegradeError(
                f"sample pool: cannot load scikit-image photograph {name!r} ({exc})"
            ) from None
    arr = np.asarray(arr, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)  # one shape for the whole pool
    arr = np.ascontiguousarray(arr[:, :, :3])
    arr.setflags(write=False)
    return arr


def _photo_file(name: str) -> np.ndarray | None:
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _POOL_FILES.get(name, f"{name}.png")
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except OSError:
        return None  # not shipped as a file: let skimage.data find it


def pool_box(index: int, height: int, width: int) -> tuple[int, int, int]:
    """The seeded crop box (top, left, side) of pool sample ``index`` in a height × width photo.

    Examples
    --------
    >>> pool_box(0, 512, 512) == pool_box(0, 512, 512)
    True
    """
    rng = rng_for(POOL_SEED, "pool", index)
    short = min(height, width)
    lo, hi = _POOL_SCALE
    scale = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    side = max(min(short, 32), min(short, round(scale * short)))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return top, left, side


def pool_crop(index: int) -> tuple[np.ndarray, str, tuple[int, int, int]]:
    """Pool sample ``index``: its crop (a read-only view), photograph and box (top, left, side).

    Examples
    --------
    >>> crop, name, box = pool_crop(0)
    >>> name, crop.shape[0] == crop.shape[1] == box[2]
    ('astronaut', True)
    """
    name = POOL_PHOTOS[index % len(POOL_PHOTOS)]
    full = photo(name)
    top, left, side = pool_box(index, *full.shape[:2])
    return full[top : top + side, left : left + side], name, (top, left, side)


def synthetic(index: int) -> np.ndarray:
    """A noise-free generated image: a gradient, shapes on a gradient, or a checkerboard.

    Examples
    --------
    >>> synthetic(0).shape, synthetic(0).dtype.name
    ((256, 256, 3), 'uint8')
    """
    rng = rng_for(POOL_SEED, "synthetic", index)
    n = _SYNTHETIC_SIZE
    kind = SYNTHETIC_KINDS[index % len(SYNTHETIC_KINDS)]
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1.0)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ramp = xx * math.cos(angle) + yy * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-9)
    c0, c1, c2 = rng.random(3), rng.random(3), rng.random(3)
    img = c0 + (c1 - c0) * ramp[:, :, None]
    if kind == "gradient":
        cy, cx, radius = rng.random(), rng.random(), rng.uniform(0.3, 1.0)
        blob = np.clip(1.0 - np.hypot(yy - cy, xx - cx) / radius, 0.0, 1.0)[:, :, None]
        img = img * (1.0 - blob) + c2 * blob
    elif kind == "checkerboard":
        cell = float(rng.integers(8, 65))
        u = (xx * math.cos(angle / 4) - yy * math.sin(angle / 4)) * (n - 1)
        v = (xx * math.sin(angle / 4) + yy * math.cos(angle / 4)) * (n - 1)
        check = ((np.floor(u / cell) + np.floor(v / cell)) % 2)[:, :, None]
        img = img * (1.0 - check) + c2 * check
    out = np.ascontiguousarray(np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8))
    if kind == "shapes":
        for _ in range(int(rng.integers(3, 9))):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = int(rng.integers(3))
            cx, cy = (int(c) for c in rng.integers(0, n, 2))
            r = int(rng.integers(n // 16, n // 4))
            if shape == 0:
                cv2.circle(out, (cx, cy), r, color, -1, cv2.LINE_AA)
            elif shape == 1:
                cv2.rectangle(out, (cx - r, cy - r // 2), (cx + r, cy + r // 2), color, -1)
            else:
                pts = rng.integers(0, n, (3, 2)).astype(np.int32)
                cv2.fillPoly(out, [pts], color, cv2.LINE_AA)
    return out
