"""Strict, typed configuration: YAML files and ``--set key=value`` overrides -> nested dataclasses.

A run's configuration is a tree of dataclasses. Values arrive as plain mappings (from a YAML file
keyed by environment id, merged with command-line overrides) and :func:`from_mapping` turns them
into dataclass instances, refusing anything it does not understand:

* an unknown key fails, with the closest valid key suggested (``learner.gama`` -> ``learner.gamma``);
* a value of the wrong type fails, naming the dotted key, the expected type and the value given;
* a float must be finite (``1e309`` reads as inf, ``.nan`` as NaN: both fail, naming the key);
* a ``ValueError`` from a dataclass's ``__post_init__`` (range checks) is re-raised with its section.

Supported field types: ``int``, ``float`` (ints accepted, bools not), ``bool`` (real booleans only),
``str``, ``Literal[...]``, ``tuple[int, ...]`` / ``list[int]`` (a list, or a single value),
``dict[str, X]``, ``X | None``, ``Any`` and nested dataclasses (given as mappings).

YAML is read with PyYAML's safe loader, extended so that floats written without a dot or with an
unsigned exponent (``1e-3``, ``1.0e5``) load as floats, as in YAML 1.2, instead of as strings.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "ConfigError",
    "ConfigWarning",
    "deep_merge",
    "from_mapping",
    "load_env_config",
    "load_yaml_mapping",
    "parse_overrides",
    "to_dict",
]

T = TypeVar("T")

DEFAULT_ENTRY = "default"


class ConfigError(ValueError):
    """A configuration value, key or file is invalid; the message names it and how to fix it."""


class ConfigWarning(UserWarning):
    """A valid configuration that is probably not what was meant (e.g. a network so large that every
    step is slow); the message, one line, names the key and what to do."""


# ----------------------------------------------------------------------------------------------------
# YAML


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain types only) that also reads ``1e-3`` and ``1.0e5`` as floats.

    PyYAML follows YAML 1.1, whose float syntax needs a dot and a signed exponent, so ``1e-3`` would
    load as the string ``'1e-3'``. The extra resolver adds YAML 1.2's exponent forms. It applies to
    plain scalars only: a quoted ``'1e-3'`` stays a string.
    """


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_yaml(text: str) -> Any:
    """Parse YAML text with the safe loader above (it constructs only plain Python types)."""
    return yaml.load(text, Loader=_SafeLoader)


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping; an empty file gives ``{}``.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML (the message gives the line),
            or its top level is not a mapping.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"config file '{file}' does not exist; check the path")
    if file.is_dir():
        raise ConfigError(f"config file '{file}' is a directory; give the path of a YAML file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file '{file}': {_os_reason(error)}") from error
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as error:
        where = _yaml_where(error)
        raise ConfigError(f"config file '{file}' is not valid YAML{where}; fix the syntax") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file '{file}' must hold a mapping at the top level, got {_type_name(data)}; "
            "write 'key: value' entries"
        )
    return data


def load_env_config(path: str | Path, env_id: str) -> dict[str, Any]:
    """Read an env-keyed YAML config file and return ``deep_merge(default, file[env_id])``.

    The file maps environment ids to config mappings, plus an optional ``default`` entry that every
    environment starts from. An entry with an empty body (``CartPole-v1:``) counts as ``{}``; an
    environment without an entry gets the defaults alone. The file replaces the tuned configs as a
    whole (as rl-baselines3-zoo's hyperparameter files do), so a file with nothing for ``env_id``
    would silently train with none of them: an empty file, or one with neither an ``env_id`` nor a
    ``default`` entry, is an error.

    Raises:
        ConfigError: see :func:`load_yaml_mapping`; also when any entry is not a mapping, and when the
            file is empty or has no entry for ``env_id`` and no ``default`` entry.
    """
    data = load_yaml_mapping(path)
    if not data:
        raise ConfigError(
            f"config file '{path}' is empty: write a '{DEFAULT_ENTRY}:' entry and/or one per env id "
            f"(e.g. '{env_id}:'), with keys indented below, or leave the file out to use the tuned configs"
        )
    if env_id not in data and DEFAULT_ENTRY not in data:
        raise ConfigError(
            f"config file '{path}' has no entry for {env_id} and no '{DEFAULT_ENTRY}' entry (it has "
            f"{_listing(data)}); add an '{env_id}:' or '{DEFAULT_ENTRY}:' entry"
        )
    for key, entry in data.items():
        if entry is not None and not isinstance(entry, dict):
            raise ConfigError(
                f"entry '{key}' in config file '{path}' must be a mapping of config keys, "
                f"got {_type_name(entry)}; write its keys indented below it"
            )
    default = data.get(DEFAULT_ENTRY) or {}
    specific = data.get(env_id) or {}
    return deep_merge(default, specific)


