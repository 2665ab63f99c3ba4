"""The neuron-model plug-in interface: what a model declares, and the registry that holds the models.

A neuron model is a handful of **element-wise formulas** written with Python operators only, so that one
definition runs on numpy arrays, torch tensors (with autograd), and scalars inside compiled (numba)
kernels. Per neuron, with ``S`` hidden states ``h`` (e.g. LIF ``(v,)``), the last spike ``s``, the input
current ``y`` and the constants ``p`` (a tuple in the order of :attr:`NeuronModel.parameters`)::

    r_t = reset(h_{t-1}, s_{t-1}, p)                 the reset term (a constant of the gradient when the
                                                     layer detaches its reset)
    h_t = step(h_{t-1}, s_{t-1}, r_t, y_t, p)        a tuple of S new states
    u_t = excess(h_t, p)                             the spike fires where u_t > 0:  s_t = H(u_t)

and the hand-derived Jacobian blocks the eligibility traces need (``psi = sigma'(u)``, the surrogate
derivative of the spike; ``detach``: whether the reset term is left out of the gradient)::

    state_jacobian(h_{t-1}, s_{t-1}, r_t, y_t, psi_{t-1}, p, detach)
        -> D_t = dh_t/dh_{t-1}, S*S numbers row-major (D[i*S + k] = dh_t[i]/dh_{t-1}[k]), including the
           path through s_{t-1} = H(u_{t-1}) (and, without detach, through the reset term)
    input_jacobian(h_{t-1}, s_{t-1}, r_t, y_t, p)
        -> D_f,t = dh_t/dy_t, S numbers
    parameter_jacobian(h_{t-1}, s_{t-1}, r_t, y_t, psi_{t-1}, p, detach)
        -> for every constant q, the S numbers dh_t/dp_q with h_{t-1} held fixed (the path through
           s_{t-1} included)
    excess_jacobian(h_t, p)
        -> (du_t/dh_t: S numbers, du_t/dp: one number per constant)

Every function returns tuples of floats (never ints), so compiled kernels get one number type.
Each model registers itself with :func:`register_neuron_model`; layers, trace engines, compiled kernels,
export, configs and the command line look models up here and loop over what they declare.
``docs/ARCHITECTURE.md`` shows how to add one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reflect.registry import Registry

# a margin that keeps a projected constant strictly inside an open bound (a decay stays below 1)
OPEN_BOUND_MARGIN = 1e-4


@dataclass(frozen=True)
class ParameterSpec:
    """One constant of a neuron model: its name, default value and valid range.

    The range is ``[low, high]``, with either end open (``low_open`` / ``high_open``). A learnable
    constant is projected back into the range after every update (:meth:`projection`).
    """

    name: str
    default: float
    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True
    doc: str = ""

    def describe(self) -> str:
        """The range as text, e.g. ``[0, 1)`` or ``> 0``."""
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the valid range."""
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def projection(self) -> tuple[float, float]:
        """The closed interval a learned value is clipped into after each update."""
        low = self.low + OPEN_BOUND_MARGIN if self.low_open else self.low
        high = self.high - OPEN_BOUND_MARGIN if self.high_open and math.isfinite(self.high) else self.high
        return low, high


Formula = Callable[..., Any]


@dataclass(frozen=True)
class NeuronModel:
    """A registered neuron model (see the module docstring for the formulas' contracts).

    Attributes:
        name: the name configs and the command line use (``network.neuron``).
        states: the hidden states carried by the traces, e.g. ``("v",)``; the spike ``s`` comes after
            them in a layer's state.
        parameters: the constants, in the order the formulas take them.
        input_trace_decay: the constant that pp-prop's input trace decays with (``alpha_x``), read at
            every step so a learned value is followed.
        summary: one line for help texts.
    """

    name: str
    states: tuple[str, ...]
    parameters: tuple[ParameterSpec, ...]
    reset: Formula
    step: Formula
    excess: Formula
    state_jacobian: Formula
    input_jacobian: Formula
    parameter_jacobian: Formula
    excess_jacobian: Formula
    input_trace_decay: str
    summary: str = ""

    def __post_init__(self) -> None:
        names = self.parameter_names
        if len(set(names)) != len(names):
            raise ValueError(f"neuron model {self.name!r} names a constant twice: {names}")
        if self.input_trace_decay not in names:
            raise ValueError(
                f"neuron model {self.name!r}: input_trace_decay {self.input_trace_decay!r} is not one "
                f"of its constants {names}"
            )
        if not self.states or "s" in self.states:
            raise ValueError(f"neuron model {self.name!r} needs at least one state, and 's' is the spike's")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.parameters)

    @property
    def num_states(self) -> int:
        return len(self.states)

    def parameter(self, name: str) -> ParameterSpec:
        """The spec of constant ``name``; raises ``ValueError`` naming the model's constants."""
        for spec in self.parameters:
            if spec.name == name:
                return spec
        raise ValueError(
            f"neuron model {self.name!r} has no constant {name!r}: its constants are "
            f"{', '.join(self.parameter_names)}"
        )

    def index(self, name: str) -> int:
        """Position of constant ``name`` in the formulas' ``p`` tuple."""
        return self.parameter_names.index(self.parameter(name).name)


_MODELS: Registry[NeuronModel] = Registry("neuron model")


def register_neuron_model(model: NeuronModel) -> NeuronModel:
    """Add ``model`` to the registry (a second model of the same name is an error); returns it."""
    return _MODELS.add(model.name, model)


def neuron_model(name: str) -> NeuronModel:
    """The registered model ``name``; raises ``ValueError`` listing the registered ones."""
    return _MODELS.get(name)


def neuron_model_names() -> tuple[str, ...]:
    """Names of the registered models, in registration order."""
    return _MODELS.names()
