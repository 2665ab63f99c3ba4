"""``reflect run``: drive a Gymnasium env in real time with a saved agent, at a fixed rate.

    reflect run --checkpoint model.pt --rate-hz 500 --duration 60               # frozen weights
    reflect run --checkpoint model.pt --rate-hz 500 --duration 60 --learn       # keeps learning
    reflect run --checkpoint model.pt --learn --out adapted.pt --checkpoint-every 10

Every tick the agent acts on the latest observation, the environment steps (its own time is part of
the tick) and, with --learn, the agent learns from that step. At the end a report gives the deadline
misses (ticks that ended after the next tick was due; the loop then waits for the next boundary, it
never bursts to catch up) and the median / p99 / max latencies of each part of a tick.

With --learn the agent is saved to --out (default: <checkpoint>_run.pt beside the checkpoint; the
input checkpoint is only overwritten when --out names it) when the run ends, every --checkpoint-every
seconds, and on Ctrl-C or SIGTERM, which stop the loop at the next tick (exit status 130 / 143).
A location that cannot be written is refused before the loop starts; if the final save still fails,
the agent goes to a folder reflect-rescue-* under the system's temporary directory, named in a warning
(exit status 1).
Without --duration or --steps the loop runs until one of them.
A checkpoint trained on several streams (train.num_envs > 1) runs as one: the weights and statistics
the streams share are loaded, and the one stream starts afresh (--learn saves a one-stream agent).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from reflect.commands.common import (
    non_negative_microseconds,
    positive_int,
    positive_seconds,
    random_seed,
    rate_hz,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    run_parser = commands.add_parser(
        "run",
        help="drive an environment in real time at a fixed rate (frozen or learning)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_parser.add_argument("--checkpoint", type=Path, required=True, metavar="PATH", help="the agent to run")
    run_parser.add_argument(
        "--env", metavar="ENV_ID", help="Gymnasium env id (default: the checkpoint's; must match it)"
    )
    run_parser.add_argument(
        "--rate-hz", type=rate_hz, metavar="HZ",
        help="ticks per second, up to 10000 (default: the env's real-time rate, e.g. 50 for CartPole-v1)",
    )
    length = run_parser.add_mutually_exclusive_group()
    length.add_argument("--duration", type=positive_seconds, metavar="SECONDS", help="run this long")
    length.add_argument("--steps", type=positive_int, metavar="N", help="run this many ticks")
    run_parser.add_argument("--learn", action="store_true", help="keep learning online (default: frozen)")
    run_parser.add_argument(
        "--checkpoint-every", type=positive_seconds, metavar="SECONDS",
        help="with --learn: also save every SECONDS (written in the background)",
    )
    run_parser.add_argument(
        "--out", type=Path, metavar="PATH",
        help="with --learn: where the agent is saved (default: <checkpoint>_run.pt)",
    )
    run_parser.add_argument(
        "--stochastic", action="store_true", help="frozen runs: sample actions instead of the policy's mode"
    )
    run_parser.add_argument(
        "--seed", type=random_seed, default=None,
        help="seed of the env's first reset (default: the checkpoint's seed)",
    )
    run_parser.add_argument(
        "--realtime-priority", type=positive_int, metavar="N",
        help="run the loop with real-time scheduling (Linux SCHED_FIFO, 1-99; needs the permission)",
    )
    run_parser.add_argument(
        "--spin-us", type=non_negative_microseconds, default=None, metavar="US",
        help="busy-wait the last US microseconds before each tick instead of sleeping (default: 200; "
        "a value of at least the period spins the whole time: one core busy, but the agent's code "
        "stays warm in the CPU caches)",
    )
    run_parser.add_argument(
        "--num-threads", type=positive_int, default=1, metavar="N", help="torch CPU threads (default: 1)"
    )
    run_parser.add_argument("--quiet", action="store_true", help="no line per episode")
    run_parser.set_defaults(run=run)


def _output_path(args: argparse.Namespace) -> Path | None:
    from reflect.runtime.checkpointing import checkpoint_file

    if not args.learn:
        if args.out is not None or args.checkpoint_every is not None:
            raise ValueError("--out and --checkpoint-every need --learn: a frozen run has nothing to save")
        return None
    if args.stochastic:
        raise ValueError("--stochastic is for frozen runs: a learning agent always samples its actions")
    if args.out is not None:  # named explicitly: may be the input checkpoint or an existing file
        out = checkpoint_file(args.out)
    else:
        source = Path(args.checkpoint)
        out = source.with_name(f"{source.stem}_run.pt")
        if out.exists():
            raise ValueError(
                f"'{out}' already exists (from an earlier run?): choose where the agent is saved with "
                "--out PATH (a file named by --out is overwritten)"
            )
    if out.is_dir():
        raise ValueError(f"--out '{out}' is a directory; give a file path, e.g. {out / 'agent.pt'}")
    _check_writable(out)
    return out


def _check_writable(out: Path) -> None:
    """Refuse an output file that cannot be written before the loop runs, not after it learned."""
    from reflect.atomic_files import check_can_write
    from reflect.runs.run_dir import os_error_fix, os_error_reason

    try:
        check_can_write(out)
    except OSError as error:
        raise ValueError(
            f"cannot save the learned agent to '{out}': {os_error_reason(error)}; {os_error_fix(error)} "
            "(--out PATH chooses the file)"
        ) from error


def _env_id(args: argparse.Namespace, payload: dict[str, Any]) -> str:
    saved = payload.get("env_id")
    if args.env is not None and saved is not None and args.env != saved:
        raise ValueError(f"--env {args.env} does not match the checkpoint's env {saved}; drop --env")
    env_id = args.env or saved
    if env_id is None:
        raise ValueError("the checkpoint does not name its environment: pass --env ENV_ID")
    return str(env_id)


def _rate_hz(args: argparse.Namespace, env: Any, env_id: str) -> float:
    from reflect.runtime import check_rate_hz

    if args.rate_hz is not None:
        return check_rate_hz(args.rate_hz)
    fps = getattr(env, "metadata", {}).get("render_fps")
    if not fps:
        raise ValueError(f"{env_id} has no real-time rate (metadata render_fps): give one with --rate-hz HZ")
    return check_rate_hz(float(fps))


def run(args: argparse.Namespace) -> int:
    import torch

    from reflect.agents.config import saved_env_arguments
    from reflect.agents.reflect_agent import Reflect
    from reflect.checkpoints import load_checkpoint
    from reflect.envs import make_single_env
    from reflect.runtime import SIGNAL_EXIT_CODES, GymControl, check_rate_hz
    from reflect.runtime.checkpointing import CheckpointSaveError
    from reflect.runtime.clock import RealClock
    from reflect.runtime.realtime import check_realtime_priority

    if args.rate_hz is not None:
        check_rate_hz(args.rate_hz)  # before anything is loaded
    if args.realtime_priority is not None:
        check_realtime_priority(args.realtime_priority)
    out = _output_path(args)
    payload = load_checkpoint(args.checkpoint)
    env_id = _env_id(args, payload)
    torch.set_num_threads(args.num_threads)
    env = make_single_env(env_id, **saved_env_arguments(payload))
    try:
        rate_hz = _rate_hz(args, env, env_id)
        agent = Reflect.from_checkpoint(payload, env, restore_env=False)
        agent.reset_state()  # the env starts a new episode: so does the agent (weights and statistics kept)
        control = GymControl(env, seed=agent.seed if args.seed is None else args.seed)
        episode_count = [0]

        def print_episode(episode_return: float, length: int) -> None:
            episode_count[0] += 1
            line = f"episode {episode_count[0]:>5}  return {episode_return:10.2f}  length {length}"
            print(line, flush=True)

        loop = control.control_loop(
            agent,
            rate_hz=rate_hz,
            learn=args.learn,
            deterministic=not args.stochastic,
            checkpoint_path=out,
            checkpoint_every_s=args.checkpoint_every,
            on_episode=None if args.quiet else print_episode,
            realtime_priority=args.realtime_priority,
            clock=None if args.spin_us is None else RealClock(spin_us=args.spin_us),
        )
        mode = f"learning, saving to {out}" if args.learn else "frozen"
        until = (
            f"for {args.duration:g} s" if args.duration is not None
            else f"for {args.steps:,} ticks" if args.steps is not None
            else "until Ctrl-C"
        )
        print(
            f"{env_id} at {rate_hz:g} Hz {until}, {mode} ({agent.num_timesteps:,} steps learned so far); "
            "Ctrl-C stops at the next tick",
            file=sys.stderr,
        )
        report = loop.run(duration_s=args.duration, steps=args.steps)
    except CheckpointSaveError as error:  # neither --out nor a fallback folder could be written
        if os.environ.get("REFLECT_DEBUG"):
            raise
        print(f"reflect run: error: {error}", file=sys.stderr)
        return 1
    finally:
        env.close()
    print(report.format())
    if report.episodes:
        returns = [r for r, _ in report.episodes]
        print(
            f"episodes: {len(returns)}, mean return {sum(returns) / len(returns):.2f}, "
            f"last {returns[-1]:.2f}"
        )
    else:
        print("episodes: none ended")
    if report.stopped_by in SIGNAL_EXIT_CODES:
        print(f"stopped by {report.stopped_by}", file=sys.stderr)
    if report.save_error is not None:  # saved, but in a fallback folder
        print(
            f"reflect run: warning: saved the learned agent ({report.num_timesteps:,} steps) to "
            f"'{report.checkpoint}' because {report.save_error}; continue with: "
            f"reflect run --checkpoint {report.checkpoint} --learn --out PATH (a writable file)",
            file=sys.stderr,
        )
    elif report.checkpoint is not None:
        print(
            f"saved {report.checkpoint} ({report.num_timesteps:,} steps learned); continue with: "
            f"reflect run --checkpoint {report.checkpoint} --learn --out {report.checkpoint}",
            file=sys.stderr,
        )
    signal_status = SIGNAL_EXIT_CODES.get(report.stopped_by or "")
    if signal_status is not None:
        return signal_status
    return 1 if report.save_error is not None else 0
