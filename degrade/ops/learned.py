"""Learned family: corruptions driven by a neural network (``deepdream``).

``deepdream`` climbs the gradient of a torch model's activations with respect to the
image. It needs torch (the ``train`` extra: ``pip install 'degrade[train]'``); the core
install works without it, because torch is imported inside the kernel only.

The model: ``model=package.module.factory`` (or ``package.module:factory``) names a
callable that takes no arguments and returns an ``nn.Module``; the activation maximised is
the module's output, so to dream on an inner layer return a truncated network, and put
any input normalisation inside the module (it receives RGB in [0, 1], N×3×H×W).
``weights=PATH`` loads a local state dict with ``torch.load(PATH, weights_only=True)``
(relative paths are relative to the working directory). Nothing is ever downloaded.

Without ``model``, a small built-in network is used: three 3×3 convolutions
(3→16, 16→32 stride 2, 32→32; ReLU after each) whose weights are He-normal draws from
``degrade.seeding.rng_for(0, "deepdream", "tiny-cnn")`` — a fixed, random, untrained
network. It gives a deterministic texture-like "dream", not a trained model's objects.

Replaying a recipe imports and calls the factory it names: replay only recipes you trust.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from degrade.errors import DegradeError
from degrade.registry import Op, Param, register
from degrade.seeding import rng_for

__all__ = ["deepdream", "load_model", "tiny_cnn"]

_NO_TORCH = "deepdream needs torch: pip install 'degrade[train]'"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise DegradeError(_NO_TORCH) from exc
    return torch


def tiny_cnn() -> Any:
    """Return the built-in fixed-weight network (an ``nn.Module``; needs torch).

    Weights come from NumPy's keyed generator, never from torch's global RNG, so building
    it changes no random state and gives the same network on every platform.

    Examples
    --------
    >>> import torch
    >>> tuple(tiny_cnn()(torch.zeros(1, 3, 8, 8)).shape)
    (1, 32, 4, 4)
    """
    torch = _torch()
    nn = torch.nn
    rng = rng_for(0, "deepdream", "tiny-cnn")
    specs = ((3, 16, 1), (16, 32, 2), (32, 32, 1))

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = nn.ParameterList()
            self.biases = nn.ParameterList()
            for cin, cout, _ in specs:
                w = rng.standard_normal((cout, cin, 3, 3)) * math.sqrt(2.0 / (cin * 9))
                b = rng.uniform(-0.05, 0.05, cout)
                self.weights.append(nn.Parameter(torch.from_numpy(w.astype(np.float32))))
                self.biases.append(nn.Parameter(torch.from_numpy(b.astype(np.float32))))

        def forward(self, x: Any) -> Any:
            x = (x - 0.5) * 2.0
            for (_, _, stride), w, b in zip(specs, self.weights, self.biases):
                x = torch.relu(torch.nn.functional.conv2d(x, w, b, stride=stride, padding=1))
            return x

    return TinyCNN()


#: Environment variable listing the model factories a user trusts, separated by commas.
TRUST_ENV = "DEGRADE_TRUSTED_MODELS"


def trust_model(spec: str) -> None:
    """Allow ``deepdream`` to import and call the model factory ``spec`` in this process and
    the worker processes it starts (recorded in the ``DEGRADE_TRUSTED_MODELS`` variable).

    A recipe or preset is data: one read from an untrusted shard may name any importable
    module, and importing it runs its code. So a factory runs only when the user named it
    here, with ``--trust-model``, or in the environment variable.

    Examples
    --------
    >>> trust_model("mypkg.nets.small_cnn")
    >>> "mypkg.nets.small_cnn" in trusted_models()
    True
    """
    names = trusted_models()
    if spec not in names:
        os.environ[TRUST_ENV] = ",".join([*names, spec])


def trusted_models() -> list[str]:
    """The model factories the user trusts (see :func:`trust_model`).

    Examples
    --------
    >>> isinstance(trusted_models(), list)
    True
    """
    return [s.strip() for s in os.environ.get(TRUST_ENV, "").split(",") if s.strip()]


def _check_trusted(spec: str) -> None:
    _parse_spec(spec)
    if spec not in trusted_models():
        raise DegradeError(
            f"deepdream: model '{spec}' is not trusted; importing it would run its code. "
            f"Pass --trust-model {spec} (or set {TRUST_ENV}) if you trust it"
        )


def _parse_spec(spec: str) -> tuple[str, str]:
    mod_name, sep, attr = spec.partition(":")
    if not sep:
        mod_name, _, attr = spec.rpartition(".")
    if not mod_name or not attr:
        raise DegradeError(f"deepdream: model must be package.module.factory, got '{spec}'")
    return mod_name, attr


def _factory(spec: str) -> Any:
    mod_name, attr = _parse_spec(spec)
    _check_trusted(spec)
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise DegradeError(f"deepdream: cannot import '{mod_name}' for model '{spec}': {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise DegradeError(f"deepdream: '{spec}' is not a callable in {mod_name}")
    return fn


@functools.lru_cache(maxsize=8)
def _cached_model(model: str, weights: str, _stamp: tuple[int, int]) -> Any:
    torch = _torch()
    if model:
        fn = _factory(model)
        # A factory may initialise layers from torch's global RNG: run it on a forked,
        # seeded RNG so the result is fixed and the caller's RNG state is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = fn()
        if not isinstance(net, torch.nn.Module):
            raise DegradeError(f"deepdream: '{model}' returned {type(net).__name__}, not an nn.Module")
    else:
        net = tiny_cnn()
    if weights:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise DegradeError(f"deepdream: weights file '{weights}' not found") from None
        except Exception as exc:
            raise DegradeError(f"deepdream: cannot load weights '{weights}': {exc}") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        try:
            net.load_state_dict(state)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0]
            raise DegradeError(f"deepdream: weights '{weights}' do not fit the model: {first}") from None
    net = net.to(dtype=torch.float32).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_model(model: str = "", weights: str = "") -> Any:
    """Return the network deepdream uses for these settings (in eval mode, frozen; cached).

    Examples
    --------
    >>> load_model() is load_model()
    True
    """
    stamp = (0, 0)
    if weights:
        try:
            st = os.stat(weights)
        except OSError:
            raise DegradeError(f"deepdream: weights file '{weights}' not found") from None
        stamp = (st.st_mtime_ns, st.st_size)  # a rewritten file is loaded again
    if model:
        _check_trusted(model)  # before the cache: trust is checked on every call
    return _cached_model(model, weights, stamp)


@contextlib.contextmanager
def _pinned(torch: Any) -> Iterator[None]:
    # One intra-op thread and deterministic kernels: the same bytes whatever the machine's
    # thread count. Both settings are restored afterwards.
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    try:
        if threads != 1:
            torch.set_num_threads(1)
        if not det:
            torch.use_deterministic_algorithms(True)
        with torch.enable_grad():
            yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)
        if not det:
            torch.use_deterministic_algorithms(False)


def deepdream(
    image: np.ndarray,
    *,
    strength: float,
    step_size: float = 0.02,
    model: str = "",
    weights: str = "",
) -> np.ndarray:
    """DeepDream: gradient ascent on the mean squared activation of a network's output.

    Each iteration moves the image along the gradient, normalised so that the mean
    absolute change per pixel is ``step_size``, then clips to [0, 1]. ``strength`` counts
    iterations and may be fractional: ⌊strength⌋ full steps then one partial step, so the
    result slides continuously along one fixed ascent path as t grows (step k+1 is step k
    with more of the same dream). A one-channel image is fed as grey RGB. CPU only, one
    torch thread, deterministic algorithms: the same bytes whatever the thread count.

    Examples
    --------
    >>> img = np.linspace(0.2, 0.8, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    >>> round(float(np.abs(deepdream(img, strength=1.0) - img).mean()), 3)
    0.02
    """
    if strength <= 0:
        return image.copy()
    torch = _torch()
    net = load_model(model, weights)
    h, w, c = image.shape
    n_full = math.floor(strength)
    frac = float(strength) - n_full
    with _pinned(torch):
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32))
        for i in range(n_full + (1 if frac > 0 else 0)):
            xg = x.detach().requires_grad_(True)
            inp = xg if c == 3 else xg.expand(1, 3, h, w)
            act = net(inp)
            if not isinstance(act, torch.Tensor):
                raise DegradeError("deepdream: the model must return a tensor")
            (g,) = torch.autograd.grad(act.float().pow(2).mean(), xg)
            scale = float(step_size) * (1.0 if i < n_full else frac)
            x = (x + g * (scale / (float(g.abs().mean()) + 1e-12))).clamp_(0.0, 1.0)
    out = x[0].numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(out, dtype=np.float32)


register(
    Op(
        "deepdream",
        deepdream,
        (
            Param("strength", 0.0, 8.0, low=0.0, high=64.0, unit="iterations",
                  help="gradient-ascent iterations (fractional: a partial last step)"),
            Param("step_size", 0.02, curve="constant", low=0.0, high=1.0,
                  help="mean absolute pixel change per iteration"),
            Param("model", "", kind="str",
                  help="package.module.factory returning an nn.Module; empty: built-in fixed CNN"),
            Param("weights", "", kind="str",
                  help="local state-dict file for the model (torch.load weights_only=True)"),
        ),
        family="learned",
        description="DeepDream: gradient ascent on a torch model's activations (needs torch)",
    )
)
