"""The YAML sweep spec: what to run (envs x seeds x config points), how to search, with what resources.

::

    name: cartpole-lam            # default: the file's name
    envs: [CartPole-v1]
    seeds: 5                      # seeds 0-4; or a list, e.g. [0, 1, 2, 3, 4]
    total_steps: 40000            # budget per trial (sets train.total_steps)
    config: null                  # a config file shaped like configs/reflect.yaml (default: the tuned one)
    fixed:                        # dotted config keys set in every trial
      train.checkpoint_every: 10000
    search:
      method: grid                # grid | random | optuna
      space:                      # dotted config keys: a list, {grid: [...]}, {uniform: [lo, hi]},
        learner.lam: [0.5, 0.8, 0.95]   # {loguniform: [lo, hi]}, {randint: [lo, hi]}
      num_samples: null           # random / optuna: points to draw
      seed: 0                     # random / optuna: sampler seed
      metric: final_eval_mean_return   # optuna's objective (median over the point's trials); or
                                  # best_eval_mean_return, solved_at_step, stable_from_step, or
                                  # solved_fraction (the share of its trials that reached the threshold)
      batch_size: null            # optuna: points asked per round (default: enough to fill max_concurrent)
    resources:
      max_concurrent: 2           # trials running at once
      cpus_per_trial: 1
      max_failures: 2             # a failed trial is retried this often, from its last checkpoint
    debug:
      fail_once_at_step: null     # kill the trials listed in fail_trials once, after their first
      fail_trials: [0]            #   checkpoint at or past this step (exercises the retry path)

Parsing is strict and needs neither Ray nor Optuna: an unknown key names the closest valid one, and
every searched or fixed config key and value is checked against the agent's config (the same checks
as ``reflect train --set``) before anything runs. Errors are :class:`ConfigError` (a ``ValueError``)
whose message starts with ``sweep spec '<file>':``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from reflect.config import (
    ConfigError,
    deep_merge,
    from_mapping,
    load_env_config,
    load_yaml_mapping,
    parse_overrides,
    to_dict,
)
from reflect.sweep.search import METHODS, Dimension, Point, flatten_space, format_value, parse_space

__all__ = [
    "METRICS",
    "STEP_METRICS",
    "DebugSpec",
    "ResourcesSpec",
    "SearchSpec",
    "SweepSpec",
    "find_spec_file",
    "load_sweep_spec",
    "parse_sweep_spec",
    "resolve_config",
    "spec_to_dict",
]

METRICS = {"final_eval_mean_return": "max", "best_eval_mean_return": "max", "solved_at_step": "min",
           "stable_from_step": "min", "solved_fraction": "max"}
STEP_METRICS = ("solved_at_step", "stable_from_step")  # a trial that never got there counts as 2x its budget
SPEC_PACKAGE_FOLDER = "sweeps"


@dataclass(frozen=True)
class SearchSpec:
    """How config points are chosen (see :mod:`reflect.sweep.search` for the space syntax)."""

    method: Literal["grid", "random", "optuna"] = "grid"
    space: dict[str, Any] = field(default_factory=dict)
    num_samples: int | None = None
    seed: int = 0
    metric: Literal[
        "final_eval_mean_return", "best_eval_mean_return", "solved_at_step", "stable_from_step",
        "solved_fraction",
    ] = "final_eval_mean_return"
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:  # Literal already checks; kept for direct construction
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "grid":
            if self.num_samples is not None:
                raise ValueError(
                    "num_samples applies to methods 'random' and 'optuna'; a grid runs every combination"
                )
        elif self.num_samples is None or self.num_samples < 1:
            raise ValueError(
                f"method '{self.method}' needs num_samples >= 1 (how many config points to draw), "
                f"got {self.num_samples}"
            )
        if self.batch_size is not None:
            if self.method != "optuna":
                raise ValueError("batch_size applies to method 'optuna' only")
            if self.batch_size < 1:
                raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class ResourcesSpec:
    """Concurrency and fault tolerance."""

    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    max_failures: int = 2

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if not self.cpus_per_trial > 0:
            raise ValueError(f"cpus_per_trial must be > 0, got {self.cpus_per_trial}")
        if self.max_failures < 0:
            raise ValueError(f"max_failures must be >= 0 (0: never retry), got {self.max_failures}")


@dataclass(frozen=True)
class DebugSpec:
    """Deterministic fault injection: kill chosen trials once, after a checkpoint."""

    fail_once_at_step: int | None = None
    fail_trials: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if self.fail_once_at_step is not None and self.fail_once_at_step < 1:
            raise ValueError(f"fail_once_at_step must be >= 1, got {self.fail_once_at_step}")
        if any(index < 0 for index in self.fail_trials):
            raise ValueError(f"fail_trials must list trial numbers >= 0, got {list(self.fail_trials)}")


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: trials are (config point, env id, seed)."""

    name: str
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    total_steps: int | None = None
    config: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    search: SearchSpec = field(default_factory=SearchSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    debug: DebugSpec = field(default_factory=DebugSpec)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("name must not be empty")
        if not self.envs:
            raise ValueError("envs must list at least one env id, e.g. [CartPole-v1]")
        for what, items in (("envs", self.envs), ("seeds", self.seeds)):
            repeated = sorted({str(item) for item in items if items.count(item) > 1})
            if repeated:
                raise ValueError(f"{what} lists {repeated[0]} twice; list each once")
        if not self.seeds:
            raise ValueError("seeds must be a count >= 1 or a list of seeds")
        if any(seed < 0 for seed in self.seeds):
            raise ValueError(f"seeds must be >= 0, got {list(self.seeds)}")
        if self.total_steps is not None and self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")

    @property
    def trials_per_point(self) -> int:
        return len(self.envs) * len(self.seeds)

    @property
    def mode(self) -> str:
        """``max`` or ``min``: the direction of ``search.metric``."""
        return METRICS[self.search.metric]


# ----------------------------------------------------------------------------------------------------
# loading


def find_spec_file(name: str | Path) -> Path:
    """A spec file path, or the name of a spec shipped with reflect (``cartpole`` ->
    ``configs/sweeps/cartpole.yaml``).

    Raises:
        ConfigError: neither a file nor a shipped spec of that name exists.
    """
    path = Path(name)
    if path.exists():
        return path
    shipped = Path(str(resources.files("reflect.configs").joinpath(SPEC_PACKAGE_FOLDER)))
    candidate = shipped / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and candidate.is_file():
        return candidate
    names = sorted(p.stem for p in shipped.glob("*.yaml")) if shipped.is_dir() else []
    listed = f"; shipped specs: {', '.join(names)}" if names else ""
    raise ConfigError(f"sweep spec '{name}' does not exist; give the path of a YAML file{listed}")


def load_sweep_spec(
    path: str | Path, overrides: Sequence[str] = (), *, check: bool = True
) -> tuple[SweepSpec, list[Dimension]]:
    """Read, check and return a spec file (a path or a shipped spec's name) and its search dimensions.

    ``overrides`` are ``--set key=value`` items laid over the file (``total_steps=20000``,
    ``resources.max_concurrent=4``, ``search.space.learner.lam=[0.5, 0.9]``). ``check`` also builds the
    agent config for every searched and fixed value on every env (see :func:`check_spec`).

    Raises:
        ConfigError: the file is missing or malformed, or any key or value is invalid.
    """
    file = find_spec_file(path)
    data = load_yaml_mapping(file)
    if overrides:
        try:
            data = deep_merge(data, parse_overrides(overrides))
        except ConfigError as error:
            raise ConfigError(f"sweep spec '{file}': {error}") from error
    return parse_sweep_spec(data, source=str(file), base_dir=file.parent, default_name=file.stem, check=check)


def parse_sweep_spec(
    data: Mapping[str, Any],
    *,
    source: str = "<spec>",
    base_dir: Path | None = None,
    default_name: str = "sweep",
    check: bool = True,
) -> tuple[SweepSpec, list[Dimension]]:
    """Check a spec given as a mapping (see the module docstring); ``config`` paths are relative to
    ``base_dir`` (the spec file's folder). Returns the spec and its search dimensions.

    Raises:
        ConfigError: ``sweep spec '<source>': <what is wrong and how to fix it>``.
    """
    prefix = f"sweep spec '{source}'"
    try:
        raw = _normalise(data, default_name, base_dir)
        spec = from_mapping(SweepSpec, raw)
        dimensions = parse_space(spec.search.space, spec.search.method)
        _check_keys(spec, dimensions)
        if check:
            check_spec(spec, dimensions)
    except ConfigError as error:
        raise ConfigError(f"{prefix}: {_spec_wording(str(error))}") from error
    return spec, dimensions


def _spec_wording(message: str) -> str:
    """from_mapping speaks of 'config keys' and 'config sections'; in a spec they are spec keys."""
    if message.startswith(("unknown config key", "config key", "missing required config key")):
        return message.replace("config key", "key", 1)
    if message.startswith("config: "):
        return message.removeprefix("config: ")
    if message.startswith("config '"):
        section, _, rest = message.removeprefix("config '").partition("': ")
        return f"{section}: {rest}"
    return message


def _normalise(data: Mapping[str, Any], default_name: str, base_dir: Path | None) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"a sweep spec must be a mapping of keys, got {type(data).__name__}")
    raw = copy.deepcopy(dict(data))
    raw.setdefault("name", default_name)
    if "envs" not in raw:
        raise ConfigError("missing required key 'envs'; list the env ids, e.g. envs: [CartPole-v1]")
    if isinstance(raw["envs"], str):
        raw["envs"] = [raw["envs"]]
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"key 'seeds' must be a count >= 1 or a list of seeds, got {seeds}")
        seeds = list(range(seeds))
    elif not isinstance(seeds, list | tuple):
        raise ConfigError(
            f"key 'seeds' must be a count (5 means seeds 0-4) or a list of seeds, got {seeds!r}"
        )
    raw["seeds"] = seeds
    fixed = raw.get("fixed")
    if fixed is None:
        raw["fixed"] = {}
    elif not isinstance(fixed, Mapping):
        raise ConfigError(f"key 'fixed' must map dotted config keys to values, got {fixed!r}")
    else:
        raw["fixed"] = _flatten_fixed(fixed)
    search = raw.get("search")
    if isinstance(search, Mapping) and isinstance(search.get("space"), Mapping):
        raw["search"] = {**search, "space": flatten_space(search["space"])}
    elif isinstance(search, Mapping) and search.get("space") is None and "space" in search:
        raw["search"] = {**search, "space": {}}
    config = raw.get("config")
    if isinstance(config, str) and base_dir is not None and not Path(config).is_absolute():
        raw["config"] = str((base_dir / config).resolve())
    for section in ("search", "resources", "debug"):
        if section in raw and raw[section] is None:
            del raw[section]
    return raw


