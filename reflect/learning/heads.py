"""Policy heads: from the actor's readout to actions, log-prob scores and entropy gradients.

A head turns the readout ``o`` (``[B, num_outputs]``) into a distribution ``pi(. | o)``. The learner needs
three things from it, all as plain arrays (a head is a few numpy operations on tiny arrays, cheaper
than torch dispatch at batch 1):

* ``sample(o, deterministic)``: actions ``[B]`` (or ``[B, action_dim]``);
* ``score(o, actions, entropy_weight, out)``: writes ``d/do [log pi(a | o) + w * H(pi(. | o))]`` into
  ``out`` (``[B, num_outputs]``), the same-step learning signal of the actor;
* ``entropy(o)``: ``H(pi(. | o))`` ``[B]``.

Two more connect a head to the world and to the learner:

* ``to_env(actions)``: the head's actions as the environment takes them (identity for discrete
  actions; squashing and per-dimension scaling into the ``Box`` bounds for continuous ones);
  ``sample_for_env(o, deterministic)`` gives both ``(actions, to_env(actions))`` in one go;
* ``extra_params`` / ``extra_grad``: trainable parameters of the head itself (the Gaussian log-std,
  ``[P]``) and the score's gradient with respect to them (``[B, P]``, written by ``score``); they get an
  eligibility trace and the actor's bounded step times ``extra_lr_scale``. ``None`` when the head has
  none.

``CategoricalHead`` serves ``Discrete`` actions, ``GaussianHead`` ``Box`` actions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from reflect.kernels import INSTALL_HINT, compiled_available, compiled_enabled
from reflect.kernels import gaussian as gaussian_kernels


class PolicyHead(Protocol):
    """What the learner needs from an action distribution."""

    num_outputs: int

    def sample(self, out: np.ndarray, deterministic: bool) -> np.ndarray: ...

    def score(self, out: np.ndarray, actions: np.ndarray, entropy_weight: np.ndarray,
              signal: np.ndarray) -> None: ...

    def entropy(self, out: np.ndarray) -> np.ndarray: ...

    def to_env(self, actions: np.ndarray) -> np.ndarray: ...

    def sample_for_env(self, out: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]: ...

    def prepare(self, batch_size: int) -> None: ...

    def refresh(self) -> None: ...

    cache_parameters: bool
    extra_lr_scale: float

    @property
    def extra_params(self) -> np.ndarray | None: ...

    @property
    def extra_grad(self) -> np.ndarray | None: ...

    def rng_state(self) -> dict: ...

    def set_rng_state(self, state: dict) -> None: ...

    def spawn(self, seed: int | None) -> PolicyHead: ...


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax`` of ``[B, A]`` logits, in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class CategoricalHead:
    """Softmax policy over ``A`` logits (``gymnasium.spaces.Discrete(A)``).

    Score and entropy gradient with respect to the logits ``l``, for ``p = softmax(l)``::

        d log p_a / dl = onehot(a) - p
        dH / dl        = -p * (log p + H),      H = -sum_k p_k log p_k
    """

    def __init__(self, num_actions: int, seed: int | None = None) -> None:
        if num_actions < 1:
            raise ValueError(f"a categorical head needs at least one action, got {num_actions}")
        self.num_outputs = num_actions
        self.rng = np.random.default_rng(seed)

    extra_params = None
    extra_grad = None
    extra_lr_scale = 1.0
    cache_parameters = False

    def spawn(self, seed: int | None) -> CategoricalHead:
        """A head with the same actions and its own random stream (for inference beside learning)."""
        return CategoricalHead(self.num_outputs, seed)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Discrete actions go to the environment as they are."""
        return actions

    def sample_for_env(self, out: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(actions, actions)``: :meth:`sample`, which the environment takes as it is."""
        actions = self.sample(out, deterministic)
        return actions, actions

    def prepare(self, batch_size: int) -> None:
        """Nothing to preallocate."""

    def refresh(self) -> None:
        """Nothing is derived from parameters."""

    def sample(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        """Actions ``[B]`` (int64): the argmax, or a draw from ``softmax(out)``."""
        if deterministic:
            return out.argmax(axis=1)
        if out.shape[0] == 1:
            return np.array([self._sample_one(out[0].tolist())])
        probs = np.exp(log_softmax(out))
        draws = self.rng.random((out.shape[0], 1))
        actions = (probs.cumsum(axis=1) < draws).sum(axis=1)
        return np.minimum(actions, self.num_outputs - 1)

    def _sample_one(self, logits: list[float]) -> int:
        """One draw for one stream in plain Python (cheaper than array code for a handful of actions)."""
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        threshold = self.rng.random() * sum(weights)
        cumulative = 0.0
        for action, w in enumerate(weights):
            cumulative += w
            if threshold < cumulative:
                return action
        return len(weights) - 1

    def score(self, out: np.ndarray, actions: np.ndarray, entropy_weight: np.ndarray,
              signal: np.ndarray) -> None:
        """``signal[b] = d/dl [log p(a_b) + w_b H]`` for logits ``out`` ``[B, A]``."""
        if out.shape[0] == 1:
            signal[0] = self._score_one(out[0].tolist(), int(actions[0]), float(entropy_weight[0]))
            return
        log_p = log_softmax(out)
        p = np.exp(log_p)
        entropy = -(p * log_p).sum(axis=1, keepdims=True)
        grad = -p
        grad[np.arange(out.shape[0]), actions] += 1.0
        grad -= entropy_weight[:, None] * p * (log_p + entropy)
        signal[...] = grad

    @staticmethod
    def _score_one(logits: list[float], action: int, weight: float) -> list[float]:
        top = max(logits)
        shifted = [x - top for x in logits]
        log_z = math.log(sum(math.exp(x) for x in shifted))
        log_p = [x - log_z for x in shifted]
        p = [math.exp(x) for x in log_p]
        entropy = -sum(pk * lk for pk, lk in zip(p, log_p, strict=True))
        grad = [-pk - weight * pk * (lk + entropy) for pk, lk in zip(p, log_p, strict=True)]
        grad[action] += 1.0
        return grad

    def entropy(self, out: np.ndarray) -> np.ndarray:
        """``H(softmax(out))`` ``[B]``."""
        log_p = log_softmax(out)
        return -(np.exp(log_p) * log_p).sum(axis=1)

    def rng_state(self) -> dict:
        """The sampler's random state (plain types, checkpoint-safe)."""
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


SQUASHES = ("tanh", "clip")
_LOG_2PI = math.log(2.0 * math.pi)


class GaussianHead:
    """Diagonal Gaussian policy over ``A`` action dimensions (``gymnasium.spaces.Box``).

    The readout gives the mean ``mu`` ``[B, A]``; a learned, state-independent ``log_std`` ``[A]`` the
    spread. The head samples a pre-squash action ``u = mu + sigma * eps`` (``eps ~ N(0, 1)``), which is
    what the learner scores, and maps it into the bounds ``[low, high]`` per dimension::

        tanh:  a = c + s * tanh(u)            log pi(a) = log N(u; mu, sigma) - sum log(s (1 - tanh(u)^2))
        clip:  a = c + s * clip(u, -1, 1)     log pi(a) = log N(u; mu, sigma) - sum log s
                                              (the density of the unclipped draw, as stable-baselines3 does)

    with ``c = (high + low) / 2`` and ``s = (high - low) / 2``, so the network works in ``[-1, 1]`` units in
    every dimension. Dimensions with an infinite bound are not squashed (``a = u``). Gradients of the score
    (the Jacobian term does not depend on ``mu`` or ``sigma`` for a fixed ``u``)::

        d log pi / d mu        = (u - mu) / sigma^2
        d log pi / d log_std   = (u - mu)^2 / sigma^2 - 1
        H = sum(log_std) + A/2 (1 + log 2 pi):   dH / d mu = 0,   dH / d log_std = 1

    ``log_std`` is kept in ``log_std_bounds`` (clipped whenever ``sigma`` is recomputed: by
    :meth:`refresh`, which the learner calls after every update, or at every call otherwise).

    Args:
        action_dim: ``A``.
        low / high: ``[A]`` bounds (``None``: unbounded).
        squash: ``"tanh"`` or ``"clip"``.
        init_log_std: the starting ``log_std`` (in ``[-1, 1]`` action units).
        learn_log_std: train ``log_std`` along with the actor (else it stays fixed).
        log_std_bounds: ``(min, max)`` for ``log_std``.
        log_std_lr_scale: ``log_std`` takes the actor's bounded step times this factor.
        seed: the sampler's seed.
        log_std: share this ``[A]`` float64 tensor as the parameter (used by :meth:`spawn`).
        compiled: run sampling, squashing, the score and :meth:`refresh` as compiled calls
            (:mod:`reflect.kernels.gaussian`; ``None``: when numba is available, see
            :func:`reflect.kernels.compiled_enabled`).
    """

    def __init__(
        self,
        action_dim: int,
        low: Sequence[float] | np.ndarray | None = None,
        high: Sequence[float] | np.ndarray | None = None,
        *,
        squash: Literal["tanh", "clip"] = "tanh",
        init_log_std: float = 0.0,
        learn_log_std: bool = True,
        log_std_bounds: tuple[float, float] = (-5.0, 2.0),
        log_std_lr_scale: float = 1.0,
        seed: int | None = None,
        log_std: Tensor | None = None,
        compiled: bool | None = None,
    ) -> None:
        if action_dim < 1:
            raise ValueError(f"a Gaussian head needs at least one action dimension, got {action_dim}")
        if squash not in SQUASHES:
            raise ValueError(f"unknown squash {squash!r}: choose one of {', '.join(SQUASHES)}")
        lo, hi = float(log_std_bounds[0]), float(log_std_bounds[1])
        if not lo < hi:
            raise ValueError(f"log_std_bounds must be (min, max) with min < max, got {log_std_bounds}")
        low_arr = np.full(action_dim, -np.inf) if low is None else np.asarray(low, dtype=np.float64)
        high_arr = np.full(action_dim, np.inf) if high is None else np.asarray(high, dtype=np.float64)
        if low_arr.shape != (action_dim,) or high_arr.shape != (action_dim,):
            raise ValueError(f"low and high must have shape ({action_dim},)")
        if not (low_arr < high_arr).all():
            raise ValueError(f"each low bound must be below its high bound: low {low_arr}, high {high_arr}")
        self.num_outputs = action_dim
        if not log_std_lr_scale > 0.0:
            raise ValueError(f"log_std_lr_scale must be > 0, got {log_std_lr_scale}")
        self.squash, self.learn_log_std = squash, learn_log_std
        self.extra_lr_scale = float(log_std_lr_scale)
        self.log_std_bounds = (lo, hi)
        self.compiled = compiled_enabled() if compiled is None else bool(compiled)
        if self.compiled and not compiled_available():
            raise ImportError(INSTALL_HINT)
        self._squash_code = gaussian_kernels.SQUASH_CODES[squash]
        self.low, self.high = low_arr, high_arr
        self.bounded = np.isfinite(low_arr) & np.isfinite(high_arr)
        self.all_bounded = bool(self.bounded.all())
        finite_low, finite_high = np.where(self.bounded, low_arr, -1.0), np.where(self.bounded, high_arr, 1.0)
        self.center = (finite_high + finite_low) / 2.0  # unbounded dimensions: center 0, scale 1
        self.scale = (finite_high - finite_low) / 2.0
        if log_std is None:
            log_std = torch.full((action_dim,), float(init_log_std), dtype=torch.float64)
        self.log_std = log_std
        self.log_std_np = self.log_std.numpy()
        self.rng = np.random.default_rng(seed)
        self._grad = np.zeros((0, action_dim))
        self._raw = np.zeros((0, action_dim))
        self._env = np.zeros((0, action_dim), dtype=np.float32)
        self._work = np.zeros((0, action_dim))
        self._std = np.zeros(action_dim)
        self._inv_var = np.zeros(action_dim)
        # True when the owner calls refresh() after every change of log_std (the learner does): sample
        # and score then use the cached sigma and 1 / sigma^2 instead of recomputing them every call
        self.cache_parameters = False
        self.refresh()

    # ------------------------------------------------------------------------------- protocol
    @property
    def extra_params(self) -> np.ndarray | None:
        """``log_std`` ``[A]`` (float64, shares memory with :attr:`log_std`) when it is learned."""
        return self.log_std_np if self.learn_log_std else None

    @property
    def extra_grad(self) -> np.ndarray | None:
        """``d/d log_std [log pi + w H]`` ``[B, A]`` of the last :meth:`score` (if ``log_std`` is learned)."""
        return self._grad if self.learn_log_std else None

    def prepare(self, batch_size: int) -> None:
        """Allocate the per-step buffers for ``batch_size`` streams (done once; steps then reuse them)."""
        if self._raw.shape[0] != batch_size:
            shape = (batch_size, self.num_outputs)
            self._grad, self._raw, self._work = np.zeros(shape), np.zeros(shape), np.zeros(shape)
            self._env = np.zeros(shape, dtype=np.float32)

    def spawn(self, seed: int | None) -> GaussianHead:
        """A head that shares ``log_std`` and the bounds but has its own random stream and buffers."""
        return GaussianHead(
            self.num_outputs, self.low, self.high, squash=self.squash,
            learn_log_std=self.learn_log_std, log_std_bounds=self.log_std_bounds,
            log_std_lr_scale=self.extra_lr_scale, seed=seed, log_std=self.log_std, compiled=self.compiled,
        )

    def refresh(self) -> None:
        """Clip ``log_std`` into its bounds and recompute ``sigma`` and ``1 / sigma^2`` from it."""
        log_std = self.log_std_np
        if self.compiled:
            gaussian_kernels.refresh(log_std, *self.log_std_bounds, self._std, self._inv_var)
            return
        np.maximum(log_std, self.log_std_bounds[0], out=log_std)  # cheaper than np.clip's wrapper
        np.minimum(log_std, self.log_std_bounds[1], out=log_std)
        np.exp(log_std, out=self._std)
        np.exp(np.multiply(log_std, -2.0, out=self._inv_var), out=self._inv_var)

    def std(self) -> np.ndarray:
        """``sigma = exp(log_std)`` ``[A]`` (after clipping ``log_std`` into its bounds)."""
        if not self.cache_parameters:
            self.refresh()
        return self._std

    def sample(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        """Pre-squash actions ``u`` ``[B, A]`` (float64): ``mu``, or ``mu + sigma * eps``.

        The array is reused by the next call: copy it to keep it.
        """
        self.prepare(out.shape[0])
        raw = self._raw
        if deterministic:
            raw[...] = out
            return raw
        self.rng.standard_normal(out=raw)
        raw *= self.std()
        raw += out
        return raw

    def sample_for_env(self, out: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(u, to_env(u))`` for ``u = sample(out, deterministic)``; both arrays are reused by the next
        call."""
        if not self.compiled:
            raw = self.sample(out, deterministic)
            return raw, self.to_env(raw)
        self.prepare(out.shape[0])
        raw, env = self._raw, self._env
        if not deterministic:
            self.rng.standard_normal(out=raw)
        gaussian_kernels.sample_to_env(out, raw, self.std(), self.center, self.scale, self.bounded,
                                       self._squash_code, env, deterministic)
        return raw, env

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Pre-squash actions ``u`` ``[B, A]`` -> environment actions ``[B, A]`` (float32, in bounds).

        The array is reused by the next call: copy it to keep it.
        """
        self.prepare(actions.shape[0])
        work = self._work
        if self.squash == "tanh":
            np.tanh(actions, out=work)
        else:
            np.minimum(actions, 1.0, out=work)  # np.clip's Python wrapper costs more than both
            np.maximum(work, -1.0, out=work)
        work *= self.scale
        if self.all_bounded:
            np.add(work, self.center, out=self._env)  # rounds to float32 on the way
            return self._env
        work += self.center
        np.copyto(work, actions, where=~self.bounded)
        self._env[...] = work
        return self._env

    def score(self, out: np.ndarray, actions: np.ndarray, entropy_weight: np.ndarray,
              signal: np.ndarray) -> None:
        """``signal = d log pi / d mu`` ``[B, A]``; :attr:`extra_grad` ``= d/d log_std [log pi + w H]``."""
        self.prepare(out.shape[0])
        if not self.cache_parameters:
            self.refresh()
        inv_var = self._inv_var
        if self.compiled:
            gaussian_kernels.score(out, actions, inv_var, entropy_weight, signal, self._grad,
                                   self.learn_log_std)
            return
        diff = np.subtract(actions, out, out=self._work)
        np.multiply(diff, inv_var, out=signal)
        if self.learn_log_std:
            grad = self._grad
            np.multiply(diff, diff, out=grad)
            grad *= inv_var
            grad -= 1.0
            grad += entropy_weight[:, None]

    def log_prob(self, out: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``log pi(a | o)`` ``[B]`` of the environment action ``a = to_env(actions)``, in float64."""
        mu = out.astype(np.float64)
        std = self.std()
        log_std = self.log_std_np
        z = (actions - mu) / std
        gaussian = (-0.5 * z**2 - log_std - 0.5 * _LOG_2PI).sum(axis=1)
        log_jacobian = np.log(self.scale) + np.zeros_like(actions)  # scale is 1 where unbounded
        if self.squash == "tanh":
            # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
            squash = 2.0 * (math.log(2.0) - actions - np.logaddexp(0.0, -2.0 * actions))
            log_jacobian = log_jacobian + np.where(self.bounded, squash, 0.0)
        return gaussian - log_jacobian.sum(axis=1)

    def entropy(self, out: np.ndarray) -> np.ndarray:
        """Entropy of the pre-squash Gaussian, ``sum(log_std) + A/2 (1 + log 2 pi)``, ``[B]``."""
        value = float(np.log(self.std()).sum()) + 0.5 * self.num_outputs * (1.0 + _LOG_2PI)
        return np.full(out.shape[0], value)

    def rng_state(self) -> dict:
        """The sampler's random state (plain types, checkpoint-safe)."""
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
