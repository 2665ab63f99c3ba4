"""Checkpoints of :class:`~reflect.agents.Reflect`: everything needed to resume exactly, as tensors and
plain types (``torch.load(path, weights_only=True)`` works), written atomically.

A checkpoint from an older reflect (``version`` 0.1.x) loads: its engine state is mapped onto the current
layout. One from a newer reflect is refused with a message naming both versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reflect import __version__
from reflect.agents.config import ReflectConfig
from reflect.checkpoints import load_checkpoint, save_checkpoint
from reflect.config import from_mapping, to_dict
from reflect.learning.heads import GaussianHead

AGENT_NAME = "reflect"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_version(payload: Mapping[str, Any]) -> None:
    """Refuse a checkpoint written by a newer reflect than this one (naming both versions)."""
    saved = payload.get("version", "0")
    if _version_tuple(saved) > _version_tuple(__version__):
        raise ValueError(
            f"the checkpoint was written by reflect {saved}, newer than this reflect {__version__}: "
            "upgrade reflect to load it"
        )


# What the learner's state shares between its streams; every other entry is per stream (network state,
# traces, values, flags) and restarts when a checkpoint is loaded onto another number of streams.
SHARED_LEARNER_STATE = ("reward_baseline", "head_rng")

LEGACY_CONSTANTS = ("rho", "beta_a")  # reflect 0.1 gave every layer these, LIF layers too


def load_network_state(network: torch.nn.Module, state: Mapping[str, torch.Tensor], *,
                       legacy: bool = False) -> None:
    """``network.load_state_dict(state)``. A ``legacy`` (reflect 0.1) state may hold ``rho`` and
    ``beta_a`` in layers whose model has no such constant (dropped), and constants saved per layer (0-d)
    where the network now holds one per neuron (spread over the neurons)."""
    current = network.state_dict()
    if legacy:
        state = {key: value for key, value in state.items()
                 if key in current or key.rsplit(".", 1)[-1] not in LEGACY_CONSTANTS}
    state = {key: value.expand_as(current[key]).clone()
             if key in current and value.dim() == 0 and current[key].dim() == 1 else value
             for key, value in state.items()}
    network.load_state_dict(state)


class Checkpointing:
    """``checkpoint`` / ``save`` / ``load`` (mixed into Reflect)."""

    env: Any
    env_id: str | None
    seed: int
    num_envs: int
    config: ReflectConfig
    num_timesteps: int
    actor: Any
    critic: Any
    head: Any
    learner: Any
    obs_normalizer: Any
    reward_scaler: Any
    ep_info_buffer: Any
    run_info: dict[str, Any]
    _last_obs: np.ndarray | None

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
        cls: Any, payload: Mapping[str, Any], env: Any = None, *, restore_env: bool = True
    ) -> Any:
        """Rebuild an agent from :meth:`checkpoint`'s payload.

        ``env`` defaults to the saved env id, built with as many streams as the checkpoint holds. An env
        object of another number of streams is accepted as stable-baselines3 accepts one: see
        :meth:`load_state` (``reshape_streams``).
        """
        check_version(payload)
        if payload.get("agent") != AGENT_NAME:
            raise ValueError(f"checkpoint holds agent {payload.get('agent')!r}, not {AGENT_NAME!r}")
        env_id = payload.get("env_id")
        if env is None:
            if env_id is None:
                raise ValueError("the checkpoint does not name its environment: pass env=...")
            env = env_id
        config = from_mapping(ReflectConfig, payload["config"])
        if isinstance(env, str):  # the saved streams: older checkpoints of an agent given a vector env
            # saved the config's train.num_envs, not the env's
            config = config.with_num_envs(int(payload["num_envs"]))
        agent = cls(env, config, seed=int(payload["seed"]))
        agent.load_state(payload, restore_env=restore_env and isinstance(env, str), reshape_streams=True)
        return agent

    def load_state(
        self, payload: Mapping[str, Any], *, restore_env: bool = True, reshape_streams: bool = False
    ) -> None:
        """Load weights, learner state, statistics and counters from a checkpoint payload.

        A checkpoint of another number of streams is an error, unless ``reshape_streams``: then what the
        streams share is loaded (weights, observation and reward statistics, counters, episodes) and
        every stream starts afresh, as at the start of an episode (network state and traces zero).
        """
        saved_streams = int(payload["num_envs"])
        same_streams = saved_streams == self.num_envs
        if not same_streams and not reshape_streams:
            raise ValueError(
                f"the checkpoint holds {saved_streams} environment streams but this agent has "
                f"{self.num_envs}: build the agent with train.num_envs={saved_streams}, or load it with "
                "Reflect.load(path, env=...) to go on with another number of streams"
            )
        legacy = _version_tuple(payload.get("version", "0")) < (0, 2)
        load_network_state(self.actor, payload["actor"], legacy=legacy)
        if self.critic is not None:
            load_network_state(self.critic, payload["critic"], legacy=legacy)
        if isinstance(self.head, GaussianHead):
            self.head.log_std.copy_(payload["log_std"])
        learner_state = payload["learner"] if same_streams else self._restarted_streams(payload["learner"])
        self.learner.load_state_dict(learner_state)
        if self.obs_normalizer is not None:
            self.obs_normalizer.load_state_dict(payload["obs_normalizer"])
        if self.reward_scaler is not None:
            scaler_state = dict(payload["reward_scaler"])
            if not same_streams:  # each stream's discounted return restarts with its episode
                scaler_state["returns"] = torch.zeros(self.num_envs, dtype=torch.float64)
            self.reward_scaler.load_state_dict(scaler_state)
        self.num_timesteps = int(payload["num_timesteps"])
        self.run_info = dict(payload.get("run", {}))
        self.ep_info_buffer.clear()
        self.ep_info_buffer.extend((float(r), int(n)) for r, n in payload["episodes"])
        env_state = payload.get("env_state")
        if restore_env and same_streams and env_state is not None and payload.get("last_obs") is not None:
            self.env.restore(env_state)
            self._last_obs = payload["last_obs"].numpy().copy()
        else:
            self._last_obs = None

    def _restarted_streams(self, saved: Mapping[str, Any]) -> dict[str, Any]:
        """The learner state with ``saved``'s shared entries and every stream started afresh."""
        self.learner.reset_state()
        state = self.learner.state_dict()
        state.update({key: saved[key] for key in SHARED_LEARNER_STATE if key in saved})
        return state

    @classmethod
    def load(cls: Any, path: str | Path, env: Any = None) -> Any:
        """Load an agent saved with :meth:`save` (resumes learning exactly where it stopped);
        ``path`` may omit the ``.pt`` that :meth:`save` appended.

        ``env`` (default: the saved env id, with the saved number of streams) may have another number
        of streams than the agent had, as in stable-baselines3: the weights, statistics and counters
        carry over and every stream starts a new episode.
        """
        path = Path(path)
        if not path.exists() and not path.suffix and path.with_suffix(".pt").exists():
            path = path.with_suffix(".pt")
        return cls.from_checkpoint(load_checkpoint(path), env)
