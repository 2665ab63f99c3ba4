"""SpikingLayer, LeakyReadout and SpikingNetwork: packed parameters, neuron constants, resets, I/O."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from reflect.spiking.layers import LeakyReadout, PackedLinear, SpikingLayer, Spread
from reflect.spiking.network import NetworkState, SpikingNetwork
from reflect.spiking.neurons import ALIFState, LIFState

# ----------------------------------------------------------------------------- packed parameters


@pytest.mark.parametrize("recurrent", [False, True])
def test_spiking_layer_parameter_shapes(recurrent: bool) -> None:
    """weight is ``[in, out]``, bias ``[out]``, recurrent_weight ``[out, out]`` only when recurrent."""
    layer = SpikingLayer(3, 5, recurrent=recurrent)
    assert layer.weight.shape == (3, 5)
    assert layer.bias.shape == (5,)
    assert layer.packed.shape == (3 + (5 if recurrent else 0) + 1, 5)
    names = {name for name, _ in layer.named_parameters()}
    if recurrent:
        assert layer.recurrent_weight.shape == (5, 5)
        assert names == {"weight", "recurrent_weight", "bias"}
    else:
        assert names == {"weight", "bias"}
        assert not hasattr(layer, "recurrent_weight")


def test_readout_parameter_shapes() -> None:
    """LeakyReadout has weight ``[in, out]`` and bias ``[out]`` packed as ``[in + 1, out]``."""
    readout = LeakyReadout(6, 2, decay=0.3)
    assert readout.weight.shape == (6, 2)
    assert readout.bias.shape == (2,)
    assert readout.packed.shape == (7, 2)
    assert readout.packed_is_bound()


def _layers() -> list[PackedLinear]:
    torch.manual_seed(0)
    return [SpikingLayer(3, 4), SpikingLayer(3, 4, recurrent=True, neuron="alif"), LeakyReadout(4, 2)]


def _assert_aliases(module: PackedLinear) -> None:
    """In-place changes of each parameter's ``.data`` show up in the right rows of ``packed``."""
    module.weight.data[1, 1] = 42.0
    assert module.packed[1, 1].item() == 42.0
    module.bias.data[0] = -7.0
    assert module.packed[-1, 0].item() == -7.0
    if module.recurrent:
        module.recurrent_weight.data[0, 3] = 9.0
        assert module.packed[module.in_features + 0, 3].item() == 9.0
    # and the other way round
    module.packed[0, 0] = 3.5
    assert module.weight[0, 0].item() == 3.5


@pytest.mark.parametrize("index", [0, 1, 2], ids=["lif", "alif-recurrent", "readout"])
def test_packed_bound_after_construction_and_conversions(index: int) -> None:
    """The parameters stay views of ``packed`` after construction, ``.double()`` and ``.to(float32)``."""
    module = _layers()[index]
    assert module.packed_is_bound()
    _assert_aliases(module)

    module.double()
    assert module.packed.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in module.parameters())
    assert module.packed_is_bound()
    assert module.weight[1, 1].item() == 42.0  # values survive the conversion
    _assert_aliases(module)

    module.to(torch.float32)
    assert module.packed.dtype == torch.float32
    assert module.packed_is_bound()
    _assert_aliases(module)


def test_packed_is_bound_detects_rebinding() -> None:
    """Negative control: rebinding ``weight.data`` to a copy makes ``packed_is_bound()`` False."""
    layer = SpikingLayer(3, 4, recurrent=True)
    layer.weight.data = layer.weight.data.clone()
    assert not layer.packed_is_bound()
    layer.weight.data[0, 0] = 123.0
    assert layer.packed[0, 0].item() != 123.0


@pytest.mark.parametrize("recurrent", [False, True])
def test_packed_bound_after_load_state_dict(recurrent: bool) -> None:
    """``load_state_dict`` from another instance copies the values and keeps the binding."""
    torch.manual_seed(1)
    source = SpikingLayer(3, 4, recurrent=recurrent)
    target = SpikingLayer(3, 4, recurrent=recurrent)
    assert not torch.equal(source.packed, target.packed)
    target.load_state_dict(source.state_dict())
    assert target.packed_is_bound()
    assert torch.equal(target.packed, source.packed)
    _assert_aliases(target)
    assert not torch.equal(target.packed, source.packed)  # a copy, not shared with the source


