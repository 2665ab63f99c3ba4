"""Errors that name what is wrong with the data a learner was given, and how to fix it."""

from __future__ import annotations

import math

import numpy as np


def non_finite_error(values: np.ndarray, what: str) -> FloatingPointError:
    """The error for ``values`` (``[N]`` or ``[N, *shape]``, one row per stream) holding NaN or inf:
    it names the streams and, for observations, the dimensions."""
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
    if values.ndim <= 1:
        streams = np.flatnonzero(bad).tolist()
        return FloatingPointError(f"{what} has NaN or inf in streams {streams}: fix the environment that "
                                  "produced it")
    streams = np.flatnonzero(bad.reshape(len(values), -1).any(axis=1)).tolist()
    cells = np.argwhere(bad.any(axis=0))
    dims = [int(c[0]) for c in cells] if values.ndim == 2 else [tuple(int(i) for i in c) for c in cells]
    return FloatingPointError(
        f"{what} has NaN or inf in dimensions {dims} (streams {streams}): fix the environment or clip its "
        "observations before normalising"
    )


def check_finite(values: np.ndarray, what: str) -> None:
    """Raise :func:`non_finite_error` if ``values`` holds NaN or inf (one reduction when it does not)."""
    if math.isfinite(values.sum()):
        return
    if np.isfinite(values).all():  # finite values whose sum overflowed
        return
    raise non_finite_error(values, what)
