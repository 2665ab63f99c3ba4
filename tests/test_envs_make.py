"""Building environments and checking spaces: ids, missing dependencies, seeding, space messages."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation, PassiveEnvChecker

from reflect.envs import (
    EnvSetupError,
    SpaceInfo,
    StreamVectorEnv,
    UnknownEnvironmentError,
    UnsupportedSpaceError,
    check_spaces,
    make_env,
    make_single_env,
)

LIST_IDS = 'python -c "import gymnasium; print(sorted(gymnasium.registry))"'


# ---- ids -----------------------------------------------------------------------------------------


def test_unknown_id_suggests_the_close_registered_id() -> None:
    with pytest.raises(UnknownEnvironmentError) as caught:
        make_single_env("CartPol-v1")
    message = str(caught.value)
    assert message.startswith("unknown environment 'CartPol-v1': did you mean 'CartPole-v1'")
    assert LIST_IDS in message
    assert "\n" not in message


def test_unknown_id_matching_ignores_case() -> None:
    with pytest.raises(UnknownEnvironmentError, match=r"did you mean 'CartPole-v1'"):
        make_single_env("cartpole-v1")


def test_unknown_id_with_nothing_close_says_how_to_list_ids() -> None:
    with pytest.raises(UnknownEnvironmentError) as caught:
        make_single_env("Qqqqzzzz-v9")
    assert str(caught.value) == f"unknown environment 'Qqqqzzzz-v9': list the registered ids with: {LIST_IDS}"


def test_unknown_namespace_is_named() -> None:
    with pytest.raises(UnknownEnvironmentError, match=r"no namespace 'NoSuchNamespace' is registered"):
        make_single_env("NoSuchNamespace/Game-v5")


def test_unknown_module_in_id_is_named() -> None:
    with pytest.raises(UnknownEnvironmentError, match=r"module 'no_such_module_xyz' cannot be found"):
        make_single_env("no_such_module_xyz:Game-v0")


def test_setup_errors_are_value_errors() -> None:
    assert issubclass(UnknownEnvironmentError, EnvSetupError)
    assert issubclass(UnsupportedSpaceError, EnvSetupError)
    assert issubclass(EnvSetupError, ValueError)


@pytest.mark.parametrize(
    ("env_id", "extra"),
    [("HalfCheetah-v5", "mujoco"), ("LunarLander-v3", "box2d"), ("CartPole-v1", "classic-control")],
)
def test_missing_optional_dependency_names_the_pip_extra(
    monkeypatch: pytest.MonkeyPatch, env_id: str, extra: str
) -> None:
    def missing(*args: object, **kwargs: object) -> gym.Env:
        raise gym.error.DependencyNotInstalled("Simulator is not installed")

    monkeypatch.setattr(gym, "make", missing)
    with pytest.raises(EnvSetupError) as caught:
        make_single_env(env_id)
    assert not isinstance(caught.value, UnknownEnvironmentError)
    assert f'pip install "gymnasium[{extra}]"' in str(caught.value)
    assert "Simulator is not installed" in str(caught.value)


def test_missing_module_while_building_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: object, **kwargs: object) -> gym.Env:
        raise ModuleNotFoundError("No module named 'imageio'", name="imageio")

    monkeypatch.setattr(gym, "make", missing)
    with pytest.raises(EnvSetupError, match=r'imageio.*pip install "gymnasium\[mujoco\]"'):
        make_single_env("Ant-v5")


# ---- building ------------------------------------------------------------------------------------


def test_make_single_env_skips_the_env_checker_and_passes_kwargs() -> None:
    env = make_single_env("CartPole-v1", max_episode_steps=7)
    chain = []
    wrapper = env
    while isinstance(wrapper, gym.Wrapper):
        chain.append(type(wrapper))
        wrapper = wrapper.env
    assert PassiveEnvChecker not in chain
    env.reset(seed=0)
    steps = 0
    truncated = terminated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(steps % 2)
        steps += 1
    assert (steps, truncated) == (7, True)


@pytest.mark.parametrize("num_envs", [0, -2, 1.5])
def test_make_env_rejects_bad_num_envs(num_envs: int) -> None:
    with pytest.raises(EnvSetupError, match=r"num_envs must be an integer >= 1"):
        make_env("CartPole-v1", num_envs=num_envs)


def test_make_env_builds_without_resetting_and_first_reset_uses_seed_plus_index() -> None:
    env = make_env("CartPole-v1", seed=11, num_envs=3)
    assert env.num_envs == 3
    with pytest.raises(EnvSetupError, match=r"before reset"):
        env.step(np.zeros(3, dtype=np.int64))
    obs, _ = env.reset()
    for i in range(3):
        expected, _ = gym.make("CartPole-v1").reset(seed=11 + i)
        np.testing.assert_array_equal(obs[i], expected)
    # Later resets without a seed continue the streams' generators instead of reseeding.
    again, _ = env.reset()
    assert not np.array_equal(again, obs)


def test_explicit_reset_seed_overrides_make_env_seed() -> None:
    env = make_env("CartPole-v1", seed=11, num_envs=2)
    obs, _ = env.reset(seed=40)
    for i in range(2):
        expected, _ = gym.make("CartPole-v1").reset(seed=40 + i)
        np.testing.assert_array_equal(obs[i], expected)


def test_unencoded_discrete_observations_are_rejected_with_the_helper_named() -> None:
    # make_env("FrozenLake-v1") encodes them now (tests/test_env_encoding.py); an env object is taken as it is
    with pytest.raises(UnsupportedSpaceError, match=r"observation space Discrete\(16\).*encode_observations"):
        StreamVectorEnv.from_envs([gym.make("FrozenLake-v1")])


def test_stream_vector_env_takes_flattened_discrete_observations() -> None:
    env = StreamVectorEnv.from_envs([FlattenObservation(make_single_env("FrozenLake-v1")) for _ in range(2)])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 16)
    np.testing.assert_array_equal(obs.sum(axis=1), [1, 1])  # one-hot start cells


# ---- spaces --------------------------------------------------------------------------------------


def test_check_spaces_discrete() -> None:
    env = gym.make("CartPole-v1")
    info = check_spaces(env.observation_space, env.action_space)
    assert info == SpaceInfo(
        obs_dim=4, action_kind="discrete", num_actions=2, action_low=None, action_high=None
    )


def test_check_spaces_box_action_only_when_asked() -> None:
    obs_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    act_space = spaces.Box(low, high, dtype=np.float32)
    with pytest.raises(UnsupportedSpaceError) as caught:
        check_spaces(obs_space, act_space)
    assert "supported action spaces are Discrete" in str(caught.value)
    info = check_spaces(obs_space, act_space, supported_actions=("Discrete", "Box"))
    assert (info.obs_dim, info.action_kind, info.num_actions) == (3, "box", 2)
    assert info.action_low is not None and info.action_high is not None
    assert info.action_low.dtype == np.float64
    np.testing.assert_array_equal(info.action_low, [-2.0, 0.0])
    np.testing.assert_array_equal(info.action_high, [2.0, 1.0])


def test_integer_box_observation_is_supported() -> None:
    info = check_spaces(spaces.Box(0, 255, (5,), np.uint8), spaces.Discrete(3))
    assert (info.obs_dim, info.num_actions) == (5, 3)


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        (spaces.Dict({"a": spaces.Box(-1, 1, (2,))}), "Dict("),
        (spaces.Box(0, 255, (84, 84, 3), np.uint8), "has 3 dimensions"),
        (spaces.Discrete(5), "Discrete(5)"),
        (spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))), "Tuple("),
    ],
)
def test_unsupported_observation_spaces_say_what_is_supported(space: spaces.Space, fragment: str) -> None:
    with pytest.raises(UnsupportedSpaceError) as caught:
        check_spaces(space, spaces.Discrete(2))
    message = str(caught.value)
    assert fragment in message
    assert "1-D Box" in message
    assert "gymnasium.wrappers.FlattenObservation" in message


def test_unsupported_action_space_lists_supported_ones() -> None:
    obs_space = spaces.Box(-1.0, 1.0, (3,))
    expected = r"MultiDiscrete.*supported action spaces are Discrete or Box$"
    with pytest.raises(UnsupportedSpaceError, match=expected):
        check_spaces(obs_space, spaces.MultiDiscrete([2, 3]), supported_actions=("Discrete", "Box"))
    with pytest.raises(UnsupportedSpaceError, match=r"has 2 dimensions: only a 1-D Box action"):
        check_spaces(obs_space, spaces.Box(-1, 1, (2, 2)), supported_actions=("Box",))


def test_discrete_action_with_offset_start_is_rejected() -> None:
    with pytest.raises(UnsupportedSpaceError, match=r"starts at 1: the learners emit actions 0..n-1"):
        check_spaces(spaces.Box(-1.0, 1.0, (3,)), spaces.Discrete(3, start=1))


def test_unknown_supported_action_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"supported_actions has unknown kinds \['MultiBinary'\]"):
        check_spaces(spaces.Box(-1.0, 1.0, (3,)), spaces.Discrete(2), supported_actions=("MultiBinary",))
