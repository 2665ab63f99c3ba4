"""Errors raised while building, checking or restoring environments."""

from __future__ import annotations

__all__ = ["EnvSetupError", "UnknownEnvironmentError", "UnsupportedSpaceError"]


class EnvSetupError(ValueError):
    """An environment cannot be built, checked or restored as asked."""


class UnknownEnvironmentError(EnvSetupError):
    """The environment id is not registered with Gymnasium."""


class UnsupportedSpaceError(EnvSetupError):
    """An observation or action space is of a kind the learners do not handle."""
