"""degrade: datasets of degradation sequences.

Seeded corruption operators with a continuous severity t, pipelines that turn a clean image
x0 into x1 … xT, and recipes that replay them bit for bit.

Examples
--------
>>> import numpy as np, degrade
>>> p = degrade.Pipeline.parse("blur,jpeg", steps=4, seed=0)
>>> frames, recipe = p.run(np.full((16, 16, 3), 0.5, np.float32), key="demo")
>>> len(frames)
5
"""

from __future__ import annotations

__version__ = "0.1.0"

from degrade.build import build
from degrade.errors import DegradeError
from degrade.pipeline import Pipeline, parse_ops, replay
from degrade.registry import Op, Param, get_op, list_ops, register
from degrade.seeding import rng_for
from degrade.verify import inspect, verify

__all__ = [
    "DegradeError",
    "Op",
    "Param",
    "Pipeline",
    "__version__",
    "build",
    "get_op",
    "inspect",
    "list_ops",
    "parse_ops",
    "register",
    "replay",
    "rng_for",
    "verify",
]
