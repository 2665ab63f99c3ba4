"""Template: the learner's sub-steps as loops for the compiled backend (specialised together with
:mod:`reflect.kernels.network`, whose ``network_backward`` they call). The array backends run the same
formulas through :mod:`reflect.learning.array_ops`.

A parameter group's *traces* handle is a tuple (positions below): its per-stream trace ``z`` ``[B, P]``,
the score saved ahead of its absorption ``fresh`` ``[B, P]``, the network's gradient layout (block
offsets and the learned constants' table, see ``network_backward``), the parameters (2-D views of the
network's tensors) with their offsets in ``P``, a head's extra parameters (the Gaussian log-std) with
their traces and same-step score, the learned constants' bounds, ``(decay, extra step scale,
coefficients per stream)`` and a scratch that rounds numbers to the parameters' dtype. Per step, for
streams ``b``::

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
    "bounded_update", "abs_sum",
)
INLINE = TEMPLATE[:-1]  # into their callers: fewer functions with large arguments to compile
REASSOCIATE = ("abs_sum",)  # a long sum: vectorised

# positions in a traces handle
(TR_Z, TR_FRESH, TR_OFFSETS, TR_TABLE, TR_PARAMS, TR_STARTS, TR_EXTRA, TR_EXTRA_Z, TR_EXTRA_GRAD,
 TR_BOUNDS, TR_NUMBERS, TR_CAST) = range(12)
TR_DECAY, TR_EXTRA_SCALE, TR_COEFFICIENTS = 0, 1, 2  # in TR_NUMBERS: the coefficients from index 2 on
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


def traces_accumulate(group, net, signal, active):
    """``z_b <- decay z_b + g_b`` from the learning signal ``signal`` ``[B, O]`` (and the extras')."""
    decay = group[TR_NUMBERS][TR_DECAY]
    network_backward(net, signal, (group[TR_Z], group[TR_OFFSETS], group[TR_TABLE]), decay, active)
    extra_z, extra_grad = group[TR_EXTRA_Z], group[TR_EXTRA_GRAD]
    for b in range(extra_z.shape[0]):
        for e in range(extra_z.shape[1]):
            extra_z[b, e] = decay * extra_z[b, e] + extra_grad[b, e]


def traces_fresh(group, net, signal, active):
    """``fresh_b <- g_b`` for the streams where ``active`` (a score taken with the weights of its step)."""
    network_backward(net, signal, (group[TR_FRESH], group[TR_OFFSETS], group[TR_TABLE]), 0.0, active)


def traces_absorb(group):
    """``z_b <- decay z_b + fresh_b``."""
    z, fresh, cast = group[TR_Z], group[TR_FRESH], group[TR_CAST]
    cast[0] = group[TR_NUMBERS][TR_DECAY]
    decay = cast[0]
    for b in range(z.shape[0]):
        row, add = z[b], fresh[b]
        for i in range(z.shape[1]):
            row[i] = decay * row[i] + add[i]


def traces_reset(group, done):
    z, fresh, extra_z = group[TR_Z], group[TR_FRESH], group[TR_EXTRA_Z]
    for b in range(done.shape[0]):
        if done[b]:
            for i in range(z.shape[1]):
                z[b, i] = 0.0
                fresh[b, i] = 0.0
            for e in range(extra_z.shape[1]):
                extra_z[b, e] = 0.0


def abs_sum(row):
    """``sum_i |row[i]|`` in float64 (compiled with reassociation: vectorised; a NaN or inf stays)."""
    total = 0.0
    for i in range(row.shape[0]):
        total += abs(np.float64(row[i]))
    return total


def bounded_update(group, delta, lr, kappa, sums):
    """The ObGD update of the group from the errors ``delta`` ``[B]``; adds the mean step size and
    ``||z||_1`` to ``sums[0]``, ``sums[1]``. Returns ``BAD_TRACE``, changing no weight, if a trace norm is
    not finite."""
    z, extra_z, numbers = group[TR_Z], group[TR_EXTRA_Z], group[TR_NUMBERS]
    batch = z.shape[0]
    mean_step = 0.0
    mean_l1 = 0.0
    for b in range(batch):
        l1 = abs_sum(z[b])
        for e in range(extra_z.shape[1]):
            l1 += abs(extra_z[b, e])
        if not math.isfinite(l1):
            return BAD_TRACE
        step = obgd_step_size(lr, kappa, delta[b], l1)
        numbers[TR_COEFFICIENTS + b] = step * delta[b] / batch
        mean_step += step / batch
        mean_l1 += l1 / batch
    params, offsets = group[TR_PARAMS], group[TR_STARTS]
    cast = group[TR_CAST]  # the coefficients rounded to the parameters' dtype: the loops stay in it
    for k in range(len(params)):
        flat = params[k].reshape(-1)  # a contiguous view of the parameter
        start = offsets[k]
        for b in range(batch):
            cast[0] = numbers[TR_COEFFICIENTS + b]
            coefficient = cast[0]
            trace = z[b, start:start + flat.shape[0]]  # indexed from 0: the loop vectorises
            for i in range(flat.shape[0]):
                flat[i] += coefficient * trace[i]
    extra, scale = group[TR_EXTRA], numbers[TR_EXTRA_SCALE]
    for e in range(extra.shape[0]):
        total = 0.0
        for b in range(batch):
            total += numbers[TR_COEFFICIENTS + b] * extra_z[b, e]
        extra[e] += scale * total
    bounds = group[TR_BOUNDS]
    for t in range(bounds.shape[0]):
        flat = params[np.int64(bounds[t, 0])].reshape(-1)
        for i in range(flat.shape[0]):
            flat[i] = min(max(flat[i], bounds[t, 1]), bounds[t, 2])
    sums[0] += mean_step
    sums[1] += mean_l1
    return OK
