"""``reflect verify``: how far the online eligibility-trace gradients are from backprop through time.

    reflect verify [--neuron lif|alif|cuba] [--hidden 16 16] [--steps 16] [--algorithm d-rtrl|pp-prop] ...

It builds a float64 network, runs a random sequence-regression problem through it, and prints which
backend computed the online gradients and why, then, per parameter, the deviation of the online gradient
(summed over the steps) from BPTT: ~1e-16 where the traces are exact, a visible deviation where they
approximate.
"""

from __future__ import annotations

import argparse

import torch

from reflect.commands.common import positive_int
from reflect.spiking import ENCODERS, SpikingNetwork, Surrogate, neuron_model_names, surrogate_names
from reflect.traces import ALGORITHMS, backend_names, select_backend
from reflect.traces.engine import engine_spec
from reflect.traces.oracle import bptt_gradients, online_gradients, relative_errors

EXACT = 1e-9


def _constant(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with a number, e.g. alpha=0.9, got {text!r}") from None


def add_parser(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify", help="compare online trace gradients with backprop through time",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("--neuron", choices=neuron_model_names(), default="lif")
    verify.add_argument("--constant", action="append", default=[], metavar="NAME=VALUE", type=_constant,
                        help="a constant of the neuron model, e.g. alpha=0.9 for cuba (repeatable)")
    verify.add_argument("--learn", nargs="+", default=[], metavar="NAME",
                        help="constants of the neuron model to treat as learned, e.g. alpha rho")
    verify.add_argument("--backend", choices=backend_names(), default=None,
                        help="require a backend (default: the first one that accepts the network)")
    verify.add_argument("--hidden", type=positive_int, nargs="+", default=[16], metavar="N",
                        help="neurons per spiking layer (default: 16)")
    verify.add_argument("--steps", type=positive_int, default=16, help="sequence length T (default: 16)")
    verify.add_argument("--batch", type=positive_int, default=2, help="parallel streams (default: 2)")
    verify.add_argument("--algorithm", choices=ALGORITHMS, default="d-rtrl")
    verify.add_argument("--alpha-f", type=float, default=0.0, help="pp-prop output-trace decay")
    verify.add_argument("--recurrent", action="store_true")
    verify.add_argument("--reset-in-gradient", action="store_true",
                        help="keep the reset term in the gradient (default: detached)")
    verify.add_argument("--learn-beta", action="store_true")
    verify.add_argument("--learn-theta", action="store_true")
    verify.add_argument("--per-neuron", action="store_true")
    verify.add_argument("--readout-decay", type=float, default=0.0)
    verify.add_argument("--encoder", choices=ENCODERS, default="direct")
    verify.add_argument("--surrogate", choices=surrogate_names(), default="fast_sigmoid")
    verify.add_argument("--slope", type=float, default=5.0, help="surrogate slope (default: 5)")
    verify.add_argument("--seed", type=int, default=0)
    verify.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    net = SpikingNetwork(
        3, 2, hidden=tuple(args.hidden), encoder=args.encoder, readout_decay=args.readout_decay,
        neuron=args.neuron, recurrent=args.recurrent, detach_reset=not args.reset_in_gradient,
        learn_beta=args.learn_beta, learn_theta=args.learn_theta, learn=args.learn,
        per_neuron=args.per_neuron,
        surrogate=Surrogate(args.surrogate, args.slope), **dict(args.constant),
    ).double()
    xs = 2.0 * torch.randn(args.steps, args.batch, 3, dtype=torch.float64)
    targets = torch.randn(args.steps, args.batch, 2, dtype=torch.float64)
    choice = select_backend([engine_spec(net)], args.backend)
    online = online_gradients(net, xs, targets, args.algorithm, alpha_f=args.alpha_f, backend=choice)
    errors = relative_errors(online, bptt_gradients(net, xs, targets))
    print(f"backend: {choice.describe()}")
    print(f"{args.algorithm} vs BPTT over T={args.steps} steps, {args.batch} streams, float64")
    print(f"{'parameter':<28} {'max rel. deviation':>20}")
    for name, error in errors.items():
        print(f"{name:<28} {error:>20.3e}")
    worst = max(errors.values())
    verdict = "exact (float64 round-off)" if worst < EXACT else "approximate (online credit differs)"
    print(f"worst: {worst:.3e} -> {verdict}")
    return 0
