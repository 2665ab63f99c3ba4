"""Soak test: a long lifetime of CartPole-v1 learning with periodic checkpoints, watched for leaks,
slow-downs and numerical failures.

One REFLECT agent (the tuned CartPole-v1 config, seed 0, one thread) learns online for ``--total-steps``
environment steps; every ``--checkpoint-every`` steps it writes a checkpoint the way ``reflect train``
does (atomically, refusing a state with NaN or inf, through the same callback). At 10^4, 10^5, 10^6 steps
and every ``--report-every`` steps it prints:

* ``steps/s``: learning steps per second over the window since the previous row (checkpoint writes
  included, probes excluded);
* ``ref st/s`` and ``ratio``: a shared machine's load changes every speed, so every ``--probe-every``
  steps a second agent, put back each time into the same state, learns ``--probe-steps`` steps: the
  same work every time, timed in the same minutes. ``ratio`` (soak speed over reference speed) moves
  only if the soaked agent itself slows down;
* the resident memory now (VmRSS) and its peak so far (ru_maxrss);
* the mean return of the last 100 training episodes and the checkpoints written.

At the end: the memory at the last row against the memory at 10^4 steps (target: within 5%), the trend
(median ``ratio`` of the last 3 windows over that of the first 3 after warm-up; target: no decay beyond
``--trend-tolerance``, judged only when every window holds at least 10 probes), the NaN events (a
``FloatingPointError`` from the learner, or NaN or inf found in the weights at a report; each one
reloads the last checkpoint and goes on) and the checkpoints. The exit status is 1 if a target is
missed.

    python benchmarks/soak.py                                       # 10^6 steps: ~7 min on an idle core
    python benchmarks/soak.py --total-steps 20000 --report-every 2000 --checkpoint-every 5000   # quick (CI)
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reflect.agents import Reflect
from reflect.agents.callbacks import ReflectCallback
from reflect.checkpoints import checkpoint_bytes, find_non_finite
from reflect.runs.callbacks import CheckpointCallback, WriteGuard

RSS_TOLERANCE = 0.05  # RSS at the end within 5% of RSS at 10^4 steps
TREND_TOLERANCE = 0.05  # the soak/reference speed ratio may drop by at most 5% (timing noise)
MILESTONES = (10_000, 100_000, 1_000_000, 10_000_000)
MIN_PROBES = 10  # per window, for a trend verdict


def rss_mib() -> float:
    """Resident memory now (VmRSS), in MiB; the peak where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mib()


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


class ReferenceProbe:
    """A second agent that learns ``steps`` steps from the same saved state at every probe: the same
    work each time, so its speed follows the machine's load and nothing else."""

    def __init__(self, seed: int, steps: int) -> None:
        self.agent = Reflect("CartPole-v1", seed=seed)
        self.agent.learn(1_000)
        self.state = checkpoint_bytes(self.agent.checkpoint())
        self.steps = steps

    def run(self) -> float:
        """Seconds taken to learn ``steps`` steps from the saved state."""
        self.agent.load_state(torch.load(io.BytesIO(self.state), weights_only=True))
        start = time.perf_counter()
        self.agent.learn(self.steps)
        return time.perf_counter() - start


