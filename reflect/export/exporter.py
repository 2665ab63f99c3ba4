"""Export an agent (or a checkpoint) to a TorchScript or ONNX file, checked against the eager policy."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reflect.atomic_files import write_bytes_atomic
from reflect.export.module import ExportError, PolicyModule, build_policy_module, policy_metadata

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".ts.pt", "onnx": ".onnx"}
CHECK_STEPS = 64
CHECK_TOLERANCE = 1e-5


def _check_format(export_format: str) -> None:
    if export_format not in FORMATS:
        raise ExportError(f"unknown export format {export_format!r}: choose one of {', '.join(FORMATS)}")


def default_output_path(checkpoint: str | Path, export_format: str) -> Path:
    """``run/final_model.pt`` -> ``run/final_model.ts.pt`` (TorchScript) or ``run/final_model.onnx``."""
    _check_format(export_format)
    path = Path(checkpoint)
    stem = path.name[: -len(".pt")] if path.name.endswith(".pt") else path.stem
    return path.with_name(stem + SUFFIXES[export_format])


def export_bytes(agent: Any, export_format: str, *, batch_size: int | None = None
                 ) -> tuple[bytes, dict[str, Any], PolicyModule]:
    """The exported file's bytes, its metadata and the eager module it was made from."""
    _check_format(export_format)
    if batch_size is not None and batch_size < 1:
        raise ExportError(f"batch size must be >= 1, got {batch_size}")
    if export_format == "onnx":
        from reflect.export.onnx import check_onnx_available

        check_onnx_available()
    module = build_policy_module(agent)
    metadata = policy_metadata(agent, export_format=export_format,
                               batch_size=batch_size if export_format == "onnx" else None)
    if export_format == "torchscript":
        from reflect.export.torchscript import torchscript_bytes

        return torchscript_bytes(module, metadata), metadata, module
    from reflect.export.onnx import onnx_bytes

    obs_dtype = torch.float64 if metadata["obs_dtype"] == "float64" else torch.float32
    data, metadata = onnx_bytes(module, metadata, obs_dtype, batch_size)
    return data, metadata, module


def check_export(data: bytes, export_format: str, module: PolicyModule, metadata: dict[str, Any],
                 *, steps: int = CHECK_STEPS, seed: int = 0) -> float | None:
    """Run the exported file and the eager ``module`` on the same random observations for ``steps``
    steps; returns the largest difference of actions and states (``None`` when onnxruntime is not
    installed to run an ONNX file). Raises :class:`ExportError` above :data:`CHECK_TOLERANCE`."""
    batch = metadata.get("batch_size") or 3
    obs_dtype = np.dtype(metadata["obs_dtype"])
    if export_format == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            return None
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])

        def run(obs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            action, next_state = session.run(None, {"obs": obs, "state": state})
            return action, next_state
    else:
        from reflect.export.torchscript import load_torchscript

        scripted, _ = load_torchscript(data)

        def run(obs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            action, next_state = scripted(torch.from_numpy(obs), torch.from_numpy(state))
            return action.numpy(), next_state.numpy()

    rng = np.random.default_rng(seed)
    state = np.zeros((batch, module.state_size), dtype=np.float32)
    ref_state = torch.from_numpy(state.copy())
    worst = 0.0
    with torch.no_grad():
        for _ in range(steps):
            obs = rng.standard_normal((batch, module.obs_dim)).astype(obs_dtype)
            action, state = run(obs, state)
            ref_action, ref_state = module(torch.from_numpy(obs), ref_state)
            worst = max(worst, float(np.abs(action.astype(np.float64) - ref_action.numpy()).max()),
                        float(np.abs(state - ref_state.numpy()).max()) if state.size else 0.0)
    if worst > CHECK_TOLERANCE:
        raise ExportError(
            f"the exported {export_format} policy differs from the PyTorch policy by {worst:.3g} "
            f"(tolerance {CHECK_TOLERANCE}) on random observations: the exporter or runtime computes "
            "something else; please report this with the checkpoint"
        )
    return worst


def export_policy(agent: Any, path: str | Path, export_format: str = "torchscript", *,
                  batch_size: int | None = None, overwrite: bool = False, check: bool = True
                  ) -> tuple[Path, dict[str, Any]]:
    """Write ``agent``'s deterministic policy to ``path`` (atomically); returns the path and the metadata
    (with ``"check_max_abs_diff"``: the :func:`check_export` result, if ``check``)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"'{path}' already exists; pass --force to overwrite it or choose another --out")
    data, metadata, module = export_bytes(agent, export_format, batch_size=batch_size)
    if check:
        metadata = {**metadata, "check_max_abs_diff": check_export(data, export_format, module, metadata)}
    write_bytes_atomic(path, data)
    return path, metadata


def export_checkpoint(checkpoint: str | Path, export_format: str = "torchscript", *,
                      out: str | Path | None = None, batch_size: int | None = None,
                      overwrite: bool = False, check: bool = True) -> tuple[Path, dict[str, Any]]:
    """Export the policy saved in a ``reflect`` checkpoint (default output: beside it, see
    :func:`default_output_path`)."""
    from reflect.agents.reflect_agent import Reflect
    from reflect.checkpoints import load_checkpoint

    _check_format(export_format)
    checkpoint = Path(checkpoint)
    target = default_output_path(checkpoint, export_format) if out is None else Path(out)
    if target.exists() and target.resolve() == checkpoint.resolve():
        raise ExportError(f"the output '{target}' is the checkpoint itself; choose another --out")
    if target.exists() and not overwrite:
        raise ExportError(f"'{target}' already exists; pass --force to overwrite it or choose another --out")
    if export_format == "onnx":
        from reflect.export.onnx import check_onnx_available

        check_onnx_available()
    agent = Reflect.from_checkpoint(load_checkpoint(checkpoint), restore_env=False)
    try:
        return export_policy(agent, target, export_format, batch_size=batch_size, overwrite=True,
                             check=check)
    finally:
        agent.env.close()