def test_network_conversion_rebinds_every_layer() -> None:
    """``SpikingNetwork.double()`` reaches each layer's packed tensor (module recursion)."""
    torch.manual_seed(0)
    net = SpikingNetwork(3, 2, hidden=(5, 4), recurrent=True).double()
    modules: list[PackedLinear] = [*net.layers, net.readout]
    for module in modules:
        assert module.packed.dtype == torch.float64
        assert module.packed_is_bound()


def test_optimizer_step_updates_packed() -> None:
    """An optimizer's in-place update of the parameters is visible in ``packed``."""
    torch.manual_seed(0)
    layer = SpikingLayer(3, 4, recurrent=True)
    before = layer.packed.clone()
    for p in layer.parameters():
        p.grad = torch.ones_like(p)
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    assert layer.packed_is_bound()
    torch.testing.assert_close(layer.packed, before - 0.1)


@pytest.mark.parametrize("recurrent", [False, True])
def test_current_equals_packed_product(recurrent: bool) -> None:
    """``current(x, s)`` equals ``[x, s, 1] @ packed``, the packed layout the module documents."""
    torch.manual_seed(2)
    layer = SpikingLayer(3, 4, recurrent=recurrent).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    s = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    parts = [x, s] if recurrent else [x]
    z = torch.cat([*parts, torch.ones(2, 1, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(layer.current(x, s), z @ layer.packed, rtol=1e-12, atol=1e-12)
    expected = x @ layer.weight + layer.bias + (s @ layer.recurrent_weight if recurrent else 0.0)
    torch.testing.assert_close(layer.current(x, s), expected, rtol=1e-12, atol=1e-12)


def test_initial_weights_within_scale() -> None:
    """Weights start inside ``+-weight_scale / sqrt(fan_in)`` (fan_in counts recurrent inputs)."""
    torch.manual_seed(0)
    layer = SpikingLayer(16, 9, recurrent=True, weight_scale=0.5)
    bound = 0.5 / (16 + 9) ** 0.5
    assert layer.weight.abs().max() <= bound and layer.recurrent_weight.abs().max() <= bound
    assert layer.weight.abs().max() > 0.5 * bound  # actually spread over the range, not zero


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_a_sparse_start_zeroes_that_fraction_and_keeps_the_others(sparsity: float) -> None:
    torch.manual_seed(0)
    dense = SpikingLayer(200, 300, weight_scale=2.0)
    torch.manual_seed(1)
    sparse = SpikingLayer(200, 300, weight_scale=2.0, weight_sparsity=sparsity)
    zeros = float((sparse.weight == 0).float().mean())
    assert abs(zeros - sparsity) < 0.01
    assert float((dense.weight == 0).float().mean()) == 0.0  # the control: a dense start has no zeros
    x = torch.randn(2000, 200, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ratio = float((x @ sparse.weight).var() / (x @ dense.weight).var())
    assert 0.9 < ratio / (1.0 - sparsity) < 1.1, ratio  # the kept weights as in a dense start
    assert float(sparse.weight.detach().abs().max()) <= 2.0 / 200**0.5
    assert torch.equal(sparse.bias != 0, torch.ones_like(sparse.bias, dtype=torch.bool))  # biases dense
    with pytest.raises(ValueError, match=r"weight_sparsity must be in \[0, 1\)"):
        SpikingLayer(4, 8, weight_sparsity=1.0)


# ----------------------------------------------------------------------------- neuron constants


def _kind(module: nn.Module, name: str) -> str:
    params, buffers = dict(module.named_parameters()), dict(module.named_buffers())
    assert (name in params) != (name in buffers)
    return "parameter" if name in params else "buffer"


@pytest.mark.parametrize("learn_beta", [False, True])
@pytest.mark.parametrize("learn_theta", [False, True])
def test_learn_flags_choose_parameter_or_buffer(learn_beta: bool, learn_theta: bool) -> None:
    """``learn_beta`` / ``learn_theta`` make beta / theta ``nn.Parameter``s, otherwise buffers."""
    layer = SpikingLayer(3, 4, beta=0.8, theta=1.2, learn_beta=learn_beta, learn_theta=learn_theta)
    assert _kind(layer, "beta") == ("parameter" if learn_beta else "buffer")
    assert _kind(layer, "theta") == ("parameter" if learn_theta else "buffer")
    assert isinstance(layer.beta, nn.Parameter) is learn_beta
    assert isinstance(layer.theta, nn.Parameter) is learn_theta
    assert layer.beta.item() == pytest.approx(0.8) and layer.theta.item() == pytest.approx(1.2)
    assert {"beta", "theta"} <= set(layer.state_dict())
    # every constant of a model is registered under its name (ALIF adds rho and beta_a), fixed unless learned
    alif = SpikingLayer(3, 4, neuron="alif", learn=["rho"])
    assert _kind(alif, "rho") == "parameter" and _kind(alif, "beta_a") == "buffer"
    assert {"beta", "theta", "rho", "beta_a"} <= set(alif.state_dict())


def test_constants_are_checked_against_the_model() -> None:
    """An unknown constant names the model's constants; a value outside its range names the range."""
    message = r"neuron model 'lif' has no constant 'alpha': its constants are beta, theta"
    with pytest.raises(ValueError, match=message):
        SpikingLayer(3, 4, alpha=0.5)
    with pytest.raises(ValueError, match=r"neuron model 'cuba' has no constant 'rho'"):
        SpikingLayer(3, 4, neuron="cuba", learn=["rho"])
    message = r"lif constant beta \(membrane decay\) must be in \[0, 1\), got 1.2"
    with pytest.raises(ValueError, match=message):
        SpikingLayer(3, 4, beta=1.2)
    with pytest.raises(ValueError, match=r"cuba constant alpha .* must be in \[0, 1\), got -0.1"):
        SpikingLayer(3, 4, neuron="cuba", alpha=[0.5, 0.5, -0.1, 0.5])


def test_learned_constants_are_projected_back_into_range() -> None:
    """``project_constants_`` clips learned decays into [0, 1) and thresholds above 0; fixed ones stay."""
    layer = SpikingLayer(3, 4, neuron="cuba", per_neuron=True, learn=["alpha", "beta", "theta"])
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([1.5, -0.2, 0.5, 1.0]))
        layer.theta.copy_(torch.tensor([-1.0, 0.0, 2.0, 1.0]))
    layer.project_constants_()
    alpha, theta = layer.alpha.detach(), layer.theta.detach()
    assert float(alpha.max()) < 1.0 and float(alpha.min()) == 0.0
    assert float(alpha[2]) == 0.5 and float(theta[2]) == 2.0
    assert float(theta.min()) > 0.0


def test_learnable_beta_receives_gradient() -> None:
    """A learnable beta gets a gradient through the forward pass."""
    torch.manual_seed(0)
    layer = SpikingLayer(3, 4, learn_beta=True, learn_theta=True).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    state = layer.initial_state(2)
    state = LIFState(state.v + 0.5, state.s)
    s, new_state = layer(x, state)
    (new_state.v.sum() + s.sum()).backward()
    assert layer.beta.grad is not None and layer.beta.grad.abs().item() > 0
    assert layer.theta.grad is not None and layer.theta.grad.abs().item() > 0


@pytest.mark.parametrize("learn", [False, True])
def test_per_neuron_shapes(learn: bool) -> None:
    """``per_neuron=True`` expands a number to shape ``[out]``; the default keeps a 0-d tensor."""
    default = SpikingLayer(3, 4, beta=0.7, learn_beta=learn, learn_theta=learn)
    assert default.beta.shape == () and default.theta.shape == ()
    per = SpikingLayer(3, 4, beta=0.7, per_neuron=True, learn_beta=learn, learn_theta=learn)
    assert per.beta.shape == (4,) and per.theta.shape == (4,)
    torch.testing.assert_close(per.beta, torch.full((4,), 0.7))
    if learn:  # independent storage per neuron, so the entries can be trained apart
        per.beta.data[0] = 0.1
        assert per.beta[1].item() == pytest.approx(0.7)


def test_sequence_beta_gives_per_neuron_values() -> None:
    """A sequence of ``out`` values sets one beta per neuron."""
    layer = SpikingLayer(3, 4, beta=[0.1, 0.2, 0.3, 0.4], theta=torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(layer.beta, torch.tensor([0.1, 0.2, 0.3, 0.4]))
    torch.testing.assert_close(layer.theta, torch.tensor([1.0, 2.0, 3.0, 4.0]))


@pytest.mark.parametrize("bad", [[0.5, 0.5, 0.5], [0.5] * 5, [[0.5] * 4]])
def test_wrong_length_beta_raises(bad: Any) -> None:
    """A beta sequence whose length is not the number of neurons raises ``ValueError`` saying so."""
    with pytest.raises(ValueError, match=r"beta must be a number or a sequence of 4 numbers"):
        SpikingLayer(3, 4, beta=bad)
    with pytest.raises(ValueError, match=r"theta must be a number or a sequence of 4 numbers"):
        SpikingLayer(3, 4, theta=bad)


def test_unknown_neuron_type_raises() -> None:
    """An unknown neuron type raises ``ValueError`` naming it and the choices."""
    with pytest.raises(ValueError, match=r"unknown neuron model 'izhikevich': choose one of alif, cuba, lif"):
        SpikingLayer(3, 4, neuron="izhikevich")


@pytest.mark.parametrize(("n_in", "n_out"), [(0, 4), (3, 0)])
def test_non_positive_layer_size_raises(n_in: int, n_out: int) -> None:
    """Zero-sized layers are rejected."""
    with pytest.raises(ValueError, match=r"layer sizes must be positive"):
        SpikingLayer(n_in, n_out)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_readout_bad_decay_raises(decay: float) -> None:
    """Readout decay outside [0, 1) raises ``ValueError``."""
    with pytest.raises(ValueError, match=r"readout decay must be in \[0, 1\)"):
        LeakyReadout(4, 2, decay=decay)


def test_layer_state_types() -> None:
    """LIF layers carry ``LIFState``, ALIF layers ``ALIFState``; forward keeps the type and shapes."""
    torch.manual_seed(0)
    x = torch.randn(2, 3)
    for neuron, cls in (("lif", LIFState), ("alif", ALIFState)):
        layer = SpikingLayer(3, 4, neuron=neuron, recurrent=True)
        state = layer.initial_state(2)
        assert type(state) is cls and all(t.shape == (2, 4) and not t.any() for t in state)
        s, new_state = layer(x, state)
        assert type(new_state) is cls and s.shape == (2, 4)
        assert layer.states_per_neuron == (2 if neuron == "alif" else 1)


def test_readout_literal() -> None:
    """``LeakyReadout``: ``o_t = decay * o_{t-1} + (1 - decay) * (s @ W + b)`` on a literal."""
    readout = LeakyReadout(2, 1, decay=0.5).double()
    with torch.no_grad():
        readout.weight.copy_(torch.tensor([[2.0], [-1.0]]))
        readout.bias.fill_(0.5)
    s = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    o_prev = torch.tensor([[4.0]], dtype=torch.float64)
    # s @ W + b = 2 - 1 + 0.5 = 1.5;  0.5 * 4 + 0.5 * 1.5 = 2.75
    out, state = readout(s, o_prev)
    assert out.item() == 2.75 and torch.equal(out, state)


# ----------------------------------------------------------------------------- network


def _network(seed: int = 0, **kwargs: Any) -> SpikingNetwork:
    torch.manual_seed(seed)
    # strong weights, a low threshold and weak adaptation keep both ALIF layers spiking
    options: dict[str, Any] = {"hidden": (8, 6), "neuron": "alif", "recurrent": True, "theta": 0.3,
                               "beta_a": 0.05, "readout_decay": 0.6, "weight_scale": 5.0}
    options.update(kwargs)
    return SpikingNetwork(3, 2, **options).double()


def _observations(steps: int, batch: int, seed: int = 5) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(steps, batch, 3, generator=g, dtype=torch.float64)


def _run(net: SpikingNetwork, obs: Tensor, state: NetworkState | None = None) -> tuple[Tensor, NetworkState]:
    outs = []
    for x in obs:
        out, state = net(x, state)
        outs.append(out)
    assert state is not None
    return torch.stack(outs), state


def _rows(state: NetworkState, rows: slice) -> list[Tensor]:
    """All state tensors of the streams ``rows``, flattened into one list."""
    return [x[rows] for layer in state.layers for x in layer] + [state.readout[rows]]


def test_episode_start_resets_exactly_the_flagged_streams() -> None:
    """Resetting stream 1 leaves streams 0 and 2 bit-identical and makes stream 1 start from zero."""
    net = _network()
    obs = _observations(6, 3)
    _, state = _run(net, obs[:5])  # 5 steps, 3 streams
    # the network is active, so the carried state of stream 1 matters: every layer has spiked (a > 0),
    # and the membranes, adaptations and readout of stream 1 are all non-zero
    for layer_state in state.layers:
        assert isinstance(layer_state, ALIFState)
        assert layer_state.v[1].abs().sum() > 0 and layer_state.a[1].abs().sum() > 0
    assert state.readout[1].abs().sum() > 0

    flags = torch.tensor([False, True, False])
    out_reset, state_reset = net(obs[5], state, episode_start=flags)
    out_plain, state_plain = net(obs[5], state)

    for keep in (0, 2):
        rows = slice(keep, keep + 1)
        assert torch.equal(out_reset[rows], out_plain[rows])
        assert all(torch.equal(a, b) for a, b in zip(_rows(state_reset, rows), _rows(state_plain, rows),
                                                       strict=True))

    # A single stream from the zero state. (Bit-equal here, but a batch of 1 may take a different BLAS
    # path than a batch of 3, so allow float64 rounding; without the reset stream 1 is off by ~1e-2.)
    out_fresh, state_fresh = net(obs[5, 1:2])
    torch.testing.assert_close(out_reset[1:2], out_fresh, rtol=0.0, atol=1e-12)
    for a, b in zip(_rows(state_reset, slice(1, 2)), _rows(state_fresh, slice(0, 1)), strict=True):
        torch.testing.assert_close(a, b, rtol=0.0, atol=1e-12)
    # ... and the reset mattered: without it stream 1 continues differently.
    assert not torch.allclose(out_plain[1:2], out_fresh)
    # the state passed in is not modified by the reset
    _, state_again = _run(net, obs[:5])
    assert all(torch.equal(a, b) for a, b in zip(_rows(state, slice(0, 3)), _rows(state_again, slice(0, 3)),
                                                   strict=True))


def test_episode_start_all_false_changes_nothing_and_all_true_restarts() -> None:
    """All-False flags equal no reset; all-True flags equal starting from ``state=None``."""
    net = _network()
    obs = _observations(4, 3)
    _, state = _run(net, obs[:3])
    none_flag, _ = net(obs[3], state, episode_start=torch.zeros(3, dtype=torch.bool))
    plain, _ = net(obs[3], state)
    assert torch.equal(none_flag, plain)
    all_flag, _ = net(obs[3], state, episode_start=torch.ones(3, dtype=torch.bool))
    fresh, _ = net(obs[3])
    assert torch.equal(all_flag, fresh)
    assert not torch.equal(all_flag, plain)


def test_state_dict_round_trip(tmp_path: Path) -> None:
    """Saving the state dict and loading it (``weights_only=True``) into a fresh net: identical outputs."""
    net = _network(seed=0)
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    fresh = _network(seed=1)
    obs = _observations(5, 2)
    expected, _ = _run(net, obs)
    before, _ = _run(fresh, obs)
    assert not torch.equal(before, expected)  # the fresh network really is different
    fresh.load_state_dict(torch.load(path, weights_only=True))
    got, _ = _run(fresh, obs)
    assert torch.equal(got, expected)
    modules: list[PackedLinear] = [*fresh.layers, fresh.readout]
    assert all(m.packed_is_bound() for m in modules)


def test_state_dict_round_trip_with_learned_constants(tmp_path: Path) -> None:
    """Learnable per-neuron beta / theta are saved and restored too."""
    net = _network(seed=0, learn_beta=True, learn_theta=True, per_neuron=True)
    with torch.no_grad():
        for layer in net.layers:
            assert isinstance(layer, SpikingLayer)
            layer.beta.uniform_(0.2, 0.9)
            layer.theta.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    fresh = _network(seed=0, learn_beta=True, learn_theta=True, per_neuron=True)
    fresh.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    obs = _observations(5, 2)
    assert torch.equal(_run(fresh, obs)[0], _run(net, obs)[0])


def test_construction_is_deterministic() -> None:
    """Two networks built after ``torch.manual_seed(0)`` give identical outputs; another seed does not."""
    obs = _observations(5, 2)
    out_a, _ = _run(_network(seed=0), obs)
    out_b, _ = _run(_network(seed=0), obs)
    assert torch.equal(out_a, out_b)
    out_c, _ = _run(_network(seed=1), obs)
    assert not torch.equal(out_a, out_c)


def test_network_shapes_and_encoder_width() -> None:
    """The first layer's input is the encoder's width; output is ``[batch, out_features]``."""
    torch.manual_seed(0)
    net = SpikingNetwork(3, 2, hidden=(7,), encoder="population")
    assert net.layers[0].in_features == 24
    out, state = net(torch.randn(4, 3))
    assert out.shape == (4, 2)
    assert len(state.layers) == 1 and state.readout.shape == (4, 2)


def test_network_needs_a_hidden_layer() -> None:
    """``hidden=()`` raises ``ValueError``."""
    with pytest.raises(ValueError, match=r"hidden must name at least one"):
        SpikingNetwork(3, 2, hidden=())


# ------------------------------------------------------------ packing survives share_memory/deepcopy


def test_share_memory_keeps_parameters_shared() -> None:
    """``share_memory()`` should leave the parameters in shared memory (Hogwild-style training)."""
    layer = SpikingLayer(3, 4)
    layer.share_memory()
    assert layer.packed_is_bound()
    assert layer.weight.is_shared() and layer.packed.is_shared()


def test_deepcopy_keeps_packed_bound() -> None:
    """A deep copy (e.g. a target network) should keep its parameters as views of its own ``packed``."""
    clone = copy.deepcopy(SpikingLayer(3, 4, recurrent=True))
    assert clone.packed_is_bound()


def test_deepcopy_rebinds_after_to() -> None:
    """``.to()`` on a deep copy keeps it bound and equal to the original."""
    torch.manual_seed(0)
    layer = SpikingLayer(3, 4, recurrent=True)
    clone = copy.deepcopy(layer).to(torch.get_default_dtype())
    assert clone.packed_is_bound()
    assert torch.equal(clone.packed, layer.packed)


def test_a_spread_constant_is_evenly_spaced_per_neuron_and_checked() -> None:
    layer = SpikingLayer(3, 5, beta=Spread(0.0, 0.8))
    torch.testing.assert_close(layer.beta, torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8]))
    assert layer.theta.dim() == 0  # the others stay one per layer
    with pytest.raises(ValueError, match=r"lif constant beta \(membrane decay\) must be in"):
        SpikingLayer(3, 5, beta=Spread(0.5, 1.5))


def test_current_norm_centres_and_scales_each_row_with_detached_statistics() -> None:
    """``normalized``: mean 0 and standard deviation ``g`` per row; its gradient is ``g / std`` per row
    (the statistics are constants), not the full normalisation's Jacobian."""
    layer = SpikingLayer(4, 6, current_norm=3.0)
    y = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5 + 2
    y.requires_grad_(True)
    out = layer.normalized(y)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(out.std(dim=1, unbiased=False), torch.full((2,), 3.0, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    weights = torch.randn(2, 6, dtype=torch.float64)
    (out * weights).sum().backward()
    scale = 3.0 / torch.sqrt(y.detach().var(dim=1, unbiased=False, keepdim=True) + 1e-6)
    torch.testing.assert_close(y.grad, weights * scale, atol=1e-12, rtol=0)
    full = torch.autograd.functional.jacobian(lambda v: 3.0 * (v - v.mean()) / v.std(unbiased=False), y[0])
    assert not torch.allclose(full, torch.diag(scale[0].expand(6)), atol=1e-3)  # what it is not
    assert SpikingLayer(4, 6).normalized(y) is y  # 0: off


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_current_norm_must_be_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(ValueError, match="current_norm must be finite and >= 0"):
        SpikingLayer(4, 8, current_norm=bad)
    from reflect.agents.config import NetworkConfig

    with pytest.raises(ValueError, match="current_norm must be finite and >= 0"):
        NetworkConfig(current_norm=bad)
