"""stable-baselines3 interoperability of the Reflect agent (needs ``pip install "reflect-rl[sb3]"``).

* :class:`SB3VecEnvStreams` lets a stable-baselines3 ``VecEnv`` (``DummyVecEnv``, ``SubprocVecEnv``,
  ``make_vec_env(...)``) serve as Reflect's environment streams: it translates SB3's ``(obs, rewards,
  dones, infos)`` with ``terminal_observation`` / ``TimeLimit.truncated`` into the Gymnasium 1.x
  same-step-autoreset format Reflect reads (``terminated``, ``truncated``, ``final_obs``, ``episode``).
* :func:`default_logger` builds an SB3 ``Logger`` (stdout when verbose) for SB3 callbacks and
  ``Reflect.set_logger(configure(folder, ["stdout", "csv", "tensorboard"]))``.
* :func:`monitor_while_sb3_is_in_use` is the episode monitor of :func:`reflect.envs.make_single_env`
  (set when this module is imported, as it is with :mod:`reflect.agents`): once SB3 is imported, the
  environments it builds wear SB3's ``Monitor``, so ``evaluate_policy`` and ``EvalCallback`` find the
  episode statistics they look for instead of warning.

SB3 callbacks (``CheckpointCallback``, ``EvalCallback``, ``StopTrainingOnRewardThreshold``,
``CallbackList``, ...) need no adapter: Reflect offers what they use (``num_timesteps``, ``get_env``,
``logger``, ``save``, ``get_vec_normalize_env``, ``dump_logs``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np

from reflect.envs.episode_stats import set_episode_monitor


def is_sb3_vec_env(env: Any) -> bool:
    """Whether ``env`` is a stable-baselines3 ``VecEnv`` (without importing SB3)."""
    return hasattr(env, "step_async") and hasattr(env, "step_wait") and hasattr(env, "num_envs")


def default_logger(verbose: int) -> Any:
    """An SB3 ``Logger``: human-readable lines on stdout when ``verbose``, else silent; no folder."""
    try:
        from stable_baselines3.common.logger import HumanOutputFormat, Logger
    except ImportError as error:  # pragma: no cover - exercised only without SB3
        raise ImportError(
            'the SB3 logger needs stable-baselines3: pip install "reflect-rl[sb3]"'
        ) from error
    return Logger(folder=None, output_formats=[HumanOutputFormat(sys.stdout)] if verbose else [])


def monitor_while_sb3_is_in_use(env: gym.Env) -> gym.Env:
    """``env`` in stable-baselines3's ``Monitor`` once SB3 is imported, else ``env`` as it is (nothing of
    SB3 is imported here for a program that does not use it).

    SB3 finds a ``Monitor`` by its class; its ``evaluate_policy`` and ``EvalCallback`` warn about an
    evaluation env without one. ``Monitor`` records each episode once (``info["episode"]`` at its last
    step; reflect's readers take one record per episode wherever it is) and changes nothing the env
    returns; it refuses a step after an episode's end until the env is reset.
    """
    if "stable_baselines3" not in sys.modules:
        return env
    from stable_baselines3.common.monitor import Monitor

    return Monitor(env)


set_episode_monitor(monitor_while_sb3_is_in_use)


class SB3VecEnvStreams:
    """A stable-baselines3 ``VecEnv`` seen as Reflect's same-step-autoreset streams.

    SB3 vector envs reset a finished sub-env inside ``step`` and put its last observation in
    ``infos[i]["terminal_observation"]``; a time-limit end is flagged ``infos[i]["TimeLimit.truncated"]``.
    Episode statistics come from a ``Monitor`` wrapper when present (``infos[i]["episode"]``), else from
    running sums kept here.
    """

    def __init__(self, venv: Any) -> None:
        self.venv = venv
        self.num_envs: int = venv.num_envs
        self.single_observation_space = venv.observation_space
        self.single_action_space = venv.action_space
        self.metadata = {"autoreset_mode": "same-step"}
        self.episode_returns = np.zeros(self.num_envs)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._starts = np.full(self.num_envs, time.perf_counter())

    @property
    def envs(self) -> list[Any]:
        return list(getattr(self.venv, "envs", []))

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.venv.seed(seed)
        self.episode_returns[:] = 0.0
        self.episode_lengths[:] = 0
        self._starts[:] = time.perf_counter()
        return np.asarray(self.venv.reset()), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, dones, infos = self.venv.step(np.asarray(actions))
        rewards = np.asarray(rewards, dtype=np.float64)
        dones = np.asarray(dones, dtype=bool)
        self.episode_returns += rewards
        self.episode_lengths += 1
        truncated = np.array([bool(dones[i] and infos[i].get("TimeLimit.truncated", False))
                              for i in range(self.num_envs)])
        terminated = dones & ~truncated
        info: dict[str, Any] = {}
        if dones.any():
            now = time.perf_counter()
            final_obs = np.zeros_like(np.asarray(obs, dtype=np.float64))
            r, t = np.zeros(self.num_envs), np.zeros(self.num_envs)
            n = np.zeros(self.num_envs, dtype=np.int64)
            for i in np.flatnonzero(dones):
                final_obs[i] = infos[i].get("terminal_observation", obs[i])
                monitor = infos[i].get("episode")
                r[i] = monitor["r"] if monitor else self.episode_returns[i]
                n[i] = monitor["l"] if monitor else self.episode_lengths[i]
                t[i] = monitor["t"] if monitor else now - self._starts[i]
                self.episode_returns[i], self.episode_lengths[i], self._starts[i] = 0.0, 0, now
            info = {"final_obs": final_obs, "_final_obs": dones.copy(),
                    "episode": {"r": r, "l": n, "t": t}, "_episode": dones.copy()}
        return np.asarray(obs), rewards, terminated, truncated, info

    def close(self) -> None:
        self.venv.close()
