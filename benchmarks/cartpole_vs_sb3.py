"""REFLECT (``reflect train --env CartPole-v1`` defaults) vs stable-baselines3 PPO, side by side.

Protocol (design section 9): every 5,000 environment steps, 20 deterministic evaluation episodes on a
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
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

THRESHOLD = 475.0
EVAL_SEED = 10_000


class SeedResult(NamedTuple):
    agent: str
    seed: int
    solved_at: int | None
    seconds_to_solve: float | None
    steps_per_second: float
    stable_from: int | None
    final_eval: float
    evaluations: list[float]


def evaluate(act: Callable[[np.ndarray], int], reset: Callable[[], None], episodes: int) -> float:
    """Mean return of ``episodes`` deterministic episodes (fixed start seeds)."""
    env = gym.make("CartPole-v1")
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + k)
        reset()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


class EvalClock:
    """Evaluates every ``every`` steps and keeps training time apart from evaluation time."""

    def __init__(self, every: int, episodes: int) -> None:
        self.every, self.episodes = every, episodes
        self.next_at = every
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.history: list[tuple[int, float, float]] = []  # (step, mean return, training seconds)

    def maybe_evaluate(self, steps: int, act: Callable[[np.ndarray], int], reset: Callable[[], None]) -> None:
        if steps < self.next_at:
            return
        self.next_at = (steps // self.every + 1) * self.every
        began = time.perf_counter()
        train_seconds = began - self.start - self.eval_seconds
        self.history.append((steps, evaluate(act, reset, self.episodes), train_seconds))
        self.eval_seconds += time.perf_counter() - began

    def result(self, agent: str, seed: int, total_steps: int) -> SeedResult:
        train_seconds = time.perf_counter() - self.start - self.eval_seconds
        solved = next(((s, t) for s, r, t in self.history if r >= THRESHOLD), None)
        stable = None
        for s, r, _ in self.history:
            if r < THRESHOLD:
                stable = None
            elif stable is None:
                stable = s
        return SeedResult(
            agent,
            seed,
            None if solved is None else solved[0],
            None if solved is None else solved[1],
            total_steps / train_seconds,
            stable,
            self.history[-1][1] if self.history else float("nan"),
            [r for _, r, _ in self.history],
        )


def run_reflect(seed: int, total_steps: int, every: int, episodes: int) -> SeedResult:
    from reflect.agents import Reflect
    from reflect.agents.callbacks import ReflectCallback
    from reflect.agents.config import load_reflect_config

    config = load_reflect_config("CartPole-v1")
    agent = Reflect("CartPole-v1", config, seed=seed)
    policy = agent.policy()
    clock = EvalClock(every, episodes)

    class Hook(ReflectCallback):
        def _on_step(self) -> bool:
            clock.maybe_evaluate(self.num_timesteps, lambda o: int(policy.act(o)[0]), policy.reset)
            return True

    clock.start = time.perf_counter()
    agent.learn(total_steps, callback=Hook())
    return clock.result("reflect", seed, agent.num_timesteps)


def run_ppo(
    seed: int,
    total_steps: int,
    every: int,
    episodes: int,
    policy: Any = "MlpPolicy",
    name: str = "sb3-ppo",
    policy_kwargs: dict[str, Any] | None = None,
) -> SeedResult:
    """PPO with rl-baselines3-zoo's CartPole-v1 hyperparameters (8 envs) and the shared evaluation."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    def linear(start: float) -> Callable[[float], float]:
        return lambda progress_remaining: progress_remaining * start

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
        policy_kwargs=policy_kwargs or {},
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


def _fmt(value: float | None, spec: str) -> str:
    return "never" if value is None else format(value, spec)


def _median(values: list[Any]) -> float | None:
    """Median over seeds, counting unsolved seeds as infinitely late (None if most never solved)."""
    ordered = sorted(float("inf") if v is None else float(v) for v in values)
    middle = statistics.median(ordered)
    return None if middle == float("inf") else middle


HEADER = (
    f"{'agent':<8} {'seed':>4} {'solved at':>10} {'secs':>7} {'steps/s':>8} {'stable from':>11} {'final':>6}"
)


def print_result(r: SeedResult) -> None:
    """One seed's line and its evaluation history."""
    print(
        f"{r.agent:<8} {r.seed:>4} {_fmt(r.solved_at, ','):>10} {_fmt(r.seconds_to_solve, '.1f'):>7} "
        f"{r.steps_per_second:>8.0f} {_fmt(r.stable_from, ','):>11} {r.final_eval:>6.0f}",
        flush=True,
    )
    print(f"         evaluations: {[round(v) for v in r.evaluations]}", flush=True)


def print_medians(results: list[SeedResult], names: list[str]) -> None:
    """Per agent: seeds solved and the medians of steps, seconds, steps/s and "stable from"."""
    print("\nmedian over seeds (a seed that never solved counts as infinitely late):")
    for name in names:
        rs = [r for r in results if r.agent == name]
        solved = sum(r.solved_at is not None for r in rs)
        print(
            f"{name:<8} solved {solved}/{len(rs)}"
            f"  steps to solve {_fmt(_median([r.solved_at for r in rs]), ',.0f')}"
            f"  seconds to solve {_fmt(_median([r.seconds_to_solve for r in rs]), '.1f')}"
            f"  steps/s {statistics.median(r.steps_per_second for r in rs):,.0f}"
            f"  stable from {_fmt(_median([r.stable_from for r in rs]), ',.0f')}"
        )


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
