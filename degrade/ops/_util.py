"""Small helpers shared by kernels (shape handling for OpenCV, channel-wise ops)."""

from __future__ import annotations

import numpy as np


def restore_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Give ``out`` the H×W×C layout of ``like`` (OpenCV drops a single channel).

    Examples
    --------
    >>> restore_channels(np.zeros((2, 2), np.float32), np.zeros((2, 2, 1), np.float32)).shape
    (2, 2, 1)
    """
    if out.ndim == 2:
        out = out[:, :, None]
    return np.ascontiguousarray(out, dtype=np.float32)
