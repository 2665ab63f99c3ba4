"""Policy heads: from the actor's readout to actions, log-prob scores and entropy gradients.

A head turns the readout ``o`` (``[B, num_outputs]``) into a distribution ``pi(. | o)``. Its math is one
set of formulas (:mod:`reflect.formulas.categorical`, :mod:`reflect.formulas.gaussian`); a head object
runs them on arrays, and hands the compiled backend its buffers (:meth:`compiled_handle`) and the
template that runs them as loops (``compiled_template``).

For the learner (per step, on the head's own preallocated buffers):

* ``prepare(B)``; ``draw(deterministic, td_average)``: the step's random numbers from the head's numpy
  Generator (``carried_noise`` / ``set_carried_noise`` / ``restart_noise``: what one draw passes to the
  next, the Gaussian head's correlated noise; ``[B, 0]`` for others; ``td_average``, the learner's running
  mean ``|delta|``, sets that correlation under ``noise_calm_target``);
* ``sample_step(o, deterministic)``: the step's actions (:attr:`env_actions` for the environment);
* ``score_step(o, weights, signal, entropies)``: ``signal = d/do [log pi(a | o) + w H(pi(. | o))]``, the
  actor's same-step learning signal, the extra parameters' score (``extra_grad``), and ``entropies`` ``[B]``
  ``= H(pi(. | o))`` (nats);
* ``refresh()``: recompute what is derived from the head's parameters after they change.

For everyone else: ``sample(o, deterministic)``, ``to_env(actions)``, ``score(o, actions, w, signal)``,
``entropy(o)``. ``extra_params`` / ``extra_grad``: trainable parameters of the head itself (the
Gaussian log-std, ``[P]``) and their score (``[B, P]``); they get an eligibility trace and the actor's
bounded step times ``extra_lr_scale``; ``None`` when the head has none.

``diagnostics()``: the head's scalars for the logs (TensorBoard ``train/<name>``);
``saturated_share()``: the share of the last draw's actions at their bound.

``CategoricalHead`` serves ``Discrete`` actions, ``GaussianHead`` ``Box`` actions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from reflect.formulas import categorical, gaussian

SQUASHES = tuple(gaussian.SQUASH_CODES)
_LOG_2PI = math.log(2.0 * math.pi)


class PolicyHead(Protocol):
    """What the learner needs from an action distribution."""

    num_outputs: int
    extra_lr_scale: float
    noise_calm_target: float
    compiled_template: str
    rng: np.random.Generator

    def prepare(self, batch_size: int) -> None: ...

    def draw(self, deterministic: bool, td_average: float | None = None) -> None: ...

    def sample_step(self, out: np.ndarray, deterministic: bool) -> None: ...

    def score_step(self, out: np.ndarray, weights: np.ndarray, signal: np.ndarray,
                   entropies: np.ndarray) -> None: ...

    def refresh(self) -> None: ...

    @property
    def env_actions(self) -> np.ndarray: ...

    @property
    def extra_params(self) -> np.ndarray | None: ...

    @property
    def extra_grad(self) -> np.ndarray | None: ...

    def compiled_handle(self) -> tuple[Any, ...]: ...

    def sample(self, out: np.ndarray, deterministic: bool) -> np.ndarray: ...

    def to_env(self, actions: np.ndarray) -> np.ndarray: ...

    def sample_for_env(self, out: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]: ...

    def score(self, out: np.ndarray, actions: np.ndarray, entropy_weight: np.ndarray,
              signal: np.ndarray) -> None: ...

    def entropy(self, out: np.ndarray) -> np.ndarray: ...

    def rng_state(self) -> dict: ...

    def set_rng_state(self, state: dict) -> None: ...

    def restart_noise(self) -> None: ...

    def carried_noise(self) -> np.ndarray: ...

    def set_carried_noise(self, noise: np.ndarray) -> None: ...

    def spawn(self, seed: int | None) -> PolicyHead: ...

    def diagnostics(self) -> dict[str, float]: ...

    def saturated_share(self) -> float: ...


class CategoricalHead:
    """Softmax over ``num_actions`` logits (``gymnasium.spaces.Discrete``)::

        pi(a | o) = softmax(o)_a,    d log pi(a) / d o = onehot(a) - softmax(o)
    """

    compiled_template = "reflect.kernels.categorical_head"
    extra_lr_scale = 1.0
    noise_calm_target = 0.0
    extra_params = None
    extra_grad = None

    def __init__(self, num_actions: int, seed: int | None = None) -> None:
        if num_actions < 2:
            raise ValueError(f"a categorical head needs at least 2 actions, got {num_actions}")
        self.num_outputs = num_actions
        self.rng = np.random.default_rng(seed)
        self.prepare(1)

    def prepare(self, batch_size: int) -> None:
        """Allocate the per-step buffers for ``batch_size`` streams (steps then reuse them)."""
        if getattr(self, "_actions", np.zeros(0)).shape[0] != batch_size:
            self._uniform = np.zeros(batch_size)
            self._actions = np.zeros(batch_size, dtype=np.int64)
            self._row = np.zeros(self.num_outputs)
            self._score = np.zeros(self.num_outputs)

    def refresh(self) -> None:
        """Nothing is derived from parameters."""

    def draw(self, deterministic: bool, td_average: float | None = None) -> None:
        if not deterministic:
            self.rng.random(out=self._uniform)

    def restart_noise(self) -> None:
        """Nothing carries over from one draw to the next."""

    def carried_noise(self) -> np.ndarray:
        """``[B, 0]``: nothing carries over from one draw to the next."""
        return np.zeros((self._uniform.shape[0], 0))

    def set_carried_noise(self, noise: np.ndarray) -> None:
        """Nothing carries over from one draw to the next."""

    @property
    def env_actions(self) -> np.ndarray:
        """The last step's actions ``[B]`` (int64), as the environment takes them."""
        return self._actions

    actions = env_actions

    def sample_step(self, out: np.ndarray, deterministic: bool) -> None:
        for b in range(out.shape[0]):
            row = out[b].tolist()
            self._actions[b] = categorical.argmax(row) if deterministic else categorical.sample(
                row, float(self._uniform[b]))

    def score_step(self, out: np.ndarray, weights: np.ndarray, signal: np.ndarray,
                   entropies: np.ndarray) -> None:
        result = [0.0] * self.num_outputs
        for b in range(out.shape[0]):
            action, weight = int(self._actions[b]), float(weights[b])
            entropies[b] = categorical.score(out[b].tolist(), action, weight, result)
            signal[b] = result

    def compiled_handle(self) -> tuple[Any, ...]:
        return (self._uniform, self._actions, self._row, self._score)

    def diagnostics(self) -> dict[str, float]:
        """Nothing beyond the learner's statistics: the policy's entropy is logged there."""
        return {}

    def saturated_share(self) -> float:
        """0: a softmax has no bound to run into."""
        return 0.0

    def spawn(self, seed: int | None) -> CategoricalHead:
        """A head with the same actions but its own random stream and buffers."""
        return CategoricalHead(self.num_outputs, seed=seed)

    def sample(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        """Actions ``[B]`` (int64): the argmax, or a draw from ``softmax(out)`` (a buffer reused by the
        next call)."""
        self.prepare(out.shape[0])
        self.draw(deterministic)
        self.sample_step(out, deterministic)
        return self._actions

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Discrete actions go to the environment as they are."""
        return actions

    def sample_for_env(self, out: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        actions = self.sample(out, deterministic)
        return actions, actions

    def score(self, out: np.ndarray, actions: np.ndarray, entropy_weight: np.ndarray,
              signal: np.ndarray) -> None:
        """``signal[b] = d/dl [log p(a_b) + w_b H]`` for logits ``out`` ``[B, A]``."""
        self.prepare(out.shape[0])
        self._actions[...] = actions
        self.score_step(out, entropy_weight, signal, np.zeros(out.shape[0]))

    def entropy(self, out: np.ndarray) -> np.ndarray:
        """``H(softmax(out))`` ``[B]``, from the one score formula (which returns it)."""
        scratch = np.empty(out.shape[1])
        return np.array([categorical.score(row, 0, 0.0, scratch) for row in np.asarray(out, np.float64)])

    def rng_state(self) -> dict:
        """The sampler's random state (plain types, checkpoint-safe)."""
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


class GaussianHead:
    """Diagonal Gaussian policy over ``A`` action dimensions (``gymnasium.spaces.Box``).

    The readout gives the mean ``mu`` ``[B, A]``; a learned, state-independent ``log_std`` ``[A]`` the
    spread. The head samples a pre-squash action ``u = mu + sigma * eps``, which is what the learner
    scores, and maps it into the bounds per dimension (:mod:`reflect.formulas.gaussian`)::

        tanh:  a = c + s * tanh(u)            log pi(a) = log N(u; mu, sigma) - sum log(s (1 - tanh(u)^2))
        clip:  a = c + s * clip(u, -1, 1)     log pi(a) = log N(u; mu, sigma) - sum log s
                                              (the density of the unclipped draw, as stable-baselines3 does)

    with ``c = (high + low) / 2`` and ``s = (high - low) / 2``, so the network works in ``[-1, 1]`` units in
    every dimension. Dimensions with an infinite bound are not squashed (``a = u``). ``log_std`` is kept
    in ``log_std_bounds`` (clipped by :meth:`refresh`, which the learner calls after every update).

    The noise ``eps`` ``[B, A]`` is white, or with ``noise_correlation = beta > 0`` carried from step to
    step: ``eps_t = beta eps_{t-1} + sqrt(1 - beta^2) xi_t`` (each ``eps_t`` still ``N(0, 1)``). It runs on
    through episode ends, as one stream's lifetime; :meth:`restart_noise` starts it afresh, and
    :meth:`carried_noise` / :meth:`set_carried_noise` save and restore it with a checkpoint. With
    ``noise_calm_target = T > 0`` each draw's correlation is ``beta * min(1, ebar / T)`` for the learner's
    running mean ``|delta|`` ``ebar`` (passed to :meth:`draw`; :attr:`correlation` is the last one used).

    Args:
        action_dim: ``A``.
        low / high: ``[A]`` bounds (``None``: unbounded).
        squash: ``"tanh"`` or ``"clip"``.
        init_log_std: the starting ``log_std`` (in ``[-1, 1]`` action units).
        learn_log_std: train ``log_std`` along with the actor (else it stays fixed).
        log_std_bounds: ``(min, max)`` for ``log_std``.
        log_std_lr_scale: ``log_std`` takes the actor's bounded step times this factor.
        noise_correlation: ``beta`` in ``[0, 1)``, the correlation of successive noise draws (0: white).
        noise_calm_target: ``T >= 0``: the correlation shrinks in proportion while the learner's running
            mean ``|delta|`` is below ``T`` (0: it stays ``beta``).
        seed: the sampler's seed.
        log_std: share this ``[A]`` float64 tensor as the parameter (used by :meth:`spawn`).
    """

    compiled_template = "reflect.kernels.gaussian_head"

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
        noise_correlation: float = 0.0,
        noise_calm_target: float = 0.0,
        seed: int | None = None,
        log_std: Tensor | None = None,
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
        if not log_std_lr_scale > 0.0:
            raise ValueError(f"log_std_lr_scale must be > 0, got {log_std_lr_scale}")
        if not 0.0 <= noise_correlation < 1.0:  # 1 would freeze the noise, and NaN passes no comparison
            raise ValueError(f"noise_correlation must lie in [0, 1) (0: white), got {noise_correlation}")
        if not 0.0 <= noise_calm_target < math.inf:
            raise ValueError(f"noise_calm_target must be a finite number >= 0 (0: off), got "
                             f"{noise_calm_target}")
        self.num_outputs = action_dim
        self.noise_correlation = float(noise_correlation)
        self.noise_calm_target = float(noise_calm_target)
        self.correlation = self.noise_correlation  # the last draw's (under a calm target, it follows ebar)
        self.squash, self.learn_log_std = squash, learn_log_std
        self.squash_code = gaussian.SQUASH_CODES[squash]
        self.extra_lr_scale = float(log_std_lr_scale)
        self.log_std_bounds = (lo, hi)
        self._bounds = np.array([lo, hi])
        self.low, self.high = low_arr, high_arr
        self.bounded = np.isfinite(low_arr) & np.isfinite(high_arr)
        # the columns saturated_share reads: all of them (None, no copy) or the bounded ones
        self._saturable = None if self.bounded.all() else np.flatnonzero(self.bounded)
        finite_low, finite_high = np.where(self.bounded, low_arr, -1.0), np.where(self.bounded, high_arr, 1.0)
        self.center = (finite_high + finite_low) / 2.0  # unbounded dimensions: center 0, scale 1
        self.scale = (finite_high - finite_low) / 2.0
        if log_std is None:
            log_std = torch.full((action_dim,), float(init_log_std), dtype=torch.float64)
        self.log_std = log_std
        self.log_std_np = self.log_std.numpy()
        self.rng = np.random.default_rng(seed)
        self._vectors = np.zeros((4, action_dim))  # rows: sigma, 1 / sigma^2, c, s
        self._std, self._inv_var = self._vectors[0], self._vectors[1]
        self._vectors[2], self._vectors[3] = self.center, self.scale
        self._flags = np.array([self.squash_code, int(learn_log_std)], dtype=np.int64)
        self._raw = np.zeros((0, action_dim))
        self.prepare(1)
        self.refresh()

    # ---------------------------------------------------------------------------- the learner's
    @property
    def extra_params(self) -> np.ndarray | None:
        """``log_std`` ``[A]`` (float64, shares memory with :attr:`log_std`) when it is learned."""
        return self.log_std_np if self.learn_log_std else None

    @property
    def extra_grad(self) -> np.ndarray | None:
        """``d/d log_std [log pi + w H]`` ``[B, A]`` of the last score (if ``log_std`` is learned)."""
        return self._grad if self.learn_log_std else None

    @property
    def env_actions(self) -> np.ndarray:
        """The last step's actions in the bounds ``[B, A]`` (float32)."""
        return self._env

    @property
    def actions(self) -> np.ndarray:
        """The last step's pre-squash actions ``u`` ``[B, A]`` (float64), what the learner scores."""
        return self._raw

    def prepare(self, batch_size: int) -> None:
        """Allocate the per-step buffers for ``batch_size`` streams (done once; steps then reuse them)."""
        if self._raw.shape[0] != batch_size:
            shape = (batch_size, self.num_outputs)
            self._samples = np.zeros((3, *shape))  # rows: noise, pre-squash actions, log-std score
            self._noise, self._raw, self._grad = self._samples
            self._fresh = np.zeros(shape)  # xi_t of correlated noise
            self._carry = False  # does the next draw carry on from _noise? (never for white noise)
            self._env = np.zeros(shape, dtype=np.float32)

    def refresh(self) -> None:
        """Clip ``log_std`` into its bounds and recompute ``sigma`` and ``1 / sigma^2`` from it."""
        log_std = self.log_std_np
        np.clip(log_std, *self.log_std_bounds, out=log_std)
        self._std[...], self._inv_var[...] = gaussian.spread(log_std)

    def draw(self, deterministic: bool, td_average: float | None = None) -> None:
        """The step's noise; ``td_average`` (the learner's running mean ``|delta|``) sets the correlation
        under a calm target (``None``, as a frozen policy passes: the last draw's correlation)."""
        if deterministic:
            return
        if td_average is not None and self.noise_calm_target > 0.0:
            self.correlation = gaussian.calm_correlation(self.noise_correlation, td_average,
                                                         self.noise_calm_target)
        if not self._carry:
            self.rng.standard_normal(out=self._noise)
            self._carry = self.noise_correlation > 0.0
            return
        self.rng.standard_normal(out=self._fresh)
        self._noise[...] = gaussian.correlated_noise(self._noise, self._fresh, self.correlation)

    def restart_noise(self) -> None:
        """The next draw starts the noise afresh (white), as a new stream's does."""
        self._carry = False

    def carried_noise(self) -> np.ndarray:
        """The noise the next draw carries on from, ``eps_{t-1}`` ``[B, A]``; ``[B, 0]`` when there is
        none (white noise, or nothing drawn since the last restart)."""
        if not self._carry:
            return np.zeros((self._noise.shape[0], 0))
        return self._noise.copy()

    def set_carried_noise(self, noise: np.ndarray) -> None:
        """Carry on from ``noise`` (what :meth:`carried_noise` returned); an array of another shape (an
        empty one, or another number of streams) restarts the noise instead."""
        noise = np.asarray(noise, dtype=np.float64)
        self._carry = self.noise_correlation > 0.0 and noise.shape == self._noise.shape
        if self._carry:
            self._noise[...] = noise

    def sample_step(self, out: np.ndarray, deterministic: bool) -> None:
        mu = out.astype(np.float64, copy=False)
        u = mu if deterministic else gaussian.pre_squash(mu, self._std, self._noise)
        self._raw[...] = u
        self._env[...] = self._to_env(self._raw)

    def score_step(self, out: np.ndarray, weights: np.ndarray, signal: np.ndarray,
                   entropies: np.ndarray) -> None:
        entropies[...] = gaussian.dimension_entropy(self.log_std_np).sum()
        mu = out.astype(np.float64, copy=False)
        signal[...] = gaussian.mean_score(self._raw, mu, self._inv_var)
        if self.learn_log_std:
            self._grad[...] = gaussian.log_std_score(self._raw, mu, self._inv_var, weights[:, None])

    def compiled_handle(self) -> tuple[Any, ...]:
        return (self._samples, self._env, self._vectors, self.bounded, self.log_std_np, self._bounds,
                self._flags)

    # ------------------------------------------------------------------------------ everyone's
    def _to_env(self, u: np.ndarray) -> np.ndarray:
        squashed = gaussian.squash(u, self.center, self.scale, self.squash_code)
        return squashed if self.bounded.all() else np.where(self.bounded, squashed, u)

    def spawn(self, seed: int | None) -> GaussianHead:
        """A head that shares ``log_std`` and the bounds but has its own random stream and buffers."""
        return GaussianHead(
            self.num_outputs, self.low, self.high, squash=self.squash,
            learn_log_std=self.learn_log_std, log_std_bounds=self.log_std_bounds,
            log_std_lr_scale=self.extra_lr_scale, noise_correlation=self.noise_correlation,
            noise_calm_target=self.noise_calm_target, seed=seed, log_std=self.log_std,
        )

    def diagnostics(self) -> dict[str, float]:
        """``std``: the mean of ``sigma`` over the action dimensions (stable-baselines3's ``train/std``);
        ``noise_correlation``: the correlation of the last noise draw (``beta``, or ``beta * min(1, ebar /
        T)`` under ``noise_calm_target``)."""
        return {"std": float(np.mean(self.std())), "noise_correlation": float(self.correlation)}

    def saturated_share(self) -> float:
        """The share of the last draw's bounded action dimensions (over streams) that lie within 4% of
        their bound (:func:`reflect.formulas.gaussian.saturated`); 0 with no bounded dimension."""
        raw = self._raw if self._saturable is None else self._raw[:, self._saturable]
        if raw.size == 0:
            return 0.0
        return float(np.count_nonzero(gaussian.saturated(raw, self.squash_code))) / raw.size

    def std(self) -> np.ndarray:
        """``sigma = exp(log_std)`` ``[A]`` (after clipping ``log_std`` into its bounds)."""
        self.refresh()
        return self._std

    def sample(self, out: np.ndarray, deterministic: bool) -> np.ndarray:
        """Pre-squash actions ``u`` ``[B, A]`` (float64): ``mu``, or ``mu + sigma * eps`` (a buffer reused
        by the next call)."""
        self.prepare(out.shape[0])
        self.refresh()
        self.draw(deterministic)
        self.sample_step(out, deterministic)
        return self._raw

    def sample_for_env(self, out: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(u, to_env(u))`` for ``u = sample(out, deterministic)`` (buffers reused by the next call)."""
        raw = self.sample(out, deterministic)
        return raw, self._env

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Pre-squash actions ``u`` ``[B, A]`` -> environment actions ``[B, A]`` (float32, in bounds)."""
        return self._to_env(np.asarray(actions, dtype=np.float64)).astype(np.float32)

    def score(self, out: np.ndarray, actions: np.ndarray, entropy_weight: np.ndarray,
              signal: np.ndarray) -> None:
        """``signal = d log pi / d mu`` ``[B, A]``; :attr:`extra_grad` ``= d/d log_std [log pi + w H]``."""
        self.prepare(out.shape[0])
        self.refresh()
        self._raw[...] = actions
        self.score_step(out, np.asarray(entropy_weight, dtype=np.float64), signal, np.zeros(out.shape[0]))

    def log_prob(self, out: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``log pi(a | o)`` ``[B]`` of the environment action ``a = to_env(actions)``, in float64."""
        mu = out.astype(np.float64)
        std = self.std()
        log_std = self.log_std_np
        z = (actions - mu) / std
        density = (-0.5 * z**2 - log_std - 0.5 * _LOG_2PI).sum(axis=1)
        log_jacobian = np.log(self.scale) + np.zeros_like(actions)  # scale is 1 where unbounded
        if self.squash == "tanh":
            # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
            squash = 2.0 * (math.log(2.0) - actions - np.logaddexp(0.0, -2.0 * actions))
            log_jacobian = log_jacobian + np.where(self.bounded, squash, 0.0)
        return density - log_jacobian.sum(axis=1)

    def entropy(self, out: np.ndarray) -> np.ndarray:
        """Entropy of the pre-squash Gaussian, ``sum(log_std) + A/2 (1 + log 2 pi)``, ``[B]``."""
        self.refresh()
        return np.full(out.shape[0], float(gaussian.dimension_entropy(self.log_std_np).sum()))

    def rng_state(self) -> dict:
        """The sampler's random state (plain types, checkpoint-safe)."""
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
