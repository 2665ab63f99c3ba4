"""One parameter group of the learner: its log-prob (or value) trace per stream and its ObGD update.

For the trainable tensors ``theta`` of one network (in :meth:`TraceEngine.parameters` layout) and ``B``
streams, the group keeps ``z`` as one flat buffer ``[B, |theta|]`` and applies, per environment step::

    z_b   <- gamma * lambda * z_b + g_b            (g_b from the engine's eligibility traces)
    theta <- theta + (1 / B) * sum_b step_b * delta_b * z_b,
    step_b = alpha / max(1, kappa * alpha * max(|delta_b|, 1) * ||z_b||_1)      (ObGD)

At ``B = 1`` every operation is a single fused call on preallocated buffers.

A group can also train a few parameters that live outside the network (:meth:`attach_extra`, e.g. a
Gaussian policy's log-std ``[P]``): they get their own trace ``[B, P]``, count towards ``||z_b||_1``, and
take the same step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from reflect.kernels.updates import OneStreamUpdate, bind_decay_add
from reflect.learning.obgd import obgd_step_size, obgd_step_sizes
from reflect.traces.engine import TraceEngine


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
        batch = engine.batch_size
        sizes = [p.numel() for p in self.params]
        ref = self.params[0]
        self.z = ref.new_zeros(batch, sum(sizes))
        self.views = self._stream_views(self.z, sizes)
        self.fresh = ref.new_zeros(batch, sum(sizes))  # a score computed ahead of its absorb()
        self.fresh_views = self._stream_views(self.fresh, sizes)
        out = engine.network.readout.out_features
        self.signal = ref.new_zeros(batch, out)
        self.signal_np = self.signal.numpy()
        self._one_stream = ref.new_zeros(batch, out)
        self._coefficients = ref.new_zeros(1, batch)
        self._update = ref.new_zeros(1, sum(sizes))
        self._update_views = [
            flat.view(p.shape)
            for flat, p in zip(torch.split(self._update[0], sizes), self.params, strict=True)
        ]
        self.extra_params: np.ndarray | None = None
        self.extra_grad: np.ndarray | None = None
        self.extra_z = np.zeros((batch, 0))
        self.extra_lr_scale = 1.0
        # numpy views of the same memory, for the single-stream update on the engine's numpy path
        self._numpy = engine.numpy_path
        if self._numpy:
            self.z_np, self.fresh_np = self.z.numpy(), self.fresh.numpy()
            self.params_np = [p.detach().numpy() for p in self.params]
            self.views_np = [v.numpy() for v in self.views[0]]
        # compiled single-stream calls bound to these buffers (set up again when extras are attached)
        self.compiled_update: OneStreamUpdate | None = None
        self.fresh_views_np: tuple[np.ndarray, ...] = ()
        self._accumulate_one: Callable[[], None] | None = None
        self._fresh_one: Callable[[], None] | None = None
        self._absorb: Callable[[], None] | None = None
        self._extra_accumulate: Callable[[], None] | None = None
        self._bind_compiled()

    def _bind_compiled(self) -> None:
        compiled = self.engine.compiled
        if compiled is None:
            return
        self._absorb = bind_decay_add(self.z_np, self.fresh_np, self.decay)
        if self.extra_grad is not None:
            self._extra_accumulate = bind_decay_add(self.extra_z, self.extra_grad, self.decay)
        if self.batch_size != 1:
            return
        self._accumulate_one = compiled.bind_backward(self.signal_np, tuple(self.views_np), self.decay)
        self.fresh_views_np = tuple(v.numpy() for v in self.fresh_views[0])
        self._fresh_one = compiled.bind_backward(self.signal_np, self.fresh_views_np, 0.0)
        self.compiled_update = OneStreamUpdate(
            tuple(self.params_np), tuple(self.views_np), self.z_np[0], self.extra_params,
            None if self.extra_params is None else self.extra_z[0], self.extra_lr_scale,
        )

    def attach_extra(self, params: np.ndarray, grad: np.ndarray, lr_scale: float = 1.0) -> None:
        """Train ``params`` ``[P]`` (updated in place) with this group; ``grad`` ``[B, P]`` holds their
        same-step score gradient, written by its owner before every :meth:`accumulate`. Their step is
        the group's bounded step times ``lr_scale``."""
        if grad.shape != (self.batch_size, params.shape[0]):
            raise ValueError(f"grad must have shape {(self.batch_size, params.shape[0])}, got {grad.shape}")
        self.extra_params, self.extra_grad = params, grad
        self.extra_z = np.zeros(grad.shape)
        self.extra_lr_scale = float(lr_scale)
        self._bind_compiled()

    def _stream_views(self, flat: Tensor, sizes: list[int]) -> list[list[Tensor]]:
        return [
            [part.view(p.shape) for part, p in zip(torch.split(flat[b], sizes), self.params, strict=True)]
            for b in range(flat.shape[0])
        ]

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    def _backward(self, target: list[list[Tensor]], decay: float, rows: np.ndarray | None) -> None:
        bound = self._accumulate_one if target is self.views else self._fresh_one
        if bound is not None:
            bound()
            return
        if self.batch_size == 1:
            self.engine.backward(self.signal_np if self._numpy else self.signal, target[0], decay)
            return
        one = self._one_stream
        for b, views in enumerate(target):
            if rows is None or rows[b]:
                one.zero_()
                one[b] = self.signal[b]
                self.engine.backward(one, views, decay)

    def accumulate(self) -> None:
        """``z_b <- decay * z_b + g_b`` for every stream, from ``self.signal`` (``dL_b/do_b``, ``[B, out]``).

        Must run after the engine's step for this time step and before its next one.
        """
        self._backward(self.views, self.decay, None)
        if self.extra_grad is not None:
            if self._extra_accumulate is not None:
                self._extra_accumulate()
            else:
                self.extra_z *= self.decay
                self.extra_z += self.extra_grad

    def compute_fresh(self, rows: np.ndarray | None = None) -> None:
        """``fresh_b <- g_b`` right after a step (for the streams in ``rows``, default all), to be added
        to the traces later by :meth:`absorb`: the score then uses the weights the step ran with."""
        self._backward(self.fresh_views, 0.0, rows)

    def absorb(self) -> None:
        """``z <- decay * z + fresh`` (the score saved by :meth:`compute_fresh`)."""
        if self._absorb is not None:
            self._absorb()
            return
        if self._numpy:
            self.z_np *= self.decay
            self.z_np += self.fresh_np
            return
        torch.add(self.fresh, self.z, alpha=self.decay, out=self.z)

    def trace_l1(self) -> np.ndarray:
        """``||z_b||_1`` per stream, ``[B]`` float64 (extra parameters included)."""
        l1 = self.z.abs().sum(dim=1, dtype=torch.float64).numpy()
        return l1 + np.abs(self.extra_z).sum(axis=1) if self.extra_params is not None else l1

    def apply(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounded update from the errors ``delta`` ``[B]``; returns step sizes and ``||z||_1``, ``[B]``."""
        l1 = self.trace_l1()
        steps = obgd_step_sizes(self.lr, self.kappa, delta, l1)
        coefficients = steps * delta / self.batch_size
        if self.batch_size == 1:
            torch._foreach_add_(self.params, self.views[0], alpha=float(coefficients[0]))
        else:
            self._coefficients.copy_(torch.from_numpy(coefficients).view(1, -1))
            torch.mm(self._coefficients, self.z, out=self._update)
            torch._foreach_add_(self.params, self._update_views)
        if self.extra_params is not None:
            self.extra_params += self.extra_lr_scale * (coefficients @ self.extra_z)
        return steps, l1

    def apply_one(self, delta: float) -> tuple[float, float]:
        """:meth:`apply` for a single stream with plain floats; returns ``(step size, ||z||_1)``."""
        if self.compiled_update is not None:  # norm, step size and both updates in one compiled call
            return self.compiled_update(self.lr, self.kappa, delta)
        extra = self.extra_params
        extra_l1 = float(np.abs(self.extra_z).sum()) if extra is not None else 0.0
        if self._numpy:
            l1 = float(np.abs(self.z_np).sum()) + extra_l1
            step = obgd_step_size(self.lr, self.kappa, delta, l1)
            coefficient = step * delta
            for param, trace in zip(self.params_np, self.views_np, strict=True):
                param += coefficient * trace
        else:
            l1 = float(torch.linalg.vector_norm(self.z, 1)) + extra_l1
            step = obgd_step_size(self.lr, self.kappa, delta, l1)
            coefficient = step * delta
            torch._foreach_add_(self.params, self.views[0], alpha=coefficient)
        if extra is not None:
            extra += (self.extra_lr_scale * coefficient) * self.extra_z[0]
        return step, l1

    def reset(self, done: np.ndarray) -> None:
        """Zero the traces of the streams whose episode ended (``done`` ``[B]`` bool)."""
        if self.batch_size == 1:
            if done[0]:
                self.z.zero_()
                self.fresh.zero_()
                self.extra_z.fill(0.0)
            return
        rows = torch.from_numpy(done)
        self.z[rows] = 0.0
        self.fresh[rows] = 0.0
        self.extra_z[done] = 0.0
