"""Reference gradients: backprop through time (autograd) versus the online engine.

Used by the test-suite and by ``reflect verify`` to show, for a given network, how far the online
eligibility-trace gradients are from BPTT on a sequence-regression loss
``L = sum_t 0.5 * ||o_t - target_t||^2`` (run it in float64 for a meaningful comparison).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from reflect.spiking.network import SpikingNetwork
from reflect.traces.engine import TraceEngine


def bptt_gradients(net: SpikingNetwork, xs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """Gradient of ``L`` by autograd through all ``T`` steps.

    ``xs``: ``[T, B, in]``, ``targets``: ``[T, B, out]``.
    """
    state = None
    loss = xs.new_zeros(())
    for x, target in zip(xs, targets, strict=True):
        out, state = net(x, state)
        loss = loss + 0.5 * (out - target).square().sum()
    names, params = zip(*net.named_parameters(), strict=True)
    return dict(zip(names, torch.autograd.grad(loss, params), strict=True))


def online_gradients(
    net: SpikingNetwork, xs: Tensor, targets: Tensor, algorithm: str, **engine_kwargs: Any
) -> dict[str, Tensor]:
    """The gradient of ``L`` summed online, with the per-step learning signal ``o_t - target_t``."""
    engine = TraceEngine(net, xs.shape[1], algorithm=algorithm, **engine_kwargs)
    total = engine.zeros_like_gradients()
    step_grads = [g.clone() for g in total]
    for x, target in zip(xs, targets, strict=True):
        out = engine.step(x)
        engine.backward(out - target, step_grads)
        for acc, g in zip(total, step_grads, strict=True):
            acc.add_(g)
    return engine.by_name(total)


def relative_errors(online: dict[str, Tensor], bptt: dict[str, Tensor]) -> dict[str, float]:
    """``max|online - bptt| / max|bptt|`` per parameter name."""
    return {
        name: float((online[name] - ref).abs().max() / ref.abs().max().clamp_min(1e-300))
        for name, ref in bptt.items()
    }


def relative_error(
    online: dict[str, Tensor], bptt: dict[str, Tensor], names: list[str] | None = None
) -> float:
    """The worst of :func:`relative_errors` over ``names`` (default: all)."""
    errors = relative_errors(online, bptt)
    return max(errors[n] for n in (errors if names is None else names))
