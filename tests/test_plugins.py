"""Plugins: a separately installed package registers ops through the ``degrade.ops`` entry points.

The example plugin (tests/plugin_example, op ``plugin_speckle``) is installed with pip into a
temporary folder (``--target``, never into the shared environment) and put on PYTHONPATH
of subprocesses, which list it, build a dataset with it, verify the build and run the
operator contract over it (tests/ops/test_contract.py parametrises over ``list_ops()``, so a
session with a plugin installed checks the plugin's ops too).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "plugin_example"
PLUGIN_OP = "plugin_speckle"


def _install_by_hand(src: Path, target: Path) -> None:
    """What pip would put in ``target``: the package and a dist-info with the entry points.

    Used only where setuptools (the example's build backend) is not installed.
    """
    import tomllib

    meta = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    shutil.copytree(src / "degrade_plugin_example", target / "degrade_plugin_example")
    info = target / f"degrade_plugin_example-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    lines = ["[degrade.ops]"] + [f"{k} = {v}" for k, v in meta["entry-points"]["degrade.ops"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    # build from a copy: pip builds in the source tree and would leave build/ and egg-info/
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    if importlib.util.find_spec("setuptools") is None:
        _install_by_hand(src, target)
    else:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--no-index", "--disable-pip-version-check", "--target", str(target), str(src)],
            capture_output=True, text=True, timeout=300,
        )
        assert r.returncode == 0, r.stderr
    eps = next(target.glob("degrade_plugin_example-*.dist-info")) / "entry_points.txt"
    assert "[degrade.ops]" in eps.read_text()
    return target


def _env(plugin: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(plugin), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


def _run(args: list[str], plugin: Path, cwd: Path | None = None, timeout: int = 300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=_env(plugin), cwd=cwd or ROOT, timeout=timeout)


def test_plugin_op_is_listed_and_described(plugin_path):
    r = _run(["-m", "degrade", "ops"], plugin_path)
    assert r.returncode == 0, r.stderr
    assert PLUGIN_OP in r.stdout  # (the table wraps descriptions to the terminal width)
    r = _run(["-m", "degrade", "ops", PLUGIN_OP, "--json"], plugin_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    info = info[0] if isinstance(info, list) else info
    assert info["name"] == PLUGIN_OP and info["family"] == "plugin"
    assert info["description"] == "example plugin: speckle noise"


def test_build_and_verify_a_dataset_with_the_plugin(plugin_path, tmp_path):
    out = tmp_path / "data"
    r = _run(["-m", "degrade", "build", "--ops", f"{PLUGIN_OP}:sigma=0.3,blur:sigma=1", "--steps", "3",
              "--limit", "6", "--shard-size", "4", "--workers", "2", "--out", str(out), "--quiet"],
             plugin_path)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"] == 6
    assert PLUGIN_OP in json.dumps(manifest["config"])
    # every sample regenerated from its recipe in another process, pixel for pixel
    r = _run(["-m", "degrade", "verify", str(out), "--regenerate", "6"], plugin_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # without the plugin the recipes' op is unknown, and verify says which
    r = subprocess.run([sys.executable, "-m", "degrade", "verify", str(out)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 1 and f"unknown op '{PLUGIN_OP}'" in r.stdout + r.stderr


def test_contract_runs_over_the_plugin_op(plugin_path):
    r = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
              str(ROOT / "tests" / "ops" / "test_contract.py"), "-k", PLUGIN_OP], plugin_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    tail = r.stdout.strip().splitlines()[-1]
    assert "passed" in tail and "failed" not in tail
    assert int(tail.split()[0]) >= 8, tail


def test_the_plugin_kernel_is_importable_and_pure(plugin_path):
    r = _run(["-c", (
        "import numpy as np, degrade\n"
        "op = degrade.get_op('plugin_speckle')\n"
        "img = np.full((4, 4, 3), 0.5, np.float32)\n"
        "a = op(img, t=1.0, key='a', sigma=0.1); b = op(img, t=1.0, key='a', sigma=0.1)\n"
        "c = op(img, t=0.5, key='a', sigma=0.1)\n"
        "assert a.tobytes() == b.tobytes() and np.allclose(c - 0.5, (a - 0.5) / 2, atol=1e-6)\n"
        "print('ok', op.family)\n")], plugin_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", "plugin"]
