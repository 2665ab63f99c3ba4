"""Streaming observation normalisation and reward scaling, with float64 running statistics.

Both update their statistics one step at a time (each new batch of ``N`` values, one per stream)
and save to / load from plain values and torch tensors, so a checkpoint resumes exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from reflect.formulas.normalize import merge, normalize, welford
from reflect.learning.errors import check_finite

__all__ = ["ObservationNormalizer", "RewardScaler", "RunningMeanStd"]


def _float64_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.array(value, dtype=np.float64)


class RunningMeanStd:
    """Mean, population variance and count of every value fed in, per element of ``shape`` (float64).

    The formulas are :mod:`reflect.formulas.normalize`: Welford's update for a single row, Chan et al.'s
    parallel merge for a batch, so the statistics equal ``np.mean`` / ``np.var`` of all the rows seen.
    Before any data: mean 0, var 1. :attr:`mean`, :attr:`var` and the count (a one-element int64 array,
    :attr:`count_array`) are updated in place, so compiled kernels can hold on to them.
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.var = np.ones(self.shape, dtype=np.float64)
        self.count_array = np.zeros(1, dtype=np.int64)

    @property
    def count(self) -> int:
        return int(self.count_array[0])

    @count.setter
    def count(self, value: int) -> None:
        self.count_array[0] = value

    def update(self, batch: np.ndarray) -> None:
        """Add the rows of ``batch`` ``[N, *shape]``."""
        batch = np.asarray(batch, dtype=np.float64)
        if batch.shape[1:] != self.shape:
            raise ValueError(
                f"RunningMeanStd of shape {self.shape} got a batch of shape {batch.shape}: "
                f"pass [N, *{self.shape}]"
            )
        n = batch.shape[0]
        if n == 0:
            return
        if n == 1:
            mean, var = welford(self.mean, self.var, self.count, batch[0])
        else:
            mean, var = merge(self.mean, self.var, self.count, batch.mean(axis=0), batch.var(axis=0), n)
        self.mean[...], self.var[...] = mean, var
        self.count = self.count + n

    def update_scalar(self, value: float) -> float:
        """Add one value (``shape == ()``) in plain floats; returns the new variance."""
        mean, var = welford(float(self.mean), float(self.var), self.count, value)
        self.mean[...], self.var[...] = mean, var
        self.count = self.count + 1
        return float(var)

    def state_dict(self) -> dict[str, Any]:
        """``{"mean": tensor, "var": tensor, "count": int}`` (float64 tensors of ``shape``)."""
        return {
            "mean": torch.from_numpy(np.array(self.mean, dtype=np.float64)),
            "var": torch.from_numpy(np.array(self.var, dtype=np.float64)),
            "count": int(self.count),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a :meth:`state_dict`; raises ValueError if its shape is not ``shape``."""
        mean, var = _float64_array(state["mean"]), _float64_array(state["var"])
        if mean.shape != self.shape or var.shape != self.shape:
            raise ValueError(
                f"RunningMeanStd state has shape {mean.shape} but this one has {self.shape}: load a state "
                "saved for the same shape"
            )
        self.mean[...], self.var[...], self.count = mean, var, int(state["count"])


class ObservationNormalizer:
    """``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` with running statistics of ``obs``
    (:func:`reflect.formulas.normalize.normalize`)."""

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, epsilon: float = 1e-8) -> None:
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}: pass a positive bound")
        self.rms = RunningMeanStd(shape)
        self.settings = np.array([float(clip), float(epsilon)])  # read by compiled kernels at every call

    @property
    def clip(self) -> float:
        return float(self.settings[0])

    @property
    def epsilon(self) -> float:
        return float(self.settings[1])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one observation."""
        return self.rms.shape

    def __call__(self, obs: np.ndarray, update: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Normalise ``obs`` ``[N, *shape]`` to float32 ``[N, *shape]``; if ``update``, stats update first.

        ``out``: an ``[N, *shape]`` array to write into (and return) instead of a new float32 one.
        Raises ``FloatingPointError`` naming the dimensions if ``obs`` holds NaN or inf.
        """
        obs = np.asarray(obs)
        if obs.shape[1:] != self.rms.shape:
            raise ValueError(
                f"ObservationNormalizer of shape {self.rms.shape} got observations of shape {obs.shape}: "
                f"pass [N, *{self.rms.shape}]"
            )
        check_finite(obs, "observation")
        if update:
            self.rms.update(obs)
        normalized = normalize(obs.astype(np.float64, copy=False), self.rms.mean, self.rms.var, self.epsilon,
                               self.clip)
        if out is None:
            return normalized.astype(np.float32)
        out[...] = normalized
        return out

    def prepare(self, raw: np.ndarray, out: np.ndarray, update: bool) -> bool:
        """:meth:`__call__` into ``out`` for a learner: ``False``, changing nothing, if ``raw`` holds NaN or
        inf."""
        if not np.isfinite(raw).all():
            return False
        self(raw, update=update, out=out)
        return True

    def compiled_handle(self) -> tuple[np.ndarray, ...]:
        """The buffers the compiled normaliser reads and updates (``reflect.kernels.learning_ops``)."""
        return (self.rms.mean, self.rms.var, self.rms.count_array, self.settings, np.ones(1, dtype=np.int64))

    def state_dict(self) -> dict[str, Any]:
        """``{"rms": ..., "clip": float, "epsilon": float}``."""
        return {"rms": self.rms.state_dict(), "clip": self.clip, "epsilon": self.epsilon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a :meth:`state_dict` (statistics, clip and epsilon)."""
        self.rms.load_state_dict(state["rms"])
        self.settings[...] = (float(state["clip"]), float(state["epsilon"]))


class RewardScaler:
    """Divide rewards by the running standard deviation of each stream's discounted return.

    Per step: ``G <- gamma * G + r``; the ``N`` values of ``G`` update the running variance; the
    result is ``r / sqrt(var(G) + epsilon)``; then ``G`` of streams whose episode ended is zeroed.
    While fewer than 2 values of ``G`` have been seen the variance is undefined and ``r`` is returned
    unscaled (otherwise the very first reward would be divided by ``sqrt(epsilon)``).
    """

    def __init__(self, num_envs: int, gamma: float, epsilon: float = 1e-8) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}: pass the number of streams")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}: pass the discount factor")
        self.num_envs = int(num_envs)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.returns = np.zeros(self.num_envs, dtype=np.float64)
        self.rms = RunningMeanStd(())

    def scale(
        self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, update: bool = True
    ) -> np.ndarray:
        """Scale ``rewards`` ``[N]`` (``terminated``/``truncated`` bool ``[N]``); returns float64 ``[N]``."""
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape != (self.num_envs,):
            raise ValueError(
                f"RewardScaler for {self.num_envs} streams got rewards of shape {rewards.shape}: "
                f"pass [{self.num_envs}]"
            )
        check_finite(rewards, "reward")
        self.returns = self.gamma * self.returns + rewards
        if update:
            self.rms.update(self.returns)
        scaled = rewards / np.sqrt(self.rms.var + self.epsilon) if self.rms.count >= 2 else rewards.copy()
        self.returns[np.logical_or(terminated, truncated)] = 0.0
        return scaled

    def scale_one(self, reward: float, done: bool) -> float:
        """:meth:`scale` for one stream in plain floats (same arithmetic); ``done``: the episode ended."""
        if self.num_envs != 1:
            raise ValueError(f"scale_one is for one stream; this scaler has {self.num_envs}: use scale()")
        if not math.isfinite(reward):
            raise FloatingPointError(
                "reward has NaN or inf in streams [0]: fix the environment that produced it"
            )
        ret = self.gamma * float(self.returns[0]) + reward
        var = self.rms.update_scalar(ret)
        self.returns[0] = 0.0 if done else ret
        return reward / math.sqrt(var + self.epsilon) if self.rms.count >= 2 else reward

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Zero the discounted return of the streams in ``mask`` (bool ``[N]``), or of all of them."""
        if mask is None:
            self.returns[:] = 0.0
        else:
            self.returns[np.asarray(mask, dtype=np.bool_)] = 0.0

    def state_dict(self) -> dict[str, Any]:
        """``{"returns": float64 tensor [N], "rms": ..., "gamma": float, "epsilon": float}``."""
        return {
            "returns": torch.from_numpy(self.returns.copy()),
            "rms": self.rms.state_dict(),
            "gamma": self.gamma,
            "epsilon": self.epsilon,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a :meth:`state_dict`; raises ValueError if it is for another number of streams."""
        returns = _float64_array(state["returns"])
        if returns.shape != (self.num_envs,):
            raise ValueError(
                f"RewardScaler state has returns of shape {returns.shape} but this one has {self.num_envs} "
                "streams: load a state saved with the same num_envs"
            )
        self.rms.load_state_dict(state["rms"])
        self.returns = returns
        self.gamma, self.epsilon = float(state["gamma"]), float(state["epsilon"])
