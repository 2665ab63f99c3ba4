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