def _listing(data: Mapping[str, Any], shown: int = 5) -> str:
    """The first ``shown`` keys of ``data``, comma-separated, with how many more there are."""
    keys = [str(key) for key in data]
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _yaml_where(error: yaml.YAMLError) -> str:
    """`` (line L, column C): problem`` for a PyYAML error, or ``: message`` when it has no position."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return f": {problem}"
    return f" (line {mark.line + 1}, column {mark.column + 1}): {problem}"


# ----------------------------------------------------------------------------------------------------
# overrides and merging


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["learner.gamma=0.98", "network.hidden=[64, 64]"]`` into a nested dict.

    Values are parsed as YAML (``1e-3`` -> float, ``true`` -> bool, ``[64, 64]`` -> list, ``null`` ->
    None, an empty value -> None, anything else -> string). Later items win over earlier ones.

    Raises:
        ConfigError: an item has no ``=``, an empty key or key part, a value that is not valid YAML, or
            a key that sets both a value and a sub-key (``a=1`` then ``a.b=2``).
    """
    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. learner.gamma=0.98)")
        parts = key.split(".")
        if any(not part.strip() for part in parts):
            raise ConfigError(f"override '{item}' has an empty part in its key; write dotted keys like a.b=1")
        parts = [part.strip() for part in parts]
        try:
            value = _load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(
                f"override '{item}' has a value that is not valid YAML{_yaml_where(error)}; "
                "quote it if it is a string"
            ) from error
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"override '{item}' sets a key below '{prefix}', which an earlier override set to a "
                    "value; set one or the other"
                )
            node = child
        node[parts[-1]] = value
    return result


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` laid on top. Mappings on both sides merge recursively;
    anything else in ``override`` replaces. Neither input is modified (values are deep-copied)."""
    merged: dict[str, Any] = {key: copy.deepcopy(value) for key, value in base.items()}
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ----------------------------------------------------------------------------------------------------
# dataclasses


def from_mapping(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` (nested dataclasses included) from a mapping, strictly.

    Keys missing from ``data`` take the dataclass defaults. ``path`` is the dotted prefix used in error
    messages (the section's position in the whole config).

    Raises:
        ConfigError: an unknown or missing required key, a value of the wrong type, or a ``ValueError``
            from ``__post_init__`` (prefixed with the section path).
        TypeError: ``cls`` is not a dataclass, or one of its field types is not supported.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"from_mapping needs a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        where = f"config section '{path}'" if path else "config"
        raise ConfigError(f"{where} must be a mapping of config keys, got {_describe(data)}")
    hints = _type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}

    for key in data:
        if key not in fields:
            raise ConfigError(_unknown_key_message(key, list(fields), path))

    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], _join(path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required config key '{_join(path, name)}'; add it to the config")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as error:
        where = f"config '{path}'" if path else "config"
        raise ConfigError(f"{where}: {error}") from error


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a dict of plain values (nested dataclasses -> dicts, tuples -> lists),
    ready for ``config.yaml`` or a checkpoint; ``from_mapping(type(obj), to_dict(obj)) == obj``."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"to_dict needs a dataclass instance, got {type(obj).__name__}")
    result = _plain(obj)
    assert isinstance(result, dict)
    return result


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [field for field in dataclasses.fields(value) if field.init]
        return {field.name: _plain(getattr(value, field.name)) for field in fields}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return get_type_hints(cls)
    except NameError as error:
        raise TypeError(
            f"cannot resolve the field types of {cls.__qualname__}: {error}; "
            "define the dataclass and the types it uses at module level"
        ) from error


def _convert(tp: Any, value: Any, key: str) -> Any:
    """Check (and where lossless, convert) ``value`` for a field of type ``tp`` at dotted ``key``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        return _convert_union(tp, value, key)
    if origin is Literal:
        choices = get_args(tp)
        if any(value == choice and type(value) is type(choice) for choice in choices):
            return value
        listed = ", ".join(repr(choice) for choice in choices)
        raise ConfigError(f"config key '{key}' must be one of {listed}, got {_describe(value)}")
    if origin in (tuple, list) or tp in (tuple, list):
        return _convert_sequence(tp, value, key)
    if origin is dict or tp is dict:
        return _convert_dict(tp, value, key)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping of config keys, got {_describe(value)}")
        return from_mapping(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}' must be a bool (true or false), got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise ConfigError(f"config key '{key}' must be an int, got {_describe(value)}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _finite_float(value, key)
        raise ConfigError(f"config key '{key}' must be a float, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{key}' must be a string, got {_describe(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"config key '{key}' must be null, got {_describe(value)}")
    raise TypeError(f"config key '{key}' has a field type that configs do not support: {tp!r}")


def _finite_float(value: int | float, key: str) -> float:
    """``value`` as a float, refusing inf and NaN (YAML reads ``1e309`` as inf, ``.nan`` as NaN)."""
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(
            f"config key '{key}' must be a finite number, got {_describe(value)}; give a finite value "
            "(a number beyond about 1.8e308 reads as inf)"
        )
    return number


def _convert_union(tp: Any, value: Any, key: str) -> Any:
    options = get_args(tp)
    if value is None and type(None) in options:
        return None
    concrete = [option for option in options if option is not type(None)]
    if float in concrete and isinstance(value, float) and not math.isfinite(value):
        _finite_float(value, key)  # the reason, not "must be a float or null, got inf"
    if len(concrete) == 1 and not _is_scalar_type(concrete[0]):
        return _convert(concrete[0], value, key)  # a container or section reports its own errors
    for option in concrete:
        try:
            return _convert(option, value, key)
        except ConfigError:
            continue
    names = " or ".join(_type_label(option) for option in options)
    raise ConfigError(f"config key '{key}' must be {names}, got {_describe(value)}")


def _is_scalar_type(tp: Any) -> bool:
    return tp in (int, float, bool, str, type(None)) or get_origin(tp) is Literal


def _convert_sequence(tp: Any, value: Any, key: str) -> Any:
    container = get_origin(tp) or tp
    args = get_args(tp)
    single = not isinstance(value, list | tuple)
    if single and (isinstance(value, Mapping | str | bytes | set) or value is None):
        raise ConfigError(f"config key '{key}' must be {_type_label(tp)}, got {_describe(value)}")
    items = [value] if single else list(value)  # a single value stands for a one-element sequence
    if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            raise ConfigError(
                f"config key '{key}' must be a list of {len(args)} values, "
                f"got {len(items)}: {_describe(value)}"
            )
        element_types = list(args)
    else:
        element_types = [args[0] if args else Any] * len(items)
    converted = [
        _convert(element_type, item, key if single else f"{key}[{index}]")
        for index, (element_type, item) in enumerate(zip(element_types, items, strict=True))
    ]
    return tuple(converted) if container is tuple else converted


def _convert_dict(tp: Any, value: Any, key: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key '{key}' must be a mapping of config keys, got {_describe(value)}")
    key_type, value_type = get_args(tp) or (Any, Any)
    return {
        _convert(key_type, item_key, f"{key} (a key)"): _convert(value_type, item, _join(key, str(item_key)))
        for item_key, item in value.items()
    }


_LABELS = {int: "an int", float: "a float", bool: "a bool", str: "a string", type(None): "null"}
_PLURALS = {int: "ints", float: "floats", bool: "bools", str: "strings"}


def _type_label(tp: Any) -> str:
    """A short human name for a field type: 'an int', 'a list of ints', 'null', ..."""
    if tp in _LABELS:
        return _LABELS[tp]
    origin = get_origin(tp)
    if origin in (tuple, list) or tp in (tuple, list):
        args = {arg for arg in get_args(tp) if arg is not Ellipsis}
        if len(args) == 1 and next(iter(args)) in _PLURALS:
            return f"a list of {_PLURALS[next(iter(args))]}"
        return "a list"
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(tp))
    if origin is dict or tp is dict or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return "a mapping"
    return repr(tp)


def _unknown_key_message(key: Any, valid: list[str], path: str) -> str:
    shown = _join(path, str(key))
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"; did you mean '{_join(path, close[0])}'?" if close else ";"
    where = f" in '{path}'" if path else ""
    return f"unknown config key '{shown}'{hint} valid keys{where}: {', '.join(valid) or '(none)'}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe(value: Any) -> str:
    """``'abc' (str)``: a value's repr (shortened) and its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({_type_name(value)})"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _os_reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error)
