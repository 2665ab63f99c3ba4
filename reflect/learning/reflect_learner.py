"""REFLECT: the three-factor online learner (actor-critic(lambda) over spiking networks).

Per environment step ``t`` and stream ``b`` (no buffer of transitions anywhere)::

    act:      o_t = actor(x_t),  a_t ~ pi(. | o_t)                         (eligibility traces advance)
    observe:  z_w     <- gamma lambda z_w + grad_w V(h_t)                   (critic trace; the score is
                                                                          taken when V(h_t) is computed)
              delta_t  = r_t + gamma (1 - terminated) V(h_{t+1}) - V(h_t)   (the third factor)
              z_theta <- gamma lambda z_theta + grad_theta [log pi(a_t | h_t) + c sign(delta_t) H_t]
              theta   <- theta + step_theta delta_t z_theta,  w <- w + step_w delta_t z_w   (ObGD steps)

``grad`` comes from each network's :class:`~reflect.traces.engine.TraceEngine`: the eligibility traces
(presynaptic x postsynaptic factors) times the same-step learning signal ``d log pi / d o_t``.
``V(h_{t+1})`` is the critic stepped on the next observation (the *final* observation of an episode that
ended: bootstrapped on truncation, ignored on termination). An episode end zeroes that stream's network
state and traces; its critic steps on the new episode's first observation at the next :meth:`act`.

Variant ``third_factor="reward-baseline"``: no critic, ``delta_t = r_t - rbar``, ``rbar`` a running mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reflect.kernels.observe import BAD_DELTA, BAD_OBSERVATION, FusedObserve
from reflect.kernels.policy import FusedGaussianAct
from reflect.learning.config import LearnerConfig
from reflect.learning.heads import PolicyHead
from reflect.learning.trace_group import TraceGroup
from reflect.spiking.network import SpikingNetwork
from reflect.traces.engine import TraceEngine

Observations = Tensor | np.ndarray  # [B, obs_dim]; numpy arrays avoid a conversion on the numpy path


def _bad_delta(delta: float, reward: float) -> FloatingPointError:
    return FloatingPointError(
        f"non-finite reward prediction error {delta} (reward {reward}): "
        "check the environment's rewards and observations"
    )


class LearnerStats:
    """Running sums of the per-step learning diagnostics, read and cleared by :meth:`pop`."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.steps = 0
        self.abs_td = 0.0
        self.actor_trace_l1 = 0.0
        self.actor_step = 0.0
        self.critic_step = 0.0

    def pop(self) -> dict[str, float]:
        """Means since the last call: ``td_error``, ``trace_norm``, ``step_size``, ``critic_step_size``."""
        n = max(self.steps, 1)
        out = {
            "td_error": self.abs_td / n,
            "trace_norm": self.actor_trace_l1 / n,
            "step_size": self.actor_step / n,
            "critic_step_size": self.critic_step / n,
        }
        self.clear()
        return out


