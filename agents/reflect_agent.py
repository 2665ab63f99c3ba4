"""``Reflect``: the REFLECT online learner behind a step API and a stable-baselines3-style API.

Step API (a control loop owns the environment; :mod:`reflect.agents.step_api`)::

    agent = Reflect("CartPole-v1", seed=0)
    action = agent.act(obs)                                   # one stream: obs [obs_dim] -> action
    agent.observe(reward, terminated, truncated, next_obs)    # one online update

SB3-style API (the agent owns its environment streams; :mod:`reflect.agents.sb3_api`)::

    agent = Reflect("CartPole-v1", seed=0).learn(50_000, progress_bar=True)
    action, state = agent.predict(obs, state=state, deterministic=True)
    agent.save("cartpole.pt"); agent = Reflect.load("cartpole.pt")     # reflect.agents.checkpointing

This module builds the parts from the config: the networks, the action head, the observation
normaliser, the reward scaler and the learner registered for ``learner.third_factor``, which chooses
the backend (``agent.learner.backend`` says which and why). Every environment step updates the weights
(single-lifetime learning); nothing is stored but the current state, eligibility traces and
normalisation statistics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from reflect.agents.checkpointing import AGENT_NAME, Checkpointing
from reflect.agents.config import ReflectConfig, default_config_path
from reflect.agents.sb3_api import SB3API
from reflect.agents.sb3_compat import SB3VecEnvStreams, is_sb3_vec_env
from reflect.agents.step_api import StepAPI
from reflect.config import DEFAULT_ENTRY, deep_merge, from_mapping, load_env_config
from reflect.envs import (
    EnvSetupError,
    ObservationNormalizer,
    RewardScaler,
    StreamVectorEnv,
    check_spaces,
    filter_observations,
    make_env,
    make_single_env,
)
from reflect.learning import CategoricalHead, PolicyHead, make_learner

SUPPORTED_ACTIONS = ("Discrete", "Box")

__all__ = ["AGENT_NAME", "SUPPORTED_ACTIONS", "Reflect", "check_env_spaces"]


def check_env_spaces(env_id: str, env_arguments: Mapping[str, Any] | None = None) -> None:
    """Build ``env_id`` once (with ``env_arguments``, :attr:`ReflectConfig.env_arguments`) and check that
    Reflect supports its spaces, so a bad env id, module, argument or space fails before a run starts.

    Raises:
        ValueError: naming the problem (:func:`reflect.envs.check_spaces` for the spaces).
    """
    probe = make_single_env(env_id, **(env_arguments or {}))
    try:
        check_spaces(probe.observation_space, probe.action_space, SUPPORTED_ACTIONS)
    finally:
        probe.close()


def _as_config(config: ReflectConfig | Mapping[str, Any] | None, env_id: str | None) -> ReflectConfig:
    """A ReflectConfig as given, or the tuned config of ``env_id`` with ``config``'s keys over it."""
    if isinstance(config, ReflectConfig):
        return config
    tuned = load_env_config(default_config_path(), env_id or DEFAULT_ENTRY)
    return from_mapping(ReflectConfig, deep_merge(tuned, config or {}))


def _as_vector_env(env: Any, seed: int, num_envs: int, env_arguments: Mapping[str, Any]) -> Any:
    if isinstance(env, str):
        return make_env(env, seed=seed, num_envs=num_envs, **env_arguments)
    observation_filter = env_arguments.get("observation_filter")
    if isinstance(env, gym.Env) and not isinstance(env, gym.vector.VectorEnv):
        return StreamVectorEnv.from_envs([filter_observations(env, observation_filter)])
    if observation_filter is not None and observation_filter.enabled:
        raise EnvSetupError(
            "observation_filter applies to an env id or a gymnasium.Env, not to a vector env: wrap each "
            "env in reflect.envs.ObservationFilterBank yourself and set observation_filter.kind=none"
        )
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
    raise TypeError(
        "env must be an env id, a gymnasium.Env, a gymnasium VectorEnv or a stable-baselines3 VecEnv, "
        f"got {type(env).__name__}"
    )


