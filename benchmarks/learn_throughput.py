"""Learning throughput and memory of the REFLECT agent on CartPole-v1 (one thread, one stream).

Measures, in one run, repeat by repeat and interleaved so that every row sees the same machine load:

* REFLECT ``learn`` (act + online update + environment step, ``agent.learn``) with the tuned CartPole-v1
  config (``default``: 128 LIF neurons, feed-forward, pp-prop traces), and with these networks of 128
  neurons laid over it (``--configs`` selects them):

  - ``no-current-norm``: ``{"network": {"current_norm": 0.0}}`` (the input currents as they are),
  - ``alif``:      ``{"network": {"neuron": "alif", "beta": 0.8}}`` (adaptive threshold),
  - ``cuba``:      ``{"network": {"neuron": "cuba", "neuron_params": {"alpha": 0.9}}}`` (synaptic current),
  - ``recurrent``: ``{"network": {"recurrent": True, "beta": 0.8}}`` (recurrent LIF),
  - ``d-rtrl``:    ``{"network": {"trace_algorithm": "d-rtrl", "beta": 0.8}}`` (per-synapse traces);
  - ``memory-alif``, ``memory-cuba``, ``memory-legendre``: the memory configs (``configs/reflect.yaml``:
    PositionOnlyCartPole's ALIF with fast adaptation under D-RTRL, evidence accumulation's CUBA, the
    Legendre observation filter bank of RepeatPrevious and PositionOnlyPendulum);

* REFLECT frozen ``act`` + environment step (inference only, the default config);
* a reference: the same actor-critic(lambda) with eligibility traces written the usual way, as eager
  PyTorch autograd on an MLP of the same size (4-128-2 actor, 4-128-1 critic, ObGD-style update),
  stepping the same environment - what a straightforward streaming implementation costs.

Every number is a median over ``--repeats`` timed stretches of ``--steps`` environment steps (the
environment's own step included): ``steps/s`` is environment steps per second, ``us/step`` its inverse
in microseconds, ``/ default`` a row's steps/s divided by the default config's learning steps/s of the
same run (1.00: as fast; 0.50: twice as slow), ``/ reference`` the same against the autograd reference.
``backend`` is the backend the agent's learner runs on (``agent.learner.backend``; its reason is printed
below the table). Target: every ``--configs`` row within 2x of the default's learning steps/s
(``/ default`` >= 0.50). Each agent first learns 1,000 untimed steps (the first run of a configuration
also compiles its numba kernels, 10-30 s each, cached on disk afterwards).

Then the peak resident memory (RSS) after 10^4 and 10^5 learning steps of a fresh default agent: online
learning keeps no buffer, so the two must match (the target is a difference below 5%).

    python benchmarks/learn_throughput.py              # 5 repeats of 3,000 steps, every row, RSS to 10^5
    python benchmarks/learn_throughput.py --repeats 3 --steps 1000 --rss-steps 20000   # quicker
    python benchmarks/learn_throughput.py --configs alif d-rtrl      # the default and these rows only
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from reflect.agents import Reflect
from reflect.agents.config import load_reflect_config


class AutogradActorCritic:
    """Reference: actor-critic(lambda) with per-parameter traces, eager PyTorch autograd per step."""

    def __init__(self, obs_dim: int, actions: int, hidden: int = 128, gamma: float = 0.99, lam: float = 0.8):
        torch.manual_seed(0)
        self.actor = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, actions))
        self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.decay = gamma * lam
        self.gamma = gamma
        self.z_actor = [torch.zeros_like(p) for p in self.actor.parameters()]
        self.z_critic = [torch.zeros_like(p) for p in self.critic.parameters()]

    def step(self, obs: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool) -> int:
        x, x_next = torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(next_obs, dtype=torch.float32)
        dist = torch.distributions.Categorical(logits=self.actor(x))
        action = dist.sample()
        value = self.critic(x).squeeze()
        with torch.no_grad():
            next_value = 0.0 if terminated else float(self.critic(x_next))
        delta = reward + self.gamma * next_value - float(value.detach())
        self.actor.zero_grad()
        self.critic.zero_grad()
        (dist.log_prob(action) + 0.01 * dist.entropy()).backward()
        value.backward()
        with torch.no_grad():
            for group, traces in ((self.actor, self.z_actor), (self.critic, self.z_critic)):
                l1 = 0.0
                for p, z in zip(group.parameters(), traces, strict=True):
                    assert p.grad is not None
                    z.mul_(self.decay).add_(p.grad)
                    l1 += float(z.abs().sum())
                step = 1.0 / max(1.0, 2.0 * max(abs(delta), 1.0) * l1)
                for p, z in zip(group.parameters(), traces, strict=True):
                    p.add_(z, alpha=step * delta)
        return int(action)


def reference_steps_per_second(steps: int) -> float:
    env = gym.make("CartPole-v1")
    learner = AutogradActorCritic(4, 2)
    obs, _ = env.reset(seed=0)
    action = 0
    start = time.perf_counter()
    for _ in range(steps):
        next_obs, reward, terminated, truncated, _ = env.step(action)
        action = learner.step(obs, float(reward), next_obs, terminated)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return steps / (time.perf_counter() - start)


# rows of the learning table: config keys laid over the tuned CartPole-v1 config (128 hidden neurons)
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    # the default with each layer's input current as it is (no normalisation across the neurons)
    "no-current-norm": {"network": {"current_norm": 0.0}},
    "alif": {"network": {"neuron": "alif", "beta": 0.8}},
    "cuba": {"network": {"neuron": "cuba", "neuron_params": {"alpha": 0.9}}},
    "recurrent": {"network": {"recurrent": True, "beta": 0.8}},
    "d-rtrl": {"network": {"trace_algorithm": "d-rtrl", "beta": 0.8}},
    # the memory configs of configs/reflect.yaml (PositionOnlyCartPole / evidence accumulation), here on
    # CartPole-v1 so that only the network differs from the default row
    "memory-alif": {"network": {"neuron": "alif", "beta": 0.0, "neuron_params": {"rho": 0.8, "beta_a": 0.5},
                                "trace_algorithm": "d-rtrl"}},
    "memory-cuba": {"network": {"neuron": "cuba", "beta": 0.0, "neuron_params": {"alpha": 0.95}}},
    # the filter bank of RepeatPrevious / PositionOnlyPendulum: the input grows 7x (4 -> 28 values)
    "memory-legendre": {"observation_filter": {"kind": "legendre", "order": 6, "window": 6.0}},
}
TARGET_RATIO = 0.5  # each row within 2x of the default's learning steps/s


def reflect_learn_steps_per_second(agent: Reflect, steps: int) -> float:
    start = time.perf_counter()
    agent.learn(steps)
    return steps / (time.perf_counter() - start)


def describe_network(agent: Reflect) -> str:
    """``LIF 128, pp-prop`` and what else sets the network apart."""
    net = agent.config.network
    text = f"{net.neuron.upper()} {'-'.join(str(h) for h in net.hidden)}"
    if net.recurrent:
        text += " recurrent"
    if agent.config.observation_filter.enabled:
        text = f"{agent.config.observation_filter.kind} filters + {text}"
    return f"{text}, {net.trace_algorithm}, beta {net.beta:g}"


def reflect_act_steps_per_second(agent: Reflect, steps: int) -> float:
    env = gym.make("CartPole-v1")
    policy = agent.policy()
    obs, _ = env.reset(seed=1)
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(int(policy.act(obs)[0]))
        if terminated or truncated:
            obs, _ = env.reset()
            policy.reset()
    return steps / (time.perf_counter() - start)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3_000, help="steps per timed repeat")
    parser.add_argument("--rss-steps", type=int, default=100_000, help="learning steps for the memory check")
    parser.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="NAME",
        help=f"learning rows to measure, of {', '.join(CONFIGS)} (default: all); the default config is "
        "always measured, as the baseline of the ratios",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = ["default", *(name for name in CONFIGS if name in args.configs and name != "default")]
    agents = {}
    for name in names:
        agent = Reflect("CartPole-v1", CONFIGS[name], seed=0)
        agent.learn(1_000)  # warm-up (and the first compilation of this configuration's kernels)
        agents[name] = agent
    reflect_act_steps_per_second(agents["default"], 200)  # warm-up of the frozen policy's step
    learn: dict[str, list[float]] = {name: [] for name in names}
    act, reference = [], []
    for _ in range(args.repeats):
        for name, agent in agents.items():
            learn[name].append(reflect_learn_steps_per_second(agent, args.steps))
        act.append(reflect_act_steps_per_second(agents["default"], args.steps))
        reference.append(reference_steps_per_second(args.steps))
    ref = statistics.median(reference)
    base = statistics.median(learn["default"])
    print(
        f"CartPole-v1, one thread, one stream, medians of {args.repeats} x {args.steps:,} steps "
        "(env included; learn = act + online update + env step):"
    )
    print(f"  {'row':<24} {'network':<46} {'backend':>7} {'steps/s':>8} {'us/step':>8} {'/ default':>9} "
          f"{'/ reference':>11}  target")
    default = agents["default"]
    rows: list[tuple[str, str, str, list[float]]] = [
        *((f"learn: {name}", describe_network(agent), agent.learner.backend.name, learn[name])
          for name, agent in agents.items()),
        ("frozen act: default", describe_network(default), default.learner.backend.name, act),
        ("reference (autograd)", "ReLU MLP 128, actor + critic", "torch", reference),
    ]
    for label, network, backend, values in rows:
        med = statistics.median(values)
        verdict = "-"
        if label.startswith("learn: ") and label != "learn: default":
            verdict = "met" if med / base >= TARGET_RATIO else "NOT met"
        print(f"  {label:<24} {network:<46} {backend:>7} {med:8,.0f} {1e6 / med:8.1f} {med / base:9.2f} "
              f"{med / ref:11.2f}  {verdict}")
    print(f"target: every learn row within 2x of the default's learning steps/s "
          f"(/ default >= {TARGET_RATIO:.2f})")
    print("backends:")
    for name, agent in agents.items():
        print(f"  {name}: {agent.learner.backend.describe()}")

    rss_agent = Reflect("CartPole-v1", load_reflect_config("CartPole-v1"), seed=1)
    first = min(10_000, args.rss_steps)
    rss_agent.learn(first)
    rss_first = peak_rss_mib()
    rss_agent.learn(args.rss_steps - first)
    rss_last = peak_rss_mib()
    change = 100.0 * (rss_last - rss_first) / rss_first
    print(
        f"peak RSS after {first:,} learning steps: {rss_first:.1f} MiB; after {args.rss_steps:,}: "
        f"{rss_last:.1f} MiB ({change:+.2f}%)"
    )


if __name__ == "__main__":
    main()
