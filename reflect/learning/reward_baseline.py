"""The REFLECT reward-baseline learner: no critic, the third factor is the reward minus its running mean
(what traceTorch's REFLECT loss does)::

    delta_b = r_b - rbar,      rbar <- rbar + rate * (mean_b r_b - rbar)

Template functions bound into :mod:`reflect.kernels.reflect_step` (compiled or interpreted).
"""

from __future__ import annotations

import math

from reflect.formulas.td import baseline_update
from reflect.kernels.reflect_step import (
    BAD_DELTA,
    BAD_OBSERVATION,
    BASELINE,
    BASELINE_RATE,
    CRITIC_INPUT,
    DELTA,
    NUMBERS,
    OK,
    RAW,
    REWARD,
)
from reflect.kernels.specialize import placeholder
from reflect.learning.learner import ReflectLearner, register_learner

TEMPLATE = ("third_factor_act", "third_factor_signal", "third_factor_learn", "third_factor_reset")
INLINE = TEMPLATE  # into the REFLECT step (compiles faster than separate functions)


prepare_input = placeholder  # bound (see reflect.kernels.reflect_step)


def third_factor_act(critic, critic_traces, io):
    """Nothing to do at an episode's first step."""


def third_factor_signal(norm, critic, critic_traces, io, settings):
    if not prepare_input(norm, io[RAW], io[CRITIC_INPUT], False):  # refuses NaN and inf
        return BAD_OBSERVATION
    numbers = io[NUMBERS]
    reward, delta, baseline = numbers[REWARD], numbers[DELTA], numbers[BASELINE]
    total = 0.0
    for b in range(delta.shape[0]):
        delta[b] = reward[b] - baseline[0]
        if not math.isfinite(delta[b]):
            return BAD_DELTA
        total += reward[b]
    baseline[0] = baseline_update(baseline[0], settings[BASELINE_RATE], total / delta.shape[0])
    return OK


def third_factor_learn(critic_traces, io, settings, sums):
    return OK


def third_factor_reset(critic, critic_traces, io, done):
    """No state of its own to restart."""


class RewardBaselineLearner(ReflectLearner):
    """REFLECT without a critic (``learner.third_factor: reward-baseline``)."""

    third_factor = "reward-baseline"
    uses_critic = False
    template = __name__


register_learner(RewardBaselineLearner)
