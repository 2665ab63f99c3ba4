"""Real-time scheduling for the loop's thread (Linux ``SCHED_FIFO``), for the length of a run.

On a busy machine the ordinary scheduler can wake a sleeping thread milliseconds late, whatever the
loop does; a ``SCHED_FIFO`` thread runs as soon as it wakes, ahead of every ordinary process. It needs
the permission to use real-time priorities (root, ``CAP_SYS_NICE``, or an ``rtprio`` limit); the
kernel's real-time throttling keeps a runaway thread from taking a whole CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["check_realtime_priority", "realtime_scheduling"]


def check_realtime_priority(priority: int) -> int:
    """``priority`` if this system offers ``SCHED_FIFO`` and it lies in its range (1-99 on Linux)."""
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_FIFO"):
        raise ValueError("real-time scheduling (SCHED_FIFO) is only available on Linux")
    low, high = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise ValueError(f"real-time priority must be an integer in [{low}, {high}], got {priority!r}")
    return priority


@contextmanager
def realtime_scheduling(priority: int | None) -> Iterator[None]:
    """Run the calling thread with ``SCHED_FIFO`` at ``priority`` inside (``None``: change nothing);
    its previous policy comes back on exit. PermissionError names the fix when it is not allowed."""
    if priority is None:
        yield
        return
    check_realtime_priority(priority)
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as error:
        raise PermissionError(
            f"cannot use real-time scheduling (SCHED_FIFO priority {priority}): {error.strerror}; "
            "run as a user allowed real-time priorities (CAP_SYS_NICE, or an rtprio limit in "
            "/etc/security/limits.conf), or run without it"
        ) from None
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, param)
