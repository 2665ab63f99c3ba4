"""The leaky integrator, one definition for every leaky quantity of the network::

    x_t = d * x_{t-1} + (1 - d) * y_t

* the readout (no spikes), per output: ``o_t = d * o_{t-1} + (1 - d) * y_t`` (``d = 0``: a linear readout
  of the current input); its eligibility trace of the presynaptic vector ``z`` and its gradient follow
  from the same formula: ``eps_t = d * eps_{t-1} + (1 - d) * z_t`` and ``dL/dW = eps_t^T dL/do_t``;
* the membrane of the LIF, ALIF and CUBA neuron models after the reset ``r_t``:
  ``v_t = beta * (v_{t-1} - r_t) + (1 - beta) * y_t``.
"""

from __future__ import annotations


def leaky_integrate(x, y, decay):
    """``x_t`` from ``x_{t-1}``, the input ``y_t`` and the decay ``d`` (numbers or arrays)."""
    return decay * x + (1.0 - decay) * y
