"""The few functions formulas need beyond operators, for numpy arrays, torch tensors and numba scalars.

Each is a plain function that calls torch's method on a tensor and numpy's ufunc on anything else; when
numba is installed, an overload makes the same name compile to the C library call on scalars, so a
formula that uses them compiles unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def tanh(x: Any) -> Any:
    if type(x) is float:
        return math.tanh(x)
    return x.tanh() if hasattr(x, "tanh") else np.tanh(x)


def exp(x: Any) -> Any:
    if type(x) is float:
        return math.exp(x)
    return x.exp() if hasattr(x, "exp") else np.exp(x)


def log(x: Any) -> Any:
    if type(x) is float:
        return math.log(x)
    return x.log() if hasattr(x, "log") else np.log(x)


def sqrt(x: Any) -> Any:
    if type(x) is float:
        return math.sqrt(x)
    return x.sqrt() if hasattr(x, "sqrt") else np.sqrt(x)


def clip(x: Any, low: Any, high: Any) -> Any:
    """``min(max(x, low), high)``."""
    if type(x) is float:
        return min(max(x, low), high)
    return x.clamp(low, high) if hasattr(x, "clamp") else np.minimum(np.maximum(x, low), high)


OVERLOADED = (tanh, exp, log, sqrt, clip)
for _function in OVERLOADED:
    setattr(_function, "__reflect_overloaded__", True)  # noqa: B010  (specialize() reads it)

def _register_overloads() -> None:
    """Let numba compile the functions above (on scalars) where it is installed."""
    try:
        from numba.extending import overload
    except ImportError:  # without numba the functions above serve alone
        return

    @overload(tanh)
    def _tanh(x):  # numba matches these names and annotations to the lambda's
        return lambda x: math.tanh(x)

    @overload(exp)
    def _exp(x):  # numba matches these names and annotations to the lambda's
        return lambda x: math.exp(x)

    @overload(log)
    def _log(x):  # numba matches these names and annotations to the lambda's
        return lambda x: math.log(x)

    @overload(sqrt)
    def _sqrt(x):  # numba matches these names and annotations to the lambda's
        return lambda x: math.sqrt(x)

    @overload(clip)
    def _clip(x, low, high):  # numba matches these names and annotations to the lambda's
        return lambda x, low, high: min(max(x, low), high)


_register_overloads()
