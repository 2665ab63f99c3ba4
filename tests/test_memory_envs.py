"""The memory tasks of ``reflect.envs.memory_tasks``: evidence accumulation and the delayed-cue T-maze."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from reflect.agents import Reflect
from reflect.envs import check_spaces, make_env, make_single_env
from reflect.envs.memory_tasks import (
    EVIDENCE_ACCUMULATION_ID,
    TMAZE_ID,
    EvidenceAccumulationEnv,
    TMazeEnv,
)
from reflect.envs.snapshot import capture_env_state, restore_env_state

FORWARD, UP, DOWN = 0, 1, 2
CUE_UP, CUE_DOWN, CORRIDOR, JUNCTION = (np.eye(4, dtype=np.float32)[i] for i in range(4))


def run_episode(env: gym.Env, seed: int | None, policy: Any) -> tuple[list[np.ndarray], list[float], dict]:
    """Observations seen (before each action), rewards and the last info of one episode."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(observations))
        rewards.append(float(reward))
        if terminated or truncated:
            return observations, rewards, info
        observations.append(obs)


def always(action: int) -> Any:
    return lambda observations: action


def count_clicks(observations: list[np.ndarray]) -> int:
    """Answer the side with more clicks seen so far (1 = right if it has more, else 0 = left)."""
    left, right = np.sum(observations, axis=0)[:2]
    return int(right > left)


# ---- both ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env_id", "kwargs"), [
    (EVIDENCE_ACCUMULATION_ID, {}),
    (EVIDENCE_ACCUMULATION_ID, {"cue_steps": 1, "delay": 0}),
    (TMAZE_ID, {}),
    (TMAZE_ID, {"length": 1}),
])
def test_env_checker_passes_without_warnings(env_id: str, kwargs: dict[str, Any]) -> None:
    env = gym.make(env_id, render_mode=None, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Gymnasium's checker reports most problems as warnings
        check_env(env.unwrapped, skip_render_check=True)


def test_registered_without_a_time_limit_and_with_the_reward_threshold() -> None:
    for env_id in (EVIDENCE_ACCUMULATION_ID, TMAZE_ID):
        spec = gym.spec(env_id)
        assert spec.max_episode_steps is None  # the environments end their episodes themselves
        assert spec.reward_threshold == 0.9
        assert str(spec.entry_point).startswith("reflect.envs.memory_tasks:")


@pytest.mark.parametrize("env_id", [EVIDENCE_ACCUMULATION_ID, TMAZE_ID])
def test_episodes_are_determined_by_the_reset_seed(env_id: str) -> None:
    def episodes(seed: int) -> list[list[np.ndarray]]:
        env = gym.make(env_id)
        first = run_episode(env, seed, always(1))[0]
        return [first] + [run_episode(env, None, always(1))[0] for _ in range(20)]

    a, b, other = episodes(3), episodes(3), episodes(4)
    as_bytes = [[obs.tobytes() for obs in episode] for episode in a]
    assert as_bytes == [[obs.tobytes() for obs in episode] for episode in b]
    assert as_bytes != [[obs.tobytes() for obs in episode] for episode in other]


@pytest.mark.parametrize("env_class", [EvidenceAccumulationEnv, TMazeEnv])
def test_render_mode_none_is_accepted_and_others_are_refused(
    env_class: type[EvidenceAccumulationEnv | TMazeEnv],
) -> None:
    assert env_class(render_mode=None).render_mode is None
    assert env_class.metadata == {"render_modes": []}
    with pytest.raises(ValueError, match=r"render_mode must be None.*'human'"):
        env_class(render_mode="human")


@pytest.mark.parametrize("env_class", [EvidenceAccumulationEnv, TMazeEnv])
def test_step_before_reset_or_after_the_end_raises(env_class: type[gym.Env]) -> None:
    env = env_class()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    run_episode(env, 0, always(1))
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_make_single_env_builds_both() -> None:
    accumulation = make_single_env(EVIDENCE_ACCUMULATION_ID)
    assert isinstance(accumulation.unwrapped, EvidenceAccumulationEnv)
    _, rewards, _ = run_episode(accumulation, 0, count_clicks)
    assert len(rewards) == 31 and rewards[-1] == 1.0
    maze = make_single_env(TMAZE_ID, length=5)
    assert isinstance(maze.unwrapped, TMazeEnv) and maze.unwrapped.length == 5
    _, rewards, _ = run_episode(maze, 0, tmaze_solver)
    assert rewards == [0.0] * 5 + [1.0]
    for env in (accumulation, maze):
        info = check_spaces(env.observation_space, env.action_space)
        assert (info.obs_dim, info.action_kind) == (4, "discrete")


def test_streams_of_both_run_whole_episodes() -> None:
    for env_id, episode_length in ((EVIDENCE_ACCUMULATION_ID, 31), (TMAZE_ID, 44)):
        streams = make_env(env_id, seed=0, num_envs=2)
        obs, _ = streams.reset()
        assert obs.shape == (2, 4)
        ended = []
        for _ in range(2 * episode_length):  # always action 0: left, or forward until truncated
            obs, _, terminated, truncated, info = streams.step(np.zeros(2, dtype=np.int64))
            if info.get("_episode", np.zeros(2, dtype=bool)).any():
                ended.append((terminated.tolist(), truncated.tolist(), info["episode"]["l"].tolist()))
        streams.close()
        done = [True, True]
        expected = (done, [False, False]) if env_id == EVIDENCE_ACCUMULATION_ID else ([False, False], done)
        assert ended == [(*expected, [episode_length] * 2)] * 2


@pytest.mark.parametrize(("env_id", "kwargs"), [(EVIDENCE_ACCUMULATION_ID, {}), (TMAZE_ID, {"length": 3})])
def test_snapshot_restores_an_episode_exactly(env_id: str, kwargs: dict[str, Any]) -> None:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=5)
    for _ in range(3):
        env.step(1)
    state = capture_env_state(env)
    first = [env.step(action)[:4] for action in (0, 0, 0, 0, 1)]
    restore_env_state(env, state)
    again = [env.step(action)[:4] for action in (0, 0, 0, 0, 1)]
    for (obs_a, *rest_a), (obs_b, *rest_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert rest_a == rest_b


# ---- evidence accumulation -----------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 20, 40])
def test_accumulation_episode_length_is_cue_plus_delay_plus_one(delay: int) -> None:
    env = gym.make(EVIDENCE_ACCUMULATION_ID, delay=delay)
    for seed in range(5):
        env.reset(seed=seed)
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated):
            _, _, terminated, truncated, _ = env.step(0)
            steps += 1
        assert (steps, terminated, truncated) == (10 + delay + 1, True, False)
    assert isinstance(env.unwrapped, EvidenceAccumulationEnv)
    assert env.unwrapped.episode_steps == 10 + delay + 1


