"""REFLECT vs stable-baselines3 on memory tasks: PPO (no memory), PPO on 4 stacked frames, RecurrentPPO.

What is measured: how fast (env steps, training seconds) and how well (best and final evaluation) each
agent learns tasks that only memory solves, at equal env-step budgets:

- ``popgym-PositionOnlyCartPoleEasy-v0`` (cart and pole positions only, no velocities): goal 0.95, 95% of
  the maximum return 1.0; 200,000 steps.
- ``reflect/EvidenceAccumulation-v0`` (count clicks, wait, name the side with more): the return is 1 for
  a correct choice and 0 for a wrong one, so the mean return is the fraction correct (chance 0.5);
  goal 0.9; 200,000 steps.
- ``popgym-RepeatPreviousEasy-v0``: no goal (the best RecurrentPPO reaches is not known), best and final
  only; 200,000 steps.
- ``popgym-PositionOnlyPendulumEasy-v0``: no goal, best and final only; 200,000 steps.

``--steps`` sets one budget for every task.

Protocol (``protocol.py``, README.md "Results"): every ``--eval-every`` env steps (10,000),
``--eval-episodes`` (20) deterministic episodes on a separate env, episode k starting from
``reset(seed=10_000 + k)`` (the same start states for every agent); training time is kept apart from
evaluation time. Every env, for training and for evaluation, is built by ``reflect.envs.make_single_env``,
so all agents see the same encoded observations (POPGym's discrete observations as one-hot floats).
Within a seed the agents run one after the other, so machine load hits all alike. Printed per task and
seed: the first evaluated step at which the mean return reached the goal (``never``; ``n.a.`` without a
goal) and the training seconds to it, the best and the final evaluation, training env steps per second
and every evaluation; then per agent the medians over seeds (a seed that never reached the goal counts
as infinitely late).

Agents (``--agents``) and hyperparameters:

- ``reflect``: ``Reflect(env_id, load_reflect_config(env_id), seed=seed)``, the task's entry of
  ``configs/reflect.yaml`` over its ``default`` entry (the default alone while a task has no entry;
  the task header says which); compiled before the clock, evaluated with its frozen policy.
- ``ppo``: PPO with ``MlpPolicy``, the no-memory control; ``ppo-stack4``: the same PPO on
  ``VecFrameStack(n_stack=4)`` (evaluated on the same rolling stack of the last 4 observations, zeros
  before an episode's first, newest last); both with rl-baselines3-zoo's ``hyperparams/ppo.yml``:

  - CartPole-v1 (for the CartPole task, and as the CartPole-style entry for evidence accumulation and
    RepeatPrevious, which have no zoo entry): 8 envs, ``n_steps`` 32, ``batch_size`` 256, ``gae_lambda``
    0.8, ``gamma`` 0.98, ``n_epochs`` 20, ``ent_coef`` 0, learning rate linear from 1e-3 to 0, clip
    range linear from 0.2 to 0 (as ``cartpole_vs_sb3.py``);
  - Pendulum-v1 (for the Pendulum task): 4 envs, ``n_steps`` 1024, ``gae_lambda`` 0.95, ``gamma`` 0.9,
    ``n_epochs`` 10, ``ent_coef`` 0, learning rate 1e-3, clip range 0.2, gSDE (``use_sde``,
    ``sde_sample_freq`` 4); ``batch_size`` SB3's default 64 (as ``continuous.py``).

- ``recurrent-ppo``: ``sb3_contrib.RecurrentPPO`` with ``MlpLstmPolicy`` and rl-baselines3-zoo's
  ``hyperparams/ppo_lstm.yml``, whose entries add ``normalize: True`` (``VecNormalize`` of observations
  and rewards with the entry's ``gamma``; evaluation normalises with training's statistics so far and
  does not update them) and ``policy_kwargs`` ``ortho_init=False, activation_fn=ReLU,
  lstm_hidden_size=64, enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64])`` to the PPO values:

  - CartPoleNoVel-v1 (for the CartPole task, and the CartPole-style entry for evidence accumulation and
    RepeatPrevious): the CartPole-v1 values above;
  - PendulumNoVel-v1 (for the Pendulum task): the Pendulum-v1 values above, ``batch_size``
    RecurrentPPO's default 128.

  Its evaluation carries the LSTM state from step to step and passes ``episode_start`` (true on an
  episode's first step).

    python benchmarks/memory.py                          # all tasks and agents, seeds 0-2 (hours)
    python benchmarks/memory.py --tasks reflect/EvidenceAccumulation-v0 --agents ppo --seeds 0 \\
        --steps 4000 --eval-every 2000 --eval-episodes 5  # a quick check
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from protocol import EvalClock, SeedResult, learn_evaluating

from reflect.envs import make_single_env


class Task(NamedTuple):
    goal: float | None  # mean evaluation return that counts as reached; None: report best and final only
    steps: int  # default env-step budget
    zoo: str  # which rl-baselines3-zoo entries the PPO agents use: "CartPole" or "Pendulum"


TASKS: dict[str, Task] = {
    "popgym-PositionOnlyCartPoleEasy-v0": Task(0.95, 200_000, "CartPole"),
    "reflect/EvidenceAccumulation-v0": Task(0.9, 200_000, "CartPole"),  # no zoo entry: CartPole-style
    "popgym-RepeatPreviousEasy-v0": Task(None, 200_000, "CartPole"),  # no zoo entry: CartPole-style
    "popgym-PositionOnlyPendulumEasy-v0": Task(None, 200_000, "Pendulum"),
}
AGENTS = ["reflect", "ppo", "ppo-stack4", "recurrent-ppo"]
N_STACK = 4

# rl-baselines3-zoo, hyperparams/ppo.yml ("lin_x": linear from x at the start to 0 at the end, the zoo's
# notation); (zoo entry, hyperparameters).
ZOO_PPO: dict[str, tuple[str, dict[str, Any]]] = {
    "CartPole": ("CartPole-v1", dict(
        n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
        learning_rate="lin_0.001", clip_range="lin_0.2",
    )),
    "Pendulum": ("Pendulum-v1", dict(
        n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3,
        clip_range=0.2, use_sde=True, sde_sample_freq=4,
    )),
}
# rl-baselines3-zoo, hyperparams/ppo_lstm.yml (for RecurrentPPO).
_LSTM_POLICY = dict(
    ortho_init=False, activation_fn=torch.nn.ReLU, lstm_hidden_size=64, enable_critic_lstm=True,
    net_arch=dict(pi=[64], vf=[64]),
)
ZOO_PPO_LSTM: dict[str, tuple[str, dict[str, Any]]] = {
    "CartPole": ("CartPoleNoVel-v1", dict(
        normalize=True, n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
        ent_coef=0.0, learning_rate="lin_0.001", clip_range="lin_0.2", policy_kwargs=_LSTM_POLICY,
    )),
    "Pendulum": ("PendulumNoVel-v1", dict(
        normalize=True, n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
        learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4, policy_kwargs=_LSTM_POLICY,
    )),
}


def zoo_entry(agent: str, task: Task) -> tuple[str, str, dict[str, Any]]:
    """(zoo file, entry, hyperparameters) of an SB3 agent on ``task``."""
    if agent == "recurrent-ppo":
        return ("ppo_lstm.yml", *ZOO_PPO_LSTM[task.zoo])
    return ("ppo.yml", *ZOO_PPO[task.zoo])


def _schedule(value: Any) -> Any:
    """The zoo's ``lin_x`` as SB3's schedule (``progress_remaining`` runs from 1 to 0), else ``value``."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[len("lin_"):])
        return lambda progress_remaining: progress_remaining * start
    return value


