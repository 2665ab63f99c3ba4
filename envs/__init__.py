"""Gymnasium environment helpers (installed as ``reflect.envs``).

Build streams with :func:`make_env` (a :class:`StreamVectorEnv`), check spaces with :func:`check_spaces`,
normalise observations and scale rewards online, and read episode statistics from ``info``.
"""

from reflect.envs import memory_tasks as memory_tasks  # registers the reflect/ memory-task ids
from reflect.envs.body_changes import BODY_CHANGES, change_body
from reflect.envs.encoding import EncodeActions, EncodeObservations, encode_actions, encode_observations
from reflect.envs.episode_stats import EpisodeRecord, read_episode_statistics
from reflect.envs.errors import EnvSetupError, UnknownEnvironmentError, UnsupportedSpaceError
from reflect.envs.make import env_spec, make_env, make_single_env, resolve_env_id
from reflect.envs.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd
from reflect.envs.observation_filters import ObservationFilterBank, ObservationFilterSpec, filter_observations
from reflect.envs.spaces import SpaceInfo, check_action_space, check_observation_space, check_spaces
from reflect.envs.streams import StreamVectorEnv
from reflect.envs.wrappers import NormalizeObservationStream, ScaleRewardStream

__all__ = [
    "BODY_CHANGES",
    "EncodeActions",
    "EncodeObservations",
    "EnvSetupError",
    "EpisodeRecord",
    "NormalizeObservationStream",
    "ObservationFilterBank",
    "ObservationFilterSpec",
    "ObservationNormalizer",
    "RewardScaler",
    "RunningMeanStd",
    "ScaleRewardStream",
    "SpaceInfo",
    "StreamVectorEnv",
    "UnknownEnvironmentError",
    "UnsupportedSpaceError",
    "change_body",
    "check_action_space",
    "check_observation_space",
    "check_spaces",
    "encode_actions",
    "encode_observations",
    "env_spec",
    "filter_observations",
    "make_env",
    "make_single_env",
    "read_episode_statistics",
    "resolve_env_id",
]
