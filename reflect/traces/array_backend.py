"""The array backends: a network's step, backward pass and reset on whole arrays, for numpy views of the
engine's buffers (``numpy``) or the torch tensors themselves (``torch``, any device).

The math is the neuron model's registered formulas (:mod:`reflect.spiking.models`) and the surrogate's,
called on ``[B, H]`` arrays instead of the compiled backend's scalars; the equations are those of
:mod:`reflect.kernels.network`. Currents ``y = z @ W``, the learning signals sent down ``g @ W^T`` and
the outer products of the weight gradients are computed in the buffers' dtype (BLAS).
``numpy`` follows the compiled backend's rule for the rest (element-wise math in float64, results
rounded into the buffers' dtype); ``torch``, the backend of other devices (and of large networks
where numba is missing), computes in the buffers' dtype throughout, as PyTorch does (a float64 network
in float64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reflect.formulas.current_norm import current_norm_apply, current_norm_statistics
from reflect.formulas.leaky import leaky_integrate
from reflect.spiking.surrogate import surrogate_function

if TYPE_CHECKING:
    from reflect.traces.engine import TraceEngine

PP_PROP = "pp-prop"


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _torch(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach()


def _widen_numpy(x: Any) -> Any:
    return np.asarray(x, dtype=np.float64)


def _same(x: Any) -> Any:
    return x


def _expand(d: Any) -> Any:
    """A per-neuron factor (a number, ``[H]`` or ``[B, H]``) shaped to scale ``[B, R, H]`` traces."""
    return d[:, None, :] if getattr(d, "ndim", 0) == 2 else d


class ArrayNetwork:
    """The network kernels of one :class:`TraceEngine` on whole arrays.

    Args:
        engine: the engine whose buffers these are.
        library: ``"numpy"`` (numpy views of the buffers, CPU) or ``"torch"`` (the tensors).
    """

    def __init__(self, engine: TraceEngine, library: str) -> None:
        view: Callable[[torch.Tensor], Any] = _numpy if library == "numpy" else _torch
        self.widen: Callable[[Any], Any] = _widen_numpy if library == "numpy" else _same
        self.library = library
        self.engine = engine
        self.model = engine.model
        self.derivative = surrogate_function(engine.surrogate.name).derivative
        self.slope = float(engine.surrogate.slope)
        self.algorithm = engine.algorithm
        self.alpha_f = engine.alpha_f
        self.layers = []
        for layer in engine.layer_buffers:
            self.layers.append({key: (view(value) if isinstance(value, torch.Tensor) else value)
                                for key, value in layer.items()})
            self.layers[-1]["consts"] = tuple(view(c) for c in layer["constants"])
        readout = engine.readout_buffers
        self.readout = {key: (view(value) if isinstance(value, torch.Tensor) else value)
                        for key, value in readout.items()}
        self.correction = view(engine.correction)

    def native(self, array: Any) -> Any:
        """``array`` as this library's type (a numpy view of a tensor; a tensor on the engine's device)."""
        if self.library == "numpy":
            return array.detach().numpy() if isinstance(array, torch.Tensor) else array
        if isinstance(array, torch.Tensor):
            return array
        return torch.from_numpy(np.asarray(array)).to(self.engine.output.device)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, traces: bool, active: np.ndarray | None = None) -> None:
        """One step (see :class:`reflect.traces.backends.NetworkKernels`). Whole-array code steps every
        stream: with ``active`` the others' state and traces are saved and put back."""
        if active is None:
            self._forward(traces)
            return
        keep = torch.from_numpy(~np.asarray(active, dtype=bool)).to(self.engine.output.device)
        engine = self.engine
        tensors = engine.state_tensors()
        saved = {name: t.movedim(engine.stream_axis(name), 0)[keep].clone() for name, t in tensors.items()}
        self._forward(traces)
        for name, t in tensors.items():
            t.movedim(engine.stream_axis(name), 0)[keep] = saved[name]

    def _forward(self, traces: bool) -> None:
        widen, model = self.widen, self.model
        if traces and self.alpha_f > 0.0:
            self.correction[...] = self.alpha_f * self.correction + (1.0 - self.alpha_f)
        for layer in self.layers:
            z, spikes = layer["z"], layer["spikes"]
            if layer["recurrent"]:
                n_in = layer["in_features"]
                z[:, n_in:n_in + spikes.shape[1]] = spikes
            y = widen(z @ layer["w"])
            gain = layer["current_norm"]
            if gain > 0.0:  # the input current normalised across the neurons; dy'/dy = scale per stream
                mean, scale = current_norm_statistics(y, gain)
                y = current_norm_apply(y, mean, scale)
            h = layer["h"]
            hp = tuple(widen(h[k]) for k in range(h.shape[0]))
            p = tuple(widen(c) for c in layer["consts"])
            s_prev = widen(spikes)
            reset = model.reset(hp, s_prev, p)
            hn = model.step(hp, s_prev, reset, y, p)
            u = model.excess(hn, p)
            if traces:
                self._advance_traces(layer, hp, s_prev, reset, y, p, widen(layer["psi"]),
                                     scale if gain > 0.0 else None)
                layer["psi"][...] = self.derivative(u, self.slope)
            for k in range(h.shape[0]):
                h[k] = hn[k]
            spikes[...] = u > 0.0
        readout = self.readout
        z = readout["z"]
        y = widen(z @ readout["w"])
        decay = readout["decay"]
        if decay > 0.0:
            readout["o"][...] = leaky_integrate(widen(readout["o"]), y, decay)
            if traces:
                readout["eps"][...] = leaky_integrate(widen(readout["eps"]), widen(z), decay)
        else:
            readout["o"][...] = y

    def _advance_traces(self, layer: dict[str, Any], hp: tuple[Any, ...], s_prev: Any, reset: Any, y: Any,
                        p: tuple[Any, ...], psi_prev: Any, input_scale: Any = None) -> None:
        """``input_scale`` ``[B, 1]``: the current normalisation's ``dy'/dy`` (None: no normalisation)."""
        model, widen, detach = self.model, self.widen, layer["detach"]
        states = len(hp)
        d = model.state_jacobian(hp, s_prev, reset, y, psi_prev, p, detach)
        d_f = model.input_jacobian(hp, s_prev, reset, y, p)
        if input_scale is not None:
            d_f = tuple(part * input_scale for part in d_f)
        for k in range(states):
            layer["df"][k] = d_f[k]

        def advance(trace: Any, immediate: Any, scale: Callable[[Any], Any] = lambda v: v) -> list[Any]:
            old = [widen(trace[k]) for k in range(states)]
            return [sum((scale(d[s * states + k]) * old[k] for k in range(states)), start=immediate[s])
                    for s in range(states)]

        if layer["learn"]:
            d_p = model.parameter_jacobian(hp, s_prev, reset, y, psi_prev, p, detach)
            for q, index in enumerate(layer["learn"]):
                etrace = layer["etrace"][q]
                for s, value in enumerate(advance(etrace, d_p[index])):
                    etrace[s] = value
        if self.algorithm == PP_PROP:
            alpha_x = layer["alpha_x"]
            if alpha_x is None:  # follow the model's decay constant (it may be learned)
                constant = layer["consts"][layer["decay_index"]]
                alpha_x = float(constant.mean() if constant.ndim and len(constant) > 1 else constant.sum())
            layer["eps_x"][...] = alpha_x * widen(layer["eps_x"]) + widen(layer["z"])
            if self.alpha_f > 0.0:
                eps_f = layer["eps_f"]
                zero = [0.0] * states
                for s, value in enumerate(advance(eps_f, zero)):
                    eps_f[s] = self.alpha_f * value + (1.0 - self.alpha_f) * d_f[s]
            return
        eps = layer["eps"]
        z = widen(layer["z"])[:, :, None]
        increment = [z * _expand(d_f[s]) for s in range(states)]
        for s, value in enumerate(advance(eps, increment, _expand)):
            eps[s] = value

    # ----------------------------------------------------------------------------------- backward
    def backward(self, signal: Any, grads: tuple[Any, ...], decay: float,
                 active: np.ndarray | None = None) -> None:
        """Per-stream gradients (the handle of :meth:`TraceEngine.stream_gradients`) from ``dL/do``;
        with ``active`` the other streams' rows are saved and put back."""
        if active is None:
            self._backward(signal, grads, decay)
            return
        keep = ~np.asarray(active, dtype=bool)
        flat = grads[0]
        rows = keep if isinstance(flat, np.ndarray) else torch.from_numpy(keep).to(flat.device)
        saved = flat[rows].copy() if isinstance(flat, np.ndarray) else flat[rows].clone()
        self._backward(signal, grads, decay)
        flat[rows] = saved

    def _backward(self, signal: Any, grads: tuple[Any, ...], decay: float) -> None:
        widen, model = self.widen, self.model
        flat, offsets, const_table = grads
        layers = len(self.layers)
        readout = self.readout
        signal = widen(signal) if self.library == "numpy" else signal.to(flat.dtype)
        pre = widen(readout["eps"] if readout["decay"] > 0.0 else readout["z"])
        _accumulate_outer(flat, int(offsets[layers]), pre, signal, decay)
        up = (1.0 - readout["decay"]) * self._times_transposed(signal, readout["w"][: readout["in_features"]])
        const_start = int(offsets[layers + 1])
        consts = flat[:, const_start:const_start + _table_width(const_table)]
        consts[...] = 0.0 if decay == 0.0 else decay * widen(consts)
        for index in range(layers - 1, -1, -1):
            layer = self.layers[index]
            h, p = layer["h"], tuple(widen(c) for c in layer["consts"])
            hp = tuple(widen(h[k]) for k in range(h.shape[0]))
            du_dh, du_dp = model.excess_jacobian(hp, p)
            g_u = up * widen(layer["psi"])
            delta = [g_u * du_dh[s] for s in range(len(hp))]
            weighted = sum((delta[s] * widen(layer["df"][s]) for s in range(len(hp))), start=0.0 * g_u)
            if self.algorithm == PP_PROP:
                post = weighted
                if self.alpha_f > 0.0:
                    inv_c = 1.0 / widen(self.correction)[:, None]
                    post = sum((delta[s] * widen(layer["eps_f"][s]) for s in range(len(hp))),
                               start=0.0 * g_u) * inv_c
                _accumulate_outer(flat, int(offsets[index]), widen(layer["eps_x"]), post, decay)
            else:
                block = sum((_expand(delta[s]) * widen(layer["eps"][s]) for s in range(len(hp))), start=0.0)
                _accumulate(flat, int(offsets[index]), block, decay)
            for row in const_table:
                if int(row[0]) != index:
                    continue
                q, column, width = int(row[1]), const_start + int(row[2]), int(row[3])
                g = g_u * du_dp[layer["learn"][q]]
                for s in range(len(hp)):
                    g = g + delta[s] * widen(layer["etrace"][q][s])
                if width > 1:
                    flat[:, column:column + width] += g
                else:
                    flat[:, column] += g.sum(axis=1)
            if index > 0:
                up = self._times_transposed(weighted, layer["w"][: layer["in_features"]])

    def _times_transposed(self, vector: Any, w: Any) -> Any:
        """``vector @ w.T`` (``[B, H] x [R, H]^T``) in the weights' dtype (BLAS), as the compiled backend
        computes it, widened for the element-wise math that follows."""
        cast = vector.astype(w.dtype, copy=False) if self.library == "numpy" else vector.to(w.dtype)
        return self.widen(cast @ w.T)

    # -------------------------------------------------------------------------------------- reset
    def reset(self, done: np.ndarray) -> None:
        """Zero state and traces of the streams where ``done`` (``[B]`` bool)."""
        if self.library == "torch":
            done = self.native(done)
        for layer in self.layers:
            for key in ("psi", "spikes", "eps_x"):
                layer[key][done] = 0.0
            for key in ("h", "eps_f", "eps"):
                layer[key][:, done] = 0.0
            layer["etrace"][:, :, done] = 0.0
        self.readout["o"][done] = 0.0
        self.readout["eps"][done] = 0.0
        self.correction[done] = 0.0


