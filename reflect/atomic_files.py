"""Atomic file writes: a crash never leaves a half-written file where a complete one was expected.

A temporary file is written beside the target, flushed and fsynced, then renamed over it with
``os.replace`` (atomic on POSIX and Windows); the folder is fsynced so the rename itself survives a
power cut where the platform allows it.

A process killed while writing (``kill -9``, a power cut) leaves at most a temporary file named
``.<name>.<pid>.<random>.tmp`` beside the target, never a half-written target: readers never look at
those names, and :func:`remove_stale_temp_files` deletes the ones whose writer is no longer running.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, NoReturn

__all__ = [
    "check_can_write",
    "is_temp_file",
    "open_atomic",
    "remove_stale_temp_files",
    "write_bytes_atomic",
    "write_probe",
    "write_text_atomic",
]

# ".<target name>.<pid>.<8 hex digits>.tmp", as open_atomic names its temporary files
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


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

    An ``OSError`` from writing names ``path`` (its ``filename``), never the temporary file, which
    the caller has never heard of.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(_temp_name(target.name, os.getpid()))
    try:
        # os.open with mode 0o666 lets the umask decide the permissions, as for an ordinary new file
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        _raise_naming_target(error, temp, target)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except OSError as error:
        temp.unlink(missing_ok=True)
        _raise_naming_target(error, temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def check_can_write(path: Path | str) -> None:
    """Check, without touching ``path``, that :func:`open_atomic` could write it: a small temporary
    file (named as :func:`open_atomic` names them) is created, written, fsynced and removed in the
    nearest folder of ``path`` that exists. Call it before long work whose result goes to ``path``.

    Raises:
        OSError: naming ``path``, with the operating system's reason (a read-only file system, a
            missing permission, a full disk, a file where a folder should be).
    """
    target = Path(path)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"'{folder}' is a file, not a folder", str(target))
    probe = folder / _temp_name(target.name, os.getpid())
    try:
        write_probe(probe)
    except OSError as error:
        _raise_naming_target(error, probe, target)


def write_probe(probe: Path | str) -> None:
    """Create ``probe`` (a new file), write and fsync a line, and remove it again; raises ``OSError`` if
    any of that fails (nothing is left behind): whether files can be written where ``probe`` lies."""
    probe = Path(probe)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            os.write(fd, b"reflect\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        with suppress(OSError):
            probe.unlink(missing_ok=True)
        raise
    with suppress(OSError):
        probe.unlink()


def _raise_naming_target(error: OSError, temp: Path, target: Path) -> NoReturn:
    """Raise ``error`` again, as raised on ``target`` when it names the temporary file ``temp`` or no
    file at all (a write or an fsync that failed); any other error unchanged."""
    if error.errno is None or error.filename not in (None, str(temp), temp):
        raise error
    # OSError(errno, ...) picks the subclass of the errno, as the original (FileNotFoundError, ...)
    raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(target)) from error


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


def _temp_name(target_name: str, pid: int) -> str:
    return f".{target_name}.{pid}.{secrets.token_hex(4)}.tmp"


def is_temp_file(path: Path | str) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`open_atomic` (never a finished file)."""
    return _TEMP_NAME.fullmatch(Path(path).name) is not None


def remove_stale_temp_files(directory: Path | str) -> list[Path]:
    """Delete the temporary files :func:`open_atomic` left in ``directory`` when its process was killed
    mid-write; returns the paths deleted.

    Only files whose writing process (the pid in the name) is no longer running on this machine are
    deleted, so a write in progress in another process is never disturbed; this process's own files and
    anything that cannot be checked are left alone. Errors (a missing or unreadable folder, a file
    that cannot be deleted) are ignored: a stale temporary file wastes space but confuses nothing.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _TEMP_NAME.fullmatch(path.name)
        if match is None or not _process_is_gone(int(match.group("pid"))):
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _process_is_gone(pid: int) -> bool:
    """True only when no process ``pid`` runs on this machine (POSIX); False whenever in doubt."""
    if os.name != "posix" or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists, under another user
        return False
    return False
