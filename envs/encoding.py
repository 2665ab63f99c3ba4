"""Encode observation and action spaces into the kinds the streaming learners handle.

The learners read a flat observation vector ``[obs_dim]`` and emit a ``Discrete`` index ``0 .. n-1`` or a
1-D ``Box`` action. :func:`make_single_env` applies both encoders below to every environment it builds
(so training, evaluation, export and sweeps by env id get them); call them yourself on an environment
object you hand to the Python API.

:func:`encode_observations` (wrapper :class:`EncodeObservations`) turns an observation into a float32
vector ``[obs_dim]``:

- ``Discrete(n, start)``: a one-hot of length ``n`` (``obs - start`` is the hot index);
- ``MultiDiscrete(nvec, start)``: one one-hot per entry (row-major), concatenated: ``sum(nvec)`` numbers;
- ``MultiBinary(shape)``: the bits as 0.0 / 1.0, flattened;
- ``Box`` of any shape: flattened (row-major) and cast to float32;
- ``Tuple``: its parts encoded and concatenated in order; ``Dict``: the same in the space's key order,
  which is sorted for a ``Dict`` built from a plain dict (Gymnasium sorts it; an ``OrderedDict`` keeps its
  order, as ``gymnasium.spaces.flatten`` does).

The result equals ``gymnasium.spaces.flatten(space, obs)`` cast to float32.

A 1-D ``Box`` of a float or integer dtype is what the learners read already: it is left as it is, with no
wrapper. ``Text``, ``Graph``, ``Sequence``, ``OneOf`` and other spaces cannot be encoded (anywhere inside
a ``Tuple`` or ``Dict`` too).

:func:`encode_actions` (wrapper :class:`EncodeActions`) lets the learners emit one index for an
action space that is not ``Discrete(n)`` with ``start=0``:

- ``MultiDiscrete(nvec, start)`` with ``prod(nvec) <= 64`` (:data:`MAX_COMBINED_ACTIONS`):
  ``Discrete(prod(nvec))``; index ``i`` is the vector ``start + numpy.unravel_index(i, nvec)`` (row-major:
  the last entry changes fastest);
- ``Discrete(n, start)`` with ``start != 0``: ``Discrete(n)``; index ``i`` is the action ``start + i``.

Other action spaces (``Discrete`` from 0, ``Box``, ...) are left as they are for
:func:`reflect.envs.check_action_space` to judge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from reflect.envs.errors import UnsupportedSpaceError

__all__ = [
    "MAX_COMBINED_ACTIONS",
    "EncodeActions",
    "EncodeObservations",
    "action_encoding_problem",
    "encode_actions",
    "encode_observations",
    "encoded_observation_space",
    "needs_action_encoding",
    "needs_observation_encoding",
    "observation_encoding_problem",
]

MAX_COMBINED_ACTIONS = 64
"""The most ``MultiDiscrete`` combinations :func:`encode_actions` turns into one ``Discrete`` head."""
ENCODE_OBSERVATIONS_CALL = "reflect.envs.encode_observations(env)"
ENCODE_ACTIONS_CALL = "reflect.envs.encode_actions(env)"
_ENCODABLE = "Box, Discrete, MultiDiscrete, MultiBinary, or a Tuple or Dict of these"

# An encoder writes one observation of its space into a float32 slice of the output vector.
_Writer = Callable[[Any, np.ndarray], None]


# ---- observations --------------------------------------------------------------------------------


def _parts(space: spaces.Tuple | spaces.Dict) -> list[tuple[Any, spaces.Space]]:
    """``(key, part)`` in the space's order, as ``gymnasium.spaces.flatten`` takes them: a Dict built from a
    plain dict holds its keys sorted (an ``OrderedDict`` keeps its own order)."""
    if isinstance(space, spaces.Tuple):
        return list(enumerate(space.spaces))
    return list(space.spaces.items())


def observation_encoding_problem(space: spaces.Space) -> str | None:
    """None if :func:`encode_observations` can encode ``space``; else which part cannot be encoded."""
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.complexfloating):
        return f"a Box of dtype {space.dtype} cannot be encoded as real numbers"
    if isinstance(space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
        return None
    if not isinstance(space, spaces.Tuple | spaces.Dict):
        return f"{type(space).__name__} cannot be encoded as a vector (only {_ENCODABLE} can)"
    parts = _parts(space)
    if not parts:
        return f"an empty {type(space).__name__} has nothing to encode"
    for key, part in parts:
        problem = observation_encoding_problem(part)
        if problem is not None:
            return f"part [{key!r}]: {problem}"
    return None


def needs_observation_encoding(space: spaces.Space) -> bool:
    """False for a 1-D ``Box`` of a float or integer dtype (the learners read it as it is), else True."""
    return not (
        isinstance(space, spaces.Box)
        and len(space.shape) == 1
        and (np.issubdtype(space.dtype, np.floating) or np.issubdtype(space.dtype, np.integer))
    )


def _float32_bounds(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # float64 bounds beyond float32's range become +-inf
        return np.asarray(values, dtype=np.float64).reshape(-1).astype(np.float32)


def _bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(low, high)`` of the encoding of ``space`` (which must be encodable)."""
    if isinstance(space, spaces.Box):
        return _float32_bounds(space.low), _float32_bounds(space.high)
    if isinstance(space, spaces.Discrete):
        size = int(space.n)
    elif isinstance(space, spaces.MultiDiscrete):
        size = int(np.sum(space.nvec))
    elif isinstance(space, spaces.MultiBinary):
        size = math.prod(space.shape)
    else:
        assert isinstance(space, spaces.Tuple | spaces.Dict)
        lows, highs = zip(*(_bounds(part) for _, part in _parts(space)), strict=True)
        return np.concatenate(lows), np.concatenate(highs)
    return np.zeros(size, dtype=np.float32), np.ones(size, dtype=np.float32)


