"""Operators: :class:`Param` (declared once), :class:`Op` (a pure kernel plus its spec),
the registry (:func:`register`, :func:`get_op`, :func:`list_ops`) and plugins.

A parameter's value at severity t comes from its *curve*: linear or geometric between its
value near t = 0 and its value at t = 1, piecewise-linear through knots, or constant. The
op itself is exactly the identity at t = 0 whatever its parameters say.
"""

from __future__ import annotations

import difflib
import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from degrade.errors import DegradeError
from degrade.image import as_image, check_image
from degrade.seeding import rng_for

__all__ = [
    "ENTRY_POINT_GROUP",
    "Op",
    "Param",
    "get_op",
    "list_ops",
    "register",
]

ENTRY_POINT_GROUP = "degrade.ops"
CURVES = ("linear", "geometric", "knots", "constant")
KINDS = ("float", "int", "choice", "bool", "str")

Value = Any


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


@dataclass(frozen=True)
class Param:
    """One parameter of an op, declared once.

    Parameters
    ----------
    name : str
        Parameter name as written in ``--ops`` (``blur:sigma=4``).
    at0 : float, int, str or bool
        Value as t → 0 (the least damage). The op is the identity at t = 0 regardless.
    at1 : float, int or None
        Value at t = 1 (full severity). ``None`` for constant parameters.
    curve : {"linear", "geometric", "knots", "constant"}
        How the value moves with t. ``geometric`` interpolates in log space (both ends > 0);
        ``knots`` is piecewise-linear through ``knots``.
    knots : tuple of (t, value)
        For ``curve="knots"``: a table such as the five ImageNet-C levels at t = k/5,
        reproduced exactly there.
    low, high : float, optional
        Inclusive bounds of any value a user may set.
    kind : {"float", "int", "choice", "bool", "str"}
        ``str`` is free text (a model factory path, a transform name), always constant.
    choices : tuple of str
        Allowed values of a ``choice`` parameter.
    unit : str
        Unit shown in ``degrade ops`` (``px``, ``quality``, ...).
    help : str
        One line for the docs and ``degrade ops NAME``.

    Examples
    --------
    >>> Param("sigma", 0.0, 4.0, unit="px").value(0.5)
    2.0
    """

    name: str
    at0: Value
    at1: Value = None
    curve: str = "linear"
    knots: tuple[tuple[float, Value], ...] = ()
    low: float | None = None
    high: float | None = None
    kind: str = "float"
    choices: tuple[str, ...] = ()
    unit: str = ""
    help: str = ""

    def __post_init__(self) -> None:
        if self.curve not in CURVES:
            raise ValueError(f"param {self.name}: curve must be one of {CURVES}")
        if self.kind not in KINDS:
            raise ValueError(f"param {self.name}: kind must be one of {KINDS}")
        if self.kind in ("choice", "bool", "str") and self.curve != "constant":
            object.__setattr__(self, "curve", "constant")
        if self.curve == "knots" and len(self.knots) < 2:
            raise ValueError(f"param {self.name}: a knot curve needs at least two knots")
        if self.curve == "geometric" and not (float(self.at0) > 0 and float(self.at1) > 0):
            raise ValueError(f"param {self.name}: a geometric curve needs both ends > 0")

    # -- values -----------------------------------------------------------------------
    @property
    def is_constant(self) -> bool:
        """True when the value does not move with t (choices, flags, fixed settings)."""
        return self.curve == "constant"

    def coerce(self, value: Value, *, op: str = "") -> Value:
        """Return ``value`` converted to this parameter's kind, or raise :class:`DegradeError`.

        Examples
        --------
        >>> Param("q", 100, 5, kind="int", low=1, high=100).coerce(7.0)
        7
        """
        where = f"{op}:{self.name}" if op else self.name
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise DegradeError(f"{where} must be true or false, got {value!r}")
        if self.kind == "str":
            if isinstance(value, str) and len(value) <= 4096:
                return value
            raise DegradeError(f"{where} must be a string, got {value!r}")
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise DegradeError(
                f"{where} must be one of {', '.join(self.choices)}; got {value!r}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise DegradeError(f"{where} must be a number, got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise DegradeError(f"{where} must be finite, got {value!r}")
        if self.kind == "int":
            if abs(v - round(v)) > 1e-9:
                raise DegradeError(f"{where} must be a whole number, got {value!r}")
            v = round(v)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise DegradeError(
                f"{where}={value!r} is out of range [{_fmt(self.low)}, {_fmt(self.high)}]"
            )
        return v

    def _finish(self, v: float) -> Value:
        if self.low is not None:
            v = max(v, float(self.low))
        if self.high is not None:
            v = min(v, float(self.high))
        if self.kind == "int":
            return _round_half_up(v)
        return float(v)

    def _interp(self, t: float, t_a: float, a: float, t_b: float, b: float, log: bool) -> float:
        if t_b == t_a:
            return b
        u = (t - t_a) / (t_b - t_a)
        if u == 0.0:
            return a
        if u == 1.0:
            return b
        if log and a > 0 and b > 0:
            return math.exp(math.log(a) + (math.log(b) - math.log(a)) * u)
        return a + (b - a) * u

    def value(
        self,
        t: float,
        override: Value = None,
        *,
        t_first: float | None = None,
        step_ts: Sequence[float] | None = None,
    ) -> Value:
        """Return the value at severity ``t``, optionally under a user override.

        Parameters
        ----------
        t : float
            Severity in [0, 1].
        override : optional
            A number or choice (the value at t = 1; for constant params, the value),
            ``{"first": a, "last": b}`` (a at the pipeline's first step, b at t = 1),
            ``{"knots": [[t, v], ...]}``, or a list of one value per step (needs ``step_ts``).
        t_first : float, optional
            Severity of the pipeline's first step (anchors ``first``); 0 when absent.
        step_ts : sequence of float, optional
            t_0 … t_T of the pipeline (anchors a per-step list).

        Examples
        --------
        >>> p = Param("quality", 100, 5, kind="int")
        >>> p.value(1.0, {"first": 10, "last": 5}, t_first=0.5), p.value(0.5, {"first": 10, "last": 5}, t_first=0.5)
        (5, 10)
        """
        log = self.curve == "geometric"
        if override is None:
            if self.curve == "constant":
                return self.at0
            if self.curve == "knots":
                ts = [float(k[0]) for k in self.knots]
                vs = [float(k[1]) for k in self.knots]
                return self._finish(float(np.interp(t, ts, vs)))
            return self._finish(self._interp(t, 0.0, float(self.at0), 1.0, float(self.at1), log))
        if self.curve == "constant" or self.kind in ("choice", "bool", "str"):
            if isinstance(override, (dict, list, tuple)):
                raise DegradeError(f"{self.name} is a fixed setting; give one value, not a range")
            return override
        if isinstance(override, Mapping):
            if "knots" in override:
                ts = [float(k[0]) for k in override["knots"]]
                vs = [float(k[1]) for k in override["knots"]]
                return self._finish(float(np.interp(t, ts, vs)))
            a, b = float(override["first"]), float(override["last"])
            tf = 0.0 if t_first is None else float(t_first)
            return self._finish(self._interp(t, tf, a, 1.0, b, log))
        if isinstance(override, (list, tuple)):
            if step_ts is None or len(override) != len(step_ts) - 1:
                raise DegradeError(
                    f"{self.name}: a per-step list needs exactly one value per step"
                    f" ({0 if step_ts is None else len(step_ts) - 1}), got {len(override)}"
                )
            ts = [float(x) for x in step_ts]
            vs = [float(self.at0 if self.curve != "knots" else self.knots[0][1])]
            vs += [float(v) for v in override]
            if t in ts:
                return self._finish(vs[ts.index(t)])
            return self._finish(float(np.interp(t, ts, vs)))
        b = float(override)
        if self.curve == "knots":
            # A single value rescales the table so that t = 1 lands on it.
            last = float(self.knots[-1][1])
            first = float(self.knots[0][1])
            base = float(np.interp(t, [float(k[0]) for k in self.knots], [float(k[1]) for k in self.knots]))
            if last == first:
                return self._finish(b)
            return self._finish(first + (base - first) * (b - first) / (last - first))
        return self._finish(self._interp(t, 0.0, float(self.at0), 1.0, b, log))

    def normalise_override(self, override: Value, *, op: str = "") -> Value:
        """Check a user override and return its JSON form (validated values, plain types).

        Examples
        --------
        >>> Param("sigma", 0.0, 4.0, low=0, high=50).normalise_override({"first": 1, "last": 3})
        {'first': 1.0, 'last': 3.0}
        """
        where = f"{op}:{self.name}" if op else self.name
        if isinstance(override, Mapping):
            if self.is_constant:
                raise DegradeError(f"{where} is a fixed setting; give one value, not a range")
            if set(override) == {"first", "last"}:
                return {
                    "first": self.coerce(override["first"], op=op),
                    "last": self.coerce(override["last"], op=op),
                }
            if set(override) == {"knots"}:
                knots = override["knots"]
                if not isinstance(knots, (list, tuple)) or len(knots) < 2:
                    raise DegradeError(f"{where}: knots must be a list of at least two [t, value] pairs")
                out = []
                for pair in knots:
                    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                        raise DegradeError(f"{where}: each knot must be a [t, value] pair, got {pair!r}")
                    tk = float(pair[0])
                    if not 0.0 <= tk <= 1.0:
                        raise DegradeError(f"{where}: knot t={pair[0]!r} is outside [0, 1]")
                    out.append([tk, self.coerce(pair[1], op=op)])
                if any(b[0] <= a[0] for a, b in itertools.pairwise(out)):
                    raise DegradeError(f"{where}: knot positions must increase")
                return {"knots": out}
            raise DegradeError(
                f"{where}: a range is {{first, last}} or {{knots}}, got keys {sorted(override)}"
            )
        if isinstance(override, (list, tuple)):
            if self.is_constant:
                raise DegradeError(f"{where} is a fixed setting; give one value, not a list")
            if not override:
                raise DegradeError(f"{where}: a per-step list cannot be empty")
            return [self.coerce(v, op=op) for v in override]
        return self.coerce(override, op=op)

    def describe(self) -> tuple[str, str]:
        """Return the (t=0, t=1) values as text for tables.

        Examples
        --------
        >>> Param("sigma", 0.0, 4.0).describe()
        ('0', '4')
        """
        if self.curve == "constant":
            v = _fmt(self.at0)
            return v, v
        if self.curve == "knots":
            return _fmt(self.knots[0][1]), _fmt(self.knots[-1][1])
        return _fmt(self.at0), _fmt(self.at1)


def _fmt(v: Value) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


FieldFn = Callable[[np.random.Generator, tuple[int, ...]], Any]


def _clip01(out: np.ndarray) -> np.ndarray:
    # Every op's output is clipped to [0, 1] once, here (in place when already float32).
    return np.clip(out, 0.0, 1.0, out=out) if out.dtype == np.float32 else np.clip(
        out.astype(np.float32), 0.0, 1.0
    )


@dataclass(frozen=True)
class Op:
    """A corruption operator: a pure kernel plus the declaration of its parameters.

    The kernel is called as ``kernel(image, **params)`` (plus ``field=...`` when the op has
    a random field) and returns a new float32 image of the same shape.

    Parameters
    ----------
    name : str
        The op's name in ``--ops``; never changes once released.
    kernel : callable
        ``kernel(image, *, <params>, field) -> image``; pure: no I/O, no global state.
    params : tuple of Param
    family : str
        ``blur``, ``noise``, ``compression``, ``sampling``, ``color``, ``mixing``, ...
    description : str
        One line for ``degrade ops``.
    version : int
        Bumped whenever the kernel's output changes; recorded in every recipe.
    monotone : bool
        False when the raw parameter is not monotone in damage (the docstring says why).
    aliases : tuple of str
        Other accepted names (ImageNet-C's, for instance).
    field : callable, optional
        ``field(rng, shape) -> object``: the random field, drawn once per sample and op and
        reused at every step.
    codec : str, optional
        For ops whose output *is* an encoded file (``jpg``, ``webp``): the file extension.
    encode : callable, optional
        With ``codec``: ``encode(image, **params) -> bytes``; the kernel equals decoding it.
    decode : callable, optional
        With ``codec``: ``decode(bytes) -> uint8 H×W×C``.
    needs : tuple of str
        Context the kernel needs from the caller: ``"partners"`` (other images of the
        dataset, given to the kernel as ``partners=[float32 images]``).
    partners : int
        With ``needs=("partners",)``: how many partner images the kernel gets.
    advance : callable, optional
        ``advance(history, params) -> image or None``: this op's output at ``params``
        computed from its outputs at earlier steps on the same input (``history``: up to
        ``advance_history`` (params, output) pairs, oldest first; None: not possible, run
        the kernel). An absolute-mode sequence whose first op has it computes steps that
        way (blur: the small remaining σ); it is part of the op's definition, so changing
        it bumps ``version``.
    advance_history : int
        How many earlier steps the pipeline keeps for ``advance``.

    Examples
    --------
    >>> op = Op("invert", lambda im, amount: (1 - im) * amount + im * (1 - amount),
    ...         (Param("amount", 0.0, 1.0),), family="color", description="invert")
    >>> float(op(np.zeros((1, 1, 1), np.float32), t=1.0)[0, 0, 0])
    1.0
    """

    name: str
    kernel: Callable[..., np.ndarray]
    params: tuple[Param, ...]
    family: str
    description: str
    version: int = 1
    monotone: bool = True
    aliases: tuple[str, ...] = ()
    field: FieldFn | None = None
    codec: str | None = None
    encode: Callable[..., bytes] | None = None
    decode: Callable[[bytes], np.ndarray] | None = None
    needs: tuple[str, ...] = ()
    partners: int = 0
    advance: Callable[[Sequence[tuple[Mapping[str, Value], np.ndarray]], Mapping[str, Value]],
                      np.ndarray | None] | None = None
    advance_history: int = 1

    @property
    def stochastic(self) -> bool:
        """True when the op draws a random field (so another key gives another result)."""
        return self.field is not None

    def param(self, name: str) -> Param:
        """Return the parameter called ``name`` or raise a :class:`DegradeError` listing them.

        Examples
        --------
        >>> get_op("blur").param("sigma").unit
        'px'
        """
        for p in self.params:
            if p.name == name:
                return p
        names = ", ".join(p.name for p in self.params) or "(none)"
        close = difflib.get_close_matches(name, [p.name for p in self.params], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DegradeError(f"op '{self.name}' has no parameter '{name}'{hint} (parameters: {names})")

    def normalise_overrides(self, overrides: Mapping[str, Value] | None) -> dict[str, Value]:
        """Validate user overrides and return their JSON form.

        Examples
        --------
        >>> get_op("blur").normalise_overrides({"sigma": 3})
        {'sigma': 3.0}
        """
        out: dict[str, Value] = {}
        for k, v in (overrides or {}).items():
            out[k] = self.param(k).normalise_override(v, op=self.name)
        return out

    def params_at(
        self,
        t: float,
        overrides: Mapping[str, Value] | None = None,
        *,
        t_first: float | None = None,
        step_ts: Sequence[float] | None = None,
    ) -> dict[str, Value]:
        """Return every parameter's value at severity ``t``.

        Examples
        --------
        >>> get_op("blur").params_at(0.5, {"sigma": 4})
        {'sigma': 2.0, 'kernel': 0}
        """
        ov = overrides or {}
        for k in ov:
            self.param(k)
        return {
            p.name: p.value(t, ov.get(p.name), t_first=t_first, step_ts=step_ts) for p in self.params
        }

    def make_field(self, shape: tuple[int, ...], *, seed: int, key: str, position: int = 0) -> Any:
        """Draw this op's random field for one sample (None for deterministic ops).

        Examples
        --------
        >>> get_op("blur").make_field((4, 4, 3), seed=0, key="a") is None
        True
        """
        if self.field is None:
            return None
        return self.field(rng_for(seed, key, position, self.name), tuple(shape))

    def apply(self, image: np.ndarray, params: Mapping[str, Value], field: Any = None,
              **context: Any) -> np.ndarray:
        """Run the kernel with resolved ``params`` (no severity logic, no checks).

        Examples
        --------
        >>> get_op("blur").apply(np.zeros((3, 3, 1), np.float32), {"sigma": 1.0}).shape
        (3, 3, 1)
        """
        kwargs = dict(params)
        if self.field is not None:
            kwargs["field"] = field
        for need in self.needs:
            if need in context:
                kwargs[need] = context[need]
        return _clip01(self.kernel(image, **kwargs))

    def apply_advance(self, history: Sequence[tuple[Mapping[str, Value], np.ndarray]],
                      params: Mapping[str, Value]) -> np.ndarray | None:
        """This op's output at ``params`` from its earlier outputs (see ``advance``),
        clipped as :meth:`apply` clips; None when the op cannot advance.

        Examples
        --------
        >>> img = np.zeros((3, 3, 1), np.float32)
        >>> get_op("blur").apply_advance([({"sigma": 1.0}, img)], {"sigma": 2.0}).shape
        (3, 3, 1)
        """
        if self.advance is None or not history:
            return None
        out = self.advance(history, params)
        return None if out is None else _clip01(out)

    def remember(self, history: Sequence[tuple[Mapping[str, Value], np.ndarray]],
                 params: Mapping[str, Value], out: np.ndarray) -> list[tuple[Mapping[str, Value], np.ndarray]]:
        """The ``history`` for :meth:`apply_advance` after a step at ``params`` gave ``out``.

        A step that repeats the newest entry's params (a held step) adds nothing; the list
        keeps the latest ``advance_history`` entries.

        Examples
        --------
        >>> h = get_op("blur").remember([], {"sigma": 1.0}, np.zeros((1, 1, 1), np.float32))
        >>> len(get_op("blur").remember(h, {"sigma": 1.0}, h[0][1]))
        1
        """
        if history and dict(history[-1][0]) == dict(params):
            return list(history)
        return [*history, (params, out)][-max(1, self.advance_history):]

    def __call__(
        self,
        image: np.ndarray,
        t: float = 1.0,
        *,
        seed: int = 0,
        key: str = "",
        position: int = 0,
        **overrides: Value,
    ) -> np.ndarray:
        """Apply the op at severity ``t`` to one image (float32 in, float32 out).

        The result is not quantised to 8 bits (a :class:`~degrade.pipeline.Pipeline` does
        that, as a writer would).

        Examples
        --------
        >>> img = np.full((8, 8, 3), 0.5, np.float32)
        >>> bool((get_op("blur")(img, t=0.0) == img).all())
        True
        """
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)):
            raise DegradeError(f"t must be a number in [0, 1], got {t!r}")
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise DegradeError(f"t must be in [0, 1], got {t}")
        context = {k: overrides.pop(k) for k in list(overrides) if k in self.needs}
        image = image if isinstance(image, np.ndarray) and image.dtype == np.float32 else as_image(image)
        check_image(image)
        if t == 0.0:
            return image.copy()
        params = self.params_at(t, self.normalise_overrides(overrides))
        fld = self.make_field(image.shape, seed=seed, key=key, position=position)
        return self.apply(image, params, fld, **context)


