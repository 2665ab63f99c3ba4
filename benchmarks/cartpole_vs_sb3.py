"""REFLECT (``reflect train --env CartPole-v1`` defaults) vs stable-baselines3 PPO, side by side.

Protocol (README.md, "Results"): every 5,000 environment steps, 20 deterministic evaluation episodes on a
separate env (episode k starts from ``reset(seed=10_000 + k)``, the same for both agents); solved when
the mean return reaches 475. PPO uses rl-baselines3-zoo's CartPole-v1 hyperparameters (8 envs).
Seeds alternate between the two agents so both see the same machine load.

Printed per seed and as medians: steps to solve, training wall seconds to solve (evaluation time
excluded), training env steps per second, the first step from which every later evaluation stays
solved, and the final evaluation.

    python benchmarks/cartpole_vs_sb3.py                    # seeds 0-4, 100k steps each
    python benchmarks/cartpole_vs_sb3.py --seeds 0 --total-steps 10000   # a quick look
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from protocol import HEADER, EvalClock, SeedResult, learn_evaluating, print_medians, print_result

THRESHOLD = 475.0
ENV_ID = "CartPole-v1"


def run_reflect(seed: int, total_steps: int, every: int, episodes: int) -> SeedResult:
    from reflect.agents import Reflect
    from reflect.agents.config import load_reflect_config

    config = load_reflect_config("CartPole-v1")
    agent = Reflect("CartPole-v1", config, seed=seed)
    agent.learner.compile()  # numba compiles (or loads) here, outside the timed learning
    policy = agent.policy()
    clock = EvalClock(ENV_ID, THRESHOLD, every, episodes)

    learn_evaluating(agent, total_steps, clock, lambda o: int(policy.act(o)[0]), policy.reset)
    return clock.result("reflect", seed, agent.num_timesteps)


def run_ppo(
    seed: int,
    total_steps: int,
    every: int,
    episodes: int,
    policy: Any = "MlpPolicy",
    name: str = "sb3-ppo",
    policy_kwargs: dict[str, Any] | None = None,
    normalize_observations: bool = False,
    learning_rate: float = 1e-3,
    clip_range: float = 0.2,
) -> SeedResult:
    """PPO with rl-baselines3-zoo's CartPole-v1 hyperparameters (8 envs) and the shared evaluation;
    ``normalize_observations`` wraps the envs in SB3's ``VecNormalize`` (observations only; the
    evaluation sees them through the same running statistics); ``learning_rate`` and ``clip_range`` are
    the starts of their linear schedules (the zoo's 1e-3 and 0.2)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from reflect.agents.sb3_policy import LinearDecay

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    normalizer: VecNormalize | None = None
    if normalize_observations:
        env = normalizer = VecNormalize(env, norm_obs=True, norm_reward=False)
    model = PPO(
        policy,
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=LinearDecay(learning_rate),
        clip_range=LinearDecay(clip_range),
        seed=seed,
        device="cpu",
        policy_kwargs=policy_kwargs or {},
    )
    clock = EvalClock(ENV_ID, THRESHOLD, every, episodes)

    def act(obs: np.ndarray) -> int:
        if normalizer is not None:
            normalized = normalizer.normalize_obs(obs)
            assert isinstance(normalized, np.ndarray)  # a Box observation space
            obs = normalized
        return int(model.predict(obs, deterministic=True)[0])

    learn_evaluating(model, total_steps, clock, act, lambda: None)
    return clock.result(name, seed, model.num_timesteps)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--agents", nargs="+", default=["reflect", "sb3-ppo"], choices=["reflect", "sb3-ppo"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    runners = {"reflect": run_reflect, "sb3-ppo": run_ppo}
    results: list[SeedResult] = []
    print(HEADER)
    for seed in args.seeds:
        for name in args.agents:
            r = runners[name](seed, args.total_steps, args.eval_every, args.eval_episodes)
            results.append(r)
            print_result(r)
    print_medians(results, args.agents)


if __name__ == "__main__":
    main()
