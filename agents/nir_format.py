"""What reflect's NIR export writes and its NIR import reads, beside the primitives themselves.

NIR (the Neuromorphic Intermediate Representation, the ``nir`` package) describes neurons in continuous
time; reflect's are discrete. The graph a reflect export writes is plain NIR that any NIR reader can run;
reflect adds, under the metadata key :data:`METADATA_KEY` (a JSON string, so any NIR writer keeps it):

* on the graph: the time step ``dt`` the constants were converted at, the discretisation
  (forward Euler), the reset (by subtraction), the environment, the action head and the whole config,
  so that importing the graph back gives the same agent;
* on the observation normaliser's ``Affine`` node: its running statistics (:data:`ROLE_NORMALIZER`);
* on a leaky readout's ``LI`` node: the exact discrete decay (:data:`ROLE_READOUT`);
* on the ``Linear`` self-connection that carries a subtractive reset: :data:`ROLE_RESET`.

A reader that ignores the metadata computes the same network. ``docs/NIR.md`` gives the mapping.
"""

from __future__ import annotations

import json
import math
from typing import Any

METADATA_KEY = "reflect"
FORMAT = "reflect-nir-policy"
FORMAT_VERSION = 1
# the time step when neither the caller nor the graph names one: snnTorch's NIR export and import use it
DEFAULT_DT = 1e-4
DISCRETIZATION = "forward-euler"
RESET = "subtract"

ROLE_NORMALIZER = "observation-normalizer"
ROLE_READOUT = "readout-leak"
ROLE_RESET = "reset"

NIR_INSTALL_HINT = 'pip install "reflect-rl[nir]"'


class NIRImportError(ValueError):
    """A NIR graph cannot become a reflect network; the message names the node and what to do."""


def require_nir(what: str, error: type[Exception]) -> Any:
    """The ``nir`` module; raises ``error`` naming ``what`` needs it and how to install it."""
    try:
        import nir
    except ImportError as missing:
        raise error(f"{what} needs the nir package, which is not installed: {NIR_INSTALL_HINT}") from missing
    return nir


def check_dt(dt: float, error: type[Exception]) -> float:
    """``dt`` as a float, if it is a finite number of seconds > 0; else ``error``."""
    value = float(dt)
    if not (math.isfinite(value) and value > 0.0):
        raise error(f"the time step dt must be a finite number of seconds > 0, got {dt!r}")
    return value


def encode(entries: dict[str, Any]) -> dict[str, str]:
    """``entries`` as a NIR ``metadata`` mapping: ``{METADATA_KEY: json}``."""
    return {METADATA_KEY: json.dumps(entries, sort_keys=True)}


def decode(node: Any) -> dict[str, Any]:
    """The reflect entries of a NIR node's (or graph's) ``metadata``; ``{}`` when it has none."""
    metadata = getattr(node, "metadata", None)
    if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
        return {}
    text = metadata[METADATA_KEY]
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        value = json.loads(str(text))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
