"""A light synchronous vector environment of ``N`` single environments, for streaming learners.

Each of the ``N`` streams is one Gymnasium environment stepped in turn. Compared with
``SyncVectorEnv`` + ``RecordEpisodeStatistics`` it does less per step (no space iteration or
concatenation, no deep copies, episode statistics kept in place) and it can snapshot and restore
the exact state of its streams, so an online learner's checkpoint resumes exactly.

Autoreset is ``SAME_STEP``: a stream whose episode ends is reset inside the same ``step``; its row of
the returned observations is the first observation of the new episode, and ``info`` holds:

- ``final_obs``: ``[N, obs_dim]`` last observations of the ended episodes (rows where
  ``info["_final_obs"]`` is True; other rows are zero), ``_final_obs``: bool ``[N]``;
- ``final_info``: the ended episodes' step infos, batched as Gymnasium batches infos (each key an
  ``[N]`` array with a ``_key`` mask), ``_final_info``: bool ``[N]``;
- ``episode``: ``{"r": float64 [N], "l": int64 [N], "t": float64 [N]}`` undiscounted raw return, length
  in steps and seconds since the episode's reset (zeros where no episode ended), ``_episode``: bool ``[N]``.

Other info keys are the streams' step infos (or, for a stream that was reset, its reset info), batched
the same way; on most steps of most environments ``info`` is empty. Every array returned is fresh:
the caller may keep it across steps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.core import RenderFrame
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from reflect.envs.errors import EnvSetupError
from reflect.envs.snapshot import capture_env_state, restore_env_state, supports_exact_snapshot
from reflect.envs.spaces import check_observation_space

__all__ = ["StreamVectorEnv"]

SNAPSHOT_FORMAT = 1


class StreamVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``N`` single environments stepped in turn, with same-step autoreset and episode statistics.

    ``envs``: distinct environments with equal observation spaces (a 1-D ``Box``) and equal action spaces.
    ``seed``: if given, kept as ``initial_seed``: the first :meth:`reset`, if called without a seed, seeds
    stream ``i`` with ``seed + i``.
    """

    def __init__(self, envs: Sequence[gym.Env], seed: int | None = None) -> None:
        envs = list(envs)
        if not envs:
            raise EnvSetupError("StreamVectorEnv needs at least one environment: pass a non-empty list")
        if len({id(env) for env in envs}) != len(envs):
            raise EnvSetupError("StreamVectorEnv got the same environment object twice: build one per stream")
        first = envs[0]
        self.obs_dim = check_observation_space(first.observation_space)
        for index, env in enumerate(envs[1:], start=1):
            if env.observation_space != first.observation_space or env.action_space != first.action_space:
                raise EnvSetupError(
                    f"environment {index} has spaces {env.observation_space}, {env.action_space} but "
                    f"environment 0 has {first.observation_space}, {first.action_space}: give every stream "
                    "the same spaces"
                )
        self.envs = envs
        self.num_envs = len(envs)
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, self.num_envs)
        self.action_space = batch_space(first.action_space, self.num_envs)
        self._discrete_actions = isinstance(first.action_space, spaces.Discrete)
        self.metadata = {**first.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = first.render_mode
        self.spec = first.spec
        self.initial_seed = seed
        self._initial_seed_pending = seed is not None

        n = self.num_envs
        self._observations = np.zeros((n, self.obs_dim), dtype=first.observation_space.dtype)
        self._rewards = np.zeros(n, dtype=np.float64)
        self._terminated = np.zeros(n, dtype=np.bool_)
        self._truncated = np.zeros(n, dtype=np.bool_)
        self.episode_returns = np.zeros(n, dtype=np.float64)
        self.episode_lengths = np.zeros(n, dtype=np.int64)
        self._episode_starts = np.zeros(n, dtype=np.float64)
        self._needs_reset = True

    @classmethod
    def from_envs(cls, envs: Sequence[gym.Env], seed: int | None = None) -> StreamVectorEnv:
        """Build from already made environments (no factory callables needed)."""
        return cls(envs, seed=seed)

    @property
    def observations(self) -> np.ndarray:
        """Copy of the current observations ``[N, obs_dim]`` (e.g. to resume a loop after :meth:`restore`)."""
        return self._observations.copy()

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None and self._initial_seed_pending:
            seed = self.initial_seed
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int | np.integer):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} streams: pass one per stream")
        return seeds

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every stream: ``(obs [N, obs_dim], info)``. An int seed gives stream ``i`` ``seed + i``."""
        if options is not None and "reset_mask" in options:
            raise ValueError("StreamVectorEnv does not take options['reset_mask']: streams reset themselves")
        seeds = self._seeds(seed)
        self._initial_seed_pending = False
        info: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs, env_info = env.reset(seed=seeds[i], options=options)
            self._observations[i] = obs
            if env_info:
                info = self._add_info(info, env_info, i)
        self._rewards[:] = 0.0
        self._terminated[:] = False
        self._truncated[:] = False
        self.episode_returns[:] = 0.0
        self.episode_lengths[:] = 0
        self._episode_starts[:] = time.perf_counter()
        self._needs_reset = False
        return self._observations.copy(), info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every stream with ``actions`` ``[N, ...]``.

        Returns ``(obs [N, obs_dim], rewards float64 [N], terminated bool [N], truncated bool [N], info)``.
        """
        if self._needs_reset:
            raise EnvSetupError("StreamVectorEnv.step was called before reset: call reset() first")
        if len(actions) != self.num_envs:
            raise ValueError(f"step got {len(actions)} actions for {self.num_envs} streams: pass one each")
        if self._discrete_actions:
            # Python ints: Discrete.contains checks them several times faster than numpy integers.
            actions = np.asarray(actions).tolist()
        observations, rewards = self._observations, self._rewards
        terminated, truncated = self._terminated, self._truncated
        returns, lengths = self.episode_returns, self.episode_lengths
        info: dict[str, Any] = {}
        ended: list[tuple[int, Any, dict[str, Any]]] | None = None
        # Element-wise updates: for the few streams of online learning they cost less than whole-array ufuncs.
        for i, env in enumerate(self.envs):
            obs, reward, term, trunc, env_info = env.step(actions[i])
            rewards[i] = reward
            terminated[i] = term
            truncated[i] = trunc
            returns[i] += reward
            lengths[i] += 1
            if term or trunc:
                if ended is None:
                    ended = []
                ended.append((i, obs, env_info))
                obs, env_info = env.reset()
            observations[i] = obs
            if env_info:
                info = self._add_info(info, env_info, i)
        if ended is not None:
            self._record_endings(info, ended)
        return observations.copy(), rewards.copy(), terminated.copy(), truncated.copy(), info

    def _record_endings(self, info: dict[str, Any], ended: list[tuple[int, Any, dict[str, Any]]]) -> None:
        n = self.num_envs
        now = time.perf_counter()
        final_obs = np.zeros_like(self._observations)
        mask = np.zeros(n, dtype=np.bool_)
        returns = np.zeros(n, dtype=np.float64)
        lengths = np.zeros(n, dtype=np.int64)
        seconds = np.zeros(n, dtype=np.float64)
        final_info: dict[str, Any] = {}
        for i, obs, env_info in ended:
            final_obs[i] = obs
            mask[i] = True
            returns[i] = self.episode_returns[i]
            lengths[i] = self.episode_lengths[i]
            seconds[i] = round(now - self._episode_starts[i], 6)
            final_info = self._add_info(final_info, env_info, i)
            self.episode_returns[i] = 0.0
            self.episode_lengths[i] = 0
            self._episode_starts[i] = now
        info["final_obs"], info["_final_obs"] = final_obs, mask
        info["final_info"], info["_final_info"] = final_info, mask.copy()
        info["episode"] = {"r": returns, "l": lengths, "t": seconds}
        info["_episode"] = mask.copy()

    def render(self) -> tuple[RenderFrame, ...] | None:
        """Frames of every stream, as ``SyncVectorEnv`` returns them."""
        return tuple(env.render() for env in self.envs)  # type: ignore[misc]

    def close_extras(self, **kwargs: Any) -> None:
        """Close every stream."""
        for env in self.envs:
            env.close()

    def env_ids(self) -> list[str | None]:
        """The registered id of each stream (None for an environment made without a spec)."""
        return [None if env.spec is None else env.spec.id for env in self.envs]

    def supports_exact_snapshot(self) -> bool:
        """Whether :meth:`snapshot` captures each stream's whole state (rule: ``supports_exact_snapshot``)."""
        return all(supports_exact_snapshot(env) for env in self.envs)

    def snapshot(self) -> dict[str, Any]:
        """Exact state of all streams as plain values and tensors (``torch.load(weights_only=True)`` safe)."""
        now = time.perf_counter()
        return {
            "format": SNAPSHOT_FORMAT,
            "num_envs": self.num_envs,
            "env_ids": self.env_ids(),
            "streams": [capture_env_state(env) for env in self.envs],
            "observations": torch.from_numpy(self._observations.copy()),
            "episode_returns": torch.from_numpy(self.episode_returns.copy()),
            "episode_lengths": torch.from_numpy(self.episode_lengths.copy()),
            "episode_seconds": [float(now - start) for start in self._episode_starts],
            "needs_reset": self._needs_reset,
            "initial_seed": self.initial_seed,
            "initial_seed_pending": self._initial_seed_pending,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Put every stream back in the state of ``snapshot`` (raises EnvSetupError if it does not match)."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise EnvSetupError(
                f"snapshot format {snapshot.get('format')!r} is not {SNAPSHOT_FORMAT}: pass a dict made by "
                "StreamVectorEnv.snapshot()"
            )
        if snapshot["num_envs"] != self.num_envs:
            raise EnvSetupError(
                f"snapshot has {snapshot['num_envs']} streams but this StreamVectorEnv has {self.num_envs}: "
                "restore into one made with the same num_envs"
            )
        if snapshot["env_ids"] != self.env_ids():
            raise EnvSetupError(
                f"snapshot is of environments {snapshot['env_ids']} but this StreamVectorEnv runs "
                f"{self.env_ids()}: restore into one made with the same environment id"
            )
        observations = snapshot["observations"].numpy()
        if observations.shape != self._observations.shape:
            raise EnvSetupError(
                f"snapshot observations have shape {tuple(observations.shape)} but this StreamVectorEnv's "
                f"have {self._observations.shape}: restore into one made the same way"
            )
        for env, state in zip(self.envs, snapshot["streams"], strict=True):
            restore_env_state(env, state)
        self._observations[:] = observations
        self.episode_returns[:] = snapshot["episode_returns"].numpy()
        self.episode_lengths[:] = snapshot["episode_lengths"].numpy()
        seconds = np.asarray(snapshot["episode_seconds"], dtype=np.float64)
        self._episode_starts[:] = time.perf_counter() - seconds
        self._needs_reset = bool(snapshot["needs_reset"])
        self.initial_seed = snapshot["initial_seed"]
        self._initial_seed_pending = bool(snapshot["initial_seed_pending"])
