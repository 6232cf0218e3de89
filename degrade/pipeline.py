"""Composed sequences: ops + schedule + mode → frames x_0 … x_T and a recipe that replays them.

Modes (DESIGN.md, "Pipelines and sequences"):

- ``absolute``: x_k = P(x_0, t_k); every step starts from x_0. Departure from DESIGN's "any
  step alone": a first op with ``Op.advance`` (blur) computes its output at step k from its
  outputs at earlier steps (Gaussians compose: the remaining σ is small, the blur cheap), so
  a subset of steps is run with :func:`execute`'s ``only`` to get the same bytes.
- ``chained``: x_k = P(x_{k-1}) at step k's parameters, applied to the stored (uint8) x_{k-1}.
- ``choice``: chained, and at each step one op of the list is drawn (keyed by sample).

Every frame is exactly what a writer stores: uint8-quantised, or for a step whose last op
encodes a file (``jpeg``, ``webp``) the decoded bytes of that file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from degrade.errors import DegradeError
from degrade.image import as_image, to_float, to_uint8
from degrade.registry import Op, get_op
from degrade.schedule import schedule_ts
from degrade.seeding import rng_for

__all__ = [
    "EXTERNAL",
    "MODES",
    "RECIPE_VERSION",
    "ExternalPipeline",
    "OpSpec",
    "PartnerProvider",
    "Pipeline",
    "SampleFrames",
    "execute",
    "image_sha256",
    "parse_ops",
    "replay",
    "replay_encoded",
]

MODES = ("absolute", "chained", "choice")
RECIPE_VERSION = 1


@dataclass(frozen=True)
class OpSpec:
    """One entry of a pipeline: an op name and the user's overrides of its parameters.

    Examples
    --------
    >>> OpSpec("blur", {"sigma": 4.0}).to_dict()
    {'op': 'blur', 'params': {'sigma': 4.0}}
    """

    op: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"op": self.op, "params": copy.deepcopy(self.params)}


def _parse_scalar(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        v = float(text)
    except ValueError:
        return text.strip()
    return int(v) if v.is_integer() and "." not in text and "e" not in low else v


def _parse_value(text: str, where: str) -> Any:
    if text == "":
        raise DegradeError(f"{where}: missing value after '='")
    if ".." in text:
        a, _, b = text.partition("..")
        first, last = _parse_scalar(a), _parse_scalar(b)
        if a.strip() == "" or b.strip() == "" or isinstance(first, str) or isinstance(last, str):
            raise DegradeError(f"{where}: a range is written a..b with two numbers, got '{text}'")
        return {"first": first, "last": last}
    return _parse_scalar(text)


def parse_ops(spec: str) -> list[OpSpec]:
    """Parse the ``--ops`` syntax: ``name[:key=value[:key=value…]][,name…]``.

    A number sets the parameter's value at t = 1; ``a..b`` sets its value at the first step
    and at t = 1. Names are resolved (aliases become the op's name) and values validated.

    Examples
    --------
    >>> [s.to_dict() for s in parse_ops("gaussian_blur:sigma=4,jpeg:quality=10..5")]
    [{'op': 'blur', 'params': {'sigma': 4.0}}, {'op': 'jpeg', 'params': {'quality': {'first': 10, 'last': 5}}}]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DegradeError("--ops is empty; give ops separated by commas, e.g. blur,jpeg")
    out: list[OpSpec] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise DegradeError(f"--ops '{spec}' has an empty entry (two commas in a row?)")
        name, *opts = part.split(":")
        op = get_op(name.strip())
        params: dict[str, Any] = {}
        for opt in opts:
            k, eq, v = opt.partition("=")
            if not eq or not k.strip():
                raise DegradeError(
                    f"--ops entry '{part}': options are key=value, got '{opt}'"
                )
            k = k.strip()
            if k in params:
                raise DegradeError(f"--ops entry '{part}': '{k}' given twice")
            params[k] = _parse_value(v.strip(), f"{op.name}:{k}")
        out.append(OpSpec(op.name, op.normalise_overrides(params)))
    return out


def _coerce_spec(item: Any) -> OpSpec:
    if isinstance(item, OpSpec):
        op = get_op(item.op)
        return OpSpec(op.name, op.normalise_overrides(item.params))
    if isinstance(item, str):
        specs = parse_ops(item)
        if len(specs) != 1:
            raise DegradeError(f"expected one op, got '{item}'")
        return specs[0]
    if isinstance(item, Mapping):
        unknown = set(item) - {"op", "params"}
        if "op" not in item or unknown:
            raise DegradeError(
                f"an op entry is {{op: NAME, params: {{...}}}}, got keys {sorted(item)}"
            )
        params = item.get("params") or {}
        if not isinstance(params, Mapping):
            raise DegradeError(f"op '{item['op']}': params must be a mapping, got {params!r}")
        op = get_op(item["op"])
        return OpSpec(op.name, op.normalise_overrides(params))
    raise DegradeError(f"cannot read an op entry from {item!r}")


@dataclass
class SampleFrames:
    """The frames of one sample as a writer stores them.

    Attributes
    ----------
    frames : list of ndarray
        uint8 H×W×C arrays, ``frames[0]`` the clean image.
    payloads : list
        Per frame, ``(ext, bytes)`` when the frame is an encoded file (a ``jpeg`` step's
        JPEG bytes), else ``None``.
    recipe : dict
        The JSON recipe.
    """

    frames: list[np.ndarray]
    payloads: list[tuple[str, bytes] | None]
    recipe: dict[str, Any]


class Pipeline:
    """A degradation sequence definition: ops, number of steps, schedule, mode and seed.

    Parameters
    ----------
    ops : sequence
        Op entries: :class:`OpSpec`, ``"name:key=value"`` strings or ``{op, params}`` dicts.
    steps : int
        T, the number of degraded frames after the clean one.
    mode : {"absolute", "chained", "choice"}
    schedule : str or sequence of float
        ``linear``, ``cosine``, ``geometric``, an explicit list t_1 … t_T, or
        ``calibrated[:psnr|:ssim]`` (computed here into an explicit list: degrade.calibrate).
    seed : int
        Seed of every random field.
    monotone : bool
        Per image, no step may be closer to the clean image than the step before (the
        recipe records the adjusted params); on for calibrated schedules.
    calibration : dict, optional
        The record of a calibrated schedule (metric, sample keys, size, seed).

    Examples
    --------
    >>> p = Pipeline.parse("blur,jpeg", steps=4)
    >>> frames, recipe = p.run(np.full((16, 16, 3), 0.5, np.float32), key="x")
    >>> len(frames), recipe["steps"][0]["k"]
    (5, 1)
    """

    def __init__(
        self,
        ops: Sequence[Any],
        *,
        steps: int,
        mode: str = "absolute",
        schedule: str | Sequence[float] = "linear",
        seed: int = 0,
        monotone: bool = False,
        calibration: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(ops, str):
            specs = parse_ops(ops)
        else:
            specs = [_coerce_spec(o) for o in ops]
        if not specs:
            raise DegradeError("a pipeline needs at least one op")
        if mode not in MODES:
            raise DegradeError(f"unknown mode '{mode}'; choose from {', '.join(MODES)}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DegradeError(f"seed must be a non-negative integer, got {seed!r}")
        if isinstance(schedule, str) and schedule.split(":")[0] == "calibrated":
            # Resolved once, here, into an explicit t list (degrade.calibrate); recipes and
            # manifests then carry that list, and per-image monotone adjustment is on.
            from degrade.calibrate import calibrated_schedule

            schedule, calibration = calibrated_schedule(specs, steps=steps, mode=mode, seed=int(seed), spec=schedule)
            monotone = True
        self.monotone = bool(monotone)
        self.calibration: dict[str, Any] | None = dict(calibration) if calibration else None
        self.ops: list[OpSpec] = specs
        self.steps = steps
        self.mode = mode
        self.seed = int(seed)
        self.schedule: str | list[float] = schedule if isinstance(schedule, str) else [
            float(x) for x in schedule
        ]
        self.ts: list[float] = schedule_ts(self.schedule, steps)
        # Resolve every step's parameters once: this also validates per-step lists.
        self._step_params: list[list[dict[str, Any]]] = [
            [
                get_op(s.op).params_at(t, s.params, t_first=self.ts[1], step_ts=self.ts)
                for s in self.ops
            ]
            for t in self.ts
        ]

    # -- construction -----------------------------------------------------------------
    @classmethod
    def parse(
        cls,
        spec: str,
        steps: int,
        mode: str = "absolute",
        schedule: str | Sequence[float] = "linear",
        seed: int = 0,
    ) -> Pipeline:
        """Build a pipeline from the ``--ops`` syntax.

        Examples
        --------
        >>> Pipeline.parse("blur:sigma=4,jpeg:quality=10..5", steps=50).ops[1].params
        {'quality': {'first': 10, 'last': 5}}
        """
        return cls(parse_ops(spec), steps=steps, mode=mode, schedule=schedule, seed=seed)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pipeline:
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> p = Pipeline.parse("noise", steps=3)
        >>> Pipeline.from_dict(p.to_dict()).to_dict() == p.to_dict()
        True
        """
        if not isinstance(d, Mapping):
            raise DegradeError("a pipeline must be a mapping")
        if d.get("mode") == EXTERNAL:
            return ExternalPipeline(steps=d.get("steps"), seed=d.get("seed", 0))  # type: ignore[return-value]
        missing = {"ops", "steps"} - set(d)
        if missing:
            raise DegradeError(f"pipeline is missing {', '.join(sorted(missing))}")
        return cls(
            d["ops"],
            steps=d["steps"],
            mode=d.get("mode", "absolute"),
            schedule=d.get("schedule", "linear"),
            seed=d.get("seed", 0),
            monotone=d.get("monotone", False),
            calibration=d.get("calibration"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the normalised JSON form (what recipes and manifests record).

        Examples
        --------
        >>> Pipeline.parse("blur", steps=2).to_dict()["mode"]
        'absolute'
        """
        out: dict[str, Any] = {
            "ops": [s.to_dict() for s in self.ops],
            "steps": self.steps,
            "mode": self.mode,
            "schedule": self.schedule if isinstance(self.schedule, str) else list(self.schedule),
            "seed": self.seed,
        }
        if self.monotone:
            out["monotone"] = True
        if self.calibration:
            out["calibration"] = copy.deepcopy(self.calibration)
        return out

    def __repr__(self) -> str:
        return f"Pipeline({self.spec!r}, steps={self.steps}, mode={self.mode!r}, schedule={self.schedule!r}, seed={self.seed})"

    @property
    def spec(self) -> str:
        """The ``--ops`` string of this pipeline (ranges as ``a..b``).

        Examples
        --------
        >>> Pipeline.parse("blur:sigma=4,jpeg", steps=2).spec
        'blur:sigma=4,jpeg'
        """

        def fmt(v: Any) -> str:
            if isinstance(v, dict) and "first" in v:
                return f"{fmt(v['first'])}..{fmt(v['last'])}"
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, float):
                return f"{v:g}"
            if isinstance(v, (list, dict)):
                return json.dumps(v, separators=(",", ":"))
            return str(v)

        parts = []
        for s in self.ops:
            parts.append(":".join([s.op, *(f"{k}={fmt(v)}" for k, v in s.params.items())]))
        return ",".join(parts)

    # -- planning ---------------------------------------------------------------------
    def plan(self, key: str) -> list[dict[str, Any]]:
        """Return the per-step plan for one sample: which ops run, at which params.

        Examples
        --------
        >>> Pipeline.parse("blur", steps=2).plan("a")[1]["ops"][0]["params"]
        {'sigma': 4.0, 'kernel': 0}
        """
        if self.mode == "choice":
            draws = rng_for(self.seed, key, "choice").integers(0, len(self.ops), size=self.steps)
        steps = []
        for k in range(1, self.steps + 1):
            positions = [int(draws[k - 1])] if self.mode == "choice" else range(len(self.ops))
            steps.append(
                {
                    "k": k,
                    "t": self.ts[k],
                    "ops": [
                        {
                            "position": i,
                            "op": self.ops[i].op,
                            "params": dict(self._step_params[k][i]),
                        }
                        for i in positions
                    ],
                }
            )
        return steps

    def recipe(self, key: str, shape: Sequence[int], **meta: Any) -> dict[str, Any]:
        """Return the recipe of sample ``key`` for an image of ``shape`` (plus ``meta``).

        Examples
        --------
        >>> Pipeline.parse("blur", steps=2).recipe("a", (8, 8, 3))["ops"]
        [{'position': 0, 'op': 'blur', 'version': 2}]
        """
        from degrade import __version__

        if not isinstance(key, str):
            raise DegradeError(f"key must be a string, got {key!r}")
        recipe: dict[str, Any] = {
            "recipe_version": RECIPE_VERSION,
            "degrade_version": __version__,
            "key": key,
            "seed": self.seed,
        }
        recipe.update(meta)
        recipe.update(
            {
                "shape": [int(x) for x in shape],
                "pipeline": self.to_dict(),
                "schedule": {
                    "name": self.schedule if isinstance(self.schedule, str) else (
                        "calibrated" if self.calibration else "explicit"),
                    "t": list(self.ts),
                },
                "ops": [
                    {"position": i, "op": s.op, "version": get_op(s.op).version}
                    for i, s in enumerate(self.ops)
                ],
                "steps": self.plan(key),
            }
        )
        return recipe

    # -- running ----------------------------------------------------------------------
    def run_encoded(
        self,
        image: np.ndarray,
        key: str = "",
        *,
        partners: PartnerProvider | None = None,
        decode: bool = True,
        **meta: Any,
    ) -> SampleFrames:
        """Run the sequence and return uint8 frames, encoded payloads and the recipe.

        ``partners`` supplies other images to ops that need them (``patches``, ``blend``);
        the recipe records each partner's key and checksum. ``meta`` (source, split, label,
        ...) is stored in the recipe. ``decode=False`` leaves ``frames[k]`` as None where
        ``payloads[k]`` holds the encoded file and no later step reads it (a writer that
        stores the payload needs no decoded copy).

        Examples
        --------
        >>> s = Pipeline.parse("jpeg", steps=2).run_encoded(np.zeros((8, 8, 3), np.float32), key="k")
        >>> s.payloads[1][0], s.frames[1].dtype
        ('jpg', dtype('uint8'))
        """
        clean = _clean_uint8(image)
        recipe = self.recipe(key, clean.shape, **meta)
        chosen: dict[str, list[dict[str, Any]]] = {}
        images: dict[int, list[np.ndarray]] = {}
        for i, spec in enumerate(self.ops):
            op = get_op(spec.op)
            if "partners" not in op.needs:
                continue
            if partners is None:
                raise DegradeError(
                    f"op '{op.name}' needs partner images: pass partners= (the builder does this)"
                )
            picks = partners.choose(
                seed=self.seed, key=key, position=i, op=op, count=op.partners,
                params=self._step_params[-1][i], shape=clean.shape,
            )
            if len(picks) != op.partners:
                raise DegradeError(f"{key}: op '{op.name}' needs {op.partners} partner images, got {len(picks)}")
            chosen[str(i)] = [{"key": pk, "sha256": image_sha256(img)} for pk, img in picks]
            images[i] = [_fit_channels(img, clean.shape) for _, img in picks]
        if chosen:
            recipe["partners"] = chosen
        if self.monotone:
            # Per image, no step may undo damage: adjusts the recipe's params (degrade.calibrate).
            from degrade.calibrate import monotone_execute

            frames, payloads = monotone_execute(clean, recipe, context=_partner_context(images))
        else:
            frames, payloads = execute(clean, recipe, context=_partner_context(images), decode=decode)
        return SampleFrames(frames, payloads, recipe)

    def run(
        self, image: np.ndarray, key: str = "", *, partners: PartnerProvider | None = None, **meta: Any
    ) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Run the sequence on one image: T + 1 float32 frames and the JSON recipe.

        ``frames[0]`` is the clean image; every frame is exactly what a writer stores.

        Examples
        --------
        >>> frames, recipe = Pipeline.parse("noise", steps=3).run(np.zeros((4, 4, 1), np.float32), key="a")
        >>> [f.dtype.name for f in frames][:2], json.loads(json.dumps(recipe)) == recipe
        (['float32', 'float32'], True)
        """
        seq = self.run_encoded(image, key, partners=partners, **meta)
        return [to_float(f) for f in seq.frames], seq.recipe


EXTERNAL = "external"


class ExternalPipeline:
    """Sequences produced outside degrade (``--input sequences:DIR``): a generator's outputs
    across its checkpoints, any recorded progression. Frames are stored as given; the recipe
    says they are external and records each file's checksum, and there is nothing to replay.

    Examples
    --------
    >>> p = ExternalPipeline(steps=2)
    >>> s = p.from_frames([np.zeros((2, 2, 1), np.uint8)] * 3, key="seq")
    >>> s.recipe["external"], len(s.frames)
    (True, 3)
    """

    mode = EXTERNAL
    schedule = EXTERNAL
    spec = EXTERNAL
    ops: list[OpSpec] = []  # noqa: RUF012

    def __init__(self, *, steps: Any, seed: int = 0) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise DegradeError(f"steps must be a positive integer, got {steps!r}")
        self.steps = steps
        self.seed = int(seed)
        self.ts = [k / steps for k in range(steps + 1)]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form recorded in manifests and recipes."""
        return {"ops": [], "steps": self.steps, "mode": EXTERNAL, "schedule": EXTERNAL, "seed": self.seed}

    def from_frames(self, frames: Sequence[np.ndarray], key: str, **meta: Any) -> SampleFrames:
        """Wrap T + 1 uint8 frames (the first the clean one) with their recipe."""
        if len(frames) != self.steps + 1:
            raise DegradeError(f"{key}: the sequence has {len(frames)} frames, the build expects {self.steps + 1}")
        from degrade import __version__

        recipe: dict[str, Any] = {
            "recipe_version": RECIPE_VERSION,
            "degrade_version": __version__,
            "key": key,
            "seed": self.seed,
            "external": True,
        }
        recipe.update(meta)
        recipe.update(
            {
                "shape": [int(x) for x in frames[0].shape],
                "pipeline": self.to_dict(),
                "schedule": {"name": EXTERNAL, "t": list(self.ts)},
                "ops": [],
                "steps": [{"k": k, "t": self.ts[k], "ops": []} for k in range(1, self.steps + 1)],
            }
        )
        return SampleFrames([np.ascontiguousarray(f) for f in frames], [None] * len(frames), recipe)


class PartnerProvider(Protocol):
    """Chooses partner images for ops that mix in other images (the builder's provider
    draws from the build's sorted source list, keyed by sample, op position and op name)."""

    def choose(
        self, *, seed: int, key: str, position: int, op: Op, count: int,
        params: Mapping[str, Any], shape: tuple[int, ...],
    ) -> list[tuple[str, np.ndarray]]:
        """Return ``count`` (key, uint8 image of ``shape``) pairs."""
        ...


def image_sha256(image: np.ndarray) -> str:
    """sha256 of a uint8 image's shape and pixels (how recipes identify partner images).

    Examples
    --------
    >>> image_sha256(np.zeros((1, 1, 1), np.uint8))[:8]
    '7db17c66'
    """
    arr = np.ascontiguousarray(image, dtype=np.uint8)
    h = hashlib.sha256(("x".join(map(str, arr.shape)) + ":").encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _fit_channels(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[:2] != tuple(shape[:2]):
        raise DegradeError(f"partner image has shape {arr.shape}, the sample {tuple(shape)}")
    if arr.shape[2] == shape[2]:
        return arr
    if shape[2] == 1:
        return np.round(arr.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(arr, 3, axis=2))


def _partner_context(images: Mapping[int, list[np.ndarray]]) -> Callable[[int, Op], Mapping[str, Any]] | None:
    if not images:
        return None
    floats = {i: [to_float(im) for im in ims] for i, ims in images.items()}

    def context(position: int, op: Op) -> Mapping[str, Any]:
        return {"partners": floats[position]} if position in floats else {}

    return context


def _clean_uint8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise DegradeError(f"image must be H×W×C with C in {{1, 3}}, got shape {arr.shape}")
        return np.ascontiguousarray(arr)
    return to_uint8(as_image(arr))


def execute(
    clean: np.ndarray,
    recipe: Mapping[str, Any],
    *,
    context: Callable[[int, Op], Mapping[str, Any]] | None = None,
    decode: bool = True,
    only: Collection[int] | None = None,
) -> tuple[list[np.ndarray], list[tuple[str, bytes] | None]]:
    """Run a recipe's steps on a uint8 clean image: the one code path of run and replay.

    ``context(position, op)`` supplies what ops with ``needs`` get (partner images, models).
    ``decode=False`` (absolute mode only) skips decoding encoded frames, which are then None.
    ``only`` (absolute mode): the steps (1-based) whose frames are wanted; the others are
    None, and of them only what later steps build on is computed (the first op's output,
    when it advances step by step: see ``Op.advance``).

    Examples
    --------
    >>> r = Pipeline.parse("blur", steps=1).recipe("a", (4, 4, 1))
    >>> len(execute(np.zeros((4, 4, 1), np.uint8), r)[0])
    2
    """
    seed = int(recipe["seed"])
    key = str(recipe["key"])
    mode = recipe["pipeline"]["mode"]
    absolute = mode == "absolute"
    wanted = None if (only is None or not absolute) else {int(k) for k in only}
    shape = clean.shape
    clean_f = to_float(clean)
    frames: list[np.ndarray] = [clean]
    payloads: list[tuple[str, bytes] | None] = [None]
    fields: dict[int, Any] = {}
    # Absolute mode: the first op's latest (params, output), for an op that advances from them.
    chain: dict[int, list[tuple[Mapping[str, Any], np.ndarray]]] = {}
    for index, step in enumerate(recipe["steps"], start=1):
        want = wanted is None or index in wanted
        prev = frames[-1]
        if float(step["t"]) == 0.0 or not step["ops"]:
            frames.append((prev.copy() if not absolute else clean.copy()) if want else None)  # type: ignore[arg-type]
            payloads.append(None)
            continue
        x = clean_f if absolute else to_float(prev)
        payload = None
        out_u8 = None
        n = len(step["ops"])
        for j, entry in enumerate(step["ops"]):
            op = get_op(entry["op"])
            pos = int(entry["position"])
            if pos not in fields:
                fields[pos] = op.make_field(shape, seed=seed, key=key, position=pos)
            ctx = dict(context(pos, op)) if (context is not None and op.needs) else {}
            params = entry["params"]
            advancing = absolute and j == 0 and op.advance is not None and op.codec is None
            if not (want or advancing):
                break
            if j == n - 1 and op.codec is not None and op.encode is not None and op.decode is not None:
                data = op.encode(x, **params)
                payload = (op.codec, data)
                if decode or not absolute:
                    out_u8 = op.decode(data)
                    if out_u8.ndim == 2:
                        out_u8 = out_u8[:, :, None]
            else:
                y = op.apply_advance(chain.get(pos, []), params) if advancing else None
                x = op.apply(x, params, fields[pos], **ctx) if y is None else y
                if advancing:
                    chain[pos] = op.remember(chain.get(pos, []), params, x)
                if x.shape != shape:
                    raise DegradeError(
                        f"op '{op.name}' returned shape {x.shape} for input {shape} (a kernel bug)"
                    )
            if not want:
                break
        if not want:
            frames.append(None)  # type: ignore[arg-type]
        elif out_u8 is not None:
            frames.append(out_u8)
        elif payload is not None:
            frames.append(None)  # type: ignore[arg-type]  # decode=False: the payload is the frame
        else:
            frames.append(_unit_to_uint8(x))
        payloads.append(payload if want else None)
    return frames, payloads


def _unit_to_uint8(x: np.ndarray) -> np.ndarray:
    # Op.apply has already clipped x to [0, 1], so x·255 + 0.5 lies in [0.5, 255.5] and
    # truncation gives exactly to_uint8(x) without a second clip or temporary.
    tmp = np.multiply(x, np.float32(255.0), dtype=np.float32)
    tmp += np.float32(0.5)
    return tmp.astype(np.uint8)


def replay(
    recipe: Mapping[str, Any],
    clean: np.ndarray,
    *,
    partners: Callable[[str], np.ndarray] | Mapping[str, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Reproduce a sample's frames, bit for bit, from its recipe and its stored clean frame.

    Parameters
    ----------
    recipe : dict
        A recipe as written by :meth:`Pipeline.run` (or read back from a shard).
    clean : ndarray
        The clean frame: uint8 as stored, or float32 in [0, 1].
    partners : callable or mapping, optional
        For recipes with partner images: key → that sample's clean frame (uint8). The
        recorded checksums must match.

    Returns
    -------
    list of ndarray
        T + 1 float32 frames, identical to those of the original run.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    >>> frames, recipe = Pipeline.parse("noise,jpeg", steps=3).run(img, key="s")
    >>> all((a == b).all() for a, b in zip(frames, replay(recipe, frames[0])))
    True
    """
    return [to_float(f) for f in replay_encoded(recipe, clean, partners=partners).frames]


def replay_encoded(
    recipe: Mapping[str, Any],
    clean: np.ndarray,
    *,
    partners: Callable[[str], np.ndarray] | Mapping[str, np.ndarray] | None = None,
) -> SampleFrames:
    """Like :func:`replay`, returning uint8 frames and encoded payloads.

    Examples
    --------
    >>> r = Pipeline.parse("blur", steps=1).recipe("a", (4, 4, 1))
    >>> replay_encoded(r, np.zeros((4, 4, 1), np.uint8)).frames[1].shape
    (4, 4, 1)
    """
    check_recipe(recipe)
    if recipe.get("external"):
        raise DegradeError(
            f"'{recipe['key']}' is an external sequence: its frames came from outside and cannot be replayed"
        )
    img = _clean_uint8(clean)
    if list(img.shape) != list(recipe["shape"]):
        raise DegradeError(
            f"clean image has shape {list(img.shape)} but the recipe was made for {recipe['shape']}"
        )
    images: dict[int, list[np.ndarray]] = {}
    for pos, entries in (recipe.get("partners") or {}).items():
        if partners is None:
            raise DegradeError(
                f"recipe of '{recipe['key']}' mixes in other images; replay needs partners= "
                "(key -> that sample's clean frame)"
            )
        got = []
        for e in entries:
            pk = e["key"]
            try:
                im = partners[pk] if isinstance(partners, Mapping) else partners(pk)
            except KeyError:
                raise DegradeError(f"partner image '{pk}' of '{recipe['key']}' not found") from None
            im = _clean_uint8(im)
            if image_sha256(im) != e["sha256"]:
                raise DegradeError(
                    f"partner image '{pk}' of '{recipe['key']}' differs from the one recorded"
                )
            got.append(_fit_channels(im, img.shape))
        images[int(pos)] = got
    frames, payloads = execute(img, recipe, context=_partner_context(images))
    return SampleFrames(frames, payloads, dict(recipe))


def check_recipe(recipe: Any) -> None:
    """Validate a recipe before anything runs; raise :class:`DegradeError` naming the field.

    A recipe read from a shard is untrusted data: every field that :func:`replay` uses is
    checked here — types, op names and versions, parameter values against their declared
    kind and bounds, step severities, partner entries — so a hostile or corrupt recipe is a
    one-line error that names the field (``recipe 'steps[3].ops[0].params.sigma': ...``),
    never an exception from deep inside a kernel. Nothing in a recipe is ever evaluated.

    Examples
    --------
    >>> check_recipe(Pipeline.parse("blur", steps=1).recipe("a", (4, 4, 1)))
    >>> check_recipe({"recipe_version": 1})
    Traceback (most recent call last):
    ...
    degrade.errors.DegradeError: recipe is missing 'key'
    """
    if not isinstance(recipe, Mapping):
        raise DegradeError(f"recipe must be a JSON object, got {type(recipe).__name__}")
    for name in ("recipe_version", "key", "seed", "shape", "pipeline", "ops", "steps"):
        if name not in recipe:
            raise DegradeError(f"recipe is missing '{name}'")
    if not _is_int(recipe["recipe_version"]) or recipe["recipe_version"] != RECIPE_VERSION:
        raise DegradeError(
            f"recipe_version {_short(recipe['recipe_version'])} is not supported (this degrade reads {RECIPE_VERSION})"
        )
    if not isinstance(recipe["key"], str):
        raise DegradeError("recipe 'key' must be a string")
    seed = recipe["seed"]
    if not _is_int(seed) or seed < 0:
        raise DegradeError(f"recipe 'seed' must be a non-negative integer, got {_short(seed)}")
    shape = recipe["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(_is_int(s) and s > 0 for s in shape)
        or shape[2] not in (1, 3)
    ):
        raise DegradeError(f"recipe 'shape' must be [H, W, C] with C in {{1, 3}}, got {_short(shape)}")
    pipe = recipe["pipeline"]
    external = recipe.get("external") is True
    if not isinstance(pipe, Mapping):
        raise DegradeError("recipe 'pipeline' must be an object")
    if external and pipe.get("mode") == EXTERNAL:
        pass
    elif pipe.get("mode") not in MODES:
        raise DegradeError(
            f"recipe 'pipeline.mode' must be one of {', '.join(MODES)}, got {_short(pipe.get('mode'))}"
        )
    if not isinstance(recipe["ops"], list):
        raise DegradeError("recipe 'ops' must be a list")
    ops: dict[int, Op] = {}
    for i, entry in enumerate(recipe["ops"]):
        if not isinstance(entry, Mapping) or not {"position", "op", "version"} <= set(entry):
            raise DegradeError(f"recipe 'ops[{i}]' must have position, op and version")
        pos = entry["position"]
        if not _is_int(pos) or pos < 0:
            raise DegradeError(
                f"recipe 'ops[{i}].position' must be a non-negative integer, got {_short(pos)}"
            )
        if pos in ops:
            raise DegradeError(f"recipe 'ops[{i}].position': position {pos} is given twice")
        op = _recipe_op(entry["op"], f"recipe 'ops[{i}].op'")
        if not _is_int(entry["version"]) or entry["version"] != op.version:
            raise DegradeError(
                f"recipe 'ops[{i}].version': recipe uses {op.name} version {_short(entry['version'])}, this degrade has "
                f"version {op.version}; replay with the degrade version recorded in the recipe"
            )
        ops[pos] = op
    parts = recipe.get("partners", {})
    if not isinstance(parts, Mapping):
        raise DegradeError("recipe 'partners' must map positions to lists of {key, sha256}")
    for pos, entries in parts.items():
        where = f"recipe 'partners.{_short(pos, 20)}'"  # the key's repr: it may be anything
        index = _position_key(pos)
        if index is None or index not in ops:
            raise DegradeError(f"{where}: not the position of an op in the recipe's 'ops'")
        if not isinstance(entries, list) or not all(
            isinstance(e, Mapping) and isinstance(e.get("key"), str) and isinstance(e.get("sha256"), str)
            for e in entries
        ):
            raise DegradeError(f"{where} must be a list of {{key, sha256}}")
        if len(entries) != ops[index].partners:
            raise DegradeError(
                f"{where}: op '{ops[index].name}' takes {ops[index].partners} partner images, got {len(entries)}"
            )
    given = {_position_key(k) for k in parts}
    for pos, op in ops.items():
        if "partners" in op.needs and pos not in given:
            raise DegradeError(f"recipe 'partners.{pos}' is missing: op '{op.name}' mixes in other images")
    if not isinstance(recipe["steps"], list):
        raise DegradeError("recipe 'steps' must be a list")
    n_steps = pipe.get("steps")
    if _is_int(n_steps) and n_steps != len(recipe["steps"]):
        raise DegradeError(
            f"recipe 'steps' has {len(recipe['steps'])} entries, 'pipeline.steps' says {n_steps}"
        )
    for i, step in enumerate(recipe["steps"]):
        if not isinstance(step, Mapping) or not isinstance(step.get("ops"), list):
            raise DegradeError(f"recipe 'steps[{i}]' must have an 'ops' list")
        t = step.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            raise DegradeError(f"recipe 'steps[{i}].t' must be a number in [0, 1], got {_short(t)}")
        for j, entry in enumerate(step["ops"]):
            where = f"steps[{i}].ops[{j}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("params"), Mapping):
                raise DegradeError(f"recipe '{where}' must have op, position and params")
            pos = entry.get("position")
            if not _is_int(pos) or pos not in ops or ops[pos].name != entry.get("op"):
                raise DegradeError(f"recipe '{where}': op and position do not match the recipe's 'ops'")
            op = ops[pos]
            params = entry["params"]
            names = [p.name for p in op.params]
            if set(params) != set(names):
                missing = sorted(set(names) - set(params))
                extra = sorted(str(k) for k in set(params) - set(names))
                what = "; ".join(
                    ([f"missing {', '.join(missing)}"] if missing else [])
                    + ([f"unknown {', '.join(_short(k, 40) for k in extra)}"] if extra else [])
                )
                raise DegradeError(f"recipe '{where}.params' must be exactly {names} ({what})")
            for p in op.params:
                value = params[p.name]
                try:
                    coerced = p.coerce(value, op=op.name)
                except DegradeError as exc:
                    raise DegradeError(f"recipe '{where}.params.{p.name}': {exc}") from None
                if p.kind == "int" and not _is_int(value):
                    raise DegradeError(
                        f"recipe '{where}.params.{p.name}': {op.name}:{p.name} must be a whole number, got {_short(value)}"
                    )
                del coerced


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any, n: int = 60) -> str:
    """``repr`` cut to ``n`` characters: a hostile recipe must not make a huge error line."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _position_key(key: Any) -> int | None:
    """A partners key as written to JSON (``"0"``) or as a Python int, else None."""
    if _is_int(key):
        return key
    if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) < 10:
        return int(key)
    return None


def _recipe_op(name: Any, where: str) -> Op:
    if not isinstance(name, str):
        raise DegradeError(f"{where} must be an op name, got {_short(name)}")
    try:
        op = get_op(name)
    except DegradeError as exc:
        raise DegradeError(f"{where}: {exc}") from None
    if op.name != name:  # recipes record the op's own name, never an alias
        raise DegradeError(f"{where}: '{name}' is an alias; recipes record the op's name '{op.name}'")
    return op
