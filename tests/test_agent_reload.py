"""Reloading agents trained through the Python API: on several streams (a stable-baselines3 VecEnv or a
Gymnasium vector env), through ``Reflect.load`` with and without an env, ``reflect evaluate`` and
``reflect export``; the step API's step counter; stable-baselines3's evaluation on reflect's envs."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from reflect.agents import Reflect
from reflect.checkpoints import load_checkpoint
from reflect.cli import main
from reflect.envs import make_env, make_single_env

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.callbacks import CheckpointCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402

SMALL = {"network": {"hidden": [16]}}


def _vec_agent(n_envs: int = 2, steps: int = 200) -> Reflect:
    return Reflect(make_vec_env("CartPole-v1", n_envs=n_envs, seed=0), SMALL, seed=0).learn(steps)


def _same_weights(a: Reflect, b: Reflect) -> bool:
    assert a.critic is not None and b.critic is not None
    mine = [*a.actor.parameters(), *a.critic.parameters()]
    theirs = [*b.actor.parameters(), *b.critic.parameters()]
    return all(torch.equal(p, q) for p, q in zip(mine, theirs, strict=True))


def test_an_agent_trained_on_an_sb3_vec_env_reloads_without_an_env(tmp_path: Path) -> None:
    agent = _vec_agent()
    path = agent.save(tmp_path / "best_model")
    assert load_checkpoint(path)["config"]["train"]["num_envs"] == 2  # the config says what the agent is
    loaded = Reflect.load(tmp_path / "best_model")
    assert loaded.num_envs == 2 and loaded.num_timesteps == 200 and loaded.env_id == "CartPole-v1"
    assert loaded.config.train.num_envs == 2 and _same_weights(agent, loaded)
    assert loaded.learn(100).num_timesteps == 300


def test_a_checkpoint_whose_config_names_fewer_streams_still_loads(tmp_path: Path) -> None:
    """Checkpoints written before the fix hold num_envs 2 but a config of train.num_envs 1."""
    payload = _vec_agent().checkpoint()
    payload["config"]["train"]["num_envs"] = 1
    loaded = Reflect.from_checkpoint(payload)
    assert loaded.num_envs == 2 and loaded.config.train.num_envs == 2
    assert Reflect.from_checkpoint(payload, "CartPole-v1").num_envs == 2


def test_checkpoint_callback_zips_of_a_vec_env_agent_reload(tmp_path: Path) -> None:
    agent = Reflect(make_vec_env("CartPole-v1", n_envs=2, seed=0), SMALL, seed=0)
    agent.learn(200, callback=CheckpointCallback(save_freq=50, save_path=str(tmp_path), name_prefix="cp"))
    saved = sorted(tmp_path.glob("cp_*_steps.zip"))
    assert saved and Reflect.load(saved[-1]).num_timesteps == 200


def test_reflect_evaluate_and_export_take_a_vec_env_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _vec_agent().save(tmp_path / "agent.pt")
    assert main(["evaluate", "--checkpoint", str(path), "--episodes", "1"]) == 0
    assert "CartPole-v1: mean return" in capsys.readouterr().out
    out = tmp_path / "agent.ts.pt"
    assert main(["export", "--checkpoint", str(path), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.is_file()


def test_a_gymnasium_vector_env_agent_reloads_without_an_env(tmp_path: Path) -> None:
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 3,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    agent = Reflect(envs, SMALL, seed=0).learn(150)
    loaded = Reflect.load(agent.save(tmp_path / "agent"))
    assert loaded.num_envs == 3 and loaded.num_timesteps == 150 and _same_weights(agent, loaded)


def _learner_tensors(agent: Reflect) -> dict[str, torch.Tensor]:
    state = agent.learner.state_dict()
    flat = {f"actor.{k}": v for k, v in state["actor_engine"].items()}
    flat.update({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    return flat


def test_loading_with_an_env_of_the_same_stream_count_keeps_the_stream_state(tmp_path: Path) -> None:
    agent = _vec_agent()
    loaded = Reflect.load(agent.save(tmp_path / "agent"), env=make_vec_env("CartPole-v1", n_envs=2, seed=1))
    assert loaded.num_envs == 2
    for key, value in _learner_tensors(agent).items():
        assert torch.equal(value, _learner_tensors(loaded)[key]), key


@pytest.mark.parametrize("n_envs", [1, 3])
def test_loading_on_another_stream_count_restarts_the_streams(tmp_path: Path, n_envs: int) -> None:
    """As stable-baselines3 loads a model onto another number of envs: what the streams share (weights,
    statistics, counters) is kept; each stream starts afresh, as at a new episode."""
    agent = _vec_agent()
    path = agent.save(tmp_path / "agent")
    env = gym.make("CartPole-v1") if n_envs == 1 else make_vec_env("CartPole-v1", n_envs=n_envs, seed=1)
    loaded = Reflect.load(path, env=env)
    assert loaded.num_envs == n_envs and loaded.config.train.num_envs == n_envs
    assert loaded.num_timesteps == 200 and _same_weights(agent, loaded)
    assert list(loaded.ep_info_buffer) == list(agent.ep_info_buffer)
    probe = np.random.default_rng(0).normal(size=(5, 4))
    assert np.array_equal(loaded.normalize_observation(probe), agent.normalize_observation(probe))
    assert agent.reward_scaler is not None and loaded.reward_scaler is not None
    assert loaded.reward_scaler.rms.count == agent.reward_scaler.rms.count
    assert np.array_equal(loaded.reward_scaler.returns, np.zeros(n_envs))
    fresh = Reflect(env, SMALL, seed=0)  # the stream state of a new agent
    for key, value in _learner_tensors(fresh).items():
        assert torch.equal(value, _learner_tensors(loaded)[key]), key
    assert loaded.learner.state_dict()["head_rng"] == agent.learner.state_dict()["head_rng"]
    loaded.learn(60)
    assert loaded.num_timesteps == 260


def test_load_state_of_another_stream_count_is_a_one_line_error() -> None:
    payload = _vec_agent().checkpoint()
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    with pytest.raises(ValueError, match=r"2 environment streams.*train\.num_envs=2") as error:
        agent.load_state(payload)
    assert "\n" not in str(error.value)


def _step_api_steps(agent: Reflect, env: gym.Env, steps: int) -> None:
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(reward, terminated, truncated, next_obs)
        obs = env.reset()[0] if terminated or truncated else next_obs


def test_the_step_api_counts_the_steps_it_learns_from(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1")
    agent = Reflect(env, SMALL, seed=0)
    _step_api_steps(agent, env, 50)
    assert agent.num_timesteps == 50
    assert load_checkpoint(agent.save(tmp_path / "agent"))["num_timesteps"] == 50
    agent.freeze()  # a frozen agent learns nothing: its steps are not counted
    _step_api_steps(agent, env, 10)
    assert agent.num_timesteps == 50
    agent.unfreeze()
    assert agent.learn(30).num_timesteps == 80  # learn() counts each step once


def test_the_step_api_counts_every_stream() -> None:
    agent = Reflect("CartPole-v1", {**SMALL, "train": {"num_envs": 3}}, seed=0)
    obs = np.zeros((3, 4))
    for _ in range(4):
        agent.act(obs)
        agent.observe(np.ones(3), np.zeros(3, dtype=bool), np.zeros(3, dtype=bool), obs)
    assert agent.num_timesteps == 12


# ---- stable-baselines3's evaluation on reflect's environments -------------------------------------


def _wrappers(env: gym.Env) -> list[type]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(type(env))
        env = env.env
    return chain


def test_evaluate_policy_takes_reflect_envs_without_a_monitor_warning() -> None:
    agent = Reflect("CartPole-v1", SMALL, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3 warns when it finds no Monitor
        returns, lengths = evaluate_policy(agent, make_single_env("CartPole-v1"), n_eval_episodes=3,
                                           return_episode_rewards=True)
    assert len(returns) == len(lengths) == 3
    assert [float(r) for r in returns] == [float(n) for n in lengths]  # CartPole: +1 a step


def test_training_streams_wear_no_monitor_and_keep_exact_snapshots() -> None:
    assert Monitor in _wrappers(make_single_env("CartPole-v1"))
    assert Monitor not in _wrappers(make_single_env("CartPole-v1", episode_monitor=False))
    streams = make_env("CartPole-v1", seed=0, num_envs=2)
    assert all(Monitor not in _wrappers(env) for env in streams.envs)
    assert streams.supports_exact_snapshot()


@pytest.mark.parametrize("kind", ["reflect", "sb3"])
def test_monitored_envs_count_each_episode_once(kind: str) -> None:
    # sb3: make_vec_env puts its Monitor over make_single_env's
    env = (make_single_env("CartPole-v1") if kind == "reflect"
           else make_vec_env(lambda: make_single_env("CartPole-v1"), n_envs=2, seed=0))
    agent = Reflect(env, SMALL, seed=0)
    ends = [0]

    def count_ends(local: dict, _: dict) -> bool:
        ends[0] += int(np.sum(local["dones"]))
        return True

    agent.learn(400, callback=count_ends)
    assert ends[0] > 0 and len(agent.ep_info_buffer) == ends[0]
    assert all(r == n for r, n in agent.ep_info_buffer)  # CartPole: +1 a step


def test_a_program_without_stable_baselines3_builds_unmonitored_envs() -> None:
    code = ("import sys, reflect.agents\n"
            "from reflect.envs import make_single_env\n"
            "env = make_single_env('CartPole-v1')\n"
            "assert 'stable_baselines3' not in sys.modules, 'SB3 was imported'\n"
            "print(type(env).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "TimeLimit"