# -- the registry -------------------------------------------------------------------------

_OPS: dict[str, Op] = {}
_ALIASES: dict[str, str] = {}
_LOADED = False


def register(op: Op, *, replace: bool = False) -> Op:
    """Add ``op`` to the registry (plugins call this, or expose the Op via entry points).

    Raises
    ------
    ValueError
        If the name or an alias is taken and ``replace`` is False.

    Examples
    --------
    >>> op = Op("noop_example", lambda im, k: im.copy(), (Param("k", 0.0, 1.0),),
    ...         family="example", description="does nothing")
    >>> register(op, replace=True).name
    'noop_example'
    """
    if not isinstance(op, Op):
        raise TypeError(f"register() takes an Op, got {type(op).__name__}")
    taken = [n for n in (op.name, *op.aliases) if n in _OPS or n in _ALIASES]
    if taken and not replace:
        raise ValueError(f"op name(s) already registered: {', '.join(taken)}")
    if replace:
        old = _OPS.pop(op.name, None)
        if old is not None:
            for a in old.aliases:
                _ALIASES.pop(a, None)
    _OPS[op.name] = op
    for a in op.aliases:
        _ALIASES[a] = op.name
    return op


def _load_plugins() -> None:
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata
        return
    for ep in sorted(eps, key=lambda e: e.name):
        try:
            obj = ep.load()
            items: Iterable[Any]
            if isinstance(obj, Op):
                items = [obj]
            elif isinstance(obj, (list, tuple)):
                items = obj
            elif callable(obj):
                res = obj()
                items = [res] if isinstance(res, Op) else (res or [])
            else:
                items = []
            for item in items:
                if isinstance(item, Op) and item.name not in _OPS:
                    register(item)
        except Exception as exc:
            warnings.warn(f"degrade: plugin '{ep.name}' failed to load: {exc}", stacklevel=2)


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import degrade.ops  # noqa: F401  (registers the built-in catalog)

    _load_plugins()


def get_op(name: str) -> Op:
    """Return the op called ``name`` (aliases accepted).

    Raises
    ------
    DegradeError
        If no op has that name; the message suggests the closest names.

    Examples
    --------
    >>> get_op("gaussian_blur").name
    'blur'
    """
    _ensure_loaded()
    if not isinstance(name, str):
        raise DegradeError(f"op name must be a string, got {name!r}")
    if name in _OPS:
        return _OPS[name]
    if name in _ALIASES:
        return _OPS[_ALIASES[name]]
    close = difflib.get_close_matches(name, [*_OPS, *_ALIASES], n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise DegradeError(f"unknown op '{name}'{hint} (`degrade ops` lists them)")


def list_ops() -> list[str]:
    """Return the names of all registered ops (built-in and plugins), sorted.

    Examples
    --------
    >>> "blur" in list_ops()
    True
    """
    _ensure_loaded()
    return sorted(_OPS)


def aliases() -> dict[str, str]:
    """Return a copy of the alias → op name table.

    Examples
    --------
    >>> aliases()["gaussian_blur"]
    'blur'
    """
    _ensure_loaded()
    return dict(_ALIASES)
