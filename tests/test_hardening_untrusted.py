"""Hardening: untrusted shards, recipes and presets (issue 9, "Untrusted shards and configs").

A dataset may come from anywhere. Reading it must never execute anything it carries:
no unpickling, no evaluation of strings, no import of a module a recipe names, no member
written outside its folder. Recipes and presets are data, checked field by field.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import tarfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import degrade
from degrade import Pipeline, replay
from degrade.build import build
from degrade.cli import main
from degrade.errors import DegradeError
from degrade.pipeline import check_recipe
from degrade.registry import get_op, list_ops
from degrade.shards import iter_shard

SOURCE = Path(degrade.__file__).resolve().parent
PWNED = "__import__('os').system('touch PWNED')"

# -- nothing in degrade/ unpickles, evaluates or loads unsafely ----------------------------------

_UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle"}
_LOADS = {"load", "loads", "Unpickler", "open"}


def _sources() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _safe_loader_names(tree: ast.Module) -> set[str]:
    """Classes of the module that subclass yaml's SafeLoader / CSafeLoader."""
    safe = {"SafeLoader", "CSafeLoader", "yaml.SafeLoader", "yaml.CSafeLoader"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(_dotted(b) in safe for b in node.bases):
            safe.add(node.name)
    return safe


def unsafe_calls(path: Path) -> list[str]:
    """Every call in ``path`` that could run code carried by data."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    safe_loaders = _safe_loader_names(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(SOURCE.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in _UNPICKLERS for m in mods):
                found.append(f"{where}: imports {', '.join(mods)}")
            continue
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, attr = name.rpartition(".")
        if name in ("eval", "exec", "compile", "__import__", "execfile", "input"):
            found.append(f"{where}: {name}()")
        elif head.split(".")[-1] in _UNPICKLERS and attr in _LOADS:
            found.append(f"{where}: {name}()")
        elif name in ("joblib.load", "pd.read_pickle", "pandas.read_pickle", "torch.jit.load"):
            found.append(f"{where}: {name}()")
        elif attr == "load" and head.split(".")[-1] in ("np", "numpy") and _is_true(_kw(node, "allow_pickle")):
            found.append(f"{where}: {name}(allow_pickle=True)")
        elif name == "torch.load" and not _is_true(_kw(node, "weights_only")):
            found.append(f"{where}: torch.load() without weights_only=True")
        elif head.split(".")[-1] == "yaml" and attr in ("unsafe_load", "full_load", "unsafe_load_all", "full_load_all"):
            found.append(f"{where}: {name}()")
        elif head.split(".")[-1] == "yaml" and attr in ("load", "load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader) not in safe_loaders:
                found.append(f"{where}: {name}() without a SafeLoader")
        elif name in ("os.system", "os.popen") or _is_true(_kw(node, "shell")):
            found.append(f"{where}: {name}() runs a shell")
        elif name.endswith(("autodecode.Decoder", "autodecode.basichandlers", "torch_loads")) or (
            head.split(".")[-1] in ("wds", "webdataset") and attr == "decode"
        ):
            found.append(f"{where}: {name}() (webdataset's default decoders unpickle .pyd/.pickle)")
    return found


def test_the_scanner_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "degrade_bad.py"
    bad.write_text(textwrap.dedent("""
        import pickle, yaml, torch, numpy as np, os
        from marshal import loads
        class Safe(yaml.SafeLoader): pass
        pickle.loads(b"")
        eval("1")
        exec("x = 1")
        torch.load("w.pt")
        torch.load("w.pt", weights_only=False)
        torch.load("w.pt", weights_only=True)
        yaml.load("a: 1")
        yaml.load("a: 1", Loader=yaml.Loader)
        yaml.load("a: 1", Loader=Safe)
        yaml.safe_load("a: 1")
        yaml.full_load("a: 1")
        np.load("x.npy", allow_pickle=True)
        np.load("x.npy")
        os.system("ls")
        model.eval()
    """))
    global SOURCE
    old, SOURCE = SOURCE, tmp_path
    try:
        found = unsafe_calls(bad)
    finally:
        SOURCE = old
    text = "\n".join(found)
    for needle in ["imports pickle", "imports marshal", "pickle.loads()", "eval()", "exec()",
                   "torch.load() without", "yaml.load() without", "yaml.full_load()",
                   "allow_pickle=True", "os.system()"]:  # fmt: skip
        assert needle in text, needle
    assert len(found) == 12, found  # the two torch.load without, the two bad yaml.load


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_unpickling_evaluation_or_unsafe_loading(path):
    assert unsafe_calls(path) == []


def test_imports_by_name_are_only_where_expected():
    # importlib.import_module with a computed name runs whatever module that names.
    allowed = {
        "degrade/ops/__init__.py",  # the built-in family modules, a fixed list
        "degrade/ops/learned.py",  # deepdream's model=: see test_replay_never_imports_what_a_recipe_names
    }
    found = set()
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _dotted(node.func) in ("importlib.import_module", "import_module"):
                if not (node.args and isinstance(node.args[0], ast.Constant)):
                    found.add(str(path.relative_to(SOURCE.parent)))
    assert found <= allowed, found - allowed


# -- tar members: absolute paths, "..", links, devices ---------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("untrusted") / "data"
    build(["synthetic"], ops="blur,jpeg", steps=2, size=16, limit=6, shard_size=3, out=out,
          workers=1, progress=False, log=lambda s: None)  # fmt: skip
    return out


def _member(name: str, data: bytes = b"x", **kw: object) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    info.size = len(data) if info.isreg() else 0
    return info, (data if info.isreg() else None)


def _evil_members(tmp: Path) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    return {
        "absolute path": _member(str(tmp / "evil.clean.png")),
        "dot-dot": _member("../evil.clean.png"),
        "dot-dot inside": _member("a/../../evil.json"),
        "backslash dot-dot": _member("..\\evil.json"),
        "symlink": _member("evil.clean.png", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        "hard link": _member("evil.json", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
        "device": _member("evil.s01.png", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        "folder": _member("evil", type=tarfile.DIRTYPE),
        "fifo": _member("evil.s01.png", type=tarfile.FIFOTYPE),
        # webdataset's default decoders unpickle .pyd members; degrade's reader refuses them.
        "pickle member": _member("{key}.pyd", pickle.dumps(os.system)),
    }


EVIL = list(_evil_members(Path("/tmp")))


def _smuggle(shard: Path, member: tuple[tarfile.TarInfo, bytes | None]) -> None:
    """Rewrite ``shard`` with ``member`` slipped in after its first sample."""
    with tarfile.open(shard) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    key = members[0][0].name.split(".")[0]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for i, (m, data) in enumerate(members):
            out.addfile(m, io.BytesIO(data))
            if i == 1:  # inside the first sample
                info, extra = copy.copy(member[0]), member[1]
                info.name = info.name.replace("{key}", key)
                out.addfile(info, io.BytesIO(extra) if extra is not None else None)
    shard.write_bytes(buf.getvalue())


def _refresh_manifest(folder: Path) -> None:
    """Make the manifest agree with the tampered shards, as an attacker would."""
    m = json.loads((folder / "manifest.json").read_text())
    for s in m["shards"]:
        p = folder / s["name"]
        s["bytes"] = p.stat().st_size
        s["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("kind", EVIL)
def test_hostile_tar_members_are_refused_by_the_reader_and_verify(kind, dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "d" / "data"
    shutil.copytree(dataset, folder)
    shard = folder / "shard-000000.tar"
    _smuggle(shard, _evil_members(tmp_path)[kind])
    _refresh_manifest(folder)
    with pytest.raises(DegradeError, match=rf"^{shard}: .*(unsafe path|not a regular file|unexpected member)"):
        list(iter_shard(shard))
    capsys.readouterr()
    rc = main(["verify", str(folder)])
    out = capsys.readouterr().out
    assert rc == 1 and "shard-000000.tar: cannot be read" in out, out
    # Nothing was extracted or executed anywhere.
    assert not list(tmp_path.rglob("evil*")) and not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("recipe", [b"[" * 100_000, b'{"a":' * 50_000, b"\xff\xfe", b"null", b"NaN"])
def test_a_hostile_recipe_member_is_a_reader_error(recipe, dataset, tmp_path):
    shard = tmp_path / "shard-000000.tar"
    shutil.copy(dataset / "shard-000000.tar", shard)
    with tarfile.open(shard) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for m, data in members:
            if m.name.endswith(".json"):
                m = copy.copy(m)
                data = recipe
                m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    shard.write_bytes(buf.getvalue())
    with pytest.raises(DegradeError, match=rf"^{shard}: sample '.*': (invalid recipe JSON|the recipe is not a JSON object)"):
        list(iter_shard(shard))


def test_an_input_tar_with_hostile_members_is_read_never_extracted(tmp_path, monkeypatch):
    # A WebDataset tar given to `build --input`: its images are read by offset, never
    # written by name; links and folders are passed over.
    monkeypatch.chdir(tmp_path)
    from degrade.image import encode_png

    png = encode_png(np.full((4, 4, 3), 0.5, np.float32))
    src = tmp_path / "in" / "inputs.tar"
    src.parent.mkdir()
    with tarfile.open(src, "w") as tf:
        for name, data in [("../../escape.png", png), ("/abs/olute.png", png), ("ok.png", png)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in (_member("link.png", type=tarfile.SYMTYPE, linkname="/etc/passwd")[0],
                     _member("dir.png", type=tarfile.DIRTYPE)[0]):  # fmt: skip
            tf.addfile(info)
    before = sorted(p for p in tmp_path.rglob("*"))
    r = build([str(src)], ops="blur", steps=1, size=4, out=tmp_path / "out", workers=1,
              progress=False, log=lambda s: None)  # fmt: skip
    assert r.manifest["samples"] == 3
    after = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "out"))
    assert after == before
    assert not Path("/abs").exists() and not (tmp_path.parent / "escape.png").exists()


# -- recipes are data: validated field by field -------------------------------------------------


def _recipe(ops: str = "blur:sigma=2,jpeg,noise", steps: int = 3) -> tuple[dict, np.ndarray]:
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    seq = Pipeline.parse(ops, steps=steps).run_encoded(img, key="k")
    return json.loads(json.dumps(seq.recipe)), img


RECIPE, CLEAN = _recipe()


def _set(recipe: dict, path: tuple, value: object) -> dict:
    r = copy.deepcopy(recipe)
    node = r
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return r


_DELETE = object()

BAD_RECIPES = [
    # (what, path, value, the field the message must name)
    *[(f"missing {k}", (k,), _DELETE, k) for k in ("recipe_version", "key", "seed", "shape", "pipeline", "ops", "steps")],
    ("unknown op in ops", ("ops", 0, "op"), "no_such_op", "ops[0].op"),
    ("op name not a string", ("ops", 0, "op"), ["blur"], "ops[0].op"),
    ("an alias instead of the name", ("ops", 0, "op"), "gaussian_blur", "ops[0].op"),
    ("wrong op version", ("ops", 0, "version"), 999, "ops[0]"),
    ("position not an int", ("ops", 1, "position"), "1", "ops[1].position"),
    ("unknown op in a step", ("steps", 0, "ops", 0, "op"), "no_such_op", "steps[0].ops[0]"),
    ("param wrong type", ("steps", 1, "ops", 0, "params", "sigma"), "abc", "steps[1].ops[0].params.sigma"),
    ("param a list", ("steps", 1, "ops", 0, "params", "sigma"), [1, 2], "steps[1].ops[0].params.sigma"),
    ("param NaN", ("steps", 1, "ops", 0, "params", "sigma"), float("nan"), "steps[1].ops[0].params.sigma"),
    ("param out of range", ("steps", 1, "ops", 0, "params", "sigma"), 1e9, "steps[1].ops[0].params.sigma"),
    ("int param a float", ("steps", 1, "ops", 1, "params", "quality"), 50.5, "steps[1].ops[1].params.quality"),
    ("int param 50.0", ("steps", 1, "ops", 1, "params", "quality"), 50.0, "steps[1].ops[1].params.quality"),
    ("int param out of range", ("steps", 1, "ops", 1, "params", "quality"), 0, "steps[1].ops[1].params.quality"),
    ("bool param a string", ("steps", 1, "ops", 2, "params", "gray"), "maybe", "steps[1].ops[2].params.gray"),
    ("code as a param", ("steps", 1, "ops", 0, "params", "sigma"), PWNED, "steps[1].ops[0].params.sigma"),
    ("missing param", ("steps", 1, "ops", 0, "params", "sigma"), _DELETE, "steps[1].ops[0].params"),
    ("unknown param", ("steps", 1, "ops", 0, "params", "__class__"), 1, "steps[1].ops[0].params"),
    ("params not a mapping", ("steps", 1, "ops", 0, "params"), "sigma=2", "steps[1].ops[0]"),
    ("step not a mapping", ("steps", 0), [], "steps[0]"),
    ("t out of range", ("steps", 0, "t"), 2.0, "steps[0].t"),
    ("t a string", ("steps", 0, "t"), "0.5", "steps[0].t"),
    ("too many steps", ("pipeline", "steps"), 7, "steps"),
    ("position of another op", ("steps", 1, "ops", 0, "position"), 1, "steps[1].ops[0]"),
    ("shape 2-D", ("shape",), [8, 8], "shape"),
    ("shape 2 channels", ("shape",), [8, 8, 2], "shape"),
    ("shape zero", ("shape",), [0, 8, 3], "shape"),
    ("shape strings", ("shape",), ["8", "8", "3"], "shape"),
    ("seed negative", ("seed",), -1, "seed"),
    ("seed a float", ("seed",), 0.5, "seed"),
    ("seed code", ("seed",), PWNED, "seed"),
    ("key not a string", ("key",), 5, "key"),
    ("mode unknown", ("pipeline", "mode"), PWNED, "pipeline.mode"),
    ("recipe version", ("recipe_version",), "1", "recipe_version"),
    ("partners for no op", ("partners",), {"7": [{"key": "a", "sha256": "b"}]}, "partners.'7'"),
    ("partners not a mapping", ("partners",), [1], "partners"),
]


@pytest.mark.parametrize(("what", "path", "value", "field"), BAD_RECIPES, ids=[b[0] for b in BAD_RECIPES])
def test_a_bad_recipe_is_an_error_naming_the_field(what, path, value, field, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = _set(RECIPE, path, value)
    with pytest.raises(DegradeError) as info:
        check_recipe(bad)
    message = str(info.value)
    assert field in message, message
    assert "\n" not in message and len(message) < 500, message
    with pytest.raises(DegradeError):
        replay(bad, CLEAN)
    assert not (tmp_path / "PWNED").exists()


def test_the_real_recipe_passes_and_replays():
    check_recipe(RECIPE)
    assert len(replay(RECIPE, CLEAN)) == 4


def test_a_partner_recipe_without_its_partners_is_an_error():
    img = np.zeros((8, 8, 3), np.uint8)

    class Partners:
        def choose(self, *, count, **kw):
            return [(f"p{i}", img) for i in range(count)]

    recipe = Pipeline.parse("patches", steps=2).run_encoded(img, key="k", partners=Partners()).recipe
    recipe = json.loads(json.dumps(recipe))
    check_recipe(recipe)
    for bad, field in [(_set(recipe, ("partners",), _DELETE), "partners.0"),
                       (_set(recipe, ("partners", "0"), recipe["partners"]["0"][:1]), "partners.'0'"),
                       (_set(recipe, ("partners", "x"), []), "partners.'x'")]:  # fmt: skip
        with pytest.raises(DegradeError, match=field.replace(".", r"\.")):
            check_recipe(bad)


@pytest.mark.parametrize("op", [o for o in list_ops() if get_op(o).params])
def test_code_in_any_param_of_any_op_never_runs(op, tmp_path, monkeypatch):
    # Every parameter of every op set to a string of Python, in a recipe and on the command
    # line: refused, or taken as plain text, never evaluated (cwd is tmp_path, so the
    # `touch PWNED` would show).
    monkeypatch.chdir(tmp_path)
    spec = get_op(op)
    img = np.full((8, 8, 3), 128, np.uint8)
    recipe = json.loads(json.dumps(Pipeline([op], steps=1).recipe("k", img.shape)))
    for p in spec.params:
        bad = _set(recipe, ("steps", 0, "ops", 0, "params", p.name), PWNED)
        with pytest.raises(DegradeError) if p.kind != "str" else _maybe_degrade_error():
            replay(bad, img, partners=lambda key: img)
        if p.kind != "str":
            with pytest.raises(DegradeError, match=p.name):
                degrade.parse_ops(f"{op}:{p.name}={PWNED}")
    assert not (tmp_path / "PWNED").exists()


class _maybe_degrade_error:
    """Free text is taken as text: the op may refuse it (a DegradeError) or use it."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        return kind is None or issubclass(kind, DegradeError)


# -- free-text params must not import what a recipe names -----------------------------------------

CANARY = "degrade_hardening_canary"


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """A module on sys.path whose import (or factory call) leaves a mark."""
    (tmp_path / f"{CANARY}.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(tmp_path / "IMPORTED")!r}).write_text("imported")
        def factory():
            pathlib.Path({str(tmp_path / "CALLED")!r}).write_text("called")
            raise SystemExit("the canary factory ran")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("DEGRADE_TRUSTED_MODELS", raising=False)  # nobody opted in here
    sys.modules.pop(CANARY, None)
    yield tmp_path
    sys.modules.pop(CANARY, None)


def _str_params() -> list:
    return [
        pytest.param(name, p.name, id=f"{name}-{p.name}")
        for name in list_ops()
        for p in get_op(name).params
        if p.kind == "str"
    ]


@pytest.mark.parametrize(("op", "param"), _str_params())
@pytest.mark.parametrize("value", [f"{CANARY}:factory", f"{CANARY}.factory", CANARY])
def test_replay_never_imports_what_a_recipe_names(op, param, value, canary):
    if op == "deepdream":
        pytest.importorskip("torch")
    img = np.full((8, 8, 3), 128, np.uint8)
    recipe = json.loads(json.dumps(Pipeline([op], steps=1).recipe("k", img.shape)))
    bad = _set(recipe, ("steps", 0, "ops", 0, "params", param), value)
    try:
        replay(bad, img)
    except DegradeError:
        pass
    assert CANARY not in sys.modules
    assert not (canary / "IMPORTED").exists() and not (canary / "CALLED").exists()


def test_verify_of_a_hostile_dataset_imports_nothing(dataset, canary, tmp_path, capsys):
    # The real attack: a downloaded dataset whose recipes name a model factory, and
    # `degrade verify`, which replays recipes. Nothing the recipe names may be imported.
    pytest.importorskip("torch")
    if "deepdream" not in list_ops():
        pytest.skip("deepdream is not registered")
    folder = tmp_path / "hostile"
    shutil.copytree(dataset, folder)
    for shard in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(shard) as tf:
            members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
            for m, data in members:
                if m.name.endswith(".json"):
                    old = json.loads(data)
                    new = Pipeline([{"op": "deepdream", "params": {"model": f"{CANARY}:factory"}}], steps=2).recipe(
                        old["key"], old["shape"], source=old["source"], split=old["split"], label=old["label"])
                    new["stored_steps"] = []
                    data = json.dumps(new).encode()
                elif ".s0" in m.name:
                    continue
                m = copy.copy(m)
                m.size = len(data)
                out.addfile(m, io.BytesIO(data))
        shard.write_bytes(buf.getvalue())
    _refresh_manifest(folder)
    capsys.readouterr()
    rc = main(["verify", str(folder), "--regenerate", "6"])
    out = capsys.readouterr().out
    assert rc == 1 and "not trusted" in out, out
    assert CANARY not in sys.modules
    assert not (canary / "IMPORTED").exists() and not (canary / "CALLED").exists()


def test_deepdream_weights_are_loaded_without_unpickling(tmp_path, monkeypatch):
    # weights=PATH from a recipe: a pickle with a payload is refused by weights_only=True.
    pytest.importorskip("torch")
    if "deepdream" not in list_ops():
        pytest.skip("deepdream is not registered")
    monkeypatch.chdir(tmp_path)

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch PWNED",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"weights": Payload()}))
    img = np.full((8, 8, 3), 128, np.uint8)
    recipe = json.loads(json.dumps(Pipeline(["deepdream"], steps=1).recipe("k", img.shape)))
    bad = _set(recipe, ("steps", 0, "ops", 0, "params", "weights"), str(tmp_path / "evil.pt"))
    with pytest.raises(DegradeError, match="weights"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch notes the pickle protocol it refuses anyway
        replay(bad, img)
    assert not (tmp_path / "PWNED").exists()


# -- presets are data ---------------------------------------------------------------------------


def _presets():
    return pytest.importorskip("degrade.presets", reason="degrade/presets.py is being written by another helper")


HOSTILE_YAML = {
    "python object": "!!python/object/apply:os.system ['touch {PWNED}']",
    "python object in ops": "description: x\nsteps: 2\nsource: {paper: p}\nops:\n  - !!python/object/apply:os.system ['touch {PWNED}']\n",
    "python name": "description: !!python/name:os.system\nsteps: 2\nsource: {paper: p}\nops: [blur]\n",
    "python module": "description: x\nsteps: !!python/module:os\nsource: {paper: p}\nops: [blur]\n",
    "code as an op": f"description: x\nsteps: 2\nsource: {{paper: p}}\nops: [\"{PWNED}\"]\n",
    "code as a param": f"description: x\nsteps: 2\nsource: {{paper: p}}\nops:\n  - op: blur\n    params: {{sigma: \"{PWNED}\"}}\n",
    "billion laughs": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ndescription: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
    "binary junk": "\x00\x01\x02 not yaml",
    "a bad escape": 'description: "\\U100010000"\nsteps: 2\nsource: {paper: p}\nops: [blur]\n',
    "deep nesting": "description: x\nsteps: 2\nsource: {paper: p}\nops: " + "[" * 1000 + "]" * 1000 + "\n",
    "a list": "- 1\n- 2\n",
    "missing fields": "description: x\n",
    "unknown key": "description: x\nsteps: 2\nsource: {paper: p}\nops: [blur]\n__class__: 1\n",
}


HOSTILE_PRESETS = list(HOSTILE_YAML)


@pytest.mark.parametrize("what", HOSTILE_PRESETS)
def test_a_hostile_preset_is_one_line_never_code(what, tmp_path, monkeypatch, capsys):
    presets = _presets()
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(HOSTILE_YAML[what].replace("{PWNED}", str(tmp_path / "PWNED")), encoding="utf-8")
    with pytest.raises(DegradeError) as info:
        presets.load_preset(str(path))
    assert str(info.value).startswith(f"{path}:"), info.value
    assert len(str(info.value)) < 600
    capsys.readouterr()
    rc = main(["build", "--pipeline", str(path), "--dry-run", "--limit", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("degrade: error: "), err
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("what", HOSTILE_PRESETS)
def test_a_preset_error_message_is_one_line(what, tmp_path):
    presets = _presets()
    path = tmp_path / "evil.yaml"
    path.write_text(HOSTILE_YAML[what].replace("{PWNED}", str(tmp_path / "PWNED")), encoding="utf-8")
    with pytest.raises(DegradeError) as info:
        presets.load_preset(str(path))
    assert "\n" not in str(info.value), str(info.value)


def test_a_path_with_a_nul_byte_is_a_clear_error(capsys):
    # Found by the fuzzer: os calls raise ValueError("embedded null byte") for such a path.
    from degrade.shards import read_manifest

    with pytest.raises(DegradeError, match="NUL byte"):
        read_manifest("data\x00/manifest.json")
    for argv in (["verify", "\x00"], ["build", "--dry-run", "--ops", "blur", "--steps", "1", "--out", "a\x00b"]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("degrade: error: ") and "NUL byte" in err[0], err
