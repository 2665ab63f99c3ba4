"""Hyperparameters of the REFLECT three-factor learner."""

from __future__ import annotations

import math
from dataclasses import dataclass

from reflect.formulas.td import entropy_coef_clip


@dataclass(frozen=True)
class LearnerConfig:
    """Actor-critic(lambda) with eligibility traces and an overshoot-bounded step (ObGD).

    Attributes:
        gamma: discount factor.
        lam: trace decay lambda of the log-prob traces, and of the value traces unless ``critic_lam``
            is set (0 = one-step actor-critic).
        critic_lam: the value traces' own lambda (None: ``lam``). The critic's traces decay by
            ``gamma * critic_lam``, the actor's by ``gamma * lam``.
        actor_lr / critic_lr: step sizes ``alpha`` before the ObGD bound.
        actor_kappa / critic_kappa: ObGD bound strength ``kappa`` (larger = more cautious).
        entropy_coef: entropy bonus, added to the score as ``c * sign(delta) * grad H``.
        third_factor: the registered learner (:func:`reflect.learning.learner_names`): ``"td"`` (reward
            prediction error of a learned critic) or ``"reward-baseline"`` (``r_t`` minus a running mean
            of ``r``, no critic; what traceTorch's REFLECT loss does).
        baseline_rate: step of the running reward mean (``reward-baseline`` only).
        calm_target: the calm actor step: while the running mean of ``|delta|`` (over about
            ``calm_steps`` steps) is below this, the actor's (ObGD-bounded) step sizes shrink in
            proportion, times ``min(1, mean |delta| / calm_target)``, so a policy whose critic predicts
            well stops drifting, and the step grows back when the errors do (a changed environment).
            0 = off.
        calm_steps: the horizon of that running mean, in steps (its rate is ``1 / calm_steps``).
        calm_floor: the least the calm factor leaves of the actor's step (0 to 1): a policy stuck on a
            plateau its critic predicts well keeps learning at this fraction of the full step.
        entropy_target: the policy entropy (nats, averaged over streams) that the entropy coefficient
            keeps: every step ``c <- clip(c * exp(entropy_rate * (entropy_target - H)), 1e-6, 1)``,
            starting from ``entropy_coef``, as SAC's automatic temperature does (None: ``c`` stays at
            ``entropy_coef``). A softmax over ``A`` actions has at most ``log A`` nats; a Gaussian
            ``sum(log_std) + A (1 + log 2 pi) / 2``, which only a learned ``log_std`` changes.
        entropy_rate: the step of ``log c`` per nat of entropy error (with ``entropy_target`` only).
        actor_readout_decay: ``d``, a decoupled weight decay of the actor's readout (its weights and bias,
            ``W_out <- (1 - d) W_out`` after a learning step; 0 = off), while the running share of
            saturated action draws is at least ``readout_decay_gate``. It pulls the policy's output toward
            zero whatever the TD error, the one force left on a tanh-squashed Gaussian policy whose mean
            has run past its action bound: there every draw gives the same action, the critic predicts
            every episode exactly, and the TD-error-gated update stops for good.
        readout_decay_gate: ``g`` in ``[0, 1)``: the decay acts only while the running mean (over about
            100 steps) of the share of draws within 4% of their action bound is at least ``g`` (0.9: only a
            policy stuck at its bound; 0: at every step). A categorical head never saturates.
    """

    gamma: float = 0.99
    lam: float = 0.8
    critic_lam: float | None = None
    actor_lr: float = 1.0
    critic_lr: float = 1.0
    actor_kappa: float = 2.0
    critic_kappa: float = 1.0
    entropy_coef: float = 0.01
    third_factor: str = "td"
    baseline_rate: float = 0.01
    calm_target: float = 0.0
    calm_steps: int = 5000
    calm_floor: float = 0.0
    entropy_target: float | None = None
    entropy_rate: float = 0.001
    actor_readout_decay: float = 0.0
    readout_decay_gate: float = 0.9

    def __post_init__(self) -> None:
        for name in ("gamma", "lam", "critic_lam"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("actor_lr", "critic_lr", "actor_kappa", "critic_kappa"):
            value = getattr(self, name)
            if not value > 0.0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.entropy_coef < 0.0:
            raise ValueError(f"entropy_coef must be >= 0, got {self.entropy_coef}")
        from reflect.learning.learner import learner_names  # the registry (filled by reflect.learning)

        if self.third_factor not in learner_names():
            raise ValueError(
                f"unknown third_factor {self.third_factor!r}: choose one of {', '.join(learner_names())}"
            )
        if self.calm_target < 0.0:
            raise ValueError(f"calm_target must be >= 0 (0 turns it off), got {self.calm_target}")
        if not 0.0 <= self.calm_floor <= 1.0:
            raise ValueError(f"calm_floor must be in [0, 1], got {self.calm_floor}")
        if self.calm_steps < 1:
            raise ValueError(f"calm_steps must be >= 1, got {self.calm_steps}")
        if not 0.0 <= self.readout_decay_gate < 1.0:
            raise ValueError(f"readout_decay_gate must be in [0, 1) (0: decay at every step), got "
                             f"{self.readout_decay_gate}")
        if not 0.0 <= self.actor_readout_decay < 1.0:
            raise ValueError(f"actor_readout_decay must be in [0, 1) (0 turns it off), got "
                             f"{self.actor_readout_decay}")
        if not self.entropy_rate > 0.0:
            raise ValueError(f"entropy_rate must be > 0, got {self.entropy_rate}")
        if self.entropy_target is not None and not math.isfinite(self.entropy_target):
            raise ValueError(f"entropy_target must be a finite number of nats (or null: off), got "
                             f"{self.entropy_target}")
        if not 0.0 < self.baseline_rate <= 1.0:
            raise ValueError(f"baseline_rate must be in (0, 1], got {self.baseline_rate}")

    @property
    def initial_entropy_coef(self) -> float:
        """The entropy coefficient of a new learner: ``entropy_coef``, brought into the adapted range
        ``[1e-6, 1]`` when ``entropy_target`` is set."""
        if self.entropy_target is None:
            return self.entropy_coef
        return entropy_coef_clip(self.entropy_coef)

    @property
    def value_lam(self) -> float:
        """The critic's trace decay lambda: ``critic_lam``, or ``lam`` when that is not set."""
        return self.lam if self.critic_lam is None else self.critic_lam
