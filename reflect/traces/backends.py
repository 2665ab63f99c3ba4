"""Backends for the step math, and the one place where one is chosen.

A backend runs the same registered formulas (neuron models, surrogates, heads, the normaliser, the
bounded update) its own way. Each is registered (:func:`register_backend`, in order of preference) with
a ``refuse`` test and a ``build`` function that returns the engine's network kernels
(:class:`NetworkKernels`); the built-in ones:

* ``numba`` - compiled loops (:mod:`reflect.kernels`), specialised per neuron model and surrogate, the
  whole REFLECT act and observe as one call each; CPU, any size;
* ``numpy`` - whole-array numpy on views of the same buffers; CPU, up to ``NUMPY_MAX_WEIGHTS`` per matrix;
* ``torch`` - whole-array torch on the buffers themselves; any size and device.

:func:`select_backend` asks each backend in turn (a requested one first) whether it can run the
configuration; a backend that cannot says why, and the next one is asked. The choice carries the
reason, logged at debug level (logger ``reflect.backends``) and printed by ``reflect verify``. A
requested backend that refuses is an error naming the reason. ``REFLECT_BACKEND`` in the environment
requests one by name; ``REFLECT_COMPILED=0`` rules out ``numba``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from reflect.kernels.compiler import compiled_available, numba_version
from reflect.kernels.network import MAX_PARAMS, MAX_STATES
from reflect.registry import Registry
from reflect.spiking.models import NeuronModel
from reflect.traces.array_backend import ArrayNetwork
from reflect.traces.compiled_backend import CompiledNetwork

if TYPE_CHECKING:
    from reflect.traces.engine import TraceEngine

# above this many weights in one matrix torch beats numpy (the compiled loops beat both at every size
# measured, up to 4-2048-2048-2: benchmarks/trace_step.py)
NUMPY_MAX_WEIGHTS = 65_536
_OFF = {"0", "false", "no", "off"}
log = logging.getLogger("reflect.backends")


@dataclass(frozen=True)
class EngineSpec:
    """What a backend needs to know to accept or refuse a network."""

    model: NeuronModel
    device: str
    largest_matrix: int


class NetworkKernels(Protocol):
    """What a backend builds for one :class:`~reflect.traces.engine.TraceEngine`: the network's step,
    backward pass and reset on the engine's buffers (``B`` streams; ``active`` / ``done``: ``[B]`` bool
    numpy, ``None`` for every stream)."""

    def forward(self, traces: bool, active: np.ndarray | None) -> None:
        """One step of every layer and the readout on the inputs already in the engine's first ``z``
        (with eligibility traces when ``traces``); streams not ``active`` keep state and traces."""

    def backward(self, signal: Any, grads: tuple[Any, ...], decay: float, active: np.ndarray | None) -> None:
        """Per-stream ``g_b <- decay g_b + dL/dtheta_b`` from ``signal = dL/do`` ``[B, out]`` into the
        handle ``grads`` (see :meth:`TraceEngine.stream_gradients`)."""

    def reset(self, done: np.ndarray) -> None:
        """Zero state and traces of the streams where ``done``."""

    def native(self, array: Any) -> Any:
        """``array`` (numpy or a tensor) as this backend's array type, sharing memory where possible."""


@dataclass(frozen=True)
class Backend:
    """A registered backend: ``refuse(spec)`` returns why it cannot run ``spec``, or ``None``;
    ``build(engine)`` returns its :class:`NetworkKernels` for the engine's buffers."""

    name: str
    refuse: Callable[[EngineSpec], str | None]
    summary: str
    build: Callable[[TraceEngine], NetworkKernels]


@dataclass(frozen=True)
class BackendChoice:
    """The backend chosen, why, and what the backends before it said."""

    name: str
    reason: str
    refusals: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """One line: ``numba (...)``, with the refusals of those tried first."""
        text = f"{self.name} ({self.reason})"
        for name, why in self.refusals:
            text += f"; {name} refused: {why}"
        return text


def _refuse_numba(spec: EngineSpec) -> str | None:
    if not compiled_available():
        return 'numba is not installed (pip install "reflect-rl[fast]")'
    if os.environ.get("REFLECT_COMPILED", "").strip().lower() in _OFF:
        return "switched off by REFLECT_COMPILED=0"
    if spec.device != "cpu":
        return f"the network is on {spec.device}, compiled kernels run on the CPU"
    if spec.model.num_states > MAX_STATES or len(spec.model.parameters) > MAX_PARAMS:
        return (f"neuron model {spec.model.name!r} has {spec.model.num_states} states and "
                f"{len(spec.model.parameters)} constants; the compiled kernels take up to {MAX_STATES} and "
                f"{MAX_PARAMS}")
    return None


def _refuse_numpy(spec: EngineSpec) -> str | None:
    if spec.device != "cpu":
        return f"the network is on {spec.device}, numpy runs on the CPU"
    if spec.largest_matrix > NUMPY_MAX_WEIGHTS:
        return (f"a weight matrix has {spec.largest_matrix:,} entries, above {NUMPY_MAX_WEIGHTS:,}, "
                "where torch's whole-array kernels are faster than numpy's")
    return None


BACKENDS: Registry[Backend] = Registry("backend")


def register_backend(backend: Backend, before: str | None = None) -> Backend:
    """Add ``backend`` to the choices, last in preference or just ahead of ``before``."""
    return BACKENDS.add(backend.name, backend, before)


def backend_names() -> tuple[str, ...]:
    """The registered backends, in order of preference."""
    return BACKENDS.names()


register_backend(Backend("numba", _refuse_numba, f"compiled loops (numba {numba_version()})",
                         CompiledNetwork))
register_backend(Backend("numpy", _refuse_numpy, "whole-array numpy",
                         lambda engine: ArrayNetwork(engine, "numpy")))
register_backend(Backend("torch", lambda spec: None, "whole-array torch, any size and device",
                         lambda engine: ArrayNetwork(engine, "torch")))


def requested_backend() -> str | None:
    """The backend named by ``REFLECT_BACKEND`` (``None`` when unset); an unknown name is an error."""
    name = os.environ.get("REFLECT_BACKEND", "").strip().lower()
    if not name:
        return None
    if name not in BACKENDS:
        raise ValueError(f"REFLECT_BACKEND={name!r} is not a backend: choose one of "
                         f"{', '.join(backend_names())}")
    return name


def select_backend(specs: Sequence[EngineSpec], requested: str | None = None) -> BackendChoice:
    """The first backend (``requested``, else ``REFLECT_BACKEND``, else numba, numpy, torch) that accepts
    every spec. A requested backend that refuses raises ``ValueError`` with its reason."""
    requested = requested if requested is not None else requested_backend()
    if requested is not None:
        BACKENDS.get(requested)  # an unknown name is an error that lists the backends
    refusals: list[tuple[str, str]] = []
    order = [requested] if requested is not None else list(backend_names())
    for name in order:
        why = next((r for r in (BACKENDS.get(name).refuse(spec) for spec in specs) if r), None)
        if why is None:
            reason = "requested" if requested is not None else (
                "the first backend that accepts this network" if refusals else BACKENDS.get(name).summary)
            choice = BackendChoice(name, reason, tuple(refusals))
            log.debug("backend: %s", choice.describe())
            return choice
        refusals.append((name, why))
    name, why = refusals[-1]
    raise ValueError(f"backend {name!r} cannot run this network: {why}")