def test_accumulation_custom_cue_steps_sets_the_length() -> None:
    env = gym.make(EVIDENCE_ACCUMULATION_ID, cue_steps=25, delay=30)
    _, rewards, _ = run_episode(env, 0, always(0))
    assert len(rewards) == 25 + 30 + 1


@pytest.mark.parametrize("delay", [0, 1, 20])
def test_accumulation_observation_layout(delay: int) -> None:
    env = gym.make(EVIDENCE_ACCUMULATION_ID, delay=delay)
    for seed in range(10):
        observations, _, _ = run_episode(env, seed, always(0))
        obs = np.stack(observations)
        assert obs.shape == (10 + delay + 1, 4) and obs.dtype == np.float32
        cue, gap, decision = obs[:10], obs[10:10 + delay], obs[10 + delay]
        assert np.all(cue[:, 2] == 1) and np.all(cue[:, 3] == 0)
        assert set(np.unique(cue[:, :2])) <= {0.0, 1.0}
        assert np.all(gap == 0)  # the delay shows nothing
        np.testing.assert_array_equal(decision, [0, 0, 0, 1])  # the go cue, only at the decision step


def test_accumulation_reward_goes_to_the_side_with_more_clicks() -> None:
    env = gym.make(EVIDENCE_ACCUMULATION_ID)
    seen_sides = set()
    for seed in range(40):
        outcomes = {}
        for answer in (0, 1):  # replay the same episode with both answers
            observations, rewards, info = run_episode(env, seed, always(answer))
            left, right = np.sum(observations, axis=0)[:2]
            assert (info["left_clicks"], info["right_clicks"]) == (left, right)
            assert isinstance(info["left_clicks"], int) and isinstance(info["correct"], bool)
            assert rewards[:-1] == [0.0] * (len(rewards) - 1)  # answers before the decision are ignored
            assert info["correct"] == (rewards[-1] == 1.0)
            outcomes[answer] = rewards[-1]
        correct_side = 0 if left > right else 1
        seen_sides.add(correct_side)
        assert outcomes[correct_side] == 1.0 and outcomes[1 - correct_side] == 0.0
    assert seen_sides == {0, 1}


