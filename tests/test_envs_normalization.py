"""Running statistics, observation normalisation, reward scaling, their state dicts and vector wrappers."""

from __future__ import annotations

import io
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from reflect.envs import (
    NormalizeObservationStream,
    ObservationNormalizer,
    RewardScaler,
    RunningMeanStd,
    ScaleRewardStream,
    make_env,
)

EPS = 1e-8


def save_and_load(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---- RunningMeanStd ------------------------------------------------------------------------------


def test_running_mean_std_equals_numpy_over_all_batches() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(loc=[3.0, -1.0, 100.0], scale=[0.5, 2.0, 10.0], size=(40, 3))
    rms = RunningMeanStd((3,))
    assert rms.count == 0
    np.testing.assert_array_equal(rms.mean, 0.0)
    np.testing.assert_array_equal(rms.var, 1.0)
    start = 0
    for size in (1, 5, 1, 3, 10, 1, 19):
        rms.update(data[start : start + size])
        start += size
        seen = data[:start]
        np.testing.assert_allclose(rms.mean, seen.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(rms.var, seen.var(axis=0), rtol=1e-10, atol=1e-12)
        assert rms.count == start
    assert rms.mean.dtype == np.float64 and rms.var.dtype == np.float64


def test_running_mean_std_scalar_shape() -> None:
    rms = RunningMeanStd(())
    rms.update(np.array([1.0, 2.0]))
    rms.update(np.array([6.0]))
    assert rms.mean == pytest.approx(3.0) and rms.var == pytest.approx(np.var([1.0, 2.0, 6.0]))


def test_running_mean_std_state_dict_round_trip_and_errors() -> None:
    rng = np.random.default_rng(1)
    rms = RunningMeanStd((2,))
    rms.update(rng.normal(size=(7, 2)))
    state = save_and_load(rms.state_dict())
    assert state["count"] == 7 and state["mean"].dtype == torch.float64
    copy = RunningMeanStd((2,))
    copy.load_state_dict(state)
    batch = rng.normal(size=(3, 2))
    rms.update(batch)
    copy.update(batch)
    np.testing.assert_array_equal(copy.mean, rms.mean)
    np.testing.assert_array_equal(copy.var, rms.var)
    with pytest.raises(ValueError, match=r"state has shape \(2,\) but this one has \(3,\)"):
        RunningMeanStd((3,)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"got a batch of shape \(4, 3\)"):
        rms.update(np.zeros((4, 3)))


# ---- ObservationNormalizer -----------------------------------------------------------------------


def test_observation_normalizer_streams_and_normalizes() -> None:
    norm = ObservationNormalizer((2,))
    first = norm(np.array([[0.0, 10.0]]))
    np.testing.assert_array_equal(first, [[0.0, 0.0]])  # one sample: its own mean
    second = norm(np.array([[2.0, -10.0]]))
    # After [0, 10] and [2, -10]: mean [1, 0], var [1, 100].
    np.testing.assert_allclose(second, [[1.0 / np.sqrt(1.0 + EPS), -10.0 / np.sqrt(100.0 + EPS)]], rtol=1e-6)
    assert second.dtype == np.float32
    frozen = norm(np.array([[3.0, 0.0]]), update=False)
    np.testing.assert_allclose(frozen, [[2.0 / np.sqrt(1.0 + EPS), 0.0]], rtol=1e-6)
    assert norm.rms.count == 2


def test_observation_normalizer_clips() -> None:
    norm = ObservationNormalizer((1,), clip=2.0)
    norm(np.array([[0.0], [1.0], [0.0], [1.0]]))
    out = norm(np.array([[1000.0], [-1000.0], [0.5]]), update=False)
    np.testing.assert_array_equal(out, np.array([[2.0], [-2.0], [0.0]], np.float32))


def test_observation_normalizer_rejects_non_finite_observations() -> None:
    norm = ObservationNormalizer((4,))
    norm(np.zeros((2, 4)))
    bad = np.zeros((2, 4))
    bad[1, 3] = np.nan
    bad[0, 1] = np.inf
    expected = r"observation has NaN or inf in dimensions \[1, 3\] \(streams \[0, 1\]\)"
    with pytest.raises(FloatingPointError, match=expected):
        norm(bad)
    assert norm.rms.count == 2  # statistics untouched


def test_observation_normalizer_state_dict_round_trip() -> None:
    rng = np.random.default_rng(2)
    norm = ObservationNormalizer((3,), clip=4.0)
    norm(rng.normal(size=(5, 3)))
    copy = ObservationNormalizer((3,))
    copy.load_state_dict(save_and_load(norm.state_dict()))
    assert copy.clip == 4.0
    batch = rng.normal(size=(2, 3))
    np.testing.assert_array_equal(copy(batch), norm(batch))


# ---- RewardScaler --------------------------------------------------------------------------------


def test_reward_scaler_against_hand_computation() -> None:
    scaler = RewardScaler(num_envs=2, gamma=0.5)
    no = np.array([False, False])
    # step 1: G = [1, 2]; var of {1, 2} = 0.25
    out = scaler.scale(np.array([1.0, 2.0]), no, no)
    np.testing.assert_allclose(out, np.array([1.0, 2.0]) / np.sqrt(0.25 + EPS), rtol=1e-12)
    # step 2: G = 0.5 * [1, 2] + [1, 0] = [1.5, 1]; stream 0 terminates, so its G is zeroed afterwards
    out = scaler.scale(np.array([1.0, 0.0]), np.array([True, False]), no)
    np.testing.assert_allclose(out, np.array([1.0, 0.0]) / np.sqrt(np.var([1, 2, 1.5, 1]) + EPS), rtol=1e-12)
    np.testing.assert_array_equal(scaler.returns, [0.0, 1.0])
    # step 3: G = [0 + 3, 0.5 * 1 + 1] = [3, 1.5]; stream 1 is truncated
    out = scaler.scale(np.array([3.0, 1.0]), no, np.array([False, True]))
    np.testing.assert_allclose(
        out, np.array([3.0, 1.0]) / np.sqrt(np.var([1, 2, 1.5, 1, 3, 1.5]) + EPS), rtol=1e-12
    )
    np.testing.assert_array_equal(scaler.returns, [3.0, 0.0])
    assert out.dtype == np.float64 and scaler.rms.count == 6


def test_reward_scaler_leaves_the_first_reward_unscaled() -> None:
    scaler = RewardScaler(num_envs=1, gamma=0.9)
    no = np.array([False])
    np.testing.assert_array_equal(scaler.scale(np.array([2.0]), no, no), [2.0])
    # G = [2, 0.9 * 2 + 1 = 2.8]
    second = scaler.scale(np.array([1.0]), no, no)
    np.testing.assert_allclose(second, [1.0 / np.sqrt(np.var([2.0, 2.8]) + EPS)], rtol=1e-12)


def test_reward_scaler_frozen_and_state_dict_round_trip() -> None:
    rng = np.random.default_rng(3)
    scaler = RewardScaler(num_envs=3, gamma=0.99)
    for _ in range(5):
        scaler.scale(rng.normal(size=3), rng.random(3) < 0.3, np.zeros(3, bool))
    copy = RewardScaler(num_envs=3, gamma=0.5)
    copy.load_state_dict(save_and_load(scaler.state_dict()))
    assert copy.gamma == 0.99
    np.testing.assert_array_equal(copy.returns, scaler.returns)
    for _ in range(4):
        rewards, done = rng.normal(size=3), rng.random(3) < 0.3
        np.testing.assert_array_equal(copy.scale(rewards, done, ~done), scaler.scale(rewards, done, ~done))
    count = scaler.rms.count
    scaler.scale(np.ones(3), np.zeros(3, bool), np.zeros(3, bool), update=False)
    assert scaler.rms.count == count
    with pytest.raises(ValueError, match=r"returns of shape \(3,\) but this one has 2 streams"):
        RewardScaler(num_envs=2, gamma=0.9).load_state_dict(scaler.state_dict())


def test_reward_scaler_rejects_bad_input() -> None:
    scaler = RewardScaler(num_envs=2, gamma=0.9)
    no = np.zeros(2, bool)
    with pytest.raises(FloatingPointError, match=r"reward has NaN or inf in streams \[1\]"):
        scaler.scale(np.array([0.0, np.inf]), no, no)
    with pytest.raises(ValueError, match=r"got rewards of shape \(3,\)"):
        scaler.scale(np.zeros(3), no, no)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        RewardScaler(num_envs=2, gamma=1.5)


# ---- vector wrappers -----------------------------------------------------------------------------


def actions(steps: int) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 2, size=(steps, 2))


def test_normalize_observation_stream_matches_a_separate_normalizer() -> None:
    raw = make_env("CartPole-v1", seed=1, num_envs=2)
    wrapped = NormalizeObservationStream(make_env("CartPole-v1", seed=1, num_envs=2), clip=3.0)
    assert wrapped.single_observation_space == gym.spaces.Box(-3.0, 3.0, (4,), np.float32)
    assert wrapped.observation_space.shape == (2, 4)
    reference = ObservationNormalizer((4,), clip=3.0)
    obs, _ = wrapped.reset()
    np.testing.assert_array_equal(obs, reference(raw.reset()[0]))
    ended = 0
    for action in actions(80):
        obs, _, _, _, info = wrapped.step(action)
        raw_obs, _, _, _, raw_info = raw.step(action)
        np.testing.assert_array_equal(obs, reference(raw_obs))
        if "final_obs" in raw_info:
            mask = raw_info["_final_obs"]
            ended += int(mask.sum())
            np.testing.assert_array_equal(
                info["final_obs"][mask], reference(raw_info["final_obs"][mask], update=False)
            )
            np.testing.assert_array_equal(info["final_obs"][~mask], 0.0)
    assert ended >= 2
    count = wrapped.normalizer.rms.count
    wrapped.update = False
    wrapped.step(np.array([0, 0]))
    assert wrapped.normalizer.rms.count == count


def test_normalize_observation_stream_on_sync_vector_env_final_obs() -> None:
    def cartpole() -> gym.Env:
        return gym.make("CartPole-v1")

    sync = SyncVectorEnv([cartpole, cartpole], autoreset_mode=AutoresetMode.SAME_STEP)
    env = NormalizeObservationStream(sync)
    env.reset(seed=0)
    seen = 0
    for action in actions(60):
        _, _, terminated, truncated, info = env.step(action)
        done = terminated | truncated
        if done.any():
            for i in range(2):
                final = info["final_obs"][i]
                assert (final is None) == (not done[i])
                if final is not None:
                    assert final.dtype == np.float32 and np.abs(final).max() <= 5.0
                    seen += 1
    assert seen >= 2


def test_scale_reward_stream_matches_a_separate_scaler() -> None:
    raw = make_env("CartPole-v1", seed=2, num_envs=2)
    wrapped = ScaleRewardStream(make_env("CartPole-v1", seed=2, num_envs=2), gamma=0.9)
    reference = RewardScaler(num_envs=2, gamma=0.9)
    raw.reset()
    wrapped.reset()
    for action in actions(50):
        _, rewards, _, _, _ = wrapped.step(action)
        _, raw_rewards, raw_term, raw_trunc, _ = raw.step(action)
        np.testing.assert_array_equal(rewards, reference.scale(raw_rewards, raw_term, raw_trunc))
    assert not np.array_equal(rewards, raw_rewards)
    wrapped.reset()
    np.testing.assert_array_equal(wrapped.scaler.returns, [0.0, 0.0])


def test_single_stream_fast_paths_equal_the_array_paths_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    rewards = rng.normal(size=300) * 3.0
    dones = rng.random(300) < 0.05
    array_scaler, float_scaler = RewardScaler(1, 0.99), RewardScaler(1, 0.99)
    for r, d in zip(rewards, dones, strict=True):
        expected = array_scaler.scale(np.array([r]), np.array([d]), np.array([False]))[0]
        assert float_scaler.scale_one(float(r), bool(d)) == expected
    assert float_scaler.rms.count == array_scaler.rms.count
    assert float(float_scaler.rms.var) == float(array_scaler.rms.var)

    rows = rng.normal(size=(200, 4)) * [1.0, 10.0, 0.1, 5.0] + [0.0, 3.0, -1.0, 100.0]
    normalizer = ObservationNormalizer((4,))
    out = np.zeros((1, 4), dtype=np.float32)
    for row in rows:
        result = normalizer(row[None], update=True, out=out)
        assert result is out
    np.testing.assert_allclose(normalizer.rms.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(normalizer.rms.var, rows.var(axis=0), rtol=1e-10)
    np.testing.assert_array_equal(out, normalizer(rows[-1:], update=False))


@pytest.mark.parametrize("dim", [3, 16, 17])
def test_short_observation_float_path_gives_the_same_bits_as_the_array_path(dim: int) -> None:
    rng = np.random.default_rng(dim)
    rows = rng.normal(size=(300, dim)) * rng.uniform(0.1, 10.0, dim) + rng.normal(size=dim) * 5.0
    rows[50, 0] = 1e6  # a clipped value
    one_at_a_time, batched = ObservationNormalizer((dim,)), ObservationNormalizer((dim,))
    out = np.zeros((1, dim), dtype=np.float32)
    for row in rows:
        np.testing.assert_array_equal(one_at_a_time(row[None], True, out), batched(row[None], True))
        np.testing.assert_array_equal(one_at_a_time.rms.var, batched.rms.var)
    np.testing.assert_array_equal(one_at_a_time(rows[:1], False, out), batched(rows[:1], False))
    with pytest.raises(FloatingPointError, match="dimensions \\[1\\]"):
        one_at_a_time(np.array([[0.0, np.nan] + [0.0] * (dim - 2)]), True, out)
