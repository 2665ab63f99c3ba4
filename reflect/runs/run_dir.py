"""Run folders and atomic file writes.

Every training run gets its own folder, ``<root>/<env>__<agent>__<seed>__<YYYYmmdd-HHMMSS>`` by default,
holding ``config.yaml``, logs, plots and a ``checkpoints/`` folder. A folder is never reused: a name
collision gets a ``-1``, ``-2``, ... suffix, and a folder the user names explicitly must be new or empty.

Files that readers may look at while a run is going (configs, summaries, checkpoints, plots) are
written atomically: to a temporary file in the same folder, flushed to disk, then renamed over the
target, so a crash leaves either the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHECKPOINTS_DIR",
    "TIMESTAMP_FORMAT",
    "RunDirError",
    "create_run_dir",
    "open_atomic",
    "run_name",
    "write_bytes_atomic",
    "write_text_atomic",
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


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`open_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; see :func:`open_atomic`."""
    with open_atomic(path) as file:
        file.write(data)


@contextmanager
def open_atomic(path: Path | str) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on a clean exit, flush and fsync it and
    rename it over ``path`` (``os.replace``). On an exception the temporary file is removed and ``path``
    is left as it was. Missing parent folders are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for an ordinary new file
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable where the platform allows it (POSIX); best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
