"""Streaming observation normalisation and reward scaling, with float64 running statistics.

Both update their statistics one step at a time (each new batch of ``N`` values, one per stream)
and save to / load from plain values and torch tensors, so a checkpoint resumes exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from reflect.kernels import compiled_enabled
from reflect.kernels.normalize import normalize_one

__all__ = ["ObservationNormalizer", "RewardScaler", "RunningMeanStd"]

SMALL_ROW = 16  # observations up to this length are normalised one at a time in plain floats
_COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _float64_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.array(value, dtype=np.float64)


def _welford_step(mean: float, var: float, count: int, x: float) -> tuple[float, float]:
    """Mean and population variance after adding ``x`` to ``count`` values, in plain floats (the same
    operations, in the same order, as :meth:`RunningMeanStd.update` with one row)."""
    total = count + 1
    delta = x - mean
    mean = mean + delta / total
    return mean, (var * count + delta * (x - mean)) / total


def _check_finite(values: np.ndarray, what: str) -> None:
    if math.isfinite(values.sum()):  # one reduction; NaN or inf anywhere makes the sum non-finite
        return
    bad = ~np.isfinite(values)
    if not bad.any():  # finite values whose sum overflowed
        return
    streams = np.flatnonzero(bad.reshape(len(values), -1).any(axis=1)).tolist()
    if values.ndim == 1:
        raise FloatingPointError(
            f"{what} has NaN or inf in streams {streams}: fix the environment that produced it"
        )
    cells = np.argwhere(bad.any(axis=0))
    dims = [int(c[0]) for c in cells] if values.ndim == 2 else [tuple(int(i) for i in c) for c in cells]
    raise FloatingPointError(
        f"{what} has NaN or inf in dimensions {dims} (streams {streams}): fix the environment or clip its "
        "observations before normalising"
    )


class RunningMeanStd:
    """Mean, population variance and count of every value fed in, per element of ``shape`` (float64).

    :attr:`mean` and :attr:`var` are updated in place (compiled kernels hold on to them).

    Batches are merged with Chan et al.'s parallel update (Welford's for a single row), so the
    statistics equal ``np.mean`` / ``np.var`` of all the rows seen. Before any data: mean 0, var 1.
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.var = np.ones(self.shape, dtype=np.float64)
        self.count = 0
        self._delta = np.zeros(self.shape)  # work buffers of the single-row update
        self._work = np.zeros(self.shape)

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
        total = self.count + n
        if n == 1 and self.shape:
            self._update_row(batch[0], total)
        elif n == 1:
            delta = batch[0] - self.mean
            mean = self.mean + delta / total
            self.var[...] = (self.var * self.count + delta * (batch[0] - mean)) / total
            self.mean[...] = mean
        else:
            delta = batch.mean(axis=0) - self.mean
            m2 = self.var * self.count + batch.var(axis=0) * n + delta * delta * (self.count * n / total)
            self.mean[...] = self.mean + delta * (n / total)
            self.var[...] = m2 / total
        self.count = total

    def _update_row(self, row: np.ndarray, total: int) -> None:
        """Welford's update with one row, in place on preallocated buffers (same arithmetic, same order,
        as the expression form: ``mean += delta / n``, ``var = (var * (n - 1) + delta (x - mean)) / n``)."""
        delta, work = self._delta, self._work
        np.subtract(row, self.mean, out=delta)
        np.divide(delta, total, out=work)
        self.mean += work
        np.subtract(row, self.mean, out=work)
        work *= delta
        self.var *= self.count
        self.var += work
        self.var /= total

    def update_scalar(self, value: float) -> float:
        """Add one value (``shape == ()``) in plain floats; returns the new variance."""
        mean, var = _welford_step(float(self.mean), float(self.var), self.count, value)
        self.mean[...], self.var[...], self.count = mean, var, self.count + 1
        return var

    def update_row(self, row: list[float]) -> tuple[list[float], list[float]]:
        """Add one row (``shape == (D,)``) given as plain floats; returns the new mean and variance as
        lists (stored into :attr:`mean` / :attr:`var` too)."""
        pairs = [
            _welford_step(m, v, self.count, x)
            for m, v, x in zip(self.mean.tolist(), self.var.tolist(), row, strict=True)
        ]
        mean, var = [m for m, _ in pairs], [v for _, v in pairs]
        self.mean[...] = mean
        self.var[...] = var
        self.count += 1
        return mean, var

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
    """``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` with running statistics of ``obs``."""

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, epsilon: float = 1e-8,
                 compiled: bool | None = None) -> None:
        """``compiled``: normalise single observations with one compiled call
        (:mod:`reflect.kernels.normalize`, same bits); ``None``: when numba is available."""
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}: pass a positive bound")
        self.compiled = compiled_enabled() if compiled is None else bool(compiled)
        self.rms = RunningMeanStd(shape)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self._scale_count = -1  # count at which _scale = 1 / sqrt(var + eps) was computed
        self._scale = np.ones(self.rms.shape)
        self._work = np.zeros((1, *self.rms.shape))

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one observation."""
        return self.rms.shape

    def scale(self) -> np.ndarray:
        """``1 / sqrt(var + epsilon)`` of the current statistics (float64, ``shape``): normalised
        observations are ``clip((obs - mean) * scale(), -clip, clip)``."""
        return 1.0 / np.sqrt(self.rms.var + self.epsilon)

    def __call__(self, obs: np.ndarray, update: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Normalise ``obs`` ``[N, *shape]`` to float32 ``[N, *shape]``; if ``update``, stats update first.

        ``out``: a float32 ``[N, *shape]`` array to write into (and return) instead of a new one.
        """
        if not isinstance(obs, np.ndarray):
            obs = np.asarray(obs)
        if obs.shape[1:] != self.rms.shape:
            raise ValueError(
                f"ObservationNormalizer of shape {self.rms.shape} got observations of shape {obs.shape}: "
                f"pass [N, *{self.rms.shape}]"
            )
        if out is not None and obs.ndim == 2 and obs.shape[0] == 1:
            if self.compiled and obs.dtype in _COMPILED_DTYPES:
                return self._normalize_compiled(obs[0], update, out)
            if 0 < obs.shape[1] <= SMALL_ROW:
                return self._normalize_row(obs[0].tolist(), update, out)
        _check_finite(obs, "observation")
        if update:
            self.rms.update(obs)
        if self._scale_count != self.rms.count:
            self._scale = self.scale()
            self._scale_count = self.rms.count
        if self._work.shape != obs.shape:
            self._work = np.zeros(obs.shape)
        normalized = np.subtract(obs, self.rms.mean, out=self._work)
        normalized *= self._scale
        np.minimum(normalized, self.clip, out=normalized)  # np.clip's Python wrapper costs more than both
        np.maximum(normalized, -self.clip, out=normalized)
        if out is None:
            return normalized.astype(np.float32)
        out[...] = normalized
        return out

    def _normalize_compiled(self, row: np.ndarray, update: bool, out: np.ndarray) -> np.ndarray:
        """One observation in one compiled call (the same bits as the other paths)."""
        rms = self.rms
        if not normalize_one(row, rms.mean, rms.var, rms.count, update, self.clip, self.epsilon, out[0]):
            _check_finite(row[None], "observation")
        if update:
            rms.count += 1
        return out

    def _normalize_row(self, row: list[float], update: bool, out: np.ndarray) -> np.ndarray:
        """One short observation in plain floats: the same IEEE operations in the same order as the
        array path (so the same bits), without a dozen array calls of ~1 µs each."""
        if not all(map(math.isfinite, row)):
            _check_finite(np.asarray([row]), "observation")
        rms = self.rms
        mean, var = rms.update_row(row) if update else (rms.mean.tolist(), rms.var.tolist())
        clip, epsilon = self.clip, self.epsilon
        out[0] = [
            max(min((x - m) * (1.0 / math.sqrt(v + epsilon)), clip), -clip)
            for x, m, v in zip(row, mean, var, strict=True)
        ]
        return out

    def state_dict(self) -> dict[str, Any]:
        """``{"rms": ..., "clip": float, "epsilon": float}``."""
        return {"rms": self.rms.state_dict(), "clip": self.clip, "epsilon": self.epsilon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a :meth:`state_dict` (statistics, clip and epsilon)."""
        self.rms.load_state_dict(state["rms"])
        self.clip, self.epsilon = float(state["clip"]), float(state["epsilon"])
        self._scale_count = -1


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
        _check_finite(rewards, "reward")
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
