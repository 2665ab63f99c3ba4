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


def __getattr__(name: str) -> object:
    """``SpikingActorCriticPolicy``, ``SpikeRateCallback`` and ``spiking_ppo_kwargs`` load stable-baselines3
    on first use."""
    if name in ("SpikingActorCriticPolicy", "SpikeRateCallback", "SpikingPolicyConfig", "spiking_ppo_kwargs"):
        try:
            from reflect.agents import sb3_policy
        except ImportError as error:
            raise ImportError(f'{name} needs stable-baselines3: pip install "reflect-rl[sb3]"') from error
        return getattr(sb3_policy, name)
    raise AttributeError(f"module 'reflect.agents' has no attribute {name!r}")
