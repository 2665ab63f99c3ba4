"""The small-batch CPU fast path of the trace engine: the same math in numpy, on the same buffers.

At batch 1 each torch operation costs a few microseconds of dispatch while its arithmetic costs
nanoseconds; numpy's per-call cost is several times lower. For the default configuration - LIF neurons
with a detached reset, fixed ``beta``/``theta``, pp-prop traces with ``alpha_f = 0``, a direct encoder,
CPU tensors - :class:`~reflect.traces.engine.TraceEngine` runs these kernels on numpy views of its
torch buffers and of the parameters (shared memory: torch sees every change, and in-place updates of
the parameters by torch are seen here). Every other configuration runs the torch kernels. The
equations are those of :mod:`reflect.traces.layer_traces`::

    y = z @ packed;   v <- beta (v - theta s) + (1 - beta) y;   s = H(v - theta);   psi = sigma'(v - theta)
    eps_x <- alpha_x eps_x + z
    backward:  delta = dL/ds * psi;   grad <- decay grad + eps_x^T (delta (1 - beta))
               dL/dx = delta (1 - beta) W^T
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

if TYPE_CHECKING:
    from reflect.traces.layer_traces import LayerTraces


def supports_numpy_path(layer_traces: LayerTraces) -> bool:
    """Whether the numpy kernels cover this layer's configuration."""
    lt = layer_traces
    return (
        lt.algorithm == "pp-prop" and lt.alpha_f == 0.0 and lt.constant_jacobian and not lt.learn_beta
        and not lt.learn_theta and lt.z.device.type == "cpu"
    )


def _view(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


def accumulate_outer(grad: np.ndarray, pre: np.ndarray, post: np.ndarray, decay: float,
                     outer: np.ndarray) -> None:
    """``grad <- decay * grad + pre^T @ post``; ``pre`` ``[B, R]``, ``post`` ``[B, H]``, ``outer`` scratch."""
    np.dot(pre.T, post, out=outer)
    if decay == 0.0:
        grad[...] = outer
    else:
        grad *= decay
        grad += outer


class NumpySurrogate:
    """``sigma'(u)`` in place on a numpy array (same formulas as SurrogateDerivative)."""

    def __init__(self, name: str, slope: float) -> None:
        self.name = name
        self.k = float(slope) if name == "fast_sigmoid" else math.pi * slope / 2.0
        self.gain = slope / 2.0

    def __call__(self, out: np.ndarray) -> None:
        if self.name == "fast_sigmoid":  # 1 / (1 + k|u|)^2
            np.abs(out, out=out)
            out *= self.k
            out += 1.0
            np.reciprocal(out, out=out)
            np.multiply(out, out, out=out)
            return
        out *= self.k  # arctan: (k/2) / (1 + (pi k u / 2)^2)
        np.multiply(out, out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
        out *= self.gain


class NumpyLayerKernels:
    """Numpy views of one LayerTraces' buffers and the per-step kernels on them."""

    def __init__(self, lt: LayerTraces) -> None:
        layer = lt.layer
        self.lt = lt
        self.z, self.s = _view(lt.z), _view(lt.s)
        self.packed = _view(lt.packed)
        self.weight_t = self.packed[: layer.in_features].T
        self.y, self.v, self.psi = _view(lt.y), _view(lt.v), _view(lt.psi)
        self.eps_x = _view(lt.eps_x)
        self.scratch = _view(lt.scratch)
        self.delta_v, self.signal = _view(lt.delta_v), _view(lt.signal)
        self.input_signal = _view(lt.input_signal)
        dtype = self.v.dtype
        self.beta = _view(lt.beta).astype(dtype)  # 0-d or [H]; fixed (not learnable) on this path
        self.theta = _view(lt.theta).astype(dtype)
        self.one_minus_beta = (1.0 - self.beta).astype(dtype)
        self.alpha_x = dtype.type(float(lt.alpha_x))
        # beta = 0 (and alpha_x = 0): no membrane memory, v_t = y_t and eps_x = z_t; fewer operations
        self.memoryless = not self.beta.any() and self.alpha_x == 0
        self.recurrent, self.in_features, self.hidden = lt.recurrent, layer.in_features, layer.out_features
        self.surrogate = NumpySurrogate(layer.surrogate.name, layer.surrogate.slope)
        rows = self.packed.shape[0]
        self.outer = np.zeros((rows, self.hidden), dtype=dtype)

    def forward(self, traces: bool) -> None:
        v, s, scratch = self.v, self.s, self.scratch
        if self.recurrent:
            self.z[:, self.in_features:self.in_features + self.hidden] = s
        if self.memoryless:
            np.dot(self.z, self.packed, out=v)
            self.y[...] = v
            np.greater(v, self.theta, out=s)
            if traces:
                np.subtract(v, self.theta, out=self.psi)
                self.surrogate(self.psi)
                self.eps_x[...] = self.z
            return
        np.dot(self.z, self.packed, out=self.y)
        np.multiply(s, self.theta, out=scratch)
        v -= scratch                                  # subtractive reset of last step's spikes
        v *= self.beta
        np.multiply(self.y, self.one_minus_beta, out=scratch)
        v += scratch
        np.greater(v, self.theta, out=s)
        if traces:
            np.subtract(v, self.theta, out=self.psi)
            self.surrogate(self.psi)
            self.eps_x *= self.alpha_x
            self.eps_x += self.z

    def backward(
        self, signal: np.ndarray, grad: np.ndarray, decay: float, needs_input: bool
    ) -> np.ndarray | None:
        np.multiply(signal, self.psi, out=self.delta_v)
        weighted = self.signal
        np.multiply(self.delta_v, self.one_minus_beta, out=weighted)
        accumulate_outer(grad, self.eps_x, weighted, decay, self.outer)
        if not needs_input:
            return None
        np.dot(weighted, self.weight_t, out=self.input_signal)
        return self.input_signal
