"""The ``degrade`` command line: a thin layer over public functions.

Each command is two small functions: ``add_<name>_parser(sub)`` declares its arguments and
``cmd_<name>(args) -> int`` calls the library and prints. To add a command, write both and
list the first in :data:`COMMANDS`.

Errors: a user error (:class:`degrade.DegradeError`, a bad argument) or a refusal of the
system (an :class:`OSError`: a full disk, a read-only folder) prints one line
``degrade: error: <message>`` on stderr and exits with 2; ``--debug`` (before or after the
command) adds the traceback. Ctrl-C exits with 130; an unexpected exception prints one line
``degrade: internal error: ...`` and exits with 1.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import shutil
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

import numpy as np

from degrade import __version__
from degrade.errors import DegradeError
from degrade.pipeline import MODES, parse_ops
from degrade.registry import Op, Param, get_op, list_ops
from degrade.schedule import SCHEDULES

__all__ = [
    "COMMANDS",
    "build_parser",
    "cmd_ops",
    "cmd_preview",
    "format_op_detail",
    "format_ops_table",
    "main",
    "op_info",
]

PROG = "degrade"


# -- output helpers ---------------------------------------------------------------------------


def _emit(text: str, stream: TextIO | None = None) -> None:
    """Print ``text`` so that characters the stream cannot encode never crash the command."""
    stream = sys.stdout if stream is None else stream
    enc = getattr(stream, "encoding", None) or "utf-8"
    try:
        "→…·σ".encode(enc)
    except (UnicodeEncodeError, LookupError):
        text = text.replace("→", "->").replace("…", "...")
        try:
            text = text.encode(enc, errors="replace").decode(enc)
        except LookupError:
            pass
    print(text, file=stream)


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _error(message: str) -> None:
    _emit(f"{PROG}: error: {_one_line(message)}", sys.stderr)


def _os_error_message(exc: OSError) -> str:
    """``"<file>: No space left on device"`` from an OSError (its errno name when it has no text)."""
    import errno as _errno

    what = exc.strerror or (str(exc) if str(exc) else None)
    if what is None and exc.errno is not None:
        what = _errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    what = what or type(exc).__name__
    return f"{exc.filename}: {what}" if exc.filename else what


# -- argument parsing -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line ``degrade: error: …`` and exit code 2."""

    def error(self, message: str) -> NoReturn:
        _error(f"{message} (see '{self.prog} -h')")
        raise SystemExit(2)


def _common() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand without --debug must not reset a --debug given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of any error",
    )
    return common


