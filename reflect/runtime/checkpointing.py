"""Checkpoints of a control loop: periodic ones that do not stall the loop, and a final one.

A periodic checkpoint is *captured* at a tick boundary (the agent's :meth:`checkpoint` payload, with
every tensor copied: about a millisecond for the default network) and *written* by a writer thread
started with the run (serialising and the atomic write take several milliseconds, more than a 500 Hz
period; starting a thread inside a tick would itself take milliseconds on a busy machine). A due
capture waits for a tick with enough time left before its deadline (judged by the last capture's
duration), for at most half a second. While a write runs, the interpreter's thread switch interval is
shortened so that the writer cannot hold the control thread back for long. The final checkpoint,
when the loop stops, is written in the foreground after any periodic write has finished, so it is
always the newest file on disk. If it cannot be written there (a read-only file system, a lost
permission, a full disk), it goes to a new folder ``reflect-rescue-*`` under the system's temporary
directory instead, so that what the agent learned is not lost.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from reflect.checkpoints import save_checkpoint

__all__ = ["RESCUE_PREFIX", "CheckpointSaveError", "CheckpointSchedule", "checkpoint_file"]

RESCUE_PREFIX = "reflect-rescue-"  # the fallback folder of a final checkpoint, as training runs name it

_SWITCH_INTERVAL_S = 2e-4  # while a background write runs (CPython's default is 5 ms)
_MAX_POSTPONE_NS = 500_000_000  # a due capture waits this long at most for a tick with time to spare


class CheckpointSaveError(RuntimeError):
    """The final checkpoint could be written neither to its path nor to a fallback folder."""


def _os_reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def checkpoint_file(path: str | Path) -> Path:
    """``path`` as the agent's ``save`` writes it: ``.pt`` appended when it has no suffix."""
    path = Path(path)
    return path if path.suffix else path.with_suffix(".pt")


