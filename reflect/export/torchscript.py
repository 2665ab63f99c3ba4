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
from torch import Tensor, nn

from reflect.export.module import PolicyModule

METADATA_FILE = "reflect_policy.json"


class _Shell(nn.Module):
    """The traced policy with ``initial_state`` beside it, scripted."""

    def __init__(self, core: nn.Module, state_size: int) -> None:
        super().__init__()
        self.core = core
        self.state_size = state_size

    def forward(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.core(obs, state)

    @torch.jit.export
    def initial_state(self, batch_size: int) -> Tensor:
        """The zero state ``[batch_size, state_size]`` of streams whose episode begins."""
        return torch.zeros(batch_size, self.state_size, dtype=torch.float32)


def torchscript_bytes(module: PolicyModule, metadata: dict[str, Any]) -> bytes:
    """The TorchScript archive of ``module``: its forward traced (the neuron model's formulas are plain
    Python) on a batch of 2, which keeps the batch dimension dynamic, inside a scripted shell that adds
    ``initial_state``. (Not frozen: a frozen graph saved no time per step here and broke under torch's
    legacy executor.)"""
    obs_dtype = torch.float64 if metadata["obs_dtype"] == "float64" else torch.float32
    example = (torch.zeros(2, module.obs_dim, dtype=obs_dtype), module.initial_state(2))
    with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; it still loads everywhere
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
        scripted = torch.jit.script(_Shell(traced, module.state_size))
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
