"""Template: the learner's sub-steps as loops for the compiled backend (specialised together with
:mod:`reflect.kernels.network`, whose ``network_backward`` they call). The array backends run the same
formulas through :mod:`reflect.learning.array_ops`.

A parameter group's *traces* handle is a tuple (positions below): its per-stream trace ``z`` ``[B, P]``,
the score saved ahead of its absorption ``fresh`` ``[B, P]``, their views in the network's gradient layout,
the parameters (2-D views of the network's tensors) with their offsets in ``P``, a head's extra
parameters (the Gaussian log-std) with their traces and same-step score, the learned constants' bounds,
``(decay, extra step scale)`` and scratch. Per step, for streams ``b``::

    accumulate:  z_b <- decay z_b + g_b                   absorb:  z_b <- decay z_b + fresh_b
    update:      l1_b = ||z_b||_1 (+ extras);  step_b = obgd_step_size(alpha, kappa, delta_b, l1_b)
                 theta <- theta + (1 / B) sum_b step_b delta_b z_b;  learned constants clipped into range

Observations go through the running normaliser (:mod:`reflect.formulas.normalize`), one row at a time.
"""

from __future__ import annotations

import math

import numpy as np

from reflect.formulas.normalize import normalize, welford
from reflect.formulas.obgd import obgd_step_size
from reflect.kernels.reflect_step import OK
from reflect.kernels.specialize import placeholder

TEMPLATE = (
    "prepare_input", "copy_rows", "traces_accumulate", "traces_fresh", "traces_absorb", "traces_reset",
    "bounded_update",
)
INLINE = TEMPLATE  # into their callers: fewer functions with large arguments to compile

# positions in a traces handle
(TR_Z, TR_FRESH, TR_GRADS, TR_FRESH_GRADS, TR_PARAMS, TR_OFFSETS, TR_EXTRA, TR_EXTRA_Z, TR_EXTRA_GRAD,
 TR_BOUNDS, TR_SCALARS, TR_COEFFICIENTS, TR_ACTIVE, TR_RESULTS) = range(14)
TR_DECAY, TR_EXTRA_SCALE = 0, 1  # in TR_SCALARS
# positions in a normaliser handle: mean [D], var [D], count int64 [1], (clip, epsilon), enabled int64 [1]
NORM_MEAN, NORM_VAR, NORM_COUNT, NORM_SETTINGS, NORM_ENABLED = range(5)

BAD_TRACE = 1


network_backward = placeholder  # bound: the network template's


def prepare_input(norm, raw, out, update):
    """``out[:, :D]`` <- the normalised rows of ``raw`` ``[B, D]`` (statistics updated first when
    ``update``), or a copy without a normaliser; ``False``, changing nothing, if ``raw`` holds a NaN or
    inf."""
    batch, dims = raw.shape
    for b in range(batch):
        for i in range(dims):
            if not math.isfinite(raw[b, i]):
                return False
    if norm[NORM_ENABLED][0] == 0:
        for b in range(batch):
            for i in range(dims):
                out[b, i] = raw[b, i]
        return True
    mean, var, count = norm[NORM_MEAN], norm[NORM_VAR], norm[NORM_COUNT]
    clip_at, epsilon = norm[NORM_SETTINGS][0], norm[NORM_SETTINGS][1]
    if update:
        for b in range(batch):
            n = count[0]
            for i in range(dims):
                mean[i], var[i] = welford(mean[i], var[i], n, raw[b, i] + 0.0)
            count[0] = n + 1
    for b in range(batch):
        for i in range(dims):
            out[b, i] = normalize(raw[b, i] + 0.0, mean[i], var[i], epsilon, clip_at)
    return True


def copy_rows(source, target, columns):
    """``target[:, :columns] = source[:, :columns]``."""
    for b in range(source.shape[0]):
        for i in range(columns):
            target[b, i] = source[b, i]


def traces_accumulate(group, net, signal):
    """``z_b <- decay z_b + g_b`` from the learning signal ``signal`` ``[B, O]`` (and the extras')."""
    decay = group[TR_SCALARS][TR_DECAY]
    network_backward(net, signal, group[TR_GRADS], decay, group[TR_ACTIVE])
    extra_z, extra_grad = group[TR_EXTRA_Z], group[TR_EXTRA_GRAD]
    for b in range(extra_z.shape[0]):
        for e in range(extra_z.shape[1]):
            extra_z[b, e] = decay * extra_z[b, e] + extra_grad[b, e]


def traces_fresh(group, net, signal, active):
    """``fresh_b <- g_b`` for the streams where ``active`` (a score taken with the weights of its step)."""
    network_backward(net, signal, group[TR_FRESH_GRADS], 0.0, active)


def traces_absorb(group):
    """``z_b <- decay z_b + fresh_b``."""
    z, fresh = group[TR_Z], group[TR_FRESH]
    decay = group[TR_SCALARS][TR_DECAY]
    for b in range(z.shape[0]):
        for i in range(z.shape[1]):
            z[b, i] = decay * z[b, i] + fresh[b, i]


def traces_reset(group, done):
    z, fresh, extra_z = group[TR_Z], group[TR_FRESH], group[TR_EXTRA_Z]
    for b in range(done.shape[0]):
        if done[b]:
            for i in range(z.shape[1]):
                z[b, i] = 0.0
                fresh[b, i] = 0.0
            for e in range(extra_z.shape[1]):
                extra_z[b, e] = 0.0


def bounded_update(group, delta, lr, kappa):
    """The ObGD update of the group from the errors ``delta`` ``[B]``; the group's results receive the
    mean step size and ``||z||_1``. Returns ``BAD_TRACE``, changing no weight, if a trace norm is not
    finite."""
    z, extra_z = group[TR_Z], group[TR_EXTRA_Z]
    coefficients, results = group[TR_COEFFICIENTS], group[TR_RESULTS]
    batch = z.shape[0]
    mean_step = 0.0
    mean_l1 = 0.0
    for b in range(batch):
        l1 = 0.0
        for i in range(z.shape[1]):
            l1 += abs(z[b, i])
        for e in range(extra_z.shape[1]):
            l1 += abs(extra_z[b, e])
        if not math.isfinite(l1):
            results[1] = l1
            return BAD_TRACE
        step = obgd_step_size(lr, kappa, delta[b], l1)
        coefficients[b] = step * delta[b] / batch
        mean_step += step / batch
        mean_l1 += l1 / batch
    params, offsets = group[TR_PARAMS], group[TR_OFFSETS]
    for k in range(len(params)):
        param = params[k]
        rows, cols = param.shape
        start = offsets[k]
        for r in range(rows):
            for c in range(cols):
                index = start + r * cols + c
                total = 0.0
                for b in range(batch):
                    total += coefficients[b] * z[b, index]
                param[r, c] = param[r, c] + total
    extra, scale = group[TR_EXTRA], group[TR_SCALARS][TR_EXTRA_SCALE]
    for e in range(extra.shape[0]):
        total = 0.0
        for b in range(batch):
            total += coefficients[b] * extra_z[b, e]
        extra[e] += scale * total
    bounds = group[TR_BOUNDS]
    for t in range(bounds.shape[0]):
        param = params[np.int64(bounds[t, 0])]
        for r in range(param.shape[0]):
            for c in range(param.shape[1]):
                param[r, c] = min(max(param[r, c], bounds[t, 1]), bounds[t, 2])
    results[0] = mean_step
    results[1] = mean_l1
    return OK