def _copy_tree(value: Any) -> Any:
    """A copy of a checkpoint payload that later learning steps cannot change (tensors cloned)."""
    if isinstance(value, dict):
        return type(value)((key, _copy_tree(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_copy_tree(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_copy_tree(item) for item in value)
    if hasattr(value, "detach") and hasattr(value, "clone"):  # a tensor
        return value.detach().clone()
    return value


class CheckpointSchedule:
    """When to checkpoint (every ``every_s`` seconds of loop time or every ``every_ticks`` ticks, or
    only at the end when both are None), and the writing itself, to ``path``."""

    def __init__(
        self, path: str | Path, every_s: float | None = None, every_ticks: int | None = None
    ) -> None:
        if every_s is not None and every_ticks is not None:
            raise ValueError("give checkpoint_every_s or checkpoint_every_steps, not both")
        if every_s is not None and (
            isinstance(every_s, bool) or not isinstance(every_s, int | float)
            or not math.isfinite(every_s) or every_s <= 0
        ):
            raise ValueError(f"checkpoint_every_s must be a finite number of seconds > 0, got {every_s!r}")
        if every_ticks is not None and (
            isinstance(every_ticks, bool) or not isinstance(every_ticks, int) or every_ticks < 1
        ):
            raise ValueError(f"checkpoint_every_steps must be an integer >= 1, got {every_ticks!r}")
        self.path = checkpoint_file(path)
        if self.path.is_dir():
            raise ValueError(f"checkpoint path '{self.path}' is a directory; give a file path, e.g. agent.pt")
        self.every_ns = None if every_s is None else round(every_s * 1e9)
        self.every_ticks = every_ticks
        self.written = 0
        self.error: str | None = None
        self.save_error: str | None = None  # why the final checkpoint went to a fallback folder
        self.capture_ns = 0  # how long the last capture took on the loop's clock (set by the loop)
        self.capture_max_ns = 0
        self._due_since: int | None = None
        self._next_ns = 0
        self._next_tick = 0
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[dict[str, Any], float] | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()

    @property
    def periodic(self) -> bool:
        return self.every_ns is not None or self.every_ticks is not None

    def reset_counts(self) -> None:
        """Forget the writes (and the error) of an earlier run."""
        self.written, self.error, self.save_error, self.capture_max_ns = 0, None, None, 0

    def start(self, now_ns: int, tick: int) -> None:
        """Begin a run at clock time ``now_ns`` after ``tick`` ticks (starts the writer thread)."""
        if self.every_ns is not None:
            self._next_ns = now_ns + self.every_ns
        if self.every_ticks is not None:
            self._next_tick = tick + self.every_ticks
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="reflect-checkpoint-writer", daemon=True)
            self._thread.start()

    def due(self, now_ns: int, tick: int, deadline_ns: int | None = None) -> bool:
        """Whether to capture a periodic checkpoint now: one is due and, if ``deadline_ns`` (the end of
        the current tick) is given, a capture as long as the last one ends before it (or the
        checkpoint has waited for such a tick for half a second already)."""
        if self.every_ns is not None:
            if now_ns < self._next_ns:
                return False
        elif self.every_ticks is None or tick < self._next_tick:
            return False
        if deadline_ns is None or now_ns + self.capture_ns <= deadline_ns:
            return True
        if self._due_since is None:
            self._due_since = now_ns
        return now_ns - self._due_since >= _MAX_POSTPONE_NS

    def captured(self, duration_ns: int) -> None:
        """The loop tells how long :meth:`capture` took on its clock (the next captures plan with it)."""
        self.capture_ns = duration_ns
        self.capture_max_ns = max(self.capture_max_ns, duration_ns)

    def capture(self, agent: Any, now_ns: int, tick: int) -> None:
        """Copy the agent's state now and hand it to the writer; schedule the next one. If the previous
        write is still running, wait for it first (an interval that short is a mistake)."""
        if self._thread is None:
            raise RuntimeError("CheckpointSchedule.capture() before start()")
        self._idle.wait()
        self._due_since = None
        payload = _copy_tree(agent.checkpoint())
        if self.every_ns is not None:
            self._next_ns += self.every_ns * max(1, -(-(now_ns - self._next_ns) // self.every_ns))
        if self.every_ticks is not None:
            self._next_tick = tick + self.every_ticks
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, _SWITCH_INTERVAL_S))
        self._idle.clear()
        self._jobs.put((payload, interval))

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            payload, switch_interval = job
            try:
                save_checkpoint(payload, self.path)
                self.written += 1
            except Exception as error:  # a full disk must not bring the control loop down
                self.error = f"{type(error).__name__}: {error}"
            finally:
                sys.setswitchinterval(switch_interval)
                self._idle.set()

    def finish(self) -> None:
        """Wait for a periodic write still running and stop the writer thread."""
        self._idle.wait()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def save(self, agent: Any) -> Path:
        """Write the agent's checkpoint now, in the foreground (after any periodic write); returns the
        path written. When :attr:`path` cannot be written (``OSError``), the checkpoint goes to a new
        folder ``reflect-rescue-*`` under the system's temporary directory and :attr:`save_error`
        says why.

        Raises:
            CheckpointSaveError: the fallback folder could not be written either (nothing was saved).
        """
        self.finish()
        try:
            return Path(agent.save(self.path))
        except OSError as error:
            return self._rescue(agent, error)

    def _rescue(self, agent: Any, error: OSError) -> Path:
        """Save ``agent`` in a fresh folder under the temporary directory after ``error`` at :attr:`path`."""
        reason = _os_reason(error)
        folder: Path | None = None
        try:
            folder = Path(tempfile.mkdtemp(prefix=f"{RESCUE_PREFIX}{self.path.stem}-"))
            saved = Path(agent.save(folder / self.path.name))
        except OSError as rescue_error:
            if folder is not None:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            where = folder if folder is not None else tempfile.gettempdir()
            raise CheckpointSaveError(
                f"cannot save the agent: writing '{self.path}' failed ({reason}) and so did the fallback "
                f"folder '{where}' ({_os_reason(rescue_error)}); what it learned in this run is lost: "
                "free disk space or choose a writable checkpoint path, then run again"
            ) from rescue_error
        self.save_error = f"'{self.path}' could not be written ({reason})"
        return saved
