"""The online gradient engine: forward, eligibility traces and same-step gradients of a network.

:class:`TraceEngine` runs a :class:`~reflect.spiking.network.SpikingNetwork` one step at a time for
``B`` environment streams with preallocated buffers and hand-derived Jacobians (no autograd), and
turns a learning signal ``dL_t/do_t`` (the gradient of a scalar loss at step ``t`` with respect to the
readout output ``o_t``) into gradients for **every** trainable parameter::

    engine = TraceEngine(net, batch_size=1, algorithm="pp-prop")
    out = engine.step(obs)                   # [B, out_features]; state and traces advance
    grads = engine.gradients(dloss_dout)     # {parameter name: gradient}, summed over streams

Memory is constant in the length of the lifetime. Exactness: with ``d-rtrl``, the gradients summed over
``T`` steps equal backprop through time for one non-recurrent layer under a linear readout (a leaky
readout's own weights are exact too); ``pp-prop`` equals it at ``T = 1``, and at every ``T`` for LIF
layers with a detached reset, one ``beta`` per layer, ``alpha_x = beta`` and ``alpha_f = 0`` (the
defaults). Deeper stacks and recurrent weights get same-step spatial credit (an approximation).

Readout (``decay`` d, presynaptic ``z = [s_L, 1]``)::

    o_t = d o_{t-1} + (1 - d) z_t @ packed_o,   eps_o <- d eps_o + (1 - d) z_t,   grad = eps_o^T @ dL/do_t
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from reflect.kernels import INSTALL_HINT, compiled_available, compiled_enabled
from reflect.kernels.network import CompiledNetworkKernels
from reflect.spiking.encoders import DirectEncoder
from reflect.spiking.layers import LeakyReadout, PackedLinear
from reflect.spiking.network import NetworkState, SpikingNetwork
from reflect.spiking.neurons import ALIFState, LIFState
from reflect.traces.layer_traces import ALGORITHMS, LayerTraces
from reflect.traces.numpy_path import accumulate_outer

NUMPY_PATH_MAX_WEIGHTS = 65_536  # the numpy kernels win at 4-128-128-2, torch's fused ones at 4-512-512-2


class _ReadoutTraces:
    """Buffers and per-step math of the leaky-integrator readout."""

    def __init__(self, readout: LeakyReadout, z: Tensor) -> None:
        self.readout, self.z = readout, z
        batch = z.shape[0]
        self.packed = readout.packed
        self.weight_t = readout.packed[: readout.in_features].t()
        self.decay = readout.decay
        self.y = z.new_zeros(batch, readout.out_features)
        self.o = z.new_zeros(batch, readout.out_features)
        self.eps = z.new_zeros(z.shape) if self.decay > 0.0 else z
        self.eps_t = self.eps.t()
        self.input_signal = z.new_zeros(batch, readout.in_features)
        self.on_cpu = z.device.type == "cpu"
        if self.on_cpu:  # numpy views of the same memory, for the numpy fast path
            self.np_z = z.numpy()
            self.np_packed = readout.packed.detach().numpy()
            self.np_weight_t = self.np_packed[: readout.in_features].T
            self.np_y, self.np_o, self.np_eps = self.y.numpy(), self.o.numpy(), self.eps.numpy()
            self.np_input_signal = self.input_signal.numpy()
            self.np_scratch = np.zeros_like(self.np_y)
            self.np_outer = np.zeros_like(self.np_packed)

    def forward_numpy(self, traces: bool) -> np.ndarray:
        """:meth:`forward` on the numpy views (same buffers); returns the output's numpy view."""
        np.dot(self.np_z, self.np_packed, out=self.np_y)
        if self.decay == 0.0:
            return self.np_y
        np.subtract(self.np_y, self.np_o, out=self.np_scratch)
        self.np_scratch *= 1.0 - self.decay
        self.np_o += self.np_scratch
        if traces:
            self.np_eps *= self.decay
            self.np_eps += (1.0 - self.decay) * self.np_z
        return self.np_o

    def backward_numpy(self, signal: np.ndarray, grad: np.ndarray, decay: float) -> np.ndarray:
        """:meth:`backward` on numpy views."""
        accumulate_outer(grad, self.np_eps, signal, decay, self.np_outer)
        np.dot(signal, self.np_weight_t, out=self.np_input_signal)
        if self.decay > 0.0:
            self.np_input_signal *= 1.0 - self.decay
        return self.np_input_signal

    def forward(self, traces: bool) -> Tensor:
        torch.mm(self.z, self.packed, out=self.y)
        if self.decay == 0.0:
            return self.y
        self.o.lerp_(self.y, 1.0 - self.decay)
        if traces:
            self.eps.mul_(self.decay).add_(self.z, alpha=1.0 - self.decay)
        return self.o

    def backward(self, signal: Tensor, grad: Tensor, decay: float) -> Tensor:
        grad.addmm_(self.eps_t, signal, beta=decay)
        out = torch.mm(signal, self.weight_t, out=self.input_signal)
        if self.decay > 0.0:
            out.mul_(1.0 - self.decay)
        return out

    def state_tensors(self) -> list[Tensor]:
        return [self.o, self.eps] if self.decay > 0.0 else []


