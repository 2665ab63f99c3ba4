"""Memory is learned: the tuned memory configs beat chance on tasks only memory solves, and the same
agent without its memory does not."""

from __future__ import annotations

import pytest

from reflect.agents import Reflect
from reflect.agents.config import load_reflect_config
from reflect.envs import make_single_env
from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes

TASK = "reflect/EvidenceAccumulation-v0"  # the return is 1 for a correct choice: its mean is the accuracy


def accuracy_after(steps: int, overrides: list[str], seed: int = 0) -> float:
    config = load_reflect_config(TASK, overrides=["network.hidden=[32]", *overrides])
    agent = Reflect(TASK, config, seed=seed).learn(steps)
    return run_episodes(agent.policy(), make_single_env(TASK), 200, seed + EVAL_SEED_OFFSET).mean_return


def test_evidence_is_accumulated_over_a_delay_in_seconds() -> None:
    """CUBA's synaptic current sums the clicks and holds the sum through the 20-step delay."""
    assert accuracy_after(12_000, []) >= 0.85


def test_without_memory_the_choice_stays_at_chance() -> None:
    """Negative control: the same neurons without the synaptic filter (alpha 0, so nothing of the clicks
    is left at the decision step)."""
    assert accuracy_after(12_000, ["network.neuron_params={alpha: 0.0}"]) <= 0.65


@pytest.mark.slow
def test_position_only_cartpole_is_balanced_from_positions_alone() -> None:
    """Velocities inferred by ALIF adaptation: 95% of the maximum return within 100k steps (seed 0)."""
    pytest.importorskip("popgym")
    env_id = "popgym-PositionOnlyCartPoleEasy-v0"
    agent, env, best = Reflect(env_id, seed=0), make_single_env(env_id), 0.0
    while agent.num_timesteps < 100_000 and best < 0.95:
        agent.learn(10_000)
        best = max(best, run_episodes(agent.policy(), env, 20, EVAL_SEED_OFFSET).mean_return)
    assert best >= 0.95
