"""Surrogate spike functions.

The forward pass of a spiking neuron is the Heaviside step ``s = H(u)`` with ``u = v - theta``.
Its derivative is zero almost everywhere, so learning replaces it with a smooth *surrogate*
derivative ``sigma'(u)``. Each surrogate here comes in two forms:

* :func:`spike` - the step in the forward pass and ``sigma'(u)`` as its derivative, written as a
  straight-through composition ``H(u) + phi(u) - phi(u).detach()`` where ``phi`` is a smooth function
  with ``phi' = sigma'``. Being plain tensor algebra, it works with reverse-mode autograd, forward-mode
  autograd (``torch.func.jvp``) and higher-order derivatives alike.
* :func:`surrogate_derivative` - ``sigma'(u)`` itself, hand-written, for the eligibility-trace engine,
  which never runs autograd in its hot path.

Surrogates (``k`` is the slope):

* ``fast_sigmoid``: ``phi(u) = u / (1 + k|u|)``,        ``sigma'(u) = 1 / (1 + k|u|)^2``
* ``arctan``:       ``phi(u) = arctan(pi k u / 2) / pi``, ``sigma'(u) = (k / 2) / (1 + (pi k u / 2)^2)``

Both have ``sigma'(0)`` of order one (``1`` and ``k/2``), following snnTorch and norse.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

SURROGATES = ("fast_sigmoid", "arctan")


class Surrogate(NamedTuple):
    """Which surrogate derivative to use, and its slope ``k`` (> 0)."""

    name: str = "fast_sigmoid"
    slope: float = 5.0


def check_surrogate(surrogate: Surrogate) -> Surrogate:
    """Return ``surrogate`` unchanged, or raise ``ValueError`` naming what is wrong."""
    if surrogate.name not in SURROGATES:
        raise ValueError(
            f"unknown surrogate {surrogate.name!r}: choose one of {', '.join(SURROGATES)}"
        )
    slope = surrogate.slope
    if isinstance(slope, bool) or not (isinstance(slope, (int, float)) and 0 < slope < math.inf):
        raise ValueError(f"surrogate slope must be a positive finite number, got {slope!r}")
    return surrogate


def smooth_spike(u: Tensor, surrogate: Surrogate) -> Tensor:
    """The smooth function ``phi(u)`` whose derivative is the surrogate ``sigma'(u)``."""
    k = surrogate.slope
    if surrogate.name == "fast_sigmoid":
        return u / (1.0 + k * u.abs())
    if surrogate.name == "arctan":
        return torch.atan((math.pi * k / 2.0) * u) / math.pi
    raise ValueError(f"unknown surrogate {surrogate.name!r}: choose one of {', '.join(SURROGATES)}")


def spike(u: Tensor, surrogate: Surrogate) -> Tensor:
    """Heaviside step ``H(u)`` (``1.0`` where ``u > 0``) whose derivative is ``sigma'(u)``.

    Shapes: any; the output has the shape and dtype of ``u``.
    """
    phi = smooth_spike(u, surrogate)
    return (u > 0).to(u.dtype) + (phi - phi.detach())


class SurrogateDerivative:
    """``sigma'(u)`` computed in place with constants cached as tensors of one dtype.

    Python-number operands cost a tensor conversion per call; the trace engine calls this every step
    for every layer, so its constants live here as 0-d tensors. ``kernel(out)`` replaces ``u`` (held in
    ``out``) by ``sigma'(u)``.
    """

    def __init__(self, surrogate: Surrogate, like: Tensor) -> None:
        check_surrogate(surrogate)
        self.name = surrogate.name
        k = surrogate.slope
        self.one = like.new_tensor(1.0)
        self.scale = like.new_tensor(k if self.name == "fast_sigmoid" else math.pi * k / 2.0)
        self.gain = like.new_tensor(k / 2.0)

    def __call__(self, out: Tensor) -> Tensor:
        if self.name == "fast_sigmoid":  # 1 / (1 + k|u|)^2
            out.abs_()
            torch.addcmul(self.one, out, self.scale, out=out)
            return out.pow_(-2)
        # arctan: (k/2) / (1 + (pi k u / 2)^2)
        out.mul_(self.scale).square_()
        out.add_(self.one).reciprocal_()
        return out.mul_(self.gain)


def surrogate_derivative(u: Tensor, surrogate: Surrogate, out: Tensor | None = None) -> Tensor:
    """Hand-written ``sigma'(u)`` (via :class:`SurrogateDerivative`); writes into ``out`` when given.

    Shapes: any; ``out`` must have the shape and dtype of ``u``.
    """
    if out is None:
        out = u.clone()
    elif out is not u:
        out.copy_(u)
    return SurrogateDerivative(surrogate, u)(out)
