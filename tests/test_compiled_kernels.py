"""The compiled kernels (numba) against the numpy path they replace: same buffers, same results.

Each kernel runs side by side with its numpy twin from the same state. Elementwise work must agree bit
for bit; sums of more than one product (matrix products) to rounding. Every comparison has a negative
control showing it can fail. Skipped where numba is not installed (the numpy path is then the only one).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from reflect import kernels
from reflect.agents import Reflect
from reflect.envs.normalization import ObservationNormalizer
from reflect.learning.heads import GaussianHead
from reflect.learning.trace_group import TraceGroup
from reflect.spiking import SpikingNetwork, Surrogate
from reflect.traces import TraceEngine

pytestmark = pytest.mark.skipif(not kernels.compiled_available(), reason="numba is not installed")


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare both paths, whatever REFLECT_COMPILED says for the rest of the suite."""
    monkeypatch.setenv("REFLECT_COMPILED", "1")

NETWORKS = [
    {"hidden": (12,)},
    {"hidden": (12, 9), "readout_decay": 0.6},
    {"hidden": (12, 9), "recurrent": True, "beta": 0.0},
    {"hidden": (10,), "surrogate": Surrogate("arctan", 2.0), "readout_decay": 0.3},
]


def _engines(kwargs: dict, batch: int, dtype: torch.dtype) -> tuple[TraceEngine, TraceEngine]:
    torch.manual_seed(0)
    net = SpikingNetwork(3, 2, **kwargs).to(dtype)
    compiled = TraceEngine(net, batch, compiled=True)
    plain = TraceEngine(copy.deepcopy(net), batch, compiled=False)
    assert compiled.compiled is not None and plain.compiled is None and plain.numpy_path
    return compiled, plain


def _run_pair(fast: TraceEngine, slow: TraceEngine, steps: int = 15) -> list[tuple[np.ndarray, np.ndarray]]:
    """Step both engines on the same inputs and signals; pairs of (outputs, gradients, states)."""
    rng = np.random.default_rng(0)
    batch, dtype = fast.batch_size, fast.readout.np_packed.dtype
    gf, gs = fast.zeros_like_gradients(), slow.zeros_like_gradients()
    pairs = []
    for t in range(steps):
        x = (2.0 * rng.normal(size=(batch, 3))).astype(dtype)
        pairs.append((fast.step_array(x).copy(), slow.step_array(x).copy()))
        signal = rng.normal(size=(batch, 2)).astype(dtype)
        fast.backward(signal, gf, decay=0.8)
        slow.backward(signal, gs, decay=0.8)
        if t == 6 and batch > 1:
            fast.reset([True] + [False] * (batch - 1))
            slow.reset([True] + [False] * (batch - 1))
    pairs += [(a.numpy(), b.numpy()) for a, b in zip(gf, gs, strict=True)]
    pairs += [(t.numpy(), slow.state_tensors()[k].numpy()) for k, t in fast.state_tensors().items()]
    return pairs


