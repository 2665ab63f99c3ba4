"""The bounded (ObGD) parameter update of one stream, and trace decay, as single compiled calls.

For the traces ``z`` of one parameter group (one flat ``[P]`` row whose views ``traces[k]`` have the
shapes of ``params[k]``) and optional extra parameters ``e`` with traces ``z_e`` (float64)::

    l1    = ||z||_1 + ||z_e||_1                 (accumulated in float64)
    step  = obgd_step_size(alpha, kappa, delta, l1)
    theta += round(step * delta) * z            (the coefficient rounded to the parameters' dtype first,
    e     += (lr_scale * step * delta) * z_e     as numpy rounds a Python float)

The numpy path sums ``|z|`` in float32 (pairwise), this one in float64, so ``l1`` agrees to float32
rounding; everything after it is the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reflect.kernels import bind, jit
from reflect.learning.obgd import obgd_step_size

_step_size = jit(obgd_step_size)


@jit
def _apply_one(params, traces, flat, extra_params, extra_trace, rounding, extra_lr_scale, lr, kappa, delta):
    l1 = 0.0
    for i in range(flat.shape[0]):
        l1 += abs(flat[i])
    for i in range(extra_trace.shape[0]):
        l1 += abs(extra_trace[i])
    step = _step_size(lr, kappa, delta, l1)
    coefficient = step * delta
    rounding[0] = coefficient  # to the parameters' dtype
    rounded = rounding[0]
    for k in range(len(params)):
        param, trace = params[k], traces[k]
        rows, cols = param.shape
        for r in range(rows):
            for c in range(cols):
                param[r, c] += rounded * trace[r, c]
    extra_coefficient = extra_lr_scale * coefficient
    for i in range(extra_params.shape[0]):
        extra_params[i] += extra_coefficient * extra_trace[i]
    return step, l1


@jit
def _decay_add(trace, increment, decay):
    rows, cols = trace.shape
    for r in range(rows):
        for c in range(cols):
            trace[r, c] = trace[r, c] * decay + increment[r, c]


class OneStreamUpdate:
    """The bounded update of one stream's parameter group, bound to its buffers.

    Args:
        params: the parameters ``[R_k, C_k]`` (updated in place).
        traces: their traces, views of ``flat`` with the same shapes.
        flat: the whole trace row ``[P]``.
        extra_params: extra float64 parameters ``[E]`` or ``None``; extra_trace: their trace ``[E]``.
        extra_lr_scale: the extra parameters' step is the group's times this.
    """

    def __init__(self, params: tuple[np.ndarray, ...], traces: tuple[np.ndarray, ...], flat: np.ndarray,
                 extra_params: np.ndarray | None, extra_trace: np.ndarray | None,
                 extra_lr_scale: float) -> None:
        no_extras = np.zeros(0)
        # the arguments of _apply_one before (lr, kappa, delta); the 1-element array rounds the step
        self.bound = (params, traces, flat, no_extras if extra_params is None else extra_params,
                      no_extras if extra_trace is None else extra_trace, np.zeros(1, dtype=flat.dtype),
                      float(extra_lr_scale))
        self._call = bind(_apply_one, self.bound, (1.0, 1.0, 1.0))

    def __call__(self, lr: float, kappa: float, delta: float) -> tuple[float, float]:
        """Apply the update for TD error ``delta``; returns ``(step size, l1)``."""
        result: tuple[float, float] = self._call(float(lr), float(kappa), float(delta))
        return result


def bind_decay_add(trace: np.ndarray, increment: np.ndarray, decay: float) -> Callable[[], None]:
    """A zero-argument call of ``trace <- decay * trace + increment`` (``[B, E]`` arrays; ``decay`` is
    rounded to their dtype first, as numpy rounds a Python float)."""
    return bind(_decay_add, (trace, increment, trace.dtype.type(decay)))
