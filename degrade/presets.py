"""Pipeline presets: YAML files that pin down a published degradation setting.

A preset is one pipeline per file, under ``pipelines/`` in folders
(``pipelines/imagenet-c/pixelate.yaml``), shipped inside the wheel as ``degrade/pipelines``
and addressed by its name (``imagenet-c/pixelate``) or by a path to any YAML file.
Command-line flags override what the file says.

The format (``docs/presets.md`` shows complete files)::

    description: one line saying what the preset reproduces        # required
    ops:                                                          # required, a list
      - op: blur                     # an op name or alias
        params:                      # optional; per parameter one of:
          kernel: 11                 #   a value (for a curve: its value at t = 1)
          sigma: [0.35, 0.36, 0.37]  #   a list: one value per step
          # sigma: {first: 1, last: 4}          the first step's and the last step's value
          # sigma: {knots: [[0, 0], [1, 4]]}    a piecewise-linear curve over t
      - jpeg:quality=10..5           # or the --ops syntax for one op
    steps: 3                         # required: T
    mode: chained                    # absolute (default) | chained | choice
    schedule: linear                 # linear (default) | cosine | geometric |
                                     # calibrated[:psnr|:ssim] | [t_1, ..., t_T]
    seed: 0                          # default 0
    size: 32                         # optional: the builder's --size
    source:                          # required: where the setting comes from
      paper: Bansal et al., "Cold Diffusion", arXiv 2208.09392
      repository: https://github.com/arpitbansal297/Cold-Diffusion-Models
      file: deblurring-diffusion-pytorch/cifar10_train.py
      table: ...                     # any of paper, repository, file, table, url, notes
    differences: |                   # optional: where and why this departs from the source
      ...

Files are read with ``yaml.safe_load`` semantics (no Python tags); every mistake is a
:class:`PresetError` (a :class:`~degrade.errors.DegradeError`) whose message starts with
``file:line:``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from degrade.errors import DegradeError
from degrade.pipeline import MODES, Pipeline
from degrade.schedule import SCHEDULES, schedule_ts

__all__ = [
    "PRESET_KEYS",
    "Preset",
    "PresetError",
    "find_preset",
    "list_presets",
    "load_preset",
    "pipeline_from_preset",
    "preset_root",
    "scan_presets",
]

#: Keys a preset file may have; the first four are required.
PRESET_KEYS = ("description", "ops", "steps", "source", "mode", "schedule", "seed", "size",
               "differences", "notes")
_REQUIRED = ("description", "ops", "steps", "source")
_SOURCE_KEYS = ("paper", "repository", "file", "table", "url", "notes")
SUFFIXES = (".yaml", ".yml")


class PresetError(DegradeError):
    """A mistake in a preset file; the message reads ``file:line: what``."""


# -- YAML with line numbers ----------------------------------------------------------------


class _Map(dict):
    """A mapping read from YAML that remembers the line of each key (1-based)."""

    line: int = 0
    lines: dict[Any, int]


class _Seq(list):
    """A list read from YAML that remembers its line and each item's line."""

    line: int = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and lists carry line numbers; duplicate keys are errors."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", knode.start_mark
            ) from None
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice", knode.start_mark
            )
        out[key] = loader.construct_object(vnode, deep=True)
        out.lines[key] = knode.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(v, deep=True) for v in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [v.start_mark.line + 1 for v in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _line(obj: Any, key: Any = None, default: int = 1) -> int:
    if key is not None and isinstance(obj, _Map):
        return obj.lines.get(key, obj.line or default)
    return getattr(obj, "line", 0) or default


# -- the preset ----------------------------------------------------------------------------


@dataclass
class Preset:
    """A preset file, read and checked.

    Attributes
    ----------
    name : str
        ``folder/file`` without the suffix for presets under the preset root, else the path.
    path : Path
    description : str
    ops : list
        Op entries as written (``{op, params}`` dicts or ``--ops`` strings).
    steps : int
    mode, schedule, seed, size
        As in the file (``size`` None when absent).
    source : dict
    differences : str
    """

    name: str
    path: Path
    description: str
    ops: list[Any]
    steps: int
    mode: str = "absolute"
    schedule: Any = "linear"
    seed: int = 0
    size: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    differences: str = ""
    notes: str = ""
    _lines: dict[str, Any] = field(default_factory=dict, repr=False)

    def pipeline(self, **overrides: Any) -> Pipeline:
        """Build the :class:`Pipeline` (see :func:`pipeline_from_preset` for ``overrides``).

        Examples
        --------
        >>> load_preset("imagenet-c/contrast").pipeline(seed=2).seed
        2
        """
        return _build(self, **overrides)

    def summary(self) -> dict[str, Any]:
        """Return name, description, steps, mode, ops and source as a JSON-ready dict.

        Examples
        --------
        >>> load_preset("imagenet-c/pixelate").summary()["steps"]
        5
        """
        names = []
        for o in self.ops:
            names.append(o["op"] if isinstance(o, Mapping) else str(o).split(":")[0])
        return {
            "name": self.name,
            "description": self.description,
            "steps": self.steps,
            "mode": self.mode,
            "schedule": self.schedule,
            "size": self.size,
            "ops": names,
            "source": dict(self.source),
            "path": str(self.path),
        }


def preset_root() -> Path:
    """Return the folder that holds the bundled presets.

    Inside an installed wheel it is ``degrade/pipelines``; in a source checkout (or an
    editable install) the repository's top-level ``pipelines/``.

    Examples
    --------
    >>> (preset_root() / "imagenet-c").is_dir()
    True
    """
    here = Path(__file__).resolve().parent
    for cand in (here / "pipelines", here.parent / "pipelines"):
        if cand.is_dir():
            return cand
    raise DegradeError("the bundled presets are missing (no degrade/pipelines folder)")


def _preset_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file())


