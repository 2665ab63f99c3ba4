"""Checkpoints written by reflect 0.1.0 keep loading, act as they did, and keep learning.

The fixtures in ``tests/data/v0_1`` (see its README) were written by reflect 0.1.0, whose engine saved
its buffers in another layout and whose ALIF layers kept ``rho`` and ``beta_a`` per layer. Loading maps
them onto the current layout; the restored frozen policy must then take the recorded actions on the
recorded observations, with readouts equal to float32 rounding (the arithmetic order changed).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from reflect import __version__
from reflect.agents import Reflect
from reflect.checkpoints import load_checkpoint

DATA = Path(__file__).parent / "data" / "v0_1"
FIXTURES = {
    "cartpole_default": "CartPole-v1",
    "pendulum_default": "Pendulum-v1",
    "cartpole_alif_recurrent": "CartPole-v1",
    "cartpole_drtrl_baseline": "CartPole-v1",
}


@pytest.mark.parametrize("stem", FIXTURES)
def test_a_v0_1_checkpoint_loads_acts_as_recorded_and_keeps_learning(stem: str) -> None:
    path = DATA / f"{stem}.pt"
    assert torch.load(path, weights_only=True)["version"] == "0.1.0"
    agent = Reflect.load(path)
    expected = np.load(DATA / "expected_actions.npz")
    observations, actions = expected[f"{stem}__obs"], expected[f"{stem}__actions"]
    outputs = expected[f"{stem}__outputs"]
    policy = agent.policy()
    policy.reset()
    for step, obs in enumerate(observations):
        readout = policy.outputs(obs[None])[0].numpy()
        np.testing.assert_allclose(readout, outputs[step], rtol=1e-4, atol=1e-5, err_msg=f"step {step}")
        action = policy.head.to_env(policy.head.sample(readout[None], True))[0]
        expected_action = np.asarray(actions[step], dtype=np.float64)
        np.testing.assert_allclose(np.asarray(action, dtype=np.float64), expected_action, atol=1e-5,
                                   err_msg=f"step {step}")
        if step + 1 < len(observations) and _episode_restarted(observations, step, FIXTURES[stem]):
            policy.reset()
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.learn(200)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters(), strict=True))


def _episode_restarted(observations: np.ndarray, step: int, env_id: str) -> bool:
    """Whether the recording reset the environment after ``step`` (the next observation is a fresh
    reset: CartPole starts within 0.05 of zero; Pendulum episodes last 200 steps, longer than 50)."""
    if env_id != "CartPole-v1":
        return False
    following = observations[step + 1]
    current = observations[step]
    return bool(np.abs(following).max() <= 0.05 and np.abs(following - current).max() > 0.1)


def test_a_checkpoint_from_a_newer_reflect_is_refused_by_name(tmp_path: Path) -> None:
    payload = load_checkpoint(DATA / "cartpole_default.pt")
    payload["version"] = "9.0.0"
    path = tmp_path / "future.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match=rf"written by reflect 9.0.0, newer than this reflect {__version__}"):
        Reflect.load(path)


def test_the_restored_environment_continues_the_saved_episode() -> None:
    """The checkpoint's environment snapshot is restored, so learning resumes mid-episode."""
    agent = Reflect.load(DATA / "cartpole_default.pt")
    assert agent._last_obs is not None
    env = gym.make("CartPole-v1")
    assert agent._last_obs.shape == env.observation_space.shape or agent._last_obs.shape[1:] == (4,)