def run_reflect(agent_name: str, env_id: str, seed: int, total_steps: int, clock: EvalClock) -> SeedResult:
    from reflect.agents import Reflect
    from reflect.agents.config import load_reflect_config

    agent = Reflect(env_id, load_reflect_config(env_id), seed=seed)
    agent.learner.compile()  # numba compiles (or loads) here, outside the timed learning
    policy = agent.policy()
    clock.env_arguments = agent.config.env_arguments  # evaluated through the same observation filter

    def act(obs: np.ndarray) -> Any:
        action = policy.act(obs[None])[0]
        return action if agent.continuous else int(action)

    learn_evaluating(agent, total_steps, clock, act, policy.reset)
    return clock.result(agent_name, seed, agent.num_timesteps)


class SB3Policy:
    """Deterministic actions of an SB3 model for one raw observation at a time, the observation passed
    through what the training VecEnv's wrappers do: ``VecNormalize`` (its statistics, not updated), then
    ``VecFrameStack`` (a rolling stack of the last ``n_stack`` observations along the last axis, zeros
    before the episode's first); a recurrent model carries its LSTM state and ``episode_start``."""

    def __init__(self, model: Any, normalizer: Any, n_stack: int, recurrent: bool) -> None:
        self.model, self.normalizer, self.n_stack, self.recurrent = model, normalizer, n_stack, recurrent
        self.discrete = isinstance(model.action_space, spaces.Discrete)
        single = model.observation_space  # after stacking: n_stack observations side by side
        self.width = single.shape[-1] // n_stack
        self.frames = np.zeros(single.shape, dtype=single.dtype)
        self.state: tuple[np.ndarray, ...] | None = None
        self.episode_start = True

    def reset(self) -> None:
        self.frames[...] = 0
        self.state, self.episode_start = None, True

    def act(self, obs: np.ndarray) -> Any:
        x = np.asarray(obs)
        if self.normalizer is not None:
            x = self.normalizer.normalize_obs(x)
        if self.n_stack > 1:
            self.frames[..., : -self.width] = self.frames[..., self.width :]
            self.frames[..., -self.width :] = x
            x = self.frames
        if self.recurrent:
            action, self.state = self.model.predict(
                x, state=self.state, episode_start=np.array([self.episode_start]), deterministic=True
            )
            self.episode_start = False
        else:
            action = self.model.predict(x, deterministic=True)[0]
        return int(action) if self.discrete else action


