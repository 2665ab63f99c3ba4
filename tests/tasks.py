"""Tiny environments for learning tests that finish in seconds."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class DelayedMatchEnv(gym.Env):
    """Match a cue, rewarded only ``delay`` steps later.

    Step 0 shows a one-hot cue ``[c == 0, c == 1, 0]``; the action then taken is the only one that
    matters. ``delay`` blank steps (``[0, 0, 1]``, actions ignored) follow, and the last one pays 1 if
    the first action matched the cue, else 0, and terminates. Nothing observed after step 0 reveals the
    first action, so (with a memoryless network, beta = 0) only a log-prob trace (lambda > 0) can carry
    the late reward back to it.
    """

    def __init__(self, delay: int = 2) -> None:
        self.delay = delay
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.cue, self.first_action, self.t = 0, 0, 0

    def _obs(self) -> np.ndarray:
        out = np.zeros(3, dtype=np.float32)
        out[self.cue if self.t == 0 else 2] = 1.0
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.t == 0:
            self.first_action = int(action)
        self.t += 1
        done = self.t > self.delay
        reward = float(self.first_action == self.cue) if done else 0.0
        return self._obs(), reward, done, False, {}


class NaNObservationEnv(DelayedMatchEnv):
    """Like DelayedMatchEnv, but the observation after the third step is NaN."""

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        _, reward, terminated, truncated, info = super().step(action)
        return np.full(3, np.nan, dtype=np.float32), reward, terminated, truncated, info


class ContinuousCueEnv(gym.Env):
    """One-step continuous control: observe a cue ``c`` in ``{-1, +1}``, act ``a`` in ``[low, high]^2``.

    The reward is ``-||a - target(c)||^2`` with ``target(c) = (0.5 c, -0.25 c)`` scaled into the bounds,
    and the episode terminates. A policy that ignores the cue earns about ``-0.3`` at best; one that
    follows it earns close to 0.
    """

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(low, high, (2,), np.float32)
        center, half = (high + low) / 2.0, (high - low) / 2.0
        self.targets = {c: center + half * np.array([0.5 * c, -0.25 * c]) for c in (-1, 1)}
        self.cue = 1

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cue = 1 if self.np_random.random() < 0.5 else -1
        return np.array([self.cue], dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not self.action_space.contains(action.astype(np.float32)):
            raise ValueError(f"action {action} is outside {self.action_space}")
        half = (self.action_space.high - self.action_space.low) / 2.0
        reward = -float((((action - self.targets[self.cue]) / half) ** 2).sum())
        return np.array([self.cue], dtype=np.float32), reward, True, False, {}


class NaNRewardEnv(DelayedMatchEnv):
    """Like DelayedMatchEnv, but every reward from this instance's ``nan_after``-th step on is NaN."""

    def __init__(self, delay: int = 2, nan_after: int = 500, render_mode: str | None = None) -> None:
        super().__init__(delay)
        self.nan_after, self.steps, self.render_mode = nan_after, 0, render_mode

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        self.steps += 1
        return obs, (float("nan") if self.steps >= self.nan_after else reward), terminated, truncated, info
