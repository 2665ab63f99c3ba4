"""How far the online gradients are from backprop through time, by kind of documented approximation.

For every registered neuron model (``lif``, ``alif``, ``cuba``, ...) x reset detached from the gradient
or not x feed-forward or recurrent x linear readout or leaky readout (decay 0.5) x one value of every
constant per layer or one per neuron (drawn within the constant's range) x trace algorithm (pp-prop,
D-RTRL), plus a two-layer stacked network per model (detached reset, feed-forward, linear readout, per
layer constants), a float64 network (3 inputs, 16 hidden neurons per layer, 2 outputs, every neuron
constant learned) runs a sequence-regression problem: batch 2, ``--steps`` steps of random inputs and
targets, loss ``L = sum_t 0.5 * ||o_t - target_t||^2``. Autograd through all the steps of
``SpikingNetwork.forward`` gives the reference gradient (:func:`reflect.traces.oracle.bptt_gradients`);
the online engine the summed online gradient (:func:`reflect.traces.oracle.online_gradients`). The error
of a case is the relative error of the whole gradient, ``||online - BPTT|| / ||BPTT||`` over every
parameter at once (a zero gradient scores 1), and the table gives its median and maximum over
``--seeds`` seeds (networks and problems drawn from seeds 0, 1, ...). This is the problem of
``tests/test_conformance.py`` (which checks the same cases at T = 6, 5 neurons, against the bounds).

The ``kind`` column names the documented approximations a case is subject to (the trace engine's
docstring, :mod:`reflect.traces.engine`); ``exact`` marks a case whose online gradient is documented to
equal BPTT:

* ``exact``         - one non-recurrent layer under a linear readout, with D-RTRL (every model), or with
                      pp-prop where one input trace suffices (LIF, detached reset, constants per layer);
* ``pp-prop``       - pp-prop's factorised traces outside that case (another model, the reset in the
                      gradient, or constants per neuron);
* ``recurrent``     - recurrent weights: the traces keep only the same-step credit of the recurrent path;
* ``leaky readout`` - the readout's temporal path into the hidden layer is dropped;
* ``stacked``       - deeper stacks: same-step spatial credit between layers.

At the end, per kind: the cases, how many measured exact (error < 1e-9), and the median and largest
error.

    python benchmarks/trace_conformance.py                        # T = 16, 3 seeds, the backend chosen
    python benchmarks/trace_conformance.py --steps 8 --seeds 1    # quick
    python benchmarks/trace_conformance.py --backend torch        # on one backend
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from dataclasses import dataclass

import torch

from reflect.spiking import SpikingNetwork, Surrogate, neuron_model, neuron_model_names
from reflect.traces import backend_names, select_backend
from reflect.traces.engine import engine_spec
from reflect.traces.oracle import bptt_gradients, online_gradients

INPUTS, OUTPUTS = 3, 2
HIDDEN = 16
BATCH = 2
LEAKY_READOUT = 0.5
EXACT = 1e-9
ALGORITHMS = ("pp-prop", "d-rtrl")
SURROGATE = Surrogate("fast_sigmoid", 2.0)


@dataclass(frozen=True)
class Case:
    """One network configuration of the grid."""

    neuron: str
    detach: bool
    recurrent: bool
    decay: float
    per_neuron: bool
    layers: int = 1

    def columns(self) -> tuple[str, ...]:
        return (
            self.neuron,
            "detached" if self.detach else "in grad",
            ("recurrent" if self.recurrent else "feed-fwd") + (f" x{self.layers}" if self.layers > 1 else ""),
            f"leaky {self.decay:g}" if self.decay else "linear",
            "per neuron" if self.per_neuron else "per layer",
        )

    def approximations(self, algorithm: str) -> tuple[str, ...]:
        """The documented approximations this case is subject to under ``algorithm`` (none: exact)."""
        kinds = []
        if algorithm == "pp-prop" and not (self.neuron == "lif" and self.detach and not self.per_neuron):
            kinds.append("pp-prop")
        if self.recurrent:
            kinds.append("recurrent")
        if self.decay:
            kinds.append("leaky readout")
        if self.layers > 1:
            kinds.append("stacked")
        return tuple(kinds)

    def kind(self, algorithm: str) -> str:
        return " + ".join(self.approximations(algorithm)) or "exact"


def grid() -> list[Case]:
    """Per model: every reset x connectivity x readout x constants, then its two-layer stacked case."""
    cases = []
    for neuron in neuron_model_names():
        cases += [
            Case(neuron, detach, recurrent, decay, per_neuron)
            for detach, recurrent, decay, per_neuron in itertools.product(
                (True, False), (False, True), (0.0, LEAKY_READOUT), (False, True)
            )
        ]
        cases.append(Case(neuron, True, False, 0.0, False, layers=2))
    return cases


def build_problem(case: Case, seed: int, steps: int) -> tuple[SpikingNetwork, torch.Tensor, torch.Tensor]:
    """A float64 network of ``case`` (per-neuron constants drawn within their ranges), inputs
    ``[steps, BATCH, INPUTS]`` and targets ``[steps, BATCH, OUTPUTS]``, all from ``seed``."""
    model = neuron_model(case.neuron)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SpikingNetwork(
        INPUTS, OUTPUTS, hidden=(HIDDEN,) * case.layers, neuron=case.neuron, recurrent=case.recurrent,
        detach_reset=case.detach, surrogate=SURROGATE, readout_decay=case.decay, per_neuron=case.per_neuron,
        learn=model.parameter_names, weight_scale=3.0,
    ).double()
    if case.per_neuron:
        with torch.no_grad():
            for layer in net.spiking_layers:
                for spec in model.parameters:
                    value = getattr(layer, spec.name)
                    low = max(spec.low, 0.2 if spec.name != "beta_a" else 0.1)
                    high = min(spec.high, low + 0.6)
                    noise = torch.rand(value.shape, generator=generator, dtype=value.dtype)
                    value.copy_(low + (high - low) * noise)
    xs = 2.0 * torch.randn(steps, BATCH, INPUTS, generator=generator, dtype=torch.float64)
    targets = torch.randn(steps, BATCH, OUTPUTS, generator=generator, dtype=torch.float64)
    return net, xs, targets


def gradient_error(online: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """``||online - reference|| / ||reference||`` over every parameter at once."""
    diff = sum(float((online[name] - value).square().sum()) for name, value in reference.items())
    norm = sum(float(value.square().sum()) for value in reference.values())
    return (diff / norm) ** 0.5


def measure(case: Case, seeds: int, steps: int, backend: str | None) -> tuple[dict[str, list[float]], str]:
    """Per algorithm, the whole-gradient error of each seed; and the backend that ran the first seed."""
    errors: dict[str, list[float]] = {algorithm: [] for algorithm in ALGORITHMS}
    ran_on = ""
    for seed in range(seeds):
        net, xs, targets = build_problem(case, seed, steps)
        if not ran_on:
            ran_on = select_backend([engine_spec(net)], backend).name
        reference = bptt_gradients(net, xs, targets)
        for algorithm in ALGORITHMS:
            online = online_gradients(net, xs, targets, algorithm, backend=backend)
            errors[algorithm].append(gradient_error(online, reference))
    return errors, ran_on


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=16, help="time steps T of each sequence (default 16)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case (default 3)")
    parser.add_argument("--backend", choices=backend_names(), default=None,
                        help="run the online engine on this backend (default: the one chosen)")
    args = parser.parse_args()
    if args.steps < 1 or args.seeds < 1:
        parser.error("--steps and --seeds must be >= 1")
    torch.set_num_threads(1)
    cases = grid()
    print(f"online gradients vs BPTT: float64, {INPUTS} inputs, {HIDDEN} hidden per layer, "
          f"{OUTPUTS} outputs, batch {BATCH}, T = {args.steps}, {args.seeds} seed(s), "
          f"{SURROGATE.name} surrogate (slope {SURROGATE.slope:g}), every constant learned; backend "
          f"{args.backend or 'chosen per network'}")
    print("error = ||online - BPTT|| / ||BPTT|| over the whole gradient (a zero gradient scores 1); "
          f"median and max over seeds; exact: < {EXACT:g}")
    header = (f"{'model':<6} {'reset':<9} {'layers':<12} {'readout':<10} {'constants':<10} "
              f"{'algorithm':<9} {'backend':<7} {'median':>9} {'max':>9}  kind")
    print(header)
    print("-" * len(header))
    by_kind: dict[str, list[float]] = {}
    exact_failures: list[str] = []
    for case in cases:
        errors, ran_on = measure(case, args.seeds, args.steps, args.backend)
        for algorithm in ALGORITHMS:
            values = errors[algorithm]
            median, worst = statistics.median(values), max(values)
            kind = case.kind(algorithm)
            by_kind.setdefault(kind, []).extend(values)
            model, reset, layers, readout, constants = case.columns()
            flag = ""
            if kind == "exact" and worst >= EXACT:
                flag = "  <- documented exact, is not"
                exact_failures.append(f"{' '.join(case.columns())} {algorithm}: {worst:.2e}")
            print(f"{model:<6} {reset:<9} {layers:<12} {readout:<10} {constants:<10} {algorithm:<9} "
                  f"{ran_on:<7} {median:9.2e} {worst:9.2e}  {kind}{flag}", flush=True)

    print("\nsummary by kind (over every case and seed of that kind):")
    print(f"{'kind':<42} {'runs':>5} {'exact':>7} {'median':>9} {'max':>9}  verdict")
    order = sorted(by_kind, key=lambda k: (k != "exact", k.count("+"), k))
    for kind in order:
        values = by_kind[kind]
        exact = sum(v < EXACT for v in values)
        worst = max(values)
        verdict = ("exact" if worst < EXACT else f"approximate, max error {worst:.3f}")
        print(f"{kind:<42} {len(values):>5} {exact:>3}/{len(values):<3} {statistics.median(values):9.2e} "
              f"{worst:9.2e}  {verdict}")
    approximate = [v for k, vs in by_kind.items() if k != "exact" for v in vs]
    if exact_failures:
        print(f"documented-exact cases that are NOT exact ({len(exact_failures)}):")
        for line in exact_failures:
            print(f"  {line}")
    else:
        print(f"every documented-exact case is exact (< {EXACT:g})")
    if approximate:
        print(f"largest error of a documented approximation: {max(approximate):.3f} "
              "(a zero gradient scores 1)")


if __name__ == "__main__":
    main()
