"""Surrogate spike derivatives, as registered plug-ins.

The forward pass of a spiking neuron is the Heaviside step ``s = H(u)`` (``u > 0``). Its derivative is
zero almost everywhere, so learning replaces it with a smooth *surrogate* derivative ``sigma'(u)``. A
surrogate is two element-wise formulas with slope ``k``:

* ``derivative(u, k)``: ``sigma'(u)``, written with operators only, so the one definition runs on numpy
  arrays, torch tensors and scalars inside compiled kernels (the eligibility traces use it);
* ``smooth(u, k)``: a smooth function ``phi`` with ``phi' = sigma'`` (torch), for :func:`spike`'s
  straight-through form ``H(u) + phi(u) - phi(u).detach()``, which works with reverse-mode and
  forward-mode autograd and higher-order derivatives alike.

Built in (both have ``sigma'(0)`` of order one, ``1`` and ``k/2``, following snnTorch and norse)::

    fast_sigmoid:  phi(u) = u / (1 + k|u|),               sigma'(u) = 1 / (1 + k|u|)^2
    arctan:        phi(u) = arctan(pi k u / 2) / pi,       sigma'(u) = (k / 2) / (1 + (pi k u / 2)^2)

A new surrogate is a :class:`SurrogateFunction` passed to :func:`register_surrogate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from reflect.registry import Registry


@dataclass(frozen=True)
class SurrogateFunction:
    """A registered surrogate: ``derivative(u, k)`` (operators only) and its antiderivative
    ``smooth(u, k)`` (torch)."""

    name: str
    derivative: Callable[[Any, Any], Any]
    smooth: Callable[[Tensor, float], Tensor]
    summary: str = ""


_SURROGATES: Registry[SurrogateFunction] = Registry("surrogate")


def register_surrogate(function: SurrogateFunction) -> SurrogateFunction:
    """Add a surrogate to the registry (a second one of the same name is an error); returns it."""
    return _SURROGATES.add(function.name, function)


def surrogate_names() -> tuple[str, ...]:
    """Names of the registered surrogates."""
    return _SURROGATES.names()


def surrogate_function(name: str) -> SurrogateFunction:
    """The registered surrogate ``name``; raises ``ValueError`` listing the registered ones."""
    return _SURROGATES.get(name)


def fast_sigmoid_derivative(u, k):
    q = 1.0 / (1.0 + k * abs(u))
    return q * q


def fast_sigmoid_smooth(u: Tensor, k: float) -> Tensor:
    return u / (1.0 + k * u.abs())


def arctan_derivative(u, k):
    w = (math.pi / 2.0) * k * u
    return (k / 2.0) / (1.0 + w * w)


def arctan_smooth(u: Tensor, k: float) -> Tensor:
    return torch.atan((math.pi * k / 2.0) * u) / math.pi


register_surrogate(SurrogateFunction(
    "fast_sigmoid", fast_sigmoid_derivative, fast_sigmoid_smooth, "1 / (1 + k|u|)^2 (SuperSpike)"))
register_surrogate(SurrogateFunction(
    "arctan", arctan_derivative, arctan_smooth, "(k/2) / (1 + (pi k u / 2)^2)"))

SURROGATES = surrogate_names()  # the built-in ones (plug-ins registered later: surrogate_names())


class Surrogate(NamedTuple):
    """Which surrogate derivative to use, and its slope ``k`` (> 0)."""

    name: str = "fast_sigmoid"
    slope: float = 5.0


def check_surrogate(surrogate: Surrogate) -> Surrogate:
    """Return ``surrogate`` unchanged, or raise ``ValueError`` naming what is wrong."""
    surrogate_function(surrogate.name)
    slope = surrogate.slope
    if isinstance(slope, bool) or not (isinstance(slope, (int, float)) and 0 < slope < math.inf):
        raise ValueError(f"surrogate slope must be a positive finite number, got {slope!r}")
    return surrogate


def smooth_spike(u: Tensor, surrogate: Surrogate) -> Tensor:
    """The smooth function ``phi(u)`` whose derivative is the surrogate ``sigma'(u)``."""
    return surrogate_function(surrogate.name).smooth(u, surrogate.slope)


def spike(u: Tensor, surrogate: Surrogate) -> Tensor:
    """Heaviside step ``H(u)`` (``1.0`` where ``u > 0``) whose derivative is ``sigma'(u)``.

    Shapes: any; the output has the shape and dtype of ``u``.
    """
    phi = smooth_spike(u, surrogate)
    return (u > 0).to(u.dtype) + (phi - phi.detach())


def surrogate_derivative(u: Any, surrogate: Surrogate, out: Any = None) -> Any:
    """``sigma'(u)`` from the registered formula, for tensors or arrays (written into ``out`` when
    given). Shapes: any."""
    value = surrogate_function(surrogate.name).derivative(u, surrogate.slope)
    if out is None:
        return value
    out[...] = value
    return out
