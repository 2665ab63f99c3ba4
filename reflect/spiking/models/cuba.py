"""CUBA: current-based LIF, a LIF neuron behind a synaptic filter (two states, current ``i``, membrane
``v``).

::

    i_t = alpha * i_{t-1} + y_t
    v_t = beta * (v_{t-1} - r_t) + (1 - beta) * i_t,   r_t = theta * s_{t-1}      s_t = H(v_t - theta)

The synaptic current keeps a trace of the input with time constant ``alpha``, so the neuron has memory
even with a memoryless membrane (``beta = 0``). pp-prop's input trace decays with ``alpha``: exact for a
memoryless membrane and a detached reset. Jacobians (bracketed: only with the reset in the gradient)::

    D = [[alpha, 0], [(1 - beta) alpha, beta [ * (1 - theta psi_{t-1}) ]]]       D_f = (1, 1 - beta)
    dh/dalpha = (i_{t-1}, (1 - beta) i_{t-1})        dh/dbeta = (0, v_{t-1} - r_t - i_t)
    dh/dtheta = (0, 0 [ + beta (theta psi_{t-1} - s_{t-1}) ])
    du/dh = (0, 1),   du/dp = (0, 0, -1)
"""

from __future__ import annotations

from reflect.formulas.leaky import leaky_integrate
from reflect.spiking.models.registry import NeuronModel, ParameterSpec, register_neuron_model


# p = (alpha, beta, theta); h = (i, v)
def reset(h, s, p):
    return p[2] * s


def step(h, s, r, y, p):
    i, v = h
    current = p[0] * i + y
    return (current, leaky_integrate(v - r, current, p[1]))


def excess(h, p):
    return h[1] - p[2]


def state_jacobian(h, s, r, y, psi, p, detach):
    alpha, beta, theta = p
    d_vv = beta if detach else beta * (1.0 - theta * psi)
    return (alpha, 0.0, (1.0 - beta) * alpha, d_vv)


def input_jacobian(h, s, r, y, p):
    return (1.0, 1.0 - p[1])


def parameter_jacobian(h, s, r, y, psi, p, detach):
    i, v = h
    alpha, beta, theta = p
    zero = 0.0
    current = alpha * i + y
    reset_theta = zero if detach else beta * (theta * psi - s)
    return ((i, (1.0 - beta) * i), (zero, v - r - current), (zero, reset_theta))


def excess_jacobian(h, p):
    return (0.0, 1.0), (0.0, 0.0, -1.0)


CUBA = register_neuron_model(NeuronModel(
    name="cuba",
    states=("i", "v"),
    parameters=(
        ParameterSpec("alpha", 0.9, 0.0, 1.0, doc="synaptic current decay"),
        ParameterSpec("beta", 0.5, 0.0, 1.0, doc="membrane decay"),
        ParameterSpec("theta", 1.0, 0.0, low_open=True, doc="firing threshold"),
    ),
    reset=reset, step=step, excess=excess, state_jacobian=state_jacobian, input_jacobian=input_jacobian,
    parameter_jacobian=parameter_jacobian, excess_jacobian=excess_jacobian,
    input_trace_decay="alpha",
    summary="current-based LIF: a synaptic filter on the input current, then a LIF membrane",
))
