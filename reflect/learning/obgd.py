"""The overshoot-bounded step size of ObGD (Elsayed, Vasan and Mahmood, 2024).

A TD update ``w <- w + alpha * delta * z`` changes the prediction by about ``alpha * delta * ||z||_1``
in the worst case; when that would exceed the error itself the step overshoots. ObGD shrinks the step::

    step = alpha / max(1, kappa * alpha * max(|delta|, 1) * ||z||_1)

``kappa >= 1`` sets how far below the overshoot boundary the step stays.
"""

from __future__ import annotations

import numpy as np


def obgd_step_size(alpha: float, kappa: float, delta: float, trace_l1: float) -> float:
    """Bounded step size for one stream: scalars in, scalar out."""
    bound = kappa * alpha * max(abs(delta), 1.0) * trace_l1
    return alpha / bound if bound > 1.0 else alpha


def obgd_step_sizes(alpha: float, kappa: float, delta: np.ndarray, trace_l1: np.ndarray) -> np.ndarray:
    """Vectorised :func:`obgd_step_size` over streams: ``delta``, ``trace_l1`` ``[B]`` -> ``[B]``."""
    bound = kappa * alpha * np.maximum(np.abs(delta), 1.0) * trace_l1
    return alpha / np.maximum(bound, 1.0)
