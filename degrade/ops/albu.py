"""albumentations adapter: ``albu`` runs one albumentations transform as a keyed, replayable op.

``albu:transform=GaussNoise`` drives the transform's built-in severity argument (the table
:data:`SEVERITY` below) with t; ``albu:transform=RandomFog:arg=fog_coef_range:value=0.2..0.9``
drives any constructor argument over a range of your choice (a ``*_range`` / ``*_limit``
argument gets the degenerate range ``(v, v)``, so albumentations draws nothing for it).

Keyed and replayable: the value that moves with t is ours, computed from the schedule and
recorded in the recipe at every step. What the transform still draws by itself (fog
particles, noise textures, snow flakes) comes from its generators, seeded per call with an
integer from this op's field — drawn once per (seed, sample key, op position), so every step
reseeds them identically (common random numbers) and a replay anywhere redraws the same.

Needs the ``albu`` extra (``pip install 'degrade[albu]'``); the core never imports
albumentations, and this module imports it only when the op runs.

Known albumentations 2.0.8 defects that matter here, and what the adapter does:

- ``ImageCompression`` hands RGB pixels to OpenCV's encoder, which takes them for BGR (the
  luma and the subsampled chroma are computed from swapped channels: ≈ 3 grey levels of error
  at quality 50). The adapter detects the behaviour once per process and, if present, swaps
  the channels around the call, so the result is a true RGB JPEG/WebP round trip.
- Noise transforms built on its ``generate_noise`` (``GaussNoise`` and others) reseed
  OpenCV's thread-local RNG (16-bit seed) and draw from it. degrade never uses that RNG, so
  results stay keyed, but only 65 536 different noise textures exist.
- Importing albumentations queries PyPI for a newer version unless
  ``NO_ALBUMENTATIONS_UPDATE`` is set; the adapter sets it (if unset) before importing, so a
  build never touches the network.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import os
import warnings
from typing import Any

import cv2
import numpy as np

from degrade.errors import DegradeError
from degrade.ops._util import restore_channels
from degrade.registry import Op, Param, register

__all__ = ["SEVERITY", "albu", "albu_arguments"]

#: Built-in severity argument per transform: ``name -> (argument, value near t = 0, value
#: at t = 1)``. With ``arg`` empty, ``value`` is a fraction of this span (0 → first, 1 →
#: second). The t = 1 ends are strong but recognisable on 256 px photos.
SEVERITY: dict[str, tuple[str, float, float]] = {
    "Downscale": ("scale_range", 1.0, 0.25),
    "Emboss": ("alpha", 0.0, 1.0),
    "GaussNoise": ("std_range", 0.0, 0.2),
    "ISONoise": ("intensity", 0.0, 0.6),
    "ImageCompression": ("quality_range", 100, 10),
    "PlasmaShadow": ("shadow_intensity_range", 0.0, 0.8),
    "RandomFog": ("fog_coef_range", 0.0, 0.8),
    "RandomGamma": ("gamma_limit", 100, 300),
    "RandomSnow": ("snow_point_range", 0.0, 0.5),
    "SaltAndPepper": ("amount", 0.0, 0.1),
    "Sharpen": ("alpha", 0.0, 1.0),
    "Solarize": ("threshold_range", 1.0, 0.5),
    "Spatter": ("intensity", 0.0, 0.6),
}

#: Transforms whose 2.0.8 implementation treats RGB input as BGR (see the module docs).
_BGR_SUSPECTS = frozenset({"ImageCompression"})
#: An image with a smaller side that the transform fails on is edge-replicated up to it and
#: cropped back: every built-in severity transform runs from here (Downscale at 0.25 needs 4 px).
_MIN_SIDE = 8


def _albumentations() -> Any:
    # The update check is network I/O at import time; a user's own setting wins.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        import albumentations
    except ImportError as exc:
        raise DegradeError(
            "albu needs albumentations: pip install 'degrade[albu]'"
        ) from exc
    return albumentations


def _transform_class(name: str) -> type:
    A = _albumentations()
    cls = getattr(A, name, None) if name and not name.startswith("_") else None
    if not (inspect.isclass(cls) and issubclass(cls, A.BasicTransform)):
        known = sorted(
            n for n in dir(A) if inspect.isclass(getattr(A, n)) and issubclass(getattr(A, n), A.BasicTransform)
        )
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f" (e.g. {', '.join(sorted(SEVERITY)[:5])})"
        raise DegradeError(f"albu: '{name}' is not an albumentations transform{hint}")
    return cls


def albu_arguments(transform: str) -> dict[str, Any]:
    """Return the constructor arguments of an albumentations transform and their defaults.

    Examples
    --------
    >>> albu_arguments("GaussNoise")["std_range"]
    (0.2, 0.44)
    """
    cls = _transform_class(transform)
    sig = inspect.signature(cls.__init__)
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in sig.parameters.items()
        if k not in ("self", "p", "always_apply") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _is_int(default: Any) -> bool:
    items = default if isinstance(default, (tuple, list)) else (default,)
    return bool(items) and all(isinstance(v, int) and not isinstance(v, bool) for v in items)


def _argument(transform: str, arg: str, value: float) -> tuple[str, Any]:
    """Resolve (argument name, value passed to the constructor)."""
    args = albu_arguments(transform)
    if not arg:
        if transform not in SEVERITY:
            raise DegradeError(
                f"albu: {transform} has no built-in severity argument; give one with"
                f" arg=NAME:value=A..B (arguments: {', '.join(args) or '(none)'})"
            )
        arg, v0, v1 = SEVERITY[transform]
        value = v0 + float(value) * (v1 - v0)
    if arg not in args:
        raise DegradeError(
            f"albu: {transform} has no argument '{arg}' (arguments: {', '.join(args) or '(none)'})"
        )
    default = args[arg]
    v: Any = math.floor(float(value) + 0.5) if _is_int(default) else float(value)
    if isinstance(default, (tuple, list)) or arg.endswith(("_range", "_limit")):
        v = (v, v)
    return arg, v


@functools.cache
def _treats_rgb_as_bgr(transform: str) -> bool:
    """Probe once: does the transform encode an RGB image as if it were BGR?"""
    if transform not in _BGR_SUSPECTS:
        return False
    cls = _transform_class(transform)
    yy, xx = np.mgrid[0:16, 0:16]
    img = np.stack([xx * 16, yy * 16, 255 - xx * 8], axis=2).astype(np.uint8)
    tr = cls(quality_range=(50, 50), p=1.0)
    tr.set_random_seed(0)
    got = tr(image=img)["image"]
    ok, buf = cv2.imencode(".jpg", img, (cv2.IMWRITE_JPEG_QUALITY, 50))
    as_bgr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return bool(ok) and np.array_equal(got, as_bgr)


def _run(cls: type, kwargs: dict[str, Any], image: np.ndarray, seed: int) -> np.ndarray:
    tr = cls(**kwargs, p=1.0)
    tr.set_random_seed(seed)
    return np.asarray(tr(image=image)["image"])


def albu(image: np.ndarray, *, transform: str, arg: str = "", value: float, field: int) -> np.ndarray:
    """Apply the albumentations ``transform`` with argument ``arg`` set to ``value``.

    With ``arg`` empty, ``value`` in [0, 1] moves the transform's built-in severity
    argument (:data:`SEVERITY`) from its gentle to its strong end; otherwise ``value`` is
    ``arg``'s own value (``(value, value)`` for range arguments; rounded for integer ones).
    The transform's own random draws come from its generators seeded with ``field``. A
    one-channel image goes through as it is, or — for transforms that require colour — as
    grey RGB, averaged back. An output of another size is resized back to the input's.

    Not monotone by construction: whether damage grows with ``value`` depends on the
    wrapped transform (some redraw their randomness differently as the argument moves, e.g.
    the number of fog particles), so the op declares ``monotone=False`` and a calibrated
    schedule makes sequences monotone per image.

    Examples
    --------
    >>> img = np.full((64, 64, 3), 0.5, np.float32)
    >>> out = albu(img, transform="GaussNoise", value=0.5, field=0)
    >>> round(float(out.std()), 1)
    0.1
    """
    cls = _transform_class(transform)
    name, v = _argument(transform, arg, value)
    x = np.ascontiguousarray(image, dtype=np.float32)
    try:
        out = _apply(cls, transform, name, v, x, int(field))
    except DegradeError:
        h0, w0 = x.shape[:2]
        if min(h0, w0) >= _MIN_SIDE:
            raise
        # Some transforms fail on tiny images (PlasmaShadow at 1×1, Downscale below 4 px):
        # edge-replicate up to the minimum side, transform, crop back. Only where the image
        # itself failed, so every output that worked before stays the same.
        pad = cv2.copyMakeBorder(x, 0, max(0, _MIN_SIDE - h0), 0, max(0, _MIN_SIDE - w0), cv2.BORDER_REPLICATE)
        out = np.ascontiguousarray(_apply(cls, transform, name, v, restore_channels(pad, x), int(field))[:h0, :w0])
    if out.shape != image.shape:
        raise DegradeError(f"albu: {transform} returned shape {out.shape} for input {image.shape}")
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _apply(cls: type, transform: str, name: str, v: Any, x: np.ndarray, seed: int) -> np.ndarray:
    """Run the transform on float32 ``x``; float32 out, resized back to ``x``'s size."""
    swap = x.shape[2] == 3 and _treats_rgb_as_bgr(transform)
    if swap:
        x = np.ascontiguousarray(x[:, :, ::-1])
    grey_as_rgb = False
    try:
        # numpy's divide/invalid warnings too: PlasmaShadow takes log2(0) on a 1×1 image
        # before it fails (and is retried padded).
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", UserWarning)
            try:
                out = _run(cls, {name: v}, x, seed)
            except ValueError as exc:
                if x.shape[2] != 1 or "3-channel" not in str(exc):
                    raise
                grey_as_rgb = True
                out = _run(cls, {name: v}, np.ascontiguousarray(np.repeat(x, 3, axis=2)), seed)
    except Exception as exc:  # pydantic validation, OpenCV assertions, ...
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()][:3]
        first = "; ".join(lines) or type(exc).__name__
        raise DegradeError(f"albu: {transform}({name}={v!r}) failed: {first}") from None
    out = out.astype(np.float32) / 255.0 if out.dtype == np.uint8 else out.astype(np.float32)
    if grey_as_rgb:
        out = out.mean(axis=2, keepdims=True, dtype=np.float32)
    out = restore_channels(np.asarray(out, dtype=np.float32), x)
    if swap:
        out = np.ascontiguousarray(out[:, :, ::-1])
    if out.shape[:2] != x.shape[:2]:
        h, w = x.shape[:2]
        shrink = out.shape[0] * out.shape[1] > h * w
        out = restore_channels(
            cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR), x
        )
    return out


def _albu_field(rng: np.random.Generator, shape: tuple[int, ...]) -> int:
    # One integer seed per sample for the transform's own generators (numpy and random).
    return int(rng.integers(0, 2**32))


register(
    Op(
        "albu",
        albu,
        (
            Param("transform", "PlasmaShadow", kind="str",
                  help="albumentations transform class name (needs the albu extra)"),
            Param("arg", "", kind="str",
                  help="constructor argument driven by t; empty: the built-in severity argument"),
            Param("value", 0.0, 1.0,
                  help="with arg empty: fraction of the built-in severity span; else arg's value"),
        ),
        family="albu",
        description="one albumentations transform, driven by t, keyed and replayable",
        monotone=False,
        field=_albu_field,
    )
)
