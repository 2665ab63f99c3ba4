"""Per-step latency of the REFLECT agent's step API for one observation, one thread.

Times, per call (``time.perf_counter_ns``), for the default continuous network of ``--env`` (its tuned
config from ``configs/reflect.yaml``; observations are fed from a recorded stream, the env itself is
not timed):

* ``act``: one action while learning (normalisation, actor step with eligibility traces, sampling);
* ``act + observe``: a whole online learning step (critic step, traces, both bounded updates);
* ``frozen act``: after ``agent.freeze()`` (actor only, no traces);
* reference: an eager-PyTorch 64-64 tanh MLP forward under ``torch.no_grad`` in the same run.

Median, p99 and max over ``--steps`` calls, repeated ``--repeats`` times (the median of each statistic
over repeats is printed). Targets: ``act`` p99 <= 100 us and ``act + observe`` p99 <= 250 us.
The garbage collector is paused while timing, as a control loop would run (``--gc`` keeps it on).

    python benchmarks/control_latency.py
    python benchmarks/control_latency.py --env HalfCheetah-v5 --steps 20000
"""

from __future__ import annotations

import argparse
import gc
import statistics
from collections.abc import Callable
from time import perf_counter_ns

import gymnasium as gym
import numpy as np
import torch

from reflect.agents import Reflect
from reflect.agents.config import load_reflect_config


def record_observations(env_id: str, steps: int, seed: int = 0) -> np.ndarray:
    """``[steps, obs_dim]`` observations of random play (episodes restart as they end)."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = []
    for _ in range(steps):
        out.append(np.asarray(obs, dtype=np.float64))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(out)


def time_calls(call: Callable[[int], None], steps: int, keep_gc: bool) -> np.ndarray:
    """Durations in microseconds of ``call(i)`` for ``i < steps``."""
    durations = np.zeros(steps)
    if not keep_gc:
        gc.collect()
        gc.disable()
    try:
        for i in range(steps):
            start = perf_counter_ns()
            call(i)
            durations[i] = perf_counter_ns() - start
    finally:
        gc.enable()
    return durations / 1000.0


def stats(durations: np.ndarray) -> tuple[float, float, float]:
    return float(np.median(durations)), float(np.percentile(durations, 99)), float(durations.max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on while timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    observations = record_observations(args.env, args.steps)
    n = len(observations)
    agent = Reflect(args.env, load_reflect_config(args.env), seed=0)
    net = agent.config.network
    spaces = agent.spaces
    print(f"{args.env}: obs {spaces.obs_dim}, actions {spaces.num_actions} ({spaces.action_kind}), "
          f"hidden {list(net.hidden)} {net.neuron}, one thread, {args.steps:,} calls x {args.repeats}")

    # time act alone: observe runs too (act must alternate with it) but outside the timed window
    def act_only(steps: int) -> np.ndarray:
        durations = np.zeros(steps)
        if not args.gc:
            gc.collect()
            gc.disable()
        try:
            for i in range(steps):
                start = perf_counter_ns()
                agent.act(observations[i % n])
                durations[i] = perf_counter_ns() - start
                agent.observe(-1.0, False, False, observations[(i + 1) % n])
        finally:
            gc.enable()
        return durations / 1000.0

    def act_observe(i: int) -> None:
        agent.act(observations[i % n])
        agent.observe(-1.0, False, False, observations[(i + 1) % n])

    def frozen_act(i: int) -> None:
        agent.act(observations[i % n])

    mlp = torch.nn.Sequential(
        torch.nn.Linear(agent.spaces.obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
        torch.nn.Linear(64, agent.spaces.num_actions),
    )
    inputs = torch.as_tensor(observations, dtype=torch.float32)

    def mlp_forward(i: int) -> None:
        with torch.no_grad():
            mlp(inputs[i % n : i % n + 1]).numpy()

    act_observe(0)
    time_calls(act_observe, args.warmup, True)
    names = ("act", "act + observe", "frozen act", "eager MLP 64-64")
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    for _ in range(args.repeats):
        agent.unfreeze()
        rows["act"].append(stats(act_only(args.steps)))
        rows["act + observe"].append(stats(time_calls(act_observe, args.steps, args.gc)))
        agent.freeze()
        rows["frozen act"].append(stats(time_calls(frozen_act, args.steps, args.gc)))
        rows["eager MLP 64-64"].append(stats(time_calls(mlp_forward, args.steps, args.gc)))
    print(f"{'':<18} {'median us':>10} {'p99 us':>10} {'max us':>10}   (medians over {args.repeats} repeats)")
    for name, values in rows.items():
        median, p99, worst = (statistics.median(v[k] for v in values) for k in range(3))
        print(f"{name:<18} {median:>10.1f} {p99:>10.1f} {worst:>10.1f}")
    act_p99 = statistics.median(v[1] for v in rows["act"])
    step_p99 = statistics.median(v[1] for v in rows["act + observe"])
    reference = statistics.median(v[0] for v in rows["eager MLP 64-64"])
    print(f"act p99 {act_p99:.1f} us (target <= 100): {'met' if act_p99 <= 100 else 'NOT met'}; "
          f"act + observe p99 {step_p99:.1f} us (target <= 250): {'met' if step_p99 <= 250 else 'NOT met'}")
    act_median = statistics.median(v[0] for v in rows["act"])
    print(f"act median / eager MLP forward median: {act_median / reference:.2f}")


if __name__ == "__main__":
    main()