class Reflect(StepAPI, SB3API, Checkpointing):
    """A spiking actor-critic that learns online with the REFLECT three-factor rule.

    Args:
        env: a Gymnasium env id, a ``gymnasium.Env`` (one stream) or a vector env (SAME_STEP autoreset) of
            any number of streams (``config.train.num_envs`` is then set to it; checkpoints record it).
        config: a :class:`ReflectConfig` (used as is), or ``None`` / a mapping of config keys laid over
            the tuned config of the env id (``configs/reflect.yaml``; strictly checked).
        seed: seeds weights, action sampling and the environment streams (stream i: ``seed + i``).
        verbose: 1 prints a line at the end of each :meth:`learn` (steps, steps per second, mean return).
        backend: ``"numba"``, ``"numpy"`` or ``"torch"`` to require one; ``None`` chooses
            (:func:`reflect.traces.select_backend`).
    """

    def __init__(
        self,
        env: str | gym.Env | gym.vector.VectorEnv,
        config: ReflectConfig | Mapping[str, Any] | None = None,
        *,
        seed: int = 0,
        verbose: int = 0,
        backend: str | None = None,
    ) -> None:
        self.seed, self.verbose = int(seed), verbose
        self.env_id: str | None = (
            env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
        )
        self.config = _as_config(config, self.env_id)
        self.env = _as_vector_env(env, self.seed, self.config.train.num_envs, self.config.env_arguments)
        self.num_envs: int = self.env.num_envs
        self.config = self.config.with_num_envs(self.num_envs)  # a vector env given sets the streams
        self.spaces = check_spaces(
            self.env.single_observation_space, self.env.single_action_space, SUPPORTED_ACTIONS
        )
        if self.env_id is None:
            self.env_id = self._env_id_from_vector()
        self.obs_dim, num_actions = self.spaces.obs_dim, self.spaces.num_actions
        net, learner_config = self.config.network, self.config.learner
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.actor = net.build(self.obs_dim, num_actions)
            uses_critic = learner_config.third_factor == "td"
            self.critic = net.build(self.obs_dim, 1) if uses_critic else None
        self.continuous = self.spaces.action_kind == "box"
        self.head: PolicyHead = (
            self.config.action.build_head(self.spaces.action_low, self.spaces.action_high, self.seed)
            if self.continuous
            else CategoricalHead(num_actions, seed=self.seed)
        )
        self._predict_head = self.head.spawn(self.seed + 1)  # never touches learning's RNG
        norm = self.config.normalize
        self.obs_normalizer = (
            ObservationNormalizer((self.obs_dim,), clip=norm.obs_clip) if norm.observations else None
        )
        self.reward_scaler = RewardScaler(self.num_envs, learner_config.gamma) if norm.rewards else None
        self.learner = make_learner(
            self.actor, self.critic, self.head, learner_config, num_streams=self.num_envs,
            trace_algorithm=net.trace_algorithm, normalizer=self.obs_normalizer, backend=backend,
        )
        self._delta = np.zeros(self.num_envs)  # what observe() returns, for one stream
        self.num_timesteps = 0
        self.ep_info_buffer: deque[tuple[float, int]] = deque(maxlen=100)
        self._last_obs: np.ndarray | None = None
        self.run_info: dict[str, Any] = {}  # plain-typed notes of a run (e.g. its evaluations), checkpointed
        self._logger: Any = None
        self._log_to_logger = False
        self._learn_start_steps = 0
        self.start_time = time.time()

    @classmethod
    def from_nir(cls, graph: Any, env: Any, **kwargs: Any) -> Reflect:
        """An agent whose actor is a NIR graph (a ``nir.NIRGraph`` or a ``.nir`` path), ready to go on
        learning: ``critic`` (a second graph), ``config``, ``seed``, ``dt``, ``approximate_reset`` as
        :func:`reflect.agents.nir_import.from_nir` says (``pip install "reflect-rl[nir]"``)."""
        from reflect.agents.nir_import import from_nir

        return from_nir(cls, graph, env, **kwargs)

    def _env_id_from_vector(self) -> str | None:
        envs = getattr(self.env, "envs", None)
        if envs:
            spec = getattr(envs[0], "spec", None)
            return getattr(spec, "id", None)
        return None
