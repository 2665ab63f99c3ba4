"""Shared helpers: gradients by backprop through time (autograd oracle) and by the online engine."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from reflect.spiking import SpikingNetwork
from reflect.traces import TraceEngine


def make_problem(
    T: int, batch: int = 2, in_features: int = 3, out_features: int = 2, seed: int = 1,
    hidden: tuple[int, ...] = (16,), **network_kwargs: Any,
) -> tuple[SpikingNetwork, Tensor, Tensor]:
    """A float64 network, inputs ``[T, B, in]`` and regression targets ``[T, B, out]``."""
    torch.manual_seed(seed)
    net = SpikingNetwork(in_features, out_features, hidden=hidden, **network_kwargs).double()
    xs = 2.0 * torch.randn(T, batch, in_features, dtype=torch.float64)
    targets = torch.randn(T, batch, out_features, dtype=torch.float64)
    return net, xs, targets


def bptt_gradients(net: SpikingNetwork, xs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """Gradient of ``sum_t 0.5 * ||o_t - target_t||^2`` by autograd through all ``T`` steps."""
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
    """The same gradient summed online: per step, the learning signal ``o_t - target_t``."""
    engine = TraceEngine(net, xs.shape[1], algorithm=algorithm, **engine_kwargs)
    total = engine.zeros_like_gradients()
    step_grads = [g.clone() for g in total]
    for x, target in zip(xs, targets, strict=True):
        out = engine.step(x)
        engine.backward(out - target, step_grads)
        for acc, g in zip(total, step_grads, strict=True):
            acc.add_(g)
    return engine.by_name(total)


def relative_error(online: dict[str, Tensor], bptt: dict[str, Tensor], names: list[str] | None = None) -> float:
    """Worst ``max|online - bptt| / max|bptt|`` over the named parameters."""
    names = list(bptt) if names is None else names
    return max(
        float((online[n] - bptt[n]).abs().max() / bptt[n].abs().max().clamp_min(1e-300)) for n in names
    )
