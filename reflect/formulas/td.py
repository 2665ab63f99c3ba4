"""The third factor of the REFLECT learner and the entropy bonus's weight, per stream (scalars)::

    TD error:         delta = r + gamma (1 - terminated) V(h_{t+1}) - V(h_t)
    reward baseline:  delta = r - rbar,   rbar <- rbar + rate * (mean_b r_b - rbar)
    entropy weight:   w = c * sign(delta)   (the score then follows log pi + w H)
    calm actor step:  ebar <- ebar + rate * (mean_b |delta_b| - ebar),
                      the actor's ObGD step sizes times s = max(floor, min(1, ebar / target))
                      (target 0: s = 1)
    entropy target:   c <- clip(c * exp(rate * (H_target - mean_b H_b)), C_MIN, C_MAX)
                      (the coefficient grows while the policy's entropy is below the target, and
                      shrinks while it is above; the automatic temperature of SAC, in log space)
"""

from __future__ import annotations

from reflect.formulas.ops import exp


def td_error(reward, terminated, gamma, next_value, value):
    """The reward prediction error of a critic; a terminated episode does not bootstrap."""
    return reward + (0.0 if terminated else gamma * next_value) - value


def baseline_update(baseline, rate, mean_reward):
    """The running reward mean after a step whose rewards average ``mean_reward``."""
    return baseline + rate * (mean_reward - baseline)


def entropy_weight(coefficient, delta):
    """``c * sign(delta)``."""
    return coefficient * (1.0 if delta > 0.0 else (-1.0 if delta < 0.0 else 0.0))


def td_average_update(average, rate, mean_abs_delta):
    """The running mean of ``|delta|`` after a step whose streams average ``mean_abs_delta``."""
    return average + rate * (mean_abs_delta - average)


CALM_FLOOR = 1e-6  # the smallest scale: a step never stops entirely (and kappa / scale stays finite)


def calm_step_scale(average, target, floor):
    """``max(floor, min(1, average / target))`` (at least ``CALM_FLOOR``): the actor's step shrinks with
    the critic's errors below ``target``, to no less than ``floor`` of itself (1 when ``target`` is 0:
    off)."""
    if target <= 0.0:
        return 1.0
    return max(min(1.0, average / target), floor, CALM_FLOOR)


ENTROPY_COEF_MIN = 1e-6  # an adapted coefficient never reaches 0 (it could not grow back from there)
ENTROPY_COEF_MAX = 1.0  # nor outweighs the log-prob score it is added to


def entropy_coef_clip(coefficient):
    """``coefficient`` in ``[ENTROPY_COEF_MIN, ENTROPY_COEF_MAX]``, the range an adapted one keeps."""
    return min(max(coefficient, ENTROPY_COEF_MIN), ENTROPY_COEF_MAX)


def entropy_coef_update(coefficient, rate, target, entropy):
    """``clip(c * exp(rate * (target - entropy)))``: one step of the entropy coefficient towards the value
    that keeps the policy's entropy (nats) at ``target``."""
    return entropy_coef_clip(coefficient * exp(rate * (target - entropy)))
