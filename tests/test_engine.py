"""The online engine: same forward as the autograd network, per-stream resets, constant memory."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch
from oracle import make_problem

from reflect.spiking import SpikingNetwork
from reflect.traces import TraceEngine


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"neuron": "alif"}, {"recurrent": True}, {"readout_decay": 0.5},
     {"neuron": "alif", "recurrent": True, "detach_reset": False}, {"encoder": "population"}],
)
def test_engine_forward_matches_network(kwargs: dict) -> None:
    """The in-place engine reproduces SpikingNetwork.forward step by step (outputs and states)."""
    net, xs, _ = make_problem(20, batch=3, hidden=(12, 10), **kwargs)
    engine = TraceEngine(net, 3)
    state = None
    with torch.no_grad():
        for x in xs:
            out, state = net(x, state)
            torch.testing.assert_close(engine.step(x), out, rtol=1e-12, atol=1e-12)
    assert state is not None
    for mine, ref in zip(engine.network_state().layers, state.layers, strict=True):
        for a, b in zip(mine, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    spikes = torch.stack([s.sum() for s in engine.spikes])
    assert float(spikes.sum()) > 0, "no spikes at all: the comparison would be vacuous"


def test_gradients_cover_every_trainable_parameter() -> None:
    """Every trainable parameter, readout included, gets a non-zero gradient under its own name."""
    net, xs, targets = make_problem(10, hidden=(16, 16), neuron="alif", learn_beta=True,
                                    learn_theta=True, recurrent=True, weight_scale=8.0)
    engine = TraceEngine(net, 2)
    for x in xs:
        out = engine.step(x)
    grads = engine.gradients(out - targets[-1])
    params = dict(net.named_parameters())
    assert set(grads) == set(params)
    for name, p in params.items():
        assert grads[name].shape == p.shape, name
        assert float(grads[name].abs().sum()) > 0.0, f"{name} got a zero gradient"


def test_backward_accumulates_with_decay() -> None:
    """backward(signal, grads, decay) computes decay * old + new (the log-prob trace update)."""
    net, xs, targets = make_problem(2)
    engine = TraceEngine(net, 2)
    engine.step(xs[0])
    old = [torch.randn_like(g) for g in engine.zeros_like_gradients()]
    out = engine.step(xs[1])
    fresh = engine.zeros_like_gradients()
    engine.backward(out - targets[1], fresh)
    decayed = [g.clone() for g in old]
    engine.backward(out - targets[1], decayed, decay=0.9)
    for d, o, f in zip(decayed, old, fresh, strict=True):
        torch.testing.assert_close(d, 0.9 * o + f)


@pytest.mark.parametrize("backend", ["numba", "numpy", "torch"])
@pytest.mark.parametrize("batch", [1, 3])
def test_backward_into_separate_tensors_equals_the_flat_buffer(backend: str, batch: int) -> None:
    """``zeros_like_gradients`` gives views of one buffer that ``backward`` fills in one pass (in place for
    one stream); separately allocated tensors take the general path. Both give the same gradients."""
    net, xs, targets = make_problem(5, batch=batch, hidden=(6, 5), recurrent=True, learn=("beta",))
    engine = TraceEngine(net, batch, backend=backend)
    flat = engine.zeros_like_gradients()
    separate = [p.detach().new_zeros(p.shape) for p in engine.parameters()]
    assert engine._flat_of(flat) is not None and engine._flat_of(separate) is None
    for x, target in zip(xs, targets, strict=True):
        out = engine.step(x)
        engine.backward(out - target, flat, decay=0.7)
        engine.backward(out - target, separate, decay=0.7)
    for a, b in zip(flat, separate, strict=True):
        assert float(b.abs().max()) > 0.0
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_parameter_updates_take_effect_next_step() -> None:
    """The engine reads parameters live: an in-place update changes the next output like autograd's."""
    net, xs, _ = make_problem(2, batch=1)
    engine = TraceEngine(net, 1)
    engine.step(xs[0])
    with torch.no_grad():
        _, state = net(xs[0])
        net.readout.weight.mul_(2.0)
        net.layers[0].bias.add_(0.5)
        expected, _ = net(xs[1], state)
    torch.testing.assert_close(engine.step(xs[1]), expected)


def _run(engine: TraceEngine, xs: torch.Tensor, reset_at: int | None, stream: int) -> list[torch.Tensor]:
    outs = []
    for t, x in enumerate(xs):
        if t == reset_at:
            mask = [i == stream for i in range(engine.batch_size)]
            engine.reset(mask)
        outs.append(engine.step(x).clone())
    return outs


