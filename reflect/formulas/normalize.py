"""The running observation normaliser, element-wise (float64 statistics)::

    add x:      n' = n + 1,  mean' = mean + (x - mean) / n',  var' = (var n + (x - mean)(x - mean')) / n'
    normalise:  clip((x - mean) * (1 / sqrt(var + epsilon)), -c, c)

Several rows at once merge by Chan et al.'s parallel update (:func:`merge`), so the statistics equal
those of every row seen; before any data, mean 0 and var 1.
"""

from __future__ import annotations

from reflect.formulas.ops import clip, sqrt


def welford(mean, var, count, x):
    """``(mean', var')`` after adding ``x`` to ``count`` values."""
    total = count + 1
    delta = x - mean
    new_mean = mean + delta / total
    return new_mean, (var * count + delta * (x - new_mean)) / total


def merge(mean, var, count, batch_mean, batch_var, batch_count):
    """``(mean', var')`` after adding a batch of ``batch_count`` values with the given statistics."""
    total = count + batch_count
    delta = batch_mean - mean
    m2 = var * count + batch_var * batch_count + delta * delta * (count * batch_count / total)
    return mean + delta * (batch_count / total), m2 / total


def normalize(x, mean, var, epsilon, clip_at):
    """The normalised, clipped value of ``x``."""
    return clip((x - mean) * (1.0 / sqrt(var + epsilon)), -clip_at, clip_at)
