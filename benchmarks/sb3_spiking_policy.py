"""PPO with reflect's SpikingActorCriticPolicy against PPO with SB3's MlpPolicy on CartPole-v1.

Both use rl-baselines3-zoo's CartPole-v1 hyperparameters (8 envs, ``n_steps`` 32, ``batch_size`` 256,
``n_epochs`` 20, ``gae_lambda`` 0.8, ``gamma`` 0.98, linear learning-rate and clip-range schedules),
the same seeds, run alternately on the same machine, and the evaluation protocol of
``cartpole_vs_sb3.py`` (20 deterministic episodes every 5,000 steps, solved at a mean of 475).

The MLP keeps the zoo's setup exactly (unnormalised observations, learning rate 1e-3, clip range 0.2).
The spiking policy gets the setup tuned for it on seeds 0-4 (README, "A spiking policy for
stable-baselines3's own algorithms"): SB3's ``VecNormalize`` on the observations, so the thresholds
see inputs of unit scale, ``weight_scale`` 2, a learning rate starting at 6e-3 (the surrogate gradient
through the thresholds is weak: fewer epochs or a smaller rate made it slower, not steadier) and a
clip range starting at 0.1 (with 0.2 its evaluations kept dipping for 30-75k steps after the first
solve).

    python benchmarks/sb3_spiking_policy.py                          # seeds 0-4, 100k steps
    python benchmarks/sb3_spiking_policy.py --seeds 0 --total-steps 10000 --policy-kwargs '{"time_steps": 2}'
    python benchmarks/sb3_spiking_policy.py --raw-observations --learning-rate 1e-3 --clip-range 0.2 \
        --policy-kwargs '{}'                                         # the zoo's MLP setup for both
"""

from __future__ import annotations

import argparse
import json

import torch
from cartpole_vs_sb3 import run_ppo
from protocol import HEADER, SeedResult, print_medians, print_result

from reflect.agents.sb3_policy import (
    SPIKING_PPO_CLIP_RANGE,
    SPIKING_PPO_LEARNING_RATE,
    SPIKING_PPO_WEIGHT_SCALE,
    SpikingActorCriticPolicy,
)

# the tuned setup's start values, defined once in the policy's module (what spiking_ppo_kwargs() uses)
SPIKING_POLICY_KWARGS = {"weight_scale": SPIKING_PPO_WEIGHT_SCALE}
ZOO_LEARNING_RATE = 1e-3
ZOO_CLIP_RANGE = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--policy-kwargs", type=json.loads, default=SPIKING_POLICY_KWARGS,
                        help=f"JSON for the spiking policy (default {json.dumps(SPIKING_POLICY_KWARGS)})")
    parser.add_argument("--learning-rate", type=float, default=SPIKING_PPO_LEARNING_RATE,
                        help="start of the spiking policy's linear learning-rate schedule")
    parser.add_argument("--clip-range", type=float, default=SPIKING_PPO_CLIP_RANGE,
                        help="start of the spiking policy's linear clip-range schedule")
    parser.add_argument("--raw-observations", action="store_true",
                        help="no VecNormalize for the spiking policy (then raise weight_scale, e.g. 8)")
    parser.add_argument("--policies", nargs="+", default=["spiking", "mlp"], choices=["spiking", "mlp"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    normalize = not args.raw_observations
    observations = "VecNormalize observations" if normalize else "raw observations"
    print(f"spiking: policy_kwargs {json.dumps(args.policy_kwargs)}, learning rate {args.learning_rate:g}, "
          f"clip range {args.clip_range:g}, {observations}; "
          f"mlp: the zoo's setup (learning rate {ZOO_LEARNING_RATE:g}, clip range {ZOO_CLIP_RANGE:g}, "
          "raw observations)")
    print(HEADER)
    results: list[SeedResult] = []
    for seed in args.seeds:
        for policy, name, kwargs, normalized, learning_rate, clip_range in (
            (SpikingActorCriticPolicy, "spiking", args.policy_kwargs, normalize, args.learning_rate,
             args.clip_range),
            ("MlpPolicy", "mlp", {}, False, ZOO_LEARNING_RATE, ZOO_CLIP_RANGE),
        ):
            if name not in args.policies:
                continue
            r = run_ppo(seed, args.total_steps, args.eval_every, args.eval_episodes, policy, name, kwargs,
                        normalized, learning_rate, clip_range)
            results.append(r)
            print_result(r)
    print_medians(results, args.policies)


if __name__ == "__main__":
    main()
