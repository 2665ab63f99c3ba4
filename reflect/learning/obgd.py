"""The overshoot-bounded step size of ObGD (the formula lives in :mod:`reflect.formulas.obgd`)."""

from __future__ import annotations

import numpy as np

from reflect.formulas.obgd import obgd_step_size


def obgd_step_sizes(alpha: float, kappa: float, delta: np.ndarray, trace_l1: np.ndarray) -> np.ndarray:
    """:func:`obgd_step_size` per stream: ``delta``, ``trace_l1`` ``[B]`` -> ``[B]``."""
    return np.array([obgd_step_size(alpha, kappa, float(d), float(n)) for d, n in zip(delta, trace_l1,
                                                                                        strict=True)])


__all__ = ["obgd_step_size", "obgd_step_sizes"]
