"""ONNX export: a :class:`~reflect.export.module.PolicyModule` through torch's ``torch.export``-based
exporter (which needs ``onnx`` and ``onnxscript``), with the metadata JSON in the model's
``metadata_props`` under :data:`METADATA_KEY`. The file runs with onnxruntime and numpy alone::

    session = onnxruntime.InferenceSession("final_model.onnx")
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["reflect_policy"])
    state = np.zeros((1, metadata["state_size"]), np.float32)
    action, state = session.run(None, {"obs": obs[None].astype(np.float32), "state": state})

Inputs ``obs`` ``[batch, obs_dim]`` and ``state`` ``[batch, state_size]``; outputs ``action`` and
``next_state``. The batch dimension is dynamic unless a batch size is given.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from reflect.export.module import ExportError, PolicyModule

METADATA_KEY = "reflect_policy"
INPUT_NAMES = ["obs", "state"]
OUTPUT_NAMES = ["action", "next_state"]
INSTALL_HINT = 'pip install "reflect-rl[export]"'


MIN_TORCH = (2, 6)  # the torch.export-based exporter with these arguments


def check_onnx_available() -> None:
    """Raise :class:`ExportError` naming the fix if the exporter's packages are missing or too old."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < MIN_TORCH:
        raise ExportError(
            f"ONNX export needs torch >= {'.'.join(map(str, MIN_TORCH))} (this is {torch.__version__}): "
            "upgrade torch, or export --format torchscript"
        )
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        names = " and ".join(missing)
        raise ExportError(f"ONNX export needs {names}, which is not installed: {INSTALL_HINT}")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines, registry notices and deprecation warnings."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_bytes(module: PolicyModule, metadata: dict[str, Any], obs_dtype: torch.dtype,
               batch_size: int | None = None) -> tuple[bytes, dict[str, Any]]:
    """The serialised ONNX model of ``module`` (a dynamic batch dimension unless ``batch_size``) and
    the metadata stored in it (``metadata`` plus ``onnx_opset``)."""
    check_onnx_available()
    import onnx

    example = 2 if batch_size is None else batch_size  # torch.export specialises dimensions of size 1
    args = (torch.zeros(example, module.obs_dim, dtype=obs_dtype), module.initial_state(example))
    dynamic_shapes = None
    if batch_size is None:
        batch = torch.export.Dim("batch")
        dynamic_shapes = {"obs": {0: batch}, "state": {0: batch}}
    with _quiet_exporter():
        program = torch.onnx.export(
            module, args, None, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
            dynamic_shapes=dynamic_shapes, dynamo=True, external_data=False, verbose=False,
        )
    if program is None:  # pragma: no cover - the dynamo exporter always returns a program
        raise ExportError("torch.onnx.export returned no program")
    model = program.model_proto
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    metadata = {**metadata, "onnx_opset": opset}
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, indent=1)
    model.producer_name = "reflect"
    model.doc_string = "reflect spiking policy: (obs, state) -> (action, next_state); see metadata"
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString()), metadata
