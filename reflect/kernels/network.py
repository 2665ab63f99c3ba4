"""A spiking network's step and backward pass as one compiled call each (see :mod:`reflect.kernels`).

The numpy path of :mod:`reflect.traces.numpy_path` spends almost all of a batch-1 step in the
per-call cost of ~10 numpy operations per layer. Here the whole network is one call for the forward
step (every layer, its eligibility traces, the readout) and one for the backward pass, over the *same*
buffers (the numpy views of the engine's torch tensors), so every other path sees the result. The
arithmetic is the numpy path's, in the parameters' dtype, operation for operation::

    y = z @ packed;   v <- beta (v - theta s) + (1 - beta) y;   s = H(v - theta);   psi = sigma'(v - theta)
    eps_x <- alpha_x eps_x + z
    readout:  y_o = z_L @ packed_o;  o <- o + (1 - d) (y_o - o);  eps_o <- d eps_o + (1 - d) z_L
    backward: grad_o <- decay grad_o + eps_o^T dL/do;           dL/ds_L = (1 - d) dL/do W_o^T
              w_l = dL/ds_l psi_l (1 - beta_l);  grad_l <- decay grad_l + eps_x,l^T w_l;
              dL/ds_{l-1} = w_l W_l^T

Only the summation order inside the matrix products differs from numpy (BLAS may block or fuse
them; here they run in row order and skip zero inputs - most inputs are spikes), so results agree to
rounding, and bit for bit wherever no sum of more than one product is involved (the batch-1 outer
products of the backward pass and every elementwise step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from reflect.kernels import INSTALL_HINT, bind, compiled_available, jit

if TYPE_CHECKING:
    from reflect.traces.engine import TraceEngine

SURROGATE_CODES = {"fast_sigmoid": 0, "arctan": 1}
# columns of the per-layer scalar table (in the weights' dtype) and of the integer flag table
_ALPHA_X, _SLOPE, _GAIN, _ONE = range(4)
_RECURRENT, _IN_FEATURES, _SURROGATE, _MEMORYLESS = range(4)


# ------------------------------------------------------------------------------------------ kernels
@jit
def _matmul_rows(z: np.ndarray, packed: np.ndarray, y: np.ndarray) -> None:
    """``y = z @ packed`` for ``z`` ``[B, R]``, ``packed`` ``[R, H]``; zero inputs are skipped."""
    batch, rows = z.shape
    hidden = packed.shape[1]
    for b in range(batch):
        for j in range(hidden):
            y[b, j] = 0.0
        for r in range(rows):
            zr = z[b, r]
            if zr != 0.0:
                for j in range(hidden):
                    y[b, j] += zr * packed[r, j]


@jit
def _forward(zs: Any, packeds: Any, ys: Any, vs: Any, psis: Any, eps_xs: Any, betas: Any,
             thetas: Any, one_minus_betas: Any, scalars: np.ndarray, flags: np.ndarray,
             readout: Any, readout_scalars: np.ndarray, traces: bool) -> None:
    """One step of every LIF layer and the readout, in place (see the module docstring).

    ``zs`` holds ``L + 1`` presynaptic buffers ``[B, R_l]`` (layer ``l`` writes its spikes into
    ``zs[l + 1][:, :H_l]``); ``readout`` = ``(packed_o, y_o, o, eps_o)``; ``readout_scalars`` =
    ``(d, 1 - d, 1)``.
    """
    for layer in range(len(packeds)):
        z, packed, y, v = zs[layer], packeds[layer], ys[layer], vs[layer]
        psi, eps_x = psis[layer], eps_xs[layer]
        beta, theta, one_minus_beta = betas[layer], thetas[layer], one_minus_betas[layer]
        spikes = zs[layer + 1]
        alpha_x, slope, gain, one = (scalars[layer, _ALPHA_X], scalars[layer, _SLOPE],
                                     scalars[layer, _GAIN], scalars[layer, _ONE])
        in_features, arctan = flags[layer, _IN_FEATURES], flags[layer, _SURROGATE] == 1
        memoryless = flags[layer, _MEMORYLESS] == 1
        batch, hidden = v.shape
        if flags[layer, _RECURRENT] == 1:
            for b in range(batch):
                for j in range(hidden):
                    z[b, in_features + j] = spikes[b, j]
        _matmul_rows(z, packed, y)
        for b in range(batch):
            for j in range(hidden):
                if memoryless:
                    vj = y[b, j]
                else:
                    vj = (v[b, j] - spikes[b, j] * theta[j]) * beta[j] + y[b, j] * one_minus_beta[j]
                v[b, j] = vj
                spikes[b, j] = one if vj > theta[j] else one - one
                if traces:
                    u = vj - theta[j]
                    if arctan:
                        u = u * slope
                        psi[b, j] = one / (u * u + one) * gain
                    else:
                        q = one / (abs(u) * slope + one)
                        psi[b, j] = q * q
        if traces:
            rows = z.shape[1]
            for b in range(batch):
                for r in range(rows):
                    eps_x[b, r] = z[b, r] if memoryless else eps_x[b, r] * alpha_x + z[b, r]
    packed_o, y_o, o, eps_o = readout
    z_last = zs[len(zs) - 1]
    _matmul_rows(z_last, packed_o, y_o)
    decay, one_minus_decay = readout_scalars[0], readout_scalars[1]
    if decay == 0.0:
        return
    batch, outputs = o.shape
    for b in range(batch):
        for k in range(outputs):
            o[b, k] += (y_o[b, k] - o[b, k]) * one_minus_decay
    if traces:
        for b in range(batch):
            for r in range(z_last.shape[1]):
                eps_o[b, r] = eps_o[b, r] * decay + one_minus_decay * z_last[b, r]


@jit
def _accumulate_outer(grad: np.ndarray, pre: np.ndarray, post: np.ndarray, decay: Any) -> None:
    """``grad <- decay grad + pre^T post`` (``decay == 0`` overwrites, as the numpy path does)."""
    batch, rows = pre.shape
    hidden = post.shape[1]
    for r in range(rows):
        for j in range(hidden):
            total = pre[0, r] * post[0, j]
            for b in range(1, batch):
                total += pre[b, r] * post[b, j]
            grad[r, j] = total if decay == 0.0 else grad[r, j] * decay + total


@jit
def _signal_through(weighted: np.ndarray, packed: np.ndarray, out: np.ndarray, scale: Any) -> None:
    """``out = scale * (weighted @ packed[:in]^T)``: the learning signal sent to the layer below."""
    batch, inputs = out.shape
    hidden = weighted.shape[1]
    for b in range(batch):
        for i in range(inputs):
            total = weighted[b, 0] * packed[i, 0]
            for j in range(1, hidden):
                total += weighted[b, j] * packed[i, j]
            out[b, i] = total * scale


@jit
def _backward(signal: np.ndarray, grads: Any, decay: Any, eps_xs: Any, psis: Any, packeds: Any,
              one_minus_betas: Any, weighteds: Any, upstreams: Any, readout: Any,
              readout_scalars: np.ndarray) -> None:
    """``grads[k] <- decay grads[k] + g_k`` from ``signal = dL/do`` ``[B, out]`` (module docstring).

    ``grads`` has ``L + 1`` entries (each layer's packed gradient, then the readout's); ``upstreams[l]``
    ``[B, H_l]`` receives ``dL/ds_l``; ``readout`` = ``(packed_o, eps_o)``.
    """
    packed_o, eps_o = readout
    layers = len(packeds)
    _accumulate_outer(grads[layers], eps_o, signal, decay)
    one_minus_decay = readout_scalars[1] if readout_scalars[0] != 0.0 else readout_scalars[2]
    _signal_through(signal, packed_o, upstreams[layers - 1], one_minus_decay)
    for layer in range(layers - 1, -1, -1):
        upstream, psi, weighted = upstreams[layer], psis[layer], weighteds[layer]
        one_minus_beta = one_minus_betas[layer]
        batch, hidden = weighted.shape
        for b in range(batch):
            for j in range(hidden):
                weighted[b, j] = upstream[b, j] * psi[b, j] * one_minus_beta[j]
        _accumulate_outer(grads[layer], eps_xs[layer], weighted, decay)
        if layer > 0:
            _signal_through(weighted, packeds[layer], upstreams[layer - 1], readout_scalars[2])


# ----------------------------------------------------------------------------------- the wrapper
class CompiledNetworkKernels:
    """The forward and backward kernels bound to one :class:`TraceEngine`'s buffers.

    Built by the engine when its numpy path applies; holds tuples of the same numpy views the numpy
    kernels use, so both paths (and torch) see one state.
    """

    def __init__(self, engine: TraceEngine) -> None:
        if not compiled_available():
            raise ImportError(INSTALL_HINT)
        layers = [layer.numpy_kernels for layer in engine.layers]
        if any(k is None for k in layers):
            raise ValueError("the compiled kernels cover the numpy path's configurations only")
        kernels = [k for k in layers if k is not None]
        readout = engine.readout
        dtype = readout.np_packed.dtype
        self.dtype = dtype.type
        self.zs = (*(k.z for k in kernels), readout.np_z)
        self.packeds = tuple(k.packed for k in kernels)
        self.ys, self.vs = tuple(k.y for k in kernels), tuple(k.v for k in kernels)
        self.psis, self.eps_xs = tuple(k.psi for k in kernels), tuple(k.eps_x for k in kernels)
        self.betas = tuple(_per_neuron(k.beta, k.hidden, dtype) for k in kernels)
        self.thetas = tuple(_per_neuron(k.theta, k.hidden, dtype) for k in kernels)
        self.one_minus_betas = tuple(_per_neuron(k.one_minus_beta, k.hidden, dtype) for k in kernels)
        self.scalars = np.array(
            [[k.alpha_x, k.surrogate.k, k.surrogate.gain, 1.0] for k in kernels], dtype=dtype
        )
        self.flags = np.array(
            [[int(k.recurrent), k.in_features, SURROGATE_CODES[k.surrogate.name], int(k.memoryless)]
             for k in kernels], dtype=np.int64,
        )
        # (d, 1 - d, 1) in the weights' dtype, each rounded from float64 as numpy rounds a Python float
        self.readout_scalars = np.array([readout.decay, 1.0 - readout.decay, 1.0], dtype=dtype)
        self.output = readout.np_o if readout.decay > 0.0 else readout.np_y
        # the arguments of _forward but its last (traces)
        readout_buffers = (readout.np_packed, readout.np_y, readout.np_o, readout.np_eps)
        self.forward_args = (self.zs, self.packeds, self.ys, self.vs, self.psis, self.eps_xs, self.betas,
                             self.thetas, self.one_minus_betas, self.scalars, self.flags, readout_buffers,
                             self.readout_scalars)
        self._forward_traces = bind(_forward, (*self.forward_args, True))
        self._forward_plain = bind(_forward, (*self.forward_args, False))
        weighteds = tuple(k.signal for k in kernels)
        upstreams = (*(k.input_signal for k in kernels[1:]), readout.np_input_signal)
        # the arguments of _backward after (signal, grads, decay)
        self.backward_tail = (self.eps_xs, self.psis, self.packeds, self.one_minus_betas, weighteds,
                               upstreams, (readout.np_packed, readout.np_eps), self.readout_scalars)

    def forward(self, traces: bool) -> np.ndarray:
        """One step of the whole network (inputs already in the first ``z``); the readout view."""
        if traces:
            self._forward_traces()
        else:
            self._forward_plain()
        return self.output

    def backward(self, signal: np.ndarray, grads: tuple[np.ndarray, ...], decay: float) -> None:
        """Accumulate into ``grads`` (one array per layer, then the readout's; see ``_backward``)."""
        _backward(signal, grads, self.dtype(decay), *self.backward_tail)

    def bind_backward(
        self, signal: np.ndarray, grads: tuple[np.ndarray, ...], decay: float
    ) -> Callable[[], None]:
        """:meth:`backward` with its arguments fixed (the same buffers every call): a zero-argument call."""
        return bind(_backward, (signal, grads, self.dtype(decay), *self.backward_tail))


def _per_neuron(values: np.ndarray, hidden: int, dtype: np.dtype) -> np.ndarray:
    """A contiguous ``[H]`` copy of a scalar or per-neuron parameter."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype=dtype), (hidden,)))