@pytest.mark.parametrize(
    "kwargs", [{}, {"cue_steps": 1}, {"cue_steps": 2, "rate_rich": 0.3, "rate_poor": 0.2}]
)
def test_accumulation_clicks_never_tie(kwargs: dict[str, Any]) -> None:
    env = EvidenceAccumulationEnv(delay=0, **kwargs)  # cue_steps=1 would tie in about half the draws
    env.reset(seed=0)
    for _ in range(300):
        _, _, info = run_episode(env, None, always(0))
        assert info["left_clicks"] != info["right_clicks"]


def test_accumulation_chance_is_one_half_and_counting_is_always_right() -> None:
    episodes = 2000
    env = EvidenceAccumulationEnv()
    env.reset(seed=1)
    left_correct = sum(run_episode(env, None, always(0))[1][-1] for _ in range(episodes))
    assert 0.45 <= left_correct / episodes <= 0.55
    env.reset(seed=2)
    counting_correct = sum(run_episode(env, None, count_clicks)[1][-1] for _ in range(episodes))
    assert counting_correct == episodes


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"delay": -1}, r"delay must be an integer >= 0, got -1"),
    ({"delay": 2.5}, r"delay must be an integer >= 0, got 2.5"),
    ({"cue_steps": 0}, r"cue_steps must be an integer >= 1, got 0"),
    ({"cue_steps": True}, r"cue_steps must be an integer >= 1, got True"),
    ({"rate_rich": 1.5}, r"rate_rich must be a probability in \[0, 1\], got 1.5"),
    ({"rate_poor": -0.1}, r"rate_poor must be a probability in \[0, 1\], got -0.1"),
    ({"rate_rich": float("nan")}, r"rate_rich must be a probability in \[0, 1\], got nan"),
    ({"rate_rich": 0.2, "rate_poor": 0.2}, r"rate_rich must be greater than rate_poor.*rate_rich=0.2"),
    ({"rate_rich": 0.1, "rate_poor": 0.5}, r"rate_rich must be greater than rate_poor.*rate_poor=0.5"),
])
def test_accumulation_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvidenceAccumulationEnv(**kwargs)
    with pytest.raises(ValueError, match=message):
        gym.make(EVIDENCE_ACCUMULATION_ID, **kwargs)


def test_actions_may_be_numpy_integers_and_bad_ones_are_refused() -> None:
    env = EvidenceAccumulationEnv(cue_steps=1, delay=0)
    env.reset(seed=0)
    assert env.step(np.int64(1))[2] is False
    assert env.step(np.array(1))[2] is True  # a 0-d integer array, as Discrete.contains accepts
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be 0 \(left\) or 1 \(right\), got 2"):
        env.step(2)
    with pytest.raises(ValueError, match=r"action must be an integer \(0 = left, 1 = right\), got 0.5"):
        env.step(0.5)
    maze = TMazeEnv()
    maze.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be 0 \(forward\), 1 \(turn up\) or 2 \(turn down\)"):
        maze.step(3)


# ---- T-maze --------------------------------------------------------------------------------------


def tmaze_solver(observations: list[np.ndarray]) -> int:
    """Walk forward; at the junction turn to the cue of the first observation."""
    if observations[-1][3] == 1:
        return UP if observations[0][0] == 1 else DOWN
    return FORWARD


def seeds_by_cue(length: int, count: int = 3) -> dict[str, list[int]]:
    """Seeds whose episode cues up, and seeds whose episode cues down."""
    env = TMazeEnv(length=length)
    found: dict[str, list[int]] = {"up": [], "down": []}
    seed = 0
    while min(len(seeds) for seeds in found.values()) < count:
        obs, _ = env.reset(seed=seed)
        found["up" if obs[0] == 1 else "down"].append(seed)
        seed += 1
    return found


@pytest.mark.parametrize("length", [1, 2, 10])
def test_tmaze_cue_is_visible_only_in_the_first_observation(length: int) -> None:
    env = gym.make(TMAZE_ID, length=length)
    for cue, seeds in seeds_by_cue(length).items():
        for seed in seeds:
            observations, _, _ = run_episode(env, seed, tmaze_solver)
            np.testing.assert_array_equal(observations[0], (CUE_UP if cue == "up" else CUE_DOWN) + CORRIDOR)
            later = np.stack(observations[1:])
            assert np.all(later[:, :2] == 0)
            np.testing.assert_array_equal(later, [CORRIDOR] * (length - 1) + [JUNCTION])


