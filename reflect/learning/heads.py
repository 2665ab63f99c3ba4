"""Policy heads: from the actor's readout to actions, log-prob scores and entropy gradients.

A head turns the readout ``o`` (``[B, num_outputs]``) into a distribution ``pi(. | o)``. The learner needs
three things from it, all as plain arrays (a head is a few numpy operations on tiny arrays, cheaper
than torch dispatch at batch 1):

* ``sample(o, deterministic)``: actions ``[B]`` (or ``[B, action_dim]``);
* ``score(o, actions, entropy_weight, out)``: writes ``d/do [log pi(a | o) + w * H(pi(. | o))]`` into
  ``out`` (``[B, num_outputs]``), the same-step learning signal of the actor;
* ``entropy(o)``: ``H(pi(. | o))`` ``[B]``.

Only the categorical head exists for now; a Gaussian head plugs in behind the same three methods.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np


class PolicyHead(Protocol):
    """What the learner needs from an action distribution."""

    num_outputs: int

    def sample(self, out: np.ndarray, deterministic: bool) -> np.ndarray: ...

    def score(self, out: np.ndarray, actions: np.ndarray, entropy_weight: np.ndarray,
              signal: np.ndarray) -> None: ...

    def entropy(self, out: np.ndarray) -> np.ndarray: ...

    def rng_state(self) -> dict: ...

    def set_rng_state(self, state: dict) -> None: ...


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
