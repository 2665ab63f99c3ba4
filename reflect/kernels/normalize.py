"""The running observation normaliser for one observation, as one compiled call.

For one observation ``x`` ``[D]`` and the running float64 ``mean``, ``var`` over ``n`` observations
(see :class:`reflect.envs.normalization.ObservationNormalizer`)::

    update:   delta = x - mean;  mean += delta / (n + 1);  var = (var n + delta (x - mean)) / (n + 1)
    output:   clip((x - mean) * (1 / sqrt(var + epsilon)), -clip, clip)      rounded to float32

The same IEEE operations in the same order as the numpy and plain-float paths, so the same bits.
The fused act and observe (:mod:`reflect.kernels.policy`, :mod:`reflect.kernels.observe`) take their
network input through ``_network_input`` (the normaliser, or a plain copy without one).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from reflect.kernels import jit

if TYPE_CHECKING:
    from reflect.envs.normalization import ObservationNormalizer


@jit
def _normalize_one(row, mean, var, count, update, clip, epsilon, out):
    for i in range(row.shape[0]):
        if not math.isfinite(row[i]):
            return False
    if update:
        total = count + 1
        for i in range(row.shape[0]):
            x = row[i] + 0.0
            delta = x - mean[i]
            new_mean = mean[i] + delta / total
            var[i] = (var[i] * count + delta * (x - new_mean)) / total
            mean[i] = new_mean
    for i in range(row.shape[0]):
        value = (row[i] - mean[i]) * (1.0 / math.sqrt(var[i] + epsilon))
        out[i] = max(min(value, clip), -clip)
    return True


@jit
def _network_input(row, mean, var, normalize, count, update, clip, epsilon, out):
    """``out`` <- the normalised ``row`` (or ``row`` itself without a normaliser); ``False``, changing
    nothing, if ``row`` has a NaN or inf."""
    if normalize:
        return _normalize_one(row, mean, var, count, update, clip, epsilon, out)
    for i in range(row.shape[0]):
        if not math.isfinite(row[i]):
            return False
    for i in range(row.shape[0]):
        out[i] = row[i]
    return True


def normalizer_buffers(normalizer: ObservationNormalizer | None, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The running ``(mean, var)`` arrays a fused kernel binds to (placeholders without a normaliser)."""
    if normalizer is None:
        return np.zeros(dims), np.ones(dims)
    return normalizer.rms.mean, normalizer.rms.var


def normalizer_settings(normalizer: ObservationNormalizer | None) -> tuple[int, float, float]:
    """``(count, clip, epsilon)`` as a fused kernel takes them at every call (they may change)."""
    if normalizer is None:
        return 0, 1.0, 1.0
    return normalizer.rms.count, normalizer.clip, normalizer.epsilon


def normalize_one(row: np.ndarray, mean: np.ndarray, var: np.ndarray, count: int, update: bool,
                  clip: float, epsilon: float, out: np.ndarray) -> bool:
    """Normalise ``row`` ``[D]`` into ``out`` ``[D]`` (updating ``mean``/``var`` in place first when
    ``update``; the caller adds 1 to its count). Returns ``False``, changing nothing, if ``row`` has a
    NaN or inf."""
    return bool(_normalize_one(row, mean, var, count, update, clip, epsilon, out))
