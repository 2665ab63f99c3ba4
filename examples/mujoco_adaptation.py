"""A MuJoCo robot under a fixed-rate control loop, adapting online when its body changes mid-run.

    pip install "gymnasium[mujoco]"
    python examples/mujoco_adaptation.py --save pendulum.pt       # trains first (a minute or two)
    python examples/mujoco_adaptation.py --checkpoint pendulum.pt --compare-frozen
    python examples/mujoco_adaptation.py --checkpoint pendulum.pt --change mass --factor 20

1. Train a REFLECT agent on InvertedPendulum-v5 with ``agent.learn`` (or load ``--checkpoint``).
2. Run it in a :class:`reflect.runtime.ControlLoop` at ``--rate-hz`` with learning on: every tick the
   agent acts, the simulator steps inside ``apply_action`` and the agent learns from that step.
3. After ``--before`` episodes, change the robot in place through ``env.unwrapped.model``: the cart's
   motor gear (``--change gear``: the force per unit of action) or the pole's mass (``--change mass``).
4. Keep going for ``--after`` episodes; the return of every episode is printed, then the mean return
   before the change, just after it and at the end, and the loop's latency report.

With ``--compare-frozen`` a frozen copy of the same agent (sampling its actions as the learning one
does) goes through the same change, so the recovery can be told apart from luck. At 500 Hz an
InvertedPendulum episode (up to 1,000 steps) lasts up to 2 s; the defaults take about five minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from reflect.agents import Reflect
from reflect.checkpoints import load_checkpoint
from reflect.envs import BODY_CHANGES, change_body, make_single_env
from reflect.runtime import ControlLoop, GymControl, LoopReport


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="InvertedPendulum-v5", help="a MuJoCo env id (default: %(default)s)")
    parser.add_argument("--checkpoint", type=Path, help="start from this saved agent instead of training")
    parser.add_argument("--train-steps", type=int, default=60_000, help="training steps (default: 60000)")
    parser.add_argument("--save", type=Path, help="save the trained agent here (to reuse with --checkpoint)")
    parser.add_argument("--rate-hz", type=float, default=500.0, help="control rate (default: %(default)s)")
    parser.add_argument("--before", type=int, default=5, help="episodes before the change (default: 5)")
    parser.add_argument("--after", type=int, default=150, help="episodes after the change (default: 150)")
    parser.add_argument("--change", choices=BODY_CHANGES, default="gear",
                        help="what changes: the motor's gear or the pole's mass (default: gear)")
    parser.add_argument("--factor", type=float, default=0.05,
                        help="multiply it by this (default: 0.05, a motor at 5%% of its strength)")
    parser.add_argument("--compare-frozen", action="store_true", help="also run a frozen copy through it")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def run_through_change(
    agent: Reflect, args: argparse.Namespace, learn: bool
) -> tuple[list[float], LoopReport]:
    """``--before`` episodes, the change, ``--after`` episodes; returns every episode's return."""
    env = make_single_env(args.env)
    control = GymControl(env, seed=args.seed + 1)
    agent.reset_state()  # a new episode in a new environment
    returns: list[float] = []
    label = "learning" if learn else "frozen  "

    def on_episode(episode_return: float, length: int) -> None:
        returns.append(episode_return)
        phase = "before" if len(returns) <= args.before else "after "
        print(f"[{label}] episode {len(returns):>3} ({phase} the change)  return {episode_return:7.1f}  "
              f"length {length}", flush=True)
        if len(returns) == args.before:
            print(f"[{label}] --- changing the robot: {change_body(env, args.change, args.factor)} ---")
        if len(returns) == args.before + args.after:
            loop.stop()

    loop: ControlLoop = control.control_loop(
        agent, rate_hz=args.rate_hz, learn=learn, deterministic=False, on_episode=on_episode
    )
    try:
        report = loop.run()
    finally:
        env.close()
    return returns, report


def summarize(name: str, returns: list[float], before: int) -> None:
    window = max(1, min(5, before, len(returns) - before))
    after = returns[before:]
    parts = [f"before {statistics.mean(returns[before - window:before]):7.1f}"]
    if after:
        parts.append(f"just after {statistics.mean(after[:window]):7.1f}")
        parts.append(f"at the end {statistics.mean(after[-window:]):7.1f}")
    print(f"{name}: mean return of {window} episodes " + ", ".join(parts))


def main() -> int:
    args = parse_args()
    torch.set_num_threads(1)
    if args.checkpoint is not None:
        agent = Reflect.from_checkpoint(load_checkpoint(args.checkpoint), make_single_env(args.env),
                                        restore_env=False)
    else:
        print(f"training on {args.env} for {args.train_steps:,} steps ...", file=sys.stderr)
        start = time.perf_counter()
        # the tuned config (configs/reflect.yaml): a learned spread, which still explores enough to adapt
        agent = Reflect(args.env, seed=args.seed).learn(args.train_steps, progress_bar=True)
        recent = [r for r, _ in agent.ep_info_buffer][-20:]
        print(f"trained in {time.perf_counter() - start:.0f} s; mean return of the last {len(recent)} "
              f"training episodes: {statistics.mean(recent):.1f}", file=sys.stderr)
        if args.save is not None:
            print(f"saved {agent.save(args.save)}", file=sys.stderr)
    frozen_copy = None
    if args.compare_frozen:  # the same agent, before any of the loop's learning
        frozen_copy = Reflect.from_checkpoint(
            agent.checkpoint(), make_single_env(args.env), restore_env=False
        )
        frozen_copy.env.close()
    agent.env.close()  # the agent's own env: the loop drives a new one

    returns, report = run_through_change(agent, args, learn=True)
    results = [("learning", returns)]
    if frozen_copy is not None:
        frozen_returns, _ = run_through_change(frozen_copy, args, learn=False)
        results.append(("frozen  ", frozen_returns))
    print()
    print(report.format())
    for name, values in results:
        summarize(name, values, args.before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
