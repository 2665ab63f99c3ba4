"""One conformance grid: every backend's online gradients against BPTT through the project's own forward.

For each configuration (neuron model x surrogate x reset detached or not x recurrent x readout decay x
per-neuron constants x learned constants x batch 1 or 3), a float64 network runs a sequence-regression
problem; autograd through all ``T`` steps of ``SpikingNetwork.forward`` gives the reference gradient.
Every backend that accepts the configuration (numba, numpy, torch) then computes the online gradients
with both trace algorithms, and each parameter is checked:

* where the traces are exact - every readout parameter; the hidden layer's with D-RTRL for one
  non-recurrent layer under a linear readout; with pp-prop where one input trace suffices (LIF with a
  detached reset and one ``beta`` per layer) - to ``rtol 1e-9`` of BPTT;
* where they are a documented approximation (recurrent weights, a leaky readout's temporal path into
  the hidden layer, pp-prop outside its exact case) the error of the whole gradient,
  ``||online - BPTT|| / ||BPTT||``, is measured and must stay below :data:`APPROXIMATION_BOUND` (closer
  to BPTT than a zero gradient is; the worst measured over this grid is 0.53), and every backend must
  compute the same approximation (to ``1e-9``). ``python benchmarks/trace_conformance.py`` prints the
  measured errors by kind of approximation.

A negative control shows the check fails when one weight of the online network differs.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from reflect.spiking import SpikingNetwork, Surrogate, neuron_model, neuron_model_names
from reflect.traces import TraceEngine
from reflect.traces.backends import backend_names, select_backend
from reflect.traces.engine import engine_spec
from reflect.traces.oracle import bptt_gradients, online_gradients, relative_errors

T = 6
HIDDEN = 5
EXACT = 1e-9
# documented approximations: whole-gradient relative error (a zero gradient scores 1)
APPROXIMATION_BOUND = 1.0

GRID = list(itertools.product(
    neuron_model_names(),             # neuron model
    ("fast_sigmoid", "arctan"),        # surrogate
    (True, False),                     # reset detached from the gradient
    (False, True),                     # recurrent
    (0.0, 0.5),                        # readout decay
    (False, True),                     # per-neuron (heterogeneous) constants
    (False, True),                     # every constant learned
    (1, 3),                            # streams
))


def _case_id(case: tuple[Any, ...]) -> str:
    neuron, surrogate, detach, recurrent, decay, per_neuron, learn, batch = case
    parts = [neuron, surrogate, "detached" if detach else "reset-in-grad"]
    parts += ["recurrent"] if recurrent else []
    parts += [f"leaky-readout{decay:g}"] if decay else []
    parts += ["per-neuron"] if per_neuron else []
    parts += ["learned"] if learn else []
    return "-".join([*parts, f"B{batch}"])


def build_problem(neuron: str, surrogate: str, detach: bool, recurrent: bool, decay: float,
                  per_neuron: bool, learn: bool, batch: int, seed: int = 0,
                  **constants: float) -> tuple[SpikingNetwork, torch.Tensor, torch.Tensor]:
    """A float64 network (constants drawn within their ranges when per neuron) and its problem."""
    model = neuron_model(neuron)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SpikingNetwork(
        3, 2, hidden=(HIDDEN,), neuron=neuron, recurrent=recurrent, detach_reset=detach,
        surrogate=Surrogate(surrogate, 2.0), readout_decay=decay, per_neuron=per_neuron,
        learn=model.parameter_names if learn else (), weight_scale=3.0, **constants,
    ).double()
    if per_neuron:
        with torch.no_grad():
            for spec in model.parameters:
                value = getattr(net.layers[0], spec.name)
                low = max(spec.low, 0.2 if spec.name != "beta_a" else 0.1)
                high = min(spec.high, low + 0.6)
                noise = torch.rand(value.shape, generator=generator, dtype=value.dtype)
                value.copy_(low + (high - low) * noise)
    xs = 2.0 * torch.randn(T, batch, 3, generator=generator, dtype=torch.float64)
    targets = torch.randn(T, batch, 2, generator=generator, dtype=torch.float64)
    return net, xs, targets


def exact_parameters(neuron: str, detach: bool, recurrent: bool, decay: float, per_neuron: bool,
                     algorithm: str, names: list[str]) -> set[str]:
    """The parameters whose online gradient must equal BPTT (see the module docstring)."""
    exact = {name for name in names if name.startswith("readout.")}
    hidden_exact = not recurrent and decay == 0.0 and (
        algorithm == "d-rtrl" or (neuron == "lif" and detach and not per_neuron))
    if hidden_exact:
        exact |= set(names)
    return exact


def gradient_error(online: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """``||online - reference|| / ||reference||`` over every parameter at once."""
    diff = sum(float((online[name] - value).square().sum()) for name, value in reference.items())
    norm = sum(float(value.square().sum()) for value in reference.values())
    return (diff / norm) ** 0.5


def accepting_backends(net: SpikingNetwork) -> list[str]:
    spec = engine_spec(net)
    accepted = []
    for name in backend_names():
        try:
            select_backend([spec], name)
        except ValueError:
            continue
        accepted.append(name)
    return accepted


@pytest.mark.parametrize("case", GRID, ids=[_case_id(c) for c in GRID])
def test_online_gradients_conform_to_bptt(case: tuple[Any, ...]) -> None:
    neuron, _, detach, recurrent, decay, per_neuron, _, _ = case
    net, xs, targets = build_problem(*case)
    reference = bptt_gradients(net, xs, targets)
    for name, value in reference.items():
        assert float(value.abs().max()) > 0.0, f"{name}: the BPTT gradient is zero, the check is vacuous"
    backends = accepting_backends(net)
    assert "torch" in backends and "numpy" in backends
    for algorithm in ("pp-prop", "d-rtrl"):
        exact = exact_parameters(neuron, detach, recurrent, decay, per_neuron, algorithm, list(reference))
        results = {backend: online_gradients(net, xs, targets, algorithm, backend=backend)
                   for backend in backends}
        for backend, online in results.items():
            assert set(online) == set(reference)
            for name, error in relative_errors(online, reference).items():
                if name in exact:
                    assert error < EXACT, f"{algorithm} on {backend}: {name} differs from BPTT by {error:.2e}"
            error = gradient_error(online, reference)
            assert error < APPROXIMATION_BOUND, f"{algorithm} on {backend}: whole-gradient error {error:.2f}"
        first = results[backends[0]]
        for backend in backends[1:]:
            agreement = relative_errors(results[backend], first)
            worst = max(agreement.values())
            assert worst < EXACT, f"{algorithm}: {backend} and {backends[0]} disagree by {worst:.2e}"


@pytest.mark.parametrize("backend", backend_names())
def test_cuba_pp_prop_is_exact_with_a_memoryless_membrane(backend: str) -> None:
    """CUBA's input trace decays with ``alpha``: exact under pp-prop when ``beta = 0``."""
    net, xs, targets = build_problem("cuba", "fast_sigmoid", True, False, 0.0, False, True, 2, beta=0.0)
    if backend not in accepting_backends(net):
        pytest.skip(f"{backend} does not run here")
    errors = relative_errors(online_gradients(net, xs, targets, "pp-prop", backend=backend),
                             bptt_gradients(net, xs, targets))
    assert max(errors.values()) < EXACT, errors