class TraceEngine:
    """Online forward + eligibility traces + same-step gradients for a spiking network.

    Args:
        network: the network. Its parameters are read in place every step, so updates to them
            (``p.add_(...)``, an optimizer step) take effect at the next step. Build the engine after
            any ``.to(dtype)``.
        batch_size: number of independent streams ``B`` (one lifetime each).
        algorithm: ``"pp-prop"`` (default, ``O(I + H)`` trace memory per layer and stream) or
            ``"d-rtrl"`` (exact per-synapse traces, ``O(I * H)``).
        alpha_x: pp-prop input-trace decay; ``None`` uses each layer's (mean) membrane decay.
        alpha_f: pp-prop output-trace decay; with 0 the output trace is just ``D_f``.
        numpy_path: run the numpy kernels of :mod:`reflect.traces.numpy_path` (``None``: when the
            configuration allows it and every weight matrix has at most ``NUMPY_PATH_MAX_WEIGHTS``
            entries - beyond that torch's fused kernels win; ``False``: always the torch kernels).
        compiled: on the numpy path, run the whole network as one compiled call per step and per
            backward pass (:mod:`reflect.kernels.network`, needs ``numba``). ``None``: whenever numba
            imports and ``REFLECT_COMPILED`` is not ``0``; ``True``: required (an error without numba or
            without the numpy path); ``False``: never.

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
        numpy_path: bool | None = None,
        compiled: bool | None = None,
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
        self.network, self.batch_size, self.algorithm = network, batch_size, algorithm
        self.alpha_f = float(alpha_f)
        ref = network.readout.packed
        # presynaptic buffers z_l = [x, (s_prev), 1]; layer l writes its spikes into z_{l+1}[:, :H_l]
        buffers = [ref.new_zeros(batch_size, m.packed.shape[0]) for m in modules]
        for z in buffers:
            z[:, -1] = 1.0
        self.input = buffers[0][:, : network.encoder.out_features]
        self.layers = [
            LayerTraces(
                layer, buffers[i], buffers[i + 1][:, : layer.out_features], algorithm=algorithm,
                alpha_x=alpha_x, alpha_f=alpha_f, needs_input_signal=i > 0,
            )
            for i, layer in enumerate(network.spiking_layers)
        ]
        self.readout = _ReadoutTraces(network.readout, buffers[-1])
        # the numpy fast path (see reflect.traces.numpy_path) runs when every layer supports it
        supported = (
            isinstance(network.encoder, DirectEncoder) and self.readout.on_cpu
            and all(layer.numpy_kernels is not None for layer in self.layers)
        )
        if numpy_path and not supported:
            raise ValueError(
                "numpy_path=True needs LIF layers with a detached reset, fixed beta/theta, pp-prop traces "
                "with alpha_f=0, a direct encoder and CPU tensors; pass numpy_path=None to choose "
                "automatically"
            )
        small = all(m.packed.numel() <= NUMPY_PATH_MAX_WEIGHTS for m in modules)
        self.numpy_path = supported and (numpy_path is True or (numpy_path is None and small))
        if compiled and not self.numpy_path:
            raise ValueError(
                "compiled=True runs on the numpy path only (LIF layers with a detached reset, fixed "
                "beta/theta, pp-prop traces with alpha_f=0, a direct encoder, CPU tensors, numpy_path "
                "not False); pass compiled=None to choose automatically"
            )
        if compiled and not compiled_available():
            raise ImportError(INSTALL_HINT)
        use_compiled = compiled if compiled is not None else compiled_enabled()
        self.compiled: CompiledNetworkKernels | None = (
            CompiledNetworkKernels(self) if self.numpy_path and use_compiled else None
        )
        self._input_np = self.input.numpy() if self.numpy_path else None
        self._np_slots: tuple[np.ndarray, ...] = ()
        self.correction = ref.new_zeros(batch_size, 1)  # c_t = 1 - alpha_f^(n+1), per stream
        self.inv_correction = ref.new_ones(batch_size, 1)
        self._keep = ref.new_ones(batch_size, 1)
        self._names = self._gradient_names()
        self._bound_grads: Sequence[Tensor] | None = None
        self._slots: list[dict[str, Tensor]] = []

    # ---------------------------------------------------------------------------- stepping
    def step(self, obs: Tensor, traces: bool = True) -> Tensor:
        """Advance one step on observations ``[B, in_features]``; returns the readout ``[B, out]``.

        ``traces=False`` runs inference only (state advances, traces do not): for frozen policies.
        Call :meth:`backward` only after a step with traces.
        """
        if self._input_np is not None:
            self.step_array(obs.detach().numpy(), traces)
            return self.readout.o if self.readout.decay > 0.0 else self.readout.y
        encoded = self.network.encoder(obs)
        if encoded.shape != self.input.shape:
            raise ValueError(
                f"expected observations of shape {(self.batch_size, self.network.in_features)}, "
                f"got {tuple(obs.shape)}"
            )
        self.input.copy_(encoded.detach() if encoded.requires_grad else encoded)
        if traces and self.alpha_f > 0.0:
            self.correction.mul_(self.alpha_f).add_(1.0 - self.alpha_f)
            torch.reciprocal(self.correction, out=self.inv_correction)
        for layer in self.layers:
            layer.forward(traces)
        return self.readout.forward(traces)

    def step_array(self, obs: Tensor | np.ndarray, traces: bool = True) -> np.ndarray:
        """:meth:`step` with numpy in and out (CPU): the readout ``[B, out]`` as a view of the buffer."""
        if self._input_np is not None:
            if obs.shape != self._input_np.shape:
                raise ValueError(
                    f"expected observations of shape {(self.batch_size, self.network.in_features)}, "
                    f"got {tuple(obs.shape)}"
                )
            self._input_np[...] = obs
            if self.compiled is not None:
                return self.compiled.forward(traces)
            for layer in self.layers:
                layer.numpy_kernels.forward(traces)  # type: ignore[union-attr]
            return self.readout.forward_numpy(traces)
        inputs = obs if isinstance(obs, Tensor) else torch.from_numpy(np.asarray(obs, dtype=np.float32))
        return self.step(inputs.to(self.input.dtype), traces).numpy()

    def backward(self, signal: Tensor | np.ndarray, grads: Sequence[Tensor], decay: float = 0.0) -> None:
        """Accumulate ``grads[k] <- decay * grads[k] + g_k`` from ``signal = dL_t/do_t`` (``[B, out]``).

        ``signal`` must not require grad (detach it); the engine never records autograd history.

        ``grads`` is laid out as :meth:`zeros_like_gradients` (one tensor per packed layer, then the
        learnable ``beta``/``theta`` of each layer, then the readout). ``decay = 0`` overwrites.
        """
        if grads is not self._bound_grads:
            self._bind_slots(grads)
        if self.numpy_path:
            self._backward_numpy(signal.numpy() if isinstance(signal, Tensor) else signal, decay)
            return
        assert isinstance(signal, Tensor)
        inv_c = self.inv_correction if self.alpha_f > 0.0 else None
        upstream: Tensor | None = self.readout.backward(signal, grads[-1], decay)
        for layer, slot in zip(reversed(self.layers), reversed(self._slots), strict=True):
            assert upstream is not None
            upstream = layer.backward(upstream, slot, decay, inv_c)

    def _backward_numpy(self, signal: np.ndarray, decay: float) -> None:
        if self.compiled is not None:
            self.compiled.backward(signal, self._np_slots, decay)
            return
        upstream: np.ndarray | None = self.readout.backward_numpy(signal, self._np_slots[-1], decay)
        for i in range(len(self.layers) - 1, -1, -1):
            kernels = self.layers[i].numpy_kernels
            assert kernels is not None and upstream is not None
            upstream = kernels.backward(upstream, self._np_slots[i], decay, i > 0)

    def zeros_like_gradients(self) -> list[Tensor]:
        """Fresh zero gradient buffers in the layout :meth:`backward` expects."""
        grads = [t.new_zeros(t.shape) for t in self._parameter_tensors()]
        self._bind_slots(grads)
        return grads

    def gradients(self, signal: Tensor) -> dict[str, Tensor]:
        """Gradients of this step's loss, ``{name: tensor}`` for ``network.named_parameters()``."""
        grads = self.zeros_like_gradients()
        self.backward(signal, grads)
        return self.by_name(grads)

    def by_name(self, grads: Sequence[Tensor]) -> dict[str, Tensor]:
        """Views of ``grads`` keyed like ``network.named_parameters()`` (weight, bias, beta, ...)."""
        views: dict[str, Tensor] = {}
        for name, (index, start, stop) in self._names.items():
            g = grads[index]
            views[name] = g if start is None else (g[start] if stop is None else g[start:stop])
        return views

    def reset(self, episode_start: Tensor | np.ndarray | Sequence[bool]) -> None:
        """Zero network state and every trace of the streams where ``episode_start`` is true."""
        mask = torch.as_tensor(np.asarray(episode_start, dtype=bool)).view(-1, 1)
        if mask.shape[0] != self.batch_size:
            raise ValueError(f"episode_start has {mask.shape[0]} entries, expected {self.batch_size}")
        if not bool(mask.any()):
            return
        keep = self._keep.copy_(~mask)
        for layer in self.layers:
            layer.reset_streams(keep)
        for t in self.readout.state_tensors():
            t.mul_(keep)
        self.correction.mul_(keep)

    # -------------------------------------------------------------------------- inspection
    @property
    def spikes(self) -> list[Tensor]:
        """Views of each layer's spikes of the last step, ``[B, H_l]``."""
        return [layer.s for layer in self.layers]

    def network_state(self) -> NetworkState:
        """A copy of the network state in the layout of :meth:`SpikingNetwork.forward`."""
        states: list[LIFState | ALIFState] = []
        for layer in self.layers:
            if layer.adaptive:
                states.append(ALIFState(layer.v.clone(), layer.a.clone(), layer.s.clone()))
            else:
                states.append(LIFState(layer.v.clone(), layer.s.clone()))
        readout = self.readout.o.clone() if self.readout.decay > 0.0 else self.readout.y.clone()
        return NetworkState(tuple(states), readout)

    def state_tensors(self) -> dict[str, Tensor]:
        """Every buffer that carries information forward (state, traces), by a stable name."""
        tensors: dict[str, Tensor] = {"correction": self.correction}
        for i, layer in enumerate(self.layers):
            for j, t in enumerate(layer.state_tensors()):
                tensors[f"layers.{i}.{j}"] = t
        for j, t in enumerate(self.readout.state_tensors()):
            tensors[f"readout.{j}"] = t
        return tensors

    def trace_bytes(self) -> int:
        """Bytes held in state and traces (constant in the number of steps)."""
        return sum(t.numel() * t.element_size() for t in self.state_tensors().values())

    # ----------------------------------------------------------------------------- layout
    def _parameter_tensors(self) -> list[Tensor]:
        tensors = [layer.packed for layer in self.layers]
        for layer in self.layers:
            if layer.learn_beta:
                tensors.append(layer.beta)
            if layer.learn_theta:
                tensors.append(layer.theta)
        tensors.append(self.readout.packed)
        return tensors

    def parameters(self) -> list[Tensor]:
        """Detached aliases of the trainable tensors, in the gradient layout (update them in place)."""
        return self._parameter_tensors()

    def _bind_slots(self, grads: Sequence[Tensor]) -> None:
        n = len(self.layers)
        slots: list[dict[str, Tensor]] = [{"packed": grads[i]} for i in range(n)]
        index = n
        for i, layer in enumerate(self.layers):
            if layer.learn_beta:
                slots[i]["beta"] = grads[index]
                index += 1
            if layer.learn_theta:
                slots[i]["theta"] = grads[index]
                index += 1
        self._slots = slots
        self._bound_grads = grads
        self._np_slots = tuple(g.detach().numpy() for g in grads) if self.numpy_path else ()

    def _gradient_names(self) -> dict[str, tuple[int, int | None, int | None]]:
        names: dict[str, tuple[int, int | None, int | None]] = {}
        n = len(self.layers)

        def packed_names(prefix: str, module: PackedLinear, index: int) -> None:
            rows = module.in_features
            names[f"{prefix}.weight"] = (index, 0, rows)
            if module.recurrent:
                names[f"{prefix}.recurrent_weight"] = (index, rows, rows + module.out_features)
                rows += module.out_features
            names[f"{prefix}.bias"] = (index, rows, None)

        for i, layer in enumerate(self.layers):
            packed_names(f"layers.{i}", layer.layer, i)
        index = n
        for i, layer in enumerate(self.layers):
            for flag, name in ((layer.learn_beta, "beta"), (layer.learn_theta, "theta")):
                if flag:
                    names[f"layers.{i}.{name}"] = (index, None, None)
                    index += 1
        packed_names("readout", self.network.readout, index)
        return names
