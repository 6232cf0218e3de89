"""Shared test images: small, varied, deterministic."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from skimage import data


def _crop_resize(img: np.ndarray, size: int, y: float, x: float, frac: float) -> np.ndarray:
    h, w = img.shape[:2]
    s = int(min(h, w) * frac)
    y0, x0 = int((h - s) * y), int((w - s) * x)
    crop = img[y0 : y0 + s, x0 : x0 + s]
    out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return out


@functools.lru_cache(maxsize=8)
def _varied(size: int) -> tuple[np.ndarray, ...]:
    photos = [
        _crop_resize(data.astronaut(), size, 0.2, 0.5, 0.5),
        _crop_resize(data.coffee(), size, 0.5, 0.5, 0.6),
        _crop_resize(data.chelsea(), size, 0.3, 0.4, 0.7),
        _crop_resize(data.rocket(), size, 0.5, 0.3, 0.8),
        np.repeat(_crop_resize(data.camera(), size, 0.3, 0.3, 0.5)[:, :, None], 3, axis=2),
    ]
    imgs = [p.astype(np.float32) / 255 for p in photos]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    imgs.append(np.stack([xx, yy, 0.5 * (xx + yy)], axis=2))
    checker = (((np.arange(size)[:, None] // 4) + (np.arange(size)[None, :] // 4)) % 2).astype(np.float32)
    imgs.append(np.stack([checker * 0.8 + 0.1] * 3, axis=2))
    rng = np.random.default_rng(1234)
    smooth = cv2.GaussianBlur(rng.random((size, size, 3), dtype=np.float32), (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    imgs.append(smooth.astype(np.float32))
    return tuple(np.ascontiguousarray(i, dtype=np.float32) for i in imgs)


def varied_images(size: int = 48, channels: int = 3) -> list[np.ndarray]:
    """Eight varied float32 images (5 photo crops, gradient, checkerboard, smooth noise)."""
    imgs = [i.copy() for i in _varied(size)]
    if channels == 1:
        imgs = [np.ascontiguousarray(i.mean(axis=2, keepdims=True, dtype=np.float32)) for i in imgs]
    return imgs


@pytest.fixture
def rgb() -> np.ndarray:
    return varied_images(48)[0]


@pytest.fixture
def gray() -> np.ndarray:
    return varied_images(48, channels=1)[0]
