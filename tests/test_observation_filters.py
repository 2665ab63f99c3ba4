"""The observation filter banks (fixed linear memory in front of the network): their discretisation
against an independent float64 oracle, the memory they keep, the wrapper, and the config that turns
them on everywhere an env is built."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from reflect.agents import Reflect
from reflect.agents.config import load_reflect_config, saved_env_arguments
from reflect.config import ConfigError
from reflect.envs import ObservationFilterBank, ObservationFilterSpec, make_env, make_single_env
from reflect.envs.errors import EnvSetupError
from reflect.envs.observation_filters import (
    exponential_system,
    filter_step,
    legendre_system,
)
from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes


def _legendre_continuous(order: int, window: float) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.zeros(order, order, dtype=torch.float64)
    for i in range(order):
        for j in range(order):
            a[i, j] = (2 * i + 1) * (-1.0 if i < j else (-1.0) ** (i - j + 1)) / window
    b = torch.tensor([(2 * i + 1) * (-1.0) ** i / window for i in range(order)], dtype=torch.float64)
    return a, b


def _shifted_legendre(i: int, r: float) -> float:
    """``P~_i(r) = P_i(2r - 1)``, the shifted Legendre polynomial on [0, 1]."""
    return float(np.polynomial.legendre.Legendre.basis(i)(2 * r - 1))


@pytest.mark.parametrize(("order", "window"), [(1, 1.0), (4, 3.0), (6, 6.0), (12, 40.0)])
def test_legendre_discretisation_matches_the_exact_zero_order_hold(order: int, window: float) -> None:
    a_c, b_c = _legendre_continuous(order, window)
    a_oracle = torch.linalg.matrix_exp(a_c)  # exp(A_c * dt), dt = 1
    # ZOH input matrix: int_0^1 exp(A_c s) ds B_c, read off the augmented exponential (no inverse of A_c)
    augmented = torch.zeros(order + 1, order + 1, dtype=torch.float64)
    augmented[:order, :order], augmented[:order, order] = a_c, b_c
    b_oracle = torch.linalg.matrix_exp(augmented)[:order, order]
    a, b = legendre_system(order, window)
    np.testing.assert_allclose(a, a_oracle.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(b, b_oracle.numpy(), rtol=0, atol=1e-12)
    # negative control: a forward-Euler step (I + A_c, B_c) is a different system
    assert np.abs((np.eye(order) + a_c.numpy()) - a).max() > 1e-3


def test_legendre_memory_holds_the_recent_window() -> None:
    """``u_{t-k}`` is a linear read-out of ``m_t``: ``sum_i P~_i((k + 1/2) / window) m_i`` (the zero-order
    hold spreads sample ``t - k`` over delays ``k`` to ``k + 1``)."""
    order, window = 8, 10.0
    a, b = legendre_system(order, window)
    t = np.arange(400)
    signal = np.sin(2 * np.pi * t / 37.0) + 0.5 * np.cos(2 * np.pi * t / 23.0)
    memory = np.zeros((1, order))
    errors, controls = [], []
    lag = 5
    readout = np.array([_shifted_legendre(i, (lag + 0.5) / window) for i in range(order)])
    for step, u in enumerate(signal):
        memory = filter_step(memory, np.array([u]), a, b)
        if step >= 50:
            errors.append(float(memory[0] @ readout) - signal[step - lag])
            controls.append(signal[step] - signal[step - lag])
    rms, control_rms = math.sqrt(np.mean(np.square(errors))), math.sqrt(np.mean(np.square(controls)))
    assert rms < 0.01 * control_rms, (rms, control_rms)  # the delayed value, not the current one
    assert control_rms > 0.5


def test_exponential_bank_is_leaky_averages_over_the_window() -> None:
    a, b = exponential_system(3, 8.0)
    decay = np.exp(-1.0 / np.array([1.0, math.sqrt(8.0), 8.0]))
    np.testing.assert_allclose(np.diag(a), decay, rtol=1e-12)
    np.testing.assert_allclose(b, 1.0 - decay, rtol=1e-12)
    memory = np.zeros((1, 3))
    for _ in range(500):  # a constant input: every average converges to it
        memory = filter_step(memory, np.array([2.0]), a, b)
    np.testing.assert_allclose(memory, 2.0, rtol=1e-9)


def test_wrapper_appends_the_bank_and_a_reset_clears_it() -> None:
    env = ObservationFilterBank(gym.make("CartPole-v1"), "legendre", order=3, window=4.0)
    assert env.observation_space.shape == (4 * (1 + 3),)
    first, _ = env.reset(seed=0)
    a, b = legendre_system(3, 4.0)
    expected = filter_step(np.zeros((4, 3)), first[:4].astype(np.float64), a, b)
    np.testing.assert_allclose(first[4:], expected.ravel(), rtol=1e-6)
    np.testing.assert_allclose(first[:4], env.unwrapped.state, rtol=1e-6)  # the observation comes first
    for _ in range(5):
        obs, *_ = env.step(0)
    assert not np.allclose(obs[4:], filter_step(np.zeros((4, 3)), obs[:4].astype(np.float64), a, b).ravel())
    again, _ = env.reset(seed=0)
    np.testing.assert_array_equal(again, first)  # the same start: the same memory (zeroed by reset)


def test_the_bank_refuses_a_space_it_cannot_filter() -> None:
    env = gym.make("FrozenLake-v1")  # a Discrete observation that was not encoded
    with pytest.raises(ValueError, match="flat Box observation"):
        ObservationFilterBank(env, "legendre")


@pytest.mark.parametrize(("key", "value", "words"), [
    ("kind", "lmu", "observation_filter.kind. must be one of"), ("order", 0, "order must be"),
    ("window", 0.5, "window must"),
])
def test_bad_filter_settings_are_one_line_errors(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_reflect_config("CartPole-v1", overrides=[f"observation_filter.{key}={value}"])


def test_config_filters_training_and_every_env_built_from_a_checkpoint(tmp_path) -> None:
    config = load_reflect_config(
        "CartPole-v1", overrides=["observation_filter.kind=legendre", "observation_filter.order=2"])
    assert config.env_arguments["observation_filter"] == ObservationFilterSpec("legendre", 2, 6.0)
    agent = Reflect("CartPole-v1", config, seed=0)
    assert agent.env.single_observation_space.shape == (12,)
    agent.learn(200)
    agent.save(tmp_path / "agent")
    payload = torch.load(tmp_path / "agent.pt", weights_only=True)
    env = make_single_env("CartPole-v1", **saved_env_arguments(payload))
    assert env.observation_space.shape == (12,)  # what evaluate, plot and run build
    reloaded = Reflect.load(tmp_path / "agent")
    assert reloaded.env.single_observation_space.shape == (12,)


def test_an_env_instance_is_filtered_too_and_a_vector_env_is_refused() -> None:
    config = load_reflect_config("CartPole-v1", overrides=["observation_filter.kind=exponential",
                                                           "observation_filter.order=2"])
    agent = Reflect(gym.make("CartPole-v1"), config, seed=0)
    assert agent.env.single_observation_space.shape == (12,)
    with pytest.raises(EnvSetupError, match="ObservationFilterBank"):
        Reflect(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync",
                             vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}),
                config, seed=0)
    assert make_env("CartPole-v1", num_envs=2).single_observation_space.shape == (4,)  # off by default


def test_repeat_previous_is_learned_with_the_legendre_bank_and_not_without() -> None:
    """RepeatPrevious (name the suit of the card dealt 3 steps before the one showing): a read-out of a
    window of past inputs. The memoryless defaults stay near chance (-0.5); the Legendre bank learns it."""
    pytest.importorskip("popgym")
    env_id = "popgym-RepeatPreviousEasy-v0"
    results = {}
    for kind in ("legendre", "none"):
        config = load_reflect_config(env_id, overrides=[f"observation_filter.kind={kind}"])
        agent = Reflect(env_id, config, seed=0).learn(12_000)
        env = make_single_env(env_id, **config.env_arguments)
        results[kind] = run_episodes(agent.policy(), env, 10, EVAL_SEED_OFFSET).mean_return
    assert results["legendre"] >= 0.3, results
    assert results["none"] <= -0.2, results


def test_export_refuses_a_filtered_policy_with_a_clear_error() -> None:
    from reflect.export.module import ExportError, build_policy_module

    config = load_reflect_config("CartPole-v1", overrides=["observation_filter.kind=legendre"])
    with pytest.raises(ExportError, match="reflect run"):
        build_policy_module(Reflect("CartPole-v1", config, seed=0))
    build_policy_module(Reflect("CartPole-v1", seed=0))  # the control: no filter, exported
