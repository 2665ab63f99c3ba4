"""The leaky-integrator readout (no spikes), per output::

    o_t = d * o_{t-1} + (1 - d) * y_t          (d = 0: a linear readout of the current input)

Its eligibility trace of the presynaptic vector ``z`` and its gradient follow from the same formula:
``eps_t = d * eps_{t-1} + (1 - d) * z_t`` and ``dL/dW = eps_t^T dL/do_t``.
"""

from __future__ import annotations


def leaky_integrate(o, y, decay):
    """``o_t`` from ``o_{t-1}``, the input ``y_t`` and the decay ``d``."""
    return decay * o + (1.0 - decay) * y
