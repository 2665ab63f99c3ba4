"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse
import math


def _integer_at_least(text: str, minimum: int, kind: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a {kind} integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be a {kind} integer, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer_at_least(text, 1, "positive")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer_at_least(text, 0, "non-negative")


MAX_SEED = 2**32 - 1  # numpy's legacy seeding, and most tools that take a seed, stop here


def random_seed(text: str) -> int:
    """argparse type: a random seed, an integer from 0 to :data:`MAX_SEED` (2**32 - 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_SEED}, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_SEED} (2**32 - 1), got {text}")
    return value


def _finite_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite {what}, got {text}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    value = _finite_float(text, "number of seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def _non_negative(text: str, unit: str) -> float:
    value = _finite_float(text, f"number of {unit}")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of {unit} >= 0, got {text}")
    return value


def non_negative_microseconds(text: str) -> float:
    """argparse type: a finite number of microseconds >= 0."""
    return _non_negative(text, "microseconds")


def non_negative_seconds(text: str) -> float:
    """argparse type: a finite number of seconds >= 0."""
    return _non_negative(text, "seconds")


def rate_hz(text: str) -> float:
    """argparse type: a number of ticks per second (its range is checked by the control loop, with the
    loop's own message)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of ticks per second, got {text!r}") from None
