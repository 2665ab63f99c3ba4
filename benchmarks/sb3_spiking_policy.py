"""PPO with reflect's SpikingActorCriticPolicy against PPO with SB3's MlpPolicy on CartPole-v1.

Both use rl-baselines3-zoo's CartPole-v1 hyperparameters (8 envs, ``n_steps`` 32, ``batch_size`` 256,
``n_epochs`` 20, ``gae_lambda`` 0.8, ``gamma`` 0.98, linear 1e-3 learning rate and 0.2 clip range), the
same seeds, run alternately on the same machine, and the evaluation protocol of
``cartpole_vs_sb3.py`` (20 deterministic episodes every 5,000 steps, solved at a mean of 475).

    python benchmarks/sb3_spiking_policy.py                          # seeds 0-2, 100k steps
    python benchmarks/sb3_spiking_policy.py --seeds 0 --total-steps 10000 --policy-kwargs '{"time_steps": 2}'
    python benchmarks/sb3_spiking_policy.py --normalize-spiking --policy-kwargs '{"weight_scale": 2.0}'

``--normalize-spiking`` gives the spiking policy SB3's ``VecNormalize`` (observations only), so its
thresholds see inputs of unit scale; the MLP keeps the zoo's unnormalised setup.
"""

from __future__ import annotations

import argparse
import json

import torch
from cartpole_vs_sb3 import run_ppo
from protocol import HEADER, SeedResult, print_medians, print_result

from reflect.agents.sb3_policy import SpikingActorCriticPolicy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--policy-kwargs", type=json.loads, default={}, help="JSON for the spiking policy")
    parser.add_argument("--policies", nargs="+", default=["spiking", "mlp"], choices=["spiking", "mlp"])
    parser.add_argument("--normalize-spiking", action="store_true",
                        help="VecNormalize (observations) for the spiking policy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"spiking policy_kwargs: {args.policy_kwargs or 'defaults'}"
          f"{', VecNormalize observations' if args.normalize_spiking else ''}")
    print(HEADER)
    results: list[SeedResult] = []
    for seed in args.seeds:
        for policy, name, kwargs, normalize in (
            (SpikingActorCriticPolicy, "spiking", args.policy_kwargs, args.normalize_spiking),
            ("MlpPolicy", "mlp", {}, False),
        ):
            if name not in args.policies:
                continue
            r = run_ppo(seed, args.total_steps, args.eval_every, args.eval_episodes, policy, name, kwargs,
                        normalize)
            results.append(r)
            print_result(r)
    print_medians(results, args.policies)


if __name__ == "__main__":
    main()
