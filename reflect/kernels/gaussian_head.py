"""Template: the squashed Gaussian head's sample, score and refresh as loops for the compiled backend
(formulas: :mod:`reflect.formulas.gaussian`; the array form is :class:`reflect.learning.heads.GaussianHead`).

Handle positions: ``[3, B, A]`` float64 rows: the noise ``eps`` (drawn by the head's numpy Generator
before the call), the pre-squash actions ``u`` and the log-std score; the environment actions ``[B, A]``
(float32); ``[4, A]`` float64 rows: ``sigma``, ``1 / sigma^2``, ``c``, ``s``; ``bounded`` ``[A]``;
``log_std`` ``[A]``; its bounds ``[2]``; ``(squash code, learn log-std)``.
"""

from __future__ import annotations

from reflect.formulas.gaussian import dimension_entropy, log_std_score, mean_score, pre_squash, spread, squash
from reflect.formulas.ops import clip

TEMPLATE = ("head_sample", "head_score", "head_refresh")
INLINE = TEMPLATE  # into the REFLECT step
G_SAMPLES, G_ENV, G_VECTORS, G_BOUNDED, G_LOG_STD, G_LOG_STD_BOUNDS, G_FLAGS = range(7)
G_NOISE, G_RAW, G_GRAD = range(3)  # rows of head[G_SAMPLES]
G_STD, G_INV_VAR, G_CENTER, G_SCALE = range(4)  # rows of head[G_VECTORS]


def head_sample(head, out, deterministic):
    samples, vectors = head[G_SAMPLES], head[G_VECTORS]
    noise, raw, env, std = samples[G_NOISE], samples[G_RAW], head[G_ENV], vectors[G_STD]
    center, scale, bounded, code = vectors[G_CENTER], vectors[G_SCALE], head[G_BOUNDED], head[G_FLAGS][0]
    batch, dims = raw.shape
    for b in range(batch):
        for a in range(dims):
            mu = out[b, a] + 0.0
            u = mu if deterministic else pre_squash(mu, std[a], noise[b, a])
            raw[b, a] = u
            env[b, a] = squash(u, center[a], scale[a], code) if bounded[a] else u


def head_score(head, out, weights, signal, entropies):
    raw, inv_var, grad = head[G_SAMPLES][G_RAW], head[G_VECTORS][G_INV_VAR], head[G_SAMPLES][G_GRAD]
    log_std = head[G_LOG_STD]
    learn = head[G_FLAGS][1] == 1
    batch, dims = raw.shape
    entropy = 0.0
    for a in range(dims):
        entropy += dimension_entropy(log_std[a])
    for b in range(batch):
        entropies[b] = entropy
        for a in range(dims):
            mu = out[b, a] + 0.0
            signal[b, a] = mean_score(raw[b, a], mu, inv_var[a])
            if learn:
                grad[b, a] = log_std_score(raw[b, a], mu, inv_var[a], weights[b])


def head_refresh(head):
    log_std, bounds = head[G_LOG_STD], head[G_LOG_STD_BOUNDS]
    std, inv_var = head[G_VECTORS][G_STD], head[G_VECTORS][G_INV_VAR]
    for a in range(log_std.shape[0]):
        value = clip(log_std[a], bounds[0], bounds[1])
        log_std[a] = value
        std[a], inv_var[a] = spread(value)
