"""A Gymnasium environment behind a control loop's callables (``reflect run``, simulators).

``apply_action`` steps the environment (so the simulator's own time is part of each tick),
``read_observation`` returns the observation that step (or the last reset) produced, ``reward_fn``
returns that step's ``(reward, terminated, truncated)``, and ``reset`` starts the next episode::

    control = GymControl(gymnasium.make("InvertedPendulum-v5"), seed=0)
    loop = control.control_loop(agent, rate_hz=500, learn=True)
    report = loop.run(duration_s=60)

The loop runs ``"act-first"``: the environment steps inside ``apply_action``, so the observation read
right after it is the one that action produced.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reflect.agents.reflect_agent import SUPPORTED_ACTIONS
from reflect.envs import check_spaces
from reflect.runtime.loop import ControlLoop

__all__ = ["GymControl"]


class GymControl:
    """Drive a (non-vector) Gymnasium ``env``: reset now (with ``seed``), then step it from a loop."""

    def __init__(self, env: Any, *, seed: int | None = None) -> None:
        if not hasattr(env, "step") or not hasattr(env, "reset"):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        if hasattr(env, "num_envs"):
            raise TypeError("GymControl drives one environment: pass a gymnasium.Env, not a vector env")
        self.env = env
        self.spaces = check_spaces(env.observation_space, env.action_space, SUPPORTED_ACTIONS)
        self._obs, _ = env.reset(seed=seed)
        self._reward, self._terminated, self._truncated = 0.0, False, False

    def read_observation(self) -> Any:
        """The observation of the last step or reset."""
        return self._obs

    def apply_action(self, action: Any) -> None:
        """One ``env.step(action)``."""
        self._obs, self._reward, self._terminated, self._truncated, _ = self.env.step(action)

    def reward_fn(self, obs: Any, action: Any, next_obs: Any) -> tuple[float, bool, bool]:
        """The last step's ``(reward, terminated, truncated)``."""
        return float(self._reward), bool(self._terminated), bool(self._truncated)

    def reset(self) -> Any:
        """Start the next episode (the environment's own random stream continues)."""
        self._obs, _ = self.env.reset()
        return self._obs

    def check_agent(self, agent: Any) -> None:
        """ValueError unless ``agent`` was built for this environment's spaces."""
        mine, theirs = self.spaces, agent.spaces
        if mine.obs_dim != theirs.obs_dim:
            raise ValueError(
                f"the environment's observations have {mine.obs_dim} numbers, the agent's {theirs.obs_dim}: "
                "use an agent trained on this environment"
            )
        if (mine.action_kind, mine.num_actions) != (theirs.action_kind, theirs.num_actions):
            raise ValueError(
                f"the environment takes {mine.action_kind} actions of size {mine.num_actions}, the agent "
                f"emits {theirs.action_kind} actions of size {theirs.num_actions}: use an agent trained on "
                "this environment"
            )
        same_bounds = mine.action_kind != "box" or (
            np.allclose(mine.action_low, theirs.action_low)
            and np.allclose(mine.action_high, theirs.action_high)
        )
        if not same_bounds:
            raise ValueError(
                f"the environment's action bounds [{mine.action_low}, {mine.action_high}] differ from the "
                f"agent's [{theirs.action_low}, {theirs.action_high}]: use an agent trained on this "
                "environment"
            )

    def control_loop(self, agent: Any, *, rate_hz: float, **loop_options: Any) -> ControlLoop:
        """A :class:`ControlLoop` of ``agent`` on this environment (``loop_options`` as for it)."""
        self.check_agent(agent)
        return ControlLoop(
            agent,
            self.read_observation,
            self.apply_action,
            self.reward_fn,
            rate_hz=rate_hz,
            reset_fn=self.reset,
            **loop_options,
        )

    def close(self) -> None:
        self.env.close()
