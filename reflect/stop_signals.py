"""Turn SIGINT / SIGTERM into a request to stop at the next step or tick boundary, and the exit status a
stopped command returns: shared by training runs (:mod:`reflect.runs.trainer`) and control loops
(:mod:`reflect.runtime.loop`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SIGNAL_EXIT_CODES", "stop_on_signals"]

SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal number, as shells report it
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(on_signal: Callable[[str], None], enabled: bool = True) -> Iterator[bool]:
    """While inside, SIGINT and SIGTERM call ``on_signal("SIGINT" | "SIGTERM")`` (which may raise, e.g.
    ``KeyboardInterrupt`` on a second Ctrl-C); the previous handlers come back on exit.

    Handlers can only be installed from the main thread: elsewhere (or with ``enabled=False``) nothing
    changes and the context yields ``False``.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield False
        return

    def handler(signum: int, _frame: Any) -> None:
        on_signal(signal.Signals(signum).name)

    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    try:
        for s in _SIGNALS:
            signal.signal(s, handler)
    except ValueError:  # e.g. an embedded interpreter that does not allow it
        _restore(previous)
        yield False
        return
    try:
        yield True
    finally:
        _restore(previous)


def _restore(previous: dict[signal.Signals, Any]) -> None:
    for s, h in previous.items():
        if h is not None:  # None: a handler not installed from Python, which cannot be put back
            signal.signal(s, h)
