"""Run folders.

Every training run gets its own folder, ``<root>/<env>__<agent>__<seed>__<YYYYmmdd-HHMMSS>`` by default,
holding ``config.yaml``, logs, plots and a ``checkpoints/`` folder. A folder is never reused: a name
collision gets a ``-1``, ``-2``, ... suffix, and a folder the user names explicitly must be new or empty.

Files in it are written atomically (:mod:`reflect.atomic_files`). A new run folder is checked to be
writable before training starts (a file is created in it and removed), so a read-only location, a full
disk or a missing permission is an error up front instead of a run that cannot save anything. A command
that fails before it writes anything into its new run folder removes the folders it created
(:func:`new_run_dir`); files are never removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from reflect.atomic_files import write_probe

__all__ = [
    "CHECKPOINTS_DIR",
    "TIMESTAMP_FORMAT",
    "RunDirError",
    "check_writable",
    "create_run_dir",
    "new_run_dir",
    "os_error_fix",
    "os_error_reason",
    "probe_write",
    "run_name",
]

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
CHECKPOINTS_DIR = "checkpoints"
_MAX_SUFFIX = 10_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_PERMISSION = "give yourself write permission on the folder (e.g. chmod u+w)"
_FIXES = {
    code: fix
    for name, fix in (
        ("ENOSPC", "free disk space on that drive"),
        ("EDQUOT", "free space within your disk quota"),
        ("EACCES", _PERMISSION),
        ("EPERM", _PERMISSION),
        ("EROFS", "the file system is read-only: remount it read-write or choose another location"),
        ("EFBIG", "the file is larger than this process may write: raise the file size limit (ulimit -f)"),
    )
    if (code := getattr(errno, name, None)) is not None
}


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
    """Create a new run folder (with a ``checkpoints/`` folder inside), check that files can be written
    in it, and return its path.

    With ``explicit``, that folder itself is the run folder: it is created if needed and must be empty.
    Otherwise the folder is ``root/run_name(env_id, agent, seed, <now as YYYYmmdd-HHMMSS>)``, with
    ``-1``, ``-2``, ... appended if a folder of that name already exists.

    Raises:
        RunDirError: ``explicit`` already holds files or is a file, or the folder cannot be created or
            written to (the message names the path, the reason from the operating system and the fix);
            folders this call created are removed again.
    """
    return _create_run_dir(root, env_id, agent, seed, explicit, now)[0]


@contextlib.contextmanager
def new_run_dir(
    root: Path | str,
    env_id: str,
    agent: str,
    seed: int,
    explicit: Path | str | None = None,
    now: datetime | None = None,
) -> Iterator[Path]:
    """:func:`create_run_dir` for a ``with`` block: when the block raises, every folder the call created
    (the run folder, ``checkpoints/``, a new ``root``) is removed again if it is still empty, so a run
    that failed before writing anything leaves nothing behind. Files are never removed: a run that wrote
    any keeps its folder."""
    run_dir, created = _create_run_dir(root, env_id, agent, seed, explicit, now)
    try:
        yield run_dir
    except BaseException:
        _remove_if_empty(created)
        raise


def _create_run_dir(
    root: Path | str,
    env_id: str,
    agent: str,
    seed: int,
    explicit: Path | str | None,
    now: datetime | None,
) -> tuple[Path, list[Path]]:
    """:func:`create_run_dir`, and the folders it created, innermost first."""
    if explicit is not None:
        run_dir = Path(explicit)
        _check_explicit(run_dir)
        created = _missing_folders(run_dir)
    else:
        stamp = (now or datetime.now()).strftime(TIMESTAMP_FORMAT)
        base = Path(root) / run_name(env_id, agent, seed, stamp)
        created = _missing_folders(base.parent)
    try:
        if explicit is not None:
            _make_dirs(run_dir, exist_ok=True)
        else:
            _make_dirs(base.parent, exist_ok=True)
            run_dir = _claim_new_dir(base)
            created.insert(0, run_dir)
        checkpoints = run_dir / CHECKPOINTS_DIR
        if not checkpoints.exists():
            created.insert(0, checkpoints)
        _make_dirs(checkpoints, exist_ok=True)
        for folder in (run_dir, checkpoints):
            check_writable(folder)
    except RunDirError:
        _remove_if_empty(created)  # only folders this call made, and only if still empty
        raise
    return run_dir, created


def _check_explicit(run_dir: Path) -> None:
    """A folder the user named must be new or empty."""
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


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, innermost first."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """``rmdir`` each folder, innermost first; a folder that holds anything (or cannot be removed) stays."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def check_writable(directory: Path | str) -> None:
    """:func:`probe_write` as a run-folder check.

    Raises:
        RunDirError: the folder cannot be written; the message names it, the reason and the fix.
    """
    folder = Path(directory)
    try:
        probe_write(folder)
    except OSError as error:
        raise RunDirError(
            f"run directory '{folder}' is not writable: {os_error_reason(error)}; {os_error_fix(error)}"
        ) from error


def probe_write(directory: Path | str) -> None:
    """Create, write, fsync and delete a small hidden file in ``directory``; raises ``OSError`` if any
    of that fails (nothing is left behind)."""
    write_probe(Path(directory) / f".write-check.{os.getpid()}.{secrets.token_hex(4)}")


def os_error_reason(error: OSError) -> str:
    """The operating system's reason with its errno name, e.g. ``No space left on device (ENOSPC)``."""
    reason = error.strerror or str(error) or type(error).__name__
    name = errno.errorcode.get(error.errno) if isinstance(error.errno, int) else None
    return f"{reason} ({name})" if name else reason


def os_error_fix(error: OSError) -> str:
    """What the user can do about a failed write, e.g. ``free disk space on that drive``."""
    if isinstance(error.errno, int) and error.errno in _FIXES:
        return _FIXES[error.errno]
    return "check that the drive is mounted, healthy and writable, or choose another location"


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
    fix = os_error_fix(error) if error.errno in _FIXES else "choose a writable location"
    return RunDirError(f"cannot create run directory '{path}': {reason}; {fix}")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)
