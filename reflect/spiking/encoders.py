"""Input encoders: observations ``[batch, obs_dim]`` -> layer input ``[batch, out_features]``.

* ``direct`` (default): the observation is the input current, unchanged.
* ``poisson``: rate coding; each input spikes with probability ``sigmoid(gain * x)`` per step.
* ``posneg``: positive/negative split ``[relu(x), relu(-x)]``, so signs reach separate synapses.
* ``population``: each dimension feeds ``n`` neurons with Gaussian receptive fields whose centres
  tile ``[low, high]``: ``exp(-((x - c_k) / width)^2 / 2)``.

Encoders have no trainable parameters; ``poisson`` draws from its own ``torch.Generator`` so that
runs are reproducible from the seed passed to :meth:`Encoder.seed`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ENCODERS = ("direct", "poisson", "posneg", "population")


class Encoder(nn.Module):
    """Base encoder: ``forward(obs) -> input``; ``out_features`` gives the encoded width."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features

    def seed(self, seed: int) -> None:
        """Seed the encoder's random stream (only stochastic encoders use it)."""


class DirectEncoder(Encoder):
    """Observation as input current: ``out = x``."""

    def __init__(self, in_features: int) -> None:
        super().__init__(in_features, in_features)

    def forward(self, obs: Tensor) -> Tensor:
        return obs


class PoissonEncoder(Encoder):
    """Bernoulli spikes with rate ``sigmoid(gain * x)`` (a Poisson process in discrete time)."""

    def __init__(self, in_features: int, gain: float = 1.0, seed: int = 0) -> None:
        super().__init__(in_features, in_features)
        self.gain = float(gain)
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def forward(self, obs: Tensor) -> Tensor:
        rate = torch.sigmoid(self.gain * obs)
        noise = torch.rand(rate.shape, generator=self.generator, dtype=rate.dtype)
        return (noise < rate).to(rate.dtype)


class PosNegEncoder(Encoder):
    """Positive/negative split: ``[relu(x), relu(-x)]``, twice as wide as the input."""

    def __init__(self, in_features: int) -> None:
        super().__init__(in_features, 2 * in_features)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.cat([obs.clamp(min=0.0), (-obs).clamp(min=0.0)], dim=-1)


class PopulationEncoder(Encoder):
    """Gaussian receptive fields: ``n`` neurons per input dimension, centres evenly in ``[low, high]``."""

    centers: Tensor

    def __init__(self, in_features: int, n: int = 8, low: float = -3.0, high: float = 3.0) -> None:
        if n < 2 or not high > low:
            raise ValueError(f"population encoder needs n >= 2 and high > low, got n={n}, [{low}, {high}]")
        super().__init__(in_features, in_features * n)
        self.n = n
        self.width = (high - low) / (n - 1)
        self.register_buffer("centers", torch.linspace(low, high, n))

    def forward(self, obs: Tensor) -> Tensor:
        z = (obs.unsqueeze(-1) - self.centers) / self.width
        return torch.exp(-0.5 * z.square()).flatten(-2)


def make_encoder(name: str, in_features: int, **kwargs: float) -> Encoder:
    """Build an encoder by name (one of :data:`ENCODERS`)."""
    if name == "direct":
        return DirectEncoder(in_features, **kwargs)
    if name == "poisson":
        return PoissonEncoder(in_features, **kwargs)  # type: ignore[arg-type]
    if name == "posneg":
        return PosNegEncoder(in_features, **kwargs)
    if name == "population":
        return PopulationEncoder(in_features, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")
