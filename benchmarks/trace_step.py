"""Per-step cost of the online trace engine, batch 1, one thread.

For a 4 -> H -> H -> 2 LIF network (H = 128, 512, 2048) it measures, in microseconds per step:

* ``forward``         - inference only (``engine.step(obs, traces=False)``, the default kernels),
* ``pp-prop``         - forward + pp-prop traces + gradients of every parameter (the default kernels:
                        compiled where numba is installed and the network is small enough, else numpy),
* ``pp-numpy``        - the same on the numpy fast path (``compiled=False``),
* ``pp-torch``        - the same on the torch kernels (``numpy_path=False``),
* ``d-rtrl``          - forward + D-RTRL traces + gradients,
* ``reference``       - one forward + backward + SGD step of an eager-autograd ReLU MLP of the same shape,

and prints each one's median and p99 over all timed steps (several repeats, so one noisy stretch on a
shared machine cannot decide the result) and its ratio to the reference measured in the same run.

    python benchmarks/trace_step.py                 # all sizes
    python benchmarks/trace_step.py --hidden 128    # just the default network
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from reflect.spiking import SpikingNetwork
from reflect.traces import TraceEngine

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


def engine_step(hidden: int, algorithm: str | None, numpy_path: bool | None = None,
                compiled: bool | None = None) -> Callable[[], object]:
    torch.manual_seed(0)
    net = SpikingNetwork(OBS, ACTIONS, hidden=(hidden, hidden))
    engine = TraceEngine(net, 1, algorithm=algorithm or "pp-prop", numpy_path=numpy_path, compiled=compiled)
    grads = engine.zeros_like_gradients()
    obs, signal = torch.randn(1, OBS), torch.randn(1, ACTIONS)
    if algorithm is None:
        return lambda: engine.step(obs, traces=False)

    def learn() -> None:
        engine.step(obs)
        engine.backward(signal, grads, decay=0.9)

    return learn


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
    print(f"{'network':>18} {'variant':>10} {'median us':>10} {'p99 us':>9} {'/ reference':>12}")
    for hidden in args.hidden:
        steps = max(50, args.steps * 128 // hidden)
        warmup = max(20, steps // 10)
        variants: dict[str, Callable[[], object]] = {
            "reference": reference_step(hidden),
            "forward": engine_step(hidden, None),
            "pp-prop": engine_step(hidden, "pp-prop"),
            "pp-numpy": engine_step(hidden, "pp-prop", compiled=False),
            "pp-torch": engine_step(hidden, "pp-prop", numpy_path=False),
            "d-rtrl": engine_step(hidden, "d-rtrl"),
        }
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
            print(f"{label:>18} {name:>10} {median:10.1f} {p99:9.1f} {median / reference:12.3f}")


if __name__ == "__main__":
    main()
