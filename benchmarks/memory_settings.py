"""Screen memory settings: REFLECT on one task with ``--set`` overrides over several seeds.

Each seed trains the task's tuned config (``configs/reflect.yaml``) with the overrides for ``--steps``
environment steps, evaluating the deterministic policy every ``--eval-every`` steps on
``--eval-episodes`` fixed start seeds (the protocol of ``benchmarks/protocol.py``), and prints one line:
the best and the final evaluation, learning steps per second and every evaluation. The README's table
"Which memory for which task" comes from runs like these, e.g.::

    python benchmarks/memory_settings.py popgym-PositionOnlyCartPoleEasy-v0 --seeds 0 1 2 \\
        --set network.neuron=alif network.beta=0.0 "network.neuron_params={rho: 0.8, beta_a: 0.5}" \\
        network.trace_algorithm=d-rtrl
    python benchmarks/memory_settings.py reflect/EvidenceAccumulation-v0 --eval-episodes 100 \\
        --set "network.neuron_params={alpha: 0.0}"     # the control: no synaptic memory

(the README's rows used 100,000 steps, 10 evaluation episodes every 10,000 steps, and 100 episodes for
evidence accumulation).
"""

from __future__ import annotations

import argparse

import torch
from protocol import EvalClock, learn_evaluating

from reflect.agents import Reflect
from reflect.agents.config import load_reflect_config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("env_id")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--config", default=None,
                        help="a config file keyed by env id, instead of configs/reflect.yaml")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, as reflect train's --set")
    args = parser.parse_args()
    torch.set_num_threads(1)
    label = " ".join(args.overrides) or "tuned config"
    for seed in args.seeds:
        config = load_reflect_config(args.env_id, args.config, overrides=args.overrides)
        agent = Reflect(args.env_id, config, seed=seed)
        agent.learner.compile()  # numba compiles (or loads) here, outside the timed learning
        policy = agent.policy()
        discrete = agent.spaces.action_kind == "discrete"

        def act(obs: object, policy: object = policy, discrete: bool = discrete) -> object:
            action = policy.act(obs if discrete else obs[None])  # type: ignore[attr-defined, index]
            return int(action[0]) if discrete else action[0]

        clock = EvalClock(args.env_id, float("inf"), args.eval_every, args.eval_episodes,
                          config.env_arguments)
        learn_evaluating(agent, args.steps, clock, act, policy.reset)
        result = clock.result("reflect", seed, agent.num_timesteps)
        evaluations = " ".join(f"{value:.2f}" for value in result.evaluations)
        print(f"{label} | seed {seed}: best {max(result.evaluations):.2f} final {result.evaluations[-1]:.2f} "
              f"steps/s {result.steps_per_second:,.0f} | evaluations {evaluations}", flush=True)


if __name__ == "__main__":
    main()
