"""Per-step latency of the REFLECT agent's step API for one observation, one thread.

Times, per call (``time.perf_counter_ns``), for the default continuous network of ``--env`` (its tuned
config from ``configs/reflect.yaml``; observations are fed from a recorded stream, the env itself is
not timed):

* ``act``: one action while learning (normalisation, actor step with eligibility traces, sampling);
* ``act + observe``: a whole online learning step (critic step, traces, both bounded updates);
* ``frozen act``: after ``agent.freeze()`` (actor only, no traces);
* reference: an eager-PyTorch 64-64 tanh MLP forward under ``torch.no_grad`` in the same run.

Each is measured on the ``numba`` backend (compiled loops, ``Reflect(..., backend="numba")``, when numba is
installed) and on the ``numpy`` backend (``backend="numpy"``), side by side; ``--kernels compiled`` or
``--kernels numpy`` times just one of them. Median, p99 and max over ``--steps`` calls, repeated
``--repeats`` times (the median of each statistic over repeats is printed). Targets: ``act`` p99 <= 100
us and ``act + observe`` p99 <= 250 us. The garbage collector is paused while timing, as a control
loop would run (``--gc`` keeps it on).

Calls run back to back by default. ``--gap-us G`` busy-waits G microseconds before every timed call,
as a control loop at a fixed rate does between ticks: on a shared virtual machine a step then finds
less of its code and data in the caches and takes longer (see the README's control-loop section).

    python benchmarks/control_latency.py
    python benchmarks/control_latency.py --gap-us 1000          # at a 1 kHz cadence
    python benchmarks/control_latency.py --env HalfCheetah-v5 --steps 20000
    python benchmarks/control_latency.py --kernels numpy                # the numpy backend only
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
from reflect.kernels import INSTALL_HINT, compiled_available


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


def busy_wait(ns: int) -> None:
    """Spin (without sleeping) for ``ns`` nanoseconds."""
    end = perf_counter_ns() + ns
    while perf_counter_ns() < end:
        pass


def time_calls(call: Callable[[int], None], steps: int, keep_gc: bool, gap_ns: int = 0,
               after: Callable[[int], None] | None = None) -> np.ndarray:
    """Durations in microseconds of ``call(i)`` for ``i < steps`` (``after(i)`` runs untimed after each,
    ``gap_ns`` of busy waiting before each)."""
    durations = np.zeros(steps)
    if not keep_gc:
        gc.collect()
        gc.disable()
    try:
        for i in range(steps):
            if gap_ns:
                busy_wait(gap_ns)
            start = perf_counter_ns()
            call(i)
            durations[i] = perf_counter_ns() - start
            if after is not None:
                after(i)
    finally:
        gc.enable()
    return durations / 1000.0


def stats(durations: np.ndarray) -> tuple[float, float, float]:
    return float(np.median(durations)), float(np.percentile(durations, 99)), float(durations.max())


# --kernels choice -> the backend it names
BACKENDS = {"compiled": "numba", "numpy": "numpy"}


def make_agent(env_id: str, kind: str) -> Reflect:
    """The default agent of ``env_id`` on the backend of ``kind`` (``compiled``: numba, or ``numpy``)."""
    try:
        return Reflect(env_id, load_reflect_config(env_id), seed=0, backend=BACKENDS[kind])
    except ValueError as refusal:  # e.g. REFLECT_COMPILED=0 in the environment rules numba out
        raise SystemExit(f"--kernels {kind}: {refusal}") from refusal


def agent_rows(agent: Reflect, observations: np.ndarray, args: argparse.Namespace, suffix: str,
               rows: dict[str, list[tuple[float, float, float]]]) -> None:
    """One repeat of the three agent measurements, appended to ``rows``."""
    n, gap = len(observations), args.gap_us * 1000

    def act(i: int) -> None:
        agent.act(observations[i % n])

    def observe(i: int) -> None:
        agent.observe(-1.0, False, False, observations[(i + 1) % n])

    def act_observe(i: int) -> None:
        act(i)
        observe(i)

    agent.unfreeze()
    # act must alternate with observe: observe runs after each act, outside the timed window
    rows.setdefault(f"act{suffix}", []).append(stats(time_calls(act, args.steps, args.gc, gap, observe)))
    rows.setdefault(f"act + observe{suffix}", []).append(
        stats(time_calls(act_observe, args.steps, args.gc, gap))
    )
    agent.freeze()
    rows.setdefault(f"frozen act{suffix}", []).append(stats(time_calls(act, args.steps, args.gc, gap)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--gap-us", type=int, default=0, help="busy-wait before every timed call (us)")
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on while timing")
    parser.add_argument("--kernels", choices=("both", "compiled", "numpy"), default="both",
                        help="which backends to time: compiled (numba), numpy, or both (default; numpy alone "
                        "where numba is not installed)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    observations = record_observations(args.env, args.steps)
    n = len(observations)
    kinds = ["compiled", "numpy"] if args.kernels == "both" else [args.kernels]
    if not compiled_available():
        if args.kernels == "compiled":
            raise SystemExit(f"--kernels compiled: {INSTALL_HINT}")
        kinds = ["numpy"]
    agents = {BACKENDS[kind]: make_agent(args.env, kind) for kind in kinds}
    names = list(agents)
    agent = agents[names[0]]
    net = agent.config.network
    spaces = agent.spaces
    print(f"{args.env}: obs {spaces.obs_dim}, actions {spaces.num_actions} ({spaces.action_kind}), "
          f"hidden {list(net.hidden)} {net.neuron}, one thread, {args.steps:,} calls x {args.repeats}, "
          f"{'back to back' if not args.gap_us else f'{args.gap_us} us busy wait before each call'}")
    for name, each in agents.items():
        print(f"  {name} backend: {each.learner.backend.describe()}")

    mlp = torch.nn.Sequential(
        torch.nn.Linear(spaces.obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
        torch.nn.Linear(64, spaces.num_actions),
    )
    inputs = torch.as_tensor(observations, dtype=torch.float32)

    def mlp_forward(i: int) -> None:
        with torch.no_grad():
            mlp(inputs[i % n : i % n + 1]).numpy()

    for each in agents.values():  # compile (or load the compiled code) and warm up
        for i in range(args.warmup):
            each.act(observations[i % n])
            each.observe(-1.0, False, False, observations[(i + 1) % n])
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for _ in range(args.repeats):
        for kind, each in agents.items():
            agent_rows(each, observations, args, f" ({kind})", rows)
        rows.setdefault("eager MLP 64-64", []).append(
            stats(time_calls(mlp_forward, args.steps, args.gc, args.gap_us * 1000))
        )
    print(f"{'':<26} {'median us':>10} {'p99 us':>10} {'max us':>10}   (medians over {args.repeats} repeats)")
    summary = {name: tuple(statistics.median(v[k] for v in values) for k in range(3))
               for name, values in rows.items()}
    for name, (median, p99, worst) in summary.items():
        print(f"{name:<26} {median:>10.1f} {p99:>10.1f} {worst:>10.1f}")
    reference = summary["eager MLP 64-64"][0]
    for kind in names:
        act_p99, step_p99 = summary[f"act ({kind})"][1], summary[f"act + observe ({kind})"][1]
        print(f"{kind}: act p99 {act_p99:.1f} us (target <= 100): {'met' if act_p99 <= 100 else 'NOT met'}; "
              f"act + observe p99 {step_p99:.1f} us (target <= 250): "
              f"{'met' if step_p99 <= 250 else 'NOT met'}; "
              f"act median / eager MLP forward median: {summary[f'act ({kind})'][0] / reference:.2f}")
    if len(names) == 2:
        ratio = summary["act + observe (numpy)"][0] / summary["act + observe (numba)"][0]
        print(f"act + observe median, numpy / numba: {ratio:.2f}x")


if __name__ == "__main__":
    main()
