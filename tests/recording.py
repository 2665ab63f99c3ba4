"""Recorded episodes of an agent's deterministic policy, for the export and NIR parity tests.

``record`` runs the agent's own frozen policy (the engine path) through whole episodes and keeps, per
step, the observation, whether an episode begins there, the action and the engine's network state
flattened in the export layout (every layer's state tensors, then a leaky readout's membrane).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from reflect.agents import Reflect


@dataclass
class Recording:
    agent: Reflect
    obs: np.ndarray          # [T, obs_dim] float32
    starts: np.ndarray       # [T] bool: an episode begins at this step
    actions: np.ndarray      # [T] or [T, A]: agent.policy().act, deterministic
    states: np.ndarray       # [T, state_size]: the engine's state after each step, in the export layout
    predicted: np.ndarray    # agent.predict's actions over the first ``predict_steps`` steps


def flat_state(network_state: Any, leaky: bool) -> np.ndarray:
    """The engine's network state of stream 0 as one row ``[state_size]``."""
    parts = [t for layer in network_state.layers for t in layer]
    if leaky:
        parts.append(network_state.readout)
    return torch.cat(parts, dim=1)[0].numpy().copy()


def record(agent: Reflect, env_id: str, steps: int, seed: int = 11, predict_steps: int = 0) -> Recording:
    """``steps`` steps of episodes run by the agent's deterministic policy; over the first
    ``predict_steps`` also ``agent.predict`` (eager PyTorch, slower), with its own state."""
    env = gym.make(env_id)
    policy = agent.policy()
    leaky = agent.actor.readout.decay > 0.0
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list[Any]] = {"obs": [], "starts": [], "actions": [], "states": [], "predicted": []}
    start, predict_state = True, None
    for _ in range(steps):
        if start:
            policy.reset()
        action = np.array(policy.act(obs[None], deterministic=True), copy=True)[0]
        if len(rows["predicted"]) < predict_steps:
            predicted, predict_state = agent.predict(obs, predict_state, episode_start=np.array([start]),
                                                     deterministic=True)
            rows["predicted"].append(np.asarray(predicted))
        rows["obs"].append(np.asarray(obs, dtype=np.float32))
        rows["starts"].append(start)
        rows["actions"].append(action)
        rows["states"].append(flat_state(policy.engine.network_state(), leaky))
        obs, _, terminated, truncated, _ = env.step(action if agent.continuous else int(action))
        start = bool(terminated or truncated)
        if start:
            obs, _ = env.reset()
    env.close()
    return Recording(agent, *(np.array(rows[k]) for k in ("obs", "starts", "actions", "states", "predicted")))
