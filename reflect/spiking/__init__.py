"""Spiking neurons, layers, encoders and networks (PyTorch)."""

from reflect.spiking.encoders import (
    ENCODERS,
    DirectEncoder,
    Encoder,
    PoissonEncoder,
    PopulationEncoder,
    PosNegEncoder,
    make_encoder,
)
from reflect.spiking.layers import NEURONS, LeakyReadout, SpikingLayer
from reflect.spiking.network import NetworkState, SpikingNetwork
from reflect.spiking.neurons import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    alif_step,
    leaky_integrator_step,
    lif_step,
)
from reflect.spiking.surrogate import SURROGATES, Surrogate, spike, surrogate_derivative

__all__ = [
    "ENCODERS", "NEURONS", "SURROGATES",
    "ALIFParameters", "ALIFState", "DirectEncoder", "Encoder", "LIFParameters", "LIFState",
    "LeakyReadout", "NetworkState", "PoissonEncoder", "PopulationEncoder", "PosNegEncoder",
    "SpikingLayer", "SpikingNetwork", "Surrogate",
    "alif_step", "leaky_integrator_step", "lif_step", "make_encoder", "spike", "surrogate_derivative",
]
