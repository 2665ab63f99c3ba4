"""The step API of :class:`~reflect.agents.Reflect`: a control loop owns the environment.

::

    action = agent.act(obs)                                   # one stream: obs [obs_dim] -> action
    agent.observe(reward, terminated, truncated, next_obs)    # one online update
    agent.freeze(); agent.unfreeze(); agent.reset_state()

The learner normalises observations and learns (see :class:`reflect.learning.Learner`); the agent
shapes the data, scales rewards and refuses what it cannot use with an error that names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reflect.envs import ObservationNormalizer, RewardScaler
from reflect.learning import Learner

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def one_value(value: Any, kind: type, name: str) -> Any:
    """``value`` (a number, a 0-d array or an array of one element) as a plain ``float``/``bool``."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{name} must hold one value for one stream, got shape {value.shape}")
        return kind(value.item())
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise ValueError(f"{name} must hold one value for one stream, got {len(value)}")
        return kind(value[0])
    return kind(value)


class StepAPI:
    """``act`` / ``observe`` / ``freeze`` for a caller that owns the environment (mixed into Reflect)."""

    learner: Learner
    num_envs: int
    obs_dim: int
    continuous: bool
    obs_normalizer: ObservationNormalizer | None
    reward_scaler: RewardScaler | None
    num_timesteps: int
    _delta: np.ndarray

    def _stream_obs(self, obs: Any) -> tuple[np.ndarray, bool]:
        # float32/float64 arrays pass as they are (every consumer reads both); others become float64
        array = obs if isinstance(obs, np.ndarray) and obs.dtype in _FLOAT_DTYPES else np.asarray(
            obs, dtype=np.float64
        )
        single = array.ndim == 1
        array = array.reshape(-1, self.obs_dim) if single else array
        if array.shape != (self.num_envs, self.obs_dim):
            raise ValueError(
                f"expected observations of shape {(self.num_envs, self.obs_dim)} "
                f"(or {(self.obs_dim,)} for one stream), got {np.shape(obs)}"
            )
        return array, single

    def normalize_observation(self, obs: np.ndarray) -> np.ndarray:
        """Raw observations ``[B, obs_dim]`` -> network inputs, statistics unchanged."""
        array = np.asarray(obs, dtype=np.float64).reshape(-1, self.obs_dim)
        if self.obs_normalizer is None:
            from reflect.learning.errors import check_finite

            check_finite(array, "observation")
            return array
        return self.obs_normalizer(array, update=False)

    def act(self, obs: Any) -> Any:
        """The action for ``obs`` (``[obs_dim]`` for one stream, ``[N, obs_dim]`` for N), learned from at
        the next :meth:`observe`. Observation statistics are updated with ``obs`` (unless frozen).

        Returns an ``int`` (one stream, ``Discrete``), an ``[A]`` array (one stream, ``Box``, within the
        bounds) or ``[N]`` / ``[N, A]``. Arrays are buffers reused by the next call: copy one to keep it.
        """
        array, single = self._stream_obs(obs)
        actions = self.learner.act(array)
        if single:
            return actions[0] if self.continuous else int(actions[0])
        return actions

    def observe(self, reward: Any, terminated: Any, truncated: Any, next_obs: Any) -> np.ndarray:
        """Learn from the step that followed :meth:`act`; returns the TD errors ``[N]`` (a buffer reused
        by the next call: copy it to keep it).

        ``next_obs`` is the observation the step returned; when an episode ended, pass its *final*
        observation (truncations bootstrap from it), then call :meth:`act` on the reset observation.
        While learning (not :meth:`freeze`-d), each call adds the ``N`` steps to ``num_timesteps``.
        """
        deltas = self._observe(reward, terminated, truncated, next_obs)
        if not self.learner.frozen:
            self.num_timesteps += self.num_envs
        return deltas

    def _observe(self, reward: Any, terminated: Any, truncated: Any, next_obs: Any) -> np.ndarray:
        """:meth:`observe` without counting the steps (``learn`` counts its own)."""
        array, _ = self._stream_obs(next_obs)
        learner = self.learner
        if self.num_envs == 1:  # plain scalars all the way (the latency-critical path)
            r = one_value(reward, float, "reward")
            term, trunc = one_value(terminated, bool, "terminated"), one_value(truncated, bool, "truncated")
            if not learner.frozen and self.reward_scaler is not None:
                r = self.reward_scaler.scale_one(r, term or trunc)
            self._delta[0] = learner.observe_one(r, term, trunc, array)
            return self._delta
        rewards = np.asarray(reward, dtype=np.float64).reshape(self.num_envs)
        terms = np.asarray(terminated, dtype=bool).reshape(self.num_envs)
        truncs = np.asarray(truncated, dtype=bool).reshape(self.num_envs)
        if not learner.frozen and self.reward_scaler is not None:
            rewards = self.reward_scaler.scale(rewards, terms, truncs)
        return learner.observe(rewards, terms, truncs, array)

    def reset_state(self) -> None:
        """Zero network state and traces of every stream (weights and statistics are kept)."""
        self.learner.reset_state()

    def freeze(self, deterministic: bool = True) -> None:
        """Stop learning (weights, observation and reward statistics stay fixed). :meth:`act` then
        only runs the actor (the distribution's mode when ``deterministic``); :meth:`observe` only
        resets streams whose episode ended, and may be skipped."""
        self.learner.freeze(deterministic)

    def unfreeze(self) -> None:
        """Learn again from the next :meth:`act` (every stream restarts its state and traces)."""
        self.learner.unfreeze()

    @property
    def learning(self) -> bool:
        """Whether :meth:`act`/:meth:`observe` update the weights (see :meth:`freeze`)."""
        return not self.learner.frozen
