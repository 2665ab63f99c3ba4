"""Callbacks for :meth:`Reflect.learn`, shaped like stable-baselines3's ``BaseCallback``.

A callback sees the agent as ``self.model`` and, after every environment step (``num_envs``
transitions), ``self.locals`` with ``actions``, ``rewards``, ``terminated``, ``truncated``, ``dones``,
``infos`` and ``episodes`` (the :class:`~reflect.envs.EpisodeRecord` of the episodes that just ended).
``on_step`` returning ``False`` stops training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class ReflectCallback:
    """Base class: override :meth:`_on_step` (and optionally the start/end hooks)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.n_calls = 0
        self.num_timesteps = 0
        self.locals: dict[str, Any] = {}

    def init_callback(self, model: Any) -> None:
        self.model = model
        self._init_callback()

    def _init_callback(self) -> None:
        pass

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        self.locals = locals_
        self.num_timesteps = self.model.num_timesteps
        self._on_training_start()

    def _on_training_start(self) -> None:
        pass

    def update_locals(self, locals_: dict[str, Any]) -> None:
        self.locals = locals_

    def on_step(self) -> bool:
        self.n_calls += 1
        self.num_timesteps = self.model.num_timesteps
        return self._on_step()

    def _on_step(self) -> bool:
        return True

    def on_training_end(self) -> None:
        self._on_training_end()

    def _on_training_end(self) -> None:
        pass


class CallbackList(ReflectCallback):
    """Runs several callbacks in order; training stops when any returns ``False``."""

    def __init__(self, callbacks: Sequence[Any]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)

    def _init_callback(self) -> None:
        for callback in self.callbacks:
            callback.init_callback(self.model)

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        super().on_training_start(locals_, globals_)
        for callback in self.callbacks:
            callback.on_training_start(locals_, globals_)

    def update_locals(self, locals_: dict[str, Any]) -> None:
        self.locals = locals_
        for callback in self.callbacks:
            callback.update_locals(locals_)

    def _on_step(self) -> bool:
        keep_going = True
        for callback in self.callbacks:
            keep_going = callback.on_step() and keep_going
        return keep_going

    def _on_training_end(self) -> None:
        for callback in self.callbacks:
            callback.on_training_end()


class FunctionCallback(ReflectCallback):
    """Wraps ``fn(locals, globals) -> bool | None`` (SB3's callable-callback convention)."""

    def __init__(self, fn: Callable[[dict[str, Any], dict[str, Any]], bool | None]) -> None:
        super().__init__()
        self.fn = fn

    def _on_step(self) -> bool:
        return self.fn(self.locals, {}) is not False


def as_callback(callback: Any) -> ReflectCallback | None:
    """``None``, a callback, a list of callbacks, or a plain function -> one callback (or ``None``)."""
    if callback is None:
        return None
    if isinstance(callback, (list, tuple)):
        return CallbackList([c for c in (as_callback(c) for c in callback) if c is not None])
    if hasattr(callback, "on_step") and hasattr(callback, "init_callback"):
        return callback
    if callable(callback):
        return FunctionCallback(callback)
    raise TypeError(
        f"callback must be a ReflectCallback, a list of them, or a function, got {type(callback).__name__}"
    )
