"""Shared test helper: a small float64 sequence-regression problem for the gradient oracles."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from reflect.spiking import SpikingNetwork


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
