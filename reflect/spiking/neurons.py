"""Neuron dynamics as pure functions: ``step(input_current, state, params) -> (spikes, new_state)``.

Discrete time. With input current ``y_t`` (shape ``[batch, neurons]``):

LIF (one state per neuron, ``h_t = v_t``), subtractive reset::

    v_t = beta * (v_{t-1} - theta * s_{t-1}) + (1 - beta) * y_t
    s_t = H(v_t - theta)

ALIF (two states per neuron, ``h_t = (v_t, a_t)``), adaptive threshold ``theta_t = theta + beta_a * a_t``::

    v_t = beta * (v_{t-1} - theta_{t-1} * s_{t-1}) + (1 - beta) * y_t
    a_t = rho * a_{t-1} + s_{t-1}
    s_t = H(v_t - theta_t)

Leaky-integrator readout (no spikes)::

    o_t = decay * o_{t-1} + (1 - decay) * y_t

The reset subtracts the threshold the neuron crossed, so the residual charge above threshold is kept.
With ``detach_reset`` (the default, as in e-prop) the reset term ``theta_{t-1} * s_{t-1}`` is treated
as a constant by the gradient; the ALIF adaptation keeps its dependence on ``s_{t-1}`` either way.
``H`` is the Heaviside step with the surrogate derivative of :mod:`reflect.spiking.surrogate`.
Parameters may be Python floats, 0-d tensors (per layer) or ``[neurons]`` tensors (per neuron).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from reflect.spiking.surrogate import Surrogate, spike

Scalar = float | Tensor


class LIFParameters(NamedTuple):
    """LIF constants: membrane decay ``beta`` in [0, 1), threshold ``theta`` > 0."""

    beta: Scalar = 0.5
    theta: Scalar = 1.0
    detach_reset: bool = True


class LIFState(NamedTuple):
    """LIF state: membrane ``v`` and last spikes ``s``, both ``[batch, neurons]``."""

    v: Tensor
    s: Tensor


class ALIFParameters(NamedTuple):
    """ALIF constants: LIF's plus adaptation decay ``rho`` and adaptation strength ``beta_a``."""

    beta: Scalar = 0.5
    theta: Scalar = 1.0
    rho: Scalar = 0.9
    beta_a: Scalar = 0.5
    detach_reset: bool = True


class ALIFState(NamedTuple):
    """ALIF state: membrane ``v``, adaptation ``a`` and last spikes ``s``, all ``[batch, neurons]``."""

    v: Tensor
    a: Tensor
    s: Tensor


def _reset_term(threshold: Scalar, s_prev: Tensor, detach: bool) -> Tensor:
    term = threshold * s_prev
    return term.detach() if detach else term


def lif_step(
    y: Tensor, state: LIFState, params: LIFParameters, surrogate: Surrogate
) -> tuple[Tensor, LIFState]:
    """One LIF step. ``y``: input current ``[batch, neurons]``. Returns ``(s_t, LIFState(v_t, s_t))``."""
    beta, theta = params.beta, params.theta
    v = beta * (state.v - _reset_term(theta, state.s, params.detach_reset)) + (1.0 - beta) * y
    s = spike(v - theta, surrogate)
    return s, LIFState(v, s)


def alif_step(
    y: Tensor, state: ALIFState, params: ALIFParameters, surrogate: Surrogate
) -> tuple[Tensor, ALIFState]:
    """One ALIF step. ``y``: input current ``[batch, neurons]``.

    Returns ``(s_t, ALIFState(v_t, a_t, s_t))``.
    """
    beta, theta = params.beta, params.theta
    threshold_prev = theta + params.beta_a * state.a
    v = beta * (state.v - _reset_term(threshold_prev, state.s, params.detach_reset)) + (1.0 - beta) * y
    a = params.rho * state.a + state.s
    s = spike(v - (theta + params.beta_a * a), surrogate)
    return s, ALIFState(v, a, s)


def leaky_integrator_step(y: Tensor, o_prev: Tensor, decay: Scalar) -> Tensor:
    """One leaky-integrator step ``o_t = decay * o_{t-1} + (1 - decay) * y_t`` (``[batch, outputs]``)."""
    return decay * o_prev + (1.0 - decay) * y
