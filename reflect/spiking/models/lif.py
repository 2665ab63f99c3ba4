"""LIF: the leaky integrate-and-fire neuron with a subtractive reset (one state, the membrane ``v``).

::

    r_t = theta * s_{t-1}
    v_t = beta * (v_{t-1} - r_t) + (1 - beta) * y_t          s_t = H(v_t - theta)

The reset subtracts the threshold the neuron crossed, so charge above it is kept. Jacobians
(``psi = sigma'(v - theta)``; bracketed terms only when the reset is part of the gradient)::

    D    = beta [ * (1 - theta * psi_{t-1}) ]          D_f = 1 - beta
    dv/dbeta  = v_{t-1} - r_t - y_t
    dv/dtheta = 0 [ + beta * (theta * psi_{t-1} - s_{t-1}) ]
    du/dv = 1,   du/dbeta = 0,   du/dtheta = -1
"""

from __future__ import annotations

from reflect.formulas.leaky import leaky_integrate
from reflect.spiking.models.registry import NeuronModel, ParameterSpec, register_neuron_model


# p = (beta, theta); h = (v,)
def reset(h, s, p):
    return p[1] * s


def step(h, s, r, y, p):
    return (leaky_integrate(h[0] - r, y, p[0]),)


def excess(h, p):
    return h[0] - p[1]


def state_jacobian(h, s, r, y, psi, p, detach):
    beta, theta = p
    if detach:
        return (beta,)
    return (beta * (1.0 - theta * psi),)


def input_jacobian(h, s, r, y, p):
    return (1.0 - p[0],)


def parameter_jacobian(h, s, r, y, psi, p, detach):
    beta, theta = p
    d_beta = h[0] - r - y
    if detach:
        return ((d_beta,), (0.0,))
    return ((d_beta,), (beta * (theta * psi - s),))


def excess_jacobian(h, p):
    return (1.0,), (0.0, -1.0)


LIF = register_neuron_model(NeuronModel(
    name="lif",
    states=("v",),
    parameters=(
        ParameterSpec("beta", 0.5, 0.0, 1.0, doc="membrane decay"),
        ParameterSpec("theta", 1.0, 0.0, low_open=True, doc="firing threshold"),
    ),
    reset=reset, step=step, excess=excess, state_jacobian=state_jacobian, input_jacobian=input_jacobian,
    parameter_jacobian=parameter_jacobian, excess_jacobian=excess_jacobian,
    input_trace_decay="beta",
    summary="leaky integrate-and-fire, subtractive reset",
))
