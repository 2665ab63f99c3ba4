"""Templates of array code, specialised per plug-in by binding names, compiled or interpreted.

A *template* is a module of plain Python functions that call some names they do not define (a neuron
model's formulas, ``STATES``, a backend's sub-step...). :func:`specialize` copies the functions the
modules list in ``TEMPLATE`` into one fresh namespace holding the modules' globals plus ``bindings``, so
calls between the copies, and to the bound names, resolve there. With ``compiled=True`` every copy is
compiled with numba (``njit``, cached on disk) and so is every plain Python formula it reaches through
its globals (functions of ``reflect.formulas`` and functions marked with :func:`formula`); with
``compiled=False`` the copies run as ordinary Python, which is how one orchestration (the REFLECT step)
serves both the compiled backend and the array backends.

Each compiled copy gets a name of its own, ``<function>__<tag>_<hash>``, where the hash covers the
templates' and the bound functions' code and the source of the formula and kernel modules, so numba's
disk cache keeps one entry per specialisation and never serves code compiled from other formulas.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reflect.kernels.compiler import INSTALL_HINT, compiled_available, jit

_FORMULA_MODULES = ("reflect.formulas",)


def _is_formula(value: Any) -> bool:
    """A plain Python function of a formula module or a marked plug-in, to compile on the way."""
    if not isinstance(value, types.FunctionType) or getattr(value, "__reflect_overloaded__", False):
        return False  # reflect.formulas.ops: numba compiles those through their overloads
    return value.__module__.startswith(_FORMULA_MODULES) or getattr(value, "__reflect_formula__", False)


@functools.cache
def _jit_formula(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` compiled, with the formulas it calls compiled too (a copy whose globals hold them)."""
    assert isinstance(function, types.FunctionType)
    namespace = dict(function.__globals__)
    for key in function.__code__.co_names:  # the globals it reads
        value = function.__globals__.get(key)
        if value is not function and _is_formula(value):
            namespace[key] = _jit_formula(value)
    copy = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                              function.__closure__)
    copy.__qualname__, copy.__module__ = function.__qualname__, function.__module__
    return jit(copy)


def _code_digest(function: types.FunctionType, digest: Any) -> None:
    code = function.__code__
    digest.update(code.co_code)
    digest.update(repr([c for c in code.co_consts if not isinstance(c, types.CodeType)]).encode())
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            digest.update(const.co_code)


@functools.cache
def _source_digest() -> str:
    """A hash of the formula and kernel sources (what a compiled template can inline)."""
    digest = hashlib.sha1()
    root = Path(__file__).resolve().parents[1]
    for folder in ("formulas", "kernels"):
        for path in sorted((root / folder).glob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _merged_globals(modules: Sequence[types.ModuleType], replaced: set[str]) -> dict[str, Any]:
    """The modules' globals in one dict; a name two modules give different values is an error (the
    names in ``replaced``, copies and bindings, are set afterwards)."""
    namespace: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for module in modules:
        for key, value in vars(module).items():
            if key in replaced or key.startswith("__") or key in ("TEMPLATE", "INLINE", "REASSOCIATE"):
                continue
            if key in namespace and namespace[key] is not value and namespace[key] != value:
                raise ValueError(
                    f"template modules {owner[key]} and {module.__name__} both define {key!r} differently: "
                    "rename one"
                )
            namespace[key] = value
            owner[key] = module.__name__
    return namespace


def _digest(modules: Sequence[types.ModuleType], bindings: Mapping[str, Any]) -> str:
    digest = hashlib.sha1(_source_digest().encode())
    for module in modules:
        digest.update(module.__name__.encode())
        source = inspect.getsourcefile(module)
        if source:
            digest.update(Path(source).read_bytes())
    for key in sorted(bindings):
        value = bindings[key]
        digest.update(key.encode())
        if isinstance(value, types.FunctionType):
            _code_digest(value, digest)
            digest.update(str(inspect.getsourcefile(value)).encode())
        elif hasattr(value, "py_func"):  # a compiled function: its specialised name says what it is
            digest.update(value.py_func.__qualname__.encode())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()[:10]


def specialize(
    templates: types.ModuleType | Sequence[types.ModuleType], bindings: Mapping[str, Any], *, compiled: bool,
    tag: str = "",
) -> types.SimpleNamespace:
    """The templates' functions (each module's ``TEMPLATE``) in one namespace with ``bindings``.

    Args:
        templates: the modules; each one's ``TEMPLATE`` lists the names of the functions to copy (a later
            module's function replaces an earlier one's of the same name). Names two modules define
            differently outside ``TEMPLATE`` are an error.
        bindings: names the copies may call or read (functions, compiled functions, numbers).
        compiled: compile the copies with numba (needs numba; see :func:`compiled_available`).
        tag: a readable part of the compiled functions' names (e.g. ``"lif_fast_sigmoid"``).

    Returns a namespace with one attribute per copied function.
    """
    if compiled and not compiled_available():
        raise ImportError(INSTALL_HINT)
    modules = [templates] if isinstance(templates, types.ModuleType) else list(templates)
    sources = {name: module for module in modules for name in module.TEMPLATE}
    names = tuple(sources)
    namespace = _merged_globals(modules, set(names) | set(bindings))
    namespace.update(bindings)
    if compiled:
        for key, value in list(namespace.items()):
            if key not in names and (_is_formula(value) or (
                    key in bindings and isinstance(value, types.FunctionType))):
                namespace[key] = _jit_formula(value)
    inline = {name for module in modules for name in getattr(module, "INLINE", ())}
    reassociate = {name for module in modules for name in getattr(module, "REASSOCIATE", ())}
    digest = _digest(modules, bindings)
    suffix = f"{tag}_{digest}" if tag else digest
    out = types.SimpleNamespace()
    for name in names:
        original = getattr(sources[name], name)
        copy = types.FunctionType(original.__code__, namespace, name, original.__defaults__,
                                  original.__closure__)
        copy.__qualname__ = f"{name}__{suffix}"
        copy.__module__ = sources[name].__name__
        copy.__doc__ = original.__doc__
        function = jit(copy, inline=name in inline, reassociate=name in reassociate) if compiled else copy
        namespace[name] = function
        setattr(out, name, function)
    return out


def placeholder(*args: Any) -> Any:
    """What a template names but does not define: :func:`specialize` binds the real function."""
    raise NotImplementedError("a template function runs only as specialize() returns it")


def formula(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``function`` (a plug-in's element-wise formula outside ``reflect.formulas``) as one that
    compiled templates may call."""
    function.__reflect_formula__ = True  # type: ignore[attr-defined]
    return function