def _out_of_range(value: Any, space: spaces.Space) -> ValueError:
    return ValueError(f"observation {value!r} is outside its space {space!r}: the environment broke it")


def _write_flat(obs: Any, out: np.ndarray) -> None:
    out[:] = np.asarray(obs).reshape(-1)  # Box numbers or MultiBinary bits, row-major, cast to float32


def _writer(space: spaces.Space) -> tuple[int, _Writer]:
    """``(size, write)``: ``write(obs, out)`` fills ``out`` (float32 zeros ``[size]``) with the encoding."""
    if isinstance(space, spaces.Box | spaces.MultiBinary):
        return math.prod(space.shape), _write_flat
    if isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)

        def write_discrete(obs: Any, out: np.ndarray) -> None:
            index = int(obs) - start
            if not 0 <= index < n:
                raise _out_of_range(obs, space)
            out[index] = 1.0

        return n, write_discrete
    if isinstance(space, spaces.MultiDiscrete):
        nvec = space.nvec.reshape(-1).astype(np.int64)
        starts = np.asarray(space.start).reshape(-1).astype(np.int64)
        offsets = np.concatenate(([0], np.cumsum(nvec)[:-1]))

        def write_multi_discrete(obs: Any, out: np.ndarray) -> None:
            index = np.asarray(obs, dtype=np.int64).reshape(-1) - starts
            if index.shape != nvec.shape or np.any(index < 0) or np.any(index >= nvec):
                raise _out_of_range(obs, space)
            out[offsets + index] = 1.0

        return int(nvec.sum()), write_multi_discrete
    if isinstance(space, spaces.Tuple | spaces.Dict):
        segments: list[tuple[Any, int, int, _Writer]] = []
        stop = 0
        for key, part in _parts(space):
            size, write_part = _writer(part)
            segments.append((key, stop, stop + size, write_part))
            stop += size

        def write_composite(obs: Any, out: np.ndarray) -> None:
            for key, begin, end, write_part in segments:
                write_part(obs[key], out[begin:end])

        return stop, write_composite
    raise UnsupportedSpaceError(f"observation space {space!r}: {observation_encoding_problem(space)}")


def encoded_observation_space(space: spaces.Space) -> spaces.Box:
    """The float32 ``Box([obs_dim])`` that :class:`EncodeObservations` turns observations of ``space`` into.

    Raises:
        UnsupportedSpaceError: ``space`` (or a part of it) cannot be encoded.
    """
    problem = observation_encoding_problem(space)
    if problem is not None:
        raise UnsupportedSpaceError(f"observation space {space!r} is not supported: {problem}")
    low, high = _bounds(space)
    return spaces.Box(low, high, low.shape, np.float32)


