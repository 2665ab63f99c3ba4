"""How fast a trained REFLECT agent recovers when its robot changes, measured in learning steps.

The step-count twin of ``examples/mujoco_adaptation.py`` (which runs in real time at 500 Hz): train on
a MuJoCo task with its tuned config (plus ``--set`` overrides), change the robot in place
(``reflect.envs.change_body``: by default the motor's gear cut to 5%), then keep learning at full speed.
Per seed it prints

* ``lived``: the mean return of the last 20 training episodes before the change;
* ``frozen``: the mean return of ``--frozen-episodes`` deterministic episodes of the trained policy on
  the changed robot, without learning (what the change costs an agent that does not adapt);
* ``back at``: learning steps (and episodes) after the change until the first episode at the goal;
* ``end``: the mean return of the last 10 episodes within ``--after-steps``.

    python benchmarks/adaptation.py                              # InvertedPendulum-v5, seeds 0-2
    python benchmarks/adaptation.py --seeds 0 1 2 3 4 5 --set action.noise_correlation=0.9 \\
        --set action.noise_calm_target=0.3                      # a setting against the config

Seeds run one after another on one thread; the medians are over the seeds that came back.
"""

from __future__ import annotations

import argparse
import statistics
from collections import deque
from typing import NamedTuple

import numpy as np
import torch

from reflect.agents import Reflect
from reflect.agents.config import load_reflect_config
from reflect.envs import BODY_CHANGES, change_body, make_single_env
from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes

GOALS = {"InvertedPendulum-v5": 1000.0, "InvertedDoublePendulum-v5": 9000.0}
CHUNK = 100  # learning steps between looks at the finished episodes


class Recovery(NamedTuple):
    seed: int
    lived: float
    frozen: float
    back_steps: int | None
    back_episodes: int | None
    end: float


def frozen_return(agent: Reflect, env_id: str, change: str, factor: float, episodes: int) -> float:
    """Mean return of ``episodes`` deterministic episodes of ``agent``'s current policy on a changed robot."""
    env = make_single_env(env_id)
    change_body(env, change, factor)
    result = run_episodes(agent.policy(), env, episodes, EVAL_SEED_OFFSET)
    env.close()
    return result.mean_return


def run_seed(args: argparse.Namespace, seed: int) -> Recovery:
    """Train, change the robot, learn on until ``--after-steps``; see the module docstring."""
    env = make_single_env(args.env)  # kept at hand: the robot is changed in this env, in place
    agent = Reflect(env, load_reflect_config(args.env, None, args.set), seed=seed)
    agent.learner.compile()
    agent.learn(args.train_steps)
    lived = float(np.mean([r for r, _ in list(agent.ep_info_buffer)[-20:]]))
    frozen = frozen_return(agent, args.env, args.change, args.factor, args.frozen_episodes)
    change_body(env, args.change, args.factor)
    agent.ep_info_buffer = deque(maxlen=None)  # every episode after the change
    goal = GOALS.get(args.env, float("inf"))
    steps = 0
    back_steps = back_episodes = None
    while steps < args.after_steps:
        agent.learn(CHUNK)
        steps += CHUNK
        if back_steps is None:
            hits = [i for i, (ret, _) in enumerate(agent.ep_info_buffer) if ret >= goal]
            if hits:
                back_steps, back_episodes = steps, hits[0] + 1
    returns = [r for r, _ in agent.ep_info_buffer]
    end = float(np.mean(returns[-10:])) if returns else float("nan")
    agent.env.close()
    return Recovery(seed, lived, frozen, back_steps, back_episodes, end)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="InvertedPendulum-v5", choices=sorted(GOALS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-steps", type=int, default=60_000)
    parser.add_argument("--after-steps", type=int, default=30_000, help="learning steps after the change")
    parser.add_argument("--change", choices=BODY_CHANGES, default="gear")
    parser.add_argument("--factor", type=float, default=0.05)
    parser.add_argument("--frozen-episodes", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, as reflect train's --set (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.env}: {args.train_steps:,} training steps, then {args.change} x {args.factor:g} and "
          f"{args.after_steps:,} more; goal {GOALS[args.env]:g}; overrides: {args.set or 'none'}")
    print(f"{'seed':>4}  {'lived':>7}  {'frozen':>7}  {'back at (steps)':>15}  {'episodes':>8}  {'end':>7}")
    results = []
    for seed in args.seeds:
        r = run_seed(args, seed)
        results.append(r)
        back = f"{r.back_steps:,}" if r.back_steps is not None else "never"
        print(f"{r.seed:>4}  {r.lived:7.1f}  {r.frozen:7.1f}  {back:>15}  {r.back_episodes or '-':>8}  "
              f"{r.end:7.1f}", flush=True)
    came_back = [r.back_steps for r in results if r.back_steps is not None]
    median = f"{statistics.median(came_back):,.0f}" if came_back else "-"
    print(f"back at the goal: {len(came_back)}/{len(results)} seeds, median {median} steps after the change")


if __name__ == "__main__":
    main()
