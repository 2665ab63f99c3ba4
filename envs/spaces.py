"""Check that observation and action spaces are of the kinds the streaming learners handle.

Observations must be a 1-D ``Box`` (any float or integer dtype): the learners see a flat vector
``[obs_dim]`` per stream. Actions are ``Discrete`` (indices ``0 .. n-1``) or, when asked for, a
1-D ``Box`` (continuous control). :func:`reflect.envs.make_single_env` encodes other observation spaces
and ``MultiDiscrete`` or shifted ``Discrete`` actions into these kinds (:mod:`reflect.envs.encoding`);
the errors here name the helpers that do it for an environment object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from gymnasium import spaces

from reflect.envs.encoding import (
    ENCODE_ACTIONS_CALL,
    ENCODE_OBSERVATIONS_CALL,
    action_encoding_problem,
    observation_encoding_problem,
)
from reflect.envs.errors import UnsupportedSpaceError

__all__ = ["SpaceInfo", "check_action_space", "check_observation_space", "check_spaces"]

ACTION_KINDS = ("Discrete", "Box")
_MAKE_DOES_IT = "make_single_env does this for env ids"


def _observation_hint(space: spaces.Space) -> str:
    """How to turn ``space`` into a 1-D Box, or why it cannot be."""
    problem = observation_encoding_problem(space)
    if problem is not None:
        return f"{problem}: convert the observations with your own gymnasium.ObservationWrapper"
    numeric = not isinstance(space, spaces.Box) or np.issubdtype(space.dtype, np.number)
    flatten = "; gymnasium.wrappers.FlattenObservation also works" if numeric else ""
    return f"encode it with {ENCODE_OBSERVATIONS_CALL} ({_MAKE_DOES_IT}){flatten}"


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
            f"observation space {_describe(space)} is not supported: only a 1-D Box is; "
            f"{_observation_hint(space)}"
        )
    if len(space.shape) != 1:
        raise UnsupportedSpaceError(
            f"observation space {_describe(space)} has {len(space.shape)} dimensions: only a 1-D Box is "
            f"supported; {_observation_hint(space)}"
        )
    if not (np.issubdtype(space.dtype, np.floating) or np.issubdtype(space.dtype, np.integer)):
        raise UnsupportedSpaceError(
            f"observation space {_describe(space)} has dtype {space.dtype}: only float or integer Box "
            f"observations are supported; {_observation_hint(space)}"
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
                f"shift them with {ENCODE_ACTIONS_CALL} ({_MAKE_DOES_IT})"
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
    if isinstance(space, spaces.MultiDiscrete) and "Discrete" in supported_actions:
        combinations = math.prod(int(n) for n in space.nvec.reshape(-1))
        how = action_encoding_problem(space) or (
            f"{ENCODE_ACTIONS_CALL} turns its {combinations} combinations into Discrete({combinations}) "
            f"({_MAKE_DOES_IT})"
        )
        raise UnsupportedSpaceError(
            f"action space {_describe(space)} is not supported as it is: {how}; supported action spaces are "
            f"{supported}"
        )
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