class SoakMonitor(ReflectCallback):
    """Probes every ``probe_every`` steps and records a row at every step in ``marks`` (two integer
    comparisons per step otherwise)."""

    def __init__(
        self, marks: list[int], checkpoints: CheckpointCallback, probe: ReferenceProbe, probe_every: int
    ) -> None:
        super().__init__()
        self.marks, self.index = marks, 0
        self.checkpoints, self.probe, self.probe_every = checkpoints, probe, probe_every
        self.next_probe = probe_every
        self.rows: list[dict[str, Any]] = []
        self.nan_events = 0
        self.start_time: float | None = None
        self.probe_total = 0.0
        self.last_time, self.last_steps = 0.0, 0
        self.window_probe_seconds, self.window_probe_steps = 0.0, 0

    def _on_training_start(self) -> None:
        now = time.perf_counter()
        if self.start_time is None:
            self.start_time = now
        self.last_time, self.last_steps = now, self.num_timesteps
        self.window_probe_seconds, self.window_probe_steps = 0.0, 0
        while self.index < len(self.marks) and self.marks[self.index] <= self.num_timesteps:
            self.index += 1  # marks passed before a reload from a checkpoint
        self.next_probe = (self.num_timesteps // self.probe_every + 1) * self.probe_every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_probe:
            self.next_probe += self.probe_every
            start = time.perf_counter()
            self.window_probe_steps += self.probe.steps
            self.window_probe_seconds += self.probe.run()
            self.probe_total += time.perf_counter() - start
        if self.index < len(self.marks) and self.num_timesteps >= self.marks[self.index]:
            self.index += 1
            self.report()
        return True

    def report(self) -> None:
        assert self.start_time is not None
        now, step, agent = time.perf_counter(), self.num_timesteps, self.model
        states = {"actor": agent.actor.state_dict(), "learner": agent.learner.state_dict()}
        if agent.critic is not None:
            states["critic"] = agent.critic.state_dict()
        bad = find_non_finite(states)
        if bad is not None:
            self.nan_events += 1
            print(f"NaN event: non-finite value at '{bad}' after step {step:,}", flush=True)
        seconds = now - self.last_time - self.window_probe_seconds
        sps = (step - self.last_steps) / max(seconds, 1e-9)
        probed = self.window_probe_seconds
        ref = self.window_probe_steps / probed if probed else float("nan")
        episodes = agent.ep_info_buffer
        row = {
            "step": step,
            "sps": sps,
            "ref_sps": ref,
            "ratio": sps / ref,
            "probes": self.window_probe_steps // self.probe.steps,
            "rss": rss_mib(),
            "peak_rss": peak_rss_mib(),
            "ep_rew_mean": sum(r for r, _ in episodes) / len(episodes) if episodes else float("nan"),
            "checkpoints": self.checkpoints.saved,
        }
        self.rows.append(row)
        print(
            f"{row['step']:>11,} {row['sps']:>9,.0f} {row['ref_sps']:>9,.0f} {row['ratio']:>7.3f} "
            f"{row['rss']:>9.1f} {row['peak_rss']:>9.1f} {row['ep_rew_mean']:>11.1f} {row['checkpoints']:>6}",
            flush=True,
        )
        self.last_time, self.last_steps = time.perf_counter(), step
        self.window_probe_seconds, self.window_probe_steps = 0.0, 0


def report_marks(total: int, every: int) -> list[int]:
    marks = set(range(every, total + 1, every)) if every > 0 else set()
    marks.update(m for m in MILESTONES if m <= total)
    marks.add(total)
    return sorted(marks)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--total-steps", type=int, default=1_000_000, help="environment steps (default 10^6)")
    parser.add_argument("--checkpoint-every", type=int, default=25_000, help="steps between checkpoints")
    parser.add_argument("--report-every", type=int, default=50_000, help="steps between report rows")
    parser.add_argument("--probe-every", type=int, default=2_000, help="steps between reference probes")
    parser.add_argument("--probe-steps", type=int, default=100, help="steps the reference learns per probe")
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help="windows ending at or before this step are left out of the trend (default: 10%% of the run)",
    )
    parser.add_argument(
        "--trend-tolerance",
        type=float,
        default=TREND_TOLERANCE,
        help="largest accepted drop of the soak/reference speed ratio (default: 0.05)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="keep the checkpoints here (default: a temporary folder, removed at the end)",
    )
    args = parser.parse_args()
    if args.total_steps < 1 or args.checkpoint_every < 0 or args.report_every < 0:
        parser.error("--total-steps must be >= 1, --checkpoint-every and --report-every >= 0")
    if args.probe_every < 1 or args.probe_steps < 1:
        parser.error("--probe-every and --probe-steps must be >= 1")
    torch.set_num_threads(1)
    warmup = args.total_steps // 10 if args.warmup_steps is None else args.warmup_steps

    with tempfile.TemporaryDirectory(prefix="reflect-soak-") as scratch:
        folder = args.checkpoint_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        probe = ReferenceProbe(args.seed + 1, args.probe_steps)
        agent = Reflect("CartPole-v1", seed=args.seed)
        checkpoints = CheckpointCallback(folder, args.checkpoint_every, WriteGuard())
        marks = report_marks(args.total_steps, args.report_every)
        monitor = SoakMonitor(marks, checkpoints, probe, args.probe_every)
        print(f"soak: CartPole-v1, seed {args.seed}, {args.total_steps:,} steps, checkpoint every "
              f"{args.checkpoint_every:,}, reference probe of {args.probe_steps} steps every "
              f"{args.probe_every:,}, torch {torch.__version__}, 1 thread", flush=True)
        print(f"{'step':>11} {'steps/s':>9} {'ref st/s':>9} {'ratio':>7} {'RSS MiB':>9} {'peak MiB':>9} "
              f"{'ep_rew_mean':>11} {'ckpts':>6}", flush=True)
        start = time.perf_counter()
        while agent.num_timesteps < args.total_steps:
            try:
                agent.learn(args.total_steps - agent.num_timesteps, callback=[checkpoints, monitor])
            except FloatingPointError as error:
                monitor.nan_events += 1
                print(f"NaN event after step {agent.num_timesteps:,}: {error}", flush=True)
                if checkpoints.last_saved is None:
                    print("no checkpoint to go back to: stopping", flush=True)
                    break
                print(f"reloading {checkpoints.last_saved}", flush=True)
                agent = Reflect.load(checkpoints.last_saved)
        wall = time.perf_counter() - start
        files = sorted(folder.glob("step_*.pt"))
        size = sum(f.stat().st_size for f in files)
        print()
        ok = check_memory(monitor.rows)
        ok &= check_trend(monitor.rows, warmup, args.trend_tolerance)
        verdict = "ok" if monitor.nan_events == 0 else "FAIL"
        ok &= verdict == "ok"
        print(f"NaN events: {monitor.nan_events} ({verdict})")
        print(f"checkpoints: {checkpoints.saved} written, {checkpoints.failed} failed, {len(files)} on disk, "
              f"{size / 2**20:.1f} MiB in all ({size / max(len(files), 1) / 1024:.0f} KiB each), "
              f"{checkpoints.seconds:.2f} s spent writing them")
        learning = wall - monitor.probe_total
        print(f"wall time {wall:,.0f} s ({monitor.probe_total:,.0f} s in probes); "
              f"{agent.num_timesteps / learning:,.0f} learning steps/s overall")
    return 0 if ok else 1


