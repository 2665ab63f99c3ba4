"""reflect.envs.change_body: a MuJoCo robot changed in place, and the errors for bad requests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reflect.envs import change_body, make_single_env

pytest.importorskip("mujoco")


def _fall_time(env: Any, action: float) -> int:
    """Steps until a constant push topples InvertedPendulum's pole (fixed start)."""
    env.reset(seed=3)
    for step in range(1, 1001):
        _, _, terminated, truncated, _ = env.step(np.array([action]))
        if terminated or truncated:
            return step
    return 1000


def test_gear_cut_scales_the_actuator_and_weakens_the_push() -> None:
    env = make_single_env("InvertedPendulum-v5")
    gear = float(env.unwrapped.model.actuator_gear[0, 0])
    fast = _fall_time(env, 3.0)
    assert change_body(env, "gear", 0.05) == f"motor gear {gear:g} -> {gear * 0.05:g}"
    assert env.unwrapped.model.actuator_gear[0, 0] == pytest.approx(gear * 0.05)
    slow = _fall_time(env, 3.0)
    assert slow > fast  # the same full push now moves the cart less, so the pole falls later
    env.close()


def test_mass_change_scales_the_last_body() -> None:
    env = make_single_env("InvertedPendulum-v5")
    model = env.unwrapped.model
    before = float(model.body_mass[model.nbody - 1])
    message = change_body(env, "mass", 20.0)
    assert model.body_mass[model.nbody - 1] == pytest.approx(before * 20.0)
    assert message.startswith(f"mass of body '{model.body(model.nbody - 1).name}'")
    env.close()


@pytest.mark.parametrize(
    ("env_id", "what", "factor", "match"),
    [
        ("InvertedPendulum-v5", "friction", 0.5, "unknown body change 'friction': pass one of gear, mass"),
        ("InvertedPendulum-v5", "gear", 0.0, "positive finite number, got 0.0"),
        ("InvertedPendulum-v5", "gear", float("nan"), "positive finite number, got nan"),
        ("CartPole-v1", "gear", 0.5, "CartPoleEnv has no MuJoCo model to change: pass a MuJoCo env"),
    ],
)
def test_bad_requests_name_the_problem(env_id: str, what: str, factor: float, match: str) -> None:
    env = make_single_env(env_id)
    with pytest.raises(ValueError, match=match):
        change_body(env, what, factor)
    env.close()