@pytest.mark.parametrize("algorithm", ["pp-prop", "d-rtrl"])
def test_reset_of_one_stream_leaves_the_others_bit_identical(algorithm: str) -> None:
    """Resetting stream 1 at step 6 leaves streams 0 and 2 (outputs and traces) exactly unchanged,
    and stream 1 then behaves like a fresh single-stream engine."""
    net, xs, _ = make_problem(12, batch=3, hidden=(12,), neuron="alif")
    plain = TraceEngine(net, 3, algorithm=algorithm, alpha_f=0.5)
    reset = TraceEngine(net, 3, algorithm=algorithm, alpha_f=0.5)
    fresh = TraceEngine(net, 1, algorithm=algorithm, alpha_f=0.5)
    out_plain = _run(plain, xs, None, 1)
    out_reset = _run(reset, xs, 6, 1)
    out_fresh = _run(fresh, xs[6:, 1:2], None, 0)
    for t in range(12):
        assert torch.equal(out_plain[t][[0, 2]], out_reset[t][[0, 2]])
    for t in range(6, 12):
        torch.testing.assert_close(out_reset[t][1:2], out_fresh[t - 6], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out_plain[-1][1], out_reset[-1][1]), "the reset had no effect"
    for name, tensor in plain.state_tensors().items():
        other = reset.state_tensors()[name]
        if tensor.dim() >= 1 and tensor.shape[0] == 3:
            assert torch.equal(tensor[[0, 2]], other[[0, 2]]), name
    signal = torch.ones(3, 2, dtype=torch.float64)
    g_plain, g_reset = plain.gradients(signal), reset.gradients(signal)
    fresh_grads = fresh.gradients(signal[1:2])
    for name in g_plain:
        expected = g_plain[name] - _single_stream(plain, signal, name, 1) + fresh_grads[name]
        torch.testing.assert_close(g_reset[name], expected, rtol=1e-9, atol=1e-12)


def _single_stream(engine: TraceEngine, signal: torch.Tensor, name: str, stream: int) -> torch.Tensor:
    """Gradient contribution of one stream (by masking the signal of the others)."""
    masked = torch.zeros_like(signal)
    masked[stream] = signal[stream]
    return engine.gradients(masked)[name]


def _live_tensor_bytes() -> int:
    gc.collect()
    storages: dict[int, int] = {}
    with warnings.catch_warnings():  # isinstance on deprecated torch module attributes warns
        warnings.simplefilter("ignore")
        tensors = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    for obj in tensors:
        storage = obj.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def test_memory_is_constant_in_lifetime_length() -> None:
    """State + traces after 10 and after 10,000 steps take the same bytes (nothing accumulates)."""
    torch.manual_seed(0)
    net = SpikingNetwork(4, 2, hidden=(32, 32))
    engine = TraceEngine(net, 1)
    grads = engine.zeros_like_gradients()
    obs, signal = torch.randn(1, 4), torch.randn(1, 2)

    def run(steps: int) -> None:
        for _ in range(steps):
            engine.step(obs)
            engine.backward(signal, grads, decay=0.9)

    run(10)
    before, trace_before = _live_tensor_bytes(), engine.trace_bytes()
    run(10_000)
    after, trace_after = _live_tensor_bytes(), engine.trace_bytes()
    assert trace_before == trace_after
    assert before == after
    # negative control: the measure does see a buffer that grows with the lifetime
    leak = [torch.zeros(64) for _ in range(10)]
    assert _live_tensor_bytes() > after
    del leak


def test_bad_input_is_a_clear_error() -> None:
    """Wrong shapes and settings raise ValueError naming the problem."""
    net = SpikingNetwork(4, 2, hidden=(8,))
    with pytest.raises(ValueError, match="unknown trace algorithm 'bptt'"):
        TraceEngine(net, algorithm="bptt")
    with pytest.raises(ValueError, match="alpha_f"):
        TraceEngine(net, alpha_f=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        TraceEngine(net, 0)
    engine = TraceEngine(net, 2)
    with pytest.raises(ValueError, match=r"expected observations of shape \(2, 4\)"):
        engine.step(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="episode_start has 3 entries, expected 2"):
        engine.reset([True, False, False])
    net.layers[0].weight.data = net.layers[0].weight.data.clone()
    with pytest.raises(ValueError, match="packed storage"):
        TraceEngine(net)
