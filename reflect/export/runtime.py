"""Run an exported policy with torch alone (TorchScript) or with onnxruntime and numpy alone (ONNX).

This module imports nothing else from reflect and neither torch nor onnxruntime until a file of that
format is loaded, so a controller can use it without the training stack (or copy it)::

    policy = load_exported("final_model.onnx")        # or "final_model.ts.pt"
    state = policy.initial_state()                     # zeros [1, state_size]: a new episode
    action, state = policy.step(obs, state)            # obs [obs_dim] or [B, obs_dim]
    state[done] = 0.0                                  # streams whose episode begins start from zeros

``policy.metadata`` holds what the export recorded: ``obs_dim``, ``obs_dtype``, ``action`` (kind, shape,
bounds), ``state_size`` and ``state_layout``, ``env_id``, ``reflect_version``.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

TORCHSCRIPT_METADATA_FILE = "reflect_policy.json"
ONNX_METADATA_KEY = "reflect_policy"


class ExportedPolicy:
    """An exported policy file, loaded for inference: ``step(obs, state) -> (action, next_state)``.

    Args:
        path: a ``.ts.pt`` (TorchScript) or ``.onnx`` file written by ``reflect export``.
        num_threads: onnxruntime intra-op threads (1 suits batch-1 control loops; TorchScript uses
            torch's setting, ``torch.set_num_threads``).
    """

    def __init__(self, path: str | Path, *, num_threads: int = 1) -> None:
        self.path = Path(path)
        data = self.path.read_bytes()
        self._torch_module: Any = None
        self._session: Any = None
        if zipfile.is_zipfile(io.BytesIO(data)):
            import torch

            extra = {TORCHSCRIPT_METADATA_FILE: ""}
            with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; it still loads
                warnings.simplefilter("ignore", DeprecationWarning)
                self._torch_module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
            self.format = "torchscript"
            self.metadata: dict[str, Any] = json.loads(extra[TORCHSCRIPT_METADATA_FILE])
        else:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
            self.format = "onnx"
            self.metadata = json.loads(self._session.get_modelmeta().custom_metadata_map[ONNX_METADATA_KEY])
        self.obs_dim = int(self.metadata["obs_dim"])
        self.state_size = int(self.metadata["state_size"])
        self.obs_dtype = np.dtype(self.metadata["obs_dtype"])

    def initial_state(self, batch_size: int = 1) -> np.ndarray:
        """The zero state ``[batch_size, state_size]`` (float32) that every episode starts from."""
        return np.zeros((batch_size, self.state_size), dtype=np.float32)

    def step(self, obs: Any, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One step. ``obs``: ``[obs_dim]`` (one stream) or ``[B, obs_dim]``; ``state``: ``[B, state_size]``
        (``None``: a new episode). Returns ``(action, next_state)``; for one stream ``action`` is ``[]``
        (Discrete) or ``[A]`` (Box), else ``[B]`` / ``[B, A]``."""
        array = np.asarray(obs, dtype=self.obs_dtype)
        single = array.ndim == 1
        array = array.reshape(-1, self.obs_dim)
        if state is None:
            state = self.initial_state(array.shape[0])
        state = np.asarray(state, dtype=np.float32)
        if self._session is not None:
            action, next_state = self._session.run(None, {"obs": array, "state": state})
        else:
            import torch

            with torch.inference_mode():
                out = self._torch_module(torch.from_numpy(array), torch.from_numpy(state))
            action, next_state = out[0].numpy(), out[1].numpy()
        return (action[0] if single else action), next_state

    __call__ = step


def load_exported(path: str | Path, *, num_threads: int = 1) -> ExportedPolicy:
    """Load a policy written by ``reflect export`` (the format is detected from the file)."""
    return ExportedPolicy(path, num_threads=num_threads)
