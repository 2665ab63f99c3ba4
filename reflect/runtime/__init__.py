"""Fixed-rate control loops: an agent acting (and learning) against a robot or a simulator in real time.

* :class:`ControlLoop`: runs an agent at a fixed rate against ``read_observation`` / ``apply_action``
  / ``reward_fn`` callables, measures latencies and deadline misses, learns online or runs frozen,
  checkpoints periodically and on SIGINT / SIGTERM.
* :class:`GymControl`: a Gymnasium environment behind those callables (what ``reflect run`` drives).
* :class:`RealClock` / :class:`FakeClock`: time for the loop (the fake one for tests).
"""

from reflect.runtime.clock import Clock, FakeClock, RealClock
from reflect.runtime.gym_adapter import GymControl
from reflect.runtime.latency import LatencyStat
from reflect.runtime.loop import MAX_RATE_HZ, ORDERINGS, ControlLoop, check_rate_hz
from reflect.runtime.report import LoopReport
from reflect.stop_signals import SIGNAL_EXIT_CODES

__all__ = [
    "MAX_RATE_HZ",
    "ORDERINGS",
    "SIGNAL_EXIT_CODES",
    "Clock",
    "ControlLoop",
    "FakeClock",
    "GymControl",
    "LatencyStat",
    "LoopReport",
    "RealClock",
    "check_rate_hz",
]
