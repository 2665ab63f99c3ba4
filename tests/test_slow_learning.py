"""Long learning checks (marked slow; run with ``pytest -m slow``): the tuned configs solve their envs."""

from __future__ import annotations

import pytest

from reflect.agents import Reflect
from reflect.envs import make_single_env
from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes


def best_evaluation(env_id: str, seed: int, steps: int, every: int = 5_000) -> float:
    agent = Reflect(env_id, seed=seed)
    env = make_single_env(env_id)
    best = float("-inf")
    while agent.num_timesteps < steps:
        agent.learn(every)
        best = max(best, run_episodes(agent.policy(), env, 20, seed + EVAL_SEED_OFFSET).mean_return)
    return best


@pytest.mark.slow
def test_cartpole_is_solved_within_100k_steps() -> None:
    assert best_evaluation("CartPole-v1", seed=0, steps=100_000) >= 475.0


@pytest.mark.slow
def test_acrobot_reaches_minus_100_within_100k_steps() -> None:
    assert best_evaluation("Acrobot-v1", seed=1, steps=100_000) >= -100.0
