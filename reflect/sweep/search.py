"""Search spaces of a sweep: grid axes, sampled distributions, and the config points they give.

A space maps dotted config keys (``learner.lam``, ``network.hidden``) to one of:

* a list of values (or ``{choice: [...]}``, the same): a grid axis under ``method: grid``; a
  categorical choice (each value equally likely) under ``random`` and ``optuna``;
* ``{grid: [...]}``: a grid axis under every method but ``optuna`` (``random`` crosses its samples with
  the grid axes, as Ray Tune's ``grid_search`` inside random sampling does);
* ``{uniform: [low, high]}``, ``{loguniform: [low, high]}`` (low > 0), ``{randint: [low, high]}``
  (integers, both ends included): sampled under ``random`` and ``optuna`` (Optuna's ``suggest_float``,
  ``suggest_float(log=True)`` and ``suggest_int``).

Sampled floats are rounded to 4 significant digits (and kept inside their bounds) so that labels and
folder names stay readable. Nothing here imports Ray or Optuna at module level.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reflect.config import ConfigError

__all__ = [
    "DISTRIBUTIONS",
    "METHODS",
    "Dimension",
    "Point",
    "flatten_space",
    "grid_points",
    "optuna_distributions",
    "parse_space",
    "point_from_optuna",
    "random_points",
]

METHODS = ("grid", "random", "optuna")
DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
SIGNIFICANT_DIGITS = 4


@dataclass(frozen=True)
class Dimension:
    """One searched config key.

    Attributes:
        key: the dotted config key.
        kind: ``values`` (a list), ``grid``, ``uniform``, ``loguniform`` or ``randint``.
        values: the listed values (``values`` and ``grid``), else empty.
        low / high: the bounds of a distribution, else None.
    """

    key: str
    kind: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def is_grid_axis(self) -> bool:
        return self.kind == "grid"

    def candidates(self) -> list[Any]:
        """Values worth checking against the config: every listed value, or both bounds."""
        return list(self.values) if self.values else [self.low, self.high]

    def sample(self, rng: np.random.Generator) -> Any:
        """One random value (``values``: each equally likely)."""
        if self.kind in ("values", "grid"):
            return self.values[int(rng.integers(len(self.values)))]
        assert self.low is not None and self.high is not None
        if self.kind == "randint":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "uniform":
            return self.round(float(rng.uniform(self.low, self.high)))
        return self.round(float(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))

    def round(self, value: float) -> float:
        """``value`` to 4 significant digits, kept within ``[low, high]``."""
        assert self.low is not None and self.high is not None
        rounded = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
        return min(max(rounded, float(self.low)), float(self.high))


@dataclass(frozen=True)
class Point:
    """One point of the search space: the searched keys and their values (an empty dict is the base
    config itself)."""

    index: int
    params: dict[str, Any]

    @property
    def id(self) -> str:
        return f"p{self.index}"

    @property
    def label(self) -> str:
        """``learner.lam=0.5, network.hidden=[64]``, or ``base config`` for an empty point."""
        if not self.params:
            return "base config"
        return ", ".join(f"{key}={format_value(value)}" for key, value in self.params.items())

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "params": self.params}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Point:
        return Point(int(data["index"]), dict(data["params"]))


def format_value(value: Any) -> str:
    """A short text for a config value: ``0.5``, ``[64, 64]``, ``true``, ``lif``."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


# ----------------------------------------------------------------------------------------------------
# parsing


