"""Strict config loading: dataclasses from mappings, overrides, merging and env-keyed YAML files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from reflect.config import (
    ConfigError,
    deep_merge,
    from_mapping,
    load_env_config,
    load_yaml_mapping,
    parse_overrides,
    to_dict,
)


@dataclass(frozen=True)
class LearnerConfig:
    gamma: float = 0.99
    lam: float = 0.9
    actor_lr: float = 1e-4
    normalize: bool = True
    mode: Literal["online", "batch"] = "online"

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")


@dataclass(frozen=True)
class NetworkConfig:
    hidden: tuple[int, ...] = (32, 32)
    neuron: Literal["lif", "alif"] = "lif"
    steps: int = 4
    readout_tau: float | None = None


@dataclass(frozen=True)
class RunConfig:
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    name: str = "run"
    limit: int | None = None


@dataclass(frozen=True)
class Required:
    count: int


# ----------------------------------------------------------------------------------------------------
# from_mapping / to_dict


def test_empty_mapping_gives_defaults() -> None:
    assert from_mapping(RunConfig, {}) == RunConfig()


def test_nested_values_are_converted() -> None:
    config = from_mapping(
        RunConfig,
        {
            "learner": {"gamma": 1, "mode": "batch", "normalize": False},
            "network": {"hidden": [64, 64], "readout_tau": 2, "neuron": "alif"},
            "sizes": 7,
            "limit": 100,
        },
    )
    assert config.learner == LearnerConfig(gamma=1.0, mode="batch", normalize=False)
    assert isinstance(config.learner.gamma, float)
    assert config.network.hidden == (64, 64) and isinstance(config.network.hidden, tuple)
    assert config.network.readout_tau == 2.0 and isinstance(config.network.readout_tau, float)
    assert config.sizes == [7]
    assert config.limit == 100


def test_single_int_for_tuple_field() -> None:
    assert from_mapping(NetworkConfig, {"hidden": 16}).hidden == (16,)


def test_round_trip_through_to_dict() -> None:
    config = RunConfig(
        learner=LearnerConfig(gamma=0.5, lam=0.0, actor_lr=3e-3, normalize=False, mode="batch"),
        network=NetworkConfig(hidden=(8, 4, 2), neuron="alif", steps=2, readout_tau=0.25),
        sizes=[3],
        name="x",
        limit=None,
    )
    plain = to_dict(config)
    assert plain["network"]["hidden"] == [8, 4, 2]  # tuples become lists
    assert plain["learner"] == {
        "gamma": 0.5, "lam": 0.0, "actor_lr": 3e-3, "normalize": False, "mode": "batch",
    }
    assert from_mapping(RunConfig, plain) == config


def test_to_dict_rejects_non_dataclass() -> None:
    with pytest.raises(TypeError, match="dataclass instance"):
        to_dict({"a": 1})


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(RunConfig, {"learner": {"gama": 0.9}})
    message = str(info.value)
    assert "unknown config key 'learner.gama'" in message
    assert "did you mean 'learner.gamma'?" in message
    assert "valid keys in 'learner': gamma, lam, actor_lr, normalize, mode" in message


def test_unknown_top_level_key_without_close_match() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(RunConfig, {"zzzzzz": 1})
    message = str(info.value)
    assert "unknown config key 'zzzzzz'" in message
    assert "did you mean" not in message
    assert "valid keys: learner, network, sizes, name, limit" in message


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"learner": {"gamma": "abc"}}, "learner.gamma", "must be a float, got 'abc' (str)"),
        ({"learner": {"gamma": True}}, "learner.gamma", "must be a float, got True (bool)"),
        ({"learner": {"normalize": 1}}, "learner.normalize", "must be a bool"),
        ({"network": {"steps": 2.5}}, "network.steps", "must be an int, got 2.5 (float)"),
        ({"network": {"steps": False}}, "network.steps", "must be an int, got False (bool)"),
        ({"name": 3}, "name", "must be a string, got 3 (int)"),
        ({"network": {"hidden": [64, "x"]}}, "network.hidden[1]", "must be an int, got 'x' (str)"),
        ({"network": {"hidden": "64"}}, "network.hidden", "must be a list of ints, got '64' (str)"),
        ({"network": {"readout_tau": "x"}}, "network.readout_tau", "must be a float or null"),
        ({"limit": 1.5}, "limit", "must be an int or null, got 1.5 (float)"),
        ({"learner": 3}, "learner", "must be a mapping"),
    ],
)
def test_wrong_type_names_key_and_value(data: dict, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(RunConfig, data)
    assert f"config key '{key}' {expected}" in str(info.value)


@pytest.mark.parametrize(
    ("data", "key", "shown"),
    [
        ({"learner": {"actor_lr": float("inf")}}, "learner.actor_lr", "inf (float)"),
        ({"learner": {"actor_lr": 10**400}}, "learner.actor_lr", "(int)"),
        ({"learner": {"gamma": float("nan")}}, "learner.gamma", "nan (float)"),
        ({"network": {"readout_tau": -float("inf")}}, "network.readout_tau", "-inf (float)"),
    ],
)
def test_non_finite_floats_are_refused_naming_the_key(data: dict, key: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(RunConfig, data)
    message = str(info.value)
    assert message.startswith(f"config key '{key}' must be a finite number, got ") and shown in message
    assert "give a finite value" in message


def test_yaml_infinities_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "default:\n  learner: {actor_lr: 1e309, gamma: .inf}\n")
    with pytest.raises(ConfigError, match=r"config key 'learner.\w+' must be a finite number, got inf"):
        from_mapping(RunConfig, load_env_config(path, "CartPole-v1"))


def test_literal_lists_choices() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(RunConfig, {"network": {"neuron": "izhikevich"}})
    expected = "config key 'network.neuron' must be one of 'lif', 'alif', got 'izhikevich' (str)"
    assert str(info.value) == expected


def test_post_init_error_gets_section_path() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(RunConfig, {"learner": {"gamma": 1.5}})
    assert str(info.value) == "config 'learner': gamma must be in [0, 1], got 1.5"


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match="missing required config key 'count'"):
        from_mapping(Required, {})
    assert from_mapping(Required, {"count": 3}) == Required(3)


def test_non_mapping_section() -> None:
    with pytest.raises(ConfigError, match="config must be a mapping"):
        from_mapping(RunConfig, [1, 2])  # type: ignore[arg-type]


def test_from_mapping_does_not_mutate_input() -> None:
    data = {"network": {"hidden": [1, 2]}}
    from_mapping(RunConfig, data)
    assert data == {"network": {"hidden": [1, 2]}}


# ----------------------------------------------------------------------------------------------------
# overrides and merging


def test_parse_overrides_types_and_nesting() -> None:
    parsed = parse_overrides(
        ["learner.gamma=0.98", "network.hidden=[64,64]", "learner.actor_lr=1e-3", "x.flag=true", "name=abc"]
    )
    assert parsed == {
        "learner": {"gamma": 0.98, "actor_lr": 1e-3},
        "network": {"hidden": [64, 64]},
        "x": {"flag": True},
        "name": "abc",
    }
    assert isinstance(parsed["learner"]["actor_lr"], float)
    assert parsed["x"]["flag"] is True


@pytest.mark.parametrize(("text", "value"), [("1e-3", 1e-3), ("-2E5", -2e5), ("1.0e5", 1e5), (".5e1", 5.0)])
def test_exponent_floats_parse_as_floats(text: str, value: float) -> None:
    parsed = parse_overrides([f"a={text}"])["a"]
    assert isinstance(parsed, float) and parsed == value


def test_quoted_number_stays_a_string_and_later_items_win() -> None:
    assert parse_overrides(["a='1e-3'", "b=1", "b=2", "c="]) == {"a": "1e-3", "b": 2, "c": None}


@pytest.mark.parametrize("item", ["learner.gamma", "=3", "a..b=1", " =1"])
def test_malformed_override(item: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides([item])
    message = str(info.value)
    assert f"'{item}'" in message
    assert "key=value" in message or "a.b=1" in message


def test_override_that_is_not_yaml() -> None:
    with pytest.raises(ConfigError, match=r"override 'a=\[1, 2' has a value that is not valid YAML"):
        parse_overrides(["a=[1, 2"])


def test_override_conflicting_with_a_value() -> None:
    with pytest.raises(ConfigError, match="below 'a'"):
        parse_overrides(["a=1", "a.b=2"])


def test_deep_merge_merges_mappings_and_leaves_inputs_alone() -> None:
    base = {"learner": {"gamma": 0.99, "lam": 0.9}, "network": {"hidden": [32]}, "seed": 1}
    override = {"learner": {"gamma": 0.5}, "network": {"hidden": [64, 64]}, "new": {"a": 1}}
    base_copy, override_copy = repr(base), repr(override)
    merged = deep_merge(base, override)
    assert merged == {
        "learner": {"gamma": 0.5, "lam": 0.9},
        "network": {"hidden": [64, 64]},
        "seed": 1,
        "new": {"a": 1},
    }
    merged["learner"]["lam"] = 0.0
    merged["network"]["hidden"].append(1)
    merged["new"]["a"] = 2
    assert repr(base) == base_copy and repr(override) == override_copy


def test_overrides_applied_to_file_config_build_dataclass() -> None:
    merged = deep_merge({"learner": {"lam": 0.5}}, parse_overrides(["learner.actor_lr=1e-3"]))
    config = from_mapping(RunConfig, merged)
    assert config.learner.actor_lr == 1e-3 and config.learner.lam == 0.5


# ----------------------------------------------------------------------------------------------------
# YAML files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_env_config_merges_default_and_env(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "default:\n"
        "  learner: {gamma: 0.99, actor_lr: 1e-3}\n"
        "  network: {hidden: [32, 32]}\n"
        "CartPole-v1:\n"
        "  learner: {gamma: 0.98}\n"
        "Acrobot-v1:\n",
    )
    cartpole = load_env_config(path, "CartPole-v1")
    assert cartpole == {"learner": {"gamma": 0.98, "actor_lr": 1e-3}, "network": {"hidden": [32, 32]}}
    assert isinstance(cartpole["learner"]["actor_lr"], float)
    assert load_env_config(path, "Acrobot-v1") == load_env_config(path, "Pendulum-v1")
    assert load_env_config(path, "Pendulum-v1")["learner"]["gamma"] == 0.99


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file '.*nope\.yml' does not exist"):
        load_env_config(tmp_path / "nope.yml", "CartPole-v1")


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "default:\n  gamma: 0.9\n  hidden: [1, 2\nother: 1\n")
    with pytest.raises(ConfigError) as info:
        load_env_config(path, "CartPole-v1")
    message = str(info.value)
    assert str(path) in message and "not valid YAML" in message
    assert "(line 4," in message


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping at the top level, got list"):
        load_env_config(path, "CartPole-v1")


def test_entry_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "default:\n  gamma: 1\nCartPole-v1: 3\n")
    with pytest.raises(ConfigError, match=r"entry 'CartPole-v1' in config file .* must be a mapping"):
        load_env_config(path, "CartPole-v1")


def test_empty_file_is_empty_mapping(tmp_path: Path) -> None:
    assert load_yaml_mapping(_write(tmp_path, "")) == {}


@pytest.mark.parametrize("text", ["", "# nothing\n", "---\n"])
def test_an_empty_env_config_file_is_refused(tmp_path: Path, text: str) -> None:
    # it replaces the tuned configs as a whole: accepting it would train with none of them
    with pytest.raises(ConfigError, match=r"config file '.*' is empty: write a 'default:' entry"):
        load_env_config(_write(tmp_path, text), "Acrobot-v1")


def test_an_env_config_file_with_nothing_for_the_env_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "CartPole-v1:\n  learner: {gamma: 0.9}\n")
    with pytest.raises(ConfigError, match=r"no entry for Acrobot-v1 and no 'default' entry \(it has "
                                          r"CartPole-v1\); add an 'Acrobot-v1:' or 'default:' entry"):
        load_env_config(path, "Acrobot-v1")
    assert load_env_config(path, "CartPole-v1") == {"learner": {"gamma": 0.9}}
    assert load_env_config(_write(tmp_path, "default: {}\n"), "Acrobot-v1") == {}


def test_yaml_never_builds_python_objects(tmp_path: Path) -> None:
    path = _write(tmp_path, "default: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_mapping(path)


def test_dataclass_fields_are_all_covered_by_to_dict() -> None:
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert list(to_dict(RunConfig())) == names
