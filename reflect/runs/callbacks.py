"""The callbacks ``reflect train`` attaches to :meth:`Reflect.learn`: logs, evaluation, checkpoints.

Each one does its work every ``every`` environment steps (a cheap integer comparison otherwise), so the
per-step cost of a fully instrumented run stays a few microseconds.

Writes that can fail for reasons outside the program (a full disk, a lost permission, a file system
remounted read-only) go through a :class:`WriteGuard`: a failed write prints one warning naming the
file, the reason and the fix, training goes on with its whole state in memory, and the write is tried
again later (the next checkpoint; rows of ``episodes.csv`` and ``evaluations.csv`` and the best model
are kept until they can be written). Only a numerical failure (NaN or inf) stops a run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from reflect.agents.callbacks import ReflectCallback
from reflect.atomic_files import write_bytes_atomic
from reflect.checkpoints import NonFiniteStateError, checkpoint_bytes
from reflect.runs.evaluation import EvaluationResult, run_episodes
from reflect.runs.run_dir import os_error_fix, os_error_reason, probe_write
from reflect.runs.summary import EvaluationRecord, append_episode_csv

MAX_PENDING_EPISODES = 100_000


def _warn(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)  # above a progress bar, if one is shown


class WriteGuard:
    """Runs writes that may fail with an ``OSError`` without letting the failure stop training.

    :meth:`attempt` returns whether the write succeeded; the first failure of each kind of file and
    reason prints a one-line warning (file, reason, what happens now, the fix) and a later success
    prints a note that writing works again. Writes that must not be lost are registered with
    :meth:`defer` and retried by :meth:`retry_pending` (at every checkpoint and at the end of a run).
    """

    def __init__(self, warn: Callable[[str], None] | None = None) -> None:
        self.warn = warn or _warn
        self.failures = 0
        self.last_error: OSError | None = None
        self._warned: set[tuple[str, int | None]] = set()
        self._failing: set[str] = set()
        self._pending: dict[str, Callable[[], bool]] = {}

    def attempt(self, what: str, path: Path, write: Callable[[], object], then: str) -> bool:
        """Run ``write()``; on an ``OSError`` warn (once per ``what`` and errno) and return False.

        ``what`` names the file for the user ("the checkpoint", "episodes.csv"); ``then`` says what
        happens next, e.g. "Training goes on and saves again at the next checkpoint." A success
        supersedes the write deferred under ``what``: a later retry would put older contents back.
        """
        try:
            write()
        except OSError as error:
            self.failures += 1
            self.last_error = error
            self._failing.add(what)
            key = (what, error.errno)
            if key not in self._warned:
                self._warned.add(key)
                self.warn(
                    f"warning: cannot write {what} '{path}': {os_error_reason(error)}. {then} "
                    f"To fix it, {os_error_fix(error)}."
                )
            return False
        self._pending.pop(what, None)
        if what in self._failing:
            self._failing.discard(what)
            self.warn(f"note: writes work again ({what}: '{path}')")
        return True

    def defer(self, what: str, retry: Callable[[], bool]) -> None:
        """Register ``retry`` (returns True once done) under the file's ``what`` (as :meth:`attempt`
        names it), replacing an earlier one; a successful :meth:`attempt` of ``what`` drops it."""
        self._pending[what] = retry

    @property
    def pending(self) -> list[str]:
        """Keys of the writes still waiting to be retried."""
        return list(self._pending)

    def retry_pending(self) -> bool:
        """Retry every deferred write; returns True when none is left."""
        for key, retry in list(self._pending.items()):
            if retry():
                self._pending.pop(key, None)
        return not self._pending


def agent_checkpoint_bytes(agent: Any) -> bytes:
    """``agent.checkpoint()`` serialised in memory, refusing a state with NaN or inf in a tensor.

    Raises:
        FloatingPointError: a weight, trace or statistic is not finite (the message gives its key);
            such a state is never written, so it cannot replace a good checkpoint.
    """
    try:
        return checkpoint_bytes(agent.checkpoint())
    except NonFiniteStateError as error:
        raise FloatingPointError(
            f"the agent's state holds NaN or inf at '{error.key}' after step {agent.num_timesteps}: "
            "it was not saved"
        ) from error


@contextmanager
def _rollback_on_error(path: Path) -> Iterator[None]:
    """If the block raises ``OSError``, cut ``path`` back to its old length (or remove it if it was
    new), so an append interrupted by a full disk leaves no half-written line."""
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    try:
        yield
    except OSError:
        try:
            if size is None:
                path.unlink(missing_ok=True)
            else:
                os.truncate(path, size)
        except OSError:
            pass  # a half line may stay; nothing more can be done on this file system
        raise


def append_rows(path: Path, append: Callable[..., None], rows: list[tuple[Any, ...]]) -> None:
    """``append(path, *row)`` for every row, all or nothing (see :func:`_rollback_on_error`)."""
    with _rollback_on_error(path):
        for row in rows:
            append(path, *row)


@contextmanager
def quiet_tensorboard_threads() -> Iterator[None]:
    """Keep the OSError that kills TensorBoard's background writer thread from printing a traceback:
    :class:`GuardedSummaryWriter` reports it (one line) when the main thread next writes."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


