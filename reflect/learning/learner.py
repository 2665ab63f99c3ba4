"""The learner interface, the registry of learners, and the REFLECT learner they share.

The agent, the training loop, the control loop and callbacks depend on :class:`Learner` only: ``act``,
``observe``, ``freeze``/``unfreeze``, ``reset_state``, ``state_dict``/``load_state_dict`` and ``stats``.
Learners register themselves by their ``learner.third_factor`` name (:func:`register_learner`);
:func:`learner_class` looks one up. The two REFLECT variants,
:class:`~reflect.learning.actor_critic.ActorCriticLearner` (``td``) and
:class:`~reflect.learning.reward_baseline.RewardBaselineLearner` (``reward-baseline``), are
:class:`ReflectLearner` with their own third factor.

:class:`ReflectLearner` owns its steps: the backend chosen once for both networks
(:func:`reflect.traces.backends.select_backend`) decides whether the one template of the REFLECT act and
observe (:mod:`reflect.kernels.reflect_step`) runs as one compiled call each (numba, direct encoders) or
as Python over array sub-steps (:mod:`reflect.learning.array_ops`).
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from reflect.kernels import learning_ops, reflect_step
from reflect.kernels.compiler import bind, step_bundle
from reflect.kernels.reflect_step import (
    ABS_DELTA,
    ACTOR_INPUT,
    ACTOR_L1,
    ACTOR_OUTPUT,
    ACTOR_SCALE,
    ACTOR_STEP,
    ALL,
    BAD_ACTOR_TRACE,
    BAD_CRITIC_TRACE,
    BAD_DELTA,
    BAD_OBSERVATION,
    BASELINE,
    CRITIC_STEP,
    DELTA,
    DONE,
    ENTROPY_COEF,
    ENTROPY_COEF_SUM,
    ENTROPY_SUM,
    FLAGS,
    NUMBERS,
    OK,
    PENDING,
    RAW,
    REWARD,
    STEPS,
    TD_AVERAGE,
    TERMINATED,
    VALUES,
)
from reflect.kernels.specialize import specialize
from reflect.learning import array_ops
from reflect.learning.config import LearnerConfig
from reflect.learning.errors import non_finite_error
from reflect.learning.heads import PolicyHead
from reflect.learning.trace_group import TraceGroup
from reflect.registry import Registry
from reflect.spiking.encoders import DirectEncoder
from reflect.spiking.network import SpikingNetwork
from reflect.traces.backends import BackendChoice, select_backend
from reflect.traces.compiled_backend import network_kernels
from reflect.traces.engine import TraceEngine, engine_spec

SATURATION_RATE = 0.01  # the readout decay's running share of saturated draws spans about 100 steps


class LearnerStats:
    """Running sums of the per-step learning diagnostics (summed by the REFLECT step itself into
    :attr:`sums`: steps, ``|delta|``, the actor's step size and trace norm, the critic's step size and
    trace norm, the calm scale of the actor's step), read and cleared by :meth:`pop`."""

    def __init__(self) -> None:
        self.sums = np.zeros(9)

    @property
    def steps(self) -> int:
        return int(self.sums[STEPS])

    def clear(self) -> None:
        self.sums[:] = 0.0

    def pop(self) -> dict[str, float]:
        """Means since the last call: ``td_error``, ``trace_norm``, ``step_size``, ``critic_step_size``,
        ``actor_step_scale`` (the calm factor of the actor's step, 1 when ``learner.calm_target`` is 0),
        ``entropy`` (the policy's, nats) and ``entropy_coef`` (``learner.entropy_coef``, or its adapted value
        under ``learner.entropy_target``)."""
        n = max(self.steps, 1)
        sums = self.sums
        out = {
            "td_error": float(sums[ABS_DELTA]) / n,
            "trace_norm": float(sums[ACTOR_L1]) / n,
            "step_size": float(sums[ACTOR_STEP]) / n,
            "critic_step_size": float(sums[CRITIC_STEP]) / n,
            "actor_step_scale": float(sums[ACTOR_SCALE]) / n,
            "entropy": float(sums[ENTROPY_SUM]) / n,
            "entropy_coef": float(sums[ENTROPY_COEF_SUM]) / n,
        }
        self.clear()
        return out


class Learner(Protocol):
    """What the agent, the run loop, the control loop and callbacks need from a learner.

    ``act`` takes raw observations ``[B, obs_dim]`` (the learner normalises them) and returns the
    environment's actions; ``observe`` learns from the transition that followed and returns the third
    factor ``[B]``. ``state_dict`` holds everything that carries information forward except the network
    weights (plain types and tensors).
    """

    num_streams: int
    frozen: bool
    awaiting_observe: bool
    stats: LearnerStats
    backend: BackendChoice

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def observe(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                next_obs: np.ndarray) -> np.ndarray: ...

    def observe_one(self, reward: float, terminated: bool, truncated: bool,
                    next_obs: np.ndarray) -> float: ...

    def freeze(self, deterministic: bool = True) -> None: ...

    def unfreeze(self) -> None: ...

    def compile(self) -> float: ...

    def reset_state(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def track_spikes(self, enabled: bool = True) -> None: ...

    def pop_spike_rates(self, steps: int) -> dict[str, float]: ...

    def pop_diagnostics(self) -> dict[str, float]: ...

    def layer_names(self) -> list[str]: ...

    def policy_step(self, engine: TraceEngine, head: PolicyHead) -> tuple[np.ndarray, Callable[[bool], int]]:
        ...


def compile_steps(learner: Learner, verbose: int = 1, notice_after: float = 2.0) -> float:
    """``learner.compile()``, for a timed run (``reflect train``: ``steps_per_second`` then counts learning
    only) or before a control loop's first tick; when it takes longer than ``notice_after`` seconds (numba
    compiling a new combination) a line on stderr says what the wait is. Returns the seconds taken."""
    notice = threading.Timer(notice_after, lambda: print(
        f"compiling the {learner.backend.name} kernels for this network (once: later runs load them from "
        "the cache) ...", file=sys.stderr, flush=True))
    if verbose:
        notice.start()
    try:
        return learner.compile()
    finally:
        notice.cancel()


_LEARNERS: Registry[type[ReflectLearner]] = Registry("learner")


def register_learner(cls: type[ReflectLearner]) -> type[ReflectLearner]:
    """Register a learner class under its ``third_factor`` name; returns it."""
    return _LEARNERS.add(cls.third_factor, cls)


def learner_names() -> tuple[str, ...]:
    """The registered learners' names (``learner.third_factor`` values)."""
    return _LEARNERS.names()


def learner_class(name: str) -> type[ReflectLearner]:
    """The learner registered as ``name``; raises ``ValueError`` listing the registered ones."""
    return _LEARNERS.get(name)


@functools.cache
def compiled_steps(template: str, head_template: str, model_name: str,
                   surrogate_name: str) -> types.SimpleNamespace:
    """The REFLECT template compiled with the compiled sub-steps, for one learner variant, head, neuron
    model and surrogate; the network kernels are the engine's own (:func:`network_kernels`), so they
    compile once. numba's disk cache keeps the machine code between processes."""
    network = network_kernels(model_name, surrogate_name)
    bindings = {"network_forward": network.network_forward, "network_backward": network.network_backward,
                "network_reset": network.network_reset}
    modules = [learning_ops, importlib.import_module(head_template), reflect_step,
               importlib.import_module(template)]
    tag = f"{template.rsplit('.', 1)[-1]}_{head_template.rsplit('.', 1)[-1]}_{model_name}_{surrogate_name}"
    return specialize(modules, bindings, compiled=True, tag=tag)


@functools.cache
def interpreted_steps(template: str) -> types.SimpleNamespace:
    """The REFLECT template as Python over the array sub-steps, for one learner variant."""
    return specialize([reflect_step, importlib.import_module(template)], array_ops.BINDINGS, compiled=False)


class ReflectLearner:
    """Online three-factor learning for a spiking actor (and critic), ``B`` streams.

    Subclasses name their third factor (``third_factor``), whether they train a critic (``uses_critic``)
    and the module whose template functions compute it (``template``).

    Args:
        actor: readout size = ``head.num_outputs``.
        critic: readout size 1 (only for a learner that uses one).
        head: the action distribution (see :mod:`reflect.learning.heads`).
        config: hyperparameters.
        num_streams: ``B``, one lifetime per stream; updates are averaged over streams.
        trace_algorithm: ``"pp-prop"`` or ``"d-rtrl"``.
        normalizer: the running observation normaliser applied inside :meth:`act` and :meth:`observe`
            (an object with ``prepare(raw, out, update)`` and ``compiled_handle()``, e.g.
            :class:`reflect.envs.ObservationNormalizer`), or ``None`` for raw observations.
        backend: ``"numba"``, ``"numpy"``, ``"torch"``, or ``None`` to choose
            (:func:`reflect.traces.backends.select_backend`).
    """

    third_factor: ClassVar[str] = ""
    uses_critic: ClassVar[bool] = False
    template: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> ReflectLearner:
        """``ReflectLearner(...)`` builds the learner registered for ``config.third_factor``."""
        if cls is ReflectLearner:
            config = kwargs.get("config", args[3] if len(args) > 3 else None)
            cls = learner_class(config.third_factor if config is not None else "td")
        return super().__new__(cls)

    def __init__(
        self,
        actor: SpikingNetwork,
        critic: SpikingNetwork | None,
        head: PolicyHead,
        config: LearnerConfig,
        *,
        num_streams: int = 1,
        trace_algorithm: str = "pp-prop",
        normalizer: Any = None,
        backend: str | None = None,
    ) -> None:
        if self.uses_critic and critic is None:
            raise ValueError(f"learner {self.third_factor!r} needs a critic network")
        if not self.uses_critic:
            critic = None
        if actor.out_features != head.num_outputs:
            raise ValueError(
                f"actor readout has {actor.out_features} outputs, the head needs {head.num_outputs}"
            )
        if critic is not None and critic.out_features != 1:
            raise ValueError(f"critic readout must have 1 output, got {critic.out_features}")
        self.config, self.head, self.num_streams = config, head, num_streams
        networks = [actor] if critic is None else [actor, critic]
        self.backend = select_backend([engine_spec(net) for net in networks], backend)
        self.actor_engine = TraceEngine(actor, num_streams, algorithm=trace_algorithm, backend=self.backend)
        self.actor = TraceGroup(self.actor_engine, config.gamma * config.lam, config.actor_lr,
                                config.actor_kappa)
        head.prepare(num_streams)
        head.refresh()
        if head.extra_params is not None and head.extra_grad is not None:  # e.g. a Gaussian log-std
            self.actor.attach_extra(head.extra_params, head.extra_grad, head.extra_lr_scale)
        self.critic_engine: TraceEngine | None = None
        self.critic: TraceGroup | None = None
        if critic is not None:
            self.critic_engine = TraceEngine(critic, num_streams, algorithm=trace_algorithm,
                                             backend=self.backend)
            self.critic = TraceGroup(self.critic_engine, config.gamma * config.value_lam, config.critic_lr,
                                     config.critic_kappa)
        self.normalizer = normalizer
        self.stats = LearnerStats()
        self.frozen = False
        self.frozen_deterministic = True
        self.awaiting_observe = False
        self.spike_sums: list[Tensor] = []
        self.compiled = self.backend.name == "numba" and all(
            isinstance(net.encoder, DirectEncoder) for net in networks)
        self._build_io(actor, self.compiled)
        self._bind_steps()
        self._env_actions = head.env_actions  # the head's buffer (stable: its batch size is fixed)
        self._maybe_pending = True  # True whenever a stream may wait for its critic's first step
        self._readout_keep = 1.0 - config.actor_readout_decay
        self.readout_saturation = 0.0  # running share of draws at their action bound (the decay's gate)
        # the actor readout's weights and bias (one packed array, shared with every backend's kernels)
        self._decayed_readout: np.ndarray | None = (
            actor.readout.packed.numpy() if config.actor_readout_decay > 0.0 else None
        )

    @property
    def _calm_start(self) -> float:
        """Where the running mean ``|delta|`` starts: at the calm actor step's target and the head's noise
        calm target, whichever is larger, so neither scale acts before the critic's errors fall."""
        return max(self.config.calm_target, self.head.noise_calm_target)

    # ------------------------------------------------------------------------------- wiring
    def _build_io(self, actor: SpikingNetwork, compiled: bool) -> None:
        batch, dims = self.num_streams, actor.in_features
        engine, critic = self.actor_engine, self.critic_engine

        def input_buffer(e: TraceEngine) -> np.ndarray:
            # compiled: the whole presynaptic buffer (one array type for every batch size), observation
            # in its first columns; arrays: the observation buffer itself
            return e.layer_buffers[0]["z"].numpy() if compiled else e.observation_np  # type: ignore[return-value]

        self.raw = np.zeros((batch, dims))
        # rows: reward, delta, V(h_t), entropy weight, baseline, the running mean |delta|, entropy,
        # the entropy coefficient
        self.numbers = np.zeros((8, batch))
        self.flags = np.zeros((4, batch), dtype=bool)  # rows: terminated, done, critic pending, all True
        self.reward, self.delta, self.values = self.numbers[REWARD], self.numbers[DELTA], self.numbers[VALUES]
        self.baseline = self.numbers[BASELINE, :1]  # the running reward mean of the reward-baseline learner
        self.td_average = self.numbers[TD_AVERAGE, :1]  # the running mean |delta| (calm step and noise)
        self.td_average[0] = self._calm_start  # starts calm-neutral: scale 1 until errors fall
        self.entropy_coef = self.numbers[ENTROPY_COEF, :1]  # adapted under an entropy target
        self.entropy_coef[0] = self.config.initial_entropy_coef
        self.terminated, self.done = self.flags[TERMINATED], self.flags[DONE]
        self.critic_pending = self.flags[PENDING]  # the critic has not seen this episode's first step
        self.critic_pending[:] = True
        self.flags[ALL] = True
        self.signal = engine.output.new_zeros(engine.output.shape).numpy()
        ones = np.ones((batch, 1), dtype=self.signal.dtype)
        actor_input = input_buffer(engine)
        critic_input = input_buffer(critic) if critic is not None else np.zeros_like(actor_input)
        critic_output = (critic.output_np if critic is not None
                         else np.zeros((batch, 1), dtype=self.signal.dtype))
        self.io = (self.raw, actor_input, critic_input, engine.output_np, critic_output, self.signal, ones,
                   self.numbers, self.flags)
        config = self.config
        adapting = config.entropy_target is not None
        self.settings = np.array([config.gamma, config.actor_lr, config.actor_kappa, config.critic_lr,
                                  config.critic_kappa, config.baseline_rate, config.calm_target,
                                  1.0 / config.calm_steps, config.calm_floor,
                                  config.entropy_target if adapting else 0.0,
                                  config.entropy_rate if adapting else 0.0])
        self.results = self.stats.sums  # the step adds its statistics here
        self._one_done = np.ones(1, dtype=bool)
        self._done_buffer = np.zeros(batch, dtype=bool)

    def _bind_steps(self) -> None:
        """Bind the act and observe of this learner's backend to its buffers."""
        critic_engine = self.critic_engine or self.actor_engine
        critic_group = self.critic or self.actor
        self._unbound: dict[str, tuple[Any, tuple[Any, ...]]] = {}  # compiled entries not bound yet
        if self.compiled:
            steps = compiled_steps(self.template, self.head.compiled_template, self.actor_engine.model.name,
                                   self.actor_engine.surrogate.name)
            norm = (self.normalizer.compiled_handle() if self.normalizer is not None
                    else _no_normalizer(self.raw.shape[1]))
            actor, critic = _net(self.actor_engine), _net(critic_engine)
            head, actor_traces = self.head.compiled_handle(), self.actor.compiled_handle()
            critic_traces = critic_group.compiled_handle()
            # one handle for every entry: a call from Python unboxes one pointer, not every buffer
            self._bundle = step_bundle(norm, actor, critic, head, actor_traces, critic_traces, self.io,
                                       self.settings, self.results, self._done_buffer)
            self._steps = steps
            self._shared_parts: tuple[Any, ...] = (norm, critic, actor_traces, critic_traces)
            # each entry is compiled (or loaded from numba's cache) on its first call or by compile(), then
            # called directly
            for attr, name, examples in (
                ("_act_pending", "act_entry", (True, True)), ("_act_plain", "act_plain_entry", (True, True)),
                ("_observe", "observe_entry", ()), ("_observe_one", "observe_one_entry", (1.0, True, True)),
                ("_reset", "reset_entry", ()),
            ):
                setattr(self, attr, self._lazy_entry(attr, getattr(steps, name), examples))
        else:
            steps = interpreted_steps(self.template)
            norm_stage = array_ops.InputStage(self.normalizer)
            self._steps, self._shared_parts = steps, (norm_stage,)
            parts = (self.actor_engine, critic_engine, self.head)
            self._act_pending = functools.partial(steps.act, norm_stage, *parts, critic_group, self.io)
            self._act_plain = self._act_pending
            self._observe = functools.partial(steps.observe, norm_stage, *parts, self.actor, critic_group,
                                              self.io, self.settings, self.results)
            self._observe_one = self._observe_scalars
            self._reset = functools.partial(steps.reset_streams, self.actor_engine, critic_engine, self.actor,
                                            critic_group, self.io, self._done_buffer)

    def compile(self) -> float:
        """Compile every step of this learner now (or load it from numba's disk cache) rather than at its
        first call, so that no timed step and no control-loop tick pays for it; returns the seconds taken
        (about 30 s for a new combination of learner, head, neuron model and surrogate, well under a
        second from the cache, 0 on the array backends)."""
        start = time.perf_counter()
        for attr in list(self._unbound):
            self._bind_entry(attr)
        return time.perf_counter() - start

    def _lazy_entry(self, attr: str, kernel: Any, examples: tuple[Any, ...]) -> Any:
        """A callable that binds ``kernel`` to this learner's bundle at its first call and puts the bound
        call in ``self.<attr>`` (later calls skip this wrapper)."""
        self._unbound[attr] = (kernel, examples)

        def first_call(*args: Any) -> Any:
            return self._bind_entry(attr)(*args)
        return first_call

    def _bind_entry(self, attr: str) -> Any:
        kernel, examples = self._unbound.pop(attr)
        bound = bind(kernel, (self._bundle,), examples)
        setattr(self, attr, bound)
        return bound

    def policy_step(self, engine: TraceEngine, head: PolicyHead) -> tuple[np.ndarray, Callable[[bool], int]]:
        """A frozen policy's step for ``engine`` (another engine of this learner's actor, its own state)
        and ``head`` (spawned from this learner's): the raw-observation buffer ``[B, obs_dim]`` to fill,
        and ``step(deterministic)``, which normalises it with this learner's statistics (left
        unchanged), steps ``engine`` without traces and samples into ``head.env_actions``; it returns a
        status (``OK``, or ``BAD_OBSERVATION`` for NaN or inf). Call ``head.draw(deterministic)`` first.

        It is the act of :mod:`reflect.kernels.reflect_step` with learning off, on the same backend as
        this learner: one compiled call where the learner's steps are compiled (same code, nothing new
        to compile)."""
        batch = engine.batch_size
        head.prepare(batch)
        head.refresh()
        io: list[np.ndarray] = [
            np.zeros((a.shape[0], batch) if k in (NUMBERS, FLAGS) else (batch, *a.shape[1:]), dtype=a.dtype)
            for k, a in enumerate(self.io)]
        io[FLAGS][ALL] = True
        compiled = self.compiled and engine.compiled is not None and isinstance(engine.network.encoder,
                                                                                 DirectEncoder)
        actor_input = engine.layer_buffers[0]["z"].numpy() if compiled else engine.observation_np
        assert actor_input is not None and engine.output_np is not None  # CPU buffers (compiled or numpy)
        io[ACTOR_INPUT], io[ACTOR_OUTPUT] = actor_input, engine.output_np
        raw = io[RAW]
        if compiled:
            norm, critic, actor_traces, critic_traces = self._shared_parts
            handle = step_bundle(norm, _net(engine), critic, head.compiled_handle(), actor_traces,
                                 critic_traces, tuple(io), self.settings, np.zeros_like(self.results),
                                 np.zeros(batch, dtype=bool))
            bound = bind(self._steps.act_plain_entry, (handle,), (True, True))
            return raw, functools.partial(bound, False)
        parts = types.SimpleNamespace(norm=self._shared_parts[0], actor=engine, head=head, io=tuple(io))
        return raw, functools.partial(self._steps.act_plain_entry, parts, False)

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
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions for raw observations ``[B, obs_dim]`` as the environment takes them (``[B]`` indices,
        or ``[B, A]`` in the ``Box`` bounds); normalises (updating the statistics while learning) and
        advances state and traces. The array is reused by the next call. Must be followed by
        :meth:`observe` before the next call (unless frozen)."""
        learning = not self.frozen
        if learning and self.awaiting_observe:
            raise RuntimeError("act() was called twice without observe(): call observe(...) after each act()")
        self.raw[...] = obs
        deterministic = not learning and self.frozen_deterministic
        self.head.draw(deterministic, float(self.td_average[0]))
        if learning and self._maybe_pending:  # a stream's critic waits for its episode's first step
            status = self._act_pending(learning, deterministic)
            self._maybe_pending = False
        else:
            status = self._act_plain(learning, deterministic)
        if status != OK:
            raise non_finite_error(self.raw, "observation")
        if learning:
            if self.spike_sums:
                for total, spikes in zip(self.spike_sums, self._spike_sources(), strict=True):
                    total.add_(spikes)
            self.awaiting_observe = True
        return self._env_actions

    @property
    def actions(self) -> np.ndarray:
        """The last step's actions as the head scores them (indices, or pre-squash ``u``)."""
        return self.head.actions  # type: ignore[attr-defined]

    @property
    def actor_out(self) -> np.ndarray:
        """The actor's readout of the last step ``[B, out]``."""
        return self.actor_engine.output_np  # type: ignore[return-value]

    # ------------------------------------------------------------------------------ observe
    def observe(
        self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, next_obs: np.ndarray
    ) -> np.ndarray:
        """One online update from the transition of the last :meth:`act`; returns ``delta`` ``[B]`` (a
        buffer reused by the next call).

        ``next_obs`` ``[B, obs_dim]`` (raw): the observation that followed (for a stream whose episode
        ended, its final observation, used to bootstrap a truncation). When frozen, nothing is
        learned: streams whose episode ended are reset and ``delta`` is zero.
        """
        np.logical_or(terminated, truncated, out=self.done)
        if self.frozen:
            if self.done.any():
                self._reset_streams(self.done)
            self.delta[:] = 0.0
            return self.delta
        if not self.awaiting_observe:
            raise RuntimeError("observe() needs a preceding act() for the same step")
        self.raw[...] = next_obs
        self.reward[...] = reward
        self.terminated[...] = terminated
        self._run_observe()
        return self.delta

    def observe_one(self, reward: float, terminated: bool, truncated: bool, next_obs: np.ndarray) -> float:
        """:meth:`observe` for one stream with plain scalars; returns ``delta``."""
        done = terminated or truncated
        if self.frozen:
            if done:
                self._reset_streams(self._one_done)
            return 0.0
        if not self.awaiting_observe:
            raise RuntimeError("observe() needs a preceding act() for the same step")
        self.raw[...] = next_obs
        status = self._observe_one(reward, terminated, done)
        if status != OK:
            raise self._error(status)
        self.awaiting_observe = False
        if self._decayed_readout is not None:
            self._decay_readout(self._decayed_readout)
        if done:
            self._maybe_pending = True
        return float(self.delta[0])

    def _observe_scalars(self, reward: float, terminated: bool, done: bool) -> int:
        self.reward[0], self.terminated[0], self.done[0] = reward, terminated, done
        return int(self._observe())

    def _run_observe(self) -> None:
        status = self._observe()
        if status != OK:
            raise self._error(status)
        self.awaiting_observe = False
        if self._decayed_readout is not None:
            self._decay_readout(self._decayed_readout)
        self._maybe_pending = self._maybe_pending or bool(self.done.any())

    def _decay_readout(self, packed: np.ndarray) -> None:
        """``learner.actor_readout_decay`` ``d``: ``S <- S + (share - S) / 100`` for the share of this
        step's draws at their action bound, then, while ``S >= learner.readout_decay_gate``,
        ``W_out <- (1 - d) W_out`` and ``b_out <- (1 - d) b_out`` (``packed``: the readout's weights and
        bias), in place."""
        self.readout_saturation += (self.head.saturated_share() - self.readout_saturation) * SATURATION_RATE
        if self.readout_saturation >= self.config.readout_decay_gate:
            np.multiply(packed, self._readout_keep, out=packed)

    def _error(self, status: int) -> Exception:
        if status == BAD_OBSERVATION:
            return non_finite_error(self.raw, "observation")
        if status == BAD_DELTA:
            return FloatingPointError(
                f"non-finite reward prediction error {self.delta.tolist()} (reward {self.reward.tolist()}): "
                "check the environment's rewards and observations"
            )
        group, name = (self.actor, "actor") if status == BAD_ACTOR_TRACE else (self.critic, "critic")
        assert group is not None and status in (BAD_ACTOR_TRACE, BAD_CRITIC_TRACE)
        return FloatingPointError(
            f"non-finite eligibility trace in the {name} {group.describe_non_finite()}; stopped before "
            "the update (no weight changed)"
        )

    def _reset_streams(self, done: np.ndarray) -> None:
        self._done_buffer[...] = done
        self._reset()
        self._maybe_pending = True

    def end_episodes(self, done: np.ndarray) -> None:
        """Zero network state and all traces of the streams in ``done`` (``[B]`` bool)."""
        self._reset_streams(np.asarray(done, dtype=bool))

    def reset_state(self) -> None:
        """Start every stream afresh (state, traces and correlated exploration noise); weights are kept."""
        self._reset_streams(np.ones(self.num_streams, dtype=bool))
        self.head.restart_noise()
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

    def pop_diagnostics(self) -> dict[str, float]:
        """The learning statistics since the last call (:meth:`LearnerStats.pop`, cleared) and the head's
        current scalars (:meth:`PolicyHead.diagnostics`: for a Gaussian head ``std`` and
        ``noise_correlation``), logged as ``train/<name>``."""
        return {**self.stats.pop(), **self.head.diagnostics()}

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
            "engine_layout": 2,
            "actor_engine": {k: t.clone() for k, t in self.actor_engine.state_tensors().items()},
            "actor_traces": self.actor.z.clone(),
            "values": torch.from_numpy(self.values.copy()),
            "critic_pending": torch.from_numpy(self.critic_pending.copy()),
            "reward_baseline": float(self.baseline[0]),
            "td_average": float(self.td_average[0]),
            "entropy_coef": float(self.entropy_coef[0]),
            "readout_saturation": self.readout_saturation,
            "head_rng": self.head.rng_state(),
            "head_noise": torch.from_numpy(self.head.carried_noise()),
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
            engine.load_state_tensors(state[f"{name}_engine"])
            group.z.copy_(state[f"{name}_traces"])
            if f"{name}_fresh" in state:
                group.fresh.copy_(state[f"{name}_fresh"])
        self.values[:] = state["values"].numpy()
        self.critic_pending[:] = state["critic_pending"].numpy()
        self.baseline[0] = float(state["reward_baseline"])
        # a checkpoint from before the calm actor step: start calm-neutral, as a new learner does
        self.td_average[0] = float(state.get("td_average", self._calm_start))
        self.readout_saturation = float(state.get("readout_saturation", 0.0))
        if self.config.entropy_target is not None:  # an adapted coefficient carries on where it was
            self.entropy_coef[0] = float(state.get("entropy_coef", self.config.initial_entropy_coef))
        self.head.set_rng_state(dict(state["head_rng"]))
        # correlated exploration noise carries on (a checkpoint from before it, or white noise: restarts)
        self.head.set_carried_noise(state["head_noise"].numpy() if "head_noise" in state else np.zeros(0))
        if self.actor.extra_params is not None:
            self.actor.extra_z[...] = state["actor_extra_traces"].numpy()
        self.head.refresh()  # the head's parameters may have been loaded too
        self.awaiting_observe = False
        self._maybe_pending = True


def _net(engine: TraceEngine) -> Any:
    kernels = engine.compiled
    assert kernels is not None
    return kernels.net


def _no_normalizer(dims: int) -> tuple[np.ndarray, ...]:
    off = np.zeros(1, dtype=np.int64)
    return (np.zeros(dims), np.ones(dims), np.zeros(1, dtype=np.int64), np.ones(2), off)


def make_learner(actor: SpikingNetwork, critic: SpikingNetwork | None, head: PolicyHead,
                 config: LearnerConfig, **kwargs: Any) -> ReflectLearner:
    """The learner named by ``config.third_factor`` (see :func:`register_learner`)."""
    return learner_class(config.third_factor)(actor, critic, head, config, **kwargs)


__all__ = [
    "Learner", "LearnerStats", "ReflectLearner", "compiled_steps", "interpreted_steps", "learner_class",
    "learner_names", "make_learner", "register_learner",
]
