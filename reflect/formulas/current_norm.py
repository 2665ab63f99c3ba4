"""Parameter-free normalisation of a spiking layer's input current across its neurons, per stream::

    y_j = (z @ W)_j                                   (the layer's input current, neurons j = 1..H)
    m = mean_j y_j,   v = mean_j (y_j - m)^2          (over the layer's neurons, one stream)
    y'_j = (y_j - m) * g / sqrt(v + EPSILON)          (g: the gain, ``network.current_norm``)

The neurons then step on ``y'``: whatever the weights' scale, a layer sees currents of mean 0 and
standard deviation ``g``, so with a threshold of 1 about the same share of neurons fires at every step
(``g`` 2: those above half a standard deviation). The statistics are treated as constants in every
gradient (detached), so ``dy'_j / dy_j = g / sqrt(v + EPSILON)`` and the traces scale each neuron's
input Jacobian by that one number per stream. The array forms (the torch layer, the numpy/torch traces,
the exporter) take ``m`` and the factor from :func:`current_norm_statistics`; the compiled kernel
reduces each row in its own loops and calls the two scalar functions. D-RTRL traces stay exact;
pp-prop's input trace sums past inputs without their steps' factors, so pp-prop is exact only for
memoryless neurons (LIF with ``beta`` 0, the tuned configs').
"""

from __future__ import annotations

from reflect.formulas.ops import sqrt

EPSILON = 1e-6


def current_norm_scale(variance, gain):
    """``g / sqrt(v + EPSILON)``: the factor of the centred current, and its derivative."""
    return gain / sqrt(variance + EPSILON)


def current_norm_apply(current, mean, scale):
    """``(y - m) * scale``."""
    return (current - mean) * scale


def current_norm_statistics(currents, gain):
    """Array form: the means ``m`` and the factors ``g / sqrt(v + EPSILON)`` of the rows of ``currents``
    ``[B, H]`` (a numpy array or a torch tensor), each ``[B, 1]``."""
    mean = currents.mean(1, keepdims=True)
    return mean, current_norm_scale(((currents - mean) ** 2).mean(1, keepdims=True), gain)
