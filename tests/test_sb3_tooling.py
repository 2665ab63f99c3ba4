"""The Reflect agent inside stable-baselines3's tooling: evaluate_policy, callbacks, VecEnvs, loggers."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from reflect.agents import Reflect

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.callbacks import (  # noqa: E402
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402

SMALL = {"network": {"hidden": [32]}}


def test_evaluate_policy_runs_the_stateful_agent() -> None:
    agent = Reflect("CartPole-v1", SMALL, seed=0).learn(500)
    env = Monitor(gym.make("CartPole-v1"))
    mean, std = evaluate_policy(agent, env, n_eval_episodes=4, deterministic=True)
    assert 8.0 <= mean <= 500.0 and std >= 0.0


def test_checkpoint_callback_writes_loadable_agents(tmp_path: Path) -> None:
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    agent.learn(600, callback=CheckpointCallback(save_freq=250, save_path=str(tmp_path), name_prefix="cp"))
    saved = sorted(tmp_path.glob("cp_*_steps.zip"))
    assert [p.name for p in saved] == ["cp_250_steps.zip", "cp_500_steps.zip"]
    assert Reflect.load(saved[-1]).num_timesteps == 500


def test_eval_callback_with_a_reward_threshold_stops_training(tmp_path: Path) -> None:
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    stop = StopTrainingOnRewardThreshold(reward_threshold=5.0, verbose=0)  # any episode beats it
    evaluation = EvalCallback(Monitor(gym.make("CartPole-v1")), eval_freq=200, n_eval_episodes=2,
                              callback_on_new_best=stop, best_model_save_path=str(tmp_path), verbose=0)
    with warnings.catch_warnings():  # the agent keeps its own statistics: no "not the same type" warning
        warnings.filterwarnings("error", "Training and eval env are not of the same type")
        agent.learn(5_000, callback=CallbackList([evaluation]))
    assert agent.num_timesteps == 200  # stopped at the first evaluation
    assert evaluation.best_mean_reward >= 5.0
    assert Reflect.load(tmp_path / "best_model").num_timesteps == 200  # saved as best_model.pt


def test_an_sb3_vec_env_serves_as_the_streams() -> None:
    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0)  # Monitor-wrapped DummyVecEnv
    agent = Reflect(venv, SMALL, seed=0).learn(600)
    assert agent.num_envs == 2 and agent.num_timesteps == 600
    assert agent.env_id == "CartPole-v1" and agent.get_env() is venv
    lengths = [n for _, n in agent.ep_info_buffer]
    assert lengths and all(8 <= n <= 500 for n in lengths)


def test_sb3_vec_env_truncation_is_bootstrapped_not_terminated() -> None:
    venv = make_vec_env("CartPole-v1", n_envs=1, seed=0, env_kwargs={"max_episode_steps": 5})
    from reflect.agents.sb3_compat import SB3VecEnvStreams

    streams = SB3VecEnvStreams(venv)
    streams.reset(seed=0)
    flags = []
    for _ in range(5):
        _, _, terminated, truncated, info = streams.step(np.zeros(1, dtype=np.int64))
        flags.append((bool(terminated[0]), bool(truncated[0])))
    assert flags[-1] == (False, True) and not any(t for t, _ in flags)
    assert info["_episode"][0] and info["episode"]["l"][0] == 5
    assert info["final_obs"].shape == (1, 4)


def test_sb3_logger_formats_receive_the_rollout_keys(tmp_path: Path) -> None:
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    agent.set_logger(configure(str(tmp_path), ["csv", "tensorboard"]))
    agent.learn(1_000, log_interval=250)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"rollout/ep_rew_mean", "time/fps", "train/td_error"} <= set(header)
    assert len((tmp_path / "progress.csv").read_text().splitlines()) == 1 + 4
    assert list(tmp_path.glob("events.out.tfevents.*"))
