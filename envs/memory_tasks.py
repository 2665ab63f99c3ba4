"""Two memory tasks of the project's own: evidence accumulation and the delayed-cue T-maze.

Importing this module (``import reflect.envs`` does) registers them with Gymnasium:

- ``reflect/EvidenceAccumulation-v0``: :class:`EvidenceAccumulationEnv` ("Poisson clicks", the e-prop
  benchmark task): count the clicks on the left and on the right, wait, then name the side with more.
- ``reflect/TMaze-v0``: :class:`TMazeEnv` (Bakker 2002): a cue at the start of a corridor tells which
  way to turn at its end.

Both are built so that only memory solves them: the information needed at the decision is shown only
earlier in the episode, and the observations in between carry none of it.

Time limits: both ids are registered **without** ``max_episode_steps``, and each environment ends its
episodes itself. ``gymnasium.make`` wraps an environment in a ``TimeLimit`` of the *registered* number of
steps whatever keyword arguments it is given, so a limit registered for the default ``delay`` (or
``length``) would cut short the longer episodes of ``gymnasium.make(id, delay=40)``. Instead:

- an evidence-accumulation episode always terminates at its decision step, after exactly
  ``cue_steps + delay + 1`` steps (31 with the defaults); it needs no time limit;
- a T-maze episode that has not ended after ``4 * (length + 1)`` steps (44 with the defaults) is
  truncated by the environment (``truncated=True``), as a ``TimeLimit`` of that many steps would do.

``gymnasium.make(id, max_episode_steps=n)`` still adds a ``TimeLimit`` of ``n`` steps on top, if wanted.

All episode state is kept in numeric attributes (ints, bools, numpy arrays), so
:func:`reflect.envs.snapshot.capture_env_state` captures it whole.
"""

from __future__ import annotations

import math
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

__all__ = [
    "EVIDENCE_ACCUMULATION_ID",
    "TMAZE_ID",
    "EvidenceAccumulationEnv",
    "TMazeEnv",
]

EVIDENCE_ACCUMULATION_ID = "reflect/EvidenceAccumulation-v0"
TMAZE_ID = "reflect/TMaze-v0"

ObsType = NDArray[np.float32]
ActType = int | np.integer


