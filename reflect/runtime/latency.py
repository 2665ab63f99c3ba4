"""Per-tick timings of a control loop in preallocated arrays, and their median / p99 / max.

A :class:`LatencyRecorder` holds the last ``capacity`` ticks in a ring of int64 nanosecond arrays
(allocated once: recording a tick allocates nothing). Percentiles cover that window; maxima cover
the whole run (each time the ring wraps, the window's maxima are folded into running maxima).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["DEFAULT_CAPACITY", "METRICS", "LatencyRecorder", "LatencyStat"]

DEFAULT_CAPACITY = 1 << 16  # 65,536 ticks: over two minutes at 500 Hz

# name -> what it measures (the rows of the report, in order)
METRICS = {
    "act": "agent.act(obs)",
    "observe": "agent.observe(...) (the learning update; episode resets)",
    "act+observe": "the agent's whole share of a tick",
    "read": "read_observation() + reward_fn(...)",
    "apply": "apply_action(action) (a simulator's step runs here)",
    "work": "everything a tick does, from its start to its end",
    "lateness": "tick start - scheduled start (wake-up jitter)",
    "period error": "|start-to-start interval - period| of consecutive ticks",
}
_RAW = ("scheduled", "start", "read", "act", "apply", "observe", "end")


class LatencyStat(NamedTuple):
    """Median, 99th percentile and maximum of one metric, in microseconds."""

    median_us: float
    p99_us: float
    max_us: float


class LatencyRecorder:
    """Timings of the last ``capacity`` ticks of a loop with period ``period_ns``: scheduled and actual
    start, the duration of each phase, and the end, all int64 nanoseconds on the loop's clock."""

    def __init__(self, period_ns: int, capacity: int = DEFAULT_CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2:
            raise ValueError(f"latency capacity must be an integer >= 2 (ticks kept), got {capacity!r}")
        self.period_ns, self.capacity = int(period_ns), capacity
        self._data = np.zeros((len(_RAW), capacity), dtype=np.int64)
        (self.scheduled, self.start, self.read, self.act, self.apply, self.observe, self.end) = self._data
        self.count = 0  # ticks recorded since the last clear()
        self._folded: dict[str, float] = {}  # maxima (µs) of the windows the ring has overwritten

    def clear(self) -> None:
        self.count = 0
        self._folded = {}

    def record(
        self, scheduled: int, start: int, read: int, act: int, apply: int, observe: int, end: int
    ) -> None:
        """One tick: its scheduled and actual start, phase durations and end (nanoseconds)."""
        i = self.count % self.capacity
        self.scheduled[i] = scheduled
        self.start[i] = start
        self.read[i] = read
        self.act[i] = act
        self.apply[i] = apply
        self.observe[i] = observe
        self.end[i] = end
        self.count += 1
        if self.count % self.capacity == 0:  # the ring is full: keep its maxima before it is overwritten
            self._fold()

    @property
    def window(self) -> int:
        """How many ticks the percentiles cover (the last ``min(count, capacity)``)."""
        return min(self.count, self.capacity)

    def _ordered(self) -> dict[str, np.ndarray]:
        """The window's samples per metric (ns), oldest first."""
        n = self.window
        start = self.count - n
        order = (np.arange(n) + start) % self.capacity
        scheduled, begin = self.scheduled[order], self.start[order]
        act, observe = self.act[order], self.observe[order]
        period_ns = self.period_ns
        consecutive = np.diff(scheduled) == period_ns  # no period skipped in between
        return {
            "act": act,
            "observe": observe,
            "act+observe": act + observe,
            "read": self.read[order],
            "apply": self.apply[order],
            "work": self.end[order] - begin,
            "lateness": begin - scheduled,
            "period error": np.abs(np.diff(begin)[consecutive] - period_ns),
        }

    def _fold(self) -> None:
        for name, values in self._ordered().items():
            if values.size:
                self._folded[name] = max(self._folded.get(name, 0.0), float(values.max()) / 1e3)

    def summary(self) -> dict[str, LatencyStat]:
        """Median / p99 over the window and max over the run (µs) of every metric in :data:`METRICS`."""
        out: dict[str, LatencyStat] = {}
        samples = self._ordered() if self.window else {}
        for name in METRICS:
            values = samples.get(name)
            if values is None or values.size == 0:
                out[name] = LatencyStat(float("nan"), float("nan"), float("nan"))
                continue
            us = values.astype(np.float64) / 1e3
            median, p99 = np.percentile(us, [50, 99])
            peak = max(float(us.max()), self._folded.get(name, 0.0))
            out[name] = LatencyStat(float(median), float(p99), peak)
        return out
