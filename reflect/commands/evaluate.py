"""``reflect evaluate``: run a saved agent with frozen weights and print its episode returns.

    reflect evaluate --checkpoint runs/<run>/final_model.pt --episodes 20 [--render] [--stochastic]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def display_problem(env: Any, environ: Mapping[str, str] | None = None, platform: str | None = None
                    ) -> str | None:
    """Why ``--render`` cannot open a window for ``env`` here, or None when it can (as far as can be
    told without opening one).

    On Linux and the BSDs a window needs an X11 or Wayland display (``DISPLAY`` / ``WAYLAND_DISPLAY``).
    Without one, MuJoCo's window viewer (GLFW) aborts the whole process with a C assertion, which no
    error handling can catch afterwards; ``MUJOCO_GL=egl`` or ``osmesa`` only renders off-screen, the
    window still needs a display. Other envs draw with pygame, whose own video driver
    (``SDL_VIDEODRIVER``, e.g. a framebuffer) is trusted when set.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not (platform.startswith("linux") or "bsd" in platform):
        return None  # macOS and Windows always have a window system
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    mujoco = any(cls.__module__.startswith("gymnasium.envs.mujoco") for cls in type(env.unwrapped).__mro__)
    if not mujoco and environ.get("SDL_VIDEODRIVER"):
        return None
    offscreen = " (MUJOCO_GL=egl renders off-screen only)" if mujoco else ""
    return f"--render opens a window, but DISPLAY and WAYLAND_DISPLAY are not set{offscreen}"


def run(args: argparse.Namespace) -> int:
    from gymnasium import error as gym_error

    from reflect.agents.reflect_agent import Reflect
    from reflect.checkpoints import load_checkpoint
    from reflect.envs import make_single_env
    from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes

    agent = Reflect.from_checkpoint(load_checkpoint(args.checkpoint), restore_env=False)
    agent.env.close()
    env_id = str(agent.env_id)
    env = make_single_env(env_id, render_mode="human" if args.render else None, **agent.config.env_arguments)
    seed = agent.seed + EVAL_SEED_OFFSET if args.seed is None else args.seed
    try:
        problem = display_problem(env) if args.render else None
        if problem is not None:  # checked before the first frame: MuJoCo's viewer would abort the process
            raise ValueError(
                f"cannot render {env_id}: {problem}; run where a display is (a desktop session, ssh -X, or "
                "xvfb-run reflect evaluate ...) or drop --render to evaluate without a window"
            )
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
