"""TorchScript export: a scripted :class:`~reflect.export.module.PolicyModule` with its metadata inside.

The file loads with torch alone (``torch.jit.load``); the metadata JSON travels in the archive as the
extra file :data:`METADATA_FILE`::

    extra = {"reflect_policy.json": ""}
    policy = torch.jit.load("final_model.ts.pt", _extra_files=extra)
    metadata = json.loads(extra["reflect_policy.json"])
    state = policy.initial_state(1)
    with torch.inference_mode():                # faster than no_grad for TorchScript
        action, state = policy(obs, state)      # obs: [1, obs_dim] tensor
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import torch

from reflect.export.module import PolicyModule

METADATA_FILE = "reflect_policy.json"


def torchscript_bytes(module: PolicyModule, metadata: dict[str, Any]) -> bytes:
    """The TorchScript archive of ``module``: scripted, not traced, so no batch size is baked in. (Not
    frozen: a frozen graph saved no time per step here and broke under torch's legacy executor.)"""
    with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; it still loads everywhere
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module.eval())
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer, _extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})
    return buffer.getvalue()


def load_torchscript(data: bytes) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """The scripted policy and its metadata from :func:`torchscript_bytes`' archive."""
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[METADATA_FILE])
