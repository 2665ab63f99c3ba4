"""The evaluation protocol shared by the learning benchmarks (README.md, "Results").

Every ``every`` environment steps, ``episodes`` deterministic episodes on a separate env, episode ``k``
starting from ``reset(seed=10_000 + k)`` (the same start states for every agent); an agent *solves* the
task when the mean return reaches the threshold. Training time is kept apart from evaluation time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from reflect.envs import make_single_env
from reflect.runs.summary import EvaluationRecord, stable_from_step

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


def evaluate(
    env_id: str, act: Callable[[np.ndarray], Any], reset: Callable[[], None], episodes: int,
    env_arguments: Mapping[str, Any] | None = None,
) -> float:
    """Mean return of ``episodes`` deterministic episodes of ``env_id`` (fixed start seeds).

    The env is built by ``reflect.envs.make_single_env``, as in training, so observations of any space
    are encoded the same way (a 1-D Box env is the one ``gymnasium.make`` builds, less the env checker),
    with ``env_arguments`` (a REFLECT config's ``env_arguments``: its observation filter and env_kwargs).
    """
    env = make_single_env(env_id, **(env_arguments or {}))
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

    def __init__(self, env_id: str, threshold: float, every: int, episodes: int,
                 env_arguments: Mapping[str, Any] | None = None) -> None:
        self.env_id, self.threshold, self.env_arguments = env_id, threshold, env_arguments
        self.every, self.episodes = every, episodes
        self.next_at = every
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.history: list[tuple[int, float, float]] = []  # (step, mean return, training seconds)

    def maybe_evaluate(self, steps: int, act: Callable[[np.ndarray], Any], reset: Callable[[], None]) -> None:
        if steps < self.next_at:
            return
        self.next_at = (steps // self.every + 1) * self.every
        began = time.perf_counter()
        train_seconds = began - self.start - self.eval_seconds
        mean_return = evaluate(self.env_id, act, reset, self.episodes, self.env_arguments)
        self.history.append((steps, mean_return, train_seconds))
        self.eval_seconds += time.perf_counter() - began

    def result(self, agent: str, seed: int, total_steps: int) -> SeedResult:
        train_seconds = time.perf_counter() - self.start - self.eval_seconds
        solved = next(((s, t) for s, r, t in self.history if r >= self.threshold), None)
        records = [EvaluationRecord(s, r, 0.0, 0.0) for s, r, _ in self.history]  # std, length unused
        stable = stable_from_step(records, self.threshold)
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


def learn_evaluating(
    model: Any,
    total_steps: int,
    clock: EvalClock,
    act: Callable[[np.ndarray], Any],
    reset: Callable[[], None],
) -> None:
    """``model.learn(total_steps)`` (a reflect agent or an SB3 algorithm) with ``clock`` evaluating the
    policy ``act`` as the step count passes each evaluation point."""

    def hook(_locals: dict[str, Any], _globals: dict[str, Any]) -> bool:
        clock.maybe_evaluate(model.num_timesteps, act, reset)
        return True

    clock.start = time.perf_counter()
    model.learn(total_steps, callback=hook)
