"""The squashed Gaussian policy head, per action dimension (element-wise).

The readout gives the mean ``mu``; ``sigma = exp(log_std)``. The head draws a pre-squash action
``u = mu + sigma * eps``, which is what the learner scores, and maps it into the dimension's bounds
(``c = (high + low) / 2``, ``s = (high - low) / 2``; unbounded dimensions: ``a = u``)::

    tanh:  a = c + s * tanh(u)           clip:  a = c + s * clip(u, -1, 1)
    d log pi / d mu       = (u - mu) / sigma^2
    d/d log_std [log pi + w H] = (u - mu)^2 / sigma^2 - 1 + w
    H = sum_a (log_std_a + log(2 pi e) / 2)      (the pre-squash Gaussian's entropy, nats)

The noise ``eps`` is white (``eps_t ~ N(0, 1)``, independent) or, with a correlation ``beta`` in
``(0, 1)``, an order-1 autoregressive (discrete Ornstein-Uhlenbeck) process per stream and dimension::

    eps_t = beta * eps_{t-1} + sqrt(1 - beta^2) * xi_t,      xi_t ~ N(0, 1)

Each ``eps_t`` is still ``N(0, 1)``, so the step's score above is the one of its marginal Gaussian (as
gSDE's resampling every few steps is scored); successive actions push the same way for about
``1 / (1 - beta)`` steps, which lets exploration pump energy into a system (a pendulum's swing-up) that
white noise averages away. With a calm target ``T > 0`` the correlation follows the critic's running mean
``|delta|`` (``ebar``, the statistic of the calm actor step, :mod:`reflect.formulas.td`)::

    beta_t = beta * min(1, ebar / T)

so the noise turns white as the critic's errors fall below ``T`` (the task is learned: long pushes only
cost return) and correlated again when they grow (the task changed: explore).

A draw is *saturated* when its squashed action lies within 4% of the bound (``|tanh(u)| > 0.96``): the
learner's readout decay watches the running share of saturated draws (:mod:`reflect.learning.learner`).
"""

from __future__ import annotations

import math

from reflect.formulas.ops import clip, exp, sqrt, tanh
from reflect.formulas.td import calm_step_scale

HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)
TANH, CLIP = 0, 1
SQUASH_CODES = {"tanh": TANH, "clip": CLIP}
SATURATED = 0.96  # a squashed action within 4% of its bound counts as saturated
SATURATED_TANH_U = math.atanh(SATURATED)


def pre_squash(mu, std, noise):
    """``u = mu + sigma * eps`` (``noise = eps``)."""
    return mu + std * noise


def correlated_noise(previous, fresh, correlation):
    """``eps_t = beta * eps_{t-1} + sqrt(1 - beta^2) * xi_t`` (``previous = eps_{t-1}``, ``fresh = xi_t``,
    ``correlation = beta``; ``beta = 0``: white noise)."""
    return correlation * previous + sqrt(1.0 - correlation * correlation) * fresh


def calm_correlation(correlation, td_average, target):
    """``beta * min(1, ebar / T)`` (``correlation = beta``, ``td_average = ebar``, ``target = T``; ``T = 0``:
    ``beta`` itself)."""
    return correlation * calm_step_scale(td_average, target, 0.0)


def squash(u, center, scale, squash_code):
    """The action in the bounds of a bounded dimension."""
    return center + scale * (tanh(u) if squash_code == TANH else clip(u, -1.0, 1.0))


def saturated(u, squash_code):
    """Whether the squashed action lies within 4% of its bound: ``|tanh(u)| > 0.96`` (tanh) or
    ``|u| > 0.96`` (clip)."""
    return abs(u) > (SATURATED_TANH_U if squash_code == TANH else SATURATED)


def mean_score(u, mu, inv_var):
    """``d log pi / d mu``."""
    return (u - mu) * inv_var


def log_std_score(u, mu, inv_var, weight):
    """``d/d log_std [log pi + w H]``."""
    diff = u - mu
    return diff * diff * inv_var - 1.0 + weight


def spread(log_std):
    """``(sigma, 1 / sigma^2)`` of a (clipped) ``log_std``."""
    return exp(log_std), exp(log_std * -2.0)


def dimension_entropy(log_std):
    """One dimension's share of ``H``: ``log_std + log(2 pi e) / 2``."""
    return log_std + HALF_LOG_2PI_E