@pytest.mark.parametrize("backend", backend_names())
def test_a_perturbed_weight_fails_the_check(backend: str) -> None:
    """Negative control: the same comparison flags one weight changed by 1e-3 in the online network."""
    net, xs, targets = build_problem("alif", "arctan", False, False, 0.0, True, True, 3)
    if backend not in accepting_backends(net):
        pytest.skip(f"{backend} does not run here")
    reference = bptt_gradients(net, xs, targets)
    with torch.no_grad():
        net.layers[0].weight[1, 2] += 1e-3
    errors = relative_errors(online_gradients(net, xs, targets, "d-rtrl", backend=backend), reference)
    assert max(errors.values()) > 1e-5, "a changed weight went unnoticed: the check cannot fail"


def test_the_engine_reports_which_backend_runs_and_why() -> None:
    net, _, _ = build_problem("lif", "fast_sigmoid", True, False, 0.0, False, False, 1)
    engine = TraceEngine(net, 1, backend="torch")
    assert engine.backend.name == "torch" and engine.backend.reason == "requested"
    choice = TraceEngine(net, 1).backend
    assert choice.name in backend_names() and choice.describe().startswith(choice.name)


@pytest.mark.parametrize("neuron", neuron_model_names())
def test_backends_agree_on_stacked_recurrent_layers_with_a_stream_reset(neuron: str) -> None:
    """Two recurrent layers, a leaky readout, per-stream gradients with a trace decay, and one stream
    restarting mid-sequence: every backend gives the same outputs, state, traces and gradients."""
    torch.manual_seed(0)
    net = SpikingNetwork(3, 2, hidden=(7, 6), neuron=neuron, recurrent=True, readout_decay=0.6, beta=0.4,
                         learn=("beta",), weight_scale=3.0).double()
    inputs = [2.0 * torch.randn(2, 3, dtype=torch.float64) for _ in range(10)]
    signals = [torch.randn(2, 2, dtype=torch.float64) for _ in range(10)]
    runs = {}
    for backend in accepting_backends(net):
        engine = TraceEngine(net, 2, backend=backend)
        flat = np.zeros((2, engine.num_parameters()))
        outputs = []
        for t, (x, signal) in enumerate(zip(inputs, signals, strict=True)):
            outputs.append(engine.step(x).clone())
            engine.stream_backward(signal.numpy(), engine.stream_gradients(flat), decay=0.8)
            if t == 5:
                engine.reset([True, False])
        runs[backend] = (outputs, {k: v.clone() for k, v in engine.state_tensors().items()}, flat.copy())
    reference = runs.pop("torch")
    for backend, (outputs, states, flat) in runs.items():
        for a, b in zip(outputs, reference[0], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"{backend}: outputs")
        for key, value in states.items():
            torch.testing.assert_close(value, reference[1][key], rtol=1e-10, atol=1e-12,
                                       msg=f"{backend}: {key}")
        np.testing.assert_allclose(flat, reference[2], rtol=1e-10, atol=1e-12,
                                   err_msg=f"{backend}: gradients")
    assert np.abs(reference[2][0]).sum() > 0 and np.abs(reference[2][1]).sum() > 0


