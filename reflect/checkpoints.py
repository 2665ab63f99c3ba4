"""Checkpoint files: a dict of tensors and plain values, saved atomically, loaded with ``weights_only``.

A checkpoint payload may hold only tensors, ``int``, ``float``, ``bool``, ``str``, ``None``, and lists,
tuples and dicts of those (state dicts included), so that ``torch.load(..., weights_only=True)``, which
never runs code from the file, can always read it back. :func:`save_checkpoint` checks this before
writing and names the offending key; it also stamps the payload with ``"format": "reflect-checkpoint"``,
which :func:`load_checkpoint` requires.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any

import torch

from reflect.atomic_files import open_atomic

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "reflect-checkpoint"
FORMAT_KEY = "format"

_SCALARS = (int, float, bool, str, type(None))
_CONTAINERS = (list, tuple, dict, collections.OrderedDict)
_TENSORS = (torch.Tensor, torch.nn.Parameter)
_MAX_REASON = 120


class CheckpointError(ValueError):
    """A checkpoint cannot be saved or loaded; the message names the file or key and the problem."""


def save_checkpoint(payload: dict[str, Any], path: Path | str) -> None:
    """Save ``payload`` to ``path`` atomically (temp file beside it, ``torch.save``, fsync, rename).

    The file gets ``payload`` plus ``"format": "reflect-checkpoint"`` when that key is absent; the
    caller's dict is not modified. Missing parent folders are created. If saving fails midway, the
    previous file at ``path`` (if any) is left intact.

    Raises:
        CheckpointError: ``payload`` is not a dict, holds a value that is not a tensor or plain value
            (the message gives its dotted key), or has a ``"format"`` other than ``"reflect-checkpoint"``.
    """
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint payload must be a dict, got {type(payload).__name__}")
    found = payload.get(FORMAT_KEY, CHECKPOINT_FORMAT)
    if found != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint payload has {FORMAT_KEY}={found!r}; "
            f"leave the key out or set it to {CHECKPOINT_FORMAT!r}"
        )
    _check_plain(payload, "", set())
    with open_atomic(path) as file:
        torch.save({**payload, FORMAT_KEY: CHECKPOINT_FORMAT}, file)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint`, onto the CPU, with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, is a directory, cannot be read, is corrupt or truncated,
            is not a torch file, or does not hold a dict with ``"format": "reflect-checkpoint"``.
    """
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"checkpoint '{file}' does not exist")
    if file.is_dir():
        raise CheckpointError(f"checkpoint '{file}' is a directory; give the path of a checkpoint file")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint '{file}': {error.strerror or error}") from error
    except Exception as error:  # torch raises many types for a bad file: RuntimeError, EOFError, ...
        raise CheckpointError(
            f"checkpoint '{file}' is corrupt or not a reflect checkpoint: {_short_reason(error)}"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"checkpoint '{file}' is not a reflect checkpoint: it holds a {type(payload).__name__}, "
            f"not a dict with {FORMAT_KEY}={CHECKPOINT_FORMAT!r}"
        )
    if payload.get(FORMAT_KEY) != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint '{file}' is not a reflect checkpoint: "
            f"it has no {FORMAT_KEY}={CHECKPOINT_FORMAT!r} entry"
        )
    return payload


def _check_plain(value: Any, key: str, parents: set[int]) -> None:
    """Raise CheckpointError naming the dotted key of the first value ``weights_only`` could not load."""
    kind = type(value)
    if kind in _TENSORS or kind in _SCALARS:
        return
    if kind not in _CONTAINERS:
        raise CheckpointError(
            f"checkpoint value at '{key or '<payload>'}' is a {_qualified(kind)}; checkpoints hold only "
            "tensors, int, float, bool, str, None, lists, tuples and dicts: convert it (e.g. with .item(), "
            "float() or .tolist())"
        )
    if id(value) in parents:
        raise CheckpointError(f"checkpoint value at '{key}' contains itself; checkpoints must be trees")
    parents.add(id(value))
    if isinstance(value, dict):
        for item_key, item in value.items():
            if type(item_key) not in (str, int):
                raise CheckpointError(
                    f"checkpoint dict at '{key or '<payload>'}' has a key {item_key!r} of type "
                    f"{_qualified(type(item_key))}; use str or int keys"
                )
            _check_plain(item, f"{key}.{item_key}" if key else str(item_key), parents)
    else:
        for index, item in enumerate(value):
            _check_plain(item, f"{key}[{index}]", parents)
    parents.discard(id(value))


def _short_reason(error: BaseException) -> str:
    """One short line on why torch could not load a file (torch's own messages run to paragraphs)."""
    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError) and text.startswith("Weights only load failed"):
        return "it holds objects other than tensors and plain values"
    if isinstance(error, EOFError):
        return "the file ends early (empty or truncated)"
    if isinstance(error, KeyError | pickle.UnpicklingError):
        return "it is not a file written by torch.save"
    first = text.splitlines()[0] if text else type(error).__name__
    first = first.split(". ")[0].rstrip(".")  # the first sentence: torch appends advice after it
    return first if len(first) <= _MAX_REASON else first[: _MAX_REASON - 3] + "..."


def _qualified(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
