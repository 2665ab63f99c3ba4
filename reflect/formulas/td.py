"""The third factor of the REFLECT learner and the entropy bonus's weight, per stream (scalars)::

    TD error:         delta = r + gamma (1 - terminated) V(h_{t+1}) - V(h_t)
    reward baseline:  delta = r - rbar,   rbar <- rbar + rate * (mean_b r_b - rbar)
    entropy weight:   w = c * sign(delta)   (the score then follows log pi + w H)
"""

from __future__ import annotations


def td_error(reward, terminated, gamma, next_value, value):
    """The reward prediction error of a critic; a terminated episode does not bootstrap."""
    return reward + (0.0 if terminated else gamma * next_value) - value


def baseline_update(baseline, rate, mean_reward):
    """The running reward mean after a step whose rewards average ``mean_reward``."""
    return baseline + rate * (mean_reward - baseline)


def entropy_weight(coefficient, delta):
    """``c * sign(delta)``."""
    return coefficient * (1.0 if delta > 0.0 else (-1.0 if delta < 0.0 else 0.0))