@pytest.mark.parametrize("kwargs", NETWORKS)
@pytest.mark.parametrize("batch", [1, 3])
def test_network_kernels_match_the_numpy_path_in_float64(kwargs: dict, batch: int) -> None:
    """Outputs, spikes, membrane, traces and gradients agree to float64 rounding."""
    for a, b in _run_pair(*_engines(kwargs, batch, torch.float64)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_network_kernels_match_in_float32_and_differ_when_a_weight_does() -> None:
    fast, slow = _engines({"hidden": (128,)}, 1, torch.float32)
    for a, b in _run_pair(fast, slow, steps=40):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # negative control: one synapse of the compiled engine's network changed by 0.05
    fast, slow = _engines({"hidden": (128,)}, 1, torch.float32)
    with torch.no_grad():
        fast.network.spiking_layers[0].packed[0, 0] += 0.05
    worst = max(float(np.abs(a - b).max()) for a, b in _run_pair(fast, slow, steps=40))
    assert worst > 1e-3


def test_bound_backward_equals_the_backward_call() -> None:
    fast, _ = _engines({"hidden": (12, 9)}, 1, torch.float64)
    assert fast.compiled is not None
    fast.step_array(np.ones((1, 3)))
    by_call, bound_into = fast.zeros_like_gradients(), fast.zeros_like_gradients()
    signal = np.array([[0.3, -1.2]])
    fast.compiled.backward(signal, tuple(g.numpy() for g in by_call), 0.5)
    fast.compiled.bind_backward(signal, tuple(g.numpy() for g in bound_into), 0.5)()
    for a, b in zip(by_call, bound_into, strict=True):
        assert torch.equal(a, b) and a.abs().sum() > 0


def _groups(extra: bool) -> tuple[TraceGroup, TraceGroup]:
    fast, slow = _engines({"hidden": (16,)}, 1, torch.float32)
    groups = (TraceGroup(fast, 0.9, 0.5, 2.0), TraceGroup(slow, 0.9, 0.5, 2.0))
    if extra:
        for group in groups:
            group.attach_extra(np.zeros(2), np.zeros((1, 2)), lr_scale=0.1)
    return groups


@pytest.mark.parametrize("extra", [False, True])
def test_bounded_update_matches_the_numpy_update(extra: bool) -> None:
    """Traces, step sizes, norms and updated weights (and extra parameters) agree step by step."""
    fast, slow = _groups(extra)
    rng = np.random.default_rng(2)
    for _ in range(30):
        x = rng.normal(size=(1, 3)).astype(np.float32)
        fast.engine.step_array(x)
        slow.engine.step_array(x)
        signal = rng.normal(size=(1, 2))
        for group in (fast, slow):
            group.signal_np[...] = signal
            if extra:
                assert group.extra_grad is not None
                group.extra_grad[...] = signal
            group.accumulate()
        delta = float(rng.normal(scale=3.0))
        (step_f, l1_f), (step_s, l1_s) = fast.apply_one(delta), slow.apply_one(delta)
        assert l1_f == pytest.approx(l1_s, rel=1e-6) and step_f == pytest.approx(step_s, rel=1e-6)
    np.testing.assert_allclose(fast.z_np, slow.z_np, rtol=1e-5, atol=1e-6)
    for a, b in zip(fast.params_np, slow.params_np, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if extra:
        assert fast.extra_params is not None and slow.extra_params is not None
        np.testing.assert_allclose(fast.extra_params, slow.extra_params, rtol=1e-6)
        assert np.abs(fast.extra_params).sum() > 0


def _head_pair(squash: str) -> tuple[GaussianHead, GaussianHead]:
    low, high = np.array([-2.0, -np.inf, 0.0]), np.array([4.0, np.inf, 1.0])
    heads = tuple(
        GaussianHead(3, low, high, squash=squash, init_log_std=-0.4, seed=3,  # type: ignore[arg-type]
                     compiled=compiled)
        for compiled in (True, False)
    )
    return heads[0], heads[1]


@pytest.mark.parametrize("squash", ["tanh", "clip"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_gaussian_head_kernels_match_numpy(squash: str, deterministic: bool) -> None:
    fast, slow = _head_pair(squash)
    rng = np.random.default_rng(4)
    for _ in range(50):
        mu = rng.normal(scale=1.5, size=(1, 3)).astype(np.float32)
        u_f, env_f = fast.sample_for_env(mu, deterministic)
        u_s, env_s = slow.sample_for_env(mu, deterministic)
        np.testing.assert_array_equal(u_f, u_s)  # the same draws, the same arithmetic
        np.testing.assert_allclose(env_f, env_s, rtol=1e-6, atol=1e-6)  # libm tanh vs numpy's
        weight = np.array([0.01])
        sig_f, sig_s = np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)
        fast.score(mu, u_f, weight, sig_f)
        slow.score(mu, u_s, weight, sig_s)
        np.testing.assert_array_equal(sig_f, sig_s)
        np.testing.assert_array_equal(fast.extra_grad, slow.extra_grad)
    fast.log_std_np[:] = [-9.0, 0.3, 5.0]  # the shared clip into the bounds, then sigma
    slow.log_std_np[:] = [-9.0, 0.3, 5.0]
    fast.refresh()
    slow.refresh()
    np.testing.assert_array_equal(fast.log_std_np, [-5.0, 0.3, 2.0])
    np.testing.assert_allclose(fast.std(), slow.std(), rtol=1e-15)
    np.testing.assert_allclose(fast._inv_var, slow._inv_var, rtol=1e-15)
    # negative control: another seed draws other actions
    other = GaussianHead(3, None, None, seed=4, compiled=True)
    assert not np.array_equal(other.sample_for_env(np.zeros((1, 3), np.float32), False)[0], u_s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalizer_kernel_gives_the_same_bits_as_the_plain_float_path(dtype: type) -> None:
    fast = ObservationNormalizer((5,), clip=3.0, compiled=True)
    slow = ObservationNormalizer((5,), clip=3.0, compiled=False)
    rng = np.random.default_rng(5)
    out_f, out_s = np.zeros((1, 5), np.float32), np.zeros((1, 5), np.float32)
    for i in range(300):
        obs = (rng.normal(size=(1, 5)) * [1.0, 10.0, 0.1, 100.0, 3.0] + 7.0).astype(dtype)
        fast(obs, update=i % 3 != 0, out=out_f)
        slow(obs, update=i % 3 != 0, out=out_s)
        np.testing.assert_array_equal(out_f, out_s)
    np.testing.assert_array_equal(fast.rms.mean, slow.rms.mean)
    np.testing.assert_array_equal(fast.rms.var, slow.rms.var)
    assert fast.rms.count == slow.rms.count == 200
    # a non-finite observation is refused by name and changes nothing
    mean = fast.rms.mean.copy()
    with pytest.raises(FloatingPointError, match=r"dimensions \[2\]"):
        fast(np.array([[0.0, 1.0, np.nan, 0.0, 0.0]], dtype=dtype), out=out_f)
    np.testing.assert_array_equal(fast.rms.mean, mean)
    assert fast.rms.count == 200
    # negative control: other statistics give other outputs
    slow.rms.mean[0] += 1e-3
    fast(obs, update=False, out=out_f)
    slow(obs, update=False, out=out_s)
    assert out_f[0, 0] != out_s[0, 0]


def _pendulum_run(
    monkeypatch: pytest.MonkeyPatch, compiled: bool, steps: int = 300
) -> tuple[np.ndarray, Reflect]:
    monkeypatch.setenv("REFLECT_COMPILED", "1" if compiled else "0")
    agent = Reflect("Pendulum-v1", seed=0)
    assert (agent.learner.actor_engine.compiled is not None) == compiled
    rng = np.random.default_rng(6)
    observations = rng.normal(size=(steps + 1, 3)).astype(np.float32)
    actions = np.zeros(steps)
    for t in range(steps):
        actions[t] = agent.act(observations[t])[0]
        agent.observe(-float(observations[t, 0] ** 2), False, t % 100 == 99, observations[t + 1])
    return actions, agent


def test_a_learning_agent_takes_the_same_actions_with_and_without_the_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 learning steps of the default Pendulum agent: the same actions and weights to 1e-4."""
    fast_actions, fast = _pendulum_run(monkeypatch, compiled=True)
    slow_actions, slow = _pendulum_run(monkeypatch, compiled=False)
    np.testing.assert_allclose(fast_actions, slow_actions, atol=1e-4)
    for a, b in zip(fast.actor.parameters(), slow.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    untrained = Reflect("Pendulum-v1", seed=0)
    assert not torch.equal(next(fast.actor.parameters()), next(untrained.actor.parameters()))  # it learned


def test_the_switch_and_the_missing_package_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLECT_COMPILED", "0")
    assert not kernels.compiled_enabled()
    agent = Reflect("Pendulum-v1", seed=0)
    assert agent.learner.actor_engine.compiled is None and not agent.head.compiled  # type: ignore[attr-defined]
    assert agent.obs_normalizer is not None and not agent.obs_normalizer.compiled
    monkeypatch.setenv("REFLECT_COMPILED", "1")
    assert kernels.compiled_enabled()
    monkeypatch.setattr(kernels, "njit", None)  # as if numba were not installed
    assert not kernels.compiled_enabled()
    net = SpikingNetwork(3, 2, hidden=(8,))
    with pytest.raises(ImportError, match=r'pip install "reflect-rl\[fast\]"'):
        TraceEngine(net, 1, compiled=True)
    with pytest.raises(ImportError, match="numba"):
        GaussianHead(1, compiled=True)
    assert TraceEngine(net, 1).compiled is None  # automatic: falls back to numpy
    with pytest.raises(ValueError, match="numpy path only"):
        TraceEngine(SpikingNetwork(3, 2, hidden=(8,), neuron="alif"), 1, compiled=True)


def test_the_fused_act_and_observe_give_the_same_bits_as_the_separate_kernels() -> None:
    """The one-call act (normaliser, actor, head) and observe (critic, scores, traces, both updates)
    against the same agent going through the separate calls: identical actions, statistics and weights
    over 400 learning steps with episode ends, then frozen."""
    fused, separate = Reflect("Pendulum-v1", seed=0), Reflect("Pendulum-v1", seed=0)
    assert fused._fused_act is not None and fused._fused_observe is not None
    separate._fused_act = separate._fused_observe = None
    rng = np.random.default_rng(7)
    observations = (rng.normal(size=(401, 3)) * [1.0, 1.0, 8.0]).astype(np.float32)
    for t in range(400):
        if t == 200:  # settings read at every call (a loaded checkpoint may change them)
            for agent in (fused, separate):
                assert agent.obs_normalizer is not None
                agent.obs_normalizer.clip = 0.7
        a, b = fused.act(observations[t]), separate.act(observations[t])
        np.testing.assert_array_equal(a, b)
        ended = t % 150 == 149
        reward = -float(observations[t, 0] ** 2)
        delta = fused.observe(reward, t == 320, ended, observations[t + 1])[0]
        assert delta == separate.observe(reward, t == 320, ended, observations[t + 1])[0]
    for x, y in zip(fused.actor.parameters(), separate.actor.parameters(), strict=True):
        assert torch.equal(x, y)
    for x, y in zip(fused.critic.parameters(), separate.critic.parameters(), strict=True):  # type: ignore[union-attr]
        assert torch.equal(x, y)
    assert fused.obs_normalizer is not None and separate.obs_normalizer is not None
    np.testing.assert_array_equal(fused.obs_normalizer.rms.var, separate.obs_normalizer.rms.var)
    assert torch.equal(fused.learner.actor.z, separate.learner.actor.z)
    assert torch.equal(fused.learner.critic.fresh, separate.learner.critic.fresh)  # type: ignore[union-attr]
    np.testing.assert_array_equal(fused.head.log_std_np, separate.head.log_std_np)  # type: ignore[attr-defined]
    assert fused.learner.stats.pop() == separate.learner.stats.pop()
    for deterministic in (True, False):
        fused.freeze(deterministic)
        separate.freeze(deterministic)
        for t in range(20):
            np.testing.assert_array_equal(fused.act(observations[t]), separate.act(observations[t]))
    # negative control: other normaliser statistics give other network inputs and outputs
    fused.unfreeze()
    separate.unfreeze()
    fused.obs_normalizer.rms.mean[0] += 1.0
    fused.act(observations[0])
    separate.act(observations[0])
    assert fused.learner.actor_out[0, 0] != separate.learner.actor_out[0, 0]


def test_the_fused_act_refuses_a_non_finite_observation_and_changes_nothing() -> None:
    agent = Reflect("Pendulum-v1", seed=0)
    assert agent._fused_act is not None and agent.obs_normalizer is not None
    agent.act(np.zeros(3, np.float32))
    agent.observe(0.0, False, False, np.zeros(3, np.float32))
    count, mean = agent.obs_normalizer.rms.count, agent.obs_normalizer.rms.mean.copy()
    weights = [p.clone() for p in agent.actor.parameters()]
    with pytest.raises(FloatingPointError, match=r"NaN or inf in dimensions \[1\]"):
        agent.act(np.array([0.0, np.inf, 0.0], np.float32))
    assert agent.obs_normalizer.rms.count == count
    np.testing.assert_array_equal(agent.obs_normalizer.rms.mean, mean)
    assert all(torch.equal(p, q) for p, q in zip(agent.actor.parameters(), weights, strict=True))
    agent.act(np.zeros(3, np.float32))  # still usable: not left waiting for an observe()


def test_the_fused_observe_refuses_non_finite_input_as_the_learner_does() -> None:
    agent = Reflect("Pendulum-v1", seed=0)
    assert agent._fused_observe is not None
    zeros = np.zeros(3, np.float32)
    agent.act(zeros)
    weights = [p.clone() for p in agent.actor.parameters()]
    with pytest.raises(FloatingPointError, match=r"NaN or inf in dimensions \[0\]"):
        agent.observe(0.0, False, False, np.array([np.nan, 0.0, 0.0], np.float32))
    assert all(torch.equal(p, q) for p, q in zip(agent.actor.parameters(), weights, strict=True))
    agent.observe(0.0, False, False, zeros)  # the step can still be completed
    agent.act(zeros)
    agent.reward_scaler = None  # let the NaN reach the learner
    weights = [p.clone() for p in [*agent.actor.parameters(), *agent.critic.parameters()]]  # type: ignore[union-attr]
    with pytest.raises(FloatingPointError, match="non-finite reward prediction error"):
        agent.observe(float("nan"), False, False, zeros)
    after = [*agent.actor.parameters(), *agent.critic.parameters()]  # type: ignore[union-attr]
    assert all(torch.equal(p, q) for p, q in zip(after, weights, strict=True))  # refused before any update


def test_the_fused_steps_without_an_observation_normaliser() -> None:
    """Without a normaliser the fused kernels copy the raw observation in: the same bits as the separate
    calls, and a NaN is still refused by name."""
    config = {"normalize": {"observations": False}}
    fused, separate = Reflect("Pendulum-v1", config, seed=0), Reflect("Pendulum-v1", config, seed=0)
    other_seed = Reflect("Pendulum-v1", config, seed=1)
    assert fused._fused_act is not None and fused._fused_observe is not None
    separate._fused_act = separate._fused_observe = None
    observations = np.random.default_rng(8).normal(size=(201, 3)).astype(np.float32)
    differs = False
    for t in range(200):
        a = fused.act(observations[t]).copy()
        np.testing.assert_array_equal(a, separate.act(observations[t]))
        differs |= not np.array_equal(a, other_seed.act(observations[t]))  # negative control
        for agent in (fused, separate, other_seed):
            agent.observe(-1.0, False, t == 99, observations[t + 1])
    assert differs
    for x, y in zip(fused.actor.parameters(), separate.actor.parameters(), strict=True):
        assert torch.equal(x, y)
    with pytest.raises(FloatingPointError, match="non-finite observation"):
        fused.act(np.array([0.0, 0.0, np.nan], np.float32))
