"""A sweep's results: one CSV row per trial, a summary per config point, and one learning-curve plot.

Read straight from the trial folders (``summary.json``, ``evaluations.csv``, ``sweep_trial.json``), so
``reflect sweep --report DIR`` can redo them at any time; no Ray needed.

The summary gives, per config point and env, the seeds that finished, how many solved the env (its
reward threshold: ``train.reward_threshold`` or the registered one), and median and interquartile
range (25th-75th percentile, linear interpolation) of ``solved_at_step``, ``stable_from_step``, the
final evaluation return and learning steps per second. A seed that never solved counts as "never"
(above every step), so a median of "never" means fewer than half of the seeds solved.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reflect.atomic_files import write_bytes_atomic, write_text_atomic
from reflect.sweep.plan import Sweep
from reflect.sweep.search import Point, format_value
from reflect.sweep.trial import ERROR_FILE, SUMMARY_METRICS, finished_summary, read_state, trial_status

__all__ = [
    "CURVES_FILE",
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "collect_results",
    "format_summary",
    "plot_learning_curves",
    "quantile",
    "summarize",
    "write_report",
]

RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.txt"
CURVES_FILE = "learning_curves.png"
METRIC_COLUMNS = SUMMARY_METRICS


def collect_results(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per trial in plan order: identity, searched values, status, summary metrics, attempts."""
    rows = []
    for trial in sweep.trials:
        run_dir = sweep.run_dir(trial)
        status = trial_status(run_dir, trial.total_steps)
        summary = finished_summary(run_dir, trial.total_steps) or {}
        state = read_state(run_dir)
        attempts = state.get("attempts", [])
        error = ""
        if status == "failed":
            lines = (run_dir / ERROR_FILE).read_text(encoding="utf-8", errors="replace").strip().splitlines()
            error = lines[-1] if lines else "failed"
        row: dict[str, Any] = {
            "trial": trial.name,
            "point": f"p{trial.point}",
            "env": trial.env_id,
            "seed": trial.seed,
            **{key: format_value(value) for key, value in trial.params.items()},
            "status": status,
            **{key: summary.get(key) for key in METRIC_COLUMNS},
            "attempts": len(attempts),
            "resumed_from_step": ";".join(
                str(a["resumed_from_step"]) for a in attempts if a.get("resumed_from_step") is not None
            ),
            "error": error,
            "run_dir": str(run_dir.relative_to(sweep.directory)),
        }
        rows.append(row)
    return rows


def write_results_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """``results.csv``: one row per trial (empty cells for missing values)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in columns})
    write_text_atomic(path, buffer.getvalue())
    return path


# ----------------------------------------------------------------------------------------------------
# statistics


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (linear interpolation, as numpy's default) that also handles ``inf`` ("never
    solved"): between a finite value and ``inf`` it is ``inf``. NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    fraction = position - low
    if fraction == 0 or ordered[low] == ordered[high]:
        return ordered[low]
    if math.isinf(ordered[high]) or math.isinf(ordered[low]):
        return ordered[high]
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range of a sample."""

    median: float
    q25: float
    q75: float

    @staticmethod
    def of(values: Sequence[float]) -> Spread:
        return Spread(quantile(values, 0.5), quantile(values, 0.25), quantile(values, 0.75))


@dataclass(frozen=True)
class PointSummary:
    point: str
    label: str
    env: str
    trials: int
    finished: int
    solved: int
    solved_at: Spread
    stable_from: Spread
    final_return: Spread
    steps_per_second: Spread


def summarize(sweep: Sweep, rows: Sequence[Mapping[str, Any]]) -> list[PointSummary]:
    """One summary per (config point, env), over the trials that finished."""
    result = []
    for point in sweep.points:
        for env in sweep.spec.envs:
            group = [row for row in rows if row["point"] == point.id and row["env"] == env]
            done = [row for row in group if row["status"] == "finished"]

            def never(value: Any) -> float:
                return math.inf if value is None else float(value)

            result.append(
                PointSummary(
                    point=point.id,
                    label=point.label,
                    env=env,
                    trials=len(group),
                    finished=len(done),
                    solved=sum(row["solved_at_step"] is not None for row in done),
                    solved_at=Spread.of([never(row["solved_at_step"]) for row in done]),
                    stable_from=Spread.of([never(row["stable_from_step"]) for row in done]),
                    final_return=Spread.of(
                        [float(row["final_eval_mean_return"]) for row in done
                         if row["final_eval_mean_return"] is not None]
                    ),
                    steps_per_second=Spread.of(
                        [float(row["steps_per_second"]) for row in done
                         if row["steps_per_second"] is not None]
                    ),
                )
            )
    return result


def _spread(spread: Spread, fmt: str) -> str:
    def one(value: float) -> str:
        if math.isnan(value):
            return "-"
        return "never" if math.isinf(value) else format(value, fmt)

    if math.isnan(spread.median):
        return "-"
    return f"{one(spread.median)} ({one(spread.q25)}-{one(spread.q75)})"


