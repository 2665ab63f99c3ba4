"""Read finished episodes' statistics out of a step's ``info``, whatever wrapper recorded them; and the
episode monitor that :func:`reflect.envs.make_single_env` puts on the environments it builds.

The episode monitor is how an environment built here meets tools that insist on a monitor wrapper of
their own: reflect's stable-baselines3 adapter (:mod:`reflect.agents.sb3_compat`) sets one that wraps
each environment in SB3's ``Monitor`` while SB3 is in use, which SB3's ``evaluate_policy`` and
``EvalCallback`` look for. None is set by default; environments then stay as Gymnasium builds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

__all__ = ["EpisodeMonitor", "EpisodeRecord", "monitor_episodes", "read_episode_statistics",
           "set_episode_monitor"]

EpisodeMonitor = Callable[[gym.Env], gym.Env]
"""``monitor(env) -> env``: the environment, wrapped (or not) to record its episodes' statistics."""

_episode_monitor: EpisodeMonitor | None = None


def set_episode_monitor(monitor: EpisodeMonitor | None) -> None:
    """Have :func:`monitor_episodes` (so ``make_single_env``) wrap environments with ``monitor``; None
    turns it off. The monitor must record each episode once, in ``info["episode"]`` at its last step
    (``r``: return, ``l``: length), and change nothing else the environment returns."""
    global _episode_monitor
    _episode_monitor = monitor


def monitor_episodes(env: gym.Env) -> gym.Env:
    """``env`` with the episode monitor set by :func:`set_episode_monitor` over it, if one is set."""
    return env if _episode_monitor is None else _episode_monitor(env)


class EpisodeRecord(NamedTuple):
    """One finished episode: its stream, undiscounted return and length in steps."""

    env_index: int
    episode_return: float
    length: int


def _read_batched(stats: dict[str, Any], mask: Any) -> list[EpisodeRecord]:
    returns, lengths = np.asarray(stats["r"]), np.asarray(stats["l"])
    return [
        EpisodeRecord(int(i), float(returns[i]), int(lengths[i]))
        for i in np.flatnonzero(np.asarray(mask, dtype=np.bool_))
    ]


def read_episode_statistics(info: dict[str, Any]) -> list[EpisodeRecord]:
    """Episodes that ended on this step, in stream order; ``[]`` if ``info`` has no episode statistics.

    Understands the vector format (``info["episode"]`` dict of ``[N]`` arrays with the bool mask
    ``info["_episode"]``, from ``gymnasium.wrappers.vector.RecordEpisodeStatistics`` or StreamVectorEnv),
    the same format inside ``info["final_info"]`` (single-env ``RecordEpisodeStatistics`` under a
    same-step autoreset ``SyncVectorEnv``), and the single-env format (scalar ``r``/``l``, reported as
    stream 0).
    """
    if "episode" in info:
        stats = info["episode"]
        if "_episode" in info:
            return _read_batched(stats, info["_episode"])
        if np.ndim(stats["r"]) != 0:
            raise ValueError(
                "info['episode'] holds arrays but info has no '_episode' mask: pass the step's whole info"
            )
        return [EpisodeRecord(0, float(stats["r"]), int(stats["l"]))]
    final_info = info.get("final_info")
    if isinstance(final_info, dict) and "episode" in final_info and "_episode" in final_info:
        return _read_batched(final_info["episode"], final_info["_episode"])
    return []