class GuardedSummaryWriter:
    """A TensorBoard ``SummaryWriter`` whose write errors skip scalars instead of stopping training.

    After a failure the writer is dropped; at the next logged step (a later ``step``) a new one is
    opened if a test file can be written in the folder: a new event file beside the old one, which
    TensorBoard reads together with it.
    """

    WHAT = "TensorBoard events"
    THEN = "Training goes on; TensorBoard scalars are skipped until the folder can be written again."

    def __init__(self, log_dir: Path, guard: WriteGuard, factory: Callable[[str], Any] | None = None) -> None:
        if factory is None:
            from torch.utils.tensorboard import SummaryWriter

            factory = SummaryWriter
        self.log_dir, self.guard, self.factory = log_dir, guard, factory
        self._writer: Any = None
        self._broken = False
        self._failed_at = -1
        self._open()

    def _open(self) -> bool:
        reopening = self._broken

        def make() -> None:
            if reopening:  # a writer that fails at once would leak its file inside TensorBoard's thread
                probe_write(self.log_dir)
            self._writer = self.factory(str(self.log_dir))

        if self.guard.attempt(self.WHAT, self.log_dir, make, self.THEN):
            self._broken = False
            return True
        self._broken = True
        return False

    def _fail(self, step: int) -> None:
        writer, self._writer = self._writer, None
        self._broken, self._failed_at = True, max(step, self._failed_at)
        if writer is not None:
            with suppress(OSError):
                writer.close()

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is None and (step <= self._failed_at or not self._open()):
            self._failed_at = max(step, self._failed_at)
            return
        writer = self._writer
        if not self.guard.attempt(self.WHAT, self.log_dir, lambda: writer.add_scalar(tag, value, step),
                                  self.THEN):
            self._fail(step)

    def flush(self) -> None:
        writer = self._writer
        if writer is not None and not self.guard.attempt(self.WHAT, self.log_dir, writer.flush, self.THEN):
            self._fail(self._failed_at)

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and not self.guard.attempt(self.WHAT, self.log_dir, writer.close, self.THEN):
            self._broken = True


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
    """Appends ``step,return,length`` to ``episodes.csv`` for every training episode that ends.

    When the file cannot be written, rows are kept in memory (up to ``max_pending``, then the oldest
    are dropped and counted in ``dropped``) and appended, in order, when a retry succeeds.
    """

    WHAT = "episodes.csv"
    THEN = "Training goes on; new rows are kept in memory and appended once the file can be written."

    def __init__(self, path: Path, guard: WriteGuard | None = None, max_pending: int = MAX_PENDING_EPISODES):
        super().__init__()
        self.path = path
        self.guard = guard or WriteGuard()
        self.pending: deque[tuple[int, float, int]] = deque()
        self.max_pending = max_pending
        self.dropped = 0

    def _on_step(self) -> bool:
        episodes = self.locals["episodes"]
        if not episodes:
            return True
        rows = [(self.num_timesteps, record.episode_return, record.length) for record in episodes]
        if self.pending:  # an earlier write failed: keep the order, wait for the retry
            self.pending.extend(rows)
            while len(self.pending) > self.max_pending:
                self.pending.popleft()
                if not self.dropped:
                    self.guard.warn(
                        f"warning: more than {self.max_pending:,} rows of {self.path.name} wait to be "
                        "written; the oldest are dropped from now on"
                    )
                self.dropped += 1
        elif not self._write(rows):
            self.pending.extend(rows)
            self.guard.defer(self.WHAT, self.flush)
        return True

    def _write(self, rows: list[tuple[int, float, int]]) -> bool:
        return self.guard.attempt(
            self.WHAT, self.path, lambda: append_rows(self.path, append_episode_csv, list(rows)), self.THEN
        )

    def flush(self) -> bool:
        """Append the rows kept in memory; True when none is left."""
        if self.pending and self._write(list(self.pending)):
            self.pending.clear()
        return not self.pending


class TensorBoardCallback(_Periodic):
    """SB3-named scalars (``rollout/ep_rew_mean``, ``time/fps``, ...), learning diagnostics
    (``train/td_error``, ``train/trace_norm``, ``train/step_size``, ...; a Gaussian head adds ``train/std``
    and ``train/noise_correlation``) and ``snn/spike_rate/<layer>``."""

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
        for name, value in learner.pop_diagnostics().items():
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
    """Writes ``directory/step_<N>.pt`` every ``every`` steps (atomically), then retries the writes
    ``guard`` holds back. A checkpoint that cannot be written (full disk, no permission) is skipped with
    a warning; the next one is tried on schedule. ``last_saved`` is the newest file actually written.
    A state with NaN or inf is never written (:func:`agent_checkpoint_bytes` raises FloatingPointError).
    ``seconds`` accumulates the time spent saving."""

    WHAT = "the checkpoint"

    def __init__(self, directory: Path, every: int, guard: WriteGuard | None = None) -> None:
        super().__init__(every)
        self.directory = directory
        self.guard = guard or WriteGuard()
        self.seconds = 0.0
        self.last_saved: Path | None = None
        self.saved = 0
        self.failed = 0

    def _fire(self) -> None:
        start = time.perf_counter()
        path = self.directory / f"step_{self.num_timesteps}.pt"
        data = agent_checkpoint_bytes(self.model)
        then = (
            f"Training goes on with its state in memory and saves again at the next checkpoint "
            f"(every {self.every:,} steps)."
        )
        if self.guard.attempt(self.WHAT, path, lambda: write_bytes_atomic(path, data), then):
            self.last_saved = path
            self.saved += 1
        else:
            self.failed += 1
        self.guard.retry_pending()
        self.seconds += time.perf_counter() - start


class StopFlagCallback(ReflectCallback):
    """Stops training at the next step once ``reason`` is set (from a signal handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def _on_step(self) -> bool:
        return self.reason is None
