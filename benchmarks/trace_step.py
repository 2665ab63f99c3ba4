"""Per-step cost of the online trace engine, batch 1, one thread.

For a 4 -> H -> H -> 2 LIF network (H = 128, 512, 2048) it measures, in microseconds per step:

* ``forward``         - inference only (``engine.step(obs, traces=False)``, the backend chosen by default),
* ``pp-prop``         - forward + pp-prop traces + gradients of every parameter on the backend chosen by
                        default (:func:`reflect.traces.select_backend`: ``numba`` where it is installed,
                        else ``numpy`` while every weight matrix has at most 65,536 entries, else
                        ``torch``),
* ``pp-numpy``        - the same on the ``numpy`` backend (``TraceEngine(..., backend="numpy")``),
* ``pp-torch``        - the same on the ``torch`` backend (``backend="torch"``),
* ``d-rtrl``          - forward + D-RTRL traces + gradients, on the backend chosen by default,
* ``reference``       - one forward + backward + SGD step of an eager-autograd ReLU MLP of the same shape,

and prints each one's median and p99 over all timed steps (several repeats, interleaved variant by
variant, so one noisy stretch on a shared machine cannot decide the result) and its ratio to the
reference measured in the same run. Before each size's rows it prints which backend the default choice
took and why (``engine.backend.describe()``). The ``numpy`` backend refuses a weight matrix above
65,536 entries (H = 512 and up here: the hidden matrix is H x (H + 1)); a variant that requests a backend
which refuses the network is skipped with a note.

    python benchmarks/trace_step.py                 # all sizes
    python benchmarks/trace_step.py --hidden 128    # just the default network
    python benchmarks/trace_step.py --hidden 128 --steps 300 --repeats 3   # quick
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from reflect.spiking import SpikingNetwork
from reflect.traces import BackendChoice, TraceEngine

OBS, ACTIONS = 4, 2


def time_steps(step: Callable[[], object], steps: int, repeats: int, warmup: int) -> np.ndarray:
    """Per-step wall times in microseconds, ``repeats * steps`` samples after ``warmup`` steps."""
    for _ in range(warmup):
        step()
    samples = np.empty(repeats * steps)
    clock = time.perf_counter_ns
    for i in range(repeats * steps):
        start = clock()
        step()
        samples[i] = (clock() - start) / 1e3
    return samples


def engine_step(hidden: int, algorithm: str | None,
                backend: str | None = None) -> tuple[Callable[[], object], BackendChoice]:
    """One engine step of the ``4-hidden-hidden-2`` LIF network (inference only when ``algorithm`` is
    None) and the backend it runs on. A requested ``backend`` that refuses the network raises
    ``ValueError`` with its reason."""
    torch.manual_seed(0)
    net = SpikingNetwork(OBS, ACTIONS, hidden=(hidden, hidden))
    engine = TraceEngine(net, 1, algorithm=algorithm or "pp-prop", backend=backend)
    grads = engine.zeros_like_gradients()
    obs, signal = torch.randn(1, OBS), torch.randn(1, ACTIONS)
    if algorithm is None:
        return (lambda: engine.step(obs, traces=False)), engine.backend

    def learn() -> None:
        engine.step(obs)
        engine.backward(signal, grads, decay=0.9)

    return learn, engine.backend


def reference_step(hidden: int) -> Callable[[], object]:
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Linear(OBS, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, ACTIONS)
    )
    optimizer = torch.optim.SGD(mlp.parameters(), lr=1e-3)
    obs, target = torch.randn(1, OBS), torch.randn(1, ACTIONS)

    def sgd() -> None:
        optimizer.zero_grad(set_to_none=False)
        loss = (mlp(obs) - target).square().sum()
        loss.backward()
        optimizer.step()

    return sgd


# variant -> (trace algorithm or None for inference only, requested backend or None for the default)
VARIANTS: dict[str, tuple[str | None, str | None]] = {
    "forward": (None, None),
    "pp-prop": ("pp-prop", None),
    "pp-numpy": ("pp-prop", "numpy"),
    "pp-torch": ("pp-prop", "torch"),
    "d-rtrl": ("d-rtrl", None),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per repeat (H = 128)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch 1, float32")
    print(f"{'network':>18} {'variant':>10} {'backend':>8} {'median us':>10} {'p99 us':>9} "
          f"{'/ reference':>12}")
    for hidden in args.hidden:
        steps = max(50, args.steps * 128 // hidden)
        warmup = max(20, steps // 10)
        variants: dict[str, Callable[[], object]] = {"reference": reference_step(hidden)}
        backends: dict[str, str] = {"reference": "torch"}
        notes: list[str] = []
        for name, (algorithm, requested) in VARIANTS.items():
            try:
                variants[name], choice = engine_step(hidden, algorithm, requested)
            except ValueError as refusal:
                notes.append(f"{name} skipped: {refusal}")
                continue
            backends[name] = choice.name
            if name == "pp-prop":
                notes.insert(0, f"default backend choice: {choice.describe()}")
        for note in notes:
            print(f"  H = {hidden}: {note}")
        # interleave the variants repeat by repeat so that machine noise hits all of them alike
        samples: dict[str, list[np.ndarray]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, step in variants.items():
                samples[name].append(time_steps(step, steps, 1, warmup))
        reference = float(np.median(np.concatenate(samples["reference"])))
        for name in variants:
            all_samples = np.concatenate(samples[name])
            median, p99 = np.median(all_samples), np.percentile(all_samples, 99)
            kind = "MLP" if name == "reference" else "LIF"
            label = f"{OBS}-{hidden}-{hidden}-{ACTIONS} {kind}"
            print(f"{label:>18} {name:>10} {backends[name]:>8} {median:10.1f} {p99:9.1f} "
                  f"{median / reference:12.3f}")


if __name__ == "__main__":
    main()
