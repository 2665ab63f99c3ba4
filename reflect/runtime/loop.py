"""``ControlLoop``: run an agent at a fixed rate against a robot's (or a simulator's) callables.

The contract (all callables run in the loop's thread, inside the tick budget)::

    read_observation() -> obs                      # [obs_dim] numbers: the sensors now
    apply_action(action) -> None                   # an int (Discrete) or an [A] float32 array (Box)
    reward_fn(obs, action, next_obs) -> reward     # a float, or (reward, terminated, truncated)
    reset_fn() -> obs | None                       # optional: start a new episode after one ended

``reward_fn`` judges the transition ``obs --action--> next_obs``; it is required when learning, and
when frozen it is optional (it then only gives episode returns and ends). An episode ends when it
returns ``terminated`` (no bootstrap: the task failed or succeeded) or ``truncated`` (a time limit:
the critic bootstraps from ``next_obs``). The agent then learns from the final observation, and the
loop calls ``reset_fn`` (if given; ``None`` from it means "read the first observation with
``read_observation()``"); without ``reset_fn`` the task simply continues from ``next_obs``. The
``action`` passed to ``apply_action`` and ``reward_fn`` is a buffer the agent reuses: copy it to
keep it. Observations are copied into the loop's own buffers, so ``read_observation`` may return the
same (updated in place) array every time.

Ordering within a tick. The agent learns from a transition before it acts on the observation that
ended it (``observe`` comes before the next ``act``), so a single thread has two ways to lay out a
tick; the calls come in the same sequence, only the tick boundary moves:

- ``"act-first"`` (default): ``act(obs) -> apply_action -> read_observation -> reward_fn -> observe``.
  The latency-critical part (act, apply) comes first; the learning update follows within the same
  tick, on the observation read right after the action. This is right when ``apply_action`` advances
  the world itself (a simulator stepped inside it, as the Gymnasium adapter does) or when
  ``read_observation`` waits for the sensor frame that follows the command.
- ``"sense-first"``: ``read_observation -> reward_fn -> observe -> act -> apply_action``. The sensors
  are read at the start of every tick and a transition spans a whole period, as a physical system
  whose state evolves between ticks needs; the learning update then lies between sensing and
  actuation (it must: the agent learns from the last transition before it acts on the new
  observation). When a run ends the loop waits one more period to read the observation that
  completes the last transition, so the agent is never left between ``act`` and ``observe``.

Deadlines. Tick ``k`` is scheduled at ``t0 + k * period`` and must end by its next boundary. A tick
that ends later counts as a deadline miss, and the next tick waits for the next boundary after it
ended (no burst of catch-up ticks); the boundaries passed over count as skipped periods.

Checkpoints. With ``checkpoint_path``, a learning loop saves the agent when it stops (its duration or
steps done, :meth:`ControlLoop.stop`, SIGINT or SIGTERM) and, with ``checkpoint_every_s`` or
``checkpoint_every_steps``, periodically (captured at a tick, written by a background thread; see
:mod:`reflect.runtime.checkpointing`). SIGINT / SIGTERM stop the loop at the next tick boundary (a
second Ctrl-C aborts at once, without saving); the previous handlers are restored when ``run``
returns. Resume by loading the checkpoint (``Reflect.load(path, env=...)``) and running a new loop:
learning, including ``agent.num_timesteps``, continues where it stopped.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reflect.learning import compile_steps
from reflect.runtime.checkpointing import CheckpointSchedule
from reflect.runtime.clock import Clock, RealClock
from reflect.runtime.latency import DEFAULT_CAPACITY, LatencyRecorder
from reflect.runtime.realtime import check_realtime_priority, realtime_scheduling
from reflect.runtime.report import LoopReport
from reflect.stop_signals import stop_on_signals

__all__ = ["MAX_RATE_HZ", "ORDERINGS", "WAIT_SLICE_NS", "ControlLoop", "check_rate_hz"]

ORDERINGS = ("act-first", "sense-first")
MAX_RATE_HZ = 10_000.0  # a period of 100 µs: below what one agent step takes on a CPU
_RATE_HINT = "control loops typically run at 100-1000 Hz; one agent step takes a few hundred µs on a CPU"
# a wait longer than this is slept in slices of it, so that Ctrl-C or stop() ends it within one slice
# (a signal handler runs during a sleep, but the sleep then continues to its end)
WAIT_SLICE_NS = 50_000_000


def check_rate_hz(rate_hz: Any) -> float:
    """``rate_hz`` as a float, or ValueError unless it is a finite number in ``(0, MAX_RATE_HZ]``."""
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, int | float | np.integer | np.floating):
        raise ValueError(f"rate_hz must be a number of ticks per second, got {rate_hz!r} ({_RATE_HINT})")
    rate = float(rate_hz)
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE_HZ):
        raise ValueError(
            f"rate_hz must be a finite number in (0, {MAX_RATE_HZ:,.0f}] Hz, got {rate_hz!r} ({_RATE_HINT})"
        )
    return rate


def _check_callable(name: str, value: Any, required: bool = True) -> None:
    if value is None:
        if required:
            raise TypeError(f"{name} is missing: pass a callable")
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__} {value!r}")


def _action_shape_of(spaces: Any) -> tuple[int, ...]:
    return () if spaces.action_kind == "discrete" else (int(spaces.num_actions),)


def _describe_action(spaces: Any) -> str:
    if spaces.action_kind == "discrete":
        return f"an int in [0, {spaces.num_actions})"
    return f"a float32 array of shape ({spaces.num_actions},)"


class ControlLoop:
    """Run ``agent`` at ``rate_hz`` against ``read_observation`` / ``apply_action`` / ``reward_fn``.

    Args:
        agent: a :class:`~reflect.agents.Reflect` agent with one stream (``train.num_envs=1``).
        read_observation, apply_action, reward_fn, reset_fn: see the module docstring.
        rate_hz: ticks per second, in ``(0, 10000]``.
        learn: learn online (the agent is unfrozen) or run frozen (``agent.freeze(deterministic)``; the
            agent stays frozen after the run).
        deterministic: when frozen, act with the policy's mode (else sample).
        ordering: ``"act-first"`` or ``"sense-first"`` (see the module docstring).
        action_shape: the shape ``apply_action`` expects (``()`` for an int); checked against the
            agent's actions at construction.
        clock: a :class:`~reflect.runtime.clock.Clock` (default: :class:`RealClock`).
        checkpoint_path: where a learning loop saves the agent (``.pt`` appended if no suffix).
        checkpoint_every_s / checkpoint_every_steps: periodic checkpoints (at most one of them).
        on_tick: ``on_tick(loop)`` at the end of every tick (``loop.tick`` ticks done); it may call
            ``loop.stop()`` or change the world (its time counts in the tick).
        on_episode: ``on_episode(episode_return, length)`` when an episode ends.
        handle_signals: turn SIGINT / SIGTERM into a clean stop while running (main thread only).
        freeze_gc: collect garbage once and freeze the surviving objects before running (``gc.freeze``),
            so that the collector's passes during the run stay short.
        realtime_priority: run the loop's thread with real-time scheduling (Linux ``SCHED_FIFO``, 1-99)
            while running; see :mod:`reflect.runtime.realtime`. ``None``: the ordinary scheduler.
        latency_capacity: ticks whose timings are kept for the percentiles (maxima cover the run).
    """

    def __init__(
        self,
        agent: Any,
        read_observation: Callable[[], Any],
        apply_action: Callable[[Any], Any],
        reward_fn: Callable[[Any, Any, Any], Any] | None = None,
        *,
        rate_hz: float,
        learn: bool = True,
        deterministic: bool = True,
        reset_fn: Callable[[], Any] | None = None,
        ordering: str = "act-first",
        action_shape: int | tuple[int, ...] | None = None,
        clock: Clock | None = None,
        checkpoint_path: str | Path | None = None,
        checkpoint_every_s: float | None = None,
        checkpoint_every_steps: int | None = None,
        on_tick: Callable[[ControlLoop], Any] | None = None,
        on_episode: Callable[[float, int], Any] | None = None,
        handle_signals: bool = True,
        freeze_gc: bool = True,
        realtime_priority: int | None = None,
        latency_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.rate_hz = check_rate_hz(rate_hz)
        self.period_ns = max(1, round(1e9 / self.rate_hz))
        for method in ("act", "observe", "freeze", "unfreeze", "save", "checkpoint"):
            if not callable(getattr(agent, method, None)):
                raise TypeError(f"agent has no {method}() method: pass a reflect.agents.Reflect agent")
        spaces = getattr(agent, "spaces", None)
        if spaces is None:
            raise TypeError("agent has no spaces: pass a reflect.agents.Reflect agent")
        num_envs = getattr(agent, "num_envs", 1)
        if num_envs != 1:
            raise ValueError(
                f"a control loop drives one stream, but the agent has {num_envs} "
                f"(train.num_envs={num_envs}): build it with train.num_envs=1, or load a trained one "
                "as one stream with Reflect.load(path, env=<one gymnasium env>)"
            )
        _check_callable("read_observation", read_observation)
        _check_callable("apply_action", apply_action)
        if learn and reward_fn is None:
            raise TypeError(
                "reward_fn is missing: a learning loop needs reward_fn(obs, action, next_obs) -> reward "
                "(or (reward, terminated, truncated)); pass learn=False to run frozen without one"
            )
        _check_callable("reward_fn", reward_fn, required=False)
        _check_callable("reset_fn", reset_fn, required=False)
        _check_callable("on_tick", on_tick, required=False)
        _check_callable("on_episode", on_episode, required=False)
        if ordering not in ORDERINGS:
            raise ValueError(f"ordering must be one of {list(ORDERINGS)}, got {ordering!r}")
        if clock is None:
            clock = RealClock()
        elif not isinstance(clock, Clock):
            raise TypeError(
                f"clock must have now_ns() and sleep_until(deadline_ns), got {type(clock).__name__}"
            )
        self.agent, self.spaces = agent, spaces
        self.action_shape = _action_shape_of(spaces)
        if action_shape is not None:
            expected = (action_shape,) if isinstance(action_shape, int) else tuple(action_shape)
            if expected != self.action_shape:
                raise ValueError(
                    f"apply_action expects actions of shape {expected}, but the agent's actions have shape "
                    f"{self.action_shape} ({_describe_action(spaces)}): use an agent built for this robot's "
                    "action space"
                )
        self.obs_shape = (int(spaces.obs_dim),)
        self.learn, self.deterministic, self.ordering = bool(learn), bool(deterministic), ordering
        self._read_observation, self._apply_action = read_observation, apply_action
        self._reward_fn, self._reset_fn = reward_fn, reset_fn
        self._on_tick, self._on_episode = on_tick, on_episode
        self.clock: Clock = clock
        self.handle_signals, self.freeze_gc = handle_signals, freeze_gc
        self.realtime_priority = (
            None if realtime_priority is None else check_realtime_priority(realtime_priority)
        )
        if checkpoint_path is None and (checkpoint_every_s is not None or checkpoint_every_steps is not None):
            raise ValueError("checkpoint_every_s / checkpoint_every_steps need a checkpoint_path")
        self.checkpoints = (
            None if checkpoint_path is None
            else CheckpointSchedule(checkpoint_path, checkpoint_every_s, checkpoint_every_steps)
        )
        self.recorder = LatencyRecorder(self.period_ns, latency_capacity)
        self._buffers = np.zeros((2, self.obs_shape[0]), dtype=np.float64)
        self.tick = 0  # ticks run by this loop, over all runs
        self.episodes: list[tuple[float, int]] = []  # episodes ended in the current (or last) run
        self.stop_reason: str | None = None
        self._episode_return, self._episode_length = 0.0, 0
        self._check_first_action = True
        self._misses = self._skipped = 0  # of the current (or last) run
        self._first_start = self._last_end = 0

    # ------------------------------------------------------------------------------ control
    def stop(self) -> None:
        """Stop at the next tick boundary (callable from ``on_tick``, a signal handler or another thread)."""
        if self.stop_reason is None:
            self.stop_reason = "stop()"

    def _on_signal(self, name: str) -> None:
        if self.stop_reason is not None and name == "SIGINT":
            raise KeyboardInterrupt  # a second Ctrl-C: abort at once
        self.stop_reason = name

    def run(self, duration_s: float | None = None, steps: int | None = None) -> LoopReport:
        """Run for ``duration_s`` seconds or ``steps`` ticks (at most one; neither: until :meth:`stop`,
        SIGINT or SIGTERM) and report deadline misses, latencies and episodes.

        A learning loop with a ``checkpoint_path`` saves the agent there when the run ends (not after
        an exception: the files written before stay as they were); if that path cannot be written, in a
        fallback folder (the report's ``checkpoint`` and ``save_error`` say where and why).
        """
        duration_ns = self._check_length(duration_s, steps)
        agent = self.agent
        learner = getattr(agent, "learner", None)
        if getattr(learner, "awaiting_observe", False):
            raise ValueError(
                "the agent is between act() and observe(): call agent.observe(...) or agent.reset_state() "
                "before running a control loop"
            )
        if self.learn:
            if not agent.learning:
                agent.unfreeze()
        else:
            agent.freeze(self.deterministic)
        if learner is not None and hasattr(learner, "compile"):
            compile_steps(learner)  # the first tick must not wait for numba
        self.stop_reason = None
        self.episodes = []
        self.recorder.clear()
        self._misses = self._skipped = 0
        self._first_start = self._last_end = 0
        if self.checkpoints is not None:
            self.checkpoints.reset_counts()
        freeze_gc = self.freeze_gc and gc.get_freeze_count() == 0  # leave a caller's own freeze alone
        if freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            with (
                stop_on_signals(self._on_signal, self.handle_signals),
                realtime_scheduling(self.realtime_priority),
            ):
                self._loop(duration_ns, steps)
        finally:
            if freeze_gc:
                gc.unfreeze()
            if self.checkpoints is not None:
                self.checkpoints.finish()
            if getattr(learner, "awaiting_observe", False):  # an exception between act and observe:
                agent.reset_state()  # drop that step and restart the episode, keep the weights
        saved, schedule = None, self.checkpoints
        if schedule is not None and self.learn:
            saved = schedule.save(agent)
        return LoopReport(
            rate_hz=self.rate_hz,
            ticks=self.recorder.count,
            misses=self._misses,
            skipped_periods=self._skipped,
            seconds=max(self._last_end - self._first_start, 0) / 1e9,
            learning=self.learn,
            ordering=self.ordering,
            latency=self.recorder.summary(),
            window=self.recorder.window,
            episodes=list(self.episodes),
            num_timesteps=int(getattr(agent, "num_timesteps", 0)),
            stopped_by=self.stop_reason,
            checkpoint=saved,
            checkpoints_written=0 if schedule is None else schedule.written,
            checkpoint_capture_max_us=0.0 if schedule is None else schedule.capture_max_ns / 1e3,
            checkpoint_error=None if schedule is None else schedule.error,
            save_error=None if schedule is None else schedule.save_error,
        )

    @staticmethod
    def _check_length(duration_s: float | None, steps: int | None) -> int | None:
        if duration_s is not None and steps is not None:
            raise ValueError("give duration_s or steps, not both")
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1
        ):
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if duration_s is None:
            return None
        if isinstance(duration_s, bool) or not isinstance(duration_s, int | float) or not (
            math.isfinite(duration_s) and duration_s > 0
        ):
            raise ValueError(f"duration_s must be a finite number of seconds > 0, got {duration_s!r}")
        return round(duration_s * 1e9)

    def _wait_until(self, deadline_ns: int) -> bool:
        """Sleep until ``deadline_ns`` on the loop's clock, in slices of at most :data:`WAIT_SLICE_NS`
        when the wait is longer; returns False as soon as a stop is requested (Ctrl-C, SIGTERM,
        :meth:`stop`) instead of sleeping on, True when the deadline was reached without one."""
        now, sleep_until = self.clock.now_ns, self.clock.sleep_until
        while deadline_ns - now() > WAIT_SLICE_NS:
            sleep_until(now() + WAIT_SLICE_NS)
            if self.stop_reason is not None:
                return False
        sleep_until(deadline_ns)
        return self.stop_reason is None

    # --------------------------------------------------------------------------------- ticks
    def _store(self, raw: Any, into: np.ndarray, source: str) -> None:
        """Copy an observation into one of the loop's buffers, checking its shape."""
        array = np.asarray(raw)
        if array.shape != self.obs_shape:
            raise ValueError(
                f"{source} returned an observation of shape {array.shape}, but the agent expects "
                f"{self.obs_shape} (obs_dim {self.obs_shape[0]})"
            )
        np.copyto(into, array)

    def _check_action(self, action: Any) -> None:
        """First tick only: the agent's action has the shape ``apply_action`` expects."""
        self._check_first_action = False
        shape = np.shape(action)
        if shape != self.action_shape:
            raise ValueError(
                f"the agent returned an action of shape {shape}, but apply_action expects "
                f"{self.action_shape} ({_describe_action(self.spaces)})"
            )

    def _reward(self, out: Any) -> tuple[float, bool, bool]:
        if isinstance(out, tuple):
            if len(out) != 3:
                raise ValueError(
                    f"reward_fn returned a tuple of {len(out)} items: return a reward or "
                    "(reward, terminated, truncated)"
                )
            reward, terminated, truncated = out
        else:
            reward, terminated, truncated = out, False, False
        try:
            return float(reward), bool(terminated), bool(truncated)
        except (TypeError, ValueError):
            raise ValueError(
                f"reward_fn returned a reward of type {type(reward).__name__} ({reward!r}): return a float "
                "or (reward, terminated, truncated)"
            ) from None

    def _transition(self, obs: np.ndarray, action: Any, nxt: np.ndarray) -> int:
        """Reward, learning update, episode bookkeeping and reset for ``obs --action--> nxt``; afterwards
        ``nxt`` holds the observation to act on next. Returns the clock time after ``reward_fn``."""
        out = 0.0 if self._reward_fn is None else self._reward_fn(obs, action, nxt)
        reward, terminated, truncated = self._reward(out)
        rewarded = self.clock.now_ns()
        agent = self.agent
        done = terminated or truncated
        if self.learn:
            agent.observe(reward, terminated, truncated, nxt)  # counts the step in agent.num_timesteps
        elif done:
            agent.observe(reward, terminated, truncated, nxt)  # frozen: restarts the network state
        self._episode_return += reward
        self._episode_length += 1
        if done:
            episode = (self._episode_return, self._episode_length)
            self._episode_return, self._episode_length = 0.0, 0
            self.episodes.append(episode)
            if self.learn and hasattr(agent, "ep_info_buffer"):
                agent.ep_info_buffer.append(episode)
            if self._on_episode is not None:
                self._on_episode(*episode)
            if self._reset_fn is not None:
                first = self._reset_fn()
                if first is None:
                    self._store(self._read_observation(), nxt, "read_observation()")
                else:
                    self._store(first, nxt, "reset_fn()")
        return rewarded

    def _loop(self, duration_ns: int | None, steps: int | None) -> None:
        clock, recorder = self.clock, self.recorder
        now, sleep_until = clock.now_ns, clock.sleep_until
        act, apply, read = self.agent.act, self._apply_action, self._read_observation
        period = self.period_ns
        sense_first = self.ordering == "sense-first"
        transitions = self.learn or self._reward_fn is not None  # learn, or at least track episodes
        checkpoints = self.checkpoints if self.checkpoints is not None and self.learn else None
        if checkpoints is not None and not checkpoints.periodic:
            checkpoints = None
        obs, nxt = self._buffers[0], self._buffers[1]
        action: Any = None
        pending = False  # sense-first: an action applied, its transition not learned from yet
        if not sense_first:
            self._store(read(), obs, "read_observation()")
        scheduled = now()
        self._first_start = scheduled
        end_at = None if duration_ns is None else scheduled + duration_ns
        if checkpoints is not None:
            checkpoints.start(scheduled, self.tick)
        ticks = 0
        while True:
            if (
                self.stop_reason is not None
                or (steps is not None and ticks >= steps)
                or (end_at is not None and scheduled >= end_at)
            ):
                if pending:  # read the observation that completes the last transition
                    sleep_until(scheduled)
                    self._store(read(), nxt, "read_observation()")
                    self._transition(obs, action, nxt)
                break
            if not self._wait_until(scheduled):
                continue  # stopped while waiting for the tick: end without running it
            start = now()
            if sense_first:
                self._store(read(), nxt, "read_observation()")
                rewarded = now()
                if pending:
                    rewarded = self._transition(obs, action, nxt)
                learned = now()
                obs, nxt = nxt, obs
                acting = learned
                if checkpoints is not None and checkpoints.due(learned, self.tick, scheduled + period):
                    checkpoints.capture(self.agent, learned, self.tick)
                    acting = now()
                    checkpoints.captured(acting - learned)
                action = act(obs)
                acted = now()
                if self._check_first_action:
                    self._check_action(action)
                apply(action)
                applied = now()
                pending = transitions
                read_ns, observe_ns = rewarded - start, learned - rewarded
                act_ns, apply_ns = acted - acting, applied - acted
            else:
                action = act(obs)
                acted = now()
                if self._check_first_action:
                    self._check_action(action)
                apply(action)
                applied = now()
                self._store(read(), nxt, "read_observation()")
                rewarded = now()
                if transitions:
                    rewarded = self._transition(obs, action, nxt)
                learned = now()
                obs, nxt = nxt, obs
                if checkpoints is not None and checkpoints.due(learned, self.tick + 1, scheduled + period):
                    checkpoints.capture(self.agent, learned, self.tick + 1)
                    checkpoints.captured(now() - learned)
                read_ns, observe_ns = rewarded - applied, learned - rewarded
                act_ns, apply_ns = acted - start, applied - acted
            ticks += 1
            self.tick += 1
            if self._on_tick is not None:
                self._on_tick(self)
            end = now()
            recorder.record(scheduled, start, read_ns, act_ns, apply_ns, observe_ns, end)
            self._last_end = end
            deadline = scheduled + period
            if end > deadline:
                self._misses += 1
                periods = -(-(end - scheduled) // period)  # to the first boundary at or after the end
                self._skipped += periods - 1
                scheduled += periods * period
            else:
                scheduled = deadline
