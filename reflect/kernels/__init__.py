"""Optional compiled kernels (``numba``) for the single-stream hot path; numpy is the fallback.

A batch-1 learning step is a few hundred floating-point operations spread over ~100 numpy calls, each
costing about a microsecond of dispatch. With ``pip install "reflect-rl[fast]"`` each of the hot spots
below becomes one compiled call on the *same* buffers the numpy path uses, doing the same arithmetic in
the same order (results agree to rounding; see each module for where, if anywhere, they can differ):

* :mod:`reflect.kernels.network` - a spiking network's forward step with eligibility traces, and its
  backward pass, in one call each;
* :mod:`reflect.kernels.updates` - the ObGD-bounded parameter update of one stream;
* :mod:`reflect.kernels.gaussian` - the Gaussian head's sampling, squashing and score;
* :mod:`reflect.kernels.normalize` - the running observation normaliser for one observation;
* :mod:`reflect.kernels.policy` and :mod:`reflect.kernels.observe` - a continuous agent's whole
  single-stream ``act`` and ``observe``, each composed of the kernels above in one call.

They are used automatically when numba imports; ``REFLECT_COMPILED=0`` in the environment turns them
off everywhere (then everything runs on numpy, as without numba). Compiled code is cached on disk after
the first use, so only the first run after an install pays the compile time (10-20 s here).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

njit: Any
try:
    from numba import njit
except ImportError:  # the fallback is tested by switching the kernels off
    njit = None

INSTALL_HINT = 'the compiled kernels need numba: pip install "reflect-rl[fast]"'
_F = TypeVar("_F", bound=Callable[..., Any])


def compiled_available() -> bool:
    """Whether ``numba`` imports."""
    return njit is not None


def compiled_enabled() -> bool:
    """Whether to use the compiled kernels by default: numba imports and ``REFLECT_COMPILED`` is not
    ``0``/``false``/``no``/``off`` (read at every call, so tests and users can switch it)."""
    setting = os.environ.get("REFLECT_COMPILED", "").strip().lower()
    return compiled_available() and setting not in {"0", "false", "no", "off"}


def jit(function: _F) -> _F:
    """``numba.njit`` with an on-disk cache (the plain function when numba is missing)."""
    if njit is None:
        return function
    compiled: _F = njit(cache=True, nogil=True)(function)
    return compiled



def bind(
    kernel: Callable[..., Any], bound: tuple[Any, ...], examples: tuple[Any, ...] = ()
) -> Callable[..., Any]:
    """``kernel`` with the arguments ``bound`` fixed, calling its machine code directly.

    numba's dispatcher works out the type of every argument at every call (about 0.1 µs per array,
    more for a tuple of arrays); a bound call skips that. ``bound`` must hold the same buffers for the
    life of the binding (the compiled entry checks dtypes but not ranks, so it is never handed other
    arrays). ``examples`` are values of the scalar arguments given at call time (``float``, ``bool``,
    ``int``), in order; calls pass scalars of those kinds.
    """
    if njit is None:
        return functools.partial(kernel, *bound)
    from numba import typeof

    signature = tuple(typeof(value) for value in (*bound, *examples))
    entry = kernel.compile(signature)  # type: ignore[attr-defined]
    return functools.partial(entry, *bound)
