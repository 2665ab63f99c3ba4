"""PPO with reflect's SpikingActorCriticPolicy against PPO with SB3's MlpPolicy on CartPole-v1.

Both use rl-baselines3-zoo's CartPole-v1 hyperparameters (8 envs, ``n_steps`` 32, ``batch_size`` 256,
``n_epochs`` 20, ``gae_lambda`` 0.8, ``gamma`` 0.98, linear 1e-3 learning rate and 0.2 clip range), the
same seeds, run alternately on the same machine, and the evaluation protocol of
``cartpole_vs_sb3.py`` (20 deterministic episodes every 5,000 steps, solved at a mean of 475).

    python benchmarks/sb3_spiking_policy.py                          # seeds 0-2, 100k steps
    python benchmarks/sb3_spiking_policy.py --seeds 0 --total-steps 10000 --policy-kwargs '{"time_steps": 2}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from cartpole_vs_sb3 import EvalClock, SeedResult, _fmt, _median
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from reflect.agents.sb3_policy import SpikingActorCriticPolicy


def linear(start: float) -> Callable[[float], float]:
    return lambda progress_remaining: progress_remaining * start


def run(
    policy: Any,
    name: str,
    seed: int,
    total_steps: int,
    every: int,
    episodes: int,
    policy_kwargs: dict[str, Any],
) -> SeedResult:
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        policy,
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        seed=seed,
        device="cpu",
        policy_kwargs=policy_kwargs,
    )
    clock = EvalClock(every, episodes)

    def act(obs: np.ndarray) -> int:
        return int(model.predict(obs, deterministic=True)[0])

    class Hook(BaseCallback):
        def _on_step(self) -> bool:
            clock.maybe_evaluate(self.num_timesteps, act, lambda: None)
            return True

    clock.start = time.perf_counter()
    model.learn(total_steps, callback=Hook())
    return clock.result(name, seed, model.num_timesteps)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--policy-kwargs", type=json.loads, default={}, help="JSON for the spiking policy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"spiking policy_kwargs: {args.policy_kwargs or 'defaults'}")
    print(
        f"{'policy':<8} {'seed':>4} {'solved at':>10} {'secs':>7} {'steps/s':>8} {'stable from':>11} "
        f"{'final':>6}"
    )
    results: list[SeedResult] = []
    for seed in args.seeds:
        for policy, name, kwargs in (
            (SpikingActorCriticPolicy, "spiking", args.policy_kwargs),
            ("MlpPolicy", "mlp", {}),
        ):
            r = run(policy, name, seed, args.total_steps, args.eval_every, args.eval_episodes, kwargs)
            results.append(r)
            print(
                f"{r.agent:<8} {r.seed:>4} {_fmt(r.solved_at, ','):>10} {_fmt(r.seconds_to_solve, '.1f'):>7} "
                f"{r.steps_per_second:>8.0f} {_fmt(r.stable_from, ','):>11} {r.final_eval:>6.0f}",
                flush=True,
            )
            print(f"         evaluations: {[round(v) for v in r.evaluations]}", flush=True)
    print("\nmedian over seeds (a seed that never solved counts as infinitely late):")
    for name in ("spiking", "mlp"):
        rs = [r for r in results if r.agent == name]
        print(
            f"{name:<8} solved {sum(r.solved_at is not None for r in rs)}/{len(rs)}"
            f"  steps to solve {_fmt(_median([r.solved_at for r in rs]), ',.0f')}"
            f"  seconds to solve {_fmt(_median([r.seconds_to_solve for r in rs]), '.1f')}"
            f"  steps/s {statistics.median(r.steps_per_second for r in rs):,.0f}"
        )


if __name__ == "__main__":
    main()
