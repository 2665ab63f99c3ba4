"""Bad rates, missing or non-callable callables, wrongly shaped actions or observations: clear errors."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from tasks import DelayedMatchEnv

from reflect.agents import Reflect
from reflect.runtime import ControlLoop, FakeClock, GymControl, RealClock

SMALL = {"network": {"hidden": [16]}}


@pytest.fixture(scope="module")
def agent() -> Reflect:
    return Reflect(DelayedMatchEnv(), SMALL, seed=0)


def noop(*_: Any) -> None:
    return None


def zeros() -> np.ndarray:
    return np.zeros(3)


def reward(*_: Any) -> float:
    return 0.0


@pytest.mark.parametrize("rate", [0, -5, 0.0, float("nan"), float("inf"), 1e6, 10_001, "500", True, None])
def test_a_bad_rate_names_the_range(agent: Reflect, rate: Any) -> None:
    with pytest.raises(ValueError, match=r"rate_hz must be .*100-1000 Hz"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=rate)


def test_rates_in_range_are_accepted(agent: Reflect) -> None:
    for rate in (0.5, 100, 500, 1000, 10_000, np.float32(250)):
        assert ControlLoop(agent, zeros, noop, reward, rate_hz=rate).rate_hz == float(rate)


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        ((None, noop, reward), {}, "read_observation is missing"),
        ((zeros, None, reward), {}, "apply_action is missing"),
        ((zeros, "motor", reward), {}, "apply_action must be callable, got str"),
        ((np.zeros(3), noop, reward), {}, "read_observation must be callable, got ndarray"),
        ((zeros, noop, None), {}, "reward_fn is missing: a learning loop needs reward_fn"),
        ((zeros, noop, 1.0), {}, "reward_fn must be callable"),
        ((zeros, noop, reward), {"reset_fn": 3}, "reset_fn must be callable"),
        ((zeros, noop, reward), {"on_tick": "print"}, "on_tick must be callable"),
        ((zeros, noop, reward), {"clock": object()}, "clock must have now_ns"),
    ],
)
def test_a_missing_or_non_callable_callable_is_named(
    agent: Reflect, args: tuple[Any, ...], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        ControlLoop(agent, *args, rate_hz=500, **options)


def test_frozen_loops_need_no_reward_fn(agent: Reflect) -> None:
    ControlLoop(agent, zeros, noop, rate_hz=500, learn=False)


def test_an_action_shape_the_agent_cannot_produce_is_refused_up_front(agent: Reflect) -> None:
    with pytest.raises(ValueError, match=r"apply_action expects actions of shape \(2,\), but the agent's "
                                         r"actions have shape \(\) \(an int in \[0, 2\)\)"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=500, action_shape=(2,))
    ControlLoop(agent, zeros, noop, reward, rate_hz=500, action_shape=())
    box = Reflect("Pendulum-v1", SMALL, seed=0)
    ControlLoop(box, lambda: np.zeros(3), noop, reward, rate_hz=500, action_shape=1)
    with pytest.raises(ValueError, match=r"expects actions of shape \(3,\).*shape \(1,\) \(a float32 array"):
        ControlLoop(box, lambda: np.zeros(3), noop, reward, rate_hz=500, action_shape=(3,))


class WrongActions:
    """An agent whose act returns a 3-vector for a Discrete space (a buggy custom agent)."""

    def __init__(self, agent: Reflect) -> None:
        self._agent = agent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agent, name)

    def act(self, obs: Any) -> Any:
        self._agent.act(obs)
        return np.zeros(3, dtype=np.float32)


def test_a_wrongly_shaped_action_is_caught_on_the_first_tick_before_it_is_applied() -> None:
    applied: list[Any] = []
    loop = ControlLoop(WrongActions(Reflect(DelayedMatchEnv(), SMALL, seed=0)), zeros, applied.append, reward,
                       rate_hz=500, clock=FakeClock())
    with pytest.raises(ValueError, match=r"the agent returned an action of shape \(3,\), but apply_action "
                                         r"expects \(\)"):
        loop.run(steps=5)
    assert applied == []


@pytest.mark.parametrize("ordering", ["act-first", "sense-first"])
def test_a_wrongly_shaped_observation_names_its_source(ordering: str) -> None:
    agent = Reflect(DelayedMatchEnv(), SMALL, seed=0)
    loop = ControlLoop(agent, lambda: [0.0, 1.0], noop, reward, rate_hz=500, clock=FakeClock(),
                       ordering=ordering)
    with pytest.raises(ValueError, match=r"read_observation\(\) returned an observation of shape \(2,\), "
                                         r"but the agent expects \(3,\) \(obs_dim 3\)"):
        loop.run(steps=5)
    loop = ControlLoop(agent, zeros, noop, lambda *_: (1.0, True, False), reset_fn=lambda: np.zeros(4),
                       rate_hz=500, clock=FakeClock())
    with pytest.raises(ValueError, match=r"reset_fn\(\) returned an observation of shape \(4,\)"):
        loop.run(steps=5)


@pytest.mark.parametrize(
    ("returned", "message"),
    [((1.0, False), "tuple of 2 items"), ("good", "reward of type str"), (None, "reward of type NoneType")],
)
def test_a_bad_reward_fn_result_is_explained(returned: Any, message: str) -> None:
    agent = Reflect(DelayedMatchEnv(), SMALL, seed=0)
    loop = ControlLoop(agent, zeros, noop, lambda *_: returned, rate_hz=500, clock=FakeClock())
    with pytest.raises(ValueError, match=message):
        loop.run(steps=3)


def test_other_bad_settings(agent: Reflect, tmp_path: Any) -> None:
    two = Reflect("CartPole-v1", {**SMALL, "train": {"num_envs": 2}}, seed=0)
    with pytest.raises(ValueError, match=r"drives one stream, but the agent has 2 \(train.num_envs=2\)"
                                         r".*Reflect.load\(path, env="):
        ControlLoop(two, zeros, noop, reward, rate_hz=500)
    with pytest.raises(TypeError, match="agent has no act"):
        ControlLoop(object(), zeros, noop, reward, rate_hz=500)
    with pytest.raises(ValueError, match="need a checkpoint_path"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=500, checkpoint_every_s=1.0)
    with pytest.raises(ValueError, match="not both"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=500, checkpoint_path=tmp_path / "a.pt",
                    checkpoint_every_s=1.0, checkpoint_every_steps=10)
    with pytest.raises(ValueError, match="checkpoint_every_s must be"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=500, checkpoint_path=tmp_path / "a.pt",
                    checkpoint_every_s=0)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=500, checkpoint_path=tmp_path / "folder.pt")
    with pytest.raises(ValueError, match="ordering must be one of"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=500, ordering="fast")
    with pytest.raises(ValueError, match="real-time priority must be an integer in"):
        ControlLoop(agent, zeros, noop, reward, rate_hz=500, realtime_priority=0)
    with pytest.raises(ValueError, match="spin_us"):
        RealClock(spin_us=-1)
    loop = ControlLoop(agent, zeros, noop, reward, rate_hz=500, clock=FakeClock())
    for kwargs, message in [
        ({"duration_s": 0}, "duration_s must be"),
        ({"duration_s": float("nan")}, "duration_s must be"),
        ({"steps": 0}, "steps must be"),
        ({"steps": 2.5}, "steps must be"),
        ({"duration_s": 1.0, "steps": 10}, "not both"),
    ]:
        with pytest.raises(ValueError, match=message):
            loop.run(**kwargs)


def test_the_gym_adapter_refuses_an_agent_of_other_spaces() -> None:
    cartpole = Reflect("CartPole-v1", SMALL, seed=0)
    with pytest.raises(ValueError, match="observations have 3 numbers, the agent's 4"):
        GymControl(DelayedMatchEnv(), seed=0).control_loop(cartpole, rate_hz=500)
    with pytest.raises(ValueError, match="takes box actions of size 1, the agent emits discrete actions of"):
        GymControl(gym.make("MountainCarContinuous-v0"), seed=0).control_loop(
            Reflect("MountainCar-v0", SMALL, seed=0), rate_hz=500
        )
    with pytest.raises(TypeError, match="not a vector env"):
        GymControl(gym.make_vec("CartPole-v1", num_envs=2))
