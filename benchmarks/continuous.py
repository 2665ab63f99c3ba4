"""REFLECT vs stable-baselines3 PPO on continuous control, side by side at equal env-step budgets.

Protocol (README.md, "Results"): every ``--eval-every`` steps, 10 deterministic evaluation episodes on a
separate env (episode k starts from ``reset(seed=10_000 + k)``, the same for both agents). Solved when
the mean return reaches the task's goal: Pendulum-v1 -250, InvertedPendulum-v5 1000 (the maximum).
REFLECT runs with ``reflect train``'s tuned config for the env (``configs/reflect.yaml``); PPO with
rl-baselines3-zoo's hyperparameters for the env (observation/reward normalisation with VecNormalize
where the zoo uses it). Seeds alternate between the two agents so both see the same machine load.

    python benchmarks/continuous.py                                    # both tasks, seeds 0-2, 100k steps
    python benchmarks/continuous.py --envs Pendulum-v1 --seeds 0 --total-steps 20000      # a quick look
    python benchmarks/continuous.py --envs HalfCheetah-v5 Hopper-v5 --agents reflect \\
        --total-steps 1000000 --eval-every 50000                       # the long MuJoCo runs
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from protocol import HEADER, EvalClock, SeedResult, learn_evaluating, print_medians, print_result

GOALS: dict[str, float] = {"Pendulum-v1": -250.0, "InvertedPendulum-v5": 1000.0}
EVAL_EVERY = {"Pendulum-v1": 10_000, "InvertedPendulum-v5": 5_000}

# rl-baselines3-zoo's PPO hyperparameters (hyperparams/ppo.yml; the MuJoCo entries are tuned on -v3)
ZOO_PPO: dict[str, dict[str, Any]] = {
    "Pendulum-v1": dict(
        n_envs=4, normalize=False, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
        learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4,
    ),
    "InvertedPendulum-v5": dict(
        n_envs=1, normalize=True, batch_size=64, n_steps=32, gamma=0.999, learning_rate=0.000222425,
        ent_coef=1.37976e-07, clip_range=0.4, n_epochs=5, gae_lambda=0.9, max_grad_norm=0.3,
        vf_coef=0.19816,
    ),
    "HalfCheetah-v5": dict(
        n_envs=1, normalize=True, batch_size=64, n_steps=512, gamma=0.98, learning_rate=2.0633e-05,
        ent_coef=0.000401762, clip_range=0.1, n_epochs=20, gae_lambda=0.92, max_grad_norm=0.8,
        vf_coef=0.58096, policy_kwargs="relu256",
    ),
    "Hopper-v5": dict(
        n_envs=1, normalize=True, batch_size=32, n_steps=512, gamma=0.999, learning_rate=9.80828e-05,
        ent_coef=0.00229519, clip_range=0.2, n_epochs=5, gae_lambda=0.99, max_grad_norm=0.7,
        vf_coef=0.835671, policy_kwargs="relu256",
    ),
}


def run_reflect(env_id: str, seed: int, total_steps: int, every: int, episodes: int) -> SeedResult:
    from reflect.agents import Reflect
    from reflect.agents.config import load_reflect_config

    agent = Reflect(env_id, load_reflect_config(env_id), seed=seed)
    agent.learner.compile()  # numba compiles (or loads) here, outside the timed learning
    policy = agent.policy()
    clock = EvalClock(env_id, GOALS.get(env_id, float("inf")), every, episodes)

    learn_evaluating(agent, total_steps, clock, lambda o: policy.act(o[None])[0], policy.reset)
    return clock.result("reflect", seed, agent.num_timesteps)


def run_ppo(env_id: str, seed: int, total_steps: int, every: int, episodes: int) -> SeedResult:
    """PPO with the zoo's hyperparameters for ``env_id`` and the shared evaluation."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    params = dict(ZOO_PPO[env_id])
    n_envs, normalize = params.pop("n_envs"), params.pop("normalize")
    if params.pop("policy_kwargs", None) == "relu256":
        params["policy_kwargs"] = dict(
            log_std_init=-2, ortho_init=False, activation_fn=torch.nn.ReLU,
            net_arch=dict(pi=[256, 256], vf=[256, 256]),
        )
    env: Any = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=params["gamma"])
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", **params)
    clock = EvalClock(env_id, GOALS.get(env_id, float("inf")), every, episodes)

    def act(obs: np.ndarray) -> np.ndarray:
        if normalize:
            obs = env.normalize_obs(obs)
        return model.predict(obs, deterministic=True)[0]

    learn_evaluating(model, total_steps, clock, act, lambda: None)
    return clock.result("sb3-ppo", seed, model.num_timesteps)


RUNNERS: dict[str, Callable[[str, int, int, int, int], SeedResult]] = {
    "reflect": run_reflect, "sb3-ppo": run_ppo,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", default=["Pendulum-v1", "InvertedPendulum-v5"],
                        choices=sorted(ZOO_PPO))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=None,
                        help="default: 10k for Pendulum, 5k for InvertedPendulum, 50k otherwise")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--agents", nargs="+", default=["reflect", "sb3-ppo"], choices=sorted(RUNNERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for env_id in args.envs:
        every = args.eval_every or EVAL_EVERY.get(env_id, 50_000)
        goal = GOALS.get(env_id)
        print(f"\n{env_id}: goal {'none (returns only)' if goal is None else goal}, "
              f"{args.total_steps:,} steps, evaluation every {every:,} steps")
        print(HEADER)
        results: list[SeedResult] = []
        for seed in args.seeds:
            for name in args.agents:
                result = RUNNERS[name](env_id, seed, args.total_steps, every, args.eval_episodes)
                results.append(result)
                print_result(result)
        print_medians(results, args.agents)


if __name__ == "__main__":
    main()
