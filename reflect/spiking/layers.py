"""Spiking layers and the leaky-integrator readout as thin ``nn.Module`` wrappers.

Every module maps ``(input, state) -> (output, new_state)`` through the pure step functions of
:mod:`reflect.spiking.neurons`; resets are data (see :class:`reflect.spiking.network.SpikingNetwork`).

Weights are stored ``[in_features, out_features]`` (input index first, as in the eligibility-trace
notation ``eps[i, j]``), so the input current is ``y = x @ weight + bias``. The weight, recurrent
weight and bias of a layer are views of one *packed* tensor ``[in (+ out if recurrent) + 1, out]``::

    packed = [weight; recurrent_weight; bias]      y = [x, s_{t-1}, 1] @ packed

which lets the online engine compute currents and all weight gradients of a layer with one matrix
product each. The views stay bound through ``.to()``, ``.double()`` and ``load_state_dict``;
do not rebind ``.data`` of these parameters by hand.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from reflect.formulas.current_norm import current_norm_apply, current_norm_statistics
from reflect.formulas.leaky import leaky_integrate
from reflect.spiking.models import NeuronModel, neuron_model, neuron_model_names
from reflect.spiking.neurons import neuron_step, state_type
from reflect.spiking.surrogate import Surrogate, check_surrogate

DEFAULT_SURROGATE = Surrogate()
LayerState = Any  # the NamedTuple of reflect.spiking.neurons.state_type(model): (*states, s)


def __getattr__(name: str) -> Any:
    if name == "NEURONS":  # the registered neuron models (plug-ins may add some after import)
        return neuron_model_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_current_norm(gain: float) -> float:
    """Return the normalisation gain ``gain`` as a float, or raise ``ValueError`` unless it is finite and
    ``>= 0`` (0 turns the normalisation off)."""
    if not (gain >= 0.0 and math.isfinite(gain)):
        raise ValueError(f"current_norm must be finite and >= 0 (0: off), got {gain}")
    return float(gain)


class Spread(NamedTuple):
    """A constant given per neuron, evenly spaced from ``low`` (the first neuron) to ``high`` (the last):
    heterogeneous time constants, for instance ``beta=Spread(0.0, 0.95)``."""

    low: float
    high: float

    def values(self, size: int) -> Tensor:
        """``[size]`` values from ``low`` to ``high``."""
        return torch.linspace(self.low, self.high, size, dtype=torch.get_default_dtype())


def _neuron_constant(
    module: nn.Module, name: str, value: float | Sequence[float] | Tensor | Spread, size: int,
    per_neuron: bool, learnable: bool,
) -> None:
    """Register ``name`` as a 0-d (per layer) or ``[size]`` (per neuron) parameter or buffer."""
    if isinstance(value, Spread):
        value = value.values(size)
    tensor = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
    if tensor.dim() == 0 and per_neuron:
        tensor = tensor.expand(size).clone()
    if tensor.shape not in (torch.Size([]), torch.Size([size])):
        raise ValueError(
            f"{name} must be a number or a sequence of {size} numbers (one per neuron), "
            f"got shape {tuple(tensor.shape)}"
        )
    if learnable:
        module.register_parameter(name, nn.Parameter(tensor))
    else:
        module.register_buffer(name, tensor)


class PackedLinear(nn.Module):
    """Base for modules whose ``weight`` (and ``recurrent_weight``) and ``bias`` share one storage."""

    in_features: int
    out_features: int
    recurrent: bool
    packed: Tensor

    def _init_packed(self, in_features: int, out_features: int, recurrent: bool, scale: float,
                     sparsity: float = 0.0) -> None:
        self.in_features, self.out_features, self.recurrent = in_features, out_features, recurrent
        fan_in = in_features + (out_features if recurrent else 0)
        rows = fan_in + 1
        bound = scale / math.sqrt(fan_in)
        packed = torch.empty(rows, out_features).uniform_(-bound, bound)
        packed[-1].uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))
        if sparsity > 0.0:  # sparse start: each weight zero with probability sparsity
            keep = torch.rand(fan_in, out_features) >= sparsity
            packed[:fan_in] *= keep.to(packed.dtype)
        self.weight = nn.Parameter(packed[:in_features])
        if recurrent:
            self.recurrent_weight = nn.Parameter(packed[in_features:fan_in])
        self.bias = nn.Parameter(packed[fan_in])
        self._bind_packed(packed)

    def _packed_parts(self) -> list[Tensor]:
        parts: list[Tensor] = [self.weight]
        if self.recurrent:
            parts.append(self.recurrent_weight)
        return [*parts, self.bias]

    def _bind_packed(self, packed: Tensor) -> None:
        self.packed = packed
        start = 0
        for param in self._packed_parts():
            rows = 1 if param.dim() == 1 else param.shape[0]
            view = packed[start:start + rows]
            param.data = view[0] if param.dim() == 1 else view
            start += rows

    def packed_is_bound(self) -> bool:
        """True while every parameter is still a view of :attr:`packed`."""
        base = self.packed.data_ptr()
        row = self.packed.stride(0) * self.packed.element_size()
        offsets = [0, self.in_features * row] if self.recurrent else [0]
        offsets.append((self.packed.shape[0] - 1) * row)
        return all(p.data_ptr() == base + o for p, o in zip(self._packed_parts(), offsets, strict=True))

    def _repack(self) -> None:
        """Rebuild :attr:`packed` from the parameters if they no longer share it."""
        if not self.packed_is_bound():
            parts = [p.data.reshape(-1, self.out_features) for p in self._packed_parts()]
            self._bind_packed(torch.cat(parts))

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Any:
        super()._apply(fn, recurse)
        self._repack()  # a conversion (.double(), .to()) gives each parameter its own storage
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> PackedLinear:
        # Parameter.__deepcopy__ clones each parameter on its own; rebind the copy to one packed tensor
        copy_ = type(self).__new__(type(self))
        memo[id(self)] = copy_
        for key, value in self.__dict__.items():
            copy_.__dict__[key] = copy.deepcopy(value, memo)
        copy_._repack()
        return copy_

    def current(self, x: Tensor, s_prev: Tensor | None = None) -> Tensor:
        """Input current ``y = x @ weight (+ s_prev @ recurrent_weight) + bias``: ``[batch, out]``."""
        y = torch.addmm(self.bias, x, self.weight)
        if self.recurrent:
            assert s_prev is not None
            y = y + s_prev @ self.recurrent_weight
        return y


class SpikingLayer(PackedLinear):
    """A feed-forward or recurrent layer of spiking neurons of any registered model.

    Args:
        in_features: size of the input ``x`` (``[batch, in_features]``).
        out_features: number of neurons.
        neuron: a registered neuron model (:func:`reflect.spiking.models.neuron_model_names`:
            ``lif``, ``alif``, ``cuba``).
        recurrent: add recurrent weights from the layer's own spikes of the previous step.
        per_neuron: give each neuron its own value of every constant even when a number is given.
        learn: names of the constants to train (``learn_beta`` / ``learn_theta`` add ``beta`` / ``theta``).
        detach_reset: treat the reset term as a constant in gradients (default, as in e-prop).
        surrogate: surrogate derivative used by the spike function.
        weight_scale: weights start uniform in ``+-weight_scale / sqrt(fan_in)``. The default 4 lets
            a layer fed by another layer's sparse spikes still reach threshold (a 4-128-128 LIF network
            on standard-normal inputs fires at about 18% and 5% per step; with 1, the second layer is
            silent).
        weight_sparsity: the fraction of weights that start at zero (each independently, drawn from
            torch's global generator; the others as without it, so the input current's variance is
            ``1 - weight_sparsity`` times the dense start's); every weight learns. With few inputs
            most neurons start driven by one input or none, each a threshold on one observation value.
        **constants: the model's constants (LIF ``beta``, ``theta``; ALIF also ``rho``, ``beta_a``; CUBA
            ``alpha``, ``beta``, ``theta``): a number (per layer), one per neuron, or a :class:`Spread`
            (one per neuron, evenly spaced over a range); the model's defaults otherwise. Each is
            checked against its valid range.
        current_norm: the gain ``g`` of the input current's normalisation across the layer's neurons
            (:mod:`reflect.formulas.current_norm`: mean 0 and standard deviation ``g`` per stream and
            step, statistics detached); 0 leaves the current as it is.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        neuron: str = "lif",
        recurrent: bool = False,
        per_neuron: bool = False,
        learn: Sequence[str] = (),
        learn_beta: bool = False,
        learn_theta: bool = False,
        detach_reset: bool = True,
        surrogate: Surrogate = DEFAULT_SURROGATE,
        weight_scale: float = 4.0,
        weight_sparsity: float = 0.0,
        current_norm: float = 0.0,
        **constants: float | Sequence[float] | Tensor | Spread,
    ) -> None:
        super().__init__()
        self.model: NeuronModel = neuron_model(neuron)
        self.current_norm = check_current_norm(current_norm)
        if in_features < 1 or out_features < 1:
            raise ValueError(f"layer sizes must be positive, got {in_features} -> {out_features}")
        learnable = {*learn, *(["beta"] if learn_beta else []), *(["theta"] if learn_theta else [])}
        for name in (*constants, *learnable):
            self.model.parameter(name)  # an unknown name is an error naming the model's constants
        self.neuron = neuron
        self.detach_reset = detach_reset
        self.surrogate = check_surrogate(surrogate)
        if not 0.0 <= weight_sparsity < 1.0:
            raise ValueError(f"weight_sparsity must be in [0, 1), got {weight_sparsity}")
        self._init_packed(in_features, out_features, recurrent, weight_scale, weight_sparsity)
        for spec in self.model.parameters:
            value = constants.get(spec.name, spec.default)
            _neuron_constant(self, spec.name, value, out_features, per_neuron, spec.name in learnable)
            values = getattr(self, spec.name).detach().reshape(-1).tolist()
            bad = [x for x in values if not spec.contains(x)]
            if bad:
                raise ValueError(
                    f"{neuron} constant {spec.name} ({spec.doc}) must be in {spec.describe()}, got {bad[0]:g}"
                )

    @property
    def states_per_neuron(self) -> int:
        """Hidden states per neuron ``S`` (LIF 1: ``v``; ALIF 2: ``v``, ``a``; CUBA 2: ``i``, ``v``)."""
        return self.model.num_states

    def constants(self) -> tuple[Tensor, ...]:
        """The model's constants in its order, each 0-d (per layer) or ``[out_features]``."""
        return tuple(getattr(self, name) for name in self.model.parameter_names)

    def learnable_constants(self) -> list[str]:
        """Names of the constants that are trained (``nn.Parameter``s)."""
        return [name for name in self.model.parameter_names if getattr(self, name).requires_grad]

    @torch.no_grad()
    def project_constants_(self) -> None:
        """Clip every learned constant back into its valid range (e.g. a decay into ``[0, 1)``)."""
        for name in self.learnable_constants():
            low, high = self.model.parameter(name).projection()
            getattr(self, name).clamp_(low, high)

    def initial_state(self, batch_size: int) -> LayerState:
        """All-zero state for ``batch_size`` streams."""
        zeros = self.packed.new_zeros(batch_size, self.out_features)
        return state_type(self.model)(*(zeros.clone() for _ in range(self.model.num_states + 1)))

    def forward(self, x: Tensor, state: LayerState) -> tuple[Tensor, LayerState]:
        """``x``: ``[batch, in_features]`` -> spikes ``[batch, out_features]`` and the new state."""
        y = self.normalized(self.current(x, state.s))
        return neuron_step(self.model, y, state, self.constants(), self.surrogate, self.detach_reset)

    def normalized(self, y: Tensor) -> Tensor:
        """The input current ``y`` ``[batch, out_features]`` normalised across the neurons of each row
        (``current_norm`` > 0; the statistics detached), else ``y`` itself."""
        if self.current_norm == 0.0:
            return y
        with torch.no_grad():
            mean, scale = current_norm_statistics(y, self.current_norm)
        return current_norm_apply(y, mean, scale)

    def extra_repr(self) -> str:
        norm = f", current_norm={self.current_norm:g}" if self.current_norm else ""
        return (
            f"{self.in_features}, {self.out_features}, neuron={self.neuron}, recurrent={self.recurrent}{norm}"
        )


class LeakyReadout(PackedLinear):
    """Non-spiking readout ``o_t = decay * o_{t-1} + (1 - decay) * (s_t @ weight + bias)``.

    ``decay = 0`` gives a plain linear readout of the current spikes.
    """

    def __init__(self, in_features: int, out_features: int, *, decay: float = 0.0,
                 weight_scale: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"readout decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self._init_packed(in_features, out_features, False, weight_scale)

    def initial_state(self, batch_size: int) -> Tensor:
        """All-zero readout state ``[batch, out_features]``."""
        return self.packed.new_zeros(batch_size, self.out_features)

    def forward(self, s: Tensor, o_prev: Tensor) -> tuple[Tensor, Tensor]:
        """``s``: ``[batch, in_features]`` -> ``(o_t, o_t)``, ``[batch, out_features]``."""
        o = leaky_integrate(o_prev, self.current(s), self.decay)
        return o, o

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, decay={self.decay}"