def _accumulate(flat: Any, start: int, value: Any, decay: float) -> None:
    """``flat[:, block] <- decay * flat[:, block] + value`` for the block of ``value`` ``[B, ...]`` that
    starts at column ``start`` (``decay == 0`` overwrites)."""
    value = value.reshape(value.shape[0], -1)
    block = flat[:, start:start + value.shape[1]]
    block[...] = value if decay == 0.0 else decay * block + value


def _accumulate_outer(flat: Any, start: int, pre: Any, post: Any, decay: float) -> None:
    """``G_b <- decay * G_b + pre_b (outer) post_b`` for the blocks ``G_b`` ``[R, H]`` stored row-major in
    ``flat[b, start:]`` (``pre`` ``[B, R]``, ``post`` ``[B, H]``; ``decay == 0`` overwrites), in place and
    in the buffer's dtype, as the compiled backend computes it (torch: one batched BLAS call)."""
    batch, rows, cols = pre.shape[0], pre.shape[1], post.shape[1]
    if isinstance(flat, torch.Tensor):
        block = flat[:, start:start + rows * cols].view(batch, rows, cols)
        block.baddbmm_(pre.to(flat.dtype)[:, :, None], post.to(flat.dtype)[:, None, :], beta=decay)
        return
    block = flat[:, start:start + rows * cols].reshape(batch, rows, cols)  # a view: the slice is contiguous
    outer = pre.astype(flat.dtype, copy=False)[:, :, None] * post.astype(flat.dtype, copy=False)[:, None, :]
    if decay == 0.0:
        block[...] = outer
    else:
        block *= flat.dtype.type(decay)
        block += outer


def _table_width(table: Any) -> int:
    """Columns of the learned constants (the end of the table's last entry)."""
    return int(table[-1, 2] + table[-1, 3]) if len(table) else 0
