"""The Reflect agent: learning a delayed reward, determinism, exact resume, the step and SB3 APIs."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tasks import DelayedMatchEnv, NaNObservationEnv

from reflect.agents import Reflect
from reflect.agents.config import load_reflect_config
from reflect.envs import UnsupportedSpaceError

SMALL = {"network": {"hidden": [32]}, "train": {"total_steps": 1000}}
TASK = {
    "network": {"hidden": [32], "beta": 0.0},
    "learner": {"gamma": 0.99, "lam": 0.9, "actor_kappa": 2.0, "entropy_coef": 0.0},
    "normalize": {"observations": False, "rewards": False},
}


def _task_agent(lam: float, seed: int = 0) -> Reflect:
    config = {**TASK, "learner": {**TASK["learner"], "lam": lam}}
    return Reflect(DelayedMatchEnv(delay=2), config, seed=seed)


def _greedy_first_actions(agent: Reflect) -> list[int]:
    actions = []
    for cue in (0, 1):
        cue_obs = np.zeros(3, dtype=np.float32)
        cue_obs[cue] = 1.0
        action, _ = agent.predict(cue_obs, deterministic=True)
        actions.append(int(action))
    return actions


def test_delayed_reward_is_learned_through_the_log_prob_trace() -> None:
    agent = _task_agent(lam=0.9).learn(6_000)
    recent = [r for r, _ in agent.ep_info_buffer]
    assert np.mean(recent) >= 0.8, recent
    assert _greedy_first_actions(agent) == [0, 1]


def test_without_the_trace_the_delayed_reward_is_not_learned() -> None:
    """Negative control: lambda = 0 cannot carry a reward two steps back to the deciding action."""
    agent = _task_agent(lam=0.0).learn(6_000)
    assert np.mean([r for r, _ in agent.ep_info_buffer]) < 0.7


def _actor_params(agent: Reflect) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.actor.parameters()]


def test_same_seed_same_result_and_another_seed_differs() -> None:
    a = Reflect("CartPole-v1", SMALL, seed=3).learn(1_500)
    b = Reflect("CartPole-v1", SMALL, seed=3).learn(1_500)
    c = Reflect("CartPole-v1", SMALL, seed=4).learn(1_500)
    assert all(torch.equal(p, q) for p, q in zip(_actor_params(a), _actor_params(b), strict=True))
    assert list(a.ep_info_buffer) == list(b.ep_info_buffer)
    assert not all(torch.equal(p, q) for p, q in zip(_actor_params(a), _actor_params(c), strict=True))


@pytest.mark.parametrize("streams", [1, 2])
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path: Path, streams: int) -> None:
    config = {**SMALL, "train": {"num_envs": streams}}
    whole = Reflect("CartPole-v1", config, seed=5).learn(2_000)
    first = Reflect("CartPole-v1", config, seed=5).learn(1_000)
    path = first.save(tmp_path / "half.pt")
    payload = torch.load(path, weights_only=True)  # plain tensors and types only
    assert payload["num_timesteps"] == 1_000 and payload["env_state"] is not None
    resumed = Reflect.load(path).learn(1_000)
    assert resumed.num_timesteps == whole.num_timesteps == 2_000
    assert list(resumed.ep_info_buffer) == list(whole.ep_info_buffer)
    assert all(torch.equal(p, q) for p, q in zip(_actor_params(whole), _actor_params(resumed), strict=True))
    assert whole.critic is not None and resumed.critic is not None
    for p, q in zip(whole.critic.parameters(), resumed.critic.parameters(), strict=True):
        assert torch.equal(p, q)


def test_step_api_with_a_user_owned_env() -> None:
    env = gym.make("CartPole-v1")
    agent = Reflect(env, SMALL, seed=0)
    obs, _ = env.reset(seed=0)
    episodes = 0
    for _ in range(300):
        action = agent.act(obs)
        assert isinstance(action, int)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        delta = agent.observe(reward, terminated, truncated, next_obs)
        assert delta.shape == (1,) and np.isfinite(delta).all()
        if terminated or truncated:
            episodes += 1
            next_obs, _ = env.reset()
        obs = next_obs
    assert episodes >= 3


def test_predict_is_stateful_and_does_not_learn() -> None:
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    before = _actor_params(agent)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=1)
    policy = agent.policy()
    policy.reset()
    state = None
    for _ in range(20):
        action, state = agent.predict(obs, state=state, deterministic=True)
        assert action == int(policy.act(obs)[0])
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert all(torch.equal(p, q) for p, q in zip(before, _actor_params(agent), strict=True))
    batch, _ = agent.predict(np.zeros((3, 4)), deterministic=True)
    assert batch.shape == (3,)


def test_vector_streams_learn_with_per_stream_traces() -> None:
    agent = Reflect("CartPole-v1", {**SMALL, "train": {"num_envs": 3}}, seed=0).learn(900)
    assert agent.num_envs == 3 and agent.num_timesteps == 900
    assert agent.learner.actor.z.shape[0] == 3
    assert len(agent.ep_info_buffer) > 0


def test_nan_observation_is_a_clear_error() -> None:
    agent = Reflect(NaNObservationEnv(), TASK, seed=0)
    with pytest.raises(FloatingPointError, match=r"observation has NaN or inf in dimensions \[0, 1, 2\]"):
        agent.learn(10)


class _MultiDiscreteEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.MultiDiscrete([2, 3])


def test_unsupported_spaces_name_what_is_supported() -> None:
    with pytest.raises(UnsupportedSpaceError, match="Discrete or Box"):
        Reflect(_MultiDiscreteEnv(), SMALL)
    with pytest.raises(UnsupportedSpaceError, match="1-D Box"):
        Reflect(gym.make("FrozenLake-v1"), SMALL)  # an env object is not encoded; an env id would be


def test_bad_config_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"learner\.gama"):
        Reflect("CartPole-v1", {"learner": {"gama": 0.9}})


def test_learning_continues_after_an_interrupted_step() -> None:
    """An exception between act and observe (e.g. Ctrl-C) leaves an agent that can learn on."""
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    original_step = agent.env.step
    calls = {"n": 0}

    def flaky_step(actions: np.ndarray) -> tuple:
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt
        return original_step(actions)

    agent.env.step = flaky_step  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        agent.learn(100)
    assert not agent.learner.awaiting_observe
    agent.learn(100)
    assert agent.num_timesteps == 129


def test_save_refuses_a_state_with_nan_and_keeps_the_old_file(tmp_path: Path) -> None:
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    path = agent.save(tmp_path / "agent")
    before = path.read_bytes()
    with torch.no_grad():
        next(agent.actor.parameters())[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"actor\..*NaN or inf"):
        agent.save(path)
    assert path.read_bytes() == before


def test_spread_gives_each_neuron_its_own_constant_from_the_config() -> None:
    config = load_reflect_config("CartPole-v1", overrides=["network.spread={beta: [0.0, 0.9]}",
                                                           "network.hidden=[10]"])
    agent = Reflect("CartPole-v1", config, seed=0)
    for net in (agent.actor, agent.critic):
        torch.testing.assert_close(net.layers[0].beta, torch.linspace(0.0, 0.9, 10))
    agent.learn(200)  # learns through per-neuron constants on the default backend
    with pytest.raises(ValueError, match=r"spread: lif constant beta .* got \[0.5, 1.5\]"):
        load_reflect_config("CartPole-v1", overrides=["network.spread={beta: [0.5, 1.5]}"])
