"""Read finished episodes' statistics out of a step's ``info``, whatever wrapper recorded them."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["EpisodeRecord", "read_episode_statistics"]


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
