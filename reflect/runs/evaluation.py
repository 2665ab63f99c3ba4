"""Evaluation on a separate environment: frozen weights, deterministic actions, fixed episode seeds.

Episode ``k`` of every evaluation starts from ``env.reset(seed=seed + k)``, so successive evaluations
of a learning agent see the same start states and differ only by the weights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from reflect.agents.frozen_policy import FrozenPolicy

EVAL_SEED_OFFSET = 10_000  # evaluation episodes never share seeds with the training streams


class EvaluationResult(NamedTuple):
    """Returns and lengths of the evaluated episodes."""

    returns: list[float]
    lengths: list[int]

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths))


def run_episodes(
    policy: FrozenPolicy,
    env: Any,
    episodes: int,
    seed: int,
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
    on_step: Any = None,
) -> EvaluationResult:
    """Run ``episodes`` episodes of a single (non-vector) Gymnasium ``env`` with ``policy``.

    ``on_step(policy)`` is called after every action (e.g. to record spikes); ``max_steps`` caps each
    episode (the episode then counts as ended there).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    returns: list[float] = []
    lengths: list[int] = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        policy.reset()
        total, length, done = 0.0, 0, False
        while not done:
            action = policy.act(obs, deterministic)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            if on_step is not None:
                on_step(policy)
            done = bool(terminated or truncated) or (max_steps is not None and length >= max_steps)
        returns.append(total)
        lengths.append(length)
    return EvaluationResult(returns, lengths)
