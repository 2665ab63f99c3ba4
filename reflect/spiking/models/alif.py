"""ALIF: LIF with an adaptive threshold (two states, membrane ``v`` and adaptation ``a``).

::

    thr_{t-1} = theta + beta_a * a_{t-1}             r_t = thr_{t-1} * s_{t-1}
    v_t = beta * (v_{t-1} - r_t) + (1 - beta) * y_t
    a_t = rho * a_{t-1} + s_{t-1}                     s_t = H(v_t - theta - beta_a * a_t)

The adaptation keeps its dependence on ``s_{t-1}`` in the gradient whether or not the reset is detached.
Jacobians (``psi = sigma'(u)``; bracketed terms only when the reset is part of the gradient)::

    D_vv = beta [ * (1 - thr psi_{t-1}) ]     D_va = 0 [ + beta * beta_a * (thr psi_{t-1} - s_{t-1}) ]
    D_av = psi_{t-1}                          D_aa = rho - beta_a * psi_{t-1}
    D_f  = (1 - beta, 0)
    dh/dbeta = (v_{t-1} - r_t - y_t, 0)        dh/dtheta  = (0 [+ beta (thr psi - s)], -psi_{t-1})
    dh/drho  = (0, a_{t-1})                    dh/dbeta_a = (0 [+ beta a (thr psi - s)], -psi_{t-1} a_{t-1})
    du/dh = (1, -beta_a),   du/dp = (0, -1, 0, -a_t)
"""

from __future__ import annotations

from reflect.formulas.leaky import leaky_integrate
from reflect.spiking.models.registry import NeuronModel, ParameterSpec, register_neuron_model


# p = (beta, theta, rho, beta_a); h = (v, a)
def reset(h, s, p):
    return (p[1] + p[3] * h[1]) * s


def step(h, s, r, y, p):
    return (leaky_integrate(h[0] - r, y, p[0]), p[2] * h[1] + s)


def excess(h, p):
    return h[0] - (p[1] + p[3] * h[1])


def state_jacobian(h, s, r, y, psi, p, detach):
    beta, theta, rho, beta_a = p
    d_aa = rho - beta_a * psi
    if detach:
        return (beta, 0.0, psi, d_aa)
    thr = theta + beta_a * h[1]
    return (beta * (1.0 - thr * psi), beta * beta_a * (thr * psi - s), psi, d_aa)


def input_jacobian(h, s, r, y, p):
    return (1.0 - p[0], 0.0)


def parameter_jacobian(h, s, r, y, psi, p, detach):
    v, a = h
    beta, theta, beta_a = p[0], p[1], p[3]
    zero = 0.0
    if detach:
        reset_theta = zero
        reset_beta_a = zero
    else:
        gap = (theta + beta_a * a) * psi - s
        reset_theta = beta * gap
        reset_beta_a = beta * a * gap
    return ((v - r - y, zero), (reset_theta, -psi), (zero, a), (reset_beta_a, -psi * a))


def excess_jacobian(h, p):
    return (1.0, -p[3]), (0.0, -1.0, 0.0, -h[1])


ALIF = register_neuron_model(NeuronModel(
    name="alif",
    states=("v", "a"),
    parameters=(
        ParameterSpec("beta", 0.5, 0.0, 1.0, doc="membrane decay"),
        ParameterSpec("theta", 1.0, 0.0, low_open=True, doc="baseline threshold"),
        ParameterSpec("rho", 0.9, 0.0, 1.0, doc="adaptation decay"),
        ParameterSpec("beta_a", 0.5, 0.0, doc="adaptation strength"),
    ),
    reset=reset, step=step, excess=excess, state_jacobian=state_jacobian, input_jacobian=input_jacobian,
    parameter_jacobian=parameter_jacobian, excess_jacobian=excess_jacobian,
    input_trace_decay="beta",
    summary="adaptive-threshold LIF (the threshold rises after each spike and decays back)",
))
