"""The UNet: shapes, identity at init, step conditioning, local-generator init, blind variant."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from degrade.errors import DegradeError  # noqa: E402
from degrade.models import (  # noqa: E402
    UNet,
    count_parameters,
    make_model,
    step_embedding,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: one thread is fastest, and immune to a busy machine's oversubscription.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("hw", [(16, 16), (17, 23), (32, 8)])
def test_any_size_in_same_size_out(hw):
    net = make_model(base=8, mults=(1, 2, 2))
    x = _rand(2, 3, *hw)
    assert net(x, torch.tensor([0.2, 0.8])).shape == x.shape


def test_identity_at_init_then_step_input_matters():
    net = make_model(base=8, mults=(1, 2), seed=0)
    x = _rand(2, 3, 16, 16)
    assert torch.equal(net(x, torch.tensor([0.1, 0.9])), x)
    # after any change of the zero-initialised output layer, the step changes the output
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * _rand(*p.shape, seed=p.numel()))
    a = net(x, torch.tensor([0.1, 0.1]))
    b = net(x, torch.tensor([0.9, 0.9]))
    assert not torch.allclose(a, b)


def test_blind_variant_ignores_steps_and_has_no_embedding():
    net = make_model("blind", base=8, mults=(1, 2))
    assert net.emb_mlp is None and net.blind
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05)
    x = _rand(1, 3, 8, 8)
    assert torch.equal(net(x), net(x, torch.tensor([0.7])))
    assert count_parameters(net) < count_parameters(make_model("unet", base=8, mults=(1, 2)))


def test_init_comes_from_a_local_generator_only():
    state = torch.random.get_rng_state()
    a = make_model(base=8, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    b = make_model(base=8, seed=3)
    c = make_model(base=8, seed=4)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_grayscale_and_gradients_flow():
    net = make_model(channels=1, base=8, mults=(1, 2))
    x = _rand(3, 1, 12, 12)
    loss = (net(x, torch.rand(3)) - 0.5).abs().mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_errors_and_embedding():
    with pytest.raises(DegradeError, match="unknown model"):
        make_model("transformer")
    with pytest.raises(DegradeError, match="step input"):
        UNet(3, base=8, mults=(1,))(torch.zeros(1, 3, 4, 4))
    emb = step_embedding(torch.tensor([0.0, 0.5, 1.0]), 7)
    assert emb.shape == (3, 7) and torch.isfinite(emb).all()


def test_default_size_is_small_enough_for_a_cpu():
    assert 0.5e6 < count_parameters(make_model()) < 2e6