def flatten_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"learner": {"lam": [..]}}`` -> ``{"learner.lam": [..]}``; a mapping whose keys all name
    distributions (``{uniform: [0, 1]}``) is a leaf, as is anything that is not a mapping."""
    flat: dict[str, Any] = {}
    for key, value in space.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and not _is_distribution(value):
            flat.update(flatten_space(value, dotted))
        else:
            flat[dotted] = value
    return flat


def _is_distribution(value: Mapping[str, Any]) -> bool:
    """One key that names a distribution, or nearly does (a typo then gets a clear error, rather than
    being read as a config section)."""
    if len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key in DISTRIBUTIONS or bool(difflib.get_close_matches(key, DISTRIBUTIONS, n=1, cutoff=0.75))


def parse_space(space: Mapping[str, Any], method: str) -> list[Dimension]:
    """Check a (flattened) space for ``method`` and return its dimensions, in the order given.

    Raises:
        ConfigError: a malformed entry, an unknown distribution (with the closest name), bad bounds,
            or a dimension that ``method`` cannot search (a distribution under ``grid``, a ``grid``
            axis under ``optuna``). Messages start with ``search.space '<key>'``.
    """
    dimensions = [_parse_dimension(key, value) for key, value in flatten_space(space).items()]
    for dim in dimensions:
        where = f"search.space '{dim.key}'"
        if method == "grid" and dim.kind not in ("values", "grid"):
            raise ConfigError(
                f"{where}: method 'grid' needs a list of values, got a {dim.kind} distribution; "
                "list the values, or use method 'random' or 'optuna' to sample it"
            )
        if method == "optuna" and dim.kind == "grid":
            raise ConfigError(
                f"{where}: method 'optuna' has no grid axes; write the values as a plain list "
                "(a categorical choice)"
            )
    return dimensions


def _parse_dimension(key: str, value: Any) -> Dimension:
    where = f"search.space '{key}'"
    if isinstance(value, list | tuple):
        return Dimension(key, "values", _check_values(where, value))
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where} must be a list of values or a distribution such as {{uniform: [0.1, 0.9]}}, "
            f"got {value!r}; to fix a key for every trial, put it under 'fixed'"
        )
    if len(value) != 1:
        raise ConfigError(
            f"{where} must name one distribution (one of {', '.join(DISTRIBUTIONS)}), got keys "
            f"{', '.join(map(str, value))}"
        )
    kind, args = next(iter(value.items()))
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ";"
        raise ConfigError(
            f"{where}: unknown distribution '{kind}'{hint} use a list of values or one of "
            f"{', '.join(DISTRIBUTIONS)}"
        )
    if kind in ("grid", "choice"):
        if not isinstance(args, list | tuple):
            raise ConfigError(f"{where}: {kind} needs a list of values, got {args!r}")
        return Dimension(key, "grid" if kind == "grid" else "values", _check_values(where, args))
    if not (isinstance(args, list | tuple) and len(args) == 2):
        raise ConfigError(f"{where}: {kind} needs [low, high], got {args!r}")
    low, high = args
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (low, high))
    if kind == "randint" and not all(isinstance(x, int) and not isinstance(x, bool) for x in (low, high)):
        raise ConfigError(f"{where}: randint needs integer bounds [low, high], got {list(args)}")
    if not numbers:
        raise ConfigError(f"{where}: {kind} needs numeric bounds [low, high], got {list(args)}")
    if not low < high:
        raise ConfigError(f"{where}: {kind} needs low < high, got [{low}, {high}]")
    if kind == "loguniform" and not low > 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got [{low}, {high}]")
    if kind == "randint":
        return Dimension(key, kind, low=int(low), high=int(high))
    return Dimension(key, kind, low=float(low), high=float(high))


def _check_values(where: str, values: Sequence[Any]) -> tuple[Any, ...]:
    if not values:
        raise ConfigError(f"{where}: the list of values is empty; give at least one value")
    texts = [json.dumps(value, sort_keys=True, default=str) for value in values]
    duplicates = sorted({text for text in texts if texts.count(text) > 1})
    if duplicates:
        raise ConfigError(f"{where}: the value {duplicates[0]} is listed twice; list each value once")
    return tuple(values)


# ----------------------------------------------------------------------------------------------------
# points


def grid_points(dimensions: Sequence[Dimension]) -> list[Point]:
    """The Cartesian product of all (list or grid) dimensions, the first key varying slowest."""
    if not dimensions:
        return [Point(0, {})]
    combos = itertools.product(*(dim.values for dim in dimensions))
    return [
        Point(index, {dim.key: value for dim, value in zip(dimensions, combo, strict=True)})
        for index, combo in enumerate(combos)
    ]


def random_points(dimensions: Sequence[Dimension], num_samples: int, seed: int) -> list[Point]:
    """``num_samples`` random draws of the sampled dimensions, each crossed with every combination of
    the ``grid`` axes (so ``num_samples * prod(len(grid axis))`` points); reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    grid = [dim for dim in dimensions if dim.is_grid_axis]
    sampled = [dim for dim in dimensions if not dim.is_grid_axis]
    points: list[Point] = []
    for _ in range(num_samples):
        draw = {dim.key: dim.sample(rng) for dim in sampled}
        for combo in itertools.product(*(dim.values for dim in grid)):
            fixed = dict(zip((dim.key for dim in grid), combo, strict=True))
            params = {dim.key: fixed[dim.key] if dim.key in fixed else draw[dim.key] for dim in dimensions}
            points.append(Point(len(points), params))
    return points


def optuna_distributions(dimensions: Sequence[Dimension]) -> dict[str, Any]:
    """Optuna distributions for the dimensions (lists become categorical choices over their indices,
    so any value, lists included, can be a choice). Imports optuna."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    result: dict[str, Any] = {}
    for dim in dimensions:
        if dim.kind == "values":
            result[dim.key] = CategoricalDistribution(list(range(len(dim.values))))
        elif dim.kind == "randint":
            assert dim.low is not None and dim.high is not None
            result[dim.key] = IntDistribution(int(dim.low), int(dim.high))
        elif dim.kind in ("uniform", "loguniform"):
            assert dim.low is not None and dim.high is not None
            result[dim.key] = FloatDistribution(dim.low, dim.high, log=dim.kind == "loguniform")
        else:
            raise ValueError(f"dimension '{dim.key}' of kind {dim.kind} has no optuna distribution")
    return result


def point_from_optuna(index: int, dimensions: Sequence[Dimension], params: Mapping[str, Any]) -> Point:
    """The point for an Optuna trial's ``params`` (category indices -> values, floats rounded)."""
    values: dict[str, Any] = {}
    for dim in dimensions:
        raw = params[dim.key]
        if dim.kind == "values":
            values[dim.key] = dim.values[int(raw)]
        elif dim.kind == "randint":
            values[dim.key] = int(raw)
        else:
            values[dim.key] = dim.round(float(raw))
    return Point(index, values)


def optuna_params(dimensions: Sequence[Dimension], point: Point) -> dict[str, Any]:
    """The inverse of :func:`point_from_optuna`: a point's values as Optuna params."""
    params: dict[str, Any] = {}
    for dim in dimensions:
        value = point.params[dim.key]
        if dim.kind == "values":
            texts = [json.dumps(v, sort_keys=True, default=str) for v in dim.values]
            params[dim.key] = texts.index(json.dumps(value, sort_keys=True, default=str))
        else:
            params[dim.key] = value
    return params
