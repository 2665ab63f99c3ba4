"""What a control-loop run reports: ticks, deadline misses, latencies, episodes, checkpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reflect.runtime.latency import METRICS, LatencyStat

__all__ = ["LoopReport"]


@dataclass
class LoopReport:
    """The result of :meth:`ControlLoop.run <reflect.runtime.ControlLoop.run>`.

    Attributes:
        rate_hz: the loop's rate; ``period_us`` its period.
        ticks: ticks run (each applied one action).
        misses: ticks whose work ended after their deadline (scheduled start + period).
        skipped_periods: period boundaries with no tick, because an overrunning tick was still busy
            (the loop never bursts to catch up: after a miss it waits for the next boundary).
        seconds: wall time from the first tick's start to the end of the last one.
        learning: whether the agent learned (else it ran frozen).
        ordering: ``"act-first"`` or ``"sense-first"`` (see :class:`~reflect.runtime.ControlLoop`).
        latency: metric -> :class:`~reflect.runtime.latency.LatencyStat` (µs), see
            :data:`~reflect.runtime.latency.METRICS`; ``window``: ticks the percentiles cover.
        episodes: ``(return, length)`` of every episode that ended during the run.
        num_timesteps: the agent's learning-step counter at the end (it carries on across resumes).
        stopped_by: ``None`` (ran its duration or steps), ``"SIGINT"``, ``"SIGTERM"`` or
            ``"stop()"``.
        checkpoint: the file written when the run ended (learning with a checkpoint path), else None.
        save_error: why that file is not at the checkpoint path but in a fallback folder
            (``reflect-rescue-*`` under the system's temporary directory); None when it is where asked.
        checkpoints_written: periodic checkpoints written during the run; ``checkpoint_capture_max_us``
            the longest time capturing one took inside a tick.
        checkpoint_error: why a periodic checkpoint could not be written, if one failed.
    """

    rate_hz: float
    ticks: int
    misses: int
    skipped_periods: int
    seconds: float
    learning: bool
    ordering: str
    latency: dict[str, LatencyStat]
    window: int
    episodes: list[tuple[float, int]] = field(default_factory=list)
    num_timesteps: int = 0
    stopped_by: str | None = None
    checkpoint: Path | None = None
    checkpoints_written: int = 0
    checkpoint_capture_max_us: float = 0.0
    checkpoint_error: str | None = None
    save_error: str | None = None

    @property
    def period_us(self) -> float:
        return 1e6 / self.rate_hz

    @property
    def miss_fraction(self) -> float:
        """``misses / ticks`` (0 for a run without ticks)."""
        return self.misses / self.ticks if self.ticks else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain types only (JSON-ready)."""
        return {
            "rate_hz": self.rate_hz,
            "ticks": self.ticks,
            "misses": self.misses,
            "miss_percent": 100.0 * self.miss_fraction,
            "skipped_periods": self.skipped_periods,
            "seconds": self.seconds,
            "learning": self.learning,
            "ordering": self.ordering,
            "latency_us": {name: stat._asdict() for name, stat in self.latency.items()},
            "window": self.window,
            "episodes": [list(e) for e in self.episodes],
            "num_timesteps": self.num_timesteps,
            "stopped_by": self.stopped_by,
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "checkpoints_written": self.checkpoints_written,
            "checkpoint_capture_max_us": self.checkpoint_capture_max_us,
            "checkpoint_error": self.checkpoint_error,
            "save_error": self.save_error,
        }

    def format(self) -> str:
        """A few lines for a terminal: the run, its deadline misses, and a latency table."""
        mode = "learning" if self.learning else "frozen"
        lines = [
            f"{self.ticks:,} ticks at {self.rate_hz:g} Hz (period {self.period_us:,.0f} µs) in "
            f"{self.seconds:.2f} s, {mode}, {self.ordering}",
            f"deadline misses: {self.misses:,} ({100.0 * self.miss_fraction:.3f}%), "
            f"skipped periods: {self.skipped_periods:,}",
        ]
        span = "" if self.window == self.ticks else f"; percentiles over the last {self.window:,} ticks"
        lines.append(f"{'latency (µs' + span + ')':<{22}} {'median':>9} {'p99':>9} {'max':>9}")
        for name in METRICS:
            stat = self.latency.get(name)
            if stat is None or math.isnan(stat.median_us):
                continue
            lines.append(f"  {name:<20} {stat.median_us:9.1f} {stat.p99_us:9.1f} {stat.max_us:9.1f}")
        work = self.latency.get("work")
        if work is not None and work.median_us > self.period_us:
            lines.append(
                f"hint: a median tick takes {work.median_us:,.0f} µs, more than the period: lower the rate"
            )
        if self.checkpoints_written:
            lines.append(
                f"periodic checkpoints written: {self.checkpoints_written} (captured within a tick in at "
                f"most {self.checkpoint_capture_max_us:,.0f} µs)"
            )
        if self.checkpoint_error:
            lines.append(f"warning: a periodic checkpoint failed: {self.checkpoint_error}")
        if self.save_error:
            lines.append(f"warning: saved to '{self.checkpoint}' instead: {self.save_error}")
        return "\n".join(lines)
