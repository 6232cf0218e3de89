"""Schedules: step k of T → severity t_k in [0, 1], with t_0 = 0 (the clean image) and t_T = 1.

Each schedule is a function of u = k / T defined at every k:

- ``linear``: t = u.
- ``cosine``: t = 1 − ᾱ(u), the improved-DDPM cosine schedule (s = 0.008) normalised so
  that ᾱ(0) = 1: damage grows slowly at first and fastest in the middle.
- ``geometric``: t = (b^u − 1) / (b − 1) with b = 1000: each step multiplies (t + 1/(b−1))
  by the same factor, so early steps are small and late ones large.

``calibrated`` schedules (equal metric drops per step) are computed from data elsewhere and
passed in as explicit lists.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from degrade.errors import DegradeError

__all__ = ["SCHEDULES", "schedule_ts", "schedule_value"]

SCHEDULES = ("linear", "cosine", "geometric")
_COSINE_S = 0.008
_GEOMETRIC_BASE = 1000.0


def _cos_alpha(u: float) -> float:
    return math.cos((u + _COSINE_S) / (1 + _COSINE_S) * math.pi / 2) ** 2


def schedule_value(name: str, u: float) -> float:
    """Return t for the fraction ``u`` = k / T of the sequence under schedule ``name``.

    Examples
    --------
    >>> schedule_value("linear", 0.25)
    0.25
    >>> schedule_value("cosine", 0.0), schedule_value("cosine", 1.0)
    (0.0, 1.0)
    """
    if not 0.0 <= u <= 1.0:
        raise DegradeError(f"schedule position must be in [0, 1], got {u}")
    if u == 0.0:
        return 0.0
    if u == 1.0:
        return 1.0
    if name == "linear":
        return float(u)
    if name == "cosine":
        return float(min(1.0, max(0.0, 1.0 - _cos_alpha(u) / _cos_alpha(0.0))))
    if name == "geometric":
        return float((_GEOMETRIC_BASE**u - 1.0) / (_GEOMETRIC_BASE - 1.0))
    raise DegradeError(f"unknown schedule '{name}'; choose from {', '.join(SCHEDULES)}, calibrated")


def schedule_ts(name: str | Sequence[float], steps: int) -> list[float]:
    """Return [t_0, …, t_T] for ``steps`` = T under a schedule name or an explicit list.

    An explicit list gives t_1 … t_T (or t_0 … t_T with t_0 = 0); it must increase and end
    at most at 1.

    Examples
    --------
    >>> schedule_ts("linear", 4)
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DegradeError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(name, str):
        return [schedule_value(name, k / steps) for k in range(steps + 1)]
    ts = [float(x) for x in name]
    if len(ts) == steps:
        ts = [0.0, *ts]
    if len(ts) != steps + 1:
        raise DegradeError(f"an explicit schedule needs {steps} values (t_1 … t_T), got {len(ts)}")
    if ts[0] != 0.0:
        raise DegradeError("an explicit schedule starts at t_0 = 0")
    if any(not 0.0 <= t <= 1.0 for t in ts):
        raise DegradeError("schedule values must lie in [0, 1]")
    if any(b < a for a, b in itertools.pairwise(ts)):
        raise DegradeError("schedule values must not decrease")
    return ts
