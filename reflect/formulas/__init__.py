"""Element-wise formulas written once with Python operators, so one definition runs on numpy arrays,
torch tensors and scalars inside compiled kernels. This package imports nothing from the rest of
reflect: every layer above may use it.

* :mod:`~reflect.formulas.leaky` - the leaky integrator (readout and membranes);
* :mod:`~reflect.formulas.obgd` - the overshoot-bounded step size;
* :mod:`~reflect.formulas.td` - the third factor (TD error, reward baseline) and the entropy weight;
* :mod:`~reflect.formulas.gaussian` - the squashed Gaussian policy head;
* :mod:`~reflect.formulas.categorical` - the softmax policy head;
* :mod:`~reflect.formulas.normalize` - the running observation normaliser;
* :mod:`~reflect.formulas.continuous_time` - discrete decays as continuous time constants (NIR exchange).

Neuron models and surrogates are formulas too; they live with the spiking layers as registered
plug-ins (:mod:`reflect.spiking.models`, :mod:`reflect.spiking.surrogate`).
"""