def _command(
    sub: argparse._SubParsersAction,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func(args)``; return its parser for its arguments."""
    parser = sub.add_parser(
        name,
        help=help,
        description=description or help,
        parents=[_common()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


# -- degrade ops ------------------------------------------------------------------------------


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _doc_summary(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if not (inspect.isroutine(fn) or inspect.isclass(fn)):
        fn = type(fn).__call__  # a callable object: its __call__'s doc, not the class's
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _example(op: Op) -> str:
    for p in op.params:
        if p.is_constant or p.kind not in ("float", "int"):
            continue
        spec = f"{op.name}:{p.name}={p.describe()[1]}"
        try:
            parse_ops(spec)
        except DegradeError:
            continue
        return spec
    return op.name


def _param_info(p: Param) -> dict[str, Any]:
    t0, t1 = p.describe()
    return _jsonable(
        {
            "name": p.name,
            "kind": p.kind,
            "curve": p.curve,
            "at0": p.at0,
            "at1": p.at1,
            "t0": t0,
            "t1": t1,
            "knots": [list(k) for k in p.knots],
            "low": p.low,
            "high": p.high,
            "choices": list(p.choices),
            "unit": p.unit,
            "help": p.help,
        }
    )


def op_info(op: str | Op) -> dict[str, Any]:
    """Return everything ``degrade ops`` shows about one op, as a JSON-ready dict.

    Parameters
    ----------
    op : str or Op
        An op or its name (aliases accepted).

    Examples
    --------
    >>> info = op_info("gaussian_blur")
    >>> info["name"], info["params"][0]["name"], info["params"][0]["t1"]
    ('blur', 'sigma', '4')
    """
    o = op if isinstance(op, Op) else get_op(op)
    return _jsonable(
        {
            "name": o.name,
            "family": o.family,
            "aliases": list(o.aliases),
            "description": o.description,
            "summary": _doc_summary(o.kernel),
            "version": o.version,
            "monotone": o.monotone,
            "stochastic": o.stochastic,
            "needs": list(o.needs),
            "codec": o.codec,
            "advances": o.advance is not None,
            "params": [_param_info(p) for p in o.params],
            "example": _example(o),
        }
    )


def _param_text(p: dict[str, Any]) -> str:
    unit = f" {p['unit']}" if p["unit"] else ""
    if p["curve"] == "constant":
        return f"{p['name']} = {p['t0']}{unit}"
    tag = "" if p["curve"] == "linear" else f" ({p['curve']})"
    return f"{p['name']} {p['t0']} → {p['t1']}{unit}{tag}"


def format_ops_table(infos: Sequence[dict[str, Any]], width: int = 100) -> str:
    """Render op infos (from :func:`op_info`) as an aligned plain-text table.

    One line per parameter and per alias; descriptions wrap to fit ``width`` columns.

    Examples
    --------
    >>> print(format_ops_table([op_info("blur")], width=80))  # doctest: +NORMALIZE_WHITESPACE
    NAME  FAMILY  ALIASES        PARAMS (t=0 → t=1)  DESCRIPTION
    blur  blur    gaussian_blur  sigma 0 → 4 px      Gaussian blur, reflect padding
                                 kernel = 0 px
    """
    heads = ("NAME", "FAMILY", "ALIASES", "PARAMS (t=0 → t=1)")
    cells = [
        (
            [i["name"]],
            [i["family"]],
            i["aliases"] or ["-"],
            [_param_text(p) for p in i["params"]] or ["-"],
        )
        for i in infos
    ]
    widths = [
        max([len(heads[c]), *(len(x) for row in cells for x in row[c])]) for c in range(len(heads))
    ]
    used = sum(widths) + 2 * len(widths)
    desc_w = max(24, width - used)
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + "  DESCRIPTION"]
    for info, row in zip(infos, cells, strict=True):
        desc = textwrap.wrap(info["description"], desc_w) or [""]
        n = max(len(desc), *(len(col) for col in row))
        for k in range(n):
            parts = [
                (col[k] if k < len(col) else "").ljust(w)
                for col, w in zip(row, widths, strict=True)
            ]
            parts.append(desc[k] if k < len(desc) else "")
            lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def format_op_detail(info: dict[str, Any]) -> str:
    """Render one op's info (from :func:`op_info`) in detail.

    Examples
    --------
    >>> print(format_op_detail(op_info("blur")).splitlines()[0])
    blur — Gaussian blur, reflect padding
    """

    def yes(v: bool) -> str:
        return "yes" if v else "no"

    lines = [f"{info['name']} — {info['description']}"]
    if info["summary"]:
        lines += [
            "",
            *textwrap.wrap(info["summary"], 88, initial_indent="  ", subsequent_indent="  "),
        ]
    facts = [
        ("family", info["family"]),
        ("version", str(info["version"])),
        (
            "monotone",
            yes(info["monotone"]) + ("" if info["monotone"] else " (see the kernel's docstring)"),
        ),
        (
            "stochastic",
            yes(info["stochastic"])
            + (" (a seeded field, fixed across steps)" if info["stochastic"] else ""),
        ),
        ("aliases", ", ".join(info["aliases"]) or "-"),
    ]
    if info["needs"]:
        facts.append(("needs", ", ".join(info["needs"])))
    if info["codec"]:
        facts.append(("codec", info["codec"]))
    if info["advances"]:
        facts.append(("advances", "yes (first in an absolute sequence: a step is computed from an earlier one)"))
    lines.append("")
    lines += [f"  {k:<11} {v}" for k, v in facts]
    lines += ["", "parameters"]
    if not info["params"]:
        lines.append("  (none)")
    for p in info["params"]:
        unit = f" {p['unit']}" if p["unit"] else ""
        if p["curve"] == "constant":
            values = f"fixed {p['t0']}{unit}"
        else:
            values = f"t=0: {p['t0']}{unit}   t=1: {p['t1']}{unit}   curve: {p['curve']}"
        lines.append(f"  {p['name']} ({p['kind']})  {values}")
        extra = []
        if p["low"] is not None or p["high"] is not None:
            lo = "-∞" if p["low"] is None else _num(p["low"])
            hi = "∞" if p["high"] is None else _num(p["high"])
            extra.append(f"bounds [{lo}, {hi}]")
        if p["choices"]:
            extra.append("choices " + ", ".join(map(str, p["choices"])))
        if p["curve"] == "knots":
            extra.append("knots " + ", ".join(f"t={_num(t)}: {_num(v)}" for t, v in p["knots"]))
        if extra:
            lines.append("      " + "; ".join(extra))
        if p["help"]:
            lines.append("      " + p["help"])
    lines += ["", "example", f"  degrade preview --ops {info['example']} --steps 8"]
    return "\n".join(lines)


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def add_ops_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade ops [NAME] [--json]``."""
    p = _command(
        sub,
        "ops",
        cmd_ops,
        help="list the registered degradation ops, or show one in detail",
        description="List every registered op (name, family, aliases, parameters at t=0 and t=1,"
        " description), or show one op in detail.",
    )
    p.add_argument("name", nargs="?", help="an op name or alias to show in detail")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def cmd_ops(args: argparse.Namespace) -> int:
    """``degrade ops [NAME] [--json]``: print the op table or one op's details."""
    if args.name:
        info = op_info(args.name)
        _emit(
            json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_op_detail(info)
        )
        return 0
    infos = sorted((op_info(n) for n in list_ops()), key=lambda i: (i["family"], i["name"]))
    if args.json:
        _emit(json.dumps(infos, indent=2, ensure_ascii=False))
        return 0
    width = shutil.get_terminal_size((120, 24)).columns
    _emit(format_ops_table(infos, width=max(width, 60)))
    _emit(f"\n{len(infos)} ops; `degrade ops NAME` shows one in detail.")
    return 0


# -- degrade preview --------------------------------------------------------------------------


def add_preview_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade preview``."""
    p = _command(
        sub,
        "preview",
        cmd_preview,
        help="write a contact sheet PNG of a degradation sequence",
        description="Run a pipeline on a few images and write a contact sheet: rows are images,"
        " columns are steps k = 0 … T.\nWithout --input it uses scikit-image's bundled"
        " photographs (astronaut, coffee, chelsea).",
    )
    p.add_argument(
        "--ops",
        metavar="SPEC",
        help="ops separated by commas, options as name:key=value (e.g. blur:sigma=4,jpeg)",
    )
    p.add_argument(
        "--pipeline", metavar="PRESET", help="a preset name or YAML file (flags override it)"
    )
    p.add_argument(
        "--steps", type=int, default=None, metavar="T", help="number of steps T (default 8)"
    )
    p.add_argument(
        "--input",
        action="extend",
        nargs="+",
        metavar="IMAGE",
        dest="inputs",
        help="image file(s) to show instead of the bundled photographs",
    )
    p.add_argument(
        "--out", default="preview.png", metavar="PNG", help="output file (default preview.png)"
    )
    p.add_argument(
        "--size",
        type=int,
        default=128,
        metavar="PX",
        help="side of each image: short side resized, centre-cropped (default 128)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the random fields (default 0)")
    p.add_argument(
        "--mode", choices=MODES, default=None, help="sequence mode (default absolute)"
    )
    p.add_argument(
        "--schedule",
        type=_schedule_arg,
        default=None,
        help=f"step k → severity t: {', '.join(SCHEDULES)} or calibrated[:ssim] (default linear)",
    )
    p.add_argument(
        "--columns",
        type=int,
        default=9,
        metavar="N",
        help="most step columns shown; larger T shows N evenly spaced steps (default 9)",
    )


def cmd_preview(args: argparse.Namespace) -> int:
    """``degrade preview``: write the contact sheet and say what it shows."""
    from pathlib import Path

    from degrade.preview import SAMPLE_IMAGES, preview, preview_columns

    if args.pipeline is not None:
        from degrade.presets import pipeline_from_preset

        pipe, _ = pipeline_from_preset(
            args.pipeline, ops=args.ops, steps=args.steps, mode=args.mode,
            schedule=_calibrated_at(args.schedule, args.size), seed=args.seed,
        )
        what: Any = pipe
        label = f"preset {args.pipeline}" + (f" with --ops {args.ops}" if args.ops else "")
        args.ops, args.steps, args.mode, args.seed = label, pipe.steps, pipe.mode, pipe.seed
        args.schedule = pipe.schedule if isinstance(pipe.schedule, str) else (
            "calibrated" if pipe.calibration else "explicit")
    elif args.ops is None:
        raise DegradeError("give --ops (e.g. --ops blur,jpeg) or --pipeline PRESET")
    else:
        args.steps = 8 if args.steps is None else args.steps
        args.mode = args.mode or "absolute"
        args.seed = 0 if args.seed is None else args.seed
        args.schedule = args.schedule or "linear"
        what = args.ops
        if args.schedule.startswith("calibrated"):
            from degrade.pipeline import Pipeline

            what = Pipeline.parse(args.ops, steps=args.steps, mode=args.mode,
                                  schedule=_calibrated_at(args.schedule, args.size), seed=args.seed)
            args.schedule = "calibrated"
    path = preview(
        what,
        args.steps,
        inputs=args.inputs,
        size=args.size,
        seed=args.seed,
        mode=args.mode,
        schedule=args.schedule,
        out=args.out,
        max_columns=args.columns,
    )
    cols = preview_columns(args.steps, args.columns)
    names = [Path(p).stem for p in args.inputs] if args.inputs else list(SAMPLE_IMAGES)
    shown = names if len(names) <= 4 else [*names[:3], "…"]
    if len(cols) == args.steps + 1:
        steps = f"steps k=0…{args.steps}"
    else:
        steps = f"{len(cols)} of {args.steps + 1} steps (k={', '.join(map(str, cols))})"
    _emit(str(path))
    _emit(
        f"{len(names)} image{'s' if len(names) != 1 else ''} ({', '.join(shown)}) × {steps}"
        f" of {args.ops}: {args.mode} mode, {args.schedule} schedule, seed {args.seed},"
        f" {args.size}px"
    )
    return 0


# -- degrade build / inspect / verify ---------------------------------------------------------


def _schedule_arg(text: str) -> str:
    """``--schedule``: a schedule name or ``calibrated[:psnr|:ssim][:samples=N][:size=PX]``."""
    if text in SCHEDULES:
        return text
    if text.split(":")[0] == "calibrated":
        from degrade.calibrate import parse_calibrated

        try:
            parse_calibrated(text)
        except DegradeError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    raise argparse.ArgumentTypeError(
        f"unknown schedule '{text}'; choose from {', '.join(SCHEDULES)}, calibrated[:ssim]"
    )


def _calibrated_at(schedule: str | None, size: int | None) -> str | None:
    """Calibrate on images of the size the frames will have, unless the schedule says."""
    if schedule is None or not schedule.startswith("calibrated") or "size=" in schedule or not size:
        return schedule
    return f"{schedule}:size={int(size)}"


def _positive_or_zero(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None


def _trust(args: argparse.Namespace) -> None:
    # Model factories named in recipes are imported only when the user trusts them.
    if getattr(args, "trust_model", None):
        from degrade.ops.learned import trust_model

        for spec in args.trust_model:
            trust_model(spec)


def add_build_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade build``."""
    p = _command(
        sub,
        "build",
        cmd_build,
        help="build a sharded dataset of degradation sequences",
        description="Turn clean images into x0 … xT sequences written as WebDataset or Parquet"
        " shards with a manifest.\nWithout --input it uses the built-in sample pool (crops of"
        " scikit-image's photographs, 64 px, 1000 samples unless --limit).",
    )
    p.add_argument("--input", action="extend", nargs="+", dest="inputs", metavar="SRC",
                   help="folder, glob, .txt list, .tar shards, .parquet, 'samples' or 'synthetic'")
    p.add_argument("--ops", metavar="SPEC", help="ops separated by commas, e.g. blur,jpeg:quality=10..5")
    p.add_argument("--steps", type=_positive_or_zero, metavar="T", help="number of steps T")
    p.add_argument("--pipeline", metavar="PRESET", help="a preset name or YAML file (flags override it)")
    p.add_argument("--out", default="degrade-data", metavar="DIR", help="output folder (default ./degrade-data)")
    p.add_argument("--format", choices=("webdataset", "parquet"), default="webdataset")
    p.add_argument("--size", type=_positive_or_zero, default=None, metavar="S",
                   help="resize short side and centre-crop to S×S; 0 keeps originals (default 256; 64 for the sample pool)")
    p.add_argument("--limit", type=_positive_or_zero, default=None, metavar="N", help="the first N sources in sorted order")
    p.add_argument("--seed", type=_positive_or_zero, default=None,
                   help="seed of fields, splits and draws (default 0, or the preset's)")
    p.add_argument("--workers", type=_positive_or_zero, default=None, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--shard-size", type=_positive_or_zero, default=256, metavar="N", help="samples per shard (default 256)")
    p.add_argument("--keep", default="all", metavar="SPEC", help="stored steps: all, every:K, pairs:N or none (default all)")
    p.add_argument("--codec", default="auto", metavar="C", help="auto (jpeg steps as JPEG bytes, else PNG) or png")
    p.add_argument("--mode", choices=MODES, default=None, help="absolute (default), chained or choice")
    p.add_argument("--schedule", type=_schedule_arg, default=None,
                   help="linear (default), cosine, geometric, or calibrated[:ssim] (equal metric drops per step)")
    p.add_argument("--split", default=None, metavar="SPEC", help="e.g. train=0.9,val=0.05,test=0.05 (the default)")
    p.add_argument("--overwrite", action="store_true", help="replace a build with another config in --out")
    p.add_argument("--strict", action="store_true", help="stop on the first unreadable input instead of skipping it")
    p.add_argument("--dry-run", action="store_true", help="print the plan and estimates; write nothing")
    p.add_argument("--backend", choices=("loky", "dask", "ray"), default="loky",
                   help="where shard tasks run: local processes (default), a Dask cluster or Ray")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler (tcp://host:8786) or Ray address; default: start a local one")
    p.add_argument("--trust-model", action="append", default=[], metavar="FACTORY",
                   help="let deepdream import and run this model factory (package.module.factory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_build(args: argparse.Namespace) -> int:
    """``degrade build``: parse the flags and call :func:`degrade.build.build`."""
    import shlex

    from degrade.build import build

    _trust(args)
    external = any(str(i).startswith("sequences:") for i in (args.inputs or []))
    kwargs: dict[str, Any] = {"size": args.size}
    if args.pipeline is not None and not external:
        try:
            from degrade.presets import pipeline_from_preset
        except ModuleNotFoundError:
            raise DegradeError("--pipeline: presets are not available in this version; use --ops and --steps") from None

        from degrade.presets import load_preset

        preset = load_preset(args.pipeline)
        size = args.size if args.size is not None else preset.size
        schedule = args.schedule if args.schedule is not None else (
            preset.schedule if isinstance(preset.schedule, str) else None)
        pipe, defaults = pipeline_from_preset(
            args.pipeline, ops=args.ops, steps=args.steps, mode=args.mode,
            schedule=_calibrated_at(schedule, size), seed=args.seed,
        )
        kwargs = {"pipeline": pipe, "size": args.size if args.size is not None else defaults.get("size")}
    elif external:
        # sequences:DIR carries its own frames; build() refuses --ops with it.
        kwargs.update(ops=args.ops, steps=args.steps)
    elif args.ops is None or args.steps is None:
        raise DegradeError("give --ops and --steps (e.g. --ops blur,jpeg --steps 50) or --pipeline PRESET")
    else:
        kwargs.update(ops=args.ops, steps=args.steps, mode=args.mode or "absolute",
                      schedule=_calibrated_at(args.schedule, args.size) or "linear")
    build(
        args.inputs,
        out=args.out,
        format=args.format,
        limit=args.limit,
        seed=0 if args.seed is None else args.seed,
        workers=args.workers,
        shard_size=args.shard_size,
        keep=args.keep,
        codec=args.codec,
        split=args.split,
        overwrite=args.overwrite,
        strict=args.strict,
        dry_run=args.dry_run,
        backend=args.backend,
        scheduler=args.scheduler,
        progress=not args.quiet and sys.stderr.isatty(),
        command=" ".join(shlex.quote(a) for a in ["degrade", *sys.argv[1:]]) if sys.argv[1:2] == ["build"] else None,
        log=lambda s: _emit(s),
        **kwargs,
    )
    return 0


def add_inspect_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade inspect``."""
    p = _command(sub, "inspect", cmd_inspect, help="summarise a built dataset and write a contact sheet")
    p.add_argument("path", metavar="DIR", help="a folder written by degrade build")
    p.add_argument("--sheet", default="inspect.png", metavar="PNG", help="contact sheet file (default inspect.png)")
    p.add_argument("--samples", type=_positive_or_zero, default=4, metavar="N", help="rows in the sheet (default 4)")


def cmd_inspect(args: argparse.Namespace) -> int:
    """``degrade inspect``."""
    from degrade.verify import inspect

    _emit(inspect(args.path, sheet=args.sheet, samples=args.samples))
    return 0


def add_verify_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade verify``."""
    p = _command(sub, "verify", cmd_verify,
                 help="check checksums, counts and determinism of a built dataset (exit 1 on a mismatch)")
    p.add_argument("path", metavar="DIR", help="a folder written by degrade build")
    p.add_argument("--regenerate", type=_positive_or_zero, default=8, metavar="N",
                   help="samples rebuilt from their recipes and compared pixel for pixel (default 8)")
    p.add_argument("--seed", type=_positive_or_zero, default=0, help="which samples are regenerated (default 0)")
    p.add_argument("--trust-model", action="append", default=[], metavar="FACTORY",
                   help="let deepdream import and run this model factory when replaying")


def cmd_verify(args: argparse.Namespace) -> int:
    """``degrade verify``: 0 when everything matches, 1 otherwise."""
    from degrade.verify import verify

    _trust(args)
    report = verify(args.path, regenerate=args.regenerate, seed=args.seed)
    _emit(str(report))
    return 0 if report.ok else 1


# -- degrade train ----------------------------------------------------------------------------


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade train``: one flag per field of :class:`degrade.train.TrainConfig`."""
    from degrade.train import add_arguments  # torch-free: torch loads only when training starts

    p = _command(
        sub,
        "train",
        cmd_train,
        help="train a reverse-step restoration model (UNet) on a built dataset",
        description="Train a small UNet to predict x0 (--target x0) or x_{k-1} (--target prev)"
        " from x_k.\nEvery TrainConfig field is a flag (--ema-decay 0.999 or --ema_decay=0.999);"
        " needs the train extra (torch).\nDDP: torchrun --nproc_per_node N -m degrade.train ...",
    )
    add_arguments(p)


def cmd_train(args: argparse.Namespace) -> int:
    """``degrade train``: build the config and call :func:`degrade.train.train`."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        raise DegradeError("degrade train needs torch: pip install 'degrade[train]'") from None
    from degrade.train import config_from_args, train

    train(config_from_args(args), log=lambda s: _emit(s, sys.stderr))
    return 0


# -- degrade presets / calibrate -------------------------------------------------------------


def add_presets_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade presets [NAME] [--json]``."""
    p = _command(
        sub,
        "presets",
        cmd_presets,
        help="list the bundled pipeline presets, or show one in detail",
        description="List the YAML presets shipped with degrade (pipelines/: Cold Diffusion,"
        " ImageNet-C, heat dissipation, Real-ESRGAN, a seed catalog), or show one: its source,"
        " its differences from it, and each step's parameters.\nUse one with"
        " `degrade build --pipeline NAME` or `degrade preview --pipeline NAME`.",
    )
    p.add_argument("name", nargs="?", help="a preset name (imagenet-c/pixelate) or a YAML file")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def _preset_detail(name: str) -> tuple[str, dict[str, Any]]:
    from degrade.presets import load_preset

    preset = load_preset(name)
    pipe = preset.pipeline()
    info = preset.summary()
    info["differences"] = preset.differences
    info["spec"] = pipe.spec
    plan = pipe.plan("preview")
    info["steps_params"] = [
        {"k": st["k"], "t": st["t"], "ops": [{"op": e["op"], "params": e["params"]} for e in st["ops"]]}
        for st in plan
    ]
    lines = [f"{preset.name} — {preset.description}", "", f"  file       {preset.path}"]
    lines.append(f"  steps      {pipe.steps}   mode {pipe.mode}   schedule "
                 f"{pipe.schedule if isinstance(pipe.schedule, str) else 'explicit'}   seed {pipe.seed}"
                 + (f"   size {preset.size}" if preset.size is not None else ""))
    for k, v in preset.source.items():
        lines += textwrap.wrap(v, 96, initial_indent=f"  {k:<10} ", subsequent_indent=" " * 13)
    if preset.differences:
        lines += ["", "differences from the source"]
        lines += ["  " + ln for ln in preset.differences.splitlines()]
    lines += ["", "steps (each op's parameters)"]
    shown = plan if len(plan) <= 12 else [*plan[:5], None, *plan[-5:]]
    for st in shown:
        if st is None:
            lines.append(f"  … {len(plan) - 10} more steps …")
            continue
        ops = "; ".join(
            f"{e['op']} " + ", ".join(f"{n}={_num(v) if not isinstance(v, float) else f'{v:.6g}'}"
                                      for n, v in e["params"].items())
            for e in st["ops"]
        )
        lines.append(f"  k={st['k']:<3} t={st['t']:.4f}  {ops}")
    if pipe.mode == "choice":
        lines.append("  (choice mode: each sample draws one op per step; shown: sample 'preview')")
    lines += ["", "use", f"  degrade preview --pipeline {preset.name}",
              f"  degrade build --pipeline {preset.name} --out DIR"]
    return "\n".join(lines), _jsonable(info)


def cmd_presets(args: argparse.Namespace) -> int:
    """``degrade presets [NAME] [--json]``: the preset table, or one preset in detail."""
    from degrade.presets import scan_presets

    if args.name:
        text, info = _preset_detail(args.name)
        _emit(json.dumps(info, indent=2, ensure_ascii=False) if args.json else text)
        return 0
    presets, errors = scan_presets()
    if args.json:
        out = [_jsonable(p.summary()) for p in presets]
        out += [{"path": path, "error": err} for path, err in errors]
        _emit(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    width = max(shutil.get_terminal_size((120, 24)).columns, 80)
    rows = [(p.name, str(p.steps), p.mode, ",".join(dict.fromkeys(p.summary()["ops"])), p.description)
            for p in presets]
    heads = ("NAME", "T", "MODE", "OPS")
    w = [max(len(heads[i]), *(len(r[i]) for r in rows)) if rows else len(heads[i]) for i in range(4)]
    w[3] = min(w[3], 28)
    lines = ["  ".join(h.ljust(x) for h, x in zip(heads, w, strict=True)) + "  DESCRIPTION"]
    desc_w = max(24, width - sum(w) - 8)
    for r in rows:
        ops = r[3] if len(r[3]) <= w[3] else r[3][: w[3] - 1] + "…"
        desc = r[4] if len(r[4]) <= desc_w else r[4][: desc_w - 1] + "…"
        lines.append("  ".join([r[0].ljust(w[0]), r[1].rjust(w[1]), r[2].ljust(w[2]), ops.ljust(w[3]), desc]).rstrip())
    _emit("\n".join(lines))
    for _path, err in errors:
        _emit(f"unusable preset: {err}", sys.stderr)
    _emit(f"\n{len(presets)} presets; `degrade presets NAME` shows one, "
          "`degrade build --pipeline NAME` builds it.")
    return 0


def add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade calibrate``."""
    p = _command(
        sub,
        "calibrate",
        cmd_calibrate,
        help="compute a calibrated schedule: equal mean PSNR (or SSIM) drops per step",
        description="Choose t_1 … t_T so that the mean metric over a calibration sample (crops of"
        " the built-in sample pool) falls in equal steps, and print the table (k, t_k, params,"
        " mean metric) beside the linear schedule's.\nWrites a plot of metric vs step for both."
        " `--schedule calibrated` in build and preview does the same.",
    )
    p.add_argument("--ops", metavar="SPEC", help="ops separated by commas, e.g. blur,jpeg")
    p.add_argument("--pipeline", metavar="PRESET", help="take ops, steps and mode from a preset")
    p.add_argument("--steps", type=_positive_or_zero, default=None, metavar="T", help="number of steps T")
    p.add_argument("--mode", choices=MODES, default=None, help="absolute (default), chained or choice")
    p.add_argument("--metric", choices=("psnr", "ssim"), default="psnr", help="psnr (default) or ssim")
    p.add_argument("--samples", type=_positive_or_zero, default=16, metavar="N",
                   help="calibration images from the sample pool (default 16)")
    p.add_argument("--size", type=_positive_or_zero, default=64, metavar="PX",
                   help="their side in px: the size the frames will have (default 64)")
    p.add_argument("--seed", type=_positive_or_zero, default=None, help="seed of the sample and the fields (default 0)")
    p.add_argument("--plot", default="calibration.png", metavar="PNG",
                   help="where to write the plot (default calibration.png; '' for none)")
    p.add_argument("--json", action="store_true", help="print the calibration as JSON")


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``degrade calibrate``: print the calibrated schedule's table and write its plot."""
    from degrade.calibrate import calibrate, plot_calibration

    if args.pipeline is not None:
        from degrade.presets import load_preset

        preset = load_preset(args.pipeline)
        ops: Any = args.ops if args.ops is not None else preset.ops
        steps = args.steps if args.steps is not None else preset.steps
        mode = args.mode or preset.mode
        seed = args.seed if args.seed is not None else preset.seed
    elif args.ops is None or args.steps is None:
        raise DegradeError("give --ops and --steps (e.g. --ops blur,jpeg --steps 20) or --pipeline PRESET")
    else:
        ops, steps, mode, seed = args.ops, args.steps, args.mode or "absolute", args.seed or 0
    if args.samples < 1 or args.size < 8:
        raise DegradeError("--samples must be ≥ 1 and --size ≥ 8")
    cal = calibrate(ops, steps, mode=mode, metric=args.metric, samples=args.samples,
                    size=args.size, seed=seed)
    plot = None
    if args.plot:
        if not str(args.plot).lower().endswith(".png"):
            raise DegradeError(f"--plot must be a .png file, got '{args.plot}'")
        plot = plot_calibration(cal, args.plot)
    if args.json:
        rec = {**cal.record(), "ts": cal.ts, "targets": cal.targets, "raw_ts": cal.raw_ts,
               "raw_means": cal.raw_means, "params": cal.params, "repeats": cal.repeats,
               "plot": str(plot) if plot else None}
        _emit(json.dumps(_jsonable(rec), indent=2, ensure_ascii=False))
        return 0
    _emit(cal.table())
    drops = [cal.means[k - 1] - cal.means[k] for k in range(1, len(cal.means))]
    unit = " dB" if cal.metric == "psnr" else ""
    _emit(
        f"\n{len(cal.keys)} calibration images ({cal.size} px, seed {cal.seed}), {mode} mode:"
        f" mean drop per step {np.mean(drops):.3f}{unit} (min {min(drops):.3f}, max {max(drops):.3f})"
        + (f"; {cal.repeats} step(s) could not drop further" if cal.repeats else "")
    )
    if plot:
        _emit(f"plot: {plot}")
    _emit("use it: --schedule calibrated" + ("" if args.metric == "psnr" else ":ssim")
          + (f":samples={args.samples}" if args.samples != 16 else "")
          + (f":size={args.size}" if args.size != 64 else ""))
    return 0


# -- degrade eval / bench / restore -----------------------------------------------------------


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade eval``."""
    p = _command(
        sub,
        "eval",
        cmd_eval,
        help="benchmark a trained model step by step (direct, Cold Diffusion samplers, baselines)",
        description="Restore held-out samples at each step k with every method (degraded, direct,"
        " alg1, alg2, rollout, classical baselines)\nand write metrics.csv/json (PSNR, SSIM, SWD,"
        " network calls, ms per image), plots, a sample grid and summary.md.",
    )
    p.add_argument("--ckpt", required=True, metavar="RUN/ckpt.pt", help="checkpoint (or run folder) of degrade train")
    p.add_argument("--data", default=None, metavar="SRC", help="dataset (default: the one the model was trained on)")
    p.add_argument("--out", default="degrade-report", metavar="DIR", help="report folder (default ./degrade-report)")
    p.add_argument("--split", default="test", help="evaluated split (default test)")
    p.add_argument("--steps-eval", default=None, metavar="K,K,...",
                   help="steps to evaluate, e.g. 1,5,10, or 'all' (default: ~5 spread over 1..T)")
    p.add_argument("--limit", type=_positive_or_zero, default=None, metavar="N", help="at most N samples")
    p.add_argument("--methods", default=None, metavar="M,M",
                   help="model methods among direct,alg1,alg2,alg2_fresh,rollout (default: all that apply)")
    p.add_argument("--no-baselines", action="store_true", help="skip the classical baselines")
    p.add_argument("--tune-split", default="train", metavar="SPLIT",
                   help="split the baselines are tuned on, per step (default train)")
    p.add_argument("--batch-size", type=_positive_or_zero, default=64, metavar="B", help="images per network call")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--seed", type=_positive_or_zero, default=0, help="seed of the SWD draws (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_eval(args: argparse.Namespace) -> int:
    """``degrade eval``: call :func:`degrade.evaluate.evaluate` and print the summary's path."""
    from degrade.evaluate import evaluate

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    res = evaluate(args.ckpt, args.data, out=args.out, split=args.split, steps_eval=args.steps_eval,
                   limit=args.limit, methods=methods, baselines=not args.no_baselines,
                   tune_split=args.tune_split, device=args.device, batch_size=args.batch_size or 64,
                   seed=args.seed, progress=not args.quiet and sys.stderr.isatty())
    _emit(f"degrade eval: {res.meta['images']} images, steps {','.join(map(str, res.meta['steps_eval']))}; "
          f"report in {args.out} (summary.md, metrics.csv, plots/, samples.png)")
    return 0


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade bench``."""
    p = _command(
        sub,
        "bench",
        cmd_bench,
        help="train and evaluate the same small model once per corruption; write a leaderboard",
        description="For each op: build the sample pool's sequences, train the same UNet with the"
        " same budget, evaluate it,\nand rank the ops by how restorable they are (leaderboard.md,"
        " .csv, .json, .png in --out).",
    )
    p.add_argument("--ops", default="blur,noise,jpeg,pixelate", metavar="OPS",
                   help="op names separated by commas (default blur,noise,jpeg,pixelate)")
    p.add_argument("--steps", type=_positive_or_zero, default=10, metavar="T", help="steps T (default 10)")
    p.add_argument("--size", type=_positive_or_zero, default=32, metavar="S", help="image size in px (default 32)")
    p.add_argument("--max-steps", type=_positive_or_zero, default=300, metavar="N",
                   help="training steps per model (default 300)")
    p.add_argument("--limit", type=_positive_or_zero, default=256, metavar="N",
                   help="images of the sample pool per op (default 256; 20%% are the test split)")
    p.add_argument("--out", default="degrade-bench", metavar="DIR", help="output folder (default ./degrade-bench)")
    p.add_argument("--blind-holdout", default=None, metavar="OPS",
                   help="also train a blind model on the other ops and evaluate it on these unseen ones")
    p.add_argument("--batch-size", type=_positive_or_zero, default=32, metavar="B", help="training batch (default 32)")
    p.add_argument("--base-channels", type=_positive_or_zero, default=16, metavar="C", help="UNet width (default 16)")
    p.add_argument("--channel-mults", default="1,2", metavar="M,M", help="UNet levels (default 1,2)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--threads", type=_positive_or_zero, default=0, metavar="N", help="torch threads (default: torch's)")
    p.add_argument("--workers", type=_positive_or_zero, default=0, metavar="N", help="DataLoader workers (default 0)")
    p.add_argument("--eval-limit", type=_positive_or_zero, default=None, metavar="N", help="at most N test images per op")
    p.add_argument("--steps-eval", default=None, metavar="K,K,...", help="steps to evaluate (default ~5 over 1..T)")
    p.add_argument("--seed", type=_positive_or_zero, default=0, help="seed of data, model and draws (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_bench(args: argparse.Namespace) -> int:
    """``degrade bench``: call :func:`degrade.bench.bench` and print the leaderboard."""
    from pathlib import Path

    from degrade.bench import bench

    try:
        mults = tuple(int(m) for m in args.channel_mults.split(",") if m.strip())
    except ValueError:
        raise DegradeError(f"--channel-mults takes whole numbers separated by commas, got '{args.channel_mults}'") from None
    for name in ("steps", "size", "max_steps", "limit", "batch_size", "base_channels"):
        if getattr(args, name) < 1:
            raise DegradeError(f"--{name.replace('_', '-')} must be at least 1")
    res = bench(args.ops, steps=args.steps, size=args.size, max_steps=args.max_steps, limit=args.limit,
                out=args.out, blind_holdout=args.blind_holdout, batch_size=args.batch_size,
                base_channels=args.base_channels, channel_mults=mults, lr=args.lr, threads=args.threads,
                workers=args.workers, eval_limit=args.eval_limit, steps_eval=args.steps_eval, seed=args.seed,
                progress=not args.quiet and sys.stderr.isatty(), log=lambda s: _emit(s, sys.stderr))
    _emit((Path(res["out"]) / "leaderboard.md").read_text().rstrip())
    return 0


def add_restore_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``degrade restore``."""
    p = _command(
        sub,
        "restore",
        cmd_restore,
        help="restore your own images with a trained model",
        description="Run a checkpoint on a folder of images (one PNG out per image).\n--step k says"
        " how degraded they are (a step of the training data); --blind lets a blind model judge.\n"
        "alg1/alg2 replay the training data's pipeline (from its manifest) with a fresh key per"
        " image:\nexact for deterministic ops, a new noise draw for stochastic ones.",
    )
    p.add_argument("--ckpt", required=True, metavar="RUN/ckpt.pt", help="checkpoint (or run folder) of degrade train")
    p.add_argument("--input", required=True, metavar="DIR", help="folder, glob, .txt list or image file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--step", type=_positive_or_zero, default=None, metavar="K", help="the images' step k")
    how.add_argument("--blind", action="store_true", help="a blind model: no step needed (direct only)")
    p.add_argument("--sampler", choices=("direct", "alg1", "alg2", "rollout"), default="direct",
                   help="direct (default), alg1/alg2 (Cold Diffusion), rollout (target=prev models)")
    p.add_argument("--data", default=None, metavar="SRC", help="the training dataset (default: the checkpoint's)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_restore(args: argparse.Namespace) -> int:
    """``degrade restore``: call :func:`degrade.restore.restore`."""
    from degrade.restore import restore

    restore(args.ckpt, args.input, args.out, step=args.step, blind=args.blind, sampler=args.sampler,
            data=args.data, device=args.device, progress=not args.quiet,
            log=lambda s: _emit(s, sys.stderr))
    return 0


# -- main -------------------------------------------------------------------------------------

#: The subcommands, in the order ``degrade -h`` lists them.
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_ops_parser,
    add_preview_parser,
    add_build_parser,
    add_inspect_parser,
    add_verify_parser,
    add_train_parser,
    add_presets_parser,
    add_calibrate_parser,
    add_eval_parser,
    add_bench_parser,
    add_restore_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``degrade`` argument parser with every command of :data:`COMMANDS`.

    Examples
    --------
    >>> build_parser().parse_args(["ops", "blur", "--debug"]).debug
    True
    """
    parser = _Parser(
        prog=PROG,
        description="Build datasets of degradation sequences: clean images x0 → x1 … xT.",
        epilog="Run 'degrade COMMAND -h' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    parser.set_defaults(func=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``degrade`` command line and return its exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on a user error or a system refusal (disk full, ...), 1 on an
        internal error, 130 on Ctrl-C.

    Examples
    --------
    >>> main(["ops", "nosuch_op"])
    2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    # A real command line cannot hold a NUL byte; one passed in-process would reach the
    # file system calls, which refuse it with a ValueError deep inside a command.
    bad = next((a for a in argv if isinstance(a, str) and "\0" in a), None)
    if bad is not None:
        _error(f"argument {bad!r} contains a NUL byte")
        return 2
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # -h, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    debug = bool(getattr(args, "debug", False))
    if args.func is None:
        _emit(parser.format_help().rstrip())
        return 0
    try:
        return int(args.func(args) or 0)
    except DegradeError as exc:
        if debug:
            traceback.print_exc()
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _emit(f"{PROG}: interrupted", sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`degrade ops | head`): stop quietly, like other Unix tools.
        return 141
    except OSError as exc:
        # The system refused (a full disk, a read-only or vanished folder, a lost network
        # mount): not a bug in degrade, so one line naming the file, exit 2 like a user error.
        if debug:
            traceback.print_exc()
        _error(_os_error_message(exc))
        return 2
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _emit(
            f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)}"
            + ("" if debug else " (run with --debug for the traceback)"),
            sys.stderr,
        )
        return 1