class EncodeObservations(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observations of any encodable space -> a fresh float32 vector ``[obs_dim]`` (see the module doc).

    Stateless: the encoding depends on the current observation alone.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = encoded_observation_space(env.observation_space)
        self.obs_dim = int(self.observation_space.shape[0])
        self._write = _writer(env.observation_space)[1]

    def observation(self, observation: Any) -> np.ndarray:
        """The float32 ``[obs_dim]`` encoding of ``observation``."""
        out = np.zeros(self.obs_dim, dtype=np.float32)
        self._write(observation, out)
        return out


def encode_observations(env: gym.Env) -> gym.Env:
    """``env`` with observations encoded as a float32 vector ``[obs_dim]``; ``env`` itself (no wrapper) when
    its observations are a 1-D float or integer ``Box`` already.

    Raises:
        UnsupportedSpaceError: the observation space (or a part of it) cannot be encoded.
    """
    if not needs_observation_encoding(env.observation_space):
        return env
    return EncodeObservations(env)


# ---- actions -------------------------------------------------------------------------------------


def needs_action_encoding(space: spaces.Space) -> bool:
    """True for a ``MultiDiscrete`` space and for a ``Discrete`` one that does not start at 0."""
    if isinstance(space, spaces.Discrete):
        return int(space.start) != 0
    return isinstance(space, spaces.MultiDiscrete)


def action_encoding_problem(space: spaces.Space) -> str | None:
    """None if :func:`encode_actions` can turn ``space`` into one ``Discrete``; else why not."""
    if isinstance(space, spaces.Discrete):
        return None
    if not isinstance(space, spaces.MultiDiscrete):
        return f"{type(space).__name__} actions cannot be turned into one Discrete"
    combinations = math.prod(int(n) for n in space.nvec.reshape(-1))
    if combinations > MAX_COMBINED_ACTIONS:
        return (
            f"its {combinations} action combinations are too many for one Discrete head, which supports at "
            f"most {MAX_COMBINED_ACTIONS}"
        )
    return None


class EncodeActions(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """The learners' index ``0 .. n-1`` -> the action the environment takes (see the module doc).

    ``table[i]`` is the environment's action for index ``i``; :meth:`reverse_action` maps back.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        space = env.action_space
        problem = action_encoding_problem(space)
        if problem is not None:
            raise UnsupportedSpaceError(f"action space {space!r} cannot be encoded: {problem}")
        if isinstance(space, spaces.Discrete):
            self._shape: tuple[int, ...] = ()
            self.table = np.arange(int(space.n), dtype=space.dtype) + space.dtype.type(space.start)
        else:
            assert isinstance(space, spaces.MultiDiscrete)
            self._shape = tuple(space.nvec.shape)
            nvec = space.nvec.reshape(-1)
            grid = np.indices(tuple(int(n) for n in nvec)).reshape(len(nvec), -1).T  # row-major order
            starts = np.broadcast_to(np.asarray(space.start), space.nvec.shape).reshape(-1)
            self.table = (grid + starts).astype(space.dtype).reshape(-1, *self._shape)
        self.action_space = spaces.Discrete(len(self.table))

    def action(self, action: Any) -> Any:
        """The environment's action for index ``action`` (a fresh array for ``MultiDiscrete``)."""
        index = int(action)
        if not 0 <= index < len(self.table):
            raise ValueError(f"action {action!r} is outside {self.action_space!r}")
        return self.table[index].copy() if self._shape else self.table[index]

    def reverse_action(self, action: Any) -> int:
        """The index of the environment's action ``action``."""
        target = np.asarray(action).reshape(-1)
        rows = self.table.reshape(len(self.table), -1)
        if target.size == rows.shape[1]:
            matches = np.flatnonzero(np.all(rows == target, axis=1))
            if matches.size:
                return int(matches[0])
        raise ValueError(f"action {action!r} is not in {self.env.action_space!r}")


def encode_actions(env: gym.Env) -> gym.Env:
    """``env`` taking one index ``0 .. n-1`` for a ``MultiDiscrete`` action space (at most
    :data:`MAX_COMBINED_ACTIONS` combinations) or a ``Discrete`` one that starts elsewhere than 0; ``env``
    itself (no wrapper) for every other action space.

    Raises:
        UnsupportedSpaceError: a ``MultiDiscrete`` space with more than :data:`MAX_COMBINED_ACTIONS`
            combinations.
    """
    if not needs_action_encoding(env.action_space):
        return env
    return EncodeActions(env)