def run_sb3(agent_name: str, env_id: str, seed: int, total_steps: int, clock: EvalClock) -> SeedResult:
    """PPO, PPO on stacked frames or RecurrentPPO with the zoo's hyperparameters for the task."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

    _, _, zoo = zoo_entry(agent_name, TASKS[env_id])
    params = {key: _schedule(value) for key, value in copy.deepcopy(zoo).items()}  # SB3 may edit them
    n_envs, normalize = params.pop("n_envs"), params.pop("normalize", False)
    recurrent = agent_name == "recurrent-ppo"
    n_stack = N_STACK if agent_name == "ppo-stack4" else 1

    env: Any = make_vec_env(lambda: make_single_env(env_id), n_envs=n_envs, seed=seed)
    normalizer = VecNormalize(env, gamma=params["gamma"]) if normalize else None
    if normalizer is not None:
        env = normalizer
    if n_stack > 1:
        env = VecFrameStack(env, n_stack=n_stack)
    if recurrent:
        from sb3_contrib import RecurrentPPO

        model: Any = RecurrentPPO("MlpLstmPolicy", env, seed=seed, device="cpu", **params)
    else:
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", **params)
    policy = SB3Policy(model, normalizer, n_stack, recurrent)

    learn_evaluating(model, total_steps, clock, policy.act, policy.reset)
    return clock.result(agent_name, seed, model.num_timesteps)


RUNNERS: dict[str, Callable[[str, str, int, int, EvalClock], SeedResult]] = {
    "reflect": run_reflect, "ppo": run_sb3, "ppo-stack4": run_sb3, "recurrent-ppo": run_sb3,
}


def _steps(value: float | None) -> str:
    return "never" if value is None else f"{value:,.0f}"


def _best(r: SeedResult) -> float:
    return max(r.evaluations) if r.evaluations else float("nan")


def _median_steps(values: list[int | None]) -> float | None:
    """Median over seeds, a seed that never reached the goal counting as infinitely late (None if most
    never did)."""
    middle = statistics.median(float("inf") if v is None else float(v) for v in values)
    return None if middle == float("inf") else middle


HEADER = f"{'agent':<14} {'seed':>4} {'goal at':>9} {'secs':>7} {'best':>7} {'final':>7} {'steps/s':>8}"


def print_result(r: SeedResult, has_goal: bool) -> None:
    """One seed's line and its evaluation history."""
    reached = _steps(r.solved_at) if has_goal else "n.a."
    seconds = ("never" if r.seconds_to_solve is None else f"{r.seconds_to_solve:.1f}") if has_goal else "n.a."
    print(
        f"{r.agent:<14} {r.seed:>4} {reached:>9} {seconds:>7} {_best(r):>7.3f} {r.final_eval:>7.3f} "
        f"{r.steps_per_second:>8.0f}",
        flush=True,
    )
    print(f"{'':<14} evaluations: {' '.join(f'{v:.3f}' for v in r.evaluations)}", flush=True)


