"""StreamVectorEnv: same-step autoreset against hand-stepped envs, episode statistics, exact snapshots."""

from __future__ import annotations

import io
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import NormalizeObservation

from reflect.envs import EnvSetupError, StreamVectorEnv, make_env, make_single_env

SEED = 7


def cartpole_actions(steps: int) -> np.ndarray:
    """Fixed actions ``[steps, 2]``: stream 0 always pushes right, stream 1 follows a seeded coin."""
    coin = np.random.default_rng(123).integers(0, 2, size=steps)
    return np.stack([np.ones(steps, dtype=np.int64), coin], axis=1)


def test_matches_manual_stepping_of_the_same_seeded_envs() -> None:
    steps = 150
    actions = cartpole_actions(steps)
    vec = make_env("CartPole-v1", seed=SEED, num_envs=2)
    manual = [gym.make("CartPole-v1") for _ in range(2)]
    obs, _ = vec.reset()
    manual_obs = [env.reset(seed=SEED + i)[0] for i, env in enumerate(manual)]
    np.testing.assert_array_equal(obs, np.stack(manual_obs))
    running = [0.0, 0.0]
    lengths = [0, 0]
    episodes = [0, 0]
    for t in range(steps):
        obs, rewards, terminated, truncated, info = vec.step(actions[t])
        ended = np.zeros(2, dtype=bool)
        for i, env in enumerate(manual):
            o, r, term, trunc, _ = env.step(int(actions[t, i]))
            assert rewards[i] == r and terminated[i] == term and truncated[i] == trunc
            running[i] += float(r)
            lengths[i] += 1
            if term or trunc:
                ended[i] = True
                np.testing.assert_array_equal(info["final_obs"][i], o)
                assert info["episode"]["r"][i] == running[i]
                assert info["episode"]["l"][i] == lengths[i]
                running[i], lengths[i] = 0.0, 0
                episodes[i] += 1
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
            assert vec.episode_returns[i] == running[i]
            assert vec.episode_lengths[i] == lengths[i]
        if ended.any():
            np.testing.assert_array_equal(info["_final_obs"], ended)
            np.testing.assert_array_equal(info["_episode"], ended)
            np.testing.assert_array_equal(info["episode"]["r"][~ended], 0.0)
            np.testing.assert_array_equal(info["episode"]["l"][~ended], 0)
            assert info["episode"]["r"].dtype == np.float64
            assert info["episode"]["l"].dtype == np.int64
            assert info["episode"]["t"].dtype == np.float64
            assert (info["episode"]["t"] >= 0).all()
        else:
            assert info == {}
    assert min(episodes) >= 3, episodes


def test_returned_arrays_are_fresh_and_typed() -> None:
    vec = make_env("CartPole-v1", seed=SEED, num_envs=2)
    obs0, _ = vec.reset()
    kept = obs0.copy()
    obs1, rewards, terminated, truncated, _ = vec.step(np.array([0, 1]))
    np.testing.assert_array_equal(obs0, kept)
    assert obs1.shape == (2, 4) and obs1.dtype == np.float32
    assert rewards.dtype == np.float64 and terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    before = obs1.copy()
    vec.step(np.array([0, 1]))
    np.testing.assert_array_equal(obs1, before)


def test_vector_attributes() -> None:
    vec = make_env("CartPole-v1", num_envs=3)
    assert vec.num_envs == 3
    assert vec.single_observation_space == gym.make("CartPole-v1").observation_space
    assert vec.observation_space.shape == (3, 4)
    assert vec.action_space == gym.spaces.MultiDiscrete([2, 2, 2])
    assert vec.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert vec.render_mode is None
    assert repr(vec) == "StreamVectorEnv(CartPole-v1, num_envs=3)"


