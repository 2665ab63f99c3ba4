"""read_episode_statistics against Gymnasium's own wrappers and StreamVectorEnv, with hand-summed returns."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit
from gymnasium.wrappers.vector import RecordEpisodeStatistics as VectorRecordEpisodeStatistics

from reflect.envs import EpisodeRecord, StreamVectorEnv, read_episode_statistics

STEPS = 120


class Coin(gym.Env[np.ndarray, Any]):
    """Random float rewards; ends with probability 0.15 per step (and at a time limit when wrapped)."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(self.np_random.normal()) + action
        return np.array([reward], np.float32), reward, bool(self.np_random.random() < 0.15), False, {}


def coin() -> gym.Env:
    return TimeLimit(Coin(), max_episode_steps=9)


def hand_records(
    rewards: list[np.ndarray], dones: list[np.ndarray], next_step: bool
) -> list[list[EpisodeRecord]]:
    """Per step, the episodes that ended, from the step rewards; ``next_step``: skip each reset step."""
    num_envs = len(rewards[0])
    total = [0.0] * num_envs
    length = [0] * num_envs
    previous_done = [False] * num_envs
    out = []
    for reward, done in zip(rewards, dones, strict=True):
        ended = []
        for i in range(num_envs):
            if next_step and previous_done[i]:
                total[i], length[i] = 0.0, 0  # the reset step belongs to no episode
            else:
                total[i] += float(reward[i])
                length[i] += 1
                if done[i]:
                    ended.append(EpisodeRecord(i, total[i], length[i]))
                    if not next_step:
                        total[i], length[i] = 0.0, 0
        previous_done = list(done)
        out.append(ended)
    return out


Collected = tuple[list[list[EpisodeRecord]], list[np.ndarray], list[np.ndarray]]


def collect(env: gym.vector.VectorEnv) -> Collected:
    env.reset(seed=3)
    actions = np.random.default_rng(0).integers(0, 2, size=(STEPS, env.num_envs))
    read, rewards, dones = [], [], []
    for t in range(STEPS):
        _, reward, terminated, truncated, info = env.step(actions[t])
        read.append(read_episode_statistics(info))
        rewards.append(reward.copy())
        dones.append(terminated | truncated)
    return read, rewards, dones


def assert_records_match(read: list[list[EpisodeRecord]], expected: list[list[EpisodeRecord]]) -> None:
    assert sum(len(step) for step in expected) >= 10
    assert [[(r.env_index, r.length) for r in step] for step in read] == [
        [(r.env_index, r.length) for r in step] for step in expected
    ]
    for got, want in zip(read, expected, strict=True):
        for g, w in zip(got, want, strict=True):
            assert g.episode_return == pytest.approx(w.episode_return, rel=1e-12, abs=1e-12)
            assert type(g.episode_return) is float and type(g.length) is int


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_vector_record_episode_statistics(mode: AutoresetMode) -> None:
    env = VectorRecordEpisodeStatistics(SyncVectorEnv([coin, coin, coin], autoreset_mode=mode))
    read, rewards, dones = collect(env)
    assert_records_match(read, hand_records(rewards, dones, next_step=mode == AutoresetMode.NEXT_STEP))


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_single_env_statistics_inside_sync_vector_env(mode: AutoresetMode) -> None:
    # SAME_STEP puts the ended episode's info (with "episode") under info["final_info"].
    env = SyncVectorEnv([lambda: RecordEpisodeStatistics(coin()) for _ in range(3)], autoreset_mode=mode)
    read, rewards, dones = collect(env)
    assert_records_match(read, hand_records(rewards, dones, next_step=mode == AutoresetMode.NEXT_STEP))


def test_stream_vector_env_statistics() -> None:
    env = StreamVectorEnv.from_envs([coin() for _ in range(3)])
    read, rewards, dones = collect(env)
    assert_records_match(read, hand_records(rewards, dones, next_step=False))


def test_single_env_record_episode_statistics() -> None:
    env = RecordEpisodeStatistics(coin())
    env.reset(seed=5)
    total, steps, done = 0.0, 0, False
    info: dict[str, Any] = {}
    while not done:
        _, reward, terminated, truncated, info = env.step(1)
        total += float(reward)
        steps += 1
        done = terminated or truncated
        if not done:
            assert read_episode_statistics(info) == []
    [record] = read_episode_statistics(info)
    assert record.env_index == 0 and record.length == steps
    assert record.episode_return == pytest.approx(total, rel=1e-12)


def test_info_without_statistics_gives_nothing() -> None:
    assert read_episode_statistics({}) == []
    assert read_episode_statistics({"final_info": {"x": np.zeros(2)}, "_final_info": np.ones(2, bool)}) == []


def test_batched_statistics_without_mask_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"no '_episode' mask"):
        read_episode_statistics({"episode": {"r": np.zeros(2), "l": np.zeros(2), "t": np.zeros(2)}})
