"""Run folders.

Every training run gets its own folder, ``<root>/<env>__<agent>__<seed>__<YYYYmmdd-HHMMSS>`` by default,
holding ``config.yaml``, logs, plots and a ``checkpoints/`` folder. A folder is never reused: a name
collision gets a ``-1``, ``-2``, ... suffix, and a folder the user names explicitly must be new or empty.

Files in it are written atomically (:mod:`reflect.atomic_files`).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

__all__ = [
    "CHECKPOINTS_DIR",
    "TIMESTAMP_FORMAT",
    "RunDirError",
    "create_run_dir",
    "run_name",
]

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
CHECKPOINTS_DIR = "checkpoints"
_MAX_SUFFIX = 10_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class RunDirError(ValueError):
    """A run folder cannot be created or would overwrite an existing run."""


def run_name(env_id: str, agent: str, seed: int, timestamp: str) -> str:
    """``f"{env}__{agent}__{seed}__{timestamp}"``, with characters that are unsafe in file names
    (anything but letters, digits, ``.``, ``_`` and ``-``) replaced by ``_``, so that ``ALE/Pong-v5``
    becomes ``ALE_Pong-v5``.
    """
    return "__".join((_safe(env_id), _safe(agent), str(int(seed)), _safe(timestamp)))


def create_run_dir(
    root: Path | str,
    env_id: str,
    agent: str,
    seed: int,
    explicit: Path | str | None = None,
    now: datetime | None = None,
) -> Path:
    """Create a new run folder (with a ``checkpoints/`` folder inside) and return its path.

    With ``explicit``, that folder itself is the run folder: it is created if needed and must be empty.
    Otherwise the folder is ``root/run_name(env_id, agent, seed, <now as YYYYmmdd-HHMMSS>)``, with
    ``-1``, ``-2``, ... appended if a folder of that name already exists.

    Raises:
        RunDirError: ``explicit`` already holds files or is a file, or the folder cannot be created
            (the message names the path and the reason from the operating system).
    """
    if explicit is not None:
        run_dir = Path(explicit)
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"run directory '{run_dir}' is a file; choose another directory")
        try:
            occupied = run_dir.is_dir() and any(run_dir.iterdir())
        except OSError as error:
            raise _os_error(run_dir, error) from error
        if occupied:
            raise RunDirError(
                f"run directory '{run_dir}' already holds files; choose another directory or remove it"
            )
        _make_dirs(run_dir, exist_ok=True)
    else:
        stamp = (now or datetime.now()).strftime(TIMESTAMP_FORMAT)
        base = Path(root) / run_name(env_id, agent, seed, stamp)
        _make_dirs(base.parent, exist_ok=True)
        run_dir = _claim_new_dir(base)
    _make_dirs(run_dir / CHECKPOINTS_DIR, exist_ok=True)
    return run_dir


def _claim_new_dir(base: Path) -> Path:
    """Create ``base``, or ``base-1``, ``base-2``, ... (the first free one); ``mkdir`` is the arbiter, so
    two processes starting at the same second cannot end up in the same folder."""
    for index in range(_MAX_SUFFIX):
        candidate = base if index == 0 else base.with_name(f"{base.name}-{index}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise _os_error(candidate, error) from error
        return candidate
    raise RunDirError(f"too many run directories named '{base}-N'; choose another root directory")


def _make_dirs(path: Path, *, exist_ok: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except OSError as error:
        raise _os_error(path, error) from error


def _os_error(path: Path, error: OSError) -> RunDirError:
    reason = error.strerror or str(error)
    return RunDirError(f"cannot create run directory '{path}': {reason}; choose a writable location")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)
