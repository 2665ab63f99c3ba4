"""One parameter group of the learner: its log-prob (or value) trace per stream and its bounded update.

For the trainable tensors ``theta`` of one network (in :meth:`TraceEngine.parameters` layout) and ``B``
streams, the group keeps ``z`` as one flat buffer ``[B, |theta|]`` (float, the network's dtype) and, per
environment step::

    z_b   <- gamma * lambda * z_b + g_b            (g_b from the engine's eligibility traces)
    theta <- theta + (1 / B) * sum_b step_b * delta_b * z_b,
    step_b = obgd_step_size(alpha, kappa, delta_b, ||z_b||_1)          (reflect.formulas.obgd)

then clips every learned neuron constant back into its valid range. A group can also train a few
parameters that live outside the network (:meth:`attach_extra`, e.g. a Gaussian policy's log-std
``[P]``): they get their own trace ``[B, P]``, count towards ``||z_b||_1`` and take the same step times
a scale. The compiled backend runs the same steps as loops (:mod:`reflect.kernels.learning_ops`) on
:meth:`compiled_handle`; the methods here are the array form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reflect.formulas.obgd import obgd_step_size
from reflect.traces.engine import TraceEngine

OK, BAD_TRACE = 0, 1


class TraceGroup:
    """Traces ``z`` ``[B, |theta|]`` and the bounded update of one engine's parameters.

    Args:
        engine: the network's trace engine (gives ``g_b`` from a same-step learning signal).
        decay: the trace decay ``gamma * lambda``.
        lr: ``alpha``; kappa: the ObGD bound.
    """

    def __init__(self, engine: TraceEngine, decay: float, lr: float, kappa: float) -> None:
        self.engine = engine
        self.decay, self.lr, self.kappa = float(decay), float(lr), float(kappa)
        self.params = engine.parameters()
        batch, size = engine.batch_size, engine.num_parameters()
        ref = self.params[0]
        self.z = ref.new_zeros(batch, size)
        self.fresh = ref.new_zeros(batch, size)  # a score computed ahead of its absorb()
        self.grads = engine.stream_gradients(self.z)
        self.fresh_grads = engine.stream_gradients(self.fresh)
        sizes = [p.numel() for p in self.params]
        self.views = [[part.view(p.shape) for part, p in zip(torch.split(self.z[b], sizes), self.params,
                                                            strict=True)] for b in range(batch)]
        self._update = ref.new_zeros(1, size)
        self._update_views = [part.view(p.shape) for part, p in zip(torch.split(self._update[0], sizes),
                                                                    self.params, strict=True)]
        self._coefficients = ref.new_zeros(1, batch)
        self.offsets = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
        self.bounds = engine.constant_bounds()
        self.extra_params: np.ndarray | None = None
        self.extra_grad = np.zeros((batch, 0))
        self.extra_z = np.zeros((batch, 0))
        self.extra_lr_scale = 1.0
        self._all = np.ones(batch, dtype=bool)

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    def attach_extra(self, params: np.ndarray, grad: np.ndarray, lr_scale: float = 1.0) -> None:
        """Train ``params`` ``[P]`` (float64, updated in place) with this group; ``grad`` ``[B, P]`` holds
        their same-step score, written by its owner before every :meth:`accumulate`. Their step is the
        group's bounded step times ``lr_scale``."""
        if grad.shape != (self.batch_size, params.shape[0]):
            raise ValueError(f"grad must have shape {(self.batch_size, params.shape[0])}, got {grad.shape}")
        self.extra_params, self.extra_grad = params, grad
        self.extra_z = np.zeros(grad.shape)
        self.extra_lr_scale = float(lr_scale)

    # ------------------------------------------------------------------------------ the steps
    def accumulate(self, signal: np.ndarray) -> None:
        """``z_b <- decay * z_b + g_b`` for every stream, from ``signal = dL_b/do_b`` ``[B, out]``."""
        self.engine.stream_backward(signal, self.grads, self.decay)
        if self.extra_params is not None:
            self.extra_z *= self.decay
            self.extra_z += self.extra_grad

    def compute_fresh(self, signal: np.ndarray, active: np.ndarray | None = None) -> None:
        """``fresh_b <- g_b`` right after a step (for the streams where ``active``), to be added to the
        traces later by :meth:`absorb`: the score then uses the weights the step ran with."""
        self.engine.stream_backward(signal, self.fresh_grads, 0.0, active)

    def absorb(self) -> None:
        """``z <- decay * z + fresh``."""
        torch.add(self.fresh, self.z, alpha=self.decay, out=self.z)

    def trace_l1(self) -> np.ndarray:
        """``||z_b||_1`` per stream, ``[B]`` float64 (extra parameters included)."""
        l1 = self.z.abs().sum(dim=1, dtype=torch.float64).cpu().numpy()
        return l1 + np.abs(self.extra_z).sum(axis=1) if self.extra_params is not None else l1

    def apply(self, delta: np.ndarray, lr: float, kappa: float, sums: np.ndarray) -> int:
        """The bounded update from the errors ``delta`` ``[B]``; adds the mean step size and ``||z||_1``
        to ``sums[0]``, ``sums[1]``. Returns ``BAD_TRACE``, changing no weight, if a trace norm is not
        finite."""
        l1 = self.trace_l1()
        if not np.isfinite(l1).all():
            return BAD_TRACE
        batch = self.batch_size
        steps = [obgd_step_size(lr, kappa, float(d), float(n)) for d, n in zip(delta, l1, strict=True)]
        coefficients = [s * float(d) / batch for s, d in zip(steps, delta, strict=True)]
        with torch.no_grad():
            if batch == 1:
                torch._foreach_add_(self.params, self.views[0], alpha=coefficients[0])
            else:
                self._coefficients.copy_(torch.tensor(coefficients).view(1, -1))
                torch.mm(self._coefficients, self.z, out=self._update)
                torch._foreach_add_(self.params, self._update_views)
            for tensor, low, high in self.bounds:
                tensor.clamp_(low, high)
        if self.extra_params is not None:
            self.extra_params += self.extra_lr_scale * (np.asarray(coefficients) @ self.extra_z)
        sums[0] += sum(steps) / batch
        sums[1] += float(l1.mean())
        return OK

    def reset(self, done: np.ndarray) -> None:
        """Zero the traces of the streams whose episode ended (``done`` ``[B]`` bool)."""
        rows = torch.from_numpy(np.asarray(done, dtype=bool))
        self.z[rows] = 0.0
        self.fresh[rows] = 0.0
        self.extra_z[done] = 0.0

    # --------------------------------------------------------------------------- compiled form
    def compiled_handle(self) -> tuple[Any, ...]:
        """The group's buffers for :mod:`reflect.kernels.learning_ops` (positions there)."""
        params = tuple(p.detach().numpy().reshape(1, -1) if p.dim() < 2 else p.detach().numpy()
                       for p in self.params)
        bounds = np.array([(self._param_index(t), low, high) for t, low, high in self.bounds],
                          dtype=np.float64).reshape(-1, 3)
        extra = self.extra_params if self.extra_params is not None else np.zeros(0)
        _, offsets, table = self.grads
        numbers = np.zeros(2 + self.batch_size)
        numbers[:2] = (self.decay, self.extra_lr_scale)
        return (self.z.numpy(), self.fresh.numpy(), offsets, table, params, self.offsets, extra, self.extra_z,
                self.extra_grad, bounds, numbers, np.zeros(2, dtype=self.z.numpy().dtype))

    def _param_index(self, tensor: Tensor) -> int:
        for k, p in enumerate(self.params):
            if p.data_ptr() == tensor.data_ptr() and p.shape == tensor.shape:
                return k
        raise ValueError("a learned constant is not among the group's parameters")

    # ----------------------------------------------------------------------------- diagnosis
    def parameter_names(self) -> list[str]:
        """A name per tensor of :attr:`params` (``layers.0 weights``, ``layers.0.beta``, ...)."""
        layers = self.engine.network.spiking_layers
        names = [f"layers.{i} weights" for i in range(len(layers))]
        for i, layer in enumerate(layers):
            names += [f"layers.{i}.{name}" for name in layer.learnable_constants()]
        return [*names, "readout weights"]

    def describe_non_finite(self) -> str:
        """Which parameters' traces hold NaN or inf, and what looks like the cause."""
        names = self.parameter_names()
        parts = torch.split(self.z, [p.numel() for p in self.params], dim=1)
        bad = [name for name, part in zip(names, parts, strict=True) if not torch.isfinite(part).all()]
        if self.extra_params is not None and not np.isfinite(self.extra_z).all():
            bad.append("the head's log-std")
        broken = [name for name, p in zip(names, self.params, strict=True) if not torch.isfinite(p).all()]
        finite = self.z[torch.isfinite(self.z)]
        largest = float(finite.abs().max()) if finite.numel() else math.nan
        where = ", ".join(bad) if bad else "its traces"
        if broken:
            cause = f"{', '.join(broken)} already hold NaN or inf"
        else:
            cause = (f"the weights are finite and the largest finite trace entry is {largest:.3g}: the "
                     "traces grew without bound (unscaled observations or rewards, or a step size too large "
                     "for them: lower the learning rate or raise kappa)")
        return f"in {where}: {cause}"
