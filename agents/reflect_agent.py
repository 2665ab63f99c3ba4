"""``Reflect``: the REFLECT online learner behind a step API and a stable-baselines3-style API.

Step API (a control loop owns the environment)::

    agent = Reflect("CartPole-v1", seed=0)
    action = agent.act(obs)                                   # one stream: obs [obs_dim] -> action
    agent.observe(reward, terminated, truncated, next_obs)    # one online update

SB3-style API (the agent owns its environment streams)::

    agent = Reflect("CartPole-v1", seed=0).learn(50_000, progress_bar=True)
    action, state = agent.predict(obs, state=state, deterministic=True)
    agent.save("cartpole.pt"); agent = Reflect.load("cartpole.pt")

Every environment step updates the weights (single-lifetime learning); nothing is stored but the
current state, eligibility traces and normalisation statistics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np
import torch

from reflect import __version__
from reflect.agents.callbacks import as_callback
from reflect.agents.config import ReflectConfig, default_config_path
from reflect.agents.frozen_policy import FrozenPolicy
from reflect.agents.sb3_compat import SB3VecEnvStreams, default_logger, is_sb3_vec_env
from reflect.checkpoints import load_checkpoint, save_checkpoint
from reflect.config import DEFAULT_ENTRY, deep_merge, from_mapping, load_env_config, to_dict
from reflect.envs import (
    EnvSetupError,
    ObservationNormalizer,
    RewardScaler,
    StreamVectorEnv,
    check_spaces,
    make_env,
    read_episode_statistics,
)
from reflect.kernels.observe import FusedObserve
from reflect.kernels.policy import FusedGaussianAct
from reflect.learning.heads import CategoricalHead, GaussianHead, PolicyHead
from reflect.learning.reflect_learner import ReflectLearner
from reflect.spiking.network import NetworkState

AGENT_NAME = "reflect"
SUPPORTED_ACTIONS = ("Discrete", "Box")
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _one_value(value: Any, kind: type, name: str) -> Any:
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


def _as_config(config: ReflectConfig | Mapping[str, Any] | None, env_id: str | None) -> ReflectConfig:
    """A ReflectConfig as given, or the tuned config of ``env_id`` with ``config``'s keys over it."""
    if isinstance(config, ReflectConfig):
        return config
    tuned = load_env_config(default_config_path(), env_id or DEFAULT_ENTRY)
    return from_mapping(ReflectConfig, deep_merge(tuned, config or {}))


