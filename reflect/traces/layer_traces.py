"""Online forward pass and eligibility traces of one spiking layer (in place, no autograd).

A :class:`LayerTraces` owns the buffers of one :class:`~reflect.spiking.layers.SpikingLayer` for
``B`` environment streams: the presynaptic vector ``z_t = [x_t, s_{t-1} (recurrent), 1]`` (``[B, R]``),
the neuron state, the surrogate derivatives and the traces. Per step, :meth:`forward` advances the
neurons and the traces; :meth:`backward` turns the same-step learning signal ``dL_t/ds_t`` into
gradients for every trainable parameter of the layer and the learning signal of the layer below.

Weight traces (``packed = [weight; recurrent_weight; bias]`` of shape ``[R, H]``):

* ``d-rtrl`` (exact for non-recurrent layers; ``[B, R, H, S]`` memory)::

      eps_t[i, j, s] = sum_k D_t[j, s, k] eps_{t-1}[i, j, k] + z_t[i] D_f,t[j, s]
      grad[i, j]     = sum_s delta_t[j, s] eps_t[i, j, s]

* ``pp-prop`` (ES-D-RTRL, factorised; ``[B, R + H * S]`` memory)::

      eps_x <- alpha_x eps_x + z_t
      eps_f <- alpha_f D_t eps_f + (1 - alpha_f) D_f,t
      grad   = eps_x (outer) (delta_t * eps_f / c_t),   c_t = 1 - alpha_f^(n+1)

Learnable per-neuron constants (``beta``, ``theta``) get exact diagonal traces in both modes::

      e_t = D_t e_{t-1} + dh_t/dp,      grad_p = delta_t . e_t (+ dL/ds_t * ds_t/dp for theta)

``delta_t = dL_t/dh_t = (dL/ds_t * psi_t, -beta_a * dL/ds_t * psi_t)`` (the ALIF ``a`` part only for
ALIF). Learning signals flow down through the same step only: ``dL/dx_t = (delta_v * (1 - beta)) @ W^T``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reflect.spiking.layers import SpikingLayer
from reflect.spiking.surrogate import SurrogateDerivative
from reflect.traces.jacobians import (
    alif_state_jacobian,
    lif_state_jacobian,
    membrane_theta_derivative,
)
from reflect.traces.numpy_path import NumpyLayerKernels, supports_numpy_path

ALGORITHMS = ("pp-prop", "d-rtrl")


class LayerTraces:
    """Buffers and per-step math of one layer for ``batch_size`` streams.

    Args:
        layer: the layer; its parameters are read and must be updated in place.
        z: this layer's presynaptic buffer ``[B, R]`` (last column is 1); the caller writes ``x_t``
            into ``z[:, :in_features]`` before :meth:`forward`.
        s: where to write this layer's spikes ``[B, H]`` (a view into the next layer's ``z``).
        algorithm: ``"pp-prop"`` or ``"d-rtrl"``.
        alpha_x: pp-prop input-trace decay; ``None`` follows the layer's (mean) ``beta``.
        alpha_f: pp-prop output-trace decay (0 keeps only the current ``D_f``).
        needs_input_signal: compute ``dL/dx_t`` for a layer below.
    """

    def __init__(
        self, layer: SpikingLayer, z: Tensor, s: Tensor, *, algorithm: str,
        alpha_x: float | None, alpha_f: float, needs_input_signal: bool,
    ) -> None:
        self.layer = layer
        self.algorithm = algorithm
        self.adaptive = layer.adaptive
        self.recurrent = layer.recurrent
        self.detach_reset = layer.detach_reset
        self.learn_beta = layer.beta.requires_grad
        self.learn_theta = layer.theta.requires_grad
        self.needs_input_signal = needs_input_signal
        batch, rows = z.shape
        hidden = layer.out_features
        self.z, self.s = z, s
        new = z.new_zeros
        # detached aliases of the parameters: in-place updates stay visible, autograd stays out
        self.packed = layer.packed
        self.weight_t = layer.packed[: layer.in_features].t()
        self.beta, self.theta = layer.beta.detach(), layer.theta.detach()
        self.rho, self.beta_a = layer.rho, layer.beta_a
        self.one_minus_beta = torch.rsub(self.beta, 1.0)
        self.surrogate_derivative = SurrogateDerivative(layer.surrogate, z)
        self.y, self.v = new(batch, hidden), new(batch, hidden)
        self.psi, self.psi_prev = new(batch, hidden), new(batch, hidden)
        if self.adaptive:
            self.a = new(batch, hidden)
            self.threshold = new(batch, hidden).add_(self.theta)
        # D_t is the constant beta for LIF with a detached reset; otherwise it is computed per step
        self.constant_jacobian = not self.adaptive and self.detach_reset
        if not self.constant_jacobian:
            self.d_vv = new(batch, hidden)
            if self.adaptive:
                self.d_va, self.d_av, self.d_aa = new(batch, hidden), new(batch, hidden), new(batch, hidden)
        states = 2 if self.adaptive else 1
        self.alpha_f = float(alpha_f)
        if algorithm == "pp-prop":
            decay = float(layer.beta.detach().mean()) if alpha_x is None else float(alpha_x)
            self.alpha_x = z.new_tensor(decay)
            self.eps_x = new(batch, rows)
            self.eps_x_t = self.eps_x.t()
            if self.alpha_f > 0.0:
                self.eps_f = [new(batch, hidden) for _ in range(states)]
        elif algorithm == "d-rtrl":
            self.eps = [new(batch, rows, hidden) for _ in range(states)]
            self.eps_scratch = new(batch, rows, hidden)
        else:
            raise ValueError(f"unknown trace algorithm {algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
        self.e_beta = [new(batch, hidden) for _ in range(states)] if self.learn_beta else []
        self.e_theta = [new(batch, hidden) for _ in range(states)] if self.learn_theta else []
        self.dv_dbeta = new(batch, hidden)
        self.immediate = new(batch, hidden)
        self.scratch = new(batch, hidden)
        self.delta_v, self.delta_a = new(batch, hidden), new(batch, hidden)
        self.signal = new(batch, hidden)
        self.input_signal = new(batch, layer.in_features)
        self.numpy_kernels = NumpyLayerKernels(self) if supports_numpy_path(self) else None

    # ----------------------------------------------------------------------------- forward
    def forward(self, traces: bool = True) -> None:
        """Advance the neurons (and, with ``traces``, the traces) by one step.

        ``z[:, :in]`` must hold ``x_t``. Without ``traces`` only the inference path runs: spikes and
        state advance, traces and surrogate derivatives do not (for frozen, act-only use).
        """
        if self.numpy_kernels is not None:
            self.numpy_kernels.forward(traces)
            return
        layer, s = self.layer, self.s
        if self.recurrent:
            self.z[:, layer.in_features:layer.in_features + layer.out_features].copy_(s)
        torch.mm(self.z, self.packed, out=self.y)
        if self.learn_beta:
            self.one_minus_beta.fill_(1.0).sub_(self.beta)
        threshold_prev = self.threshold if self.adaptive else self.theta
        if traces:
            self.psi, self.psi_prev = self.psi_prev, self.psi
            self._state_jacobian()
            self._advance_parameter_traces(threshold_prev)
        self.v.addcmul_(s, threshold_prev, value=-1.0)
        if traces and self.learn_beta:
            torch.sub(self.v, self.y, out=self.dv_dbeta)
            self._add_immediate(self.e_beta, self.dv_dbeta, None)
        self.v.lerp_(self.y, self.one_minus_beta)
        if self.adaptive:
            self.a.mul_(self.rho).add_(s)
            torch.mul(self.a, self.beta_a, out=self.threshold).add_(self.theta)
        threshold = self.threshold if self.adaptive else self.theta
        torch.gt(self.v, threshold, out=s)
        if traces:
            torch.sub(self.v, threshold, out=self.psi)
            self.surrogate_derivative(self.psi)
            self._advance_weight_traces()

    def _state_jacobian(self) -> None:
        if self.constant_jacobian:
            return
        if self.adaptive:
            alif_state_jacobian(
                self.d_vv, self.d_va, self.d_av, self.d_aa, self.beta, self.rho, self.beta_a,
                self.threshold, self.s, self.psi_prev, self.detach_reset,
            )
        else:
            lif_state_jacobian(self.d_vv, self.beta, self.theta, self.psi_prev)

    def _apply_jacobian(self, trace: list[Tensor]) -> None:
        """``trace <- D_t trace`` for ``S`` traces of shape ``[B, H]`` or ``[B, R, H]``."""
        if self.constant_jacobian:
            trace[0].mul_(self.beta)
            return
        expand = (lambda d: d.unsqueeze(1)) if trace[0].dim() == 3 else (lambda d: d)
        if not self.adaptive:
            trace[0].mul_(expand(self.d_vv))
            return
        e_v, e_a = trace
        new_v = self.eps_scratch if trace[0].dim() == 3 else self.scratch
        torch.mul(e_v, expand(self.d_vv), out=new_v).addcmul_(e_a, expand(self.d_va))
        e_a.mul_(expand(self.d_aa)).addcmul_(e_v, expand(self.d_av))
        e_v.copy_(new_v)

    def _add_immediate(self, trace: list[Tensor], d_v: Tensor | None, d_a: Tensor | None) -> None:
        if d_v is not None:
            trace[0].add_(d_v)
        if d_a is not None:
            trace[1].add_(d_a)

    def _advance_parameter_traces(self, threshold_prev: Tensor) -> None:
        """``e <- D_t e + dh_t/dp`` for learnable beta/theta (the beta term is added after the reset)."""
        if self.learn_beta:
            self._apply_jacobian(self.e_beta)
        if self.learn_theta:
            self._apply_jacobian(self.e_theta)
            d_v = None
            if not self.detach_reset:
                d_v = membrane_theta_derivative(
                    self.immediate, self.beta, threshold_prev, self.s, self.psi_prev
                )
            d_a = self.psi_prev.neg() if self.adaptive else None
            self._add_immediate(self.e_theta, d_v, d_a)

    def _advance_weight_traces(self) -> None:
        if self.algorithm == "pp-prop":
            self.eps_x.mul_(self.alpha_x).add_(self.z)
            if self.alpha_f > 0.0:
                self._apply_jacobian(self.eps_f)
                for e in self.eps_f:
                    e.mul_(self.alpha_f)
                self.eps_f[0].add_(self.one_minus_beta, alpha=1.0 - self.alpha_f)
            return
        self._apply_jacobian(self.eps)
        self.eps[0].addcmul_(self.z.unsqueeze(2), self.one_minus_beta.expand(self.v.shape[1]))

    # ---------------------------------------------------------------------------- backward
    def backward(
        self, signal: Tensor, grads: dict[str, Tensor], decay: float, inv_c: Tensor | None
    ) -> Tensor | None:
        """Gradients from the learning signal ``dL_t/ds_t`` (``[B, H]``), summed over streams.

        Writes ``grads[k] <- decay * grads[k] + grad_k`` for ``k`` in ``packed``, ``beta``, ``theta``
        (the latter two when learnable) and returns ``dL_t/dx_t`` (``[B, in]``) or ``None``.
        """
        torch.mul(signal, self.psi, out=self.delta_v)
        if self.adaptive:
            torch.mul(self.delta_v, self.beta_a, out=self.delta_a).neg_()
        deltas = [self.delta_v, self.delta_a] if self.adaptive else [self.delta_v]
        if self.learn_beta:
            self._accumulate_diagonal(grads["beta"], deltas, self.e_beta, None, decay)
        if self.learn_theta:
            self._accumulate_diagonal(grads["theta"], deltas, self.e_theta, self.delta_v, decay)
        weighted = self.signal  # delta_v * (1 - beta): learning signal of the input current y_t
        torch.mul(self.delta_v, self.one_minus_beta, out=weighted)
        if self.algorithm == "pp-prop":
            if self.alpha_f > 0.0:
                post = self.scratch
                torch.mul(self.delta_v, self.eps_f[0], out=post)
                if self.adaptive:
                    post.addcmul_(self.delta_a, self.eps_f[1])
                if inv_c is not None:
                    post.mul_(inv_c)
            else:
                post = weighted
            grads["packed"].addmm_(self.eps_x_t, post, beta=decay)
        else:
            prod = self.eps_scratch
            torch.mul(self.eps[0], self.delta_v.unsqueeze(1), out=prod)
            if self.adaptive:
                prod.addcmul_(self.eps[1], self.delta_a.unsqueeze(1))
            grads["packed"].mul_(decay).add_(prod.sum(0))
        if not self.needs_input_signal:
            return None
        return torch.mm(weighted, self.weight_t, out=self.input_signal)

    def _accumulate_diagonal(
        self, out: Tensor, deltas: list[Tensor], trace: list[Tensor], spatial: Tensor | None,
        decay: float,
    ) -> None:
        """``out <- decay * out + sum_b (sum_s delta_s * e_s [- dL/ds * psi])`` (theta: spatial term)."""
        total = self.scratch
        torch.mul(deltas[0], trace[0], out=total)
        for delta, e in zip(deltas[1:], trace[1:], strict=True):
            total.addcmul_(delta, e)
        if spatial is not None:
            total.sub_(spatial)  # ds_t/dtheta = -psi_t, and delta_v = dL/ds_t * psi_t
        grad = total.sum(0)
        out.mul_(decay).add_(grad.sum() if out.dim() == 0 else grad)

    # ------------------------------------------------------------------------------- reset
    def reset_streams(self, keep: Tensor) -> None:
        """Zero state and traces of the streams where ``keep`` (``[B, 1]``, 0/1) is 0."""
        for t in self.state_tensors():
            t.mul_(keep.view(-1, *([1] * (t.dim() - 1))))
        if self.adaptive:
            self.threshold.copy_(torch.mul(self.a, self.beta_a).add_(self.theta))

    def state_tensors(self) -> list[Tensor]:
        """Every per-stream buffer that carries information to the next step."""
        tensors = [self.v, self.s, self.psi]
        if self.adaptive:
            tensors += [self.a, self.threshold]
        if self.algorithm == "pp-prop":
            tensors.append(self.eps_x)
            if self.alpha_f > 0.0:
                tensors += self.eps_f
        else:
            tensors += self.eps
        return tensors + self.e_beta + self.e_theta