def format_summary(summaries: Sequence[PointSummary], title: str = "") -> str:
    """A plain-text table: one line per config point and env; medians with the IQR in brackets."""
    header = (
        "config", "env", "seeds", "solved", "solved at step", "stable from step", "final eval return",
        "steps/s",
    )
    lines = [
        (
            f"{s.point}  {s.label}", s.env, f"{s.finished}/{s.trials}", f"{s.solved}/{s.finished}",
            _spread(s.solved_at, ",.0f"), _spread(s.stable_from, ",.0f"),
            _spread(s.final_return, ".1f"), _spread(s.steps_per_second, ",.0f"),
        )
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    text = [title] if title else []
    text.append("  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip())
    text.append("  ".join("-" * width for width in widths))
    for row in lines:
        text.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    text.append(
        "median (25th-75th percentile) over the seeds that finished; a seed that never solved counts "
        "as 'never'"
    )
    return "\n".join(text) + "\n"


# ----------------------------------------------------------------------------------------------------
# plot


def _reward_threshold(sweep: Sweep, env: str) -> float | None:
    """The threshold the env's finished trials counted as solved (their ``summary.json``), or None."""
    for trial in sweep.trials:
        if trial.env_id != env:
            continue
        summary = finished_summary(sweep.run_dir(trial), trial.total_steps)
        if summary is not None and summary.get("reward_threshold") is not None:
            return float(summary["reward_threshold"])
    return None


def _evaluations(run_dir: Path) -> dict[int, float]:
    """step -> mean evaluation return (the last row wins if a step appears twice)."""
    path = run_dir / "evaluations.csv"
    curve: dict[int, float] = {}
    if not path.is_file():
        return curve
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split(",")
        if len(parts) == 4:
            try:
                curve[int(parts[0])] = float(parts[1])
            except ValueError:
                continue
    return curve


def plot_learning_curves(sweep: Sweep, path: Path) -> Path | None:
    """One panel per env: per config point, the median evaluation return across seeds with the
    interquartile range shaded, and the runs' reward threshold dashed. None if nothing was evaluated."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    envs = list(sweep.spec.envs)
    figure = Figure(figsize=(7.5, 4.2 * len(envs)))
    FigureCanvasAgg(figure)
    panels = figure.subplots(len(envs), 1, squeeze=False)[:, 0]
    colors = [f"C{index % 10}" for index in range(len(sweep.points))]
    anything = False
    for axes, env in zip(panels, envs, strict=True):
        seeds = 0
        for point, color in zip(sweep.points, colors, strict=True):
            curves = [
                _evaluations(sweep.run_dir(trial))
                for trial in sweep.trials
                if trial.point == point.index and trial.env_id == env
            ]
            curves = [curve for curve in curves if curve]
            if not curves:
                continue
            anything = True
            seeds = max(seeds, len(curves))
            steps = sorted(set().union(*curves))
            median, low, high = [], [], []
            for step in steps:
                values = [curve[step] for curve in curves if step in curve]
                median.append(quantile(values, 0.5))
                low.append(quantile(values, 0.25))
                high.append(quantile(values, 0.75))
            x = np.asarray(steps, dtype=float)
            axes.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
            axes.plot(x, median, color=color, marker="o", markersize=2.5, linewidth=1.5,
                      label=_legend(point, len(curves)))
        threshold = _reward_threshold(sweep, env)
        if threshold is not None:
            axes.axhline(float(threshold), color="gray", linestyle="--", linewidth=1,
                         label=f"threshold {float(threshold):g}")
        axes.set_title(f"{env}: evaluation return, median and interquartile range across seeds",
                       fontsize="medium")
        axes.set_xlabel("environment steps")
        axes.set_ylabel("mean evaluation return")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize="small")
    if not anything:
        return None
    figure.suptitle(f"sweep {sweep.spec.name}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _legend(point: Point, seeds: int) -> str:
    label = point.label if len(point.label) <= 60 else point.label[:57] + "..."
    return f"{point.id}: {label} ({seeds} seed{'s' if seeds != 1 else ''})"


def write_report(sweep: Sweep) -> tuple[str, list[Path]]:
    """Write ``results.csv``, ``summary.txt`` and ``learning_curves.png``; return the summary text and
    the files written."""
    rows = collect_results(sweep)
    written = [write_results_csv(rows, sweep.directory / RESULTS_FILE)]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    status = ", ".join(f"{count} {name}" for name, count in counts.items())
    text = format_summary(
        summarize(sweep, rows), title=f"sweep {sweep.spec.name}: {len(rows)} trials ({status})"
    )
    failed = [row for row in rows if row["status"] == "failed"]
    for row in failed:
        text += f"failed: {row['trial']}: {row['error']}\n"
    write_text_atomic(sweep.directory / SUMMARY_FILE, text)
    written.append(sweep.directory / SUMMARY_FILE)
    plot = plot_learning_curves(sweep, sweep.directory / CURVES_FILE)
    if plot is not None:
        written.append(plot)
    return text, written
