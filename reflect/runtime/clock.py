"""Clocks for fixed-rate control loops: monotonic nanoseconds and sleeping until an absolute deadline.

:class:`RealClock` sleeps until shortly before the deadline, then spins for the last stretch (the
operating system wakes a sleeping thread tens to hundreds of microseconds late; spinning does not).
:class:`FakeClock` only moves when told to (:meth:`FakeClock.advance`) or when slept on: tests make a
callable "take" a known time and count ticks and deadline misses exactly.
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "RealClock"]

DEFAULT_SPIN_US = 200.0


@runtime_checkable
class Clock(Protocol):
    """What a :class:`~reflect.runtime.ControlLoop` needs of time."""

    def now_ns(self) -> int:
        """Monotonic time in nanoseconds (the origin is arbitrary)."""
        ...

    def sleep_until(self, deadline_ns: int) -> None:
        """Return at (or as soon as possible after) ``deadline_ns``; at once if it has passed."""
        ...


class RealClock:
    """The system's monotonic clock; :meth:`sleep_until` sleeps, then spins for the last ``spin_us``.

    ``spin_us`` trades CPU for precision: with the default 200 µs a 500 Hz loop spins about a tenth
    of one core. ``spin_us=0`` only sleeps (wake-ups are then typically 50-100 µs late, more on a
    loaded machine).
    """

    def __init__(self, spin_us: float = DEFAULT_SPIN_US) -> None:
        if isinstance(spin_us, bool) or not isinstance(spin_us, int | float) or not (
            math.isfinite(spin_us) and spin_us >= 0
        ):
            raise ValueError(f"spin_us must be a finite number >= 0 (microseconds), got {spin_us!r}")
        self.spin_ns = int(spin_us * 1000)

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        now = time.perf_counter_ns
        remaining = deadline_ns - now()
        if remaining > self.spin_ns:
            time.sleep((remaining - self.spin_ns) * 1e-9)
        while now() < deadline_ns:
            pass


class FakeClock:
    """A clock for tests: time stands still until :meth:`advance` or :meth:`sleep_until` moves it.

    Give a loop's callables ``clock.advance(...)`` calls to simulate how long their work takes.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self.time_ns = int(start_ns)
        self.sleeps = 0  # how many sleep_until calls had to wait

    def now_ns(self) -> int:
        return self.time_ns

    def sleep_until(self, deadline_ns: int) -> None:
        if deadline_ns > self.time_ns:
            self.time_ns = int(deadline_ns)
            self.sleeps += 1

    def advance(self, seconds: float = 0.0, *, ns: int = 0) -> None:
        """Move time forward by ``seconds`` plus ``ns`` nanoseconds (simulated work)."""
        step = round(seconds * 1e9) + int(ns)
        if step < 0:
            raise ValueError(f"a clock only moves forward: got {seconds} s + {ns} ns")
        self.time_ns += step
