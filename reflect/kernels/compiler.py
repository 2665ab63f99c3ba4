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


if njit is not None:  # numba's StructRef types, at module level so compiled code that uses them caches
    from numba.core import types as _types
    from numba.experimental import structref as _structref

    @_structref.register
    class BundleType(_types.StructRef):
        """A StructRef holding one tuple (``.items``)."""

        def preprocess_fields(self, fields: Any) -> Any:
            return tuple((name, _types.unliteral(typ)) for name, typ in fields)

    class Bundle(_structref.StructRefProxy):
        def __new__(cls, items: tuple[Any, ...]) -> Any:
            return _structref.StructRefProxy.__new__(cls, items)

    _structref.define_proxy(Bundle, BundleType, ["items"])

    @_structref.register
    class StepBundleType(_types.StructRef):
        """The buffers of a learner's compiled step, one field per part (see LEARNER_FIELDS)."""

        def preprocess_fields(self, fields: Any) -> Any:
            return tuple((name, _types.unliteral(typ)) for name, typ in fields)

    class StepBundle(_structref.StructRefProxy):
        def __new__(cls, *parts: Any) -> Any:
            return _structref.StructRefProxy.__new__(cls, *parts)

    STEP_FIELDS = ("norm", "actor", "critic", "head", "actor_traces", "critic_traces", "io", "settings",
                   "results", "done")
    _structref.define_proxy(StepBundle, StepBundleType, list(STEP_FIELDS))

    # constructors compiled with the disk cache (a proxy built from Python compiles its constructor anew
    # in every process: seconds per learner)
    @njit(cache=True)
    def _new_bundle(items):
        return Bundle(items)

    @njit(cache=True)
    def _new_step_bundle(norm, actor, critic, head, actor_traces, critic_traces, io, settings, results,
                         done):
        return StepBundle(norm, actor, critic, head, actor_traces, critic_traces, io, settings, results, done)


def bundle(items: tuple[Any, ...]) -> Any:
    """``items`` (the buffers of a compiled call) behind one handle that compiled code opens with
    ``.items``: a call from Python then passes one pointer instead of unboxing every array, and the code
    pays a reference count for each array it reads."""
    if njit is None:
        raise ImportError(INSTALL_HINT)
    return _new_bundle(items)


def step_bundle(*parts: Any) -> Any:
    """A learner's step buffers (the fields of ``STEP_FIELDS``, in order) behind one handle; an entry
    reads only the fields it needs, so it pays reference counts for those arrays only."""
    if njit is None:
        raise ImportError(INSTALL_HINT)
    return _new_step_bundle(*parts)


def compiled_available() -> bool:
    """Whether ``numba`` imports."""
    return njit is not None


def numba_version() -> str:
    """numba's version, or ``"not installed"``."""
    if njit is None:
        return "not installed"
    import numba

    return str(numba.__version__)


def jit(function: _F, inline: bool = False, reassociate: bool = False) -> _F:
    """``numba.njit`` with an on-disk cache (the plain function when numba is missing); ``inline``
    inlines it into its callers in numba's IR (fewer functions to compile when arguments are large);
    ``reassociate`` lets LLVM reorder its floating-point sums (so long reductions vectorise; NaN and inf
    keep their meaning)."""
    if njit is None:
        return function
    fastmath = {"reassoc"} if reassociate else False
    compiled: _F = njit(cache=True, nogil=True, inline="always" if inline else "never",
                        fastmath=fastmath)(function)
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
