"""Space encoding (reflect.envs.encoding) and POPGym ids: what make_single_env hands the learners."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.spaces.utils import flatten

from reflect.envs import (
    EnvSetupError,
    UnknownEnvironmentError,
    UnsupportedSpaceError,
    check_observation_space,
    check_spaces,
    make_env,
    make_single_env,
)
from reflect.envs.encoding import (
    MAX_COMBINED_ACTIONS,
    EncodeActions,
    EncodeObservations,
    encode_actions,
    encode_observations,
)

SEED = 3
TEST_ID = "ReflectEncodingTest-v0"
POPGYM_ID = "popgym-RepeatPreviousEasy-v0"
MEMORY_EXTRA = 'pip install "reflect-rl[memory]"'


class SpaceEnv(gym.Env):
    """Observations sampled from any ``observation_space``; records the actions it is given."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space | None = None) -> None:
        self.observation_space = observation_space
        self.action_space = spaces.Discrete(2) if action_space is None else action_space
        self.actions: list[Any] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.actions.append(action)
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.fixture
def test_id(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered id whose spaces are chosen per call: make_single_env(TEST_ID, observation_space=...)."""
    monkeypatch.setitem(gym.registry, TEST_ID, EnvSpec(TEST_ID, entry_point=SpaceEnv))
    return TEST_ID


def wrappers_of(env: gym.Env) -> list[type]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(type(env))
        env = env.env
    return chain


def encoded(space: spaces.Space, obs: Any) -> np.ndarray:
    wrapper = EncodeObservations(SpaceEnv(space))
    out = wrapper.observation(obs)
    assert out.dtype == np.float32 and out.shape == wrapper.observation_space.shape
    assert wrapper.observation_space.dtype == np.float32 and len(wrapper.observation_space.shape) == 1
    assert check_observation_space(wrapper.observation_space) == out.shape[0]
    return out


# ---- observations --------------------------------------------------------------------------------


def test_discrete_is_one_hot_from_its_start() -> None:
    space = spaces.Discrete(4, start=2)
    np.testing.assert_array_equal(encoded(space, 2), [1, 0, 0, 0])
    np.testing.assert_array_equal(encoded(space, 5), [0, 0, 0, 1])
    with pytest.raises(ValueError, match=r"outside its space"):
        encoded(space, 1)  # below start: would wrap round to the last slot without the check


def test_multi_discrete_is_concatenated_one_hots() -> None:
    space = spaces.MultiDiscrete([2, 3], start=[0, -1])
    np.testing.assert_array_equal(encoded(space, np.array([1, -1])), [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(encoded(space, np.array([0, 1])), [1, 0, 0, 0, 1])


def test_multi_binary_and_box_of_any_shape_are_flat_float32() -> None:
    bits = np.array([[1, 0], [0, 1]], np.int8)
    np.testing.assert_array_equal(encoded(spaces.MultiBinary([2, 2]), bits), [1, 0, 0, 1])
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(encoded(spaces.Box(0, 255, (2, 3), np.uint8), image), [0, 1, 2, 3, 4, 5])
    flags = spaces.Box(0, 1, (3,), np.bool_)  # a 1-D Box the learners would refuse for its dtype
    np.testing.assert_array_equal(encoded(flags, np.array([True, False, True])), [1, 0, 1])
    bounds = EncodeObservations(SpaceEnv(spaces.Box(0, 255, (2, 3), np.uint8))).observation_space
    np.testing.assert_array_equal(bounds.high, np.full(6, 255, np.float32))


def test_tuple_of_discrete_and_box_concatenates_the_parts() -> None:
    space = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2, 2), np.float32)))
    box = np.array([[0.5, -0.5], [0.25, 1.0]], np.float32)
    np.testing.assert_array_equal(encoded(space, (1, box)), [0, 1, 0, 0.5, -0.5, 0.25, 1.0])


def test_dict_concatenates_in_sorted_key_order() -> None:
    space = spaces.Dict({"zeta": spaces.Discrete(2), "alpha": spaces.Box(-2.0, 2.0, (2,), np.float32)})
    obs = {"zeta": 1, "alpha": np.array([1.5, -2.0], np.float32)}  # the observation's own order: zeta first
    np.testing.assert_array_equal(encoded(space, obs), [1.5, -2.0, 0, 1])
    low = EncodeObservations(SpaceEnv(space)).observation_space.low
    np.testing.assert_array_equal(low, [-2.0, -2.0, 0, 0])


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(5, start=-2),
        spaces.MultiDiscrete([[2, 3], [4, 2]]),
        spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(2), spaces.Box(-1, 1, (2, 2)))),
        spaces.Dict(
            {"b": spaces.Discrete(2), "a": spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 1, (3,))))}
        ),
        spaces.Dict(OrderedDict([("b", spaces.Discrete(2)), ("a", spaces.MultiDiscrete([3, 2]))])),
    ],
)
def test_encoding_agrees_with_gymnasium_flatten(space: spaces.Space) -> None:
    space.seed(SEED)
    for _ in range(20):
        obs = space.sample()
        np.testing.assert_array_equal(encoded(space, obs), flatten(space, obs).astype(np.float32))


def test_one_d_box_env_gets_no_wrapper_and_is_bit_for_bit_unchanged() -> None:
    env = make_single_env("CartPole-v1")
    assert not {EncodeObservations, EncodeActions} & set(wrappers_of(env))
    assert encode_observations(env) is env and encode_actions(env) is env
    reference = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=SEED)
    expected, _ = reference.reset(seed=SEED)
    for step in range(20):
        np.testing.assert_array_equal(obs, expected)
        assert obs.dtype == expected.dtype
        obs, *_ = env.step(step % 2)
        expected, *_ = reference.step(step % 2)
    integer_box = SpaceEnv(spaces.Box(0, 9, (3,), np.int64))  # accepted before as it is: still no wrapper
    assert encode_observations(integer_box) is integer_box


def test_make_single_env_encodes_discrete_observations_for_streams() -> None:
    env = make_single_env("FrozenLake-v1")
    assert EncodeObservations in wrappers_of(env)
    vec = make_env("FrozenLake-v1", seed=SEED, num_envs=2)
    obs, _ = vec.reset()
    assert obs.shape == (2, 16) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, 0], [1, 1])  # both streams start in cell 0
    np.testing.assert_array_equal(obs.sum(axis=1), [1, 1])


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        (spaces.Text(5), "Text cannot be encoded"),
        (spaces.Tuple((spaces.Discrete(2), spaces.Sequence(spaces.Discrete(2)))), "part [1]: Sequence"),
    ],
)
def test_unencodable_spaces_stay_refused(test_id: str, space: spaces.Space, fragment: str) -> None:
    env = make_single_env(test_id, observation_space=space)
    assert EncodeObservations not in wrappers_of(env)
    with pytest.raises(UnsupportedSpaceError) as caught:
        check_spaces(env.observation_space, env.action_space)
    assert "only a 1-D Box" in str(caught.value) and fragment in str(caught.value)
    with pytest.raises(UnsupportedSpaceError, match="cannot be encoded"):
        encode_observations(SpaceEnv(space))


def test_unsupported_observation_error_names_the_helper() -> None:
    with pytest.raises(UnsupportedSpaceError) as caught:
        check_observation_space(spaces.Discrete(4))
    assert "reflect.envs.encode_observations(env)" in str(caught.value)
    env = encode_observations(SpaceEnv(spaces.Discrete(4)))  # the helper the message names does it
    assert check_observation_space(env.observation_space) == 4


# ---- actions -------------------------------------------------------------------------------------


def test_multi_discrete_actions_round_trip_every_index() -> None:
    space = spaces.MultiDiscrete([2, 3, 4], start=[0, 1, -1])
    inner = SpaceEnv(spaces.Box(-1, 1, (2,)), space)
    env = encode_actions(inner)
    assert isinstance(env, EncodeActions) and env.action_space == spaces.Discrete(24)
    seen = set()
    for index in range(24):
        vector = env.action(index)
        expected = np.array(np.unravel_index(index, (2, 3, 4))) + np.array([0, 1, -1])  # row-major
        np.testing.assert_array_equal(vector, expected)
        assert space.contains(vector)
        assert env.reverse_action(vector) == index
        seen.add(tuple(vector))
    assert len(seen) == 24
    env.reset(seed=SEED)
    env.step(23)
    np.testing.assert_array_equal(inner.actions[-1], [1, 3, 2])
    with pytest.raises(ValueError, match="outside"):
        env.action(24)


def test_two_dimensional_multi_discrete_keeps_its_shape() -> None:
    space = spaces.MultiDiscrete([[2, 3], [1, 2]])
    env = EncodeActions(SpaceEnv(spaces.Box(-1, 1, (2,)), space))
    assert env.action_space == spaces.Discrete(12)
    for index in range(12):
        vector = env.action(index)
        assert vector.shape == (2, 2) and space.contains(vector) and env.reverse_action(vector) == index
    np.testing.assert_array_equal(env.action(11), [[1, 2], [0, 1]])


def test_discrete_actions_with_a_start_are_shifted() -> None:
    inner = SpaceEnv(spaces.Box(-1, 1, (2,)), spaces.Discrete(3, start=-1))
    env = encode_actions(inner)
    assert env.action_space == spaces.Discrete(3)
    assert [int(env.action(i)) for i in range(3)] == [-1, 0, 1]
    assert check_spaces(env.observation_space, env.action_space).num_actions == 3


def test_more_than_64_combinations_is_a_clear_error(test_id: str) -> None:
    nine_by_eight = spaces.MultiDiscrete([9, 8])
    with pytest.raises(UnsupportedSpaceError) as caught:
        encode_actions(SpaceEnv(spaces.Box(-1, 1, (2,)), nine_by_eight))
    message = str(caught.value)
    assert "72 action combinations" in message and f"at most {MAX_COMBINED_ACTIONS}" in message
    env = make_single_env(test_id, observation_space=spaces.Box(-1, 1, (2,)), action_space=nine_by_eight)
    assert env.action_space == nine_by_eight  # left as it is: check_spaces says why it cannot be used
    with pytest.raises(UnsupportedSpaceError, match=r"72 action combinations .* at most 64"):
        check_spaces(env.observation_space, env.action_space, ("Discrete", "Box"))
    eight_by_eight = make_single_env(
        test_id, observation_space=spaces.Box(-1, 1, (2,)), action_space=spaces.MultiDiscrete([8, 8])
    )
    assert eight_by_eight.action_space == spaces.Discrete(64)


def test_make_single_env_encodes_observations_and_actions_together(test_id: str) -> None:
    obs_space = spaces.Dict({"cue": spaces.Discrete(3), "pos": spaces.Box(-1, 1, (2,), np.float32)})
    env = make_single_env(test_id, observation_space=obs_space, action_space=spaces.MultiDiscrete([2, 3]))
    info = check_spaces(env.observation_space, env.action_space)
    assert (info.obs_dim, info.action_kind, info.num_actions) == (5, "discrete", 6)
    obs, _ = env.reset(seed=SEED)
    assert env.observation_space.contains(obs) and obs[:3].sum() == 1  # sorted: 'cue' before 'pos'
    env.step(4)
    np.testing.assert_array_equal(env.unwrapped.actions[-1], [1, 1])


# ---- POPGym ----------------------------------------------------------------------------------------


def test_popgym_id_gives_a_one_hot_box() -> None:
    pytest.importorskip("popgym")
    env = make_single_env(POPGYM_ID)
    assert env.observation_space == spaces.Box(0.0, 1.0, (4,), np.float32)
    assert check_spaces(env.observation_space, env.action_space).num_actions == 4
    obs, _ = env.reset(seed=SEED)
    for _ in range(10):
        assert obs.shape == (4,) and obs.dtype == np.float32 and obs.sum() == 1
        obs, *_ = env.step(0)
    count_recall = make_single_env("popgym-CountRecallEasy-v0")  # MultiDiscrete([2 2]) observations
    assert count_recall.observation_space.shape == (4,) and count_recall.action_space == spaces.Discrete(27)


def test_popgym_is_imported_on_demand() -> None:
    pytest.importorskip("popgym")
    code = (
        "import sys\n"
        "from reflect.envs import make_single_env\n"
        "assert 'popgym' not in sys.modules\n"
        f"print(make_single_env({POPGYM_ID!r}).observation_space.shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(4,)"


def test_unknown_popgym_id_suggests_the_close_one() -> None:
    pytest.importorskip("popgym")
    with pytest.raises(UnknownEnvironmentError, match=r"did you mean 'popgym-RepeatPreviousEasy-v0'"):
        make_single_env("popgym-RepeatPreviousEasy-v9")


def test_missing_popgym_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "popgym", None)  # import popgym -> ModuleNotFoundError
    monkeypatch.delitem(gym.registry, POPGYM_ID, raising=False)
    with pytest.raises(EnvSetupError) as caught:
        make_single_env(POPGYM_ID)
    assert not isinstance(caught.value, UnknownEnvironmentError)
    assert MEMORY_EXTRA in str(caught.value) and "popgym" in str(caught.value)


def test_cli_trains_on_a_popgym_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("popgym")
    from reflect.cli import main

    run_dir = tmp_path / "popgym"
    argv = ["train", "--env", POPGYM_ID, "--total-steps", "2000", "--run-dir", str(run_dir), "--seed", "1"]
    fast = ["network.hidden=[16]", "train.eval_every=1000", "train.eval_episodes=1", "train.log_every=500",
            "train.checkpoint_every=1000"]
    assert main([*argv, *(arg for key in fast for arg in ("--set", key)), "--no-progress", "--quiet"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env"] == POPGYM_ID and summary["total_steps"] == 2000 and summary["seed"] == 1
    assert summary["final_eval_mean_return"] is not None
    assert (run_dir / "final_model.pt").is_file()
    assert f"{POPGYM_ID} seed 1: 2,000 steps" in capsys.readouterr().out