def _flatten_fixed(fixed: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in fixed.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(_flatten_fixed(value, dotted))
        else:
            flat[dotted] = value
    return flat


def _check_keys(spec: SweepSpec, dimensions: Sequence[Dimension]) -> None:
    searched = {dim.key for dim in dimensions}
    for key in spec.fixed:
        if key in searched:
            raise ConfigError(
                f"'{key}' is both fixed and searched; keep it in one of 'fixed' and 'search.space'"
            )
    keys = list(spec.fixed) + [dim.key for dim in dimensions]
    for key in keys:
        if key == "train.total_steps" and spec.total_steps is not None:
            raise ConfigError(
                "'train.total_steps' is set both by 'total_steps' (the budget per trial) and as a config "
                "key; keep one"
            )
        for other in keys:
            if other.startswith(key + "."):
                raise ConfigError(f"'{key}' and '{other}' overlap; set either the section or its key")
    if spec.debug.fail_once_at_step is not None and spec.search.method != "optuna":
        points = 1
        for dim in dimensions:
            if spec.search.method == "grid" or dim.is_grid_axis:
                points *= len(dim.values)
        if spec.search.method == "random":
            points *= spec.search.num_samples or 1
        count = points * spec.trials_per_point
        bad = [index for index in spec.debug.fail_trials if index >= count]
        if bad:
            raise ConfigError(
                f"debug.fail_trials lists trial {bad[0]}, but the sweep has trials 0-{count - 1}"
            )


# ----------------------------------------------------------------------------------------------------
# trial configs


def nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"learner.lam": 0.5}`` -> ``{"learner": {"lam": 0.5}}``."""
    result: dict[str, Any] = {}
    for key, value in dotted.items():
        parts = key.split(".")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    return result


def resolve_config(spec: SweepSpec, env_id: str, params: Mapping[str, Any]) -> Any:
    """The checked :class:`ReflectConfig` of one trial: the env's entry of the config file (the tuned
    configs by default), then ``fixed``, then the point's ``params``, then ``total_steps``.

    Raises:
        ConfigError: an unknown key (naming the closest valid one) or an invalid value.
    """
    from reflect.agents.config import default_config_path, load_reflect_config

    data = load_env_config(spec.config or default_config_path(), env_id)
    data = deep_merge(data, nested(spec.fixed))
    data = deep_merge(data, nested(params))
    if spec.total_steps is not None:
        data = deep_merge(data, {"train": {"total_steps": spec.total_steps}})
    return load_reflect_config(env_id, base=data)


def check_spec(spec: SweepSpec, dimensions: Sequence[Dimension]) -> None:
    """Check the envs (registered, with supported spaces) and build the config of every env with each
    searched value (both bounds of a distribution) in turn: bad keys and values fail here, not in a trial.

    Raises:
        ConfigError: naming the env or the searched key and value, and the problem.
    """
    from reflect.agents.reflect_agent import check_env_spaces

    for env_id in spec.envs:
        try:
            check_env_spaces(env_id)
        except ValueError as error:
            raise ConfigError(f"envs: {error}") from error
        base = {dim.key: dim.candidates()[0] for dim in dimensions}
        try:
            config = resolve_config(spec, env_id, base)
        except ConfigError as error:
            raise ConfigError(f"on {env_id}: {error}") from error
        for dim in dimensions:
            for value in dim.candidates()[1:]:
                try:
                    resolve_config(spec, env_id, {**base, dim.key: value})
                except ConfigError as error:
                    raise ConfigError(
                        f"search.space '{dim.key}' value {format_value(value)} on {env_id}: {error}"
                    ) from error
        _check_fault_injection(spec, config)


def check_point(spec: SweepSpec, point: Point) -> None:
    """Build the config of ``point`` on every env (for sampled points)."""
    for env_id in spec.envs:
        try:
            resolve_config(spec, env_id, point.params)
        except ConfigError as error:
            raise ConfigError(f"point {point.id} ({point.label}) on {env_id}: {error}") from error


def _check_fault_injection(spec: SweepSpec, config: Any) -> None:
    step = spec.debug.fail_once_at_step
    if step is None:
        return
    schedule = config.train
    if schedule.checkpoint_every == 0:
        raise ConfigError(
            "debug.fail_once_at_step needs checkpoints; set train.checkpoint_every > 0 in 'fixed'"
        )
    if step >= schedule.total_steps:
        raise ConfigError(
            f"debug.fail_once_at_step ({step}) must be below the budget of {schedule.total_steps} steps"
        )


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """The spec as plain YAML-ready values (parses back to the same spec)."""
    return to_dict(spec)
