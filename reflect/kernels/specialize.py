"""Templates of array code, specialised per plug-in by binding names, compiled or interpreted.

A *template* is a module of plain Python functions that call some names they do not define (a neuron
model's formulas, ``STATES``, a sub-step of a backend...). :func:`specialize` copies the functions the
module lists in ``TEMPLATE`` into one fresh namespace holding the module's globals plus ``bindings``, so
calls between the copies, and to the bound names, resolve there. With ``compiled=True`` every copy is
compiled with numba (``njit``, cached on disk) and so is every plain Python formula it reaches through
its globals (functions of ``reflect.formulas`` and of registered plug-ins); with ``compiled=False`` the
copies run as ordinary Python, which is how one orchestration (e.g. the REFLECT step) serves both the
compiled backend and the array backends.

Each compiled copy gets a name of its own, ``<function>__<tag>_<hash>``, where the hash covers the
bound functions' code and the source of the formula and kernel modules, so numba's disk cache keeps one
entry per specialisation and never serves code compiled from other formulas.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reflect.kernels.compiler import compiled_available, jit

_FORMULA_MODULES = ("reflect.formulas",)


def _is_formula(value: Any) -> bool:
    """A plain Python function of a formula module or a registered plug-in, to compile on the way."""
    return isinstance(value, types.FunctionType) and (
        value.__module__.startswith(_FORMULA_MODULES) or getattr(value, "__reflect_formula__", False)
    )


@functools.lru_cache(maxsize=None)
def _jit_formula(function: Callable[..., Any]) -> Callable[..., Any]:
    return jit(function)


def _code_digest(function: types.FunctionType, digest: Any) -> None:
    code = function.__code__
    digest.update(code.co_code)
    digest.update(repr([c for c in code.co_consts if not isinstance(c, types.CodeType)]).encode())
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            digest.update(const.co_code)


@functools.lru_cache(maxsize=None)
def _source_digest() -> str:
    """A hash of the formula and kernel sources (what a compiled template can inline)."""
    digest = hashlib.sha1()
    root = Path(__file__).resolve().parents[1]
    for folder in ("formulas", "kernels"):
        for path in sorted((root / folder).glob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def specialize(
    template: types.ModuleType, bindings: Mapping[str, Any], *, compiled: bool, tag: str = ""
) -> types.SimpleNamespace:
    """The template's functions (``template.TEMPLATE``) with ``bindings`` as globals.

    Args:
        template: the module; ``TEMPLATE`` lists the names of the functions to copy.
        bindings: names the copies may call or read (functions, numbers, tuples of numbers).
        compiled: compile the copies with numba (needs numba; see :func:`compiled_available`).
        tag: a readable part of the compiled functions' names (e.g. ``"lif_fast_sigmoid"``).

    Returns a namespace with one attribute per copied function.
    """
    if compiled and not compiled_available():
        raise ImportError('the compiled kernels need numba: pip install "reflect-rl[fast]"')
    names = tuple(template.TEMPLATE)
    namespace: dict[str, Any] = dict(vars(template))
    digest = hashlib.sha1(_source_digest().encode())
    for key in sorted(bindings):
        value = bindings[key]
        digest.update(key.encode())
        if isinstance(value, types.FunctionType):
            _code_digest(value, digest)
            digest.update(inspect.getsourcefile(value).encode() if inspect.getsourcefile(value) else b"")
        else:
            digest.update(repr(value).encode())
    namespace.update(bindings)
    if compiled:
        for key, value in list(namespace.items()):
            if key not in names and _is_formula(value):
                namespace[key] = _jit_formula(value)
        for key in bindings:
            value = bindings[key]
            if isinstance(value, types.FunctionType):
                namespace[key] = _jit_formula(value)
    suffix = f"{tag}_{digest.hexdigest()[:10]}" if tag else digest.hexdigest()[:10]
    out = types.SimpleNamespace()
    for name in names:
        original = getattr(template, name)
        copy = types.FunctionType(original.__code__, namespace, name, original.__defaults__,
                                  original.__closure__)
        copy.__qualname__ = f"{name}__{suffix}"
        copy.__module__ = template.__name__
        copy.__doc__ = original.__doc__
        function = jit(copy) if compiled else copy
        namespace[name] = function
        setattr(out, name, function)
    return out


def formula(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``function`` (a plug-in's element-wise formula outside ``reflect.formulas``) as one that
    compiled templates may call."""
    function.__reflect_formula__ = True  # type: ignore[attr-defined]
    return function
