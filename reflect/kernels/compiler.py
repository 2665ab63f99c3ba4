"""numba, when it imports: ``jit`` with an on-disk cache, and ``bind`` to call compiled code without
numba's per-call type dispatch. Without numba ``jit`` returns the function unchanged."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

njit: Any
try:
    from numba import njit
except ImportError:  # the fallback is tested by switching the compiled backend off
    njit = None

INSTALL_HINT = 'the compiled backend needs numba: pip install "reflect-rl[fast]"'
_F = TypeVar("_F", bound=Callable[..., Any])


def compiled_available() -> bool:
    """Whether ``numba`` imports."""
    return njit is not None


def numba_version() -> str:
    """numba's version, or ``"not installed"``."""
    if njit is None:
        return "not installed"
    import numba

    return str(numba.__version__)


def jit(function: _F, inline: bool = False) -> _F:
    """``numba.njit`` with an on-disk cache (the plain function when numba is missing); ``inline``
    inlines it into its callers in numba's IR (fewer functions to compile when arguments are large)."""
    if njit is None:
        return function
    compiled: _F = njit(cache=True, nogil=True, inline="always" if inline else "never")(function)
    return compiled


def bind(
    kernel: Callable[..., Any], bound: tuple[Any, ...], examples: tuple[Any, ...] = ()
) -> Callable[..., Any]:
    """``kernel`` with the arguments ``bound`` fixed, calling its machine code directly.

    numba's dispatcher works out the type of every argument at every call (about 0.1 µs per array,
    more for a tuple of arrays); a bound call skips that. ``bound`` must hold the same buffers for the
    life of the binding. ``examples`` are values of the scalar arguments given at call time (``float``,
    ``bool``, ``int``), in order; calls pass scalars of those kinds. Without numba (or for a kernel that
    is not compiled) it is ``functools.partial``.
    """
    if njit is None or not hasattr(kernel, "compile"):
        return functools.partial(kernel, *bound)
    from numba import typeof

    signature = tuple(typeof(value) for value in (*bound, *examples))
    entry = kernel.compile(signature)
    return functools.partial(entry, *bound)