class ReflectLearner:
    """Online three-factor learning for a spiking actor (and critic), ``B`` streams.

    Args:
        actor: readout size = ``head.num_outputs``.
        critic: readout size 1; ``None`` with ``third_factor="reward-baseline"``.
        head: the action distribution (see :mod:`reflect.learning.heads`).
        config: hyperparameters.
        num_streams: ``B``, one lifetime per stream; updates are averaged over streams.
        trace_algorithm: ``"pp-prop"`` or ``"d-rtrl"``.
    """

    def __init__(
        self,
        actor: SpikingNetwork,
        critic: SpikingNetwork | None,
        head: PolicyHead,
        config: LearnerConfig,
        *,
        num_streams: int = 1,
        trace_algorithm: str = "pp-prop",
    ) -> None:
        uses_critic = config.third_factor == "td"
        if uses_critic and critic is None:
            raise ValueError("third_factor='td' needs a critic network")
        if actor.out_features != head.num_outputs:
            raise ValueError(
                f"actor readout has {actor.out_features} outputs, the head needs {head.num_outputs}"
            )
        if critic is not None and critic.out_features != 1:
            raise ValueError(f"critic readout must have 1 output, got {critic.out_features}")
        self.config, self.head, self.num_streams = config, head, num_streams
        decay = config.gamma * config.lam
        self.actor_engine = TraceEngine(actor, num_streams, algorithm=trace_algorithm)
        self.actor = TraceGroup(self.actor_engine, decay, config.actor_lr, config.actor_kappa)
        head.prepare(num_streams)
        head.refresh()
        head.cache_parameters = True  # this learner calls head.refresh() after every update
        if head.extra_params is not None and head.extra_grad is not None:
            # e.g. a Gaussian log-std
            self.actor.attach_extra(head.extra_params, head.extra_grad, head.extra_lr_scale)
        self.critic_engine: TraceEngine | None = None
        self.critic: TraceGroup | None = None
        if uses_critic:
            assert critic is not None
            self.critic_engine = TraceEngine(critic, num_streams, algorithm=trace_algorithm)
            self.critic = TraceGroup(self.critic_engine, decay, config.critic_lr, config.critic_kappa)
            self.critic.signal.fill_(1.0)  # dV/do = 1
        self.values = np.zeros(num_streams)  # V(h_t) of the current step
        self.critic_pending = np.ones(num_streams, dtype=bool)  # critic has not seen this episode's obs
        self._any_pending = True  # == critic_pending.any(), kept as a Python bool for the hot path
        self.reward_baseline = 0.0
        self.actions: np.ndarray = np.zeros(num_streams, dtype=np.int64)
        self._entropy_weight = np.zeros(1)
        self.actor_out: np.ndarray = np.zeros((num_streams, head.num_outputs), dtype=np.float32)
        self.awaiting_observe = False
        self.frozen = False
        self.frozen_deterministic = True
        self._no_delta = np.zeros(num_streams)
        self._one_done = np.ones(1, dtype=bool)  # the done mask of a single stream's episode end
        self.stats = LearnerStats()
        self.spike_sums: list[Tensor] = []

    # ------------------------------------------------------------------------------- freeze
    def freeze(self, deterministic: bool = True) -> None:
        """Stop learning: :meth:`act` then runs the actor without traces (no critic, no update) and
        :meth:`observe` only resets the streams whose episode ended; weights stay as they are.

        ``deterministic``: act with the distribution's mode (else keep sampling).
        """
        if self.awaiting_observe:
            raise RuntimeError("freeze() between act() and observe(): call observe(...) first")
        self.frozen, self.frozen_deterministic = True, deterministic

    def unfreeze(self) -> None:
        """Learn again from the next :meth:`act`. Traces were not kept while frozen, so every stream
        starts afresh (network state and traces zero, as at an episode start)."""
        if self.frozen:
            self.frozen = False
            self.reset_state()

    # ---------------------------------------------------------------------------------- act
    def act(self, obs: Observations) -> np.ndarray:
        """Actions for observations ``[B, obs_dim]``, as the environment takes them (``[B]`` indices, or
        ``[B, A]`` in the ``Box`` bounds); advances state and traces. The array is reused by the next
        call. Must be followed by :meth:`observe` before the next call (unless frozen).
        """
        if self.frozen:
            out = self.actor_engine.step_array(obs, traces=False)
            self.actor_out = out
            self.actions, env_actions = self.head.sample_for_env(out, self.frozen_deterministic)
            return env_actions
        self._check_can_act()
        self._step_pending_critic(obs)
        out = self.actor_engine.step_array(obs)  # a view of the engine's buffer, valid until the next step
        self.actor_out = out
        self.actions, env_actions = self.head.sample_for_env(out, deterministic=False)
        self._acted()
        return env_actions

    def act_fused(self, fused: FusedGaussianAct) -> np.ndarray | None:
        """:meth:`act` for one stream through a :class:`~reflect.kernels.policy.FusedGaussianAct` (the
        raw observation already in ``fused.row``; it normalises too). ``None``, with nothing changed
        but the sampler's random state, if the observation is not finite."""
        learning = not self.frozen
        if learning:
            self._check_can_act()
        if not fused(learning, deterministic=not learning and self.frozen_deterministic):
            return None
        self.actor_out = self.actor_engine.compiled.output  # type: ignore[union-attr]
        self.actions = fused.raw
        if learning:
            self._step_pending_critic(fused.inputs)
            self._acted()
        return fused.env

    def _check_can_act(self) -> None:
        if self.awaiting_observe:
            raise RuntimeError("act() was called twice without observe(): call observe(...) after each act()")

    def _step_pending_critic(self, obs: Observations) -> None:
        """At an episode's first step: the critic steps on its first observation."""
        if self._any_pending:
            if self.critic_engine is not None:
                self._step_critic(obs, self.critic_pending)
            self.critic_pending[:] = False
            self._any_pending = False

    def _acted(self) -> None:
        if self.spike_sums:
            for total, spikes in zip(self.spike_sums, self._spike_sources(), strict=True):
                total.add_(spikes)
        self.awaiting_observe = True

    def _step_critic(self, obs: Observations, rows: np.ndarray) -> None:
        """Step the critic on ``obs`` for the streams in ``rows`` only; store their ``V``."""
        assert self.critic_engine is not None
        engine = self.critic_engine
        assert self.critic is not None
        if rows.all():
            self.values[:] = engine.step_array(obs)[:, 0]
            self.critic.compute_fresh()
            return
        saved = {name: t.clone() for name, t in engine.state_tensors().items()}
        out = engine.step_array(obs)[:, 0]
        self.values[rows] = out[rows]
        self.critic.compute_fresh(rows)
        keep_old = torch.from_numpy(~rows)
        for name, t in engine.state_tensors().items():
            old = saved[name]
            mask = keep_old.view(-1, *([1] * (t.dim() - 1)))
            t.copy_(torch.where(mask, old, t))

    # ------------------------------------------------------------------------------ observe
    def observe(
        self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, next_obs: Observations
    ) -> np.ndarray:
        """One online update from the transition of the last :meth:`act`; returns ``delta`` ``[B]``.

        ``next_obs`` ``[B, obs_dim]``: the observation that followed (for a stream whose episode
        ended, its final observation, used to bootstrap a truncation). When frozen, nothing is
        learned: streams whose episode ended are reset and ``delta`` is zero.
        """
        if self.num_streams == 1:
            ended = (bool(terminated[0]), bool(truncated[0]))
            return np.array([self.observe_one(float(reward[0]), *ended, next_obs)])
        if self.frozen:
            done = terminated | truncated
            if done.any():
                self.actor_engine.reset(done)
            return self._no_delta
        if not self.awaiting_observe:
            raise RuntimeError("observe() needs a preceding act() for the same step")
        delta = self._observe_many(reward, terminated, truncated, next_obs)
        done = terminated | truncated
        if done.any():
            self.end_episodes(done)
        self.awaiting_observe = False
        return delta

    def observe_one(self, reward: float, terminated: bool, truncated: bool, next_obs: Observations) -> float:
        """:meth:`observe` for one stream with plain scalars; returns ``delta``."""
        if self.frozen:
            if terminated or truncated:
                self.actor_engine.reset(self._one_done)
            return 0.0
        if not self.awaiting_observe:
            raise RuntimeError("observe() needs a preceding act() for the same step")
        delta = self._observe_one(reward, terminated, next_obs)
        if terminated or truncated:
            self.end_episodes(self._one_done)
        self.awaiting_observe = False
        return delta

    def _third_factor(self, reward: float, terminated: bool, next_obs: Observations) -> float:
        config = self.config
        if self.critic is None:
            delta = reward - self.reward_baseline
            self.reward_baseline += config.baseline_rate * delta
            return delta
        assert self.critic_engine is not None
        self.critic.absorb()  # z_w <- gamma lambda z_w + grad V(h_t), computed when V(h_t) was
        next_value = float(self.critic_engine.step_array(next_obs)[0, 0])
        self.critic.compute_fresh()  # grad V(h_{t+1}) with the weights that produced it
        delta = reward + (0.0 if terminated else config.gamma * next_value) - float(self.values[0])
        self.values[0] = next_value
        return delta

    def _observe_one(self, reward: float, terminated: bool, next_obs: Observations) -> float:
        """The single-stream update in plain floats (the latency-critical path)."""
        delta = self._third_factor(reward, terminated, next_obs)
        if not math.isfinite(delta):
            raise _bad_delta(delta, reward)
        weight = self.config.entropy_coef * (1.0 if delta > 0 else -1.0 if delta < 0 else 0.0)
        self._entropy_weight[0] = weight
        self.head.score(self.actor_out, self.actions, self._entropy_weight, self.actor.signal_np)
        self.actor.accumulate()
        actor_step, actor_l1 = self.actor.apply_one(delta)
        if self.actor.extra_params is not None:
            self.head.refresh()
        critic_step, critic_l1 = self.critic.apply_one(delta) if self.critic is not None else (0.0, 0.0)
        self._record_one(delta, actor_step, actor_l1, critic_step, critic_l1)
        return delta

    def observe_fused(
        self, fused: FusedObserve, reward: float, terminated: bool, truncated: bool
    ) -> float | None:
        """:meth:`observe_one` through a :class:`~reflect.kernels.observe.FusedObserve` (the raw next
        observation already in ``fused.row``; it normalises too). ``None``, with nothing changed, if
        that observation is not finite; the other errors are :meth:`observe_one`'s."""
        if self.frozen:
            return self.observe_one(reward, terminated, truncated, fused.row)
        if not self.awaiting_observe:
            raise RuntimeError("observe() needs a preceding act() for the same step")
        status = fused(reward, terminated)
        if status == BAD_OBSERVATION:
            return None
        delta, actor_step, actor_l1, critic_step, critic_l1 = fused.results.tolist()
        if status == BAD_DELTA:
            raise _bad_delta(delta, reward)
        self._record_one(delta, actor_step, actor_l1, critic_step, critic_l1)
        if terminated or truncated:
            self.end_episodes(self._one_done)
        self.awaiting_observe = False
        return delta

    def _record_one(self, delta: float, actor_step: float, actor_l1: float, critic_step: float,
                    critic_l1: float) -> None:
        """Refuse non-finite trace norms (before they spread), then add the step to the statistics."""
        if not math.isfinite(critic_l1):
            raise FloatingPointError("non-finite eligibility trace in the critic: stopping before it spreads")
        if not math.isfinite(actor_l1):
            raise FloatingPointError("non-finite eligibility trace in the actor: stopping before it spreads")
        stats = self.stats
        stats.steps += 1
        stats.abs_td += abs(delta)
        stats.actor_trace_l1 += actor_l1
        stats.actor_step += actor_step
        stats.critic_step += critic_step

    def _observe_many(
        self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, next_obs: Observations
    ) -> np.ndarray:
        config = self.config
        if self.critic is not None:
            assert self.critic_engine is not None
            self.critic.absorb()
            next_values = self.critic_engine.step_array(next_obs)[:, 0].astype(np.float64)
            self.critic.compute_fresh()
            delta = reward + config.gamma * np.where(terminated, 0.0, next_values) - self.values
            self.values = next_values
        else:
            delta = reward - self.reward_baseline
            self.reward_baseline += config.baseline_rate * float(reward.mean() - self.reward_baseline)
        if not np.isfinite(delta).all():
            raise FloatingPointError(
                f"non-finite reward prediction error {delta.tolist()} (reward {reward.tolist()}): "
                "check the environment's rewards and observations"
            )
        self.head.score(
            self.actor_out, self.actions, config.entropy_coef * np.sign(delta), self.actor.signal_np
        )
        self.actor.accumulate()
        actor_steps, actor_l1 = self.actor.apply(delta)
        if self.actor.extra_params is not None:
            self.head.refresh()
        if not np.isfinite(actor_l1).all():
            raise FloatingPointError("non-finite eligibility trace in the actor: stopping before it spreads")
        if self.critic is not None:
            critic_steps, critic_l1 = self.critic.apply(delta)
            if not np.isfinite(critic_l1).all():
                raise FloatingPointError(
                    "non-finite eligibility trace in the critic: stopping before it spreads"
                )
            self.stats.critic_step += float(critic_steps.mean())
        stats = self.stats
        stats.steps += 1
        stats.abs_td += float(np.abs(delta).mean())
        stats.actor_trace_l1 += float(actor_l1.mean())
        stats.actor_step += float(actor_steps.mean())
        return delta

    def end_episodes(self, done: np.ndarray) -> None:
        """Zero network state and all traces of the streams in ``done`` (``[B]`` bool)."""
        self.actor.reset(done)
        self.actor_engine.reset(done)
        if self.critic is not None and self.critic_engine is not None:
            self.critic.reset(done)
            self.critic_engine.reset(done)
        self.critic_pending |= done
        self._any_pending = bool(self.critic_pending.any())

    def reset_state(self) -> None:
        """Start every stream afresh (state and traces zero); weights are kept."""
        self.end_episodes(np.ones(self.num_streams, dtype=bool))
        self.awaiting_observe = False

    # ---------------------------------------------------------------------------- spikes
    def _spike_sources(self) -> list[Tensor]:
        sources = list(self.actor_engine.spikes)
        if self.critic_engine is not None:
            sources += self.critic_engine.spikes
        return sources

    def layer_names(self) -> list[str]:
        """``actor.layers.0``, ..., ``critic.layers.0``, ...: names for spike-rate logging."""
        names = [f"actor.layers.{i}" for i in range(len(self.actor_engine.layers))]
        if self.critic_engine is not None:
            names += [f"critic.layers.{i}" for i in range(len(self.critic_engine.layers))]
        return names

    def track_spikes(self, enabled: bool = True) -> None:
        """Accumulate spike counts per layer at every :meth:`act` (read with :meth:`pop_spike_rates`)."""
        self.spike_sums = [s.new_zeros(s.shape) for s in self._spike_sources()] if enabled else []

    def pop_spike_rates(self, steps: int) -> dict[str, float]:
        """Mean firing probability per layer over the last ``steps`` acts; clears the counts."""
        rates = {}
        for name, total in zip(self.layer_names(), self.spike_sums, strict=True):
            rates[name] = float(total.mean()) / max(steps, 1)
            total.zero_()
        return rates

    # ------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything that carries information forward, as tensors and plain types."""
        if self.awaiting_observe:
            raise RuntimeError("cannot save between act() and observe(): save after observe()")
        state: dict[str, Any] = {
            "actor_engine": {k: t.clone() for k, t in self.actor_engine.state_tensors().items()},
            "actor_traces": self.actor.z.clone(),
            "values": torch.from_numpy(self.values.copy()),
            "critic_pending": torch.from_numpy(self.critic_pending.copy()),
            "reward_baseline": self.reward_baseline,
            "head_rng": self.head.rng_state(),
        }
        if self.actor.extra_params is not None:
            state["actor_extra_traces"] = torch.from_numpy(self.actor.extra_z.copy())
        if self.critic is not None and self.critic_engine is not None:
            state["critic_engine"] = {k: t.clone() for k, t in self.critic_engine.state_tensors().items()}
            state["critic_traces"] = self.critic.z.clone()
            state["critic_fresh"] = self.critic.fresh.clone()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (network weights are loaded separately)."""
        engines = [("actor", self.actor_engine, self.actor)]
        if self.critic is not None and self.critic_engine is not None:
            engines.append(("critic", self.critic_engine, self.critic))
        for name, engine, group in engines:
            saved = state[f"{name}_engine"]
            for key, t in engine.state_tensors().items():
                t.copy_(saved[key])
            group.z.copy_(state[f"{name}_traces"])
            if f"{name}_fresh" in state:
                group.fresh.copy_(state[f"{name}_fresh"])
        self.values[:] = state["values"].numpy()
        self.critic_pending[:] = state["critic_pending"].numpy()
        self._any_pending = bool(self.critic_pending.any())
        self.reward_baseline = float(state["reward_baseline"])
        self.head.set_rng_state(dict(state["head_rng"]))
        if self.actor.extra_params is not None:
            self.actor.extra_z[...] = state["actor_extra_traces"].numpy()
        self.head.refresh()  # the head's parameters may have been loaded too
        self.awaiting_observe = False
