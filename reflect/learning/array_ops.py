"""The sub-steps of :mod:`reflect.kernels.reflect_step` for the array backends (numpy, torch).

The REFLECT act and observe are one template; the compiled backend binds its loops
(:mod:`reflect.kernels.learning_ops` and a head template), and the array backends bind these functions,
which run the same formulas on whole arrays through the objects that own the buffers: the
:class:`~reflect.traces.engine.TraceEngine` (networks), the head, the
:class:`~reflect.learning.trace_group.TraceGroup` (traces and updates) and an :class:`InputStage`
(observation normaliser).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class InputStage:
    """The network input of a step: the observation normaliser's output, or the observation itself.

    ``normalizer`` is any object with ``prepare(raw, out, update) -> bool`` (the normaliser of
    ``reflect.envs``), or ``None``.
    """

    def __init__(self, normalizer: Any = None) -> None:
        self.normalizer = normalizer

    def prepare(self, raw: np.ndarray, out: np.ndarray, update: bool) -> bool:
        """``out[:, :D]`` <- the network input for ``raw`` ``[B, D]``; ``False`` if ``raw`` holds NaN or
        inf."""
        target = out[:, : raw.shape[1]]
        if self.normalizer is not None:
            return bool(self.normalizer.prepare(raw, target, update))
        if not np.isfinite(raw).all():
            return False
        target[...] = raw
        return True


def prepare_input(norm: InputStage, raw: np.ndarray, out: np.ndarray, update: bool) -> bool:
    return norm.prepare(raw, out, update)


def copy_rows(source: np.ndarray, target: np.ndarray, columns: int) -> None:
    target[:, :columns] = source[:, :columns]


def network_forward(net: Any, traces: bool, active: np.ndarray) -> None:
    net.forward(traces, None if active.all() else active)


def network_reset(net: Any, done: np.ndarray) -> None:
    net.reset(done)


def head_sample(head: Any, out: np.ndarray, deterministic: bool) -> None:
    head.sample_step(out, deterministic)


def head_score(head: Any, out: np.ndarray, weights: np.ndarray, signal: np.ndarray,
               entropies: np.ndarray) -> None:
    head.score_step(out, weights, signal, entropies)


def head_refresh(head: Any) -> None:
    head.refresh()


def traces_accumulate(group: Any, net: Any, signal: np.ndarray, active: np.ndarray) -> None:
    group.accumulate(signal)


def traces_fresh(group: Any, net: Any, signal: np.ndarray, active: np.ndarray) -> None:
    group.compute_fresh(signal, None if active.all() else active)


def traces_absorb(group: Any) -> None:
    group.absorb()


def traces_reset(group: Any, done: np.ndarray) -> None:
    group.reset(done)


def bounded_update(group: Any, delta: np.ndarray, lr: float, kappa: float, sums: np.ndarray) -> int:
    return int(group.apply(delta, lr, kappa, sums))


BINDINGS = {name: value for name, value in list(globals().items())
            if callable(value) and not isinstance(value, type) and value.__module__ == __name__}
