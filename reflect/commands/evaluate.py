"""``reflect evaluate``: run a saved agent with frozen weights and print its episode returns.

    reflect evaluate --checkpoint runs/<run>/final_model.pt --episodes 20 [--render] [--stochastic]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reflect.commands.common import positive_int, random_seed


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint (frozen weights)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("--checkpoint", type=Path, required=True, metavar="PATH")
    evaluate.add_argument("--episodes", type=positive_int, default=20, help="episodes (default: 20)")
    evaluate.add_argument("--seed", type=random_seed, default=None,
                          help="first episode seed (default: the run's evaluation seeds)")
    evaluate.add_argument("--render", action="store_true", help="show the episodes (needs a display)")
    evaluate.add_argument("--stochastic", action="store_true", help="sample actions instead of the argmax")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gymnasium import error as gym_error

    from reflect.agents.reflect_agent import Reflect
    from reflect.checkpoints import load_checkpoint
    from reflect.envs import make_single_env
    from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes

    agent = Reflect.from_checkpoint(load_checkpoint(args.checkpoint), restore_env=False)
    agent.env.close()
    env_id = str(agent.env_id)
    env = make_single_env(env_id, render_mode="human" if args.render else None, **agent.config.env_kwargs)
    seed = agent.seed + EVAL_SEED_OFFSET if args.seed is None else args.seed
    try:
        result = run_episodes(agent.policy(), env, args.episodes, seed, deterministic=not args.stochastic)
    except gym_error.DependencyNotInstalled as error:  # rendering needs pygame (or a display)
        message = f"cannot render {env_id}: {error}; drop --render to evaluate without a window"
        raise ValueError(message) from None
    finally:
        env.close()
    for k, (ret, length) in enumerate(zip(result.returns, result.lengths, strict=True)):
        print(f"episode {k:>3}  return {ret:10.2f}  length {length}")
    print(f"{env_id}: mean return {result.mean_return:.2f} +- {result.std_return:.2f} over {args.episodes} "
          f"episodes (mean length {result.mean_length:.1f}, {agent.num_timesteps:,} training steps)")
    return 0
