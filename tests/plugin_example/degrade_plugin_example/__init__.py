"""An example degrade plugin: ``plugin_speckle`` (multiplicative noise with a keyed field).

A plugin is a package that exposes :class:`degrade.Op` objects under the ``degrade.ops``
entry-point group (see this folder's ``pyproject.toml``). degrade loads them the first time
the registry is used, and every op, plugin or built-in, obeys the same contract
(tests/ops/test_contract.py runs over all of them).
"""

from __future__ import annotations

import numpy as np

from degrade import Op, Param

__all__ = ["OPS", "plugin_speckle"]


def _normal_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # One standard normal per pixel and channel, drawn once per sample, reused at every step.
    return rng.standard_normal(shape, dtype=np.float32)


def plugin_speckle(image: np.ndarray, *, sigma: float, field: np.ndarray) -> np.ndarray:
    """Speckle noise x · (1 + sigma · n), n the sample's fixed standard normal field.

    Examples
    --------
    >>> img = np.full((1, 2, 1), 0.5, np.float32)
    >>> plugin_speckle(img, sigma=0.5, field=np.array([[[1.0], [-1.0]]], np.float32)).ravel().tolist()
    [0.75, 0.25]
    """
    out = image * (np.float32(1.0) + np.float32(sigma) * field)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


OPS = [
    Op(
        "plugin_speckle",
        plugin_speckle,
        (Param("sigma", 0.0, 0.4, low=0.0, high=2.0, help="relative noise std"),),
        family="plugin",
        description="example plugin: speckle noise",
        field=_normal_field,
    )
]
