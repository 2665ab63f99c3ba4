"""Build Gymnasium environments with clear errors for unknown ids and missing optional dependencies.

Every environment built here has its spaces encoded for the learners (:mod:`reflect.envs.encoding`):
observations that are not a 1-D Box become a float32 vector, ``MultiDiscrete`` actions (up to 64
combinations) and ``Discrete`` actions that do not start at 0 become ``Discrete(n)`` from 0. Ids of packages
that register their environments on import (``popgym-...``) import the package on demand.

An environment of the user's own is named as in ``gymnasium.make``: ``module:EnvId`` imports ``module``
(which registers ``EnvId`` with ``gymnasium.register``), then builds ``EnvId``. A module not found on the
Python path is looked for in the current directory too, as ``python -m`` and ``python script.py`` would
find it (the directory is then added to ``sys.path``). Keeping the whole ``module:EnvId`` as the run's env
id lets every later command (evaluate, plot, resume, export, run) import the module again.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from typing import Any

import gymnasium as gym
from gymnasium import error as gym_error
from gymnasium.envs.registration import EnvSpec

from reflect.envs.encoding import (
    EncodeActions,
    EncodeObservations,
    action_encoding_problem,
    needs_action_encoding,
    needs_observation_encoding,
    observation_encoding_problem,
)
from reflect.envs.episode_stats import monitor_episodes
from reflect.envs.errors import EnvSetupError, UnknownEnvironmentError
from reflect.envs.observation_filters import ObservationFilterSpec, filter_observations
from reflect.envs.streams import StreamVectorEnv

__all__ = ["env_spec", "make_env", "make_single_env", "resolve_env_id"]

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
_MAX_LISTED_IDS = 10


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


def _is_missing_module(module: str, error: ModuleNotFoundError) -> bool:
    """``error`` says that ``module`` itself (or a package above it) is missing, not one of its imports."""
    missing = error.name or ""
    return bool(missing) and (module == missing or module.startswith(missing + "."))


def _import_module_here_too(module: str) -> None:
    """``import module``; when it is not on the Python path, look in the current directory too (adding the
    directory to ``sys.path`` where it stays, so the module's own imports and later lookups find it).

    Raises:
        ModuleNotFoundError: not found there either (the directory is not added), or one of its imports.
    """
    try:
        importlib.import_module(module)
        return
    except ModuleNotFoundError as error:
        here = os.getcwd()
        if not _is_missing_module(module, error) or here in sys.path or "" in sys.path:
            raise
    sys.path.insert(0, here)
    importlib.invalidate_caches()
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if _is_missing_module(module, error):
            sys.path.remove(here)
        raise


def _ids_from_module(module: str) -> set[str]:
    """Registered ids whose entry point lives in ``module`` (or a module below it)."""
    found = set()
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point
        owner = entry.split(":")[0] if isinstance(entry, str) else str(getattr(entry, "__module__", ""))
        if owner == module or owner.startswith(module + "."):
            found.add(env_id)
    return found


def _listed(ids: set[str]) -> str:
    shown = sorted(ids)[:_MAX_LISTED_IDS]
    more = len(ids) - len(shown)
    return ", ".join(repr(i) for i in shown) + (f" and {more} more" if more > 0 else "")


def _import_env_module(env_id: str, module: str, name: str) -> None:
    """Import ``module`` of ``env_id`` (``module:name``) and check that it registered ``name``.

    Raises:
        UnknownEnvironmentError: the module cannot be found, or it does not register ``name`` (the message
            lists the ids it does register).
        EnvSetupError: the module was found but importing it failed (a missing dependency, a bug in it).
    """
    before = set(gym.registry)
    try:
        _import_module_here_too(module)
    except ModuleNotFoundError as error:
        if _is_missing_module(module, error):
            raise UnknownEnvironmentError(
                f"unknown environment {env_id!r}: module {module!r} cannot be found (looked on the Python "
                f"path and in the current directory): run reflect in the folder that holds "
                f"{module.replace('.', '/')}.py, add that folder to PYTHONPATH, or install the package"
            ) from error
        detail = " ".join(str(error).split())
        raise EnvSetupError(
            f"environment {env_id!r}: importing module {module!r} failed ({detail}): install what it "
            "needs, then retry"
        ) from error
    except Exception as error:  # the user's module is arbitrary code: report its failure on one line
        detail = " ".join(f"{type(error).__name__}: {error}".split())
        raise EnvSetupError(
            f"environment {env_id!r}: importing module {module!r} failed ({detail}); fix the module "
            "(REFLECT_DEBUG=1 shows the traceback)"
        ) from error
    if name in gym.registry:
        return
    registered = (set(gym.registry) - before) | _ids_from_module(module)
    if registered:
        what = f"it registers {_listed(registered)}: give one of those after the ':'"
    else:
        what = "it registers none: call gymnasium.register(id=..., entry_point=...) in the module"
    raise UnknownEnvironmentError(
        f"unknown environment {env_id!r}: module {module!r} does not register {name!r}; {what}"
    )


def resolve_env_id(env_id: str) -> str:
    """The registered id that ``env_id`` names, with whatever registers it imported.

    ``module:EnvId`` imports ``module`` (from the current directory too, see the module docstring) and
    gives ``EnvId``; an id starting ``popgym-`` imports popgym; any other id is returned as it is.

    Raises:
        UnknownEnvironmentError: nothing registers the id (the message names close matches, or what the
            module registers); EnvSetupError: a package or module that registers it cannot be imported.
    """
    module, sep, name = env_id.partition(":")
    if sep:
        if not module or not name:
            raise UnknownEnvironmentError(
                f"unknown environment {env_id!r}: write a module's environment as module:EnvId, "
                "e.g. mymodule:MyEnv-v0"
            )
        _import_env_module(env_id, module, name)
        return name
    if env_id not in gym.registry:
        _import_registering_package(env_id)
    if env_id not in gym.registry:
        raise UnknownEnvironmentError(_unknown_id_message(env_id))
    return env_id


def env_spec(env_id: str) -> EnvSpec:
    """Gymnasium's spec of ``env_id`` (``module:EnvId`` too): its ``reward_threshold``,
    ``max_episode_steps`` and so on. Raises as :func:`resolve_env_id`."""
    return gym.spec(resolve_env_id(env_id))


def _missing_dependency_message(env_id: str, exc: Exception, registered: str | None = None) -> str:
    detail = " ".join(str(exc).split())
    registered = registered or env_id
    entry_point = getattr(gym.spec(registered), "entry_point", "") if registered in gym.registry else ""
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


def make_single_env(env_id: str, *, render_mode: str | None = None, episode_monitor: bool = True,
                    observation_filter: ObservationFilterSpec | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, render_mode=..., **kwargs)`` without the env checker (``render_mode`` passed only
    when given), with clear setup errors, and its spaces encoded for the learners
    (:mod:`reflect.envs.encoding`), then ``observation_filter``'s filter bank in front
    (:mod:`reflect.envs.observation_filters`; none when None).

    ``episode_monitor``: put the episode monitor of :func:`reflect.envs.episode_stats.set_episode_monitor`,
    if one is set, directly over the environment (reflect's stable-baselines3 adapter sets SB3's
    ``Monitor`` once SB3 is in use); :func:`make_env` passes False: its streams keep their own statistics.

    A 1-D Box observation space and a ``Discrete`` (from 0) or ``Box`` action space get no wrapper. An id
    starting ``popgym-`` imports popgym first, which registers it; ``module:EnvId`` imports ``module``
    first (:func:`resolve_env_id`).

    Raises UnknownEnvironmentError for an id Gymnasium does not know (naming close matches, or what the
    module registers) and EnvSetupError when an optional dependency (MuJoCo, Box2D, popgym, ...) or the
    module's own import fails.
    """
    registered = resolve_env_id(env_id)
    if render_mode is not None:  # not passed when None: many environments take no render_mode argument
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(registered, disable_env_checker=True, **kwargs)
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
        raise EnvSetupError(_missing_dependency_message(env_id, exc, registered)) from exc
    except ModuleNotFoundError as exc:
        raise EnvSetupError(_missing_dependency_message(env_id, exc, registered)) from exc
    except gym_error.UnregisteredEnv as exc:
        detail = " ".join(str(exc).split())
        raise UnknownEnvironmentError(
            f"unknown environment {env_id!r} ({detail}): list the registered ids with: {_LIST_IDS}"
        ) from exc
    try:
        if episode_monitor:  # over the environment itself, under reflect's wrappers
            env = monitor_episodes(env)
        return filter_observations(_encode_spaces(env), observation_filter)
    except Exception:
        env.close()
        raise


def make_env(env_id: str, seed: int | None = None, num_envs: int = 1, **kwargs: Any) -> StreamVectorEnv:
    """Build ``num_envs`` streams of ``env_id`` as a StreamVectorEnv (``kwargs`` go to
    :func:`make_single_env`: ``observation_filter``, and the rest to ``gym.make``).

    Nothing is reset here: ``seed`` is kept, and the caller's first ``reset()`` (without a seed of its
    own) seeds stream ``i`` with ``seed + i``; ``reset(seed=s)`` seeds stream ``i`` with ``s + i`` instead.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise EnvSetupError(f"num_envs must be an integer >= 1, got {num_envs!r}: pass the number of streams")
    envs: list[gym.Env] = []
    try:
        for _ in range(num_envs):
            envs.append(make_single_env(env_id, episode_monitor=False, **kwargs))
        return StreamVectorEnv(envs, seed=seed)
    except Exception:
        for env in envs:
            env.close()
        raise