@pytest.mark.parametrize("length", [1, 4])
def test_tmaze_corridor_observations_are_the_same_for_both_cues(length: int) -> None:
    env = TMazeEnv(length=length)
    seeds = seeds_by_cue(length, count=1)
    walks = {}
    for cue in ("up", "down"):
        env.reset(seed=seeds[cue][0])
        walks[cue] = [env.step(action)[0] for action in (UP, DOWN, *[FORWARD] * length, FORWARD)]
    np.testing.assert_array_equal(np.stack(walks["up"]), np.stack(walks["down"]))


@pytest.mark.parametrize("length", [1, 5, 10, 50])
def test_tmaze_forward_then_the_cued_turn_returns_one(length: int) -> None:
    env = gym.make(TMAZE_ID, length=length)  # 50: longer than the 44 steps of the default length
    for seed in range(6):
        _, rewards, info = run_episode(env, seed, tmaze_solver)
        assert len(rewards) == length + 1
        assert rewards == [0.0] * length + [1.0] and info == {"correct": True}


def test_tmaze_wrong_turn_returns_zero_and_ends() -> None:
    env = TMazeEnv(length=3)
    for cue, seeds in seeds_by_cue(3).items():
        for seed in seeds:
            env.reset(seed=seed)
            for _ in range(3):
                env.step(FORWARD)
            _, reward, terminated, truncated, info = env.step(DOWN if cue == "up" else UP)
            assert (reward, terminated, truncated, info) == (0.0, True, False, {"correct": False})


def test_tmaze_bumps_cost_and_do_not_move() -> None:
    env = TMazeEnv(length=2)
    env.reset(seed=0)
    for action in (UP, DOWN):  # at the start
        obs, reward, terminated, truncated, _ = env.step(action)
        assert (reward, terminated, truncated) == (-0.1, False, False)
        np.testing.assert_array_equal(obs, CORRIDOR)  # still at position 0, the cue is not shown again
    assert env.step(FORWARD)[1] == 0.0  # position 1
    obs, reward, *_ = env.step(UP)  # a bump in the middle of the corridor
    assert reward == -0.1
    np.testing.assert_array_equal(obs, CORRIDOR)
    obs, reward, *_ = env.step(FORWARD)  # still one cell to walk: this reaches the junction
    assert reward == 0.0
    np.testing.assert_array_equal(obs, JUNCTION)
    for _ in range(2):  # forward at the junction
        obs, reward, terminated, truncated, _ = env.step(FORWARD)
        assert (reward, terminated, truncated) == (-0.1, False, False)
        np.testing.assert_array_equal(obs, JUNCTION)
    assert env.step(UP)[2] is True


@pytest.mark.parametrize(("kwargs", "limit"), [({}, 44), ({"length": 5}, 24), ({"length": 50}, 204)])
def test_tmaze_time_limit(kwargs: dict[str, Any], limit: int) -> None:
    env = gym.make(TMAZE_ID, **kwargs)
    env.reset(seed=0)
    for step in range(1, limit + 1):  # forward to the junction, then forward into its wall until the limit
        _, _, terminated, truncated, _ = env.step(FORWARD)
        assert not terminated
        assert truncated == (step == limit)
    assert isinstance(env.unwrapped, TMazeEnv) and env.unwrapped.max_steps == limit


@pytest.mark.parametrize("length", [0, -3, 2.0, True, "10"])
def test_tmaze_bad_length_is_named(length: Any) -> None:
    message = rf"length must be an integer >= 1, got {length!r}"
    with pytest.raises(ValueError, match=message):
        TMazeEnv(length=length)
    with pytest.raises(ValueError, match=message):
        gym.make(TMAZE_ID, length=length)


def test_env_kwargs_of_the_config_reach_the_training_streams() -> None:
    agent = Reflect(EVIDENCE_ACCUMULATION_ID, {"env_kwargs": {"delay": 5}, "network": {"hidden": [8]}})
    assert agent.env.envs[0].unwrapped.episode_steps == 16  # 10 cue steps, 5 of delay, the decision
    assert agent.config.env_kwargs == {"delay": 5}
