"""Exact state of one Gymnasium environment, as plain Python values and torch tensors.

A captured state holds only ``int``, ``float``, ``bool``, ``str``, ``None``, lists, dicts and torch
tensors, so ``torch.save`` + ``torch.load(weights_only=True)`` round-trips it. It contains:

- the bit-generator state of ``env.unwrapped.np_random`` (it draws the initial states of later episodes);
- the step counter of every ``TimeLimit`` wrapper and the reset flag of every ``OrderEnforcing`` wrapper;
- the simulator: for MuJoCo environments ``qpos``, ``qvel``, ``act`` (when the model has actuator
  states), ``time``, the solver warm start ``qacc_warmstart`` and the model-sized quantities MuJoCo
  derives from them (body positions, contact forces, ...: after a step they belong to the state before
  it, and environments read them before the next step); for every other environment the
  numeric instance attributes of ``env.unwrapped`` (numeric numpy arrays and scalars, ``int``,
  ``float``, ``bool``, ``None``, and tuples or lists of numbers), which covers e.g. CartPole's
  ``state`` and ``steps_beyond_terminated`` or Pendulum's ``state`` and ``last_u``.

Spaces, renderers, specs and other non-numeric attributes are left out. Whether that is the whole state
depends on the environment: :func:`supports_exact_snapshot` states the rule used.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import FlattenObservation, OrderEnforcing, PassiveEnvChecker, TimeLimit

from reflect.envs.encoding import EncodeActions, EncodeObservations
from reflect.envs.errors import EnvSetupError

__all__ = [
    "capture_env_state",
    "decode_value",
    "encode_value",
    "is_mujoco_env",
    "restore_env_state",
    "supports_exact_snapshot",
]

_EXACT_MODULES = ("gymnasium.envs.classic_control.", "gymnasium.envs.toy_text.", "reflect.envs.memory_tasks")
_STATELESS_WRAPPERS = (
    TimeLimit, OrderEnforcing, PassiveEnvChecker, FlattenObservation, EncodeObservations, EncodeActions
)
# MuJoCo quantities computed from the state (all sized by the model): environments read some of them
# between steps, e.g. body positions for a velocity reward or contact forces for a cost.
_MUJOCO_DERIVED = (
    "xpos", "xquat", "xmat", "xipos", "ximat", "xanchor", "xaxis", "geom_xpos", "geom_xmat", "site_xpos",
    "site_xmat", "cam_xpos", "cam_xmat", "light_xpos", "light_xdir", "subtree_com", "subtree_linvel",
    "subtree_angmom", "cdof", "cdof_dot", "cinert", "cvel", "cacc", "cfrc_int", "cfrc_ext", "qfrc_bias",
    "qfrc_passive", "qfrc_actuator", "qfrc_smooth", "qfrc_constraint", "qacc", "qacc_smooth", "act_dot",
    "actuator_length", "actuator_velocity", "actuator_force", "ten_length", "ten_velocity", "sensordata",
    "energy", "ctrl", "qfrc_applied", "xfrc_applied",
)
_ARRAY, _SCALAR, _TUPLE = "__ndarray__", "__npscalar__", "__tuple__"


def encode_value(value: Any) -> Any:
    """Turn numpy arrays and scalars, tuples and nested containers into plain values and tensors."""
    if isinstance(value, np.generic):  # before the plain types: np.float64 is a float subclass
        return {_SCALAR: value.item(), "dtype": value.dtype.str}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray):
        try:
            data: Any = torch.from_numpy(np.ascontiguousarray(value).copy())
        except TypeError:  # a dtype torch has no tensor for: keep the numbers as a list
            data = value.tolist()
        return {_ARRAY: data, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {_TUPLE: [encode_value(item) for item in value]}
    if isinstance(value, list):
        return [encode_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode_value(item) for key, item in value.items()}
    raise TypeError(f"cannot store a value of type {type(value).__name__} in a snapshot")


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value`: rebuild numpy arrays (fresh copies), numpy scalars and tuples."""
    if isinstance(value, dict):
        if _ARRAY in value:
            data = value[_ARRAY]
            array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
            return np.array(array, dtype=np.dtype(value["dtype"])).reshape(value["shape"])
        if _SCALAR in value:
            return np.dtype(value["dtype"]).type(value[_SCALAR])
        if _TUPLE in value:
            return tuple(decode_value(item) for item in value[_TUPLE])
        return {key: decode_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    return value


def _is_numeric(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | np.bool_ | np.number):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufc"
    if isinstance(value, tuple | list):
        return all(item is not None and _is_numeric(item) for item in value)
    return False


def is_mujoco_env(env: gym.Env) -> bool:
    """True if ``env.unwrapped`` is a MuJoCo environment (``data.qpos``, ``data.qvel`` and ``set_state``)."""
    unwrapped = env.unwrapped
    data = getattr(unwrapped, "data", None)
    return hasattr(data, "qpos") and hasattr(data, "qvel") and hasattr(unwrapped, "set_state")


def _wrapper_chain(env: gym.Env) -> list[gym.Env]:
    chain: list[gym.Env] = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def supports_exact_snapshot(env: gym.Env) -> bool:
    """Whether :func:`capture_env_state` captures all of ``env``'s state.

    Rule: every wrapper is ``TimeLimit``, ``OrderEnforcing``, ``PassiveEnvChecker``, ``FlattenObservation``,
    ``EncodeObservations`` or ``EncodeActions`` (their state is captured, or they have none), and the
    unwrapped environment is a MuJoCo one or its class lives in ``gymnasium.envs.classic_control``,
    ``gymnasium.envs.toy_text`` or ``reflect.envs.memory_tasks``. Other environments may still restore
    exactly; this is not checked.
    """
    if not all(isinstance(wrapper, _STATELESS_WRAPPERS) for wrapper in _wrapper_chain(env)):
        return False
    return is_mujoco_env(env) or type(env.unwrapped).__module__.startswith(_EXACT_MODULES)


def _class_name(env: gym.Env) -> str:
    cls = type(env.unwrapped)
    return f"{cls.__module__}.{cls.__qualname__}"


def _capture_wrappers(env: gym.Env) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = []
    for wrapper in _wrapper_chain(env):
        if isinstance(wrapper, TimeLimit):
            steps = wrapper._elapsed_steps
            states.append({"wrapper": "TimeLimit", "elapsed_steps": None if steps is None else int(steps)})
        elif isinstance(wrapper, OrderEnforcing):
            states.append({"wrapper": "OrderEnforcing", "has_reset": bool(wrapper._has_reset)})
    return states


def _restore_wrappers(env: gym.Env, states: list[dict[str, Any]]) -> None:
    targets = [w for w in _wrapper_chain(env) if isinstance(w, TimeLimit | OrderEnforcing)]
    if [type(w).__name__ for w in targets] != [s["wrapper"] for s in states]:
        raise EnvSetupError(
            f"snapshot has wrappers {[s['wrapper'] for s in states]} but the environment has "
            f"{[type(w).__name__ for w in targets]}: restore into an environment built the same way"
        )
    for wrapper, state in zip(targets, states, strict=True):
        if isinstance(wrapper, TimeLimit):
            wrapper._elapsed_steps = state["elapsed_steps"]
        elif isinstance(wrapper, OrderEnforcing):
            wrapper._has_reset = state["has_reset"]


def _capture_simulator(env: gym.Env) -> dict[str, Any]:
    unwrapped: Any = env.unwrapped
    if is_mujoco_env(env):
        data = unwrapped.data
        sim: dict[str, Any] = {
            "kind": "mujoco",
            "qpos": encode_value(np.array(data.qpos)),
            "qvel": encode_value(np.array(data.qvel)),
            "time": float(data.time),
            "qacc_warmstart": encode_value(np.array(data.qacc_warmstart)),
        }
        if np.size(data.act) > 0:
            sim["act"] = encode_value(np.array(data.act))
        derived = [name for name in _MUJOCO_DERIVED if hasattr(data, name)]
        sim["derived"] = {name: encode_value(np.array(getattr(data, name))) for name in derived}
        return sim
    attributes = {name: encode_value(value) for name, value in vars(unwrapped).items() if _is_numeric(value)}
    return {"kind": "attributes", "attributes": attributes}


def _restore_mujoco(env: gym.Env, sim: dict[str, Any]) -> None:
    unwrapped: Any = env.unwrapped
    data = unwrapped.data
    qpos, qvel = decode_value(sim["qpos"]), decode_value(sim["qvel"])
    if qpos.shape != np.shape(data.qpos) or qvel.shape != np.shape(data.qvel):
        raise EnvSetupError(
            f"snapshot has qpos {qpos.shape} and qvel {qvel.shape} but the model has {np.shape(data.qpos)} "
            f"and {np.shape(data.qvel)}: restore into the same MuJoCo environment"
        )
    if "act" in sim:
        data.act[:] = decode_value(sim["act"])
    data.time = sim["time"]
    unwrapped.set_state(qpos, qvel)
    data.qacc_warmstart[:] = decode_value(sim["qacc_warmstart"])
    # set_state recomputed the derived quantities for the current qpos; after a step they are those of the
    # state before it, which is what the environment reads next (e.g. a body's position before the step).
    for name, encoded in sim["derived"].items():
        value = decode_value(encoded)
        target = getattr(data, name, None)
        if target is None or np.shape(target) != value.shape:
            raise EnvSetupError(
                f"snapshot has MuJoCo data.{name} of shape {value.shape} but this model has "
                f"{None if target is None else np.shape(target)}: restore into the same MuJoCo environment"
            )
        target[...] = value


def _restore_attributes(env: gym.Env, attributes: dict[str, Any]) -> None:
    unwrapped = env.unwrapped
    for name, encoded in attributes.items():
        # Attributes made at the first reset may not exist yet. Leave alone what is live and non-numeric
        # now (e.g. a window opened after the snapshot was taken).
        if not hasattr(unwrapped, name) or _is_numeric(getattr(unwrapped, name)):
            setattr(unwrapped, name, decode_value(encoded))


def _restore_np_random(env: gym.Env, state: dict[str, Any]) -> None:
    generator = env.unwrapped.np_random
    if type(generator.bit_generator).__name__ == state["bit_generator"]:
        generator.bit_generator.state = state
        return
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    env.unwrapped.np_random = np.random.Generator(bit_generator)


def capture_env_state(env: gym.Env) -> dict[str, Any]:
    """State of one environment (see the module docstring) as plain values and tensors."""
    return {
        "env_class": _class_name(env),
        "np_random": encode_value(env.unwrapped.np_random.bit_generator.state),
        "wrappers": _capture_wrappers(env),
        "simulator": _capture_simulator(env),
    }


def restore_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Put ``env`` back in a state from :func:`capture_env_state` (raises EnvSetupError on a mismatch)."""
    if state["env_class"] != _class_name(env):
        raise EnvSetupError(
            f"snapshot is of {state['env_class']} but the environment is {_class_name(env)}: restore into "
            "the same environment"
        )
    _restore_wrappers(env, state["wrappers"])
    _restore_np_random(env, decode_value(state["np_random"]))
    sim = state["simulator"]
    if sim["kind"] == "mujoco":
        _restore_mujoco(env, sim)
    else:
        _restore_attributes(env, sim["attributes"])
