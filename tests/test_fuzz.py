"""Fuzzing the parsers (issue 9): op specs, recipes, presets, the command line.

Random input gives a result or a clean :class:`DegradeError` (on the command line: one
line ``degrade: error: …`` and exit code 2), never another exception or a traceback.

Examples are bounded and derandomised, so the default suite stays fast and a failure
reproduces; ``HYPOTHESIS_PROFILE=fuzz-long pytest tests/test_fuzz.py`` explores much more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import degrade
from degrade import DegradeError, Pipeline, replay
from degrade.cli import main
from degrade.pipeline import check_recipe
from degrade.registry import aliases, get_op, list_ops

settings.register_profile(
    "fuzz-default", max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip
settings.register_profile(
    "fuzz-long", max_examples=3000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "fuzz-default")
if PROFILE not in ("fuzz-default", "fuzz-long"):
    PROFILE = "fuzz-default"
fuzz = settings(settings.get_profile(PROFILE))

# Ops that import heavy optional libraries (torch, albumentations) or take seconds per
# call stay out of the random pipelines; their parsing is fuzzed all the same.
HEAVY = {"deepdream", "albu"}
OPS = sorted(list_ops())
LIGHT_OPS = [o for o in OPS if o not in HEAVY and "partners" not in get_op(o).needs]
NAMES = OPS + sorted(aliases())

# -- op specs ------------------------------------------------------------------------------

junk = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
numbers = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1", "-1", "1e9", "1e-9", "nan", "inf", "-inf", "0x10", "1_000", "5.", ".5",
                     "true", "false", "yes", "None", "1e999"]),
)
values = st.one_of(
    numbers,
    st.tuples(numbers, numbers).map(lambda ab: f"{ab[0]}..{ab[1]}"),
    st.sampled_from(["..", "1..", "..2", "1..2..3", "a..b", "", "=", "__import__('os')"]),
    junk,
)


@st.composite
def op_entries(draw: st.DrawFn) -> str:
    name = draw(st.one_of(st.sampled_from(NAMES), junk))
    op = None
    with contextlib.suppress(DegradeError):
        op = get_op(name)
    keys = [p.name for p in op.params] if op is not None else []
    opts = draw(st.lists(st.tuples(st.one_of(st.sampled_from(keys), junk) if keys else junk, values),
                         max_size=3))  # fmt: skip
    sep = draw(st.sampled_from(["=", "=", "=", "", "==", " = "]))
    return ":".join([name, *(f"{k}{sep}{v}" for k, v in opts)])


op_specs = st.one_of(
    junk,
    st.lists(op_entries(), min_size=1, max_size=3).map(",".join),
    st.lists(st.one_of(op_entries(), junk), max_size=4).map(lambda xs: ",".join(xs)),
)


@fuzz
@given(spec=op_specs, steps=st.integers(-1, 6), mode=st.sampled_from(["absolute", "chained", "choice", "x"]))
def test_parse_ops_and_pipelines(spec, steps, mode):
    try:
        specs = degrade.parse_ops(spec)
    except DegradeError as exc:
        assert str(exc)  # (it may echo a newline the spec held: the CLI prints one line)
        return
    assert specs and all(s.op in OPS for s in specs)
    try:
        pipe = Pipeline(specs, steps=steps, mode=mode)
    except DegradeError:
        return
    # The normalised form round-trips through JSON and the --ops syntax.
    again = Pipeline.from_dict(json.loads(json.dumps(pipe.to_dict())))
    assert again.to_dict() == pipe.to_dict()
    if all(s.op in LIGHT_OPS for s in specs):
        img = np.random.default_rng(0).random((9, 7, 3), dtype=np.float32)
        try:
            frames, recipe = pipe.run(img, key="fuzz")
        except DegradeError:
            return
        assert len(frames) == pipe.steps + 1 and all(f.shape == img.shape for f in frames)
        check_recipe(json.loads(json.dumps(recipe)))


# -- recipes -------------------------------------------------------------------------------


class _Partners:
    def __init__(self, img: np.ndarray) -> None:
        self.img = img

    def choose(self, *, count: int, **kw: Any) -> list[tuple[str, np.ndarray]]:
        return [(f"partner-{i}", self.img) for i in range(count)]


def _base_recipes() -> list[tuple[dict, np.ndarray]]:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (6, 9, 1), dtype=np.uint8)
    out = []
    for spec, steps, mode, img in [
        ("blur:sigma=2,jpeg,noise", 3, "absolute", rgb),
        ("pixelate,noise:gray=true,webp:quality=5..50", 2, "chained", rgb),
        ("blur,jpeg,mask:shape=blocks", 3, "choice", gray),
        ("blend,contrast:factor=0.5..0.2", 2, "absolute", rgb),
        ("glass_blur,perlin,banding", 2, "absolute", gray),
    ]:
        seq = Pipeline.parse(spec, steps=steps, mode=mode).run_encoded(img, key="fz", partners=_Partners(img))
        out.append((json.loads(json.dumps(seq.recipe)), img))
    return out


BASES = _base_recipes()

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), junk,
              st.sampled_from(OPS), st.sampled_from(["position", "op", "params", "t", "k", "0"])),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(junk, c, max_size=4)),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _nearby(value: Any, draw: st.DrawFn) -> Any:
    """A value of about the same kind: the mutations that get past a shallow type check."""
    if isinstance(value, bool):
        return draw(st.sampled_from([not value, 0, 1, "true", None]))
    if isinstance(value, int):
        return draw(st.sampled_from([value + 1, value - 1, -value, value * 1000, float(value), 0, -1, 2**63, True]))
    if isinstance(value, float):
        return draw(st.sampled_from([value * 2, -value, value + 1e-9, 0.0, 1.0, 1e300, float("nan"),
                                     float("inf"), int(value) if value == value and abs(value) < 1e15 else 0]))  # fmt: skip
    if isinstance(value, str):
        return draw(st.one_of(st.sampled_from(OPS), st.sampled_from(["", value * 2, value.upper(), "0", "../x"]), junk))
    if isinstance(value, list):
        return draw(st.sampled_from([value[::-1], value + value[-1:], value[1:], [], [value]]))
    if isinstance(value, dict):
        return draw(st.sampled_from([{}, {**value, "extra": 1}, list(value.values())]))
    return draw(json_values)


@st.composite
def mutated_recipes(draw: st.DrawFn) -> tuple[dict, np.ndarray, dict]:
    base, img = draw(st.sampled_from(BASES))
    recipe = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(recipe)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = recipe
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        how = draw(st.sampled_from(["nearby", "nearby", "random", "delete", "insert"]))
        if how == "nearby":
            parent[key] = _nearby(parent[key], draw)
        elif how == "random":
            parent[key] = draw(json_values)
        elif how == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(junk)] = draw(json_values)
        else:
            parent.insert(key, draw(json_values))
    partners = {f"partner-{i}": img for i in range(3)}
    return recipe, img, partners


@fuzz
@given(case=mutated_recipes())
def test_mutated_recipes(case):
    recipe, img, partners = case
    try:
        check_recipe(recipe)
    except DegradeError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000, str(exc)
    try:
        frames = replay(recipe, img, partners=partners)
    except DegradeError:
        return
    assert len(frames) == len(recipe["steps"]) + 1
    assert all(f.shape == img.shape and f.dtype == np.float32 for f in frames)


@fuzz
@given(recipe=json_values)
def test_random_json_is_not_a_recipe(recipe):
    with pytest.raises(DegradeError):
        check_recipe(recipe)


# -- the command line ----------------------------------------------------------------------

small_ints = st.one_of(st.integers(-2, 6).map(str), st.sampled_from(["0", "16", "x", "", "1.5", "-0"]))
split_specs = st.one_of(
    st.sampled_from(["train=1", "train=0.5,val=0.5", "a=0.5,a=0.5", "train=2", "=1", "x", "train=nan"]),
    junk,
)


@st.composite
def build_argv(draw: st.DrawFn, workdir: str) -> list[str]:
    argv = ["build", "--dry-run", "--size", "8"]
    flags: dict[str, st.SearchStrategy[str]] = {
        "--ops": st.one_of(st.sampled_from(LIGHT_OPS), op_specs),
        "--steps": small_ints,
        "--size": st.sampled_from(["0", "4", "8", "-1", "x"]),
        "--limit": st.sampled_from(["1", "2", "3", "0", "-1", "x"]),
        "--seed": small_ints,
        "--workers": small_ints,
        "--shard-size": small_ints,
        "--keep": st.one_of(st.sampled_from(["all", "none", "every:2", "pairs:1", "pairs:99", "every:0", "x:1"]), junk),
        "--codec": st.sampled_from(["auto", "png", "jpg", ""]),
        "--mode": st.sampled_from(["absolute", "chained", "choice", "external", "x"]),
        "--schedule": st.sampled_from(["linear", "cosine", "geometric", "calibrated", "x", ""]),
        "--split": split_specs,
        "--format": st.sampled_from(["webdataset", "parquet", "tar"]),
        "--input": st.sampled_from(["synthetic", "samples", "nope", "*.nothing", "", "sequences:nope",
                                    os.path.join(workdir, "in")]),
        "--out": st.sampled_from([os.path.join(workdir, "out"), "", os.path.join(workdir, "file.txt")]),
        "--pipeline": st.one_of(st.sampled_from(["imagenet-c/pixelate", "cold-diffusion/blur-cifar10", "nope",
                                                 os.path.join(workdir, "bad.yaml")]), junk),
        "--backend": st.sampled_from(["loky", "dask", "x"]),
    }
    for _ in range(draw(st.integers(0, 6))):
        flag = draw(st.sampled_from(sorted(flags)))
        argv += [flag, draw(flags[flag])] if draw(st.integers(0, 9)) else [flag]
    for flag in draw(st.lists(st.sampled_from(["--strict", "--overwrite", "--quiet", "--debug", "-x", "--"]),
                              max_size=2)):  # fmt: skip
        if flag != "--debug":
            argv.append(flag)
    if "--ops" not in argv and "--pipeline" not in argv and draw(st.booleans()):
        argv += ["--ops", draw(st.sampled_from(LIGHT_OPS)), "--steps", "2", "--limit", "2"]
    if "--limit" not in argv:
        argv += ["--limit", "2"]
    return argv


@st.composite
def preview_argv(draw: st.DrawFn, workdir: str) -> list[str]:
    argv = ["preview", "--size", "8", "--steps", "2", "--out", os.path.join(workdir, "p.png")]
    flags: dict[str, st.SearchStrategy[str]] = {
        "--ops": st.one_of(st.sampled_from(LIGHT_OPS), op_specs),
        "--steps": st.sampled_from(["1", "3", "0", "-2", "x"]),
        "--size": st.sampled_from(["4", "8", "0", "-1", "x"]),
        "--seed": small_ints,
        "--columns": small_ints,
        "--mode": st.sampled_from(["absolute", "chained", "choice", "x"]),
        "--schedule": st.sampled_from(["linear", "cosine", "geometric", "x"]),
        "--input": st.sampled_from([os.path.join(workdir, "in", "a.png"), os.path.join(workdir, "in", "bad.png"),
                                    "nope.png", ""]),
        "--out": st.sampled_from([os.path.join(workdir, "q.png"), os.path.join(workdir, "no", "dir", "q.png"),
                                  os.path.join(workdir, "q.txt"), ""]),
    }
    for _ in range(draw(st.integers(0, 5))):
        flag = draw(st.sampled_from(sorted(flags)))
        argv += [flag, draw(flags[flag])] if draw(st.integers(0, 9)) else [flag]
    if "--ops" not in argv:
        argv += ["--ops", draw(st.sampled_from(LIGHT_OPS))]
    return argv


@st.composite
def ops_argv(draw: st.DrawFn) -> list[str]:
    argv = ["ops"]
    if draw(st.booleans()):
        argv.append(draw(st.one_of(st.sampled_from(NAMES), junk)))
    if draw(st.booleans()):
        argv.append(draw(st.sampled_from(["--json", "-h", "--bogus", "extra"])))  # (--debug: a traceback, on purpose)
    return argv


@pytest.fixture(scope="module")
def workdir() -> str:
    from PIL import Image

    d = tempfile.mkdtemp(prefix="degrade-fuzz-")
    (Path(d) / "in").mkdir()
    Image.new("RGB", (12, 10), (10, 200, 30)).save(Path(d) / "in" / "a.png")
    (Path(d) / "in" / "bad.png").write_bytes(b"not a png")
    (Path(d) / "file.txt").write_text("a file, not a folder")
    (Path(d) / "bad.yaml").write_text("ops: [blur\n")
    return d


def run_cli(argv: list[str], cwd: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(argv)
    finally:
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue()


def check_clean_exit(argv: list[str], rc: int, out: str, err: str) -> None:
    shown = f"argv={argv!r}\nstdout={out[-2000:]}\nstderr={err[-2000:]}"
    assert "Traceback" not in out + err, shown
    assert "internal error" not in err, shown
    assert rc in (0, 2), shown
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("degrade: error: "), shown


@pytest.mark.filterwarnings("ignore")
def test_cli_build_dry_run(workdir):
    @fuzz
    @given(argv=build_argv(workdir))
    def check(argv):
        rc, out, err = run_cli(argv, workdir)
        check_clean_exit(argv, rc, out, err)
        assert not (Path(workdir) / "out").exists() and not (Path(workdir) / "degrade-data").exists(), argv

    check()


@pytest.mark.filterwarnings("ignore")
def test_cli_preview(workdir):
    @fuzz
    @given(argv=preview_argv(workdir))
    def check(argv):
        rc, out, err = run_cli(argv, workdir)
        check_clean_exit(argv, rc, out, err)

    check()


def test_cli_ops(workdir):
    @fuzz
    @given(argv=ops_argv())
    def check(argv):
        rc, out, err = run_cli(argv, workdir)
        check_clean_exit(argv, rc, out, err)

    check()


# Commands fuzzed with random tokens: those that only read (and answer fast).
@given(argv=st.tuples(
    st.sampled_from(["ops", "verify", "inspect", "presets", "calibrate", "", "-h", "--version", "--bogus",
                     "bogus", "build"]),
    st.lists(st.one_of(junk, st.sampled_from(["--json", "-h", "--regenerate", "--sheet", "--samples", "x", "-1",
                                              "--seed", "--dry-run", "--", "-"])), max_size=4),
))  # fmt: skip
@example(argv=("verify", ["\x00"]))  # found by the long profile: a NUL byte in a path
@example(argv=("inspect", ["a\x00b", "--sheet", "\x00"]))
@fuzz
def test_cli_random_tokens(argv):
    command, rest = argv
    tokens = [t for t in [command, *rest] if t]
    if tokens[:1] == ["build"]:
        tokens.insert(1, "--dry-run")  # never a real build
        tokens += ["--limit", "1", "--size", "4"]
    if tokens[:1] == ["calibrate"] and "-h" not in tokens:
        assume(False)  # calibrate runs a real computation; its parsing is covered by -h
    workdir = tempfile.mkdtemp(prefix="degrade-fuzz-tokens-")
    rc, out, err = run_cli(tokens, workdir)
    check_clean_exit(tokens, rc, out, err)
    if tokens[:1] == ["verify"] and rc == 1:
        pytest.fail(f"verify of nothing exited 1: {tokens}")


# -- presets ---------------------------------------------------------------------------------

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 60), st.floats(allow_nan=True), junk,
                         st.sampled_from(LIGHT_OPS), st.sampled_from(["blur:sigma=2", "jpeg:quality=10..5"]))  # fmt: skip
yaml_values = st.recursive(yaml_scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                              st.dictionaries(junk, c, max_size=3)), max_leaves=6)  # fmt: skip


@st.composite
def preset_texts(draw: st.DrawFn) -> str:
    import yaml

    doc: dict[str, Any] = {
        "description": "fuzz",
        "ops": [{"op": "blur", "params": {"sigma": 2}}, "jpeg:quality=10..5"],
        "steps": 3,
        "source": {"paper": "none"},
    }
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["description", "ops", "steps", "source", "mode", "schedule", "seed", "size",
                                    "differences", "notes", "unknown"]))  # fmt: skip
        how = draw(st.sampled_from(["set", "delete", "op"]))
        if how == "delete":
            doc.pop(key, None)
        elif how == "op":
            doc["ops"] = draw(st.lists(st.one_of(op_entries(), st.fixed_dictionaries(
                {"op": st.sampled_from(NAMES)}, optional={"params": yaml_values})), max_size=3))  # fmt: skip
        else:
            doc[key] = draw(yaml_values)
    text = yaml.safe_dump(doc, allow_unicode=True)
    if draw(st.integers(0, 4)) == 0:  # now and then, break the text itself
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(junk) + text[cut:]
    return text


@pytest.mark.filterwarnings("ignore")
def test_preset_files(workdir):
    presets = pytest.importorskip("degrade.presets", reason="degrade/presets.py is being written by another helper")

    @fuzz
    @given(text=preset_texts())
    def check(text):
        path = Path(workdir) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            preset = presets.load_preset(str(path))
        except DegradeError as exc:
            assert str(exc).startswith(f"{path}:"), str(exc)
            return
        try:
            presets.pipeline_from_preset(str(path))
        except DegradeError:
            return
        assert preset.steps >= 1

    check()
