"""Pure array code below every other layer: compiled (numba) or interpreted templates.

* :mod:`~reflect.kernels.compiler` - numba's ``jit`` with a disk cache, and ``bind``;
* :mod:`~reflect.kernels.specialize` - a template module's functions specialised per plug-in (neuron
  model, surrogate, head, backend sub-steps), compiled or interpreted;
* :mod:`~reflect.kernels.network` - the template of a spiking network's forward step with its
  eligibility traces, backward pass and stream reset (loops, compiled per neuron model);
* :mod:`~reflect.kernels.learning` - the compiled sub-steps of the learner (heads, bounded update,
  normaliser, trace decay);
* :mod:`~reflect.kernels.reflect_step` - the REFLECT act and observe: one orchestration, compiled for the
  compiled backend and interpreted for the array backends.

Nothing here imports from the rest of reflect except :mod:`reflect.formulas`; the layers above bind
what a template needs.
"""

from reflect.kernels.compiler import INSTALL_HINT, bind, compiled_available, jit, numba_version

__all__ = ["INSTALL_HINT", "bind", "compiled_available", "jit", "numba_version"]