def _name_of(path: Path, root: Path) -> str:
    rel = path.resolve().relative_to(root.resolve())
    return rel.with_suffix("").as_posix()


def scan_presets() -> tuple[list[Preset], list[tuple[str, str]]]:
    """Read every bundled preset: (the usable ones sorted by name, (path, error) for the rest).

    A preset can be unusable in an installation that lacks one of its ops (a plugin's, or
    an op of a newer degrade).

    Examples
    --------
    >>> presets, errors = scan_presets()
    >>> len(presets) > 30
    True
    """
    root = preset_root()
    good: list[Preset] = []
    bad: list[tuple[str, str]] = []
    for path in _preset_files(root):
        try:
            good.append(_read(path, _name_of(path, root)))
        except DegradeError as exc:
            bad.append((str(path), str(exc)))
    return good, bad


def list_presets() -> list[Preset]:
    """Return every usable bundled preset, sorted by name (see :func:`scan_presets`).

    Examples
    --------
    >>> "imagenet-c/pixelate" in [p.name for p in list_presets()]
    True
    """
    return scan_presets()[0]


def find_preset(name_or_path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Resolve a preset name (``imagenet-c/pixelate``) or a path to (file, name).

    A path that exists is used as it is; otherwise the name is looked up under
    :func:`preset_root` (with or without the ``.yaml`` suffix).

    Raises
    ------
    DegradeError
        When neither exists; the message suggests the closest names.

    Examples
    --------
    >>> find_preset("imagenet-c/pixelate")[1]
    'imagenet-c/pixelate'
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        try:
            return path, _name_of(path, preset_root())
        except (ValueError, DegradeError):
            return path, str(path)
    root = preset_root()
    stem = text[: -len(path.suffix)] if path.suffix in SUFFIXES else text
    stem = stem.strip("/")
    for suffix in SUFFIXES:
        cand = root / f"{stem}{suffix}"
        if cand.is_file():
            return cand, stem
    names = [_name_of(p, root) for p in _preset_files(root)]
    close = difflib.get_close_matches(stem, names, n=3, cutoff=0.5)
    if not close:
        close = [n for n in names if n.startswith(stem.rstrip("/") + "/")][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise DegradeError(f"no preset or file '{text}'{hint} (`degrade presets` lists them)")


def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """Read and check one preset (by name or path).

    Examples
    --------
    >>> p = load_preset("cold-diffusion/blur-cifar10")
    >>> p.steps, p.mode, p.size
    (50, 'chained', 32)
    """
    path, name = find_preset(name_or_path)
    return _read(path, name)


def _read(path: Path, name: str) -> Preset:
    where = str(path)

    def fail(line: int, what: str) -> PresetError:
        return PresetError(f"{where}:{line}: {what}")

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{where}:1: cannot read the file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = " ".join(str(exc.problem or exc.context or exc).split())
        raise fail(line, f"not valid YAML: {what}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        # PyYAML raises ValueError for a bad \U escape and RecursionError for deep nesting.
        what = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise fail(1, f"not valid YAML: {what}") from None
    if not isinstance(data, _Map):
        raise fail(1, "a preset is a mapping of keys (description, ops, steps, source, ...)")
    for key in data:
        if key not in PRESET_KEYS:
            close = difflib.get_close_matches(str(key), PRESET_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise fail(_line(data, key), f"unknown key '{key}'{hint} (allowed: {', '.join(PRESET_KEYS)})")
    for key in _REQUIRED:
        if key not in data:
            raise fail(data.line, f"missing required key '{key}'")

    def string(key: str, required: bool = False) -> str:
        v = data.get(key, "")
        if v is None:
            v = ""
        if not isinstance(v, str) or (required and not v.strip()):
            raise fail(_line(data, key), f"'{key}' must be {'a non-empty' if required else 'a'} string")
        return v.strip()

    description = string("description", required=True)
    differences = string("differences")
    notes = string("notes")

    ops = data["ops"]
    if not isinstance(ops, list) or not ops:
        raise fail(_line(data, "ops"), "'ops' must be a non-empty list of ops")
    for i, entry in enumerate(ops):
        line = ops.lines[i] if isinstance(ops, _Seq) else _line(data, "ops")
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"op", "params"}
            if "op" not in entry or unknown:
                raise fail(line, f"an op entry is {{op: NAME, params: {{...}}}}; got keys {sorted(entry)}")
            if not isinstance(entry["op"], str):
                raise fail(line, f"op name must be a string, got {entry['op']!r}")
            if "params" in entry and not isinstance(entry["params"], (Mapping, type(None))):
                raise fail(_line(entry, "params", line), "'params' must be a mapping of name: value")
        elif not isinstance(entry, str):
            raise fail(line, f"an op entry is a mapping or an --ops string, got {entry!r}")

    steps = data["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise fail(_line(data, "steps"), f"'steps' must be a positive whole number, got {steps!r}")
    mode = data.get("mode", "absolute")
    if mode not in MODES:
        raise fail(_line(data, "mode"), f"'mode' must be one of {', '.join(MODES)}, got {mode!r}")
    schedule = data.get("schedule", "linear")
    if not isinstance(schedule, (str, list)) or (
        isinstance(schedule, list)
        and not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in schedule)
    ):
        raise fail(_line(data, "schedule"), "'schedule' must be a name or a list of numbers t_1 … t_T")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail(_line(data, "seed"), f"'seed' must be a non-negative whole number, got {seed!r}")
    size = data.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise fail(_line(data, "size"), f"'size' must be a non-negative whole number, got {size!r}")
    source = data["source"]
    if not isinstance(source, Mapping) or not source:
        raise fail(_line(data, "source"), f"'source' must be a mapping with some of {', '.join(_SOURCE_KEYS)}")
    for key, value in source.items():
        if key not in _SOURCE_KEYS:
            raise fail(_line(source, key), f"unknown source key '{key}' (allowed: {', '.join(_SOURCE_KEYS)})")
        if not isinstance(value, str) or not value.strip():
            raise fail(_line(source, key), f"source '{key}' must be a non-empty string")

    if isinstance(schedule, str):
        if schedule not in SCHEDULES and schedule.split(":")[0] != "calibrated":
            raise fail(_line(data, "schedule"),
                       f"unknown schedule '{schedule}'; choose from {', '.join(SCHEDULES)}, calibrated")
    else:
        try:
            schedule_ts(list(schedule), steps)
        except DegradeError as exc:
            raise fail(_line(data, "schedule"), str(exc)) from None

    preset = Preset(
        name=name, path=path, description=description, ops=_plain(ops), steps=steps, mode=mode,
        schedule=_plain(schedule), seed=seed, size=size, source=_plain(source),
        differences=differences, notes=notes,
        _lines={"data": data, "ops": ops},
    )
    # Check every op entry now (on a linear schedule: a calibrated one is computed only when
    # the pipeline is built), so that a bad op or parameter is reported with its line.
    for i, entry in enumerate(preset.ops):
        line = ops.lines[i] if isinstance(ops, _Seq) else _line(data, "ops")
        try:
            Pipeline([entry], steps=steps, mode="absolute", schedule="linear", seed=seed)
        except DegradeError as exc:
            raise fail(line, str(exc)) from None
    return preset


def _build(
    preset: Preset,
    *,
    ops: str | Sequence[Any] | None = None,
    steps: int | None = None,
    mode: str | None = None,
    schedule: str | Sequence[float] | None = None,
    seed: int | None = None,
) -> Pipeline:
    where = str(preset.path)
    data = preset._lines.get("data")
    ops_in: Any = preset.ops if ops is None else ops
    try:
        return Pipeline(
            ops_in,
            steps=preset.steps if steps is None else steps,
            mode=preset.mode if mode is None else mode,
            schedule=preset.schedule if schedule is None else schedule,
            seed=preset.seed if seed is None else seed,
        )
    except DegradeError as exc:
        what = str(exc)
        if steps is not None and steps != preset.steps and "per-step list" in what:
            what += f" (the preset's per-step lists are written for {preset.steps} steps)"
        key = "ops"
        if "schedule" in what:
            key = "schedule"
        elif "steps" in what and "per-step" not in what:
            key = "steps"
        raise PresetError(f"{where}:{_line(data, key)}: {what}") from None


def pipeline_from_preset(
    name_or_path: str | os.PathLike[str],
    *,
    ops: str | Sequence[Any] | None = None,
    steps: int | None = None,
    mode: str | None = None,
    schedule: str | Sequence[float] | None = None,
    seed: int | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Build a :class:`Pipeline` from a preset; any argument that is not None overrides it.

    Parameters
    ----------
    name_or_path : str or path
        A bundled preset's name (``imagenet-c/pixelate``) or a YAML file.
    ops, steps, mode, schedule, seed
        Command-line overrides (``ops`` replaces the preset's whole op list).

    Returns
    -------
    pipeline : Pipeline
    defaults : dict
        What the preset says beyond the pipeline: ``name``, ``path``, ``source`` and,
        when given, ``size``.

    Examples
    --------
    >>> pipe, defaults = pipeline_from_preset("imagenet-c/pixelate", seed=3)
    >>> pipe.steps, pipe.seed, defaults["size"]
    (5, 3, 224)
    """
    preset = load_preset(name_or_path)
    pipe = _build(preset, ops=ops, steps=steps, mode=mode, schedule=schedule, seed=seed)
    defaults: dict[str, Any] = {"name": preset.name, "path": str(preset.path), "source": dict(preset.source)}
    if preset.size is not None:
        defaults["size"] = preset.size
    return pipe, defaults