def _as_vector_env(env: Any, seed: int, num_envs: int) -> Any:
    if isinstance(env, str):
        return make_env(env, seed=seed, num_envs=num_envs)
    if is_sb3_vec_env(env):
        return SB3VecEnvStreams(env)
    if isinstance(env, gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")
        if mode is not None and mode != gym.vector.AutoresetMode.SAME_STEP:
            raise EnvSetupError(
                f"vector env autoreset mode {mode} is not supported: a streaming learner needs "
                "autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP (or pass an env id)"
            )
        return env
    if isinstance(env, gym.Env):
        return StreamVectorEnv.from_envs([env])
    raise TypeError(
        "env must be an env id, a gymnasium.Env, a gymnasium VectorEnv or a stable-baselines3 VecEnv, "
        f"got {type(env).__name__}"
    )


class Reflect:
    """A spiking actor-critic that learns online with the REFLECT three-factor rule.

    Args:
        env: a Gymnasium env id, a ``gymnasium.Env`` (one stream) or a vector env (SAME_STEP autoreset).
        config: a :class:`ReflectConfig` (used as is), or ``None`` / a mapping of config keys laid over
            the tuned config of the env id (``configs/reflect.yaml``; strictly checked).
        seed: seeds weights, action sampling and the environment streams (stream i: ``seed + i``).
        verbose: 1 prints a line at the end of each :meth:`learn` (steps, steps per second, mean return).
    """

    def __init__(
        self,
        env: str | gym.Env | gym.vector.VectorEnv,
        config: ReflectConfig | Mapping[str, Any] | None = None,
        *,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        self.seed, self.verbose = int(seed), verbose
        self.env_id: str | None = (
            env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
        )
        self.config = _as_config(config, self.env_id)
        self.env = _as_vector_env(env, self.seed, self.config.train.num_envs)
        self.num_envs: int = self.env.num_envs
        self.spaces = check_spaces(
            self.env.single_observation_space, self.env.single_action_space, SUPPORTED_ACTIONS
        )
        if self.env_id is None:
            self.env_id = self._env_id_from_vector()
        obs_dim, num_actions = self.spaces.obs_dim, self.spaces.num_actions
        net = self.config.network
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.actor = net.build(obs_dim, num_actions)
            self.critic = net.build(obs_dim, 1) if self.config.learner.third_factor == "td" else None
        self.continuous = self.spaces.action_kind == "box"
        self.head: PolicyHead = (
            self.config.action.build_head(self.spaces.action_low, self.spaces.action_high, self.seed)
            if self.continuous
            else CategoricalHead(num_actions, seed=self.seed)
        )
        self._predict_head = self.head.spawn(self.seed + 1)  # never touches learning's RNG
        self.learner = ReflectLearner(
            self.actor,
            self.critic,
            self.head,
            self.config.learner,
            num_streams=self.num_envs,
            trace_algorithm=net.trace_algorithm,
        )
        norm = self.config.normalize
        self.obs_normalizer = (
            ObservationNormalizer((obs_dim,), clip=norm.obs_clip) if norm.observations else None
        )
        self.reward_scaler = RewardScaler(self.num_envs, self.config.learner.gamma) if norm.rewards else None
        self._fused_act, self._fused_observe = self._fused_steps()
        self._inputs = torch.zeros(self.num_envs, obs_dim)
        self._inputs_np = self._inputs.numpy()
        self._delta = np.zeros(self.num_envs)  # what observe() returns, for one stream
        self.num_timesteps = 0
        self.ep_info_buffer: deque[tuple[float, int]] = deque(maxlen=100)
        self._last_obs: np.ndarray | None = None
        self.run_info: dict[str, Any] = {}  # plain-typed notes of a run (e.g. its evaluations), checkpointed
        self._logger: Any = None
        self._log_to_logger = False
        self._learn_start_steps = 0
        self.start_time = time.time()

    def _fused_steps(self) -> tuple[FusedGaussianAct | None, FusedObserve | None]:
        """The whole single-stream act, and observe, as one compiled call each, where every part of
        them is compiled (a continuous agent; observe also needs the critic)."""
        learner, head, normalizer = self.learner, self.head, self.obs_normalizer
        if (
            self.num_envs != 1 or learner.actor_engine.compiled is None or not isinstance(head, GaussianHead)
            or not head.compiled or (normalizer is not None and not normalizer.compiled)
        ):
            return None, None
        act = FusedGaussianAct(normalizer, learner.actor_engine, head)
        critic = learner.critic_engine
        observe = FusedObserve(normalizer, learner) if critic is not None and critic.compiled else None
        return act, observe

    def _env_id_from_vector(self) -> str | None:
        envs = getattr(self.env, "envs", None)
        if envs:
            spec = getattr(envs[0], "spec", None)
            return getattr(spec, "id", None)
        return None

    # ----------------------------------------------------------------------------- step API
    def _normalize(self, obs: np.ndarray, update: bool, out: np.ndarray | None = None) -> np.ndarray:
        if self.obs_normalizer is None:
            if not np.isfinite(obs).all():
                raise FloatingPointError(f"non-finite observation {obs.tolist()}")
            if out is None:
                return obs
            out[...] = obs
            return out
        return self.obs_normalizer(obs, update=update, out=out)

    def normalize_observation(self, obs: np.ndarray) -> np.ndarray:
        """Raw observations ``[B, obs_dim]`` -> network inputs, statistics unchanged."""
        return self._normalize(np.asarray(obs, dtype=np.float64).reshape(-1, self.spaces.obs_dim), False)

    def _refuse_non_finite(self, obs: np.ndarray) -> NoReturn:
        """Raise the error that names where ``obs`` (which a fused kernel refused) has a NaN or inf."""
        self._normalize(obs, update=False, out=self._inputs_np)  # raises, naming the dimensions
        raise FloatingPointError(f"non-finite observation {obs.tolist()}")

    def _stream_obs(self, obs: Any) -> tuple[np.ndarray, bool]:
        # float32/float64 arrays pass as they are (every consumer reads both); others become float64
        array = obs if isinstance(obs, np.ndarray) and obs.dtype in _FLOAT_DTYPES else np.asarray(
            obs, dtype=np.float64
        )
        single = array.ndim == 1
        array = array.reshape(-1, self.spaces.obs_dim) if single else array
        if array.shape != (self.num_envs, self.spaces.obs_dim):
            raise ValueError(
                f"expected observations of shape {(self.num_envs, self.spaces.obs_dim)} "
                f"(or {(self.spaces.obs_dim,)} for one stream), got {np.shape(obs)}"
            )
        return array, single

    def act(self, obs: Any) -> Any:
        """The action for ``obs`` (``[obs_dim]`` for one stream, ``[N, obs_dim]`` for N), learned from at
        the next :meth:`observe`. Observation statistics are updated with ``obs`` (unless frozen).

        Returns an ``int`` (one stream, ``Discrete``), an ``[A]`` array (one stream, ``Box``, within the
        bounds) or ``[N]`` / ``[N, A]``. Arrays are buffers reused by the next call: copy one to keep it.
        """
        array, single = self._stream_obs(obs)
        fused = self._fused_act
        if fused is not None:  # one stream, one compiled call (see reflect.kernels.policy)
            fused.row[...] = array
            actions = self.learner.act_fused(fused)
            if actions is None:
                self._refuse_non_finite(array)
        else:
            self._normalize(array, update=not self.learner.frozen, out=self._inputs_np)
            actions = self.learner.act(self._inputs_np)
        if single:
            return actions[0] if self.continuous else int(actions[0])
        return actions

    def observe(self, reward: Any, terminated: Any, truncated: Any, next_obs: Any) -> np.ndarray:
        """Learn from the step that followed :meth:`act`; returns the TD errors ``[N]`` (a buffer reused
        by the next call: copy it to keep it).

        ``next_obs`` is the observation the step returned; when an episode ended, pass its *final*
        observation (truncations bootstrap from it), then call :meth:`act` on the reset observation.
        """
        array, _ = self._stream_obs(next_obs)
        if self.num_envs == 1:  # plain scalars all the way (the latency-critical path)
            return self._observe_one(_one_value(reward, float, "reward"),
                                     _one_value(terminated, bool, "terminated"),
                                     _one_value(truncated, bool, "truncated"), array)
        reward = np.asarray(reward, dtype=np.float64).reshape(self.num_envs)
        terminated = np.asarray(terminated, dtype=bool).reshape(self.num_envs)
        truncated = np.asarray(truncated, dtype=bool).reshape(self.num_envs)
        if self.learner.frozen:
            return self.learner.observe(reward, terminated, truncated, self._inputs_np)
        if self.reward_scaler is not None:
            reward = self.reward_scaler.scale(reward, terminated, truncated)
        self._normalize(array, update=False, out=self._inputs_np)
        return self.learner.observe(reward, terminated, truncated, self._inputs_np)

    def _observe_one(self, reward: float, terminated: bool, truncated: bool, array: np.ndarray) -> np.ndarray:
        if not self.learner.frozen:
            if self.reward_scaler is not None:
                reward = self.reward_scaler.scale_one(reward, terminated or truncated)
            fused = self._fused_observe
            if fused is not None:  # one compiled call (see reflect.kernels.observe)
                fused.row[...] = array
                delta = self.learner.observe_fused(fused, reward, terminated, truncated)
                if delta is None:
                    self._refuse_non_finite(array)
                self._delta[0] = delta
                return self._delta
            self._normalize(array, update=False, out=self._inputs_np)
        self._delta[0] = self.learner.observe_one(reward, terminated, truncated, self._inputs_np)
        return self._delta

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

    # ------------------------------------------------------------------------------ SB3 API
    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        progress_bar: bool = False,
        reset_num_timesteps: bool = False,
        log_interval: int = 1000,
    ) -> Reflect:
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
                    final[dones] = infos["final_obs"][dones]
                    self.observe(rewards, terminated, truncated, final)
                    episodes = read_episode_statistics(infos)
                    for record in episodes:
                        self.ep_info_buffer.append((record.episode_return, record.length))
                else:
                    self.observe(rewards, terminated, truncated, next_obs)
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
        inputs = torch.as_tensor(self.normalize_observation(array), dtype=torch.float32)
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
        return FrozenPolicy(self.actor, head, self.normalize_observation, batch_size)

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
            for name, value in self.learner.stats.pop().items():
                logger.record(f"train/{name}", value)
        logger.dump(step=self.num_timesteps)

    # --------------------------------------------------------------------------- save/load
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume exactly, as tensors and plain types (``weights_only`` loadable)."""
        payload: dict[str, Any] = {
            "format": "reflect-checkpoint",
            "version": __version__,
            "agent": AGENT_NAME,
            "env_id": self.env_id,
            "seed": self.seed,
            "num_envs": self.num_envs,
            "config": to_dict(self.config),
            "num_timesteps": self.num_timesteps,
            "actor": self.actor.state_dict(),
            "critic": None if self.critic is None else self.critic.state_dict(),
            "log_std": self.head.log_std.clone() if isinstance(self.head, GaussianHead) else None,
            "learner": self.learner.state_dict(),
            "obs_normalizer": None if self.obs_normalizer is None else self.obs_normalizer.state_dict(),
            "reward_scaler": None if self.reward_scaler is None else self.reward_scaler.state_dict(),
            "episodes": [list(e) for e in self.ep_info_buffer],
            "last_obs": None if self._last_obs is None else torch.from_numpy(np.array(self._last_obs)),
            "env_state": None,
            "run": dict(self.run_info),
        }
        snapshot = getattr(self.env, "snapshot", None)
        if self._last_obs is not None and snapshot is not None and self.env.supports_exact_snapshot():
            payload["env_state"] = snapshot()
        return payload

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (atomically) to ``path`` (``.pt`` is appended when it has no suffix, as
        stable-baselines3 appends ``.zip``); returns the path written. A state holding NaN or inf is
        refused with ``FloatingPointError`` (an existing file at ``path`` stays as it was)."""
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".pt")
        save_checkpoint(self.checkpoint(), path)  # refuses a state with NaN or inf (NonFiniteStateError)
        return path

    @classmethod
    def from_checkpoint(
        cls, payload: Mapping[str, Any], env: Any = None, *, restore_env: bool = True
    ) -> Reflect:
        """Rebuild an agent from :meth:`checkpoint`'s payload (``env`` defaults to the saved env id)."""
        if payload.get("agent") != AGENT_NAME:
            raise ValueError(f"checkpoint holds agent {payload.get('agent')!r}, not {AGENT_NAME!r}")
        env_id = payload.get("env_id")
        if env is None:
            if env_id is None:
                raise ValueError("the checkpoint does not name its environment: pass env=...")
            env = env_id
        config = from_mapping(ReflectConfig, payload["config"])
        agent = cls(env, config, seed=int(payload["seed"]))
        agent.load_state(payload, restore_env=restore_env and isinstance(env, str))
        return agent

    def load_state(self, payload: Mapping[str, Any], *, restore_env: bool = True) -> None:
        """Load weights, learner state, statistics and counters from a checkpoint payload."""
        if int(payload["num_envs"]) != self.num_envs:
            raise ValueError(f"checkpoint has {payload['num_envs']} streams, this agent {self.num_envs}")
        self.actor.load_state_dict(payload["actor"])
        if self.critic is not None:
            self.critic.load_state_dict(payload["critic"])
        if isinstance(self.head, GaussianHead):
            self.head.log_std.copy_(payload["log_std"])
        self.learner.load_state_dict(payload["learner"])
        if self.obs_normalizer is not None:
            self.obs_normalizer.load_state_dict(payload["obs_normalizer"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(payload["reward_scaler"])
        self.num_timesteps = int(payload["num_timesteps"])
        self.run_info = dict(payload.get("run", {}))
        self.ep_info_buffer.clear()
        self.ep_info_buffer.extend((float(r), int(n)) for r, n in payload["episodes"])
        env_state = payload.get("env_state")
        if restore_env and env_state is not None and payload.get("last_obs") is not None:
            self.env.restore(env_state)
            self._last_obs = payload["last_obs"].numpy().copy()
        else:
            self._last_obs = None

    @classmethod
    def load(cls, path: str | Path, env: Any = None) -> Reflect:
        """Load an agent saved with :meth:`save` (resumes learning exactly where it stopped);
        ``path`` may omit the ``.pt`` that :meth:`save` appended."""
        path = Path(path)
        if not path.exists() and not path.suffix and path.with_suffix(".pt").exists():
            path = path.with_suffix(".pt")
        return cls.from_checkpoint(load_checkpoint(path), env)
