"""Build Gymnasium environments with clear errors for unknown ids and missing optional dependencies.

Every environment built here has its spaces encoded for the learners (:mod:`reflect.envs.encoding`):
observations that are not a 1-D Box become a float32 vector, ``MultiDiscrete`` actions (up to 64
combinations) and ``Discrete`` actions that do not start at 0 become ``Discrete(n)`` from 0. Ids of packages
that register their environments on import (``popgym-...``) import the package on demand.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from typing import Any

import gymnasium as gym
from gymnasium import error as gym_error

from reflect.envs.encoding import (
    EncodeActions,
    EncodeObservations,
    action_encoding_problem,
    needs_action_encoding,
    needs_observation_encoding,
    observation_encoding_problem,
)
from reflect.envs.errors import EnvSetupError, UnknownEnvironmentError
from reflect.envs.streams import StreamVectorEnv

__all__ = ["make_env", "make_single_env"]

_LIST_IDS = "python -c \"import gymnasium; print(sorted(gymnasium.registry))\""
# Gymnasium's own environment groups and the pip extra that brings in their dependencies.
_EXTRAS = {
    "mujoco": "mujoco",
    "box2d": "box2d",
    "classic_control": "classic-control",
    "toy_text": "toy-text",
    "phys2d": "jax",
    "tabular": "jax",
}
# Packages that register their ids when imported: id prefix (lower case) -> (module, what, pip command).
_REGISTERING_PACKAGES = {
    "popgym-": ("popgym", "a POPGym memory task", 'pip install "reflect-rl[memory]"'),
}


def _unknown_id_message(env_id: str) -> str:
    ids = sorted(gym.registry)
    by_lower: dict[str, str] = {}
    for registered in ids:
        by_lower.setdefault(registered.lower(), registered)
    close = difflib.get_close_matches(env_id.lower(), list(by_lower), n=3, cutoff=0.6)
    message = f"unknown environment {env_id!r}"
    if "/" in env_id and not any(registered.startswith(env_id.split("/")[0] + "/") for registered in ids):
        namespace = env_id.split("/")[0]
        message += f" (no namespace {namespace!r} is registered: import the package that registers it)"
    if close:
        names = ", ".join(repr(by_lower[name]) for name in close)
        return f"{message}: did you mean {names}? List the registered ids with: {_LIST_IDS}"
    return f"{message}: list the registered ids with: {_LIST_IDS}"


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or the name is malformed
        return False


def _missing_dependency_message(env_id: str, exc: Exception) -> str:
    detail = " ".join(str(exc).split())
    entry_point = getattr(gym.spec(env_id), "entry_point", "") if env_id in gym.registry else ""
    parts = str(entry_point).split(".")
    group = parts[2] if len(parts) > 2 and parts[:2] == ["gymnasium", "envs"] else None
    extra = _EXTRAS.get(group.split(":")[0]) if group else None
    if extra is None:
        return f"environment {env_id!r} needs a package that is not installed ({detail}): install it, retry"
    return (
        f"environment {env_id!r} needs an optional dependency that is not installed ({detail}): "
        f'install it with pip install "gymnasium[{extra}]"'
    )


def _import_registering_package(env_id: str) -> None:
    """Import the package that registers ``env_id`` (e.g. popgym for ``popgym-...``) if it is not yet."""
    for prefix, (module, what, install) in _REGISTERING_PACKAGES.items():
        if env_id.lower().startswith(prefix):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                detail = " ".join(str(exc).split())
                raise EnvSetupError(
                    f"environment {env_id!r} is {what} and needs the {module} package, which cannot be "
                    f"imported ({detail}): install it with {install}"
                ) from exc


def _encode_spaces(env: gym.Env) -> gym.Env:
    """``env`` with the observation and action encodings its spaces need and allow (else as it is: an
    unsupported space is reported by check_spaces, with the reason)."""
    obs_space, action_space = env.observation_space, env.action_space
    if needs_observation_encoding(obs_space) and observation_encoding_problem(obs_space) is None:
        env = EncodeObservations(env)
    if needs_action_encoding(action_space) and action_encoding_problem(action_space) is None:
        env = EncodeActions(env)
    return env


def make_single_env(env_id: str, *, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, render_mode=..., **kwargs)`` without the env checker (``render_mode`` passed only
    when given), with clear setup errors, and its spaces encoded for the learners
    (:mod:`reflect.envs.encoding`).

    A 1-D Box observation space and a ``Discrete`` (from 0) or ``Box`` action space get no wrapper. An id
    starting ``popgym-`` imports popgym first, which registers it.

    Raises UnknownEnvironmentError for an id Gymnasium does not know (naming close matches) and
    EnvSetupError when an optional dependency (MuJoCo, Box2D, popgym, ...) is missing.
    """
    if ":" not in env_id and env_id not in gym.registry:
        _import_registering_package(env_id)
    if ":" in env_id:
        module = env_id.split(":")[0]
        if not _module_exists(module):
            raise UnknownEnvironmentError(
                f"unknown environment {env_id!r}: module {module!r} cannot be found; install it or fix the "
                "part of the id before ':'"
            )
    elif env_id not in gym.registry:
        raise UnknownEnvironmentError(_unknown_id_message(env_id))
    if render_mode is not None:  # not passed when None: some environments (POPGym) take no render_mode
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_id, disable_env_checker=True, **kwargs)
    except TypeError as exc:
        if render_mode is not None and "render_mode" in str(exc):
            raise EnvSetupError(
                f"environment {env_id!r} cannot render (it takes no render_mode argument): build it "
                "without render_mode"
            ) from exc
        if "unexpected keyword argument" in str(exc):
            given = ", ".join(sorted(k for k in kwargs if k != "render_mode"))
            raise EnvSetupError(
                f"environment {env_id!r} does not take the arguments given ({given}): "
                f"{str(exc).split(' was raised')[0]}; fix env_kwargs"
            ) from exc
        raise
    except gym_error.DependencyNotInstalled as exc:
        raise EnvSetupError(_missing_dependency_message(env_id, exc)) from exc
    except ModuleNotFoundError as exc:
        raise EnvSetupError(_missing_dependency_message(env_id, exc)) from exc
    except gym_error.UnregisteredEnv as exc:
        detail = " ".join(str(exc).split())
        raise UnknownEnvironmentError(
            f"unknown environment {env_id!r} ({detail}): list the registered ids with: {_LIST_IDS}"
        ) from exc
    try:
        return _encode_spaces(env)
    except Exception:
        env.close()
        raise


def make_env(env_id: str, seed: int | None = None, num_envs: int = 1, **kwargs: Any) -> StreamVectorEnv:
    """Build ``num_envs`` streams of ``env_id`` (``kwargs`` go to ``gym.make``) as a StreamVectorEnv.

    Nothing is reset here: ``seed`` is kept, and the caller's first ``reset()`` (without a seed of its
    own) seeds stream ``i`` with ``seed + i``; ``reset(seed=s)`` seeds stream ``i`` with ``s + i`` instead.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise EnvSetupError(f"num_envs must be an integer >= 1, got {num_envs!r}: pass the number of streams")
    envs: list[gym.Env] = []
    try:
        for _ in range(num_envs):
            envs.append(make_single_env(env_id, **kwargs))
        return StreamVectorEnv(envs, seed=seed)
    except Exception:
        for env in envs:
            env.close()
        raise
