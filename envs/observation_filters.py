"""Fixed linear memory in front of the network: a bank of filters of the observation stream.

A spiking layer without recurrence sees only the present input (and what its membranes keep); a task
that needs the observation of a few steps ago (a velocity from positions, a card shown three steps
back) can instead get that history as input. :class:`ObservationFilterBank` appends to each
observation ``u_t`` ``[D]`` the state ``m_t`` ``[D, order]`` of a fixed linear filter bank, one bank per
observation dimension::

    m_t = m_{t-1} A^T + u_t B^T        (A ``[order, order]``, B ``[order]``; m_0 = 0 at every reset)
    observation' = [u_t, m_t.flatten()]                 (D * (1 + order) values)

The filters have no parameters to learn, so learning stays exact and feed-forward, and the state has a
fixed size: memory does not grow with the lifetime. Two banks:

* ``legendre`` (the Legendre Memory Unit's delay system, Voelker et al. 2019): ``m_t`` holds the
  coefficients of the window of the last ``window`` steps in the shifted Legendre polynomials of degree
  ``< order``, so any ``u_{t - k}`` with ``0 <= k < window`` is (approximately) a linear read-out of
  ``m_t``: ``sum_i P_i(2 (k + 1/2) / window - 1) m_t[i]`` (smooth inputs to about 1e-3 at order 6).
  Continuous system ``theta dm/dt = A_c m + B_c u`` (``theta`` = ``window``) with
  ``A_c[i, j] = (2i + 1) * (-1 if i < j else (-1)^(i - j + 1))``, ``B_c[i] = (2i + 1) (-1)^i``,
  discretised exactly for a step of 1 (zero-order hold): ``A = expm(A_c / theta)``,
  ``B = A_c^-1 (A - I) B_c``.
* ``exponential``: ``order`` leaky averages ``m_k = a_k m_k + (1 - a_k) u`` with time constants
  ``tau_k`` spaced geometrically from 1 to ``window`` steps (``a_k = exp(-1 / tau_k)``).

The bank is applied per environment (a reset zeroes it), after the one-hot encoding of discrete
spaces and before the agent's observation normaliser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FILTER_KINDS = ("none", "legendre", "exponential")


@dataclass(frozen=True)
class ObservationFilterSpec:
    """Which filter bank to put in front of the network (the ``observation_filter`` config section).

    Attributes:
        kind: ``none`` (observations pass unchanged), ``legendre`` or ``exponential``.
        order: filters per observation dimension (the input grows ``1 + order`` times).
        window: steps the memory spans: the Legendre window ``theta``, or the longest exponential time
            constant.
    """

    kind: Literal["none", "legendre", "exponential"] = "none"
    order: int = 6
    window: float = 6.0

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FILTER_KINDS)}, got {self.kind!r}")
        if not 1 <= self.order <= 64:
            raise ValueError(f"order must be in [1, 64], got {self.order}")
        if not (math.isfinite(self.window) and self.window >= 1.0):
            raise ValueError(f"window must be a finite number of steps >= 1, got {self.window}")

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


def _expm(matrix: np.ndarray) -> np.ndarray:
    """``exp(matrix)`` by scaling and squaring a Taylor series (float64, to about 1e-15 here)."""
    norm = float(np.abs(matrix).sum(axis=1).max())
    squarings = max(0, math.ceil(math.log2(norm)) + 4) if norm > 0 else 0
    scaled = matrix / 2.0**squarings
    result = term = np.eye(len(matrix))
    for k in range(1, 20):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def legendre_system(order: int, window: float) -> tuple[np.ndarray, np.ndarray]:
    """The Legendre delay system discretised for a step of 1: ``(A [order, order], B [order])``."""
    q = np.arange(order, dtype=np.float64)
    i, j = np.meshgrid(q, q, indexing="ij")
    a_c = (2 * i + 1) * np.where(i < j, -1.0, (-1.0) ** (i - j + 1)) / window
    b_c = (2 * q + 1) * (-1.0) ** q / window
    a = _expm(a_c)
    return a, np.linalg.solve(a_c, (a - np.eye(order)) @ b_c)


def exponential_system(order: int, window: float) -> tuple[np.ndarray, np.ndarray]:
    """``order`` leaky averages with time constants from 1 to ``window``: ``(A = diag(a), B = 1 - a)``."""
    taus = np.geomspace(1.0, window, order) if order > 1 else np.array([window])
    decay = np.exp(-1.0 / taus)
    return np.diag(decay), 1.0 - decay


def filter_system(spec: ObservationFilterSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` of ``spec``'s bank."""
    if spec.kind == "legendre":
        return legendre_system(spec.order, spec.window)
    if spec.kind == "exponential":
        return exponential_system(spec.order, spec.window)
    raise ValueError(f"observation filter {spec.kind!r} has no filter system")


def filter_step(memory: np.ndarray, u: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One step of the bank: ``memory`` ``[..., D, order]``, ``u`` ``[..., D]`` -> ``memory'``
    ``= memory A^T + u B^T``."""
    return memory @ a.T + u[..., None] * b


class ObservationFilterBank(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Append a fixed linear filter bank's state to every observation (see the module docstring).

    Wraps an env with a flat ``Box`` observation ``[D]``; observations become ``[D * (1 + order)]``
    (float32): the observation, then dimension by dimension its ``order`` filter values.
    """

    def __init__(self, env: gym.Env, kind: str = "legendre", order: int = 6, window: float = 6.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, kind=kind, order=order, window=window)
        super().__init__(env)
        self.spec_ = ObservationFilterSpec(kind, order, window)  # type: ignore[arg-type]
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"observation_filter needs a flat Box observation, the env has {space}; "
                "use observation_filter.kind=none for this env"
            )
        self.a, self.b = filter_system(self.spec_)
        dims = space.shape[0]
        self.memory = np.zeros((dims, order))
        self.observation_space = spaces.Box(-np.inf, np.inf, (dims * (1 + order),), np.float32)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.memory[...] = 0.0
        return super().reset(**kwargs)

    def observation(self, observation: Any) -> np.ndarray:
        u = np.asarray(observation, dtype=np.float64)
        self.memory = filter_step(self.memory, u, self.a, self.b)
        return np.concatenate([u, self.memory.ravel()]).astype(np.float32)


def filter_observations(env: gym.Env, spec: ObservationFilterSpec | None) -> gym.Env:
    """``env`` with ``spec``'s filter bank in front (``env`` itself when ``spec`` is None or ``none``)."""
    if spec is None or not spec.enabled:
        return env
    return ObservationFilterBank(env, spec.kind, spec.order, spec.window)
