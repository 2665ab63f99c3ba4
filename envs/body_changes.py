"""Change a simulated MuJoCo robot in place, mid-run: the test of an agent that keeps learning.

:func:`change_body` scales the first actuator's gear (the force per unit of action) or the mass of the
last body (the pole of InvertedPendulum, the tip of most chains) of a Gymnasium MuJoCo env. Used by
``examples/mujoco_adaptation.py`` (in a fixed-rate control loop) and ``benchmarks/adaptation.py``
(steps to recover, at full speed).
"""

from __future__ import annotations

import math
from typing import Any

BODY_CHANGES = ("gear", "mass")


def change_body(env: Any, what: str, factor: float) -> str:
    """Multiply ``what`` (``"gear"`` or ``"mass"``) of ``env``'s MuJoCo model by ``factor``, in place.

    Returns a one-line description (``"motor gear 100 -> 5"``). Raises ``ValueError`` for an unknown
    ``what``, a factor that is not a positive finite number, or an env without a MuJoCo model.
    """
    if what not in BODY_CHANGES:
        raise ValueError(f"unknown body change {what!r}: pass one of {', '.join(BODY_CHANGES)}")
    if not (math.isfinite(factor) and factor > 0.0):
        raise ValueError(f"the factor must be a positive finite number, got {factor}")
    model = getattr(env.unwrapped, "model", None)
    if model is None or not hasattr(model, "actuator_gear"):
        raise ValueError(f"{type(env.unwrapped).__name__} has no MuJoCo model to change: pass a MuJoCo env "
                         "(e.g. InvertedPendulum-v5)")
    if what == "gear":
        before = float(model.actuator_gear[0, 0])
        model.actuator_gear[0, 0] = before * factor
        return f"motor gear {before:g} -> {model.actuator_gear[0, 0]:g}"
    body = model.nbody - 1
    before = float(model.body_mass[body])
    model.body_mass[body] = before * factor
    return f"mass of body '{model.body(body).name}' {before:.2f} -> {model.body_mass[body]:.2f} kg"
