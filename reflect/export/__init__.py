"""Export a trained policy for deployment: a stateful, inference-only TorchScript or ONNX file, or the
actor as a NIR graph for neuromorphic simulators and hardware (:mod:`reflect.export.nir`).

    reflect export --checkpoint runs/<run>/final_model.pt --format torchscript|onnx|nir

The exported policy maps ``(obs [B, obs_dim], state [B, state_size])`` to ``(action, next_state)`` with
the observation statistics, weights and action-head constants inside; a new episode starts from a zero
state. :func:`~reflect.export.runtime.load_exported` runs such a file with torch alone (TorchScript) or
with onnxruntime and numpy alone (ONNX). Attributes are imported on first use, so
``reflect.export.runtime`` pulls in neither the exporter nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExportError": "reflect.export.module",
    "PolicyModule": "reflect.export.module",
    "build_policy_module": "reflect.export.module",
    "policy_metadata": "reflect.export.module",
    "state_layout": "reflect.export.module",
    "FORMATS": "reflect.export.exporter",
    "default_output_path": "reflect.export.exporter",
    "export_checkpoint": "reflect.export.exporter",
    "export_policy": "reflect.export.exporter",
    "ExportedPolicy": "reflect.export.runtime",
    "load_exported": "reflect.export.runtime",
    "export_nir": "reflect.export.nir",
    "nir_graph": "reflect.export.nir",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reflect.export' has no attribute {name!r}")
