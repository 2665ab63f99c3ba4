"""An inference-only view of a REFLECT agent's actor: frozen weights, its own network state.

It reads the actor's parameters in place (a learning agent's latest weights are always used) but never
changes them, and keeps a separate network state, so evaluating during training does not disturb the
learner's streams. Observations are normalised with the agent's statistics without updating them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from reflect.kernels.reflect_step import OK
from reflect.learning.errors import non_finite_error
from reflect.learning.heads import PolicyHead
from reflect.learning.learner import Learner
from reflect.spiking.network import SpikingNetwork
from reflect.traces.engine import TraceEngine


class FrozenPolicy:
    """Step a frozen actor for ``batch_size`` streams: ``reset()``, then ``act(obs)`` every step.

    Args:
        actor: the actor network (read, never written).
        head: the agent's action head.
        normalize: maps raw observations ``[B, obs_dim]`` to network inputs without updating statistics.
        batch_size: streams.
        learner: the agent's learner; :meth:`act` then runs as its act with learning off (one compiled
            call on the compiled backend, with the learner's observation statistics), else as
            :meth:`outputs` followed by the head's sampling.
    """

    def __init__(self, actor: SpikingNetwork, head: PolicyHead,
                 normalize: Callable[[np.ndarray], np.ndarray], batch_size: int = 1,
                 learner: Learner | None = None) -> None:
        self.engine = TraceEngine(actor, batch_size, backend=None if learner is None else learner.backend)
        self.head, self.normalize, self.batch_size = head, normalize, batch_size
        dtype = next(actor.parameters()).dtype
        self.inputs = torch.zeros(batch_size, actor.in_features, dtype=dtype)
        self._inputs_np = self.inputs.numpy()
        self._raw: np.ndarray | None = None
        if learner is not None:
            self._raw, self._step = learner.policy_step(self.engine, head)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Zero the network state of all streams (or those where ``mask`` is true); resetting all also
        restarts correlated exploration noise (which otherwise runs on through episode ends)."""
        self.engine.reset(np.ones(self.batch_size, dtype=bool) if mask is None else mask)
        if mask is None:
            self.head.restart_noise()

    def outputs(self, obs: np.ndarray) -> Tensor:
        """One step on raw observations ``[B, obs_dim]``; the readout ``[B, num_outputs]``."""
        self._inputs_np[...] = self.normalize(np.asarray(obs).reshape(self.batch_size, -1))
        return self.engine.step(self.inputs, traces=False)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Environment actions ``[B]`` (or ``[B, A]`` in the ``Box`` bounds) for raw observations
        ``[B, obs_dim]``; the array is reused by the next call."""
        if self._raw is None:
            return self.head.to_env(self.head.sample(self.outputs(obs).numpy(), deterministic))
        self._raw[...] = np.asarray(obs).reshape(self.batch_size, -1)
        self.head.draw(deterministic)
        if self._step(deterministic) != OK:
            raise non_finite_error(self._raw, "observation")
        return self.head.env_actions

    @property
    def spikes(self) -> list[Tensor]:
        """Each layer's spikes of the last step, ``[B, H_l]``."""
        return self.engine.spikes