def print_medians(results: list[SeedResult], names: list[str], has_goal: bool) -> None:
    """Per agent: seeds that reached the goal and the medians of steps to it, best, final and steps/s."""
    print("median over seeds" + (" (a seed that never reached the goal counts as infinitely late):"
                                 if has_goal else ":"))
    for name in names:
        rs = [r for r in results if r.agent == name]
        if not rs:
            continue
        goal = ""
        if has_goal:
            reached = sum(r.solved_at is not None for r in rs)
            median = _median_steps([r.solved_at for r in rs])
            goal = f"reached {reached}/{len(rs)}  steps to goal {_steps(median)}  "
        print(
            f"{name:<14} {goal}best {statistics.median(_best(r) for r in rs):.3f}"
            f"  final {statistics.median(r.final_eval for r in rs):.3f}"
            f"  steps/s {statistics.median(r.steps_per_second for r in rs):,.0f}",
            flush=True,
        )


def _reflect_entry(env_id: str) -> str:
    """Which configs/reflect.yaml entries give reflect's config for ``env_id``."""
    from reflect.agents.config import default_config_path
    from reflect.config import load_yaml_mapping

    has_entry = env_id in load_yaml_mapping(default_config_path())
    entry = f"configs/reflect.yaml '{env_id}' over 'default'"
    return entry if has_entry else "configs/reflect.yaml 'default' (no entry for the task)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), metavar="TASK",
                        help=f"default: all of {', '.join(TASKS)}")
    parser.add_argument("--agents", nargs="+", default=AGENTS, choices=AGENTS, metavar="AGENT",
                        help=f"default: all of {', '.join(AGENTS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per run, for every task (default: the task's budget, 200,000)")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for env_id in args.tasks:
        task = TASKS[env_id]
        steps = args.steps or task.steps
        print(f"\n{env_id}: goal {'none (best and final only)' if task.goal is None else task.goal}, "
              f"{steps:,} steps, evaluation every {args.eval_every:,} steps ({args.eval_episodes} episodes)")
        for name in args.agents:
            if name == "reflect":
                print(f"  {name}: {_reflect_entry(env_id)}")
            else:
                zoo_file, entry, _ = zoo_entry(name, task)
                print(f"  {name}: rl-baselines3-zoo {zoo_file} {entry}")
        print(HEADER)
        results: list[SeedResult] = []
        for seed in args.seeds:
            for name in args.agents:
                goal = float("inf") if task.goal is None else task.goal
                clock = EvalClock(env_id, goal, args.eval_every, args.eval_episodes)
                result = RUNNERS[name](name, env_id, seed, steps, clock)
                results.append(result)
                print_result(result, task.goal is not None)
        print_medians(results, args.agents, task.goal is not None)


if __name__ == "__main__":
    main()