def check_memory(rows: list[dict[str, Any]]) -> bool:
    by_step = {row["step"]: row for row in rows}
    for mark in MILESTONES:
        if mark in by_step:
            print(f"RSS at {mark:>10,} steps: {by_step[mark]['rss']:.1f} MiB")
    base, last = by_step.get(10_000, rows[0]), rows[-1]
    ratio = last["rss"] / base["rss"]
    verdict = "ok" if abs(ratio - 1.0) <= RSS_TOLERANCE else "FAIL"
    print(f"RSS at {last['step']:,} / RSS at {base['step']:,} steps: {ratio:.3f} "
          f"(target within {RSS_TOLERANCE:.0%}: {verdict}); peak RSS {last['peak_rss']:.1f} MiB")
    return verdict == "ok"


def check_trend(rows: list[dict[str, Any]], warmup: int, tolerance: float) -> bool:
    late = [row for row in rows if row["step"] > warmup]
    if len(late) < 6:
        print(f"steps/s trend: too few windows after warm-up ({len(late)}; need 6)")
        return True
    for key, label, form in (("sps", "steps/s", ",.0f"), ("ref_sps", "reference steps/s", ",.0f"),
                             ("ratio", "ratio", ".3f")):
        values = [row[key] for row in late]
        first, last, low, high = (
            format(v, form)
            for v in (statistics.median(values[:3]), statistics.median(values[-3:]), min(values), max(values))
        )
        print(f"{label:>17} over {len(values)} windows after {warmup:,} steps: median of the first 3 "
              f"{first}, of the last 3 {last}; min {low}, max {high}")
    ratios = [row["ratio"] for row in late]
    trend = statistics.median(ratios[-3:]) / statistics.median(ratios[:3])
    if min(row["probes"] for row in late) < MIN_PROBES:
        print(f"steps/s trend, load-corrected (last 3 / first 3 ratios): {trend:.3f} (no verdict: windows "
              f"with fewer than {MIN_PROBES} probes are too short to tell a trend from the noise)")
        return True
    verdict = "ok" if trend >= 1.0 - tolerance else "FAIL"
    print(f"steps/s trend, load-corrected (last 3 / first 3 ratios): {trend:.3f} "
          f"(target >= {1 - tolerance:.2f}: {verdict})")
    return verdict == "ok"


if __name__ == "__main__":
    sys.exit(main())
