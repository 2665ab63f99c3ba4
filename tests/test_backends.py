"""Backends: chosen in one place with a reason; the learner's one REFLECT step runs the same on each.

The network math of every backend is checked against BPTT in ``test_conformance.py``; here the learner's
act and observe (one template, compiled for numba and interpreted for numpy/torch) must take the same
actions and make the same weight changes on every backend, and refuse bad data before any weight moves.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest
import torch

from reflect.agents import FrozenPolicy
from reflect.kernels import compiled_available
from reflect.learning import CategoricalHead, GaussianHead, LearnerConfig, ReflectLearner, compile_steps
from reflect.spiking import SpikingNetwork
from reflect.traces import backends
from reflect.traces.backends import select_backend
from reflect.traces.engine import engine_spec

# Tests that run a learner on numba skip when it is missing or switched off (``REFLECT_COMPILED=0``).
NUMBA_RUNS = compiled_available() and (
    os.environ.get("REFLECT_COMPILED", "").strip().lower() not in backends._OFF)
needs_numba = pytest.mark.skipif(not NUMBA_RUNS, reason="numba is not installed or REFLECT_COMPILED=0")


def _spec(hidden: int = 8) -> Any:
    return engine_spec(SpikingNetwork(3, 2, (hidden,)))


@pytest.mark.skipif(not compiled_available(), reason="numba is not installed")
def test_the_compiled_backend_is_chosen_first_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFLECT_BACKEND", raising=False)
    monkeypatch.delenv("REFLECT_COMPILED", raising=False)
    choice = select_backend([_spec()])
    assert choice.name == "numba" and "numba" in choice.reason and not choice.refusals


def test_each_refusal_names_its_reason_and_the_next_backend_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFLECT_BACKEND", raising=False)
    monkeypatch.setenv("REFLECT_COMPILED", "0")
    choice = select_backend([_spec()])
    assert choice.name == "numpy"
    assert choice.refusals[0] == ("numba", "switched off by REFLECT_COMPILED=0") or not compiled_available()
    assert "numba refused" in choice.describe()
    big = _spec(hidden=70_000)  # one matrix of 4 x 70,000 weights
    choice = select_backend([big])
    assert choice.name == "torch"
    assert ("numpy", "a weight matrix has 280,000 entries, above 65,536, where torch's whole-array kernels "
            "are faster than numpy's") in choice.refusals
    monkeypatch.delenv("REFLECT_COMPILED")
    if compiled_available():  # the compiled loops take any size
        assert select_backend([big]).name == "numba"


def test_a_missing_numba_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFLECT_BACKEND", raising=False)
    monkeypatch.setattr(backends, "compiled_available", lambda: False)
    choice = select_backend([_spec()])
    assert choice.name == "numpy"
    assert choice.refusals == (("numba", 'numba is not installed (pip install "reflect-rl[fast]")'),)
    with pytest.raises(ValueError, match=r"backend 'numba' cannot run this network: numba is not installed"):
        select_backend([_spec()], "numba")


def test_requested_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLECT_BACKEND", "torch")
    assert select_backend([_spec()]).describe() == "torch (requested)"
    monkeypatch.setenv("REFLECT_BACKEND", "jax")
    message = r"REFLECT_BACKEND='jax' is not a backend: choose one of numba, numpy, torch"
    with pytest.raises(ValueError, match=message):
        select_backend([_spec()])
    monkeypatch.delenv("REFLECT_BACKEND")
    with pytest.raises(ValueError, match=r"unknown backend 'gpu'"):
        select_backend([_spec()], "gpu")
    with pytest.raises(ValueError, match=r"backend 'numpy' cannot run this network: .* above 65,536"):
        select_backend([_spec(hidden=70_000)], "numpy")


# ----------------------------------------------------------------------------- the REFLECT step
def _learner(backend: str, head: str, streams: int, third_factor: str = "td", seed: int = 0,
             entropy_target: float | None = None, **network: Any) -> Any:
    torch.manual_seed(seed)
    actions = 2
    actor = SpikingNetwork(3, actions, (12,), weight_scale=3.0, **network).double()
    critic = SpikingNetwork(3, 1, (12,), weight_scale=3.0, **network).double()
    policy = (CategoricalHead(actions, seed=seed) if head == "categorical"
              else GaussianHead(actions, [-1.0, -2.0], [1.0, 2.0], seed=seed, log_std_lr_scale=0.1))
    config = LearnerConfig(third_factor=third_factor, lam=0.9, actor_lr=0.5, critic_lr=0.5,
                           entropy_target=entropy_target, entropy_rate=0.05)
    return ReflectLearner(actor, critic, policy, config, num_streams=streams, backend=backend)


def _run(learner: Any, steps: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    streams = learner.num_streams
    actions = []
    for t in range(steps):
        obs = rng.normal(size=(streams, 3))
        actions.append(np.array(learner.act(obs), copy=True))
        reward = rng.normal(size=streams)
        ended = rng.random(streams) < 0.1
        terminated, truncated = ended & (t % 2 == 0), ended & (t % 2 == 1)
        learner.observe(reward, terminated, truncated, rng.normal(size=(streams, 3)))
    return actions


# one network configuration for every test here: the compiled backend compiles each (learner, head, model)
# once on a fresh machine
SHARED: dict[str, Any] = {"neuron": "alif", "beta": 0.3, "learn": ("theta",)}
# (head, streams, learner, entropy target): the targets make the coefficient move every step
BACKEND_CASES = [("categorical", 1, "td", None), ("categorical", 3, "td", 0.3), ("gaussian", 1, "td", None),
                 ("gaussian", 2, "td", 3.0), ("categorical", 2, "reward-baseline", None)]


@pytest.mark.parametrize(("head", "streams", "third_factor", "entropy_target"), BACKEND_CASES)
def test_every_backend_runs_the_same_reflect_step(head: str, streams: int, third_factor: str,
                                                  entropy_target: float | None) -> None:
    """Over 150 steps with episode ends, float64 networks: identical actions, weights to 1e-9."""
    names = ["numpy", "torch"] + (["numba"] if NUMBA_RUNS else [])
    runs = {}
    for name in names:
        learner = _learner(name, head, streams, third_factor, entropy_target=entropy_target, **SHARED)
        assert learner.backend.name == name and learner.compiled == (name == "numba")
        actions = _run(learner, 150)
        weights = [p.detach().clone() for p in learner.actor_engine.parameters()]
        if learner.critic_engine is not None:
            weights += [p.detach().clone() for p in learner.critic_engine.parameters()]
        runs[name] = (actions, weights, learner.head.extra_params, float(learner.entropy_coef[0]))
    reference = runs.pop("numpy")
    if entropy_target is not None:
        assert reference[3] != 0.01  # the coefficient moved
    for name, (actions, weights, extra, coefficient) in runs.items():
        assert coefficient == pytest.approx(reference[3], rel=1e-9), name
        for a, b in zip(actions, reference[0], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=f"{name}: actions")
        for a, b in zip(weights, reference[1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=f"{name}: weights")
        if extra is not None:
            np.testing.assert_allclose(extra, reference[2], rtol=1e-9, err_msg=f"{name}: log-std")
    moved = _learner("numpy", head, streams, third_factor, **SHARED)
    fresh = moved.actor_engine.parameters()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(reference[1], fresh, strict=False))


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_bad_data_is_refused_before_any_weight_moves(backend: str) -> None:
    learner = _learner(backend, "gaussian", 1, **SHARED)
    before = [p.detach().clone() for p in learner.actor_engine.parameters()]
    with pytest.raises(FloatingPointError, match=r"observation has NaN or inf in dimensions \[1\]"):
        learner.act(np.array([[0.0, np.nan, 0.0]]))
    learner.act(np.zeros((1, 3)))
    with pytest.raises(FloatingPointError, match=r"observation has NaN or inf in dimensions \[2\]"):
        learner.observe(np.zeros(1), np.zeros(1, bool), np.zeros(1, bool), np.array([[0.0, 0.0, np.inf]]))
    with pytest.raises(FloatingPointError, match=r"non-finite reward prediction error \[nan\]"):
        learner.observe(np.array([np.nan]), np.zeros(1, bool), np.zeros(1, bool), np.zeros((1, 3)))
    for a, b in zip(before, learner.actor_engine.parameters(), strict=True):
        assert torch.equal(a, b.detach())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_a_non_finite_trace_names_where_and_why(backend: str) -> None:
    learner = _learner(backend, "categorical", 1, **SHARED)
    with torch.no_grad():
        learner.actor_engine.network.readout.weight[0, 0] = float("inf")  # logits inf: softmax NaN
    learner.act(np.ones((1, 3)))
    message = r"non-finite eligibility trace in the actor in .*: readout weights already hold NaN or inf"
    with pytest.raises(FloatingPointError, match=message):
        learner.observe(np.ones(1), np.zeros(1, bool), np.zeros(1, bool), np.ones((1, 3)))


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("backend", ["numpy", "torch", pytest.param("numba", marks=needs_numba)])
def test_a_frozen_policy_runs_the_learners_act_with_learning_off(backend: str, head: str) -> None:
    """``FrozenPolicy`` with the learner (its act, learning off: one compiled call on numba) takes the
    same actions as the plain path (engine step, then the head), sampling or not, and refuses NaN."""
    learner = _learner(backend, head, 2, **SHARED)
    _run(learner, 20)
    actor = learner.actor_engine.network
    fused = FrozenPolicy(actor, learner.head.spawn(5), lambda x: x, 2, learner)
    plain = FrozenPolicy(actor, learner.head.spawn(5), lambda x: x, 2)
    assert fused.engine.backend.name == backend
    rng = np.random.default_rng(3)
    for t in range(40):
        obs = rng.normal(size=(2, 3))
        deterministic = t % 2 == 0
        expected = np.array(plain.act(obs, deterministic), copy=True)
        np.testing.assert_allclose(fused.act(obs, deterministic), expected, rtol=1e-6, atol=1e-6,
                                   err_msg=f"step {t}")
    with pytest.raises(FloatingPointError, match=r"observation has NaN or inf"):
        fused.act(np.full((2, 3), np.nan))


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_compile_binds_every_step_before_the_first_call_and_changes_nothing(backend: str) -> None:
    """``learner.compile()`` leaves no step to compile at its first call; the run is the lazy one's."""
    eager, lazy = _learner(backend, "categorical", 2, **SHARED), _learner(backend, "categorical", 2, **SHARED)
    assert eager.compile() >= 0.0
    assert eager._unbound == {}
    if backend == "numba":
        assert lazy._unbound, "the compiled steps should be bound at their first call"
    for got, expected in zip(_run(eager, 30), _run(lazy, 30), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert eager.compile() < 0.5  # nothing left to do


class _SlowCompile:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.backend = backends.BackendChoice("numba", "test")

    def compile(self) -> float:
        time.sleep(self.seconds)
        return self.seconds


def test_a_long_compile_says_what_the_wait_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert compile_steps(_SlowCompile(0.3), notice_after=0.05) == 0.3  # type: ignore[arg-type]
    assert "compiling the numba kernels for this network" in capsys.readouterr().err
    compile_steps(_SlowCompile(0.0), notice_after=0.05)  # type: ignore[arg-type]
    compile_steps(_SlowCompile(0.3), verbose=0, notice_after=0.05)  # type: ignore[arg-type]
    time.sleep(0.1)
    assert capsys.readouterr().err == ""
