"""The Gaussian policy head's per-step math as single compiled calls (see :mod:`reflect.learning.heads`).

For readout means ``mu`` ``[B, A]`` (the network's dtype), pre-squash actions ``u`` (float64),
``sigma = exp(log_std)``::

    sample:  u = eps * sigma + mu               (eps drawn by the head's numpy Generator beforehand)
    to_env:  a = u                              where the dimension is unbounded,
             a = c + s * tanh(u)  or  c + s * clip(u, -1, 1)  elsewhere;   rounded to float32
    score:   d log pi / d mu = (u - mu) / sigma^2               (rounded to the signal's dtype)
             d/d log_std [log pi + w H] = (u - mu)^2 / sigma^2 - 1 + w
    refresh: log_std <- clip(log_std, lo, hi),  sigma = exp(log_std),  1 / sigma^2 = exp(-2 log_std)

The same operations in the same order as the numpy path; ``tanh`` and ``exp`` come from the C library
here and may differ from numpy's vectorised versions in the last bit.
"""

from __future__ import annotations

import math

import numpy as np

from reflect.kernels import jit

SQUASH_CODES = {"tanh": 0, "clip": 1}


@jit
def _sample_to_env(out, raw, std, center, scale, bounded, squash, env, deterministic):
    batch, dims = raw.shape
    for b in range(batch):
        for a in range(dims):
            u = out[b, a] + 0.0 if deterministic else raw[b, a] * std[a] + out[b, a]
            raw[b, a] = u
            if bounded[a]:
                w = math.tanh(u) if squash == 0 else max(min(u, 1.0), -1.0)
                env[b, a] = w * scale[a] + center[a]
            else:
                env[b, a] = u


@jit
def _score(out, actions, inv_var, entropy_weight, signal, grad, learn_log_std):
    batch, dims = actions.shape
    for b in range(batch):
        for a in range(dims):
            diff = actions[b, a] - out[b, a]
            signal[b, a] = diff * inv_var[a]
            if learn_log_std:
                grad[b, a] = diff * diff * inv_var[a] - 1.0 + entropy_weight[b]


@jit
def _refresh(log_std, low, high, std, inv_var):
    for a in range(log_std.shape[0]):
        value = min(max(log_std[a], low), high)
        log_std[a] = value
        std[a] = math.exp(value)
        inv_var[a] = math.exp(value * -2.0)


def sample_to_env(out: np.ndarray, raw: np.ndarray, std: np.ndarray, center: np.ndarray,
                  scale: np.ndarray, bounded: np.ndarray, squash: int, env: np.ndarray,
                  deterministic: bool) -> None:
    """``raw`` (holding ``eps``, or anything when ``deterministic``) <- ``u``; ``env`` <- ``a``."""
    _sample_to_env(out, raw, std, center, scale, bounded, squash, env, deterministic)


def score(out: np.ndarray, actions: np.ndarray, inv_var: np.ndarray, entropy_weight: np.ndarray,
          signal: np.ndarray, grad: np.ndarray, learn_log_std: bool) -> None:
    """``signal`` <- ``d log pi / d mu``; ``grad`` <- the ``log_std`` score (when learned)."""
    _score(out, actions, inv_var, entropy_weight, signal, grad, learn_log_std)


def refresh(log_std: np.ndarray, low: float, high: float, std: np.ndarray, inv_var: np.ndarray) -> None:
    """Clip ``log_std`` in place and recompute ``sigma`` and ``1 / sigma^2``."""
    _refresh(log_std, low, high, std, inv_var)
