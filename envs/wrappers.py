"""Gymnasium vector wrappers that stream :class:`ObservationNormalizer` and :class:`RewardScaler`.

Both expect same-step autoreset (as StreamVectorEnv does): under next-step autoreset the reset step's
zero reward would enter the reward statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from reflect.envs.errors import UnsupportedSpaceError
from reflect.envs.normalization import ObservationNormalizer, RewardScaler

__all__ = ["NormalizeObservationStream", "ScaleRewardStream"]

StepResult = tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


class NormalizeObservationStream(VectorWrapper):
    """Normalise observations ``[N, *shape]`` to float32 with running statistics (owned at ``.normalizer``).

    Each new batch of observations (from ``reset`` and ``step``) updates the statistics and is then
    normalised; set ``.update = False`` to freeze them. Rows of ``info["final_obs"]`` that are marked
    in ``info["_final_obs"]`` are normalised with the statistics as they are after the step, without
    updating them.
    """

    def __init__(self, env: VectorEnv, clip: float = 5.0, epsilon: float = 1e-8, update: bool = True) -> None:
        super().__init__(env)
        space = env.single_observation_space
        if not isinstance(space, spaces.Box):
            raise UnsupportedSpaceError(
                f"NormalizeObservationStream needs a Box observation space, got {space!r}: encode the "
                "observations with reflect.envs.encode_observations(env) (make_single_env does this "
                "for env ids)"
            )
        self.normalizer = ObservationNormalizer(space.shape, clip=clip, epsilon=epsilon)
        self.update = update
        self.single_observation_space = spaces.Box(-clip, clip, space.shape, np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset and return normalised observations ``[N, *shape]``."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self.normalizer(obs, update=self.update), info

    def step(self, actions: Any) -> StepResult:
        """Step and return normalised observations (and ``final_obs`` rows)."""
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        obs = self.normalizer(obs, update=self.update)
        if "final_obs" in info:
            info = {**info, "final_obs": self._normalize_final(info["final_obs"], info.get("_final_obs"))}
        return obs, rewards, terminated, truncated, info

    def _normalize_final(self, final_obs: Any, mask: Any) -> np.ndarray:
        rows = np.flatnonzero(np.ones(self.num_envs, dtype=np.bool_) if mask is None else np.asarray(mask))
        if isinstance(final_obs, np.ndarray) and final_obs.dtype != object:
            # [N, *shape] array (StreamVectorEnv): rows outside the mask stay zero.
            out = np.zeros(final_obs.shape, dtype=np.float32)
            if rows.size:
                out[rows] = self.normalizer(final_obs[rows], update=False)
            return out
        # Object array of per-stream observations, None where no episode ended (SyncVectorEnv).
        out_objects = np.full(self.num_envs, None, dtype=object)
        if rows.size:
            normalized = self.normalizer(np.stack([final_obs[i] for i in rows]), update=False)
            for k, i in enumerate(rows):
                out_objects[i] = normalized[k]
        return out_objects


class ScaleRewardStream(VectorWrapper):
    """Scale rewards by the running std of each stream's discounted return (owned at ``.scaler``).

    ``reset`` zeroes the discounted returns; set ``.update = False`` to freeze the statistics.
    """

    def __init__(self, env: VectorEnv, gamma: float, epsilon: float = 1e-8, update: bool = True) -> None:
        super().__init__(env)
        self.scaler = RewardScaler(self.num_envs, gamma, epsilon=epsilon)
        self.update = update

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the environment and the streams' discounted returns."""
        self.scaler.reset()
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> StepResult:
        """Step and return scaled float64 rewards ``[N]``."""
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        scaled = self.scaler.scale(rewards, terminated, truncated, update=self.update)
        return obs, scaled, terminated, truncated, info