def _check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` if it is an integer >= ``minimum`` (not a bool), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_probability(name: str, value: Any) -> float:
    """``value`` as a ``float`` if it is a real number in [0, 1], else a ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not math.isfinite(float(value))
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode is not None:
        raise ValueError(
            f"render_mode must be None (this environment has no render modes), got {render_mode!r}"
        )


def _check_action(action: ActType, meaning: str) -> int:
    """``action`` (a Python or numpy integer, or a 0-d integer array) as an ``int``, else a ValueError."""
    if isinstance(action, np.ndarray) and action.shape == () and np.issubdtype(action.dtype, np.integer):
        return int(action)
    if isinstance(action, bool | np.bool_) or not isinstance(action, int | np.integer):
        raise ValueError(f"action must be an integer ({meaning}), got {action!r}")
    return int(action)


class EvidenceAccumulationEnv(gym.Env[ObsType, ActType]):
    """Evidence accumulation ("Poisson clicks"): report the side that clicked more, after a delay.

    An episode has ``cue_steps + delay + 1`` steps: a cue period of ``cue_steps`` steps, a delay of
    ``delay`` steps, then one decision step. One side, drawn uniformly at random each episode, is the rich
    side. In each step of the cue period the left click is 1 with probability ``rate_rich`` if left is the
    rich side, else ``rate_poor``, and the right click likewise, independently. The correct answer is the
    side with more clicks over the whole cue period (usually, not always, the rich side); if the counts
    tie, all the clicks of the episode are drawn again, so there always is a correct answer.

    Observation (float32 ``Box(0, 1, (4,))``), ``[left click, right click, cue period, go cue]``; for
    step ``t = 0 .. cue_steps + delay`` of an episode (``t = 0`` is the observation from :meth:`reset`):

    - cue period, ``t < cue_steps``: ``[left click at t, right click at t, 1, 0]``;
    - delay, ``cue_steps <= t < cue_steps + delay``: ``[0, 0, 0, 0]``;
    - decision, ``t = cue_steps + delay``: ``[0, 0, 0, 1]`` (the go cue: the next action is the answer).

    The observation returned with the final step is ``[0, 0, 0, 0]``.

    Actions: ``Discrete(2)``, 0 = left, 1 = right. Actions before the decision step are ignored (reward
    0). The action taken at the decision step is the answer: reward 1.0 if it names the correct side,
    else 0.0, and the episode terminates; its ``info`` is ``{"correct": bool, "left_clicks": int,
    "right_clicks": int}``. The return of an episode is thus 1 for a correct answer and 0 for a wrong one:
    the mean return is the fraction of correct answers. Chance level is 0.5 (a policy that does not
    remember the clicks); counting the clicks scores 1.0.

    Arguments (all checked, a ValueError names a bad one): ``cue_steps`` (integer >= 1, default 10),
    ``delay`` (integer >= 0, default 20), ``rate_rich`` and ``rate_poor`` (probabilities in [0, 1] with
    ``rate_rich > rate_poor``; defaults 0.5 and 0.1), ``render_mode`` (must be None: nothing renders).

    Episodes terminate by themselves at the decision step, so the id is registered without a time limit
    (see the module docstring): ``gymnasium.make(id, delay=40)`` has episodes of exactly 51 steps.
    Randomness comes only from ``self.np_random``, seeded by ``reset(seed=...)``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gym.make reads it from the class)

    def __init__(
        self,
        cue_steps: int = 10,
        delay: int = 20,
        rate_rich: float = 0.5,
        rate_poor: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        _check_render_mode(render_mode)
        self.cue_steps = _check_int("cue_steps", cue_steps, 1)
        self.delay = _check_int("delay", delay, 0)
        self.rate_rich = _check_probability("rate_rich", rate_rich)
        self.rate_poor = _check_probability("rate_poor", rate_poor)
        if not self.rate_rich > self.rate_poor:
            raise ValueError(
                f"rate_rich must be greater than rate_poor (the rich side clicks more often), got "
                f"rate_rich={rate_rich!r} and rate_poor={rate_poor!r}"
            )
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        # Episode state (numeric only, see the module docstring).
        self._clicks = np.zeros((self.cue_steps, 2), dtype=np.int8)  # [step, (left, right)]
        self._correct_side = 0
        self._t = 0  # index of the observation the agent is acting on
        self._needs_reset = True

    @property
    def episode_steps(self) -> int:
        """Number of steps in every episode: ``cue_steps + delay + 1``."""
        return self.cue_steps + self.delay + 1

    def _draw_clicks(self) -> None:
        rich_side = int(self.np_random.integers(2))
        rates = np.full(2, self.rate_poor)
        rates[rich_side] = self.rate_rich
        while True:  # rate_rich > rate_poor, so a draw without a tie has a probability > 0
            clicks = (self.np_random.random((self.cue_steps, 2)) < rates).astype(np.int8)
            left, right = (int(count) for count in clicks.sum(axis=0))
            if left != right:
                break
        self._clicks = clicks
        self._correct_side = 0 if left > right else 1

    def _observation(self) -> ObsType:
        obs = np.zeros(4, dtype=np.float32)
        if self._t < self.cue_steps:
            obs[:2] = self._clicks[self._t]
            obs[2] = 1.0
        elif self._t == self.cue_steps + self.delay:
            obs[3] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start an episode: draw the rich side and the clicks; return the first observation and ``{}``."""
        super().reset(seed=seed)
        self._draw_clicks()
        self._t = 0
        self._needs_reset = False
        return self._observation(), {}

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Advance one step; at the decision step score ``action`` and terminate."""
        if self._needs_reset:
            raise RuntimeError("the episode has ended or not started: call reset() before step()")
        choice = _check_action(action, "0 = left, 1 = right")
        if choice not in (0, 1):
            raise ValueError(f"action must be 0 (left) or 1 (right), got {action!r}")
        if self._t < self.cue_steps + self.delay:
            self._t += 1
            return self._observation(), 0.0, False, False, {}
        self._needs_reset = True
        self._t += 1
        left, right = (int(count) for count in self._clicks.sum(axis=0))
        correct = choice == self._correct_side
        info = {"correct": correct, "left_clicks": left, "right_clicks": right}
        return np.zeros(4, dtype=np.float32), 1.0 if correct else 0.0, True, False, info


class TMazeEnv(gym.Env[ObsType, ActType]):
    """Delayed-cue T-maze (Bakker 2002): remember the cue from the start of a corridor, turn to it at the end.

    The maze is a corridor of ``length`` cells (positions ``0 .. length-1``) followed by a junction
    (position ``length``). The agent starts at position 0. A cue, up or down (drawn uniformly at random
    each episode), is shown in the first observation of the episode only, and never again (not even if
    the agent bumps and so stays at position 0).

    Observation (float32 ``Box(0, 1, (4,))``), ``[cue up, cue down, in the corridor, at the junction]``:

    - first observation of the episode (position 0): ``[1, 0, 1, 0]`` (cue up) or ``[0, 1, 1, 0]`` (down);
    - any later step in the corridor (positions ``0 .. length-1``): ``[0, 0, 1, 0]``;
    - at the junction (position ``length``): ``[0, 0, 0, 1]``.

    Apart from the first one, the observations are the same for both cues: the cue must be remembered.
    The observation returned with the final, terminating step is ``[0, 0, 0, 0]``.

    Actions: ``Discrete(3)``, 0 = move forward, 1 = turn up, 2 = turn down.

    - In the corridor: moving forward advances one cell, reward 0; turning is a bump: the agent stays
      where it is and gets reward -0.1.
    - At the junction: moving forward is a bump (stay, reward -0.1); turning ends the episode
      (``terminated=True``) with reward 1.0 toward the cued side and 0.0 toward the other. Its ``info``
      is ``{"correct": bool}``.

    The fastest episode, ``length`` moves forward then a turn, takes ``length + 1`` steps and returns 1.0
    with the right turn. Chance level is 0.5: the return of walking straight to the junction and turning
    without remembering the cue (bumps only lower the return).

    An episode that has not ended after ``4 * (length + 1)`` steps is truncated (``truncated=True``) by
    the environment itself, so the id is registered without a time limit (see the module docstring):
    ``gymnasium.make(id, length=50)`` truncates at 204 steps, not at the 44 of the default length.

    Arguments: ``length`` (integer >= 1, default 10; a ValueError names a bad value), ``render_mode``
    (must be None: nothing renders). Randomness comes only from ``self.np_random``, seeded by
    ``reset(seed=...)``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gym.make reads it from the class)

    FORWARD, UP, DOWN = 0, 1, 2
    BUMP_REWARD = -0.1

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        _check_render_mode(render_mode)
        self.length = _check_int("length", length, 1)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        # Episode state (numeric only, see the module docstring).
        self._cue = self.UP  # the correct turn: UP or DOWN
        self._position = 0
        self._steps = 0
        self._needs_reset = True

    @property
    def max_steps(self) -> int:
        """Steps after which an unfinished episode is truncated: ``4 * (length + 1)``."""
        return 4 * (self.length + 1)

    def _observation(self) -> ObsType:
        obs = np.zeros(4, dtype=np.float32)
        if self._position == self.length:
            obs[3] = 1.0
            return obs
        obs[2] = 1.0
        if self._steps == 0:
            obs[0 if self._cue == self.UP else 1] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start an episode at position 0 with a new cue; return the first observation and ``{}``."""
        super().reset(seed=seed)
        self._cue = self.UP if int(self.np_random.integers(2)) == 0 else self.DOWN
        self._position = 0
        self._steps = 0
        self._needs_reset = False
        return self._observation(), {}

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Move or turn (see the class docstring); truncate after ``max_steps`` steps."""
        if self._needs_reset:
            raise RuntimeError("the episode has ended or not started: call reset() before step()")
        move = _check_action(action, "0 = forward, 1 = up, 2 = down")
        if move not in (self.FORWARD, self.UP, self.DOWN):
            raise ValueError(f"action must be 0 (forward), 1 (turn up) or 2 (turn down), got {action!r}")
        self._steps += 1
        at_junction = self._position == self.length
        if at_junction and move != self.FORWARD:
            self._needs_reset = True
            correct = move == self._cue
            return np.zeros(4, dtype=np.float32), 1.0 if correct else 0.0, True, False, {"correct": correct}
        if at_junction or move != self.FORWARD:
            reward = self.BUMP_REWARD
        else:
            self._position += 1
            reward = 0.0
        truncated = self._steps >= self.max_steps
        self._needs_reset = truncated
        return self._observation(), reward, False, truncated, {}


if EVIDENCE_ACCUMULATION_ID not in gym.registry:
    gym.register(
        id=EVIDENCE_ACCUMULATION_ID,
        entry_point="reflect.envs.memory_tasks:EvidenceAccumulationEnv",
        reward_threshold=0.9,
    )
if TMAZE_ID not in gym.registry:
    gym.register(id=TMAZE_ID, entry_point="reflect.envs.memory_tasks:TMazeEnv", reward_threshold=0.9)
