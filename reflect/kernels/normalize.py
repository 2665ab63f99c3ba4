"""The running observation normaliser for one observation, as one compiled call.

For one observation ``x`` ``[D]`` and the running float64 ``mean``, ``var`` over ``n`` observations
(see :class:`reflect.envs.normalization.ObservationNormalizer`)::

    update:   delta = x - mean;  mean += delta / (n + 1);  var = (var n + delta (x - mean)) / (n + 1)
    output:   clip((x - mean) * (1 / sqrt(var + epsilon)), -clip, clip)      rounded to float32

The same IEEE operations in the same order as the numpy and plain-float paths, so the same bits.
"""

from __future__ import annotations

import math

import numpy as np

from reflect.kernels import jit


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


def normalize_one(row: np.ndarray, mean: np.ndarray, var: np.ndarray, count: int, update: bool,
                  clip: float, epsilon: float, out: np.ndarray) -> bool:
    """Normalise ``row`` ``[D]`` into ``out`` ``[D]`` (updating ``mean``/``var`` in place first when
    ``update``; the caller adds 1 to its count). Returns ``False``, changing nothing, if ``row`` has a
    NaN or inf."""
    return bool(_normalize_one(row, mean, var, count, update, clip, epsilon, out))