@pytest.mark.parametrize("batch", (1, 3))
@pytest.mark.parametrize("neuron", neuron_model_names())
def test_a_normalised_input_current_conforms_to_bptt(neuron: str, batch: int) -> None:
    """``current_norm``: each layer's current is centred and scaled across its neurons with detached
    statistics, in the forward that BPTT differentiates and in every backend's traces alike. D-RTRL stays
    exact; pp-prop's input trace sums past inputs without their steps' scale factors, so it is exact only
    for a memoryless membrane (LIF with ``beta`` 0, the tuned configs' neurons)."""
    memoryless = {"beta": 0.0} if neuron == "lif" else {}
    net, xs, targets = build_problem(neuron, "fast_sigmoid", True, False, 0.0, False, False, batch,
                                     current_norm=2.0, **memoryless)
    reference = bptt_gradients(net, xs, targets)
    plain, _, _ = build_problem(neuron, "fast_sigmoid", True, False, 0.0, False, False, batch, **memoryless)
    plain_reference = bptt_gradients(plain, xs, targets)
    changed = max(relative_errors(plain_reference, reference).values())
    assert changed > 1e-3, "the normalisation changed nothing"
    backends = accepting_backends(net)
    for algorithm in ("pp-prop", "d-rtrl"):
        exact = exact_parameters(neuron, True, False, 0.0, False, algorithm, list(reference))
        assert exact, "no parameter is checked exactly"
        results = {backend: online_gradients(net, xs, targets, algorithm, backend=backend)
                   for backend in backends}
        for backend, online in results.items():
            for name, error in relative_errors(online, reference).items():
                if name in exact:
                    assert error < EXACT, f"{algorithm} on {backend}: {name} differs from BPTT by {error:.2e}"
            assert gradient_error(online, reference) < APPROXIMATION_BOUND
        first = results[backends[0]]
        for backend in backends[1:]:
            assert max(relative_errors(results[backend], first).values()) < EXACT
    # negative control: the traces of the same weights without the normalisation miss the reference
    errors = relative_errors(online_gradients(plain, xs, targets, "d-rtrl", backend="numpy"), reference)
    assert max(errors.values()) > 1e-3


def test_backends_agree_on_stacked_layers_with_normalised_currents() -> None:
    """Two recurrent normalised layers and a leaky readout: every backend computes the same gradients,
    within the approximation bound of BPTT."""
    torch.manual_seed(0)
    net = SpikingNetwork(3, 2, hidden=(7, 6), recurrent=True, readout_decay=0.5, beta=0.4, weight_scale=3.0,
                         current_norm=1.5).double()
    xs = 2.0 * torch.randn(T, 2, 3, dtype=torch.float64)
    targets = torch.randn(T, 2, 2, dtype=torch.float64)
    reference = bptt_gradients(net, xs, targets)
    results = {backend: online_gradients(net, xs, targets, "pp-prop", backend=backend)
               for backend in accepting_backends(net)}
    first = results.pop("torch")
    assert gradient_error(first, reference) < APPROXIMATION_BOUND
    for backend, online in results.items():
        assert max(relative_errors(online, first).values()) < EXACT, backend
