"""The callbacks ``reflect train`` attaches to :meth:`Reflect.learn`: logs, evaluation, checkpoints.

Each one does its work every ``every`` environment steps (a cheap integer comparison otherwise), so the
per-step cost of a fully instrumented run stays a few microseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reflect.agents.callbacks import ReflectCallback
from reflect.runs.evaluation import EvaluationResult, run_episodes
from reflect.runs.summary import EvaluationRecord, append_episode_csv


class _Periodic(ReflectCallback):
    """Runs :meth:`_fire` when ``num_timesteps`` crosses the next multiple of ``every``."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.next_at = 0

    def _on_training_start(self) -> None:
        self.next_at = (self.num_timesteps // self.every + 1) * self.every if self.every > 0 else -1

    def _on_step(self) -> bool:
        if 0 < self.next_at <= self.num_timesteps:
            self.next_at = (self.num_timesteps // self.every + 1) * self.every
            return self._fire() is not False
        return True

    def _fire(self) -> bool | None:
        raise NotImplementedError


class EpisodeCsvCallback(ReflectCallback):
    """Appends ``step,return,length`` to ``episodes.csv`` for every training episode that ends."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        for record in self.locals["episodes"]:
            append_episode_csv(self.path, self.num_timesteps, record.episode_return, record.length)
        return True


class TensorBoardCallback(_Periodic):
    """SB3-named scalars (``rollout/ep_rew_mean``, ``time/fps``, ...), learning diagnostics
    (``train/td_error``, ``train/trace_norm``, ``train/step_size``) and ``snn/spike_rate/<layer>``."""

    def __init__(self, writer: Any, every: int) -> None:
        super().__init__(every)
        self.writer = writer

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.model.learner.track_spikes(True)
        self.model.learner.stats.clear()
        self.last_time, self.last_steps = time.perf_counter(), self.num_timesteps

    def _fire(self) -> None:
        step, write = self.num_timesteps, self.writer.add_scalar
        episodes = self.model.ep_info_buffer
        if episodes:
            write("rollout/ep_rew_mean", sum(r for r, _ in episodes) / len(episodes), step)
            write("rollout/ep_len_mean", sum(n for _, n in episodes) / len(episodes), step)
        now = time.perf_counter()
        write("time/fps", (step - self.last_steps) / max(now - self.last_time, 1e-9), step)
        learner = self.model.learner
        acts = learner.stats.steps
        for name, value in learner.stats.pop().items():
            write(f"train/{name}", value, step)
        for name, rate in learner.pop_spike_rates(acts).items():
            write(f"snn/spike_rate/{name}", rate, step)
        self.last_time, self.last_steps = now, step

    def _on_training_end(self) -> None:
        self.model.learner.track_spikes(False)
        self.writer.flush()


class EvaluationCallback(_Periodic):
    """Evaluates the frozen policy on its own env every ``every`` steps; reports each result to
    ``on_result(record, result)``. ``seconds`` accumulates the time spent evaluating."""

    def __init__(
        self,
        env: Any,
        every: int,
        episodes: int,
        seed: int,
        on_result: Callable[[EvaluationRecord, EvaluationResult], None],
    ) -> None:
        super().__init__(every)
        self.env, self.episodes, self.seed, self.on_result = env, episodes, seed, on_result
        self.seconds = 0.0

    def evaluate_now(self) -> EvaluationRecord:
        start = time.perf_counter()
        result = run_episodes(self.model.policy(), self.env, self.episodes, self.seed)
        record = EvaluationRecord(
            self.num_timesteps, result.mean_return, result.std_return, result.mean_length
        )
        self.seconds += time.perf_counter() - start
        self.on_result(record, result)
        return record

    def _fire(self) -> None:
        self.evaluate_now()


class CheckpointCallback(_Periodic):
    """Writes ``directory/step_<N>.pt`` every ``every`` steps (atomically)."""

    def __init__(self, directory: Path, every: int) -> None:
        super().__init__(every)
        self.directory = directory
        self.seconds = 0.0

    def _fire(self) -> None:
        start = time.perf_counter()
        self.model.save(self.directory / f"step_{self.num_timesteps}.pt")
        self.seconds += time.perf_counter() - start


class StopFlagCallback(ReflectCallback):
    """Stops training at the next step once ``reason`` is set (from a signal handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def _on_step(self) -> bool:
        return self.reason is None
