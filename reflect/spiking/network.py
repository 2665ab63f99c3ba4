"""A stack of spiking layers with an encoder and a readout, one state per environment stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from reflect.spiking.encoders import Encoder, make_encoder
from reflect.spiking.layers import LayerState, LeakyReadout, SpikingLayer


class NetworkState(NamedTuple):
    """Per-stream state: one entry per hidden layer, and the readout's ``[batch, out]`` state."""

    layers: tuple[LayerState, ...]
    readout: Tensor


def _mask_rows(x: Tensor, keep: Tensor) -> Tensor:
    return x * keep.to(x.dtype).unsqueeze(-1)


class SpikingNetwork(nn.Module):
    """Encoder -> spiking layers -> leaky-integrator readout.

    ``forward(obs, state, episode_start)`` maps observations ``[batch, in_features]`` to readout outputs
    ``[batch, out_features]`` (action logits, Gaussian mean, value, ...), one simulation step per call.
    ``episode_start`` (``[batch]`` bool) zeroes the state of just the streams whose episode begins,
    before the step; the other streams are untouched.

    Args:
        in_features: observation size.
        out_features: readout size.
        hidden: neurons per spiking layer.
        encoder: an encoder name (``direct``, ``poisson``, ``posneg``, ``population``) or an
            :class:`~reflect.spiking.encoders.Encoder`.
        readout_decay: leak of the readout (0 = linear readout of the current spikes).
        readout_scale: readout weights start uniform in ``+-readout_scale / sqrt(hidden[-1])``.
        layer_kwargs: passed to every :class:`~reflect.spiking.layers.SpikingLayer`
            (``neuron``, ``recurrent``, ``beta``, ``theta``, ``learn_beta``, ``surrogate``, ...).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (128, 128),
        *,
        encoder: str | Encoder = "direct",
        readout_decay: float = 0.0,
        readout_scale: float = 1.0,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("hidden must name at least one spiking layer size, e.g. (128, 128)")
        self.encoder = make_encoder(encoder, in_features) if isinstance(encoder, str) else encoder
        sizes = [self.encoder.out_features, *hidden]
        self.layers = nn.ModuleList(
            SpikingLayer(sizes[i], sizes[i + 1], **layer_kwargs) for i in range(len(hidden))
        )
        self.readout = LeakyReadout(sizes[-1], out_features, decay=readout_decay,
                                    weight_scale=readout_scale)
        self.in_features, self.out_features = in_features, out_features

    @property
    def spiking_layers(self) -> list[SpikingLayer]:
        """The hidden layers, bottom to top."""
        return cast(list[SpikingLayer], list(self.layers))

    def initial_state(self, batch_size: int) -> NetworkState:
        """All-zero state for ``batch_size`` streams."""
        return NetworkState(
            tuple(layer.initial_state(batch_size) for layer in self.spiking_layers),
            self.readout.initial_state(batch_size),
        )

    def reset_state(self, state: NetworkState, episode_start: Tensor) -> NetworkState:
        """Zero the state of the streams where ``episode_start`` (``[batch]`` bool) is true."""
        keep = ~episode_start.to(torch.bool)
        layers = tuple(type(s)(*(_mask_rows(x, keep) for x in s)) for s in state.layers)
        return NetworkState(layers, _mask_rows(state.readout, keep))

    def forward(
        self, obs: Tensor, state: NetworkState | None = None, episode_start: Tensor | None = None
    ) -> tuple[Tensor, NetworkState]:
        """One step: ``obs`` ``[batch, in_features]`` -> ``(output [batch, out_features], new state)``."""
        if state is None:
            state = self.initial_state(obs.shape[0])
        elif episode_start is not None:
            state = self.reset_state(state, episode_start)
        x = self.encoder(obs)
        new_layers = []
        for layer, layer_state in zip(self.layers, state.layers, strict=True):
            x, new_state = layer(x, layer_state)
            new_layers.append(new_state)
        out, readout_state = self.readout(x, state.readout)
        return out, NetworkState(tuple(new_layers), readout_state)
