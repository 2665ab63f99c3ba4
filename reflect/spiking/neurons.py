"""Neuron dynamics as pure functions over state and parameter NamedTuples (torch, with autograd).

:func:`neuron_step` runs one step of any registered model (:mod:`reflect.spiking.models`) on tensors::

    r_t = reset(h_{t-1}, s_{t-1}, p)       (detached from the gradient when ``detach_reset``)
    h_t = step(h_{t-1}, s_{t-1}, r_t, y_t, p)
    s_t = H(excess(h_t, p))                (surrogate derivative in the backward pass)

A layer's state is a NamedTuple of the model's states followed by the last spikes ``s``, each
``[batch, neurons]``: ``LIFState(v, s)``, ``ALIFState(v, a, s)``, ``CUBAState(i, v, s)``
(:func:`state_type`). :func:`lif_step` and :func:`alif_step` are the same step with the constants
given as :class:`LIFParameters` / :class:`ALIFParameters`. With ``detach_reset`` (the default, as in
e-prop) the reset term is a constant of the gradient; ALIF's adaptation keeps its dependence on
``s_{t-1}`` either way. Parameters may be Python floats, 0-d tensors (per layer) or ``[neurons]``
tensors (per neuron).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor

from reflect.formulas.leaky import leaky_integrate
from reflect.spiking.models import neuron_model
from reflect.spiking.models.alif import ALIF
from reflect.spiking.models.lif import LIF
from reflect.spiking.models.registry import NeuronModel
from reflect.spiking.surrogate import Surrogate, spike

Scalar = float | Tensor

_STATE_TYPES: dict[str, type] = {}


def state_type(model: NeuronModel | str) -> Any:
    """The NamedTuple of a layer's state for ``model``: its states, then ``s`` (``LIFState(v, s)``)."""
    model = neuron_model(model) if isinstance(model, str) else model
    known = _STATE_TYPES.get(model.name)
    if known is not None:
        return known
    fields = [(name, Tensor) for name in (*model.states, "s")]
    created: Any = NamedTuple(f"{model.name.upper()}State", fields)  # type: ignore[misc]
    created.__doc__ = (f"{model.name} layer state: " + ", ".join(f"``{n}``" for n in (*model.states, "s"))
                       + ", each ``[batch, neurons]``.")
    created.__module__ = __name__
    _STATE_TYPES[model.name] = created
    return created


LIFState = state_type(LIF)
ALIFState = state_type(ALIF)


class LIFParameters(NamedTuple):
    """LIF constants: membrane decay ``beta`` in [0, 1), threshold ``theta`` > 0."""

    beta: Scalar = 0.5
    theta: Scalar = 1.0
    detach_reset: bool = True


class ALIFParameters(NamedTuple):
    """ALIF constants: LIF's plus adaptation decay ``rho`` and adaptation strength ``beta_a``."""

    beta: Scalar = 0.5
    theta: Scalar = 1.0
    rho: Scalar = 0.9
    beta_a: Scalar = 0.5
    detach_reset: bool = True


def neuron_step(
    model: NeuronModel, y: Tensor, state: Any, constants: Sequence[Scalar], surrogate: Surrogate,
    detach_reset: bool = True,
) -> tuple[Tensor, Any]:
    """One step of ``model``. ``y``: input current ``[batch, neurons]``; ``state``: the layer state
    (:func:`state_type`); ``constants``: the model's constants in its order. Returns ``(s_t, state_t)``."""
    h, s_prev = tuple(state[:-1]), state[-1]
    r = model.reset(h, s_prev, constants)
    if detach_reset:
        r = r.detach()
    h = model.step(h, s_prev, r, y, constants)
    s = spike(model.excess(h, constants), surrogate)
    return s, state_type(model)(*h, s)


def lif_step(y: Tensor, state: Any, params: LIFParameters, surrogate: Surrogate) -> tuple[Tensor, Any]:
    """One LIF step. Returns ``(s_t, LIFState(v_t, s_t))``."""
    return neuron_step(LIF, y, state, params[:2], surrogate, params.detach_reset)


def alif_step(y: Tensor, state: Any, params: ALIFParameters, surrogate: Surrogate) -> tuple[Tensor, Any]:
    """One ALIF step. Returns ``(s_t, ALIFState(v_t, a_t, s_t))``."""
    return neuron_step(ALIF, y, state, params[:4], surrogate, params.detach_reset)


def leaky_integrator_step(y: Tensor, o_prev: Tensor, decay: Scalar) -> Tensor:
    """One leaky-integrator step ``o_t = decay * o_{t-1} + (1 - decay) * y_t`` (``[batch, outputs]``)."""
    return leaky_integrate(o_prev, y, decay)
