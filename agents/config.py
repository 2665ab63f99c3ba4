"""The REFLECT agent's configuration: network, learner, normalisation and training schedule.

YAML files under ``configs/`` hold these sections keyed by env id (with a ``default`` entry), like
rl-baselines3-zoo; loading is strict (an unknown key is an error that names it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from reflect.config import ConfigWarning, deep_merge, from_mapping, load_env_config, parse_overrides
from reflect.envs.observation_filters import ObservationFilterSpec
from reflect.learning.config import LearnerConfig
from reflect.learning.heads import GaussianHead
from reflect.spiking.encoders import ENCODERS
from reflect.spiking.layers import Spread, check_current_norm
from reflect.spiking.models import neuron_model
from reflect.spiking.network import SpikingNetwork
from reflect.spiking.surrogate import Surrogate, check_surrogate

# a network with more weights than this steps at a few hundred steps per second or fewer on a CPU core
# (the tuned [128] on CartPole-v1 has about 1,000 and runs thousands): a warning, not an error
SLOW_NETWORK_WEIGHTS = 1_000_000


@dataclass(frozen=True)
class NetworkConfig:
    """The actor's and the critic's spiking networks (each gets its own copy of this architecture).

    Attributes:
        hidden: neurons per spiking layer.
        neuron: a registered neuron model (``lif``, ``alif``, ``cuba``; see
            :func:`reflect.spiking.neuron_model_names`).
        recurrent: recurrent weights in every layer (traces then drop the recurrent temporal paths).
        beta / theta: membrane decay and firing threshold (every built-in model has both).
        neuron_params: the model's other constants by name (ALIF ``rho``, ``beta_a``; CUBA ``alpha``);
            the model's defaults otherwise.
        spread: constants given per neuron, evenly spaced over ``[low, high]`` from the first neuron of a
            layer to the last (heterogeneous time constants, e.g. ``{beta: [0.0, 0.95]}``); a constant
            named here ignores its value in ``beta`` / ``theta`` / ``neuron_params``.
        learn_beta / learn_theta: train beta / theta; ``learn``: names of any other constants to train.
            Learned constants are kept in their valid range.
        per_neuron: one value of every constant per neuron instead of per layer.
        surrogate / surrogate_slope: the surrogate spike derivative.
        encoder: how observations enter the first layer (``direct`` feeds them as currents).
        weight_scale: hidden weights start uniform in ``+-weight_scale / sqrt(fan_in)``.
        weight_sparsity: the fraction of hidden weights that start at zero, each independently (a
            sparse start, as in streaming deep RL's recipe); the rest start as without it.
        readout_decay: leak of the readout (0 = linear readout of the current spikes).
        readout_scale: readout weights start uniform in ``+-readout_scale / sqrt(hidden[-1])``.
        trace_algorithm: ``pp-prop`` (factorised traces) or ``d-rtrl`` (per-synapse traces).
        current_norm: each hidden layer's input current normalised across its neurons at every step, to
            mean 0 and standard deviation ``current_norm`` (statistics detached; no parameters); 0 = off
            (:mod:`reflect.formulas.current_norm`).
    """

    hidden: tuple[int, ...] = (128,)
    neuron: str = "lif"
    recurrent: bool = False
    beta: float = 0.0
    theta: float = 1.0
    neuron_params: dict[str, float] = field(default_factory=dict)
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    learn_beta: bool = False
    learn_theta: bool = False
    learn: tuple[str, ...] = ()
    per_neuron: bool = False
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 1.0
    encoder: Literal["direct", "poisson", "posneg", "population"] = "direct"
    weight_scale: float = 2.0
    weight_sparsity: float = 0.0
    current_norm: float = 0.0
    readout_decay: float = 0.0
    readout_scale: float = 1.0
    trace_algorithm: Literal["pp-prop", "d-rtrl"] = "pp-prop"

    def __post_init__(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must list positive layer sizes, e.g. [128], got {list(self.hidden)}")
        model = neuron_model(self.neuron)
        for name in ("beta", "theta"):
            if name in model.parameter_names:
                spec = model.parameter(name)
                if not spec.contains(getattr(self, name)):
                    raise ValueError(f"{name} must be in {spec.describe()}, got {getattr(self, name)}")
        for name, value in self.neuron_params.items():
            if name in ("beta", "theta"):
                raise ValueError(f"neuron_params: set {name} with network.{name}, not neuron_params.{name}")
            spec = model.parameter(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not spec.contains(value):
                raise ValueError(f"neuron_params: {self.neuron} constant {name} ({spec.doc}) must be in "
                                 f"{spec.describe()}, got {value!r}")
        for name, (low, high) in self.spread.items():
            spec = model.parameter(name)
            if not (spec.contains(low) and spec.contains(high) and low <= high):
                raise ValueError(f"spread: {self.neuron} constant {name} ({spec.doc}) needs low <= high, "
                                 f"both in {spec.describe()}, got [{low}, {high}]")
        for name in self.learn:
            model.parameter(name)
        if not 0.0 <= self.readout_decay < 1.0:
            raise ValueError(f"readout_decay must be in [0, 1), got {self.readout_decay}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}: choose one of {', '.join(ENCODERS)}")
        if self.weight_scale <= 0.0 or self.readout_scale < 0.0:
            raise ValueError("weight_scale must be > 0 and readout_scale >= 0")
        if not 0.0 <= self.weight_sparsity < 1.0:
            raise ValueError(f"weight_sparsity must be in [0, 1), got {self.weight_sparsity}")
        check_current_norm(self.current_norm)
        check_surrogate(Surrogate(self.surrogate, self.surrogate_slope))

    def constants(self) -> dict[str, float | Spread]:
        """The model's constants this config sets: ``beta``, ``theta`` (where the model has them) and
        ``neuron_params``."""
        model = neuron_model(self.neuron)
        values: dict[str, float | Spread] = {name: getattr(self, name) for name in ("beta", "theta")
                                            if name in model.parameter_names}
        spread = {name: Spread(float(low), float(high)) for name, (low, high) in self.spread.items()}
        return {**values, **self.neuron_params, **spread}

    def learned(self) -> tuple[str, ...]:
        """Names of the constants to train."""
        flags = (["beta"] if self.learn_beta else []) + (["theta"] if self.learn_theta else [])
        return tuple(dict.fromkeys([*flags, *self.learn]))

    def build(self, in_features: int, out_features: int) -> SpikingNetwork:
        """A fresh network with this architecture (initialised from torch's global generator); a
        :class:`~reflect.config.ConfigWarning` when it is so large that every step will be slow."""
        network = SpikingNetwork(
            in_features, out_features, self.hidden,
            encoder=self.encoder, readout_decay=self.readout_decay, readout_scale=self.readout_scale,
            neuron=self.neuron, recurrent=self.recurrent, per_neuron=self.per_neuron, learn=self.learned(),
            surrogate=Surrogate(self.surrogate, self.surrogate_slope), weight_scale=self.weight_scale,
            weight_sparsity=self.weight_sparsity, current_norm=self.current_norm, **self.constants(),
        )
        self._warn_if_slow(network, in_features)
        return network

    def _warn_if_slow(self, network: SpikingNetwork, in_features: int) -> None:
        """Warn (one line, once per size and input count) when ``network`` has more than
        :data:`SLOW_NETWORK_WEIGHTS` weights: every step updates all of them."""
        if sum(parameter.numel() for parameter in network.parameters()) <= SLOW_NETWORK_WEIGHTS:
            return
        shape = f"network.hidden={list(self.hidden)}" + (" (recurrent)" if self.recurrent else "")
        warnings.warn(ConfigWarning(
            f"{shape} makes networks of over {SLOW_NETWORK_WEIGHTS:,} weights for {in_features} inputs; "
            "every step updates them all, so steps will be slow (a few hundred per second or fewer on a "
            "CPU, against thousands for the tuned [128]): use smaller layers unless that is intended"
        ), stacklevel=2)  # build()'s line: the actor's and the critic's network warn once


@dataclass(frozen=True)
class ActionConfig:
    """Continuous (``Box``) actions: the Gaussian policy head. Ignored for ``Discrete`` actions.

    Attributes:
        squash: ``tanh`` (smooth, exact log-prob with the Jacobian) or ``clip`` into the bounds; the
            network works in ``[-1, 1]`` units per dimension, scaled to each dimension's ``[low, high]``.
        init_log_std: starting log standard deviation of the Gaussian, in those units.
        learn_log_std: train the log-std with the actor (else it stays at ``init_log_std``).
        log_std_min / log_std_max: bounds of the log-std.
        log_std_lr_scale: the log-std's step relative to the actor's weights (a small value keeps
            exploration from collapsing before the mean has learned).
        noise_correlation: ``beta`` in ``[0, 1)``: the exploration noise of successive steps is correlated,
            ``eps_t = beta eps_{t-1} + sqrt(1 - beta^2) xi_t`` (each ``eps_t`` still standard normal), so
            actions push the same way for about ``1 / (1 - beta)`` steps; 0 is white noise.
        noise_calm_target: ``T >= 0``: while the critic's running mean ``|delta|`` (over about
            ``learner.calm_steps`` steps; the ``td_error`` that ``reflect train`` logs is its average) is
            below ``T``, the correlation shrinks in proportion, ``beta * min(1, mean |delta| / T)``: the
            noise turns white once the task is learned and correlated again when the errors grow. 0: off.
    """

    squash: Literal["tanh", "clip"] = "tanh"
    init_log_std: float = 0.0
    learn_log_std: bool = True
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    log_std_lr_scale: float = 0.02
    noise_correlation: float = 0.0
    noise_calm_target: float = 0.0

    def __post_init__(self) -> None:
        if not self.log_std_min < self.log_std_max:
            raise ValueError(
                f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})"
            )
        if not self.log_std_min <= self.init_log_std <= self.log_std_max:
            raise ValueError(
                f"init_log_std {self.init_log_std} must lie in [log_std_min, log_std_max] = "
                f"[{self.log_std_min}, {self.log_std_max}]"
            )
        if not self.log_std_lr_scale > 0.0:
            raise ValueError(f"log_std_lr_scale must be > 0, got {self.log_std_lr_scale}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise ValueError(
                f"noise_correlation must lie in [0, 1) (0: white noise; 0.9: about 10 steps), got "
                f"{self.noise_correlation}"
            )
        if not 0.0 <= self.noise_calm_target < math.inf:
            raise ValueError(
                f"noise_calm_target must be a finite number >= 0 (0: off; e.g. 0.3, a level of the logged "
                f"td_error), got {self.noise_calm_target}"
            )

    def build_head(self, low: Any, high: Any, seed: int | None) -> GaussianHead:
        """The Gaussian head for a ``Box`` action with bounds ``low``/``high`` ``[A]``."""
        return GaussianHead(
            len(low), low, high, squash=self.squash, init_log_std=self.init_log_std,
            learn_log_std=self.learn_log_std, log_std_bounds=(self.log_std_min, self.log_std_max),
            log_std_lr_scale=self.log_std_lr_scale, noise_correlation=self.noise_correlation,
            noise_calm_target=self.noise_calm_target, seed=seed,
        )


@dataclass(frozen=True)
class NormalizeConfig:
    """Online normalisation of the stream (statistics are part of every checkpoint).

    Attributes:
        observations: Welford mean/variance normalisation of observations.
        rewards: scale rewards by the running std of the discounted return.
        obs_clip: clip normalised observations to ``+-obs_clip``.
    """

    observations: bool = True
    rewards: bool = True
    obs_clip: float = 5.0

    def __post_init__(self) -> None:
        if not self.obs_clip > 0.0:
            raise ValueError(f"obs_clip must be > 0, got {self.obs_clip}")


@dataclass(frozen=True)
class TrainConfig:
    """The schedule of ``reflect train`` (steps count environment steps summed over streams).

    Attributes:
        total_steps: environment steps to train for.
        num_envs: parallel streams, one lifetime each (updates are averaged over them).
        eval_every: evaluate every this many steps (0 = never); eval_episodes: episodes per evaluation.
        checkpoint_every: write ``checkpoints/step_<N>.pt`` every this many steps (0 = never).
        log_every: write TensorBoard scalars every this many steps.
        reward_threshold: the evaluation mean return that counts as solved (``solved_at_step`` and
            ``stable_from_step`` in ``summary.json``); None: the env's registered ``reward_threshold``
            (CartPole-v1: 475). Pendulum-v1 registers none; its config sets -250.
    """

    total_steps: int = 100_000
    num_envs: int = 1
    eval_every: int = 5_000
    eval_episodes: int = 20
    checkpoint_every: int = 25_000
    log_every: int = 1_000
    reward_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 turns it off), got {getattr(self, name)}")
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")


@dataclass(frozen=True)
class ReflectConfig:
    """Everything that defines a REFLECT run besides the env id and the seed.

    ``env_kwargs`` go to ``gymnasium.make`` with the env id, for the training streams and for every
    environment built to evaluate, plot or run the agent (as rl-baselines3-zoo's ``env_kwargs``), e.g.
    ``--set 'env_kwargs={delay: 40}'`` for ``reflect/EvidenceAccumulation-v0``. ``observation_filter``
    puts a fixed linear filter bank (memory of the last steps) in front of the network, in every one of
    those environments (:mod:`reflect.envs.observation_filters`), e.g.
    ``--set observation_filter.kind=legendre``.
    """

    network: NetworkConfig = field(default_factory=NetworkConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    observation_filter: ObservationFilterSpec = field(default_factory=ObservationFilterSpec)

    @property
    def env_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`reflect.envs.make_env` / ``make_single_env`` for this config:
        the observation filter and ``env_kwargs``."""
        return {"observation_filter": self.observation_filter, **self.env_kwargs}

    def with_num_envs(self, num_envs: int) -> ReflectConfig:
        """This config with ``train.num_envs = num_envs`` (itself when it says so already): an agent given
        a vector env has as many streams as the env, whatever the config said."""
        if self.train.num_envs == num_envs:
            return self
        return replace(self, train=replace(self.train, num_envs=num_envs))


DEFAULT_CONFIG_FILE = "reflect.yaml"


def default_config_path() -> Path:
    """The tuned configs shipped with the package (``configs/reflect.yaml``)."""
    return Path(str(resources.files("reflect.configs").joinpath(DEFAULT_CONFIG_FILE)))


def load_reflect_config(
    env_id: str,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> ReflectConfig:
    """The config of ``env_id``: ``default`` merged with the env's entry of ``config_file`` (the tuned
    file when None), or ``base`` instead of the file; then ``--set key=value`` ``overrides``."""
    data = dict(base) if base is not None else load_env_config(config_file or default_config_path(), env_id)
    data = deep_merge(data, parse_overrides(overrides))
    return from_mapping(ReflectConfig, data)


def saved_env_arguments(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The env arguments (:attr:`ReflectConfig.env_arguments`) of a checkpoint's ``payload``, for
    building the env it was trained on."""
    return from_mapping(ReflectConfig, payload.get("config", {})).env_arguments
