"""The online gradient engine: forward, eligibility traces and same-step gradients of a network.

:class:`TraceEngine` runs a :class:`~reflect.spiking.network.SpikingNetwork` one step at a time for
``B`` environment streams with preallocated buffers and the neuron model's hand-derived Jacobians (no
autograd), and turns a learning signal ``dL_t/do_t`` (the gradient of a scalar loss at step ``t`` with
respect to the readout output ``o_t``) into gradients for **every** trainable parameter::

    engine = TraceEngine(net, batch_size=1, algorithm="pp-prop")
    out = engine.step(obs)                   # [B, out_features]; state and traces advance
    grads = engine.gradients(dloss_dout)     # {parameter name: gradient}, summed over streams

The math (:mod:`reflect.kernels.network` gives the equations) comes from the network's registered
neuron model and surrogate; a backend (:mod:`reflect.traces.backends`: ``numba``, ``numpy``, ``torch``)
runs it on this engine's buffers, chosen once at construction (:attr:`backend` says which and why).

Memory is constant in the length of the lifetime. Exactness: with ``d-rtrl`` the gradients summed over
``T`` steps equal backprop through time for one non-recurrent layer under a linear readout, for every
model (a leaky readout's own weights are exact too); ``pp-prop`` equals it at ``T = 1``, and at every
``T`` where one input trace suffices: LIF layers with a detached reset and one ``beta`` per layer
(``alpha_x = beta``, ``alpha_f = 0``: the defaults), CUBA layers with ``beta = 0``. Deeper stacks and
recurrent weights get same-step spatial credit (an approximation). ``tests/test_conformance.py``
records the measured error of every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reflect.spiking.encoders import DirectEncoder
from reflect.spiking.layers import PackedLinear
from reflect.spiking.network import NetworkState, SpikingNetwork
from reflect.spiking.neurons import state_type
from reflect.traces.backends import BACKENDS, BackendChoice, EngineSpec, NetworkKernels, select_backend
from reflect.traces.compiled_backend import CompiledNetwork

ALGORITHMS = ("pp-prop", "d-rtrl")


def engine_spec(network: SpikingNetwork) -> EngineSpec:
    """What a backend needs to know of ``network`` to accept or refuse it."""
    modules: list[PackedLinear] = [*network.spiking_layers, network.readout]
    return EngineSpec(
        model=network.spiking_layers[0].model,
        device=network.readout.packed.device.type,
        largest_matrix=max(m.packed.numel() for m in modules),
    )


class TraceEngine:
    """Online forward + eligibility traces + same-step gradients for a spiking network.

    Args:
        network: the network. Its parameters are read in place every step, so updates to them
            (``p.add_(...)``, an optimizer step) take effect at the next step. Build the engine after
            any ``.to(dtype)``. All its layers must share one neuron model and surrogate.
        batch_size: number of independent streams ``B`` (one lifetime each).
        algorithm: ``"pp-prop"`` (default, ``O(I + H)`` trace memory per layer and stream) or
            ``"d-rtrl"`` (exact per-synapse traces, ``O(I * H * S)``).
        alpha_x: pp-prop input-trace decay; ``None`` follows the model's decay constant (LIF/ALIF
            ``beta``, CUBA ``alpha``; its mean over neurons), read at every step so a learned value is
            followed.
        alpha_f: pp-prop output-trace decay; with 0 the output trace is just ``D_f``.
        backend: ``"numba"``, ``"numpy"`` or ``"torch"``; ``None`` chooses (see
            :func:`reflect.traces.backends.select_backend`).

    ``step`` returns a view of an internal buffer that the next ``step`` overwrites.
    """

    def __init__(
        self,
        network: SpikingNetwork,
        batch_size: int = 1,
        *,
        algorithm: str = "pp-prop",
        alpha_x: float | None = None,
        alpha_f: float = 0.0,
        backend: str | BackendChoice | None = None,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown trace algorithm {algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
        if not 0.0 <= alpha_f < 1.0:
            raise ValueError(f"alpha_f must be in [0, 1), got {alpha_f}")
        if alpha_x is not None and not 0.0 <= alpha_x < 1.0:
            raise ValueError(f"alpha_x must be in [0, 1) or None, got {alpha_x}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        modules: list[PackedLinear] = [*network.spiking_layers, network.readout]
        for module in modules:
            if not module.packed_is_bound():
                raise ValueError(
                    "a layer's weight/bias no longer share its packed storage (was .data reassigned?); "
                    "rebuild the network or call .to() on it before creating the engine"
                )
        layers = network.spiking_layers
        first = layers[0]
        if any(layer.model is not first.model or layer.surrogate != first.surrogate for layer in layers):
            raise ValueError("every layer of the network must use one neuron model and one surrogate")
        self.network, self.batch_size, self.algorithm = network, batch_size, algorithm
        self.model, self.surrogate = first.model, first.surrogate
        self.alpha_f = float(alpha_f)
        self.alpha_x = alpha_x
        self._allocate()
        self.backend = backend if isinstance(backend, BackendChoice) else select_backend(
            [engine_spec(network)], backend)
        self.kernels: NetworkKernels = BACKENDS.get(self.backend.name).build(self)
        # the compiled network kernels, which a learner's compiled steps call (None on other backends)
        self.compiled = self.kernels if isinstance(self.kernels, CompiledNetwork) else None
        self._all = torch.ones(batch_size, dtype=torch.bool)
        self._scratch: Tensor | None = None

    # --------------------------------------------------------------------------------- buffers
    def _allocate(self) -> None:
        network, batch = self.network, self.batch_size
        ref = network.readout.packed
        dtype, device = ref.dtype, ref.device
        states = self.model.num_states
        modules: list[PackedLinear] = [*network.spiking_layers, network.readout]

        def new(*shape: int, wide: bool = False) -> Tensor:
            return torch.zeros(*shape, dtype=torch.float64 if wide else dtype, device=device)

        # presynaptic buffers z_l = [x, (s_prev), 1]; layer l writes its spikes into z_{l+1}[:, :H_l]
        zs = [new(batch, m.packed.shape[0]) for m in modules]
        for z in zs:
            z[:, -1] = 1.0
        self.layer_buffers: list[dict[str, Any]] = []
        decay_index = self.model.index(self.model.input_trace_decay)
        pp_prop = self.algorithm == "pp-prop"
        for i, layer in enumerate(network.spiking_layers):
            hidden, rows = layer.out_features, layer.packed.shape[0]
            learn = [self.model.index(name) for name in layer.learnable_constants()]
            self.layer_buffers.append({
                "z": zs[i], "spikes": zs[i + 1][:, :hidden], "w": layer.packed.detach(),
                "h": new(states, batch, hidden), "psi": new(batch, hidden),
                "df": new(states, batch, hidden),
                "jac": new(states * states, batch, hidden, wide=True),
                "eps_x": new(batch, rows if pp_prop else 0),
                "eps_f": new(states, batch, hidden if pp_prop and self.alpha_f > 0.0 else 0),
                "eps": new(states, batch, rows, hidden) if not pp_prop else new(states, batch, 0, 0),
                "etrace": new(len(learn), states, batch, hidden),
                "constants": tuple(c.detach() for c in layer.constants()), "learn": learn,
                "y": new(batch, hidden, wide=True), "delta": new(states, batch, hidden),
                "weighted": new(batch, hidden), "up": new(batch, hidden),
                "recurrent": layer.recurrent, "in_features": layer.in_features,
                "detach": layer.detach_reset, "alpha_x": self.alpha_x, "decay_index": decay_index,
                "current_norm": layer.current_norm,
            })
        readout = network.readout
        self.readout_buffers: dict[str, Any] = {
            "z": zs[-1], "w": readout.packed.detach(), "y": new(batch, readout.out_features, wide=True),
            "o": new(batch, readout.out_features),
            "eps": new(batch, readout.packed.shape[0] if readout.decay > 0.0 else 0),
            "decay": readout.decay, "in_features": readout.in_features,
        }
        self.correction = new(batch, wide=True)  # c_t = 1 - alpha_f^(n+1), per stream
        self.cast = new(4)  # scratch that rounds a number to the network's dtype (compiled backend)
        self.input = zs[0][:, : network.encoder.out_features]
        self._direct = isinstance(network.encoder, DirectEncoder)
        # observations land here; an encoder other than the direct one encodes them into the input
        self.observation = self.input if self._direct else new(batch, network.in_features)
        self.output = self.readout_buffers["o"]
        on_cpu = device.type == "cpu"
        self.observation_np: np.ndarray | None = self.observation.numpy() if on_cpu else None
        self.output_np: np.ndarray | None = self.output.numpy() if on_cpu else None
        self._layout = self._gradient_layout()

    # ---------------------------------------------------------------------------- stepping
    def step(self, obs: Tensor, traces: bool = True) -> Tensor:
        """Advance one step on observations ``[B, in_features]``; returns the readout ``[B, out]``.

        ``traces=False`` runs inference only (state advances, traces and surrogate derivatives do not):
        for frozen policies. Call :meth:`backward` only after a step with traces.
        """
        if obs.shape != self.observation.shape:
            raise ValueError(
                f"expected observations of shape {(self.batch_size, self.network.in_features)}, "
                f"got {tuple(obs.shape)}"
            )
        self.observation.copy_(obs.detach())
        self.forward(traces)
        return self.output

    def step_array(self, obs: Tensor | np.ndarray, traces: bool = True) -> np.ndarray:
        """:meth:`step` with numpy in and out: the readout ``[B, out]`` (a view of the buffer on the CPU).

        Observations keep their precision up to the network's dtype (float64 networks get float64).
        """
        if self.observation_np is None or isinstance(obs, Tensor):
            out = self.step(obs if isinstance(obs, Tensor) else torch.from_numpy(np.asarray(obs)), traces)
            return self.output_np if self.output_np is not None else out.cpu().numpy()
        if obs.shape != self.observation_np.shape:
            raise ValueError(
                f"expected observations of shape {(self.batch_size, self.network.in_features)}, "
                f"got {tuple(obs.shape)}"
            )
        self.observation_np[...] = obs
        self.forward(traces)
        return self.output_np  # type: ignore[return-value]

    def forward(self, traces: bool = True, active: np.ndarray | None = None) -> None:
        """One step on the observations already in :attr:`observation`, for every stream or those where
        ``active`` (``[B]`` bool): the other streams' state and traces are left as they were."""
        if not self._direct:
            with torch.no_grad():
                self.input.copy_(self.network.encoder(self.observation))
        self.kernels.forward(traces, None if active is None or active.all() else active)

    def backward(self, signal: Tensor | np.ndarray, grads: Sequence[Tensor], decay: float = 0.0) -> None:
        """Accumulate ``grads[k] <- decay * grads[k] + g_k`` from ``signal = dL_t/do_t`` (``[B, out]``),
        ``g_k`` summed over streams.

        ``grads`` is laid out as :meth:`zeros_like_gradients` (one tensor per packed layer, then the
        learned constants of each layer, then the readout). ``decay = 0`` overwrites.
        """
        flat = self._flat_of(grads)
        if flat is not None and self.batch_size == 1:  # the streams' sum is the one stream: write in place
            self.stream_backward(signal, self.stream_gradients(flat.view(1, -1)), decay)
            return
        if self._scratch is None:
            self._scratch = self.output.new_zeros(self.batch_size, self._layout["size"])
        self.stream_backward(signal, self.stream_gradients(self._scratch), 0.0)
        pairs = [(flat, self._scratch)] if flat is not None else list(
            zip(grads, self._split(self._scratch), strict=True))
        for grad, part in pairs:
            total = part.sum(0).reshape(grad.shape)
            if decay == 0.0:
                grad.copy_(total)
            else:
                grad.mul_(decay).add_(total)

    def _flat_of(self, grads: Sequence[Tensor]) -> Tensor | None:
        """The one flat ``[P]`` buffer ``grads`` are consecutive views of (as
        :meth:`zeros_like_gradients` makes them), or ``None``."""
        base = grads[0]._base if grads else None
        if (base is None or base.dim() != 1 or base.numel() != self._layout["size"]
                or not base.is_contiguous()):
            return None
        offset = base.storage_offset()
        for grad in grads:
            if grad._base is not base or not grad.is_contiguous() or grad.storage_offset() != offset:
                return None
            offset += grad.numel()
        return base

    def stream_backward(self, signal: Tensor | np.ndarray, grads: tuple[Any, ...], decay: float,
                        active: np.ndarray | None = None) -> None:
        """Per-stream ``g_b <- decay * g_b + grad_b`` into ``grads`` (from :meth:`stream_gradients`) for
        every stream (or those where ``active``), from ``signal`` ``[B, out]``."""
        self.kernels.backward(self.kernels.native(signal), grads, decay,
                              None if active is None or active.all() else active)

    def stream_gradients(self, flat: Tensor | np.ndarray) -> tuple[Any, ...]:
        """The backends' handle of a per-stream gradient buffer ``flat`` ``[B, P]`` (``P`` =
        :meth:`num_parameters`, the layout of :meth:`parameters`): ``(flat, offsets, constants' table)``,
        ``offsets`` ``[L + 2]`` the start of each layer's block, the readout's and the learned constants'.
        ``flat`` becomes the backend's array type (numpy for numba and numpy, a tensor for torch), sharing
        its memory."""
        layout = self._layout
        return self.kernels.native(flat), layout["offsets"], layout["table"]

    def num_parameters(self) -> int:
        """Entries of one stream's gradient (every trainable parameter)."""
        return int(self._layout["size"])

    def zeros_like_gradients(self) -> list[Tensor]:
        """Fresh zero gradient buffers in the layout :meth:`backward` expects: views of one flat buffer,
        which :meth:`backward` then updates in one pass (for one stream, in place)."""
        params = self.parameters()
        flat = params[0].new_zeros(self._layout["size"])
        return [part.view(p.shape) for part, p in zip(torch.split(flat, [p.numel() for p in params]), params,
                                                        strict=True)]

    def gradients(self, signal: Tensor) -> dict[str, Tensor]:
        """Gradients of this step's loss, ``{name: tensor}`` for ``network.named_parameters()``."""
        grads = self.zeros_like_gradients()
        self.backward(signal, grads)
        return self.by_name(grads)

    def by_name(self, grads: Sequence[Tensor]) -> dict[str, Tensor]:
        """Views of ``grads`` keyed like ``network.named_parameters()`` (weight, bias, beta, ...)."""
        views: dict[str, Tensor] = {}
        for name, (index, start, stop) in self._layout["names"].items():
            g = grads[index]
            views[name] = g if start is None else (g[start] if stop is None else g[start:stop])
        return views

    def reset(self, episode_start: Tensor | np.ndarray | Sequence[bool]) -> None:
        """Zero network state and every trace of the streams where ``episode_start`` is true."""
        mask = np.asarray(episode_start, dtype=bool).reshape(-1)
        if mask.shape[0] != self.batch_size:
            raise ValueError(f"episode_start has {mask.shape[0]} entries, expected {self.batch_size}")
        if not mask.any():
            return
        self.kernels.reset(mask)

    # -------------------------------------------------------------------------- inspection
    @property
    def layers(self) -> list[dict[str, Any]]:
        """The buffers of each hidden layer (``h`` ``[S, B, H]``, ``spikes``, traces, ...)."""
        return self.layer_buffers

    @property
    def spikes(self) -> list[Tensor]:
        """Views of each layer's spikes of the last step, ``[B, H_l]``."""
        return [layer["spikes"] for layer in self.layer_buffers]

    def network_state(self) -> NetworkState:
        """A copy of the network state in the layout of :meth:`SpikingNetwork.forward`."""
        cls = state_type(self.model)
        states = tuple(cls(*(h.clone() for h in layer["h"]), layer["spikes"].clone())
                       for layer in self.layer_buffers)
        return NetworkState(states, self.output.clone())

    def state_tensors(self) -> dict[str, Tensor]:
        """Every buffer that carries information forward (state, traces), by a stable name (the axis of
        the streams in each: :meth:`stream_axis`)."""
        tensors: dict[str, Tensor] = {"correction": self.correction}
        for i, layer in enumerate(self.layer_buffers):
            for key in ("h", "spikes", "psi", "eps_x", "eps_f", "eps", "etrace"):
                if layer[key].numel():
                    tensors[f"layers.{i}.{key}"] = layer[key]
        if self.readout_buffers["decay"] > 0.0:
            tensors["readout.o"] = self.readout_buffers["o"]
            tensors["readout.eps"] = self.readout_buffers["eps"]
        return tensors

    def load_state_tensors(self, saved: dict[str, Tensor]) -> None:
        """Copy :meth:`state_tensors` of another engine of this network (or of reflect 0.1's layout)."""
        if any(key.rsplit(".", 1)[-1].isdigit() for key in saved):
            saved = self._legacy_state(saved)
        current = self.state_tensors()
        missing = sorted(set(current) - set(saved))
        if missing:
            raise ValueError(f"the saved engine state lacks {', '.join(missing)}: it was saved for another "
                             "network configuration")
        for key, tensor in current.items():
            tensor.copy_(saved[key])

    def _legacy_state(self, saved: dict[str, Tensor]) -> dict[str, Tensor]:
        """reflect 0.1 saved each layer's buffers as a numbered list (``v, s, psi[, a, threshold]``, then
        the traces); this maps them onto the current layout."""
        out: dict[str, Tensor] = {"correction": saved["correction"].reshape(-1).to(torch.float64)}
        states = self.model.num_states
        for i, layer in enumerate(self.layer_buffers):
            count = sum(1 for key in saved if key.startswith(f"layers.{i}."))
            old = [saved[f"layers.{i}.{j}"] for j in range(count)]
            h = [old[0], *([old[3]] if states == 2 else [])]
            out[f"layers.{i}.h"] = torch.stack(h)
            out[f"layers.{i}.spikes"], out[f"layers.{i}.psi"] = old[1], old[2]
            j = 5 if states == 2 else 3
            if self.algorithm == "pp-prop":
                out[f"layers.{i}.eps_x"] = old[j]
                j += 1
                if self.alpha_f > 0.0:
                    out[f"layers.{i}.eps_f"] = torch.stack(old[j:j + states])
                    j += states
            else:
                out[f"layers.{i}.eps"] = torch.stack(old[j:j + states])
                j += states
            traces = [torch.stack(old[j + q * states:j + (q + 1) * states])
                      for q in range(len(layer["learn"]))]
            if traces:
                out[f"layers.{i}.etrace"] = torch.stack(traces)
        if "readout.0" in saved:
            out["readout.o"], out["readout.eps"] = saved["readout.0"], saved["readout.1"]
        return out

    @staticmethod
    def stream_axis(name: str) -> int:
        """The axis of the streams in :meth:`state_tensors` entry ``name`` (``h`` is ``[S, B, H]``)."""
        key = name.rsplit(".", 1)[-1]
        return {"h": 1, "eps_f": 1, "eps": 1, "etrace": 2}.get(key, 0)

    def trace_bytes(self) -> int:
        """Bytes held in state and traces (constant in the number of steps)."""
        return sum(t.numel() * t.element_size() for t in self.state_tensors().values())

    # ----------------------------------------------------------------------------- layout
    def parameters(self) -> list[Tensor]:
        """Detached aliases of the trainable tensors, in the gradient layout (update them in place)."""
        layers = self.network.spiking_layers
        tensors = [layer.packed for layer in layers]
        for layer in layers:
            tensors += [getattr(layer, name).detach() for name in layer.learnable_constants()]
        tensors.append(self.network.readout.packed)
        return tensors

    def constant_bounds(self) -> list[tuple[Tensor, float, float]]:
        """``(tensor, low, high)`` of every learned constant: the range it is projected back into."""
        bounds = []
        for layer in self.network.spiking_layers:
            for name in layer.learnable_constants():
                low, high = layer.model.parameter(name).projection()
                bounds.append((getattr(layer, name).detach(), low, high))
        return bounds

    def _split(self, flat: Tensor) -> list[Tensor]:
        sizes = [t.numel() for t in self.parameters()]
        return list(torch.split(flat, sizes, dim=1))

    def _gradient_layout(self) -> dict[str, Any]:
        network = self.network
        layers = network.spiking_layers
        names: dict[str, tuple[int, int | None, int | None]] = {}
        spans, offset = [], 0
        for i, layer in enumerate(layers):
            rows, hidden = layer.packed.shape
            spans.append((offset, offset + rows * hidden, (rows, hidden)))
            offset += rows * hidden
            _packed_names(names, f"layers.{i}", layer, i)
        table, const_start, index = [], offset, len(layers)
        for i, layer in enumerate(layers):
            for q, name in enumerate(layer.learnable_constants()):
                width = getattr(layer, name).numel()
                table.append((i, q, offset - const_start, width))
                names[f"layers.{i}.{name}"] = (index, None, None)
                index += 1
                offset += width
        const_stop = offset
        readout = network.readout
        rows, outputs = readout.packed.shape
        readout_span = (offset, offset + rows * outputs, (rows, outputs))
        _packed_names(names, "readout", readout, index)
        offsets = np.array([a for a, _, _ in spans] + [readout_span[0], const_start], dtype=np.int64)
        return {
            "layers": spans, "readout": readout_span, "constants": (const_start, const_stop),
            "offsets": offsets,
            "table": np.array(table, dtype=np.int64).reshape(-1, 4), "size": readout_span[1], "names": names,
        }


def _packed_names(names: dict[str, tuple[int, int | None, int | None]], prefix: str, module: PackedLinear,
                  index: int) -> None:
    rows = module.in_features
    names[f"{prefix}.weight"] = (index, 0, rows)
    if module.recurrent:
        names[f"{prefix}.recurrent_weight"] = (index, rows, rows + module.out_features)
        rows += module.out_features
    names[f"{prefix}.bias"] = (index, rows, None)
