"""Atomic file writes: a crash never leaves a half-written file where a complete one was expected.

A temporary file is written beside the target, flushed and fsynced, then renamed over it with
``os.replace`` (atomic on POSIX and Windows); the folder is fsynced so the rename itself survives a
power cut where the platform allows it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["open_atomic", "write_bytes_atomic", "write_text_atomic"]


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
