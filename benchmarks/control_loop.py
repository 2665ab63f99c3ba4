"""Deadline misses of the fixed-rate control loop, against an empty loop on the same machine, same run.

``reflect.runtime.ControlLoop`` drives ``--env`` in real time through the Gymnasium adapter (as
``reflect run`` does: the env steps inside each tick, the agent learns unless ``--frozen``) at
``--rate-hz``. A tick *misses its deadline* when it ends after the next tick was due. Misses have two
causes: the agent's and the simulator's work, and stalls of the machine itself (the scheduler waking
the thread late, other processes, a hypervisor stealing the virtual CPU). To tell them apart, every
round runs two phases of ``--duration`` seconds each, one after the other:

* ``empty``: the same loop skeleton (the same clock class and ``--spin-us``, scheduling rule,
  real-time priority, frozen garbage collector and per-tick latency recorder) with nothing to do in
  the tick. Its misses and wake-up lateness (actual minus scheduled start of a tick) are the
  machine's own;
* ``agent``: the agent's ``ControlLoop`` (one loop object for all rounds), with its report.

Rounds alternate them (empty, agent, empty, agent, ...) so that a drift of the machine's load hits
both alike. A short untimed warm-up run of the agent loop comes first (``--warmup``): the first ticks
of a fresh process pay one-time costs (compiled kernels, lazy imports, first-touch memory).

Printed per round and phase: ticks, deadline misses (count and %), wake-up lateness median / p99 /
max (µs), the CPU steal time of the whole machine over the phase (the ``steal`` column of the ``cpu``
line of ``/proc/stat``, as a % of all CPU time elapsed; stolen time is what stalls a shared virtual
machine), and for the agent loop the median / p99 (µs) of ``act``, ``observe`` (the learning
update), ``act+observe``, ``apply`` (the env step) and ``work`` (the whole tick) from its latency
report. Then the medians over rounds of the miss % of both loops and their difference: what the
agent's work adds to the machine's stalls. Target: < 0.1% deadline misses at 500 Hz for 60 s; the
verdict is given for the agent loop of every round. The load average is printed at the start.

    python benchmarks/control_loop.py                                   # 2 rounds of 60 s per phase
    python benchmarks/control_loop.py --duration 2 --rounds 1           # quick (CI)
    python benchmarks/control_loop.py --frozen --checkpoint model.pt    # a trained agent, frozen
    python benchmarks/control_loop.py --realtime-priority 50 --spin-us 2000
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reflect.agents import Reflect
from reflect.commands.common import (
    non_negative_microseconds,
    non_negative_seconds,
    positive_int,
    positive_seconds,
    rate_hz,
)
from reflect.envs import make_single_env
from reflect.runtime import ControlLoop, GymControl, LatencyStat, RealClock, check_rate_hz
from reflect.runtime.clock import DEFAULT_SPIN_US
from reflect.runtime.latency import DEFAULT_CAPACITY, LatencyRecorder
from reflect.runtime.realtime import check_realtime_priority, realtime_scheduling

DEFAULT_ENV = "InvertedPendulum-v5"
TARGET_MISS_PERCENT = 0.1
TARGET_RATE_HZ = 500.0
TARGET_SECONDS = 60.0
TARGET = f"< {TARGET_MISS_PERCENT:g}% deadline misses at {TARGET_RATE_HZ:g} Hz for {TARGET_SECONDS:g} s"
AGENT_PARTS = ("act", "observe", "act+observe", "apply", "work")
PROC_STAT = Path("/proc/stat")


# ----------------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--env", default=None, metavar="ENV_ID",
        help=f"Gymnasium env id (default: {DEFAULT_ENV}, or the checkpoint's; must match it)",
    )
    parser.add_argument(
        "--checkpoint", type=Path, metavar="PATH",
        help="the agent to run (Reflect.load); default: a fresh default agent Reflect(env, seed=0)",
    )
    parser.add_argument("--rate-hz", type=rate_hz, default=TARGET_RATE_HZ, metavar="HZ",
                        help=f"ticks per second, up to 10000 (default: {TARGET_RATE_HZ:g})")
    parser.add_argument("--duration", type=positive_seconds, default=TARGET_SECONDS, metavar="SECONDS",
                        help=f"length of each phase (empty loop, agent loop) of a round (default: "
                        f"{TARGET_SECONDS:g})")
    parser.add_argument("--rounds", type=positive_int, default=2, metavar="N",
                        help="rounds of (empty loop, agent loop) (default: 2)")
    parser.add_argument("--frozen", action="store_true",
                        help="run the agent frozen (default: learning, like reflect run --learn)")
    parser.add_argument(
        "--realtime-priority", type=positive_int, metavar="N",
        help="run both loops with real-time scheduling (Linux SCHED_FIFO, 1-99; needs the permission)",
    )
    parser.add_argument(
        "--spin-us", type=non_negative_microseconds, default=DEFAULT_SPIN_US, metavar="US",
        help=f"busy-wait the last US microseconds before each tick instead of sleeping, in both loops "
        f"(default: {DEFAULT_SPIN_US:g}, as reflect run)",
    )
    parser.add_argument("--warmup", type=non_negative_seconds, default=0.5, metavar="SECONDS",
                        help="untimed agent-loop run before the first round (default: 0.5; 0: none)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------ machine state
def read_cpu_times(path: Path = PROC_STAT) -> tuple[int, int] | None:
    """``(steal, total)`` CPU time of the whole machine so far (clock ticks), from the ``cpu`` line of
    ``/proc/stat``; None where it is unreadable or has no steal column."""
    try:
        with path.open() as stat:
            first = stat.readline().split()
    except OSError:
        return None
    if len(first) < 9 or first[0] != "cpu":
        return None
    times = [int(value) for value in first[1:9]]  # user nice system idle iowait irq softirq steal
    return times[7], sum(times)  # guest time is already counted in user and nice


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Stolen CPU time between two :func:`read_cpu_times` readings, as a % of all CPU time elapsed."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or why they are missing."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)"


# ----------------------------------------------------------------------------------- phases
@dataclass
class PhaseResult:
    """One phase of a round: its ticks, deadline misses, latencies (µs) and the machine's steal."""

    phase: str
    ticks: int
    misses: int
    lateness: LatencyStat
    steal: float | None = None
    parts: dict[str, LatencyStat] = field(default_factory=dict)  # the agent loop's report only

    @property
    def miss_percent(self) -> float:
        """Deadline misses as a percentage of the ticks."""
        return 100.0 * self.misses / self.ticks if self.ticks else 0.0


