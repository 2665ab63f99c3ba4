"""Neuron models as plug-ins (see :mod:`reflect.spiking.models.registry` for the interface).

Importing this package registers the built-in models; a new model is one module that calls
:func:`register_neuron_model`, plus its import line here.
"""

# each import registers its model (``reflect verify`` and error messages list them in this order)
from reflect.spiking.models import (
    alif,  # noqa: F401
    cuba,  # noqa: F401
    lif,  # noqa: F401
)
from reflect.spiking.models.registry import (
    NeuronModel,
    ParameterSpec,
    neuron_model,
    neuron_model_names,
    register_neuron_model,
)

__all__ = ["NeuronModel", "ParameterSpec", "neuron_model", "neuron_model_names", "register_neuron_model"]
