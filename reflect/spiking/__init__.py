"""Spiking neurons, layers, encoders and networks (PyTorch), with neuron models and surrogates as
registered plug-ins."""

from reflect.spiking.encoders import (
    ENCODERS,
    DirectEncoder,
    Encoder,
    PoissonEncoder,
    PopulationEncoder,
    PosNegEncoder,
    make_encoder,
)
from reflect.spiking.layers import LeakyReadout, SpikingLayer, Spread
from reflect.spiking.models import (
    NeuronModel,
    ParameterSpec,
    neuron_model,
    neuron_model_names,
    register_neuron_model,
)
from reflect.spiking.network import NetworkState, SpikingNetwork
from reflect.spiking.neurons import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    alif_step,
    leaky_integrator_step,
    lif_step,
    neuron_step,
    state_type,
)
from reflect.spiking.surrogate import (
    SURROGATES,
    Surrogate,
    SurrogateFunction,
    register_surrogate,
    spike,
    surrogate_derivative,
    surrogate_names,
)

__all__ = [
    "ENCODERS", "NEURONS", "SURROGATES",
    "ALIFParameters", "ALIFState", "DirectEncoder", "Encoder", "LIFParameters", "LIFState",
    "LeakyReadout", "NetworkState", "NeuronModel", "ParameterSpec", "PoissonEncoder", "PopulationEncoder",
    "PosNegEncoder", "SpikingLayer", "SpikingNetwork", "Spread", "Surrogate", "SurrogateFunction",
    "alif_step", "leaky_integrator_step", "lif_step", "make_encoder", "neuron_model", "neuron_model_names",
    "neuron_step", "register_neuron_model", "register_surrogate", "spike", "state_type",
    "surrogate_derivative", "surrogate_names",
]


def __getattr__(name: str) -> object:
    if name == "NEURONS":  # the registered neuron models, read when asked (plug-ins may add some)
        return neuron_model_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
