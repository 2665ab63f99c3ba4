"""Check that observation and action spaces are of the kinds the streaming learners handle.

Observations must be a 1-D ``Box`` (any float or integer dtype): the learners see a flat vector
``[obs_dim]`` per stream. Actions are ``Discrete`` (indices ``0 .. n-1``) or, when asked for, a
1-D ``Box`` (continuous control).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from gymnasium import spaces

from reflect.envs.errors import UnsupportedSpaceError

__all__ = ["SpaceInfo", "check_action_space", "check_observation_space", "check_spaces"]

ACTION_KINDS = ("Discrete", "Box")
_FLATTEN_HINT = "wrap the environment with gymnasium.wrappers.FlattenObservation"


class SpaceInfo(NamedTuple):
    """What a learner needs to know about its spaces.

    ``obs_dim``: length of one observation. ``action_kind``: ``"discrete"`` or ``"box"``.
    ``num_actions``: ``n`` of a ``Discrete`` space, or the dimension of a ``Box`` action.
    ``action_low`` / ``action_high``: float64 ``[num_actions]`` bounds of a ``Box`` action, else None.
    """

    obs_dim: int
    action_kind: str
    num_actions: int
    action_low: np.ndarray | None
    action_high: np.ndarray | None


def _describe(space: spaces.Space) -> str:
    if isinstance(space, spaces.Box):
        return f"Box(shape={space.shape}, dtype={space.dtype})"
    return repr(space)


def check_observation_space(space: spaces.Space) -> int:
    """Return ``obs_dim`` of a 1-D ``Box`` observation space; raise UnsupportedSpaceError otherwise."""
    if not isinstance(space, spaces.Box):
        raise UnsupportedSpaceError(
            f"observation space {_describe(space)} is not supported: only a 1-D Box is; {_FLATTEN_HINT}"
        )
    if len(space.shape) != 1:
        raise UnsupportedSpaceError(
            f"observation space {_describe(space)} has {len(space.shape)} dimensions: only a 1-D Box is "
            f"supported; {_FLATTEN_HINT}"
        )
    if not (np.issubdtype(space.dtype, np.floating) or np.issubdtype(space.dtype, np.integer)):
        raise UnsupportedSpaceError(
            f"observation space {_describe(space)} has dtype {space.dtype}: only float or integer Box "
            "observations are supported; convert them with gymnasium.wrappers.DtypeObservation"
        )
    return int(space.shape[0])


def check_action_space(
    space: spaces.Space, supported_actions: Sequence[str] = ("Discrete",)
) -> tuple[str, int, np.ndarray | None, np.ndarray | None]:
    """Return ``(action_kind, num_actions, action_low, action_high)`` of a supported action space."""
    unknown = [kind for kind in supported_actions if kind not in ACTION_KINDS]
    if unknown:
        raise ValueError(f"supported_actions has unknown kinds {unknown}: choose from {list(ACTION_KINDS)}")
    supported = " or ".join(supported_actions)
    if isinstance(space, spaces.Discrete) and "Discrete" in supported_actions:
        if int(space.start) != 0:
            raise UnsupportedSpaceError(
                f"action space {space!r} starts at {int(space.start)}: the learners emit actions 0..n-1; "
                "shift them with gymnasium.wrappers.TransformAction"
            )
        return "discrete", int(space.n), None, None
    if isinstance(space, spaces.Box) and "Box" in supported_actions:
        if len(space.shape) != 1:
            raise UnsupportedSpaceError(
                f"action space {_describe(space)} has {len(space.shape)} dimensions: only a 1-D Box action "
                "is supported; reshape it with gymnasium.wrappers.TransformAction"
            )
        low = np.asarray(space.low, dtype=np.float64).copy()
        high = np.asarray(space.high, dtype=np.float64).copy()
        return "box", int(space.shape[0]), low, high
    raise UnsupportedSpaceError(
        f"action space {_describe(space)} is not supported: supported action spaces are {supported}"
    )


def check_spaces(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    supported_actions: Sequence[str] = ("Discrete",),
) -> SpaceInfo:
    """Check both spaces and describe them; ``"Box"`` in ``supported_actions`` allows continuous actions."""
    obs_dim = check_observation_space(observation_space)
    kind, num_actions, low, high = check_action_space(action_space, supported_actions)
    return SpaceInfo(obs_dim, kind, num_actions, low, high)
