"""The compiled backend's network kernels: :mod:`reflect.kernels.network` specialised for a neuron model
and surrogate, bound to one engine's buffers (numpy views of its tensors, so every path sees one state).
"""

from __future__ import annotations

import functools
import types
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reflect.kernels import network as network_template
from reflect.kernels.compiler import bind, bundle
from reflect.kernels.specialize import specialize
from reflect.spiking.models import neuron_model
from reflect.spiking.surrogate import surrogate_function

if TYPE_CHECKING:
    from reflect.traces.engine import TraceEngine


def model_bindings(model_name: str, surrogate_name: str) -> dict[str, Any]:
    """What the network template needs of a neuron model and a surrogate."""
    model = neuron_model(model_name)
    return {
        "model_reset": model.reset, "model_step": model.step, "model_excess": model.excess,
        "model_state_jacobian": model.state_jacobian, "model_input_jacobian": model.input_jacobian,
        "model_parameter_jacobian": model.parameter_jacobian, "model_excess_jacobian": model.excess_jacobian,
        "surrogate_derivative": surrogate_function(surrogate_name).derivative,
        "STATES": model.num_states, "PARAMS": len(model.parameters),
    }


@functools.cache
def network_kernels(model_name: str, surrogate_name: str) -> types.SimpleNamespace:
    """The network template compiled for one neuron model and surrogate (once per process; numba's
    disk cache keeps the machine code between processes)."""
    bindings = model_bindings(model_name, surrogate_name)
    return specialize(network_template, bindings, compiled=True, tag=f"{model_name}_{surrogate_name}")


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


class CompiledNetwork:
    """The compiled forward, backward and reset of one :class:`TraceEngine`.

    :attr:`net` is the tuple of buffers the template reads (positions in :mod:`reflect.kernels.network`).
    """

    def __init__(self, engine: TraceEngine) -> None:
        self.kernels = network_kernels(engine.model.name, engine.surrogate.name)
        layers, readout = engine.layer_buffers, engine.readout_buffers
        count = len(layers)
        info = np.zeros((count, 4), dtype=np.int64)
        scalars = np.zeros((count, 4))
        for i, layer in enumerate(layers):
            info[i] = (int(layer["recurrent"]), layer["in_features"], int(layer["detach"]),
                       layer["decay_index"])
            scalars[i] = (np.nan if layer["alpha_x"] is None else layer["alpha_x"], engine.alpha_f,
                          engine.surrogate.slope, layer["current_norm"])

        def each(key: str) -> tuple[Any, ...]:
            return tuple(_np(layer[key]) for layer in layers)

        self.net = (
            (*each("z"), _np(readout["z"])), each("w"), each("h"), each("psi"), each("df"), each("jac"),
            each("eps_x"), each("eps_f"), each("eps"), each("etrace"),
            tuple(tuple(_np(c).reshape(1, -1) for c in layer["constants"]) for layer in layers),
            tuple(np.asarray(layer["learn"], dtype=np.int64) for layer in layers),
            each("y"), each("delta"), each("weighted"), each("up"), info, scalars,
            (_np(readout["w"]), _np(readout["y"]), _np(readout["o"]), _np(readout["eps"])),
            np.array([readout["decay"]]), 0 if engine.algorithm == "pp-prop" else 1, _np(engine.correction),
            _np(engine.cast),
        )
        self.all_streams = np.ones(engine.batch_size, dtype=bool)
        self._forward_calls: dict[bool, Any] = {}  # bound on first use (a learner may never step it)
        self._bundle: Any = None

    def forward(self, traces: bool, active: np.ndarray | None = None) -> None:
        """One step of the whole network (inputs already in the first ``z``)."""
        if active is not None:
            self.kernels.network_forward(self.net, traces, active)
            return
        call = self._forward_calls.get(traces)
        if call is None:
            if self._bundle is None:
                self._bundle = bundle((self.net, self.all_streams))
            call = self._forward_calls[traces] = bind(self.kernels.forward_entry, (self._bundle, traces))
        call()

    @staticmethod
    def native(array: Any) -> np.ndarray:
        """``array`` as numpy (a view of a CPU tensor)."""
        return array.detach().numpy() if isinstance(array, torch.Tensor) else array

    def backward(self, signal: np.ndarray, grads: tuple[Any, ...], decay: float,
                 active: np.ndarray | None = None) -> None:
        """Per-stream gradients (layout of :meth:`TraceEngine.stream_gradients`)."""
        self.kernels.network_backward(self.net, signal, grads, float(decay),
                                      self.all_streams if active is None else active)

    def bind_backward(self, signal: np.ndarray, grads: tuple[Any, ...], decay: float) -> Any:
        """:meth:`backward` for every stream with its arguments fixed: a call without arguments."""
        return bind(self.kernels.network_backward, (self.net, signal, grads, float(decay), self.all_streams))

    def reset(self, done: np.ndarray) -> None:
        self.kernels.network_reset(self.net, done)