def test_reset_seed_list_and_errors() -> None:
    vec = make_env("CartPole-v1", num_envs=2)
    obs, _ = vec.reset(seed=[5, 9])
    np.testing.assert_array_equal(obs[1], gym.make("CartPole-v1").reset(seed=9)[0])
    with pytest.raises(ValueError, match=r"reset got 3 seeds for 2 streams"):
        vec.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match=r"step got 3 actions for 2 streams"):
        vec.step(np.array([0, 1, 0]))


def test_construction_errors() -> None:
    env = make_single_env("CartPole-v1")
    with pytest.raises(EnvSetupError, match=r"at least one environment"):
        StreamVectorEnv([])
    with pytest.raises(EnvSetupError, match=r"same environment object twice"):
        StreamVectorEnv.from_envs([env, env])
    with pytest.raises(EnvSetupError, match=r"environment 1 has spaces .* give every stream the same spaces"):
        StreamVectorEnv.from_envs([env, make_single_env("Acrobot-v1")])


class Frames(gym.Env[np.ndarray, Any]):
    """Tiny env that renders a constant frame and counts closes."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, value: int, render_mode: str | None = "rgb_array") -> None:
        self.metadata = {"render_modes": ["rgb_array"]}
        self.value = value
        self.render_mode = render_mode
        self.closes = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(2, np.float32), 0.0, False, False, {}

    def render(self) -> np.ndarray:
        return np.full((2, 3, 3), self.value, dtype=np.uint8)

    def close(self) -> None:
        self.closes += 1


def test_render_and_close() -> None:
    envs = [Frames(1), Frames(2)]
    vec = StreamVectorEnv.from_envs(envs)
    vec.reset(seed=0)
    frames = vec.render()
    assert frames is not None and len(frames) == 2
    np.testing.assert_array_equal(frames[1], np.full((2, 3, 3), 2, np.uint8))
    assert vec.render_mode == "rgb_array"
    vec.close()
    assert vec.closed and [env.closes for env in envs] == [1, 1]


# ---- snapshots -----------------------------------------------------------------------------------

PLAIN = (int, float, bool, str, type(None), torch.Tensor)


def assert_plain(value: Any, path: str = "snapshot") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path} has key {key!r}"
            assert_plain(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")
    else:
        assert type(value) in PLAIN, f"{path} is a {type(value).__name__}"


def save_and_load(snapshot: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def env_actions(vec: StreamVectorEnv, steps: int) -> list[np.ndarray]:
    space = vec.action_space
    space.seed(99)
    return [space.sample() for _ in range(steps)]


def run(vec: StreamVectorEnv, actions: list[np.ndarray]) -> list[tuple[Any, ...]]:
    trace = []
    for action in actions:
        obs, rewards, terminated, truncated, info = vec.step(action)
        episode = info.get("episode", {})
        trace.append(
            (obs, rewards, terminated, truncated, info.get("final_obs"), episode.get("r"), episode.get("l"))
        )
    return trace


def same_trace(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    return all(
        all((x is None and y is None) or np.array_equal(x, y) for x, y in zip(row_a, row_b, strict=True))
        for row_a, row_b in zip(a, b, strict=True)
    )


# Steps before the snapshot and after it: the part after it crosses episode ends (time limits of
# 500 and 200 steps for Acrobot and Pendulum), so the restored generators draw the next initial states.
@pytest.mark.parametrize(
    ("env_id", "before", "after"),
    [("CartPole-v1", 60, 120), ("Acrobot-v1", 460, 80), ("Pendulum-v1", 170, 80)],
)
def test_snapshot_restore_continues_identically(env_id: str, before: int, after: int) -> None:
    original = make_env(env_id, seed=SEED, num_envs=2)
    original.reset()
    actions = env_actions(original, before + after)
    run(original, actions[:before])
    snapshot = save_and_load(original.snapshot())

    restored = make_env(env_id, num_envs=2)  # never reset: restore alone must make it steppable
    restored.restore(snapshot)
    np.testing.assert_array_equal(restored.observations, original.observations)
    np.testing.assert_array_equal(restored.episode_returns, original.episode_returns)
    np.testing.assert_array_equal(restored.episode_lengths, original.episode_lengths)

    control = make_env(env_id, seed=SEED, num_envs=2)  # negative control: same seed, no restore
    control.reset()
    expected = run(original, actions[before:])
    assert sum(int((row[2] | row[3]).any()) for row in expected) >= 1, "no episode ended after the snapshot"
    assert same_trace(run(restored, actions[before:]), expected)
    assert not same_trace(run(control, actions[before:]), expected)


def test_snapshot_is_plain_and_keeps_big_generator_ints() -> None:
    vec = make_env("Pendulum-v1", seed=SEED, num_envs=2)
    vec.reset()
    vec.step(np.zeros((2, 1), np.float32))
    snapshot = vec.snapshot()
    assert_plain(snapshot)
    loaded = save_and_load(snapshot)
    state = loaded["streams"][1]["np_random"]["state"]["state"]
    assert state > 2**64  # a 128-bit PCG64 state survives weights_only loading
    assert state == vec.envs[1].unwrapped.np_random.bit_generator.state["state"]["state"]
    assert loaded["env_ids"] == ["Pendulum-v1", "Pendulum-v1"]
    assert loaded["streams"][0]["wrappers"][0] == {"wrapper": "TimeLimit", "elapsed_steps": 1}
    attributes = loaded["streams"][0]["simulator"]["attributes"]
    assert "last_u" in attributes and "state" in attributes
    assert "observation_space" not in attributes and "spec" not in attributes


def test_restore_rejects_mismatched_snapshots() -> None:
    vec = make_env("CartPole-v1", seed=SEED, num_envs=2)
    vec.reset()
    snapshot = vec.snapshot()
    with pytest.raises(EnvSetupError, match=r"snapshot has 2 streams but this StreamVectorEnv has 3"):
        make_env("CartPole-v1", num_envs=3).restore(snapshot)
    with pytest.raises(EnvSetupError, match=r"snapshot is of environments \['CartPole-v1', 'CartPole-v1'\]"):
        make_env("Acrobot-v1", num_envs=2).restore(snapshot)
    with pytest.raises(EnvSetupError, match=r"snapshot format None"):
        vec.restore({"num_envs": 2})


def test_supports_exact_snapshot_rule() -> None:
    assert make_env("CartPole-v1", num_envs=2).supports_exact_snapshot()
    assert make_env("Pendulum-v1").supports_exact_snapshot()
    stateful = StreamVectorEnv.from_envs([NormalizeObservation(make_single_env("CartPole-v1"))])
    assert not stateful.supports_exact_snapshot()
    assert not StreamVectorEnv.from_envs([Frames(0)]).supports_exact_snapshot()


def test_mujoco_snapshot_restore_continues_identically() -> None:
    pytest.importorskip("mujoco")
    pytest.importorskip("imageio")
    original = make_env("Ant-v5", seed=SEED, num_envs=2)
    original.reset()
    actions = [a * 0.4 for a in env_actions(original, 60)]
    run(original, actions[:30])
    assert original.supports_exact_snapshot()
    restored = make_env("Ant-v5", num_envs=2)
    restored.restore(save_and_load(original.snapshot()))
    assert same_trace(run(restored, actions[30:]), run(original, actions[30:]))


def test_snapshot_before_the_first_reset_keeps_the_pending_seed() -> None:
    original = make_env("CartPole-v1", seed=21, num_envs=2)
    restored = make_env("CartPole-v1", num_envs=2)
    restored.restore(save_and_load(original.snapshot()))
    with pytest.raises(EnvSetupError, match=r"before reset"):
        restored.step(np.array([0, 0]))
    obs, _ = restored.reset()
    np.testing.assert_array_equal(obs[1], gym.make("CartPole-v1").reset(seed=22)[0])
    np.testing.assert_array_equal(obs, original.reset()[0])
