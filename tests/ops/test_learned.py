"""Learned family: ``deepdream``."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import degrade
from degrade.errors import DegradeError
from tests.conftest import varied_images

torch = pytest.importorskip("torch")

from degrade.ops.learned import TRUST_ENV, deepdream, load_model, tiny_cnn, trust_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OP = degrade.get_op("deepdream")

FACTORY_MODULE = """
import torch
from torch import nn


def features():
    # nn.Conv2d draws its initial weights from torch's global RNG
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))


def not_a_module():
    return 42
"""


@pytest.fixture
def factory(tmp_path, monkeypatch):
    name = f"dd_factory_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    trusted = [f"{name}{sep}{attr}" for sep in ".:" for attr in ("features", "missing", "not_a_module")]
    monkeypatch.setenv(TRUST_ENV, ",".join([*trusted, "no_such_module_xyz.factory"]))
    return name


def test_an_untrusted_factory_is_refused_before_import(factory, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, "")
    with pytest.raises(DegradeError, match=rf"model '{factory}.features' is not trusted"):
        OP(varied_images(8)[0], t=1.0, model=f"{factory}.features")
    assert factory not in sys.modules
    trust_model(f"{factory}.features")
    assert OP(varied_images(8)[0], t=1.0, model=f"{factory}.features").shape == (8, 8, 3)


def test_whole_steps_compose_exactly():
    img = varied_images(32)[0]
    one = deepdream(img, strength=1.0)
    assert np.array_equal(deepdream(img, strength=2.0), deepdream(one, strength=1.0))
    three = deepdream(img, strength=3.0)
    assert np.array_equal(three, deepdream(deepdream(one, strength=1.0), strength=1.0))


def test_fractional_strength_slides_along_the_same_path():
    img = varied_images(32)[1]
    x1, x2 = deepdream(img, strength=1.0), deepdream(img, strength=2.0)
    half = deepdream(img, strength=1.5)
    inside = (x2 > 0) & (x2 < 1)  # where the step was not clipped
    assert np.allclose(half[inside], (x1 + 0.5 * (x2 - x1))[inside], atol=1e-5)


def test_step_size_is_the_mean_absolute_change_of_one_step():
    img = varied_images(32)[2] * 0.5 + 0.25  # away from 0 and 1: no clipping
    out = deepdream(img, strength=1.0, step_size=0.03)
    assert abs(float(np.abs(out - img).mean()) - 0.03) < 1e-4


def test_damage_grows_with_t_on_the_default_network():
    img = varied_images(40)[3]
    dist = [float(np.abs(OP(img, t=t) - img).mean()) for t in np.linspace(0.1, 1.0, 10)]
    assert all(b > a for a, b in itertools.pairwise(dist))
    assert dist[-1] > 0.05


def test_grey_images_keep_one_channel():
    img = varied_images(24, channels=1)[0]
    out = OP(img, t=1.0)
    assert out.shape == img.shape and not np.array_equal(out, img)


def test_same_bytes_whatever_the_thread_count_and_settings_restored():
    img = varied_images(48)[0]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = OP(img, t=0.8)
        torch.set_num_threads(4)
        b = OP(img, t=0.8)
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
    assert a.tobytes() == b.tobytes()
    assert not torch.are_deterministic_algorithms_enabled()


def test_no_global_random_state_is_touched(factory):
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002  (the legacy global RNG)
    img = varied_images(24)[0]
    OP(img, t=1.0)
    OP(img, t=1.0, model=f"{factory}.features")
    tiny_cnn()
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002


def test_built_in_network_is_fixed():
    a, b = tiny_cnn(), tiny_cnn()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert tuple(a(torch.zeros(1, 3, 8, 8)).shape) == (1, 32, 4, 4)
    assert load_model() is load_model()


def test_user_factory_is_deterministic_and_used(factory):
    img = varied_images(24)[4]
    a = OP(img, t=1.0, model=f"{factory}.features")
    b = OP(img, t=1.0, model=f"{factory}:features")
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, OP(img, t=1.0))
    assert not np.array_equal(a, img)


def test_weights_are_loaded_from_a_local_state_dict(factory, tmp_path):
    img = varied_images(24)[5]
    net = load_model(f"{factory}.features")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    g = torch.Generator().manual_seed(7)
    state = {k: torch.randn(v.shape, generator=g) * 0.3 for k, v in state.items()}
    path = tmp_path / "w.pt"
    torch.save({"state_dict": state}, path)
    with_weights = OP(img, t=1.0, model=f"{factory}.features", weights=str(path))
    assert not np.array_equal(with_weights, OP(img, t=1.0, model=f"{factory}.features"))
    # the same weights put in by hand give the same dream
    hand = load_model(f"{factory}.features", str(path))
    for k, v in hand.state_dict().items():
        assert torch.equal(v, state[k])
    # the built-in network takes weights too
    own = tmp_path / "tiny.pt"
    torch.save(tiny_cnn().state_dict(), own)
    assert np.array_equal(OP(img, t=0.5, weights=str(own)), OP(img, t=0.5))


def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": Path("x")}, path)
    with pytest.raises(DegradeError, match="cannot load weights"):
        OP(varied_images(8)[0], t=1.0, weights=str(path))


def test_clear_errors(factory, tmp_path):
    img = varied_images(8)[0]
    with pytest.raises(DegradeError, match="cannot import 'no_such_module_xyz'"):
        OP(img, t=1.0, model="no_such_module_xyz.factory")
    with pytest.raises(DegradeError, match=r"package\.module\.factory"):
        OP(img, t=1.0, model="factory")
    with pytest.raises(DegradeError, match="not a callable"):
        OP(img, t=1.0, model=f"{factory}.missing")
    with pytest.raises(DegradeError, match=r"not an nn\.Module"):
        OP(img, t=1.0, model=f"{factory}.not_a_module")
    with pytest.raises(DegradeError, match="not found"):
        OP(img, t=1.0, weights=str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"w": torch.zeros(1)}, bad)
    with pytest.raises(DegradeError, match="do not fit"):
        OP(img, t=1.0, weights=str(bad))


def test_recipe_records_model_and_replays():
    img = varied_images(24)[6]
    p = degrade.Pipeline.parse("deepdream:strength=4", steps=4)
    frames, recipe = p.run(img, key="dd")
    assert recipe["steps"][1]["ops"][0]["params"] == {
        "strength": 2.0, "step_size": 0.02, "model": "", "weights": ""}
    again = degrade.replay(recipe, frames[0])
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))


def _py(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, **kw)


def test_core_works_without_torch():
    r = _py(
        """
        import sys
        import numpy as np
        import degrade
        assert "deepdream" in degrade.list_ops()
        degrade.get_op("blur")(np.full((8, 8, 3), 0.5, np.float32), t=1.0)
        assert "torch" not in sys.modules, "torch imported by the core"
        sys.modules["torch"] = None  # as if not installed
        try:
            degrade.get_op("deepdream")(np.full((8, 8, 3), 0.5, np.float32), t=1.0)
        except degrade.DegradeError as exc:
            print(exc)
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "deepdream needs torch: pip install 'degrade[train]'"


@pytest.mark.slow
def test_cli_build_and_verify_in_other_processes(tmp_path):
    """`degrade build --ops deepdream` with two workers; `verify` regenerates every sample."""
    out = tmp_path / "dd"
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, "-m", "degrade", "build", "--ops", "deepdream", "--steps", "3", "--limit", "4",
         "--size", "24", "--workers", "2", "--shard-size", "2", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "manifest.json").read_text())["samples"] == 4
    r = subprocess.run([sys.executable, "-m", "degrade", "verify", str(out), "--regenerate", "4"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
