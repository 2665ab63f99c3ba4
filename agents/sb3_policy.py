"""``SpikingActorCriticPolicy``: reflect's spiking networks inside stable-baselines3's own algorithms.

    from stable_baselines3 import PPO
    from reflect.agents.sb3_policy import SpikingActorCriticPolicy

    model = PPO(SpikingActorCriticPolicy, "CartPole-v1",
                policy_kwargs={"hidden": [64, 64], "time_steps": 4, "neuron": "lif"}).learn(50_000)

Each observation is fed as a constant input for ``time_steps`` (K) simulation steps of reflect's LIF/ALIF
layers, starting from rest; the spike rate of the last layer over the K steps is the feature vector
(``[B, hidden[-1]]``) that SB3's own action and value heads read (``Discrete``, ``MultiDiscrete``, ``Box``:
SB3 builds the distribution). SB3's losses train the spiking layers through the surrogate gradient,
backpropagating through the K steps. ``share_features_extractor=False`` gives the actor and the critic
separate spiking networks. ``SpikeRateCallback`` logs ``snn/spike_rate/<layer>`` through SB3's logger.

What made PPO learn fast with it (CartPole-v1, README "A spiking policy for stable-baselines3's own
algorithms"): observations through SB3's ``VecNormalize`` with ``weight_scale`` 2 (the default 8 is for
unnormalised observations), a larger learning rate than an MLP's (6e-3 against the zoo's 1e-3: the
surrogate gradient through the thresholds is weak, so fewer or smaller steps learn slower, not steadier)
and a smaller clip range (0.1 against 0.2), so that a solved policy holds. ``spiking_ppo_kwargs()``
returns those PPO arguments; the observations' ``VecNormalize`` is the caller's:

    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=8), norm_obs=True, norm_reward=False)
    model = PPO(env=env, n_steps=32, batch_size=256, **spiking_ppo_kwargs())
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from reflect.config import ConfigError, from_mapping
from reflect.spiking.encoders import ENCODERS, make_encoder
from reflect.spiking.layers import SpikingLayer, check_current_norm
from reflect.spiking.models import neuron_model
from reflect.spiking.surrogate import Surrogate, check_surrogate


@dataclass(frozen=True)
class SpikingPolicyConfig:
    """The spiking part of ``policy_kwargs`` (every other key goes to SB3's ``ActorCriticPolicy``).

    Attributes:
        hidden: neurons per spiking layer.
        neuron: a registered neuron model (``lif``, ``alif``, ``cuba``); ``neuron_params`` sets its other
            constants by name (e.g. ``{"alpha": 0.9}`` for ``cuba``).
        time_steps: simulation steps K per observation.
        beta / theta: membrane decay and threshold.
        surrogate / surrogate_slope: the surrogate spike derivative.
        encoder: how observations enter the first layer.
        weight_scale: hidden weights start uniform in ``+-weight_scale / sqrt(fan_in)``.
        weight_sparsity: the fraction of hidden weights that start at zero (a sparse start).
        current_norm: each layer's input current normalised across its neurons to this standard
            deviation at every simulation step (statistics detached; 0 = off), as reflect's
            ``network.current_norm``.
        recurrent: recurrent weights in every layer.
        squash: ``Box`` actions only: ``none`` (SB3's Gaussian; the algorithm clips actions into the
            bounds) or ``tanh`` (a tanh-squashed Gaussian with the exact log-prob, rescaled per dimension
            into ``[low, high]``).
    """

    hidden: tuple[int, ...] = (64, 64)
    neuron: str = "lif"
    time_steps: int = 4
    beta: float = 0.5
    theta: float = 1.0
    # with PPO on CartPole, arctan (slope 2) solved 2 of 3 seeds in 100k steps; fast_sigmoid (slope 1) none
    surrogate: str = "arctan"
    surrogate_slope: float = 2.0
    encoder: Literal["direct", "poisson", "posneg", "population"] = "direct"
    # SB3 envs are often unnormalised (CartPole obs std 0.07-0.8): at 2, no neuron of layer 2 spiked
    weight_scale: float = 8.0
    weight_sparsity: float = 0.0
    current_norm: float = 0.0
    recurrent: bool = False
    squash: Literal["none", "tanh"] = "none"
    neuron_params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must list positive layer sizes, e.g. [64, 64], got {list(self.hidden)}")
        if self.time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {self.time_steps}")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {self.beta}")
        model = neuron_model(self.neuron)
        for name, value in self.neuron_params.items():
            spec = model.parameter(name)
            if name in ("beta", "theta") or not spec.contains(value):
                raise ValueError(f"neuron_params: {name} must be a constant of {self.neuron} other than beta "
                                 f"and theta, in {spec.describe()}; got {value!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}: choose one of {', '.join(ENCODERS)}")
        if not 0.0 <= self.weight_sparsity < 1.0:
            raise ValueError(f"weight_sparsity must be in [0, 1), got {self.weight_sparsity}")
        check_current_norm(self.current_norm)
        check_surrogate(Surrogate(self.surrogate, self.surrogate_slope))


class SpikingFeaturesExtractor(BaseFeaturesExtractor):
    """Observation -> K steps of spiking layers -> last layer's spike rate ``[B, hidden[-1]]``."""

    def __init__(self, observation_space: gym.Space, config: SpikingPolicyConfig) -> None:
        super().__init__(observation_space, features_dim=config.hidden[-1])
        in_features = int(gym.spaces.flatdim(observation_space))
        self.config = config
        self.encoder = make_encoder(config.encoder, in_features)
        sizes = [self.encoder.out_features, *config.hidden]
        surrogate = Surrogate(config.surrogate, config.surrogate_slope)
        constants: dict[str, Any] = {"beta": config.beta, "theta": config.theta, **config.neuron_params}
        self.layers = nn.ModuleList(
            SpikingLayer(sizes[i], sizes[i + 1], neuron=config.neuron, recurrent=config.recurrent,
                         surrogate=surrogate, weight_scale=config.weight_scale,
                         weight_sparsity=config.weight_sparsity, current_norm=config.current_norm,
                         **constants)
            for i in range(len(config.hidden))
        )
        self.last_rates: list[float] = [0.0] * len(config.hidden)

    def forward(self, observations: Tensor) -> Tensor:
        x = self.encoder(observations.flatten(1).float())
        states = [layer.initial_state(x.shape[0]) for layer in self.layers]  # type: ignore[operator]
        totals = [x.new_zeros(()) for _ in self.layers]
        rate = x.new_zeros(x.shape[0], self.features_dim)
        for _ in range(self.config.time_steps):
            h = x
            for i, layer in enumerate(self.layers):
                h, states[i] = layer(h, states[i])
                totals[i] = totals[i] + h.detach().mean()
            rate = rate + h
        steps = self.config.time_steps
        self.last_rates = [float(t) / steps for t in totals]
        return rate / steps


_POLICY_KEYS = {f.name for f in fields(SpikingPolicyConfig)}
_SB3_KEYS = set(inspect.signature(ActorCriticPolicy.__init__).parameters) - {"self"}


class SpikingActorCriticPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose features come from reflect's spiking layers (see module doc).

    ``policy_kwargs``: the fields of :class:`SpikingPolicyConfig` (``hidden``, ``neuron``, ``time_steps``,
    ``surrogate``, ``surrogate_slope``, ``encoder``, ...), plus SB3's own (``share_features_extractor``,
    ``optimizer_class``, ``log_std_init``, ``use_sde``, ...). ``net_arch`` defaults to ``[]``: SB3's action
    and value layers read the spike rates directly. An unknown key is an error that names it.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, lr_schedule: Any,
                 **kwargs: Any) -> None:
        spiking = {k: kwargs.pop(k) for k in list(kwargs) if k in _POLICY_KEYS}
        unknown = [k for k in kwargs if k not in _SB3_KEYS]
        if unknown:
            valid = sorted(_POLICY_KEYS | (_SB3_KEYS - {"observation_space", "action_space", "lr_schedule"}))
            close = difflib.get_close_matches(unknown[0], valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown policy_kwargs key {unknown[0]!r}{hint} valid keys: {', '.join(valid)}"
            )
        if "features_extractor_class" in kwargs:
            raise ConfigError(
                "SpikingActorCriticPolicy builds its own features extractor: drop features_extractor_class"
            )
        config = from_mapping(SpikingPolicyConfig, spiking, "policy_kwargs")
        if config.squash == "tanh":
            if not isinstance(action_space, gym.spaces.Box):
                raise ConfigError(
                    f"squash='tanh' needs a Box action space, not {type(action_space).__name__}: drop squash"
                )
            if kwargs.get("use_sde"):
                raise ConfigError("squash='tanh' and use_sde=True exclude each other: pick one")
        self._tanh_squash = config.squash == "tanh"
        kwargs.setdefault("net_arch", [])
        super().__init__(observation_space, action_space, lr_schedule,
                         features_extractor_class=SpikingFeaturesExtractor,
                         features_extractor_kwargs={"config": config}, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        if self._tanh_squash:  # SB3 then rescales actions from [-1, 1] into the bounds (unscale_action)
            self.action_dist = SquashedDiagGaussianDistribution(get_action_dim(self.action_space))
            self._squash_output = True
        super()._build(lr_schedule)

    def spike_rates(self) -> dict[str, float]:
        """Mean spike probability per layer over the last forward pass (``actor.layers.i`` / ``critic.``)."""
        rates: dict[str, float] = {}
        extractors = [("actor", self.pi_features_extractor)]
        if not self.share_features_extractor:
            extractors.append(("critic", self.vf_features_extractor))
        for name, extractor in extractors:
            assert isinstance(extractor, SpikingFeaturesExtractor)
            for i, rate in enumerate(extractor.last_rates):
                rates[f"{name}.layers.{i}"] = rate
        return rates


SPIKING_PPO_LEARNING_RATE = 6e-3
"""Start of the linear learning-rate schedule tuned for the spiking policy (an MLP's zoo setup: 1e-3)."""
SPIKING_PPO_CLIP_RANGE = 0.1
"""Start of the linear clip-range schedule tuned for the spiking policy (an MLP's zoo setup: 0.2)."""
SPIKING_PPO_WEIGHT_SCALE = 2.0
"""``weight_scale`` for observations of unit scale (through ``VecNormalize``)."""


@dataclass(frozen=True)
class LinearDecay:
    """SB3 schedule ``value(progress_remaining) = start * progress_remaining``: from ``start`` to 0.

    A module-level class (not a lambda), so a saved model's schedule loads by reference."""

    start: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start


def spiking_ppo_kwargs(
    learning_rate: float = SPIKING_PPO_LEARNING_RATE,
    clip_range: float = SPIKING_PPO_CLIP_RANGE,
    **policy_kwargs: Any,
) -> dict[str, Any]:
    """SB3 ``PPO`` keyword arguments for :class:`SpikingActorCriticPolicy` on normalised observations.

    ``policy``, linear ``learning_rate`` and ``clip_range`` schedules from the given starts, and
    ``policy_kwargs`` with ``weight_scale`` 2 (overridable) plus any given keys. Wrap the env in
    ``VecNormalize(env, norm_obs=True, norm_reward=False)`` yourself; the other PPO hyperparameters are
    the task's (the README uses rl-baselines3-zoo's CartPole-v1 ones).
    """
    return {
        "policy": SpikingActorCriticPolicy,
        "learning_rate": LinearDecay(learning_rate),
        "clip_range": LinearDecay(clip_range),
        "policy_kwargs": {"weight_scale": SPIKING_PPO_WEIGHT_SCALE, **policy_kwargs},
    }


class SpikeRateCallback(BaseCallback):
    """Records ``snn/spike_rate/<layer>`` of a ``SpikingActorCriticPolicy`` at the end of each rollout."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        policy = self.model.policy
        if isinstance(policy, SpikingActorCriticPolicy):
            with torch.no_grad():
                for name, rate in policy.spike_rates().items():
                    self.logger.record(f"snn/spike_rate/{name}", rate)
