"""Evaluation records, "solved" criteria, and the CSV logs a run folder keeps.

* ``evaluations.csv``: ``step,mean_return,std_return,mean_length``, one row per evaluation;
* ``episodes.csv``: ``step,return,length``, one row per finished training episode.

Appends open the file, write one line and close it, so they are cheap and a crash loses at most the
line being written. Floats are written with ``repr`` and read back exactly.
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from reflect.atomic_files import write_text_atomic

__all__ = [
    "EPISODES_HEADER",
    "EVALUATIONS_HEADER",
    "EvaluationRecord",
    "append_episode_csv",
    "append_evaluation_csv",
    "read_episodes_csv",
    "read_evaluations_csv",
    "solved_at_step",
    "stable_from_step",
    "write_evaluations_csv",
]

EVALUATIONS_HEADER = ("step", "mean_return", "std_return", "mean_length")
EPISODES_HEADER = ("step", "return", "length")


class EvaluationRecord(NamedTuple):
    """One evaluation: at environment step ``step``, the mean and std of the episode returns and the
    mean episode length over the evaluation episodes."""

    step: int
    mean_return: float
    std_return: float
    mean_length: float


def solved_at_step(records: Iterable[EvaluationRecord], threshold: float) -> int | None:
    """The step of the first evaluation (in step order) with ``mean_return >= threshold``, else None."""
    for record in sorted(records, key=lambda record: record.step):
        if record.mean_return >= threshold:
            return record.step
    return None


def stable_from_step(records: Iterable[EvaluationRecord], threshold: float) -> int | None:
    """The step from which every evaluation (that one included, in step order) has
    ``mean_return >= threshold``; None if the last evaluation is below it or there are none."""
    stable: int | None = None
    for record in sorted(records, key=lambda record: record.step):
        if record.mean_return >= threshold:
            if stable is None:
                stable = record.step
        else:
            stable = None
    return stable


# ----------------------------------------------------------------------------------------------------
# evaluations.csv


def write_evaluations_csv(path: Path | str, records: Iterable[EvaluationRecord]) -> None:
    """Write all ``records`` to ``path`` (atomically, replacing the file), header first."""
    lines = [",".join(EVALUATIONS_HEADER)]
    lines += [_evaluation_line(record) for record in records]
    write_text_atomic(path, "\n".join(lines) + "\n")


def append_evaluation_csv(path: Path | str, record: EvaluationRecord) -> None:
    """Append one record to ``path``, writing the header first if the file is new or empty."""
    _append_line(path, EVALUATIONS_HEADER, _evaluation_line(record))


def read_evaluations_csv(path: Path | str) -> list[EvaluationRecord]:
    """Read an evaluations file; an empty file gives ``[]``.

    Raises:
        ValueError: the header is not ``step,mean_return,std_return,mean_length`` or a row is malformed
            (the message gives the file and line).
        FileNotFoundError: the file does not exist.
    """
    parsers: tuple[Callable[[str], Any], ...] = (int, float, float, float)
    return [EvaluationRecord(*row) for row in _read_rows(path, EVALUATIONS_HEADER, parsers)]


# ----------------------------------------------------------------------------------------------------
# episodes.csv


def append_episode_csv(path: Path | str, step: int, episode_return: float, length: int) -> None:
    """Append one finished training episode to ``path``, writing the header first if the file is new."""
    line = f"{operator.index(step)},{float(episode_return)!r},{operator.index(length)}"
    _append_line(path, EPISODES_HEADER, line)


def read_episodes_csv(path: Path | str) -> list[tuple[int, float, int]]:
    """Read an episodes file as ``(step, return, length)`` tuples; an empty file gives ``[]``.

    Raises:
        ValueError: the header is not ``step,return,length`` or a row is malformed (with file and line).
        FileNotFoundError: the file does not exist.
    """
    parsers: tuple[Callable[[str], Any], ...] = (int, float, int)
    return [(row[0], row[1], row[2]) for row in _read_rows(path, EPISODES_HEADER, parsers)]


# ----------------------------------------------------------------------------------------------------
# shared


def _evaluation_line(record: EvaluationRecord) -> str:
    step, mean_return, std_return, mean_length = record
    return f"{operator.index(step)},{float(mean_return)!r},{float(std_return)!r},{float(mean_length)!r}"


def _append_line(path: Path | str, header: Sequence[str], line: str) -> None:
    file = Path(path)
    new = not file.exists() or file.stat().st_size == 0
    text = (",".join(header) + "\n" if new else "") + line + "\n"
    with file.open("a", encoding="utf-8", newline="") as handle:
        handle.write(text)


def _read_rows(
    path: Path | str, header: Sequence[str], parsers: Sequence[Callable[[str], Any]]
) -> list[list[Any]]:
    file = Path(path)
    with file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return []
    expected = ",".join(header)
    if tuple(rows[0]) != tuple(header):
        raise ValueError(
            f"'{file}' does not start with the header '{expected}' (found '{','.join(rows[0])}'); "
            "it is not this kind of log"
        )
    parsed: list[list[Any]] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(parsers):
            raise ValueError(
                f"'{file}' line {number}: expected {len(parsers)} values ({expected}), got {row}"
            )
        try:
            parsed.append([parse(text) for parse, text in zip(parsers, row, strict=True)])
        except ValueError as error:
            raise ValueError(f"'{file}' line {number}: {error}; the file is damaged") from error
    return parsed
