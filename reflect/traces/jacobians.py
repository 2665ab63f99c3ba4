"""Hand-derived Jacobians of the LIF/ALIF dynamics, for the eligibility traces.

Notation (braintrace): hidden state ``h_t`` (``S`` states per neuron), ``D_t = dh_t/dh_{t-1}``
restricted to each neuron's own ``S x S`` block, ``D_f,t = dh_t/dy_t``. ``psi = sigma'(v - threshold)``
is the surrogate derivative of the spike. All tensors are ``[batch, neurons]`` (or broadcast to it).

LIF, ``h = v`` (``S = 1``)::

    D   = beta                                  (detach_reset)
    D   = beta * (1 - theta * psi_{t-1})         (reset in the gradient)
    D_f = 1 - beta

ALIF, ``h = (v, a)`` (``S = 2``), ``thr_{t-1} = theta + beta_a * a_{t-1}``::

    D_vv = beta  [ - beta * thr_{t-1} * psi_{t-1} ]
    D_va = 0     [ + beta * beta_a * (thr_{t-1} * psi_{t-1} - s_{t-1}) ]
    D_av = psi_{t-1}
    D_aa = rho - beta_a * psi_{t-1}
    D_f  = (1 - beta, 0)

(bracketed terms only when the reset is part of the gradient). Immediate derivatives with respect to
per-neuron constants, holding ``h_{t-1}`` fixed, drive the exact traces of learnable ``beta``/``theta``::

    dv_t/dbeta  = v_{t-1} - thr_{t-1} * s_{t-1} - y_t
    dv_t/dtheta = 0  [ + beta * (thr_{t-1} * psi_{t-1} - s_{t-1}) ]
    da_t/dtheta = -psi_{t-1}                    (ALIF)

Every function writes into ``out`` and returns it (no allocation in the hot path).
"""

from __future__ import annotations

from torch import Tensor


def lif_state_jacobian(out: Tensor, beta: Tensor, theta: Tensor, psi_prev: Tensor) -> Tensor:
    """LIF ``D_t = beta * (1 - theta * psi_{t-1})`` with the reset in the gradient."""
    out.copy_(psi_prev).mul_(theta).neg_().add_(1.0).mul_(beta)
    return out


def alif_state_jacobian(
    out_vv: Tensor, out_va: Tensor, out_av: Tensor, out_aa: Tensor,
    beta: Tensor, rho: Tensor, beta_a: Tensor,
    threshold_prev: Tensor, s_prev: Tensor, psi_prev: Tensor, detach_reset: bool,
) -> None:
    """ALIF ``D_t`` blocks, written into the four ``out_*`` tensors."""
    if detach_reset:
        out_vv.copy_(beta.expand_as(out_vv))
        out_va.zero_()
    else:
        # D_vv = beta * (1 - thr psi);  D_va = beta * beta_a * (thr psi - s)
        out_vv.copy_(threshold_prev).mul_(psi_prev)
        out_va.copy_(out_vv).sub_(s_prev).mul_(beta * beta_a)
        out_vv.neg_().add_(1.0).mul_(beta)
    out_av.copy_(psi_prev)
    out_aa.copy_(psi_prev).mul_(-beta_a).add_(rho)


def membrane_theta_derivative(
    out: Tensor, beta: Tensor, threshold_prev: Tensor, s_prev: Tensor, psi_prev: Tensor
) -> Tensor:
    """``dv_t/dtheta = beta * (thr_{t-1} * psi_{t-1} - s_{t-1})`` (reset in the gradient)."""
    out.copy_(threshold_prev).mul_(psi_prev).sub_(s_prev).mul_(beta)
    return out
