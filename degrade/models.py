"""Small restoration networks: a UNet with a step embedding, and its ``blind`` variant.

The network maps a degraded frame x_k (B×C×H×W in [0, 1]) and its step as a fraction
s ∈ [0, 1] (k/T or the severity t_k) to a restored frame: the clean image or x_{k-1},
whichever it was trained for. It predicts a residual (``out = x + f(x, s)``) with the last
convolution of every block and of the output zero-initialised, so an untrained network is
the identity — a sensible start for "undo one step".

Sizes: ``base=32, mults=(1, 2, 2)`` (≈ 1.3 M parameters) trains on a CPU at 32–64 px;
``base=64, mults=(1, 2, 4, 4), blocks=2`` and up for a GPU. Any H×W works: the input is
padded (reflect) to a multiple of ``2 ** (len(mults) - 1)`` and the output cropped back.

Weights are initialised from a local :class:`torch.Generator` (:func:`make_model`), never
from torch's global RNG, so the same seed gives the same network in any process.

Examples
--------
>>> import torch
>>> net = make_model("unet", channels=3, base=8, mults=(1, 2), seed=0)
>>> x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
>>> y = net(x, torch.tensor([0.1, 0.9]))
>>> tuple(y.shape), bool(torch.equal(y, x))    # zero-initialised residual: identity at start
((2, 3, 12, 12), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from degrade.errors import DegradeError

__all__ = ["MODELS", "UNet", "count_parameters", "init_weights", "make_model", "step_embedding"]

#: Model names :func:`make_model` accepts.
MODELS = ("unet", "blind")


def step_embedding(s: torch.Tensor, dim: int, *, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of steps ``s`` ∈ [0, 1] (scaled by ``scale``): B → B×dim.

    Examples
    --------
    >>> step_embedding(torch.tensor([0.0, 0.5]), 8).shape
    torch.Size([2, 8])
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=s.device, dtype=torch.float32) / half
    )
    args = (s.float() * scale)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


def _zero(module: nn.Module) -> nn.Module:
    module._degrade_zero_init = True  # type: ignore[attr-defined]
    return module


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice; the step embedding scales and shifts the second norm."""

    def __init__(self, cin: int, cout: int, emb_dim: int | None) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout) if emb_dim else None
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class UNet(nn.Module):
    """A small UNet for one-step restoration, with or without a step input.

    Parameters
    ----------
    channels : int
        Image channels in and out (1 or 3).
    base : int
        Channels of the first level.
    mults : sequence of int
        Channel multiplier per level; one 2× downsampling between levels.
    blocks : int
        Residual blocks per level (encoder and decoder each).
    blind : bool
        No step input: the network must infer how degraded its input is.

    Examples
    --------
    >>> UNet(3, base=8, mults=(1, 2), blind=True)(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
    """

    def __init__(
        self,
        channels: int = 3,
        *,
        base: int = 32,
        mults: Sequence[int] = (1, 2, 2),
        blocks: int = 1,
        blind: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1 or base < 1 or blocks < 1 or not mults or min(mults) < 1:
            raise DegradeError(
                f"UNet needs channels, base, blocks and mults ≥ 1; got channels={channels}, "
                f"base={base}, mults={tuple(mults)}, blocks={blocks}"
            )
        self.channels = channels
        self.blind = blind
        self.base = base
        self.mults = tuple(int(m) for m in mults)
        self.factor = 2 ** (len(self.mults) - 1)
        emb_dim = None if blind else 4 * base
        self.emb_mlp = None if blind else nn.Sequential(
            nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)  # type: ignore[arg-type]
        )
        self.conv_in = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [base]
        ch = base
        for i, m in enumerate(self.mults):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(ch, base * m, emb_dim))
                ch = base * m
                skips.append(ch)
            self.down.append(level)
            if i < len(self.mults) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim), ResBlock(ch, ch, emb_dim)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, m in reversed(list(enumerate(self.mults))):
            level = nn.ModuleList()
            for _ in range(blocks + 1):
                level.append(ResBlock(ch + skips.pop(), base * m, emb_dim))
                ch = base * m
            self.up.append(level)
            if i > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = _zero(nn.Conv2d(ch, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """Restore ``x`` (B×C×H×W) at steps ``s`` (B floats in [0, 1]; ignored when blind)."""
        emb = None
        if self.emb_mlp is not None:
            if s is None:
                raise DegradeError("this UNet takes a step input s (B floats in [0, 1])")
            s = torch.as_tensor(s, device=x.device).reshape(-1).expand(x.shape[0])
            emb = self.emb_mlp(step_embedding(s, self.base).to(x.dtype))
        h0, w0 = x.shape[-2:]
        ph, pw = (-h0) % self.factor, (-w0) % self.factor
        inp = F.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x
        h = self.conv_in(inp)
        hs = [h]
        for i, level in enumerate(self.down):
            for block in level:
                h = block(h, emb)
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        for block in self.mid:
            h = block(h, emb)
        for i, level in enumerate(self.up):
            for block in level:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.conv_out(F.silu(self.norm_out(h)))
        if ph or pw:
            out = out[..., :h0, :w0]
        return x + out


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """(Re)initialise every parameter from ``generator``, in module order.

    Convolutions and linear layers get PyTorch's default (Kaiming-uniform weights, uniform
    biases); norms get ones and zeros; layers marked zero-init (the last convolution of each
    block and of the output) get zeros.

    Examples
    --------
    >>> a = init_weights(nn.Linear(3, 2), torch.Generator().manual_seed(0))
    >>> b = init_weights(nn.Linear(3, 2), torch.Generator().manual_seed(0))
    >>> bool(torch.equal(a.weight, b.weight))
    True
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if getattr(m, "_degrade_zero_init", False):
                nn.init.zeros_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                continue
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def make_model(
    name: str = "unet",
    *,
    channels: int = 3,
    base: int = 32,
    mults: Sequence[int] = (1, 2, 2),
    blocks: int = 1,
    seed: int = 0,
) -> UNet:
    """Build a model by name (``unet`` or ``blind``), initialised from ``seed``.

    The modules are created on the ``meta`` device (no memory, no draws from the global
    RNG), then materialised on the CPU and initialised by :func:`init_weights`; move the
    result to a GPU with ``.to(device)``.

    Examples
    --------
    >>> a, b = make_model(base=8, seed=1), make_model(base=8, seed=1)
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    True
    >>> make_model("blind", base=8).blind
    True
    """
    if name not in MODELS:
        raise DegradeError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    with torch.device("meta"):
        model = UNet(channels, base=base, mults=mults, blocks=blocks, blind=(name == "blind"))
    model = model.to_empty(device="cpu")
    return init_weights(model, torch.Generator().manual_seed(int(seed)))  # type: ignore[return-value]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
