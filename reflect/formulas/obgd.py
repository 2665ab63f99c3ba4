"""The overshoot-bounded step size of ObGD (Elsayed, Vasan and Mahmood, 2024).

A TD update ``w <- w + alpha * delta * z`` changes the prediction by about ``alpha * delta * ||z||_1``
in the worst case; when that would exceed the error itself the step overshoots. ObGD shrinks the step::

    step = alpha / max(1, kappa * alpha * max(|delta|, 1) * ||z||_1)

``kappa >= 1`` sets how far below the overshoot boundary the step stays. The update of a parameter
group over ``B`` streams is then ``theta <- theta + (1 / B) sum_b step_b delta_b z_b``.
"""

from __future__ import annotations


def obgd_step_size(alpha, kappa, delta, trace_l1):
    """Bounded step size for one stream: scalars in, scalar out."""
    bound = kappa * alpha * max(abs(delta), 1.0) * trace_l1
    return alpha / bound if bound > 1.0 else alpha
