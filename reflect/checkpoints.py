"""Checkpoint files: a dict of tensors and plain values, saved atomically, loaded with ``weights_only``.

A checkpoint payload may hold only tensors, ``int``, ``float``, ``bool``, ``str``, ``None``, and lists,
tuples and dicts of those (state dicts included), so that ``torch.load(..., weights_only=True)``, which
never runs code from the file, can always read it back. :func:`save_checkpoint` checks this before
writing and names the offending key; it also stamps the payload with ``"format": "reflect-checkpoint"``,
which :func:`load_checkpoint` requires.

Writes are atomic (:mod:`reflect.atomic_files`): a process killed at any moment leaves either the
previous file or the new one under the checkpoint's name, never a mix, plus at most a hidden temporary
file that :func:`latest_checkpoint` and every reader ignore. :func:`checkpoint_bytes` serialises a
payload in memory, so a caller whose disk is full can keep the bytes and write them later.
"""

from __future__ import annotations

import collections
import io
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from reflect.atomic_files import write_bytes_atomic

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "NonFiniteStateError",
    "checkpoint_bytes",
    "checkpoint_step",
    "find_non_finite",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "reflect-checkpoint"
FORMAT_KEY = "format"

_SCALARS = (int, float, bool, str, type(None))
_CONTAINERS = (list, tuple, dict, collections.OrderedDict)
_TENSORS = (torch.Tensor, torch.nn.Parameter)
_MAX_REASON = 120
_STEP_NAME = re.compile(r"step_(\d+)\.pt")


class CheckpointError(ValueError):
    """A checkpoint cannot be saved or loaded; the message names the file or key and the problem."""


class NonFiniteStateError(FloatingPointError):
    """A payload to save holds NaN or inf (a learner's update went wrong); ``key`` is its dotted key.
    Such a state is never written: it would poison every run resumed from it."""

    def __init__(self, key: str) -> None:
        super().__init__(f"not saving a checkpoint whose '{key}' holds NaN or inf")
        self.key = key


def save_checkpoint(payload: dict[str, Any], path: Path | str) -> None:
    """Save ``payload`` to ``path`` atomically (temp file beside it, ``torch.save``, fsync, rename).

    The file gets ``payload`` plus ``"format": "reflect-checkpoint"`` when that key is absent; the
    caller's dict is not modified. Missing parent folders are created. If saving fails midway (an
    exception, a full disk, the process killed), the previous file at ``path`` (if any) is left intact.

    Raises:
        CheckpointError: ``payload`` is not a dict, holds a value that is not a tensor or plain value
            (the message gives its dotted key), or has a ``"format"`` other than ``"reflect-checkpoint"``.
        NonFiniteStateError: a floating-point tensor holds NaN or inf (nothing is written).
        OSError: the file cannot be written (no space left, no permission, read-only file system).
    """
    write_bytes_atomic(path, checkpoint_bytes(payload))


def checkpoint_bytes(payload: dict[str, Any]) -> bytes:
    """The bytes :func:`save_checkpoint` writes for ``payload`` (checked the same way), serialised in
    memory: write them with :func:`reflect.atomic_files.write_bytes_atomic`, now or later."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint payload must be a dict, got {type(payload).__name__}")
    found = payload.get(FORMAT_KEY, CHECKPOINT_FORMAT)
    if found != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint payload has {FORMAT_KEY}={found!r}; "
            f"leave the key out or set it to {CHECKPOINT_FORMAT!r}"
        )
    _check_plain(payload, "", set())
    bad = find_non_finite(payload)
    if bad is not None:
        raise NonFiniteStateError(bad)
    buffer = io.BytesIO()
    torch.save({**payload, FORMAT_KEY: CHECKPOINT_FORMAT}, buffer)
    return buffer.getvalue()


def find_non_finite(payload: Any, key: str = "") -> str | None:
    """The dotted key of the first floating-point tensor in ``payload`` holding NaN or inf, else None.

    A learner whose update went wrong has NaN in its weights or traces; a checkpoint of that state
    would poison every run resumed from it, so callers check before saving over a good one.
    """
    if isinstance(payload, torch.Tensor):
        if (payload.is_floating_point() or payload.is_complex()) and not bool(torch.isfinite(payload).all()):
            return key or "<payload>"
        return None
    if isinstance(payload, dict):
        items: Any = ((f"{key}.{k}" if key else str(k), v) for k, v in payload.items())
    elif isinstance(payload, (list, tuple)):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(payload))
    else:
        return None
    for item_key, value in items:
        found = find_non_finite(value, item_key)
        if found is not None:
            return found
    return None


def checkpoint_step(path: Path | str) -> int | None:
    """``N`` for a file named ``step_<N>.pt``, else None."""
    match = _STEP_NAME.fullmatch(Path(path).name)
    return None if match is None else int(match.group(1))


def latest_checkpoint(directory: Path | str, *, verify: bool = True) -> Path | None:
    """The ``step_<N>.pt`` in ``directory`` with the largest ``N``, or None if there is none.

    Temporary files left by a killed writer are never candidates (their names differ). With
    ``verify``, a file that does not load (e.g. damaged by a disk fault after it was written) is
    skipped for the next newest one.
    """
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return None
    steps = sorted(
        ((step, path) for path in entries if (step := checkpoint_step(path)) is not None and path.is_file()),
        reverse=True,
    )
    for _, path in steps:
        if not verify:
            return path
        try:
            load_checkpoint(path)
        except CheckpointError:
            continue
        return path
    return None


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
