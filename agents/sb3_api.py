"""The stable-baselines3-style API of :class:`~reflect.agents.Reflect`: the agent owns its streams.

::

    agent = Reflect("CartPole-v1", seed=0).learn(50_000, progress_bar=True)
    action, state = agent.predict(obs, state=state, deterministic=True)

``learn`` runs the CleanRL-style loop ``act -> env.step -> observe`` with SB3-shaped callbacks and
logger keys; ``predict`` is stateful (pass the network state back) and never learns.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from typing import Any

import numpy as np
import torch

from reflect.agents.callbacks import as_callback
from reflect.agents.frozen_policy import FrozenPolicy
from reflect.agents.sb3_compat import SB3VecEnvStreams, default_logger
from reflect.envs import read_episode_statistics
from reflect.learning import Learner, PolicyHead
from reflect.spiking.network import NetworkState, SpikingNetwork


class SB3API:
    """``learn`` / ``predict`` / ``policy`` and SB3's logger hooks (mixed into Reflect)."""

    env: Any
    seed: int
    verbose: int
    num_envs: int
    continuous: bool
    learner: Learner
    actor: SpikingNetwork
    head: PolicyHead
    _predict_head: PolicyHead
    num_timesteps: int
    ep_info_buffer: deque[tuple[float, int]]
    _last_obs: np.ndarray | None
    _logger: Any
    _log_to_logger: bool
    _learn_start_steps: int
    start_time: float

    act: Any  # from StepAPI
    _observe: Any
    normalize_observation: Any

    def learn(
        self: Any,
        total_timesteps: int,
        callback: Any = None,
        progress_bar: bool = False,
        reset_num_timesteps: bool = False,
        log_interval: int = 1000,
    ) -> Any:
        """Run the agent in its environment streams for ``total_timesteps`` more steps, learning online.

        ``callback``: a :class:`~reflect.agents.callbacks.ReflectCallback` or stable-baselines3 callback,
        a list of them, or a function ``fn(locals, globals) -> bool``; returning ``False`` stops early.
        With a logger set (:meth:`set_logger`), statistics are written every ``log_interval`` steps.
        Returns ``self``.
        """
        if total_timesteps < 0:
            raise ValueError(f"total_timesteps must be >= 0, got {total_timesteps}")
        if reset_num_timesteps:
            self.num_timesteps = 0
        callbacks = as_callback(callback)
        if progress_bar:
            from reflect.agents.progress import ProgressBarCallback

            bar = ProgressBarCallback(total_timesteps)
            callbacks = bar if callbacks is None else as_callback([callbacks, bar])
        obs = self._last_obs
        if obs is None:
            obs, _ = self.env.reset(seed=self.seed)
        local: dict[str, Any] = {"total_timesteps": total_timesteps, "episodes": []}
        if callbacks is not None:
            with warnings.catch_warnings():
                # EvalCallback warns when the eval env is not of the training env's class: in
                # stable-baselines3 that means two VecNormalize statistics to sync. Here the
                # statistics live in the agent and the evaluation uses them, so nothing is out of sync.
                warnings.filterwarnings("ignore", "Training and eval env are not of the same type")
                callbacks.init_callback(self)
            callbacks.on_training_start(local, {})
        self.start_time = time.time()
        self._learn_start_steps = self.num_timesteps
        target = self.num_timesteps + total_timesteps
        log_every = log_interval if self._log_to_logger and log_interval > 0 else 0
        next_log = self.num_timesteps + log_every
        env, n = self.env, self.num_envs
        try:
            while self.num_timesteps < target:
                actions = self.act(obs)
                next_obs, rewards, terminated, truncated, infos = env.step(actions)
                dones = terminated | truncated
                episodes = []
                if dones.any():
                    final = np.array(next_obs, dtype=np.float64)
                    final_obs = infos["final_obs"]  # an object array of rows from a SyncVectorEnv
                    for i in np.flatnonzero(dones):
                        final[i] = final_obs[i]
                    self._observe(rewards, terminated, truncated, final)
                    episodes = read_episode_statistics(infos)
                    for record in episodes:
                        self.ep_info_buffer.append((record.episode_return, record.length))
                else:
                    self._observe(rewards, terminated, truncated, next_obs)
                self.num_timesteps += n
                obs = next_obs
                self._last_obs = obs
                if log_every and self.num_timesteps >= next_log:
                    next_log += log_every
                    self.dump_logs()
                if callbacks is not None:
                    local.update(
                        actions=actions,
                        rewards=rewards,
                        terminated=terminated,
                        truncated=truncated,
                        dones=dones,
                        infos=infos,
                        episodes=episodes,
                    )
                    callbacks.update_locals(local)
                    if not callbacks.on_step():
                        break
        finally:
            self._last_obs = None if obs is None else np.array(obs, copy=True)
            if self.learner.awaiting_observe:  # stopped between act and observe (an exception):
                self.learner.reset_state()  # drop that step, restart the episodes, keep the weights
                self._last_obs = None
            if callbacks is not None:
                callbacks.on_training_end()
        if self.verbose:
            seconds = max(time.time() - self.start_time, 1e-9)
            recent = self.ep_info_buffer
            mean = f"{sum(r for r, _ in recent) / len(recent):.1f}" if recent else "n/a"
            done = self.num_timesteps - (target - total_timesteps)
            print(f"{self.num_timesteps:,} steps, {done / seconds:,.0f} steps/s, "
                  f"mean return of the last {len(recent)} episodes: {mean}")
        return self

    def predict(
        self,
        observation: Any,
        state: NetworkState | None = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[Any, NetworkState]:
        """Actions for ``observation`` (``[obs_dim]`` or ``[B, obs_dim]``) without learning.

        The network is stateful: pass back the returned ``state`` at the next call, and
        ``episode_start`` (``[B]`` bool) to zero the state of streams whose episode begins.
        """
        array = np.asarray(observation, dtype=np.float64)
        single = array.ndim == 1
        dtype = next(self.actor.parameters()).dtype  # the network's precision, float64 kept for float64
        inputs = torch.as_tensor(self.normalize_observation(array), dtype=dtype)
        start = (
            None if episode_start is None else torch.as_tensor(np.asarray(episode_start, dtype=bool)).view(-1)
        )
        with torch.no_grad():
            out, new_state = self.actor(inputs, state, start)
        head = self._predict_head
        actions = np.array(head.to_env(head.sample(out.numpy(), deterministic)), copy=True)
        if single:
            return (actions[0] if self.continuous else int(actions[0])), new_state
        return actions, new_state

    def policy(self, batch_size: int = 1) -> FrozenPolicy:
        """A frozen, inference-only copy of the actor's dynamics (shares the weights, not the state)."""
        head = self.head.spawn(self.seed + 2)  # shares the parameters, never the learner's random stream
        return FrozenPolicy(self.actor, head, self.normalize_observation, batch_size, self.learner)

    def get_env(self) -> Any:
        """The environment streams (an SB3 VecEnv given to the constructor is returned as given)."""
        return self.env.venv if isinstance(self.env, SB3VecEnvStreams) else self.env

    def get_vec_normalize_env(self) -> None:
        """Always ``None``: normalisation is part of the agent (stable-baselines3 callbacks ask)."""
        return None

    @property
    def logger(self) -> Any:
        """A stable-baselines3 ``Logger`` (stdout when ``verbose``) or the one given to ``set_logger``."""
        if self._logger is None:
            self._logger = default_logger(self.verbose)
        return self._logger

    def set_logger(self, logger: Any) -> None:
        """Log through a stable-baselines3 ``Logger``, e.g. ``configure(folder, ["stdout", "csv"])``:
        :meth:`learn` then records SB3's ``rollout/`` and ``time/`` keys and reflect's ``train/`` keys
        every ``log_interval`` steps."""
        self._logger = logger
        self._log_to_logger = True

    def dump_logs(self) -> None:
        """Record the current statistics in :attr:`logger` and write them out."""
        logger = self.logger
        episodes = self.ep_info_buffer
        if episodes:
            logger.record("rollout/ep_rew_mean", sum(r for r, _ in episodes) / len(episodes))
            logger.record("rollout/ep_len_mean", sum(n for _, n in episodes) / len(episodes))
        elapsed = max(time.time() - self.start_time, 1e-9)
        logger.record("time/fps", int((self.num_timesteps - self._learn_start_steps) / elapsed))
        logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        if self.learner.stats.steps:
            for name, value in self.learner.pop_diagnostics().items():
                logger.record(f"train/{name}", value)
        logger.dump(step=self.num_timesteps)