@contextmanager
def frozen_gc() -> Iterator[None]:
    """Collect garbage once and freeze the survivors while inside, as ``ControlLoop.run`` does."""
    freeze = gc.get_freeze_count() == 0  # leave a caller's own freeze alone
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()


def phase_capacity(rate_hz: float, duration_s: float) -> int:
    """A latency-recorder capacity that keeps every tick of a phase (percentiles over all of them)."""
    return max(DEFAULT_CAPACITY, math.ceil(rate_hz * duration_s) + 2)


def empty_ticks(clock: RealClock, recorder: LatencyRecorder, duration_s: float) -> int:
    """Run empty ticks for ``duration_s`` with ``ControlLoop``'s schedule (tick ``k`` due at
    ``t0 + k * period``; after a miss, the next boundary after the tick's end), recording each tick in
    ``recorder``; returns the deadline misses."""
    now, sleep_until, record = clock.now_ns, clock.sleep_until, recorder.record
    period = recorder.period_ns
    scheduled = now()
    end_at = scheduled + round(duration_s * 1e9)
    misses = 0
    while scheduled < end_at:
        sleep_until(scheduled)
        start = now()
        end = now()
        record(scheduled, start, 0, 0, 0, 0, end)
        deadline = scheduled + period
        if end > deadline:
            misses += 1
            scheduled += -(-(end - scheduled) // period) * period
        else:
            scheduled = deadline
    return misses


def run_empty(clock: RealClock, rate_hz: float, duration_s: float, priority: int | None) -> PhaseResult:
    """The empty loop at ``rate_hz`` for ``duration_s``, with the agent loop's clock and scheduling."""
    recorder = LatencyRecorder(max(1, round(1e9 / rate_hz)), phase_capacity(rate_hz, duration_s))
    with frozen_gc(), realtime_scheduling(priority):
        misses = empty_ticks(clock, recorder, duration_s)
    return PhaseResult("empty", recorder.count, misses, recorder.summary()["lateness"])


def run_agent(loop: ControlLoop, duration_s: float) -> PhaseResult:
    """One run of the agent's control loop; its report's misses and latencies."""
    report = loop.run(duration_s=duration_s)
    parts = {name: report.latency[name] for name in AGENT_PARTS}
    return PhaseResult("agent", report.ticks, report.misses, report.latency["lateness"], parts=parts)


def with_steal(measure: Callable[[], PhaseResult]) -> PhaseResult:
    """``measure()``, with the machine's CPU steal time over it."""
    before = read_cpu_times()
    result = measure()
    result.steal = steal_percent(before, read_cpu_times())
    return result


# ------------------------------------------------------------------------------------- setup
def load_agent(args: argparse.Namespace) -> Reflect:
    """The agent to run: ``--checkpoint`` loaded, or a fresh default agent of ``--env`` (seed 0)."""
    if args.checkpoint is None:
        return Reflect(args.env or DEFAULT_ENV, seed=0)
    agent = Reflect.load(args.checkpoint)
    if args.env is not None and args.env != agent.env_id:
        raise ValueError(f"--env {args.env} does not match the checkpoint's env {agent.env_id}; drop --env")
    agent.reset_state()  # the env starts a new episode: so does the agent (weights and statistics kept)
    return agent


def build_loop(agent: Reflect, args: argparse.Namespace, clock: RealClock) -> tuple[ControlLoop, GymControl]:
    """The agent's control loop on a fresh env of its id, as ``reflect run`` builds it."""
    control = GymControl(make_single_env(str(agent.env_id)), seed=agent.seed)
    loop = control.control_loop(
        agent,
        rate_hz=args.rate_hz,
        learn=not args.frozen,
        clock=clock,
        realtime_priority=args.realtime_priority,
        handle_signals=False,  # Ctrl-C ends the benchmark at once
        latency_capacity=phase_capacity(args.rate_hz, args.duration),
    )
    return loop, control


# ------------------------------------------------------------------------------------ output
def _number(value: float | None, width: int, decimals: int) -> str:
    """``value`` right-aligned in ``width`` characters, or ``n/a`` when it is missing (None or NaN)."""
    if value is None or math.isnan(value):
        return f"{'n/a':>{width}}"
    return f"{value:{width}.{decimals}f}"


def target_met(result: PhaseResult) -> bool:
    """Whether an agent phase stayed under the target's miss %."""
    return result.miss_percent < TARGET_MISS_PERCENT


def print_header(agent: Reflect, args: argparse.Namespace) -> None:
    """What runs, on what machine, and the target."""
    source = "fresh default agent (seed 0)" if args.checkpoint is None else f"agent {args.checkpoint}"
    mode = "frozen" if args.frozen else "learning"
    scheduler = (
        "ordinary scheduler" if args.realtime_priority is None
        else f"SCHED_FIFO priority {args.realtime_priority}"
    )
    period_us = 1e6 / args.rate_hz
    print(f"control loop vs empty loop: {agent.env_id}, {source}, {mode} "
          f"({agent.num_timesteps:,} steps learned so far)")
    print(f"{args.rate_hz:g} Hz (period {period_us:,.0f} µs), {args.rounds} round(s) of {args.duration:g} s "
          "per phase (empty loop, then agent loop)")
    print(f"both loops: RealClock spin {args.spin_us:g} µs, {scheduler}; torch threads "
          f"{torch.get_num_threads()}")
    steal = "from /proc/stat" if read_cpu_times() is not None else "n/a (/proc/stat unreadable)"
    print(f"machine: {os.cpu_count()} CPUs, load average at start {load_average()}, CPU steal {steal}")
    print(f"target: {TARGET} (agent loop)", flush=True)


def print_warmup(loop: ControlLoop, seconds: float) -> None:
    """An untimed agent-loop run, with a line on what it cost."""
    report = loop.run(duration_s=seconds)
    print(f"warm-up (agent loop, not counted): {report.ticks:,} ticks, {report.misses:,} misses, "
          f"longest tick {report.latency['work'].max_us / 1e3:,.1f} ms", flush=True)


PHASE_HEADER = (
    f"{'':<9} {'ticks':>8} {'misses':>7} {'miss %':>8} {'late med':>9} {'late p99':>9} {'late max':>9} "
    f"{'steal %':>8}  target"
)


def print_round(number: int, empty: PhaseResult, agent: PhaseResult) -> None:
    """A round's table: both phases, then the agent's tick parts."""
    print(f"\nround {number}  (late = wake-up lateness, µs; steal = the machine's stolen CPU time)")
    print(PHASE_HEADER)
    for result in (empty, agent):
        verdict = "-" if result is empty else ("met" if target_met(result) else "NOT met")
        late = result.lateness
        print(f"  {result.phase:<7} {result.ticks:>8,} {result.misses:>7,} {result.miss_percent:>7.3f}% "
              f"{_number(late.median_us, 9, 1)} {_number(late.p99_us, 9, 1)} {_number(late.max_us, 9, 1)} "
              f"{_number(result.steal, 8, 2)}  {verdict}")
    print(f"  {'agent tick (µs)':<15}" + "".join(f"{name:>12}" for name in AGENT_PARTS))
    for label, index in (("median", 0), ("p99", 1)):
        print(f"    {label:<13}" + "".join(_number(agent.parts[n][index], 12, 1) for n in AGENT_PARTS))
    sys.stdout.flush()


def _median(values: list[float | None]) -> float | None:
    """The median of the values that are there (None where none is)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def print_summary(rounds: list[tuple[PhaseResult, PhaseResult]], args: argparse.Namespace) -> None:
    """Medians over rounds of both loops' miss % (and steal), their difference, the target's verdicts."""
    empty_miss = statistics.median(e.miss_percent for e, _ in rounds)
    agent_miss = statistics.median(a.miss_percent for _, a in rounds)
    print(f"\nsummary over {len(rounds)} round(s) (medians of the rounds):")
    for name, miss, steals in (
        ("empty", empty_miss, [e.steal for e, _ in rounds]),
        ("agent", agent_miss, [a.steal for _, a in rounds]),
    ):
        print(f"  {name} loop  deadline misses {miss:7.3f}%   steal {_number(_median(steals), 6, 2)}%")
    print(f"  agent - empty: {agent_miss - empty_miss:+.3f} percentage points of misses (what the agent's "
          "work adds to the machine's own stalls)")
    verdicts = ", ".join(
        f"round {i}: {'met' if target_met(a) else 'NOT met'} ({a.miss_percent:.3f}%)"
        for i, (_, a) in enumerate(rounds, 1)
    )
    print(f"target {TARGET}: {verdicts}")
    if args.rate_hz != TARGET_RATE_HZ or args.duration != TARGET_SECONDS:
        print(f"  (this run: {args.rate_hz:g} Hz for {args.duration:g} s per phase; only the miss % is "
              "compared)")
    print(f"load average at the end: {load_average()}")


# -------------------------------------------------------------------------------------- main
def benchmark(args: argparse.Namespace) -> None:
    """Check the options, build the agent loop, warm it up, run the rounds and print them."""
    args.rate_hz = check_rate_hz(args.rate_hz)  # before anything is loaded
    if args.realtime_priority is not None:
        check_realtime_priority(args.realtime_priority)
    torch.set_num_threads(1)  # as reflect run (its default --num-threads)
    clock = RealClock(spin_us=args.spin_us)
    agent = load_agent(args)
    loop, control = build_loop(agent, args, clock)
    try:
        print_header(agent, args)
        if args.warmup > 0:
            print_warmup(loop, args.warmup)
        rounds: list[tuple[PhaseResult, PhaseResult]] = []
        for number in range(1, args.rounds + 1):
            empty = with_steal(lambda: run_empty(clock, args.rate_hz, args.duration, args.realtime_priority))
            measured = with_steal(lambda: run_agent(loop, args.duration))
            rounds.append((empty, measured))
            print_round(number, empty, measured)
        print_summary(rounds, args)
    finally:
        control.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; bad input ends with a one-line error and exit status 2, as ``reflect run``."""
    args = parse_args(argv)
    try:
        benchmark(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        if os.environ.get("REFLECT_DEBUG"):
            raise
        print(f"control_loop.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("control_loop.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
