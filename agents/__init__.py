"""Agents built on reflect's spiking networks (installed as ``reflect.agents``).

* :class:`Reflect`: the REFLECT online learner (step API and stable-baselines3-style API).
"""

from reflect.agents.callbacks import CallbackList, ReflectCallback
from reflect.agents.config import LearnerConfig, NetworkConfig, NormalizeConfig, ReflectConfig, TrainConfig
from reflect.agents.frozen_policy import FrozenPolicy
from reflect.agents.reflect_agent import Reflect

__all__ = [
    "CallbackList", "FrozenPolicy", "LearnerConfig", "NetworkConfig", "NormalizeConfig", "Reflect",
    "ReflectCallback", "ReflectConfig", "TrainConfig",
]
