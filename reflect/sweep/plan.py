"""A sweep folder and the loop that fills it, independent of how trials are executed.

Sweep folder::

    spec.yaml            the checked spec (what --resume reads back)
    points.json          the config points so far (grid/random: all of them; optuna: grows per round)
    trials/<trial>/      one reflect run folder per (point, env, seed), plus sweep_trial.json
    results.csv          one row per trial
    summary.txt          median and interquartile range per config point
    learning_curves.png  evaluation return against steps, median and IQR band across seeds
    ray/                 Ray Tune's own experiment records

:func:`run_sweep` runs every trial that has not finished (a resumed sweep skips finished ones), then,
for ``method: optuna``, asks Optuna for further points until ``num_samples`` have been run.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from reflect.atomic_files import write_text_atomic
from reflect.config import deep_merge, parse_overrides
from reflect.runs.run_dir import check_writable
from reflect.sweep.search import (
    Dimension,
    Point,
    grid_points,
    optuna_distributions,
    optuna_params,
    point_from_optuna,
    random_points,
)
from reflect.sweep.spec import STEP_METRICS, SweepSpec, check_point, parse_sweep_spec, spec_to_dict
from reflect.sweep.trial import Trial, build_trials, finished_summary, trial_status

__all__ = ["POINTS_FILE", "SPEC_FILE", "Sweep", "SweepError", "create_sweep", "open_sweep", "run_sweep"]

SPEC_FILE = "spec.yaml"
POINTS_FILE = "points.json"
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class SweepError(ValueError):
    """A sweep folder cannot be created, resumed or read; the message says why and what to do."""


@dataclass
class Sweep:
    """A sweep folder with its spec, search dimensions and config points."""

    directory: Path
    spec: SweepSpec
    dimensions: list[Dimension]
    points: list[Point] = field(default_factory=list)
    _trials: tuple[int, list[Trial]] = field(default_factory=lambda: (-1, []), repr=False, compare=False)

    @property
    def trials(self) -> list[Trial]:
        """Every trial of the points so far, in plan order (points only ever get appended)."""
        if self._trials[0] != len(self.points):
            self._trials = (len(self.points), build_trials(self.spec, self.points))
        return list(self._trials[1])

    def run_dir(self, trial: Trial) -> Path:
        return trial.run_dir(self.directory)

    def status(self, trial: Trial) -> str:
        return trial_status(self.run_dir(trial), trial.total_steps)

    def save_points(self) -> None:
        text = json.dumps([point.to_json() for point in self.points], indent=1) + "\n"
        write_text_atomic(self.directory / POINTS_FILE, text)


def create_sweep(
    spec: SweepSpec, dimensions: list[Dimension], *, root: Path, explicit: Path | None = None
) -> Sweep:
    """Make the sweep folder (``root/<name>__<timestamp>``, or ``explicit``, which must be new or
    empty), draw the initial points and write ``spec.yaml`` and ``points.json``.

    Raises:
        SweepError: ``explicit`` holds files (resume it with --resume, or choose another folder) or a
            folder cannot be written.
        ConfigError: a sampled point gives an invalid config.
    """
    points = initial_points(spec, dimensions)
    for point in points:
        check_point(spec, point)
    directory = _new_folder(root, spec.name, explicit)
    write_text_atomic(directory / SPEC_FILE, yaml.safe_dump(spec_to_dict(spec), sort_keys=False))
    sweep = Sweep(directory, spec, dimensions, points)
    sweep.save_points()
    return sweep


def open_sweep(directory: Path, overrides: Sequence[str] = ()) -> Sweep:
    """Read a sweep folder back (for ``--resume`` and ``--report``); ``overrides`` may change the
    ``resources`` keys only (a resumed sweep keeps its trials).

    Raises:
        SweepError: the folder has no ``spec.yaml`` / ``points.json`` (not a sweep folder), or an
            override touches anything but ``resources``.
    """
    directory = Path(directory)
    spec_file, points_file = directory / SPEC_FILE, directory / POINTS_FILE
    if not spec_file.is_file() or not points_file.is_file():
        raise SweepError(
            f"'{directory}' is not a sweep folder (no {SPEC_FILE} and {POINTS_FILE}); "
            "give a folder that 'reflect sweep' created"
        )
    data = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    for item in overrides:
        if not item.strip().startswith("resources."):
            raise SweepError(
                f"--set {item}: a resumed sweep keeps its spec; only resources.* keys can change "
                "(e.g. --set resources.max_concurrent=4)"
            )
    if overrides:
        data = deep_merge(data, parse_overrides(overrides))
    spec, dimensions = parse_sweep_spec(data, source=str(spec_file), check=False)
    points = [Point.from_json(item) for item in json.loads(points_file.read_text(encoding="utf-8"))]
    return Sweep(directory, spec, dimensions, points)


def _new_folder(root: Path, name: str, explicit: Path | None) -> Path:
    if explicit is not None:
        folder = Path(explicit)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SweepError(
                f"sweep directory '{folder}' already holds files; continue that sweep with "
                f"'reflect sweep --resume {folder}', or choose another directory"
            )
        folder.mkdir(parents=True, exist_ok=True)
    else:
        stamp = datetime.now().strftime(TIMESTAMP_FORMAT)
        base = Path(root) / f"{_UNSAFE.sub('_', name)}__{stamp}"
        base.parent.mkdir(parents=True, exist_ok=True)
        for index in range(1000):
            folder = base if index == 0 else base.with_name(f"{base.name}-{index}")
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise SweepError(f"too many sweep folders named '{base}-N'; choose another root")
    try:
        check_writable(folder)
    except ValueError as error:
        raise SweepError(str(error).replace("run directory", "sweep directory")) from error
    return folder


# ----------------------------------------------------------------------------------------------------
# points


def initial_points(spec: SweepSpec, dimensions: Sequence[Dimension]) -> list[Point]:
    """Grid: every combination; random: ``num_samples`` draws (crossed with grid axes); optuna: none
    yet (they are asked round by round)."""
    if spec.search.method == "grid":
        return grid_points(dimensions)
    if spec.search.method == "random":
        return random_points(dimensions, spec.search.num_samples or 1, spec.search.seed)
    return []


def point_objective(sweep: Sweep, point: Point) -> float | None:
    """Median of ``search.metric`` over the point's trials (``solved_at_step`` / ``stable_from_step``: a
    trial that never got there counts as twice its budget); ``solved_fraction``: the share of the
    trials that reached their reward threshold. None if any trial has not finished."""
    metric = sweep.spec.search.metric
    values = []
    for trial in sweep.trials:
        if trial.point != point.index:
            continue
        summary = finished_summary(sweep.run_dir(trial), trial.total_steps)
        if summary is None:
            return None
        if metric == "solved_fraction":
            values.append(0.0 if summary.get("solved_at_step") is None else 1.0)
            continue
        value = summary.get(metric)
        if value is None:
            value = 2 * trial.total_steps if metric in STEP_METRICS else -math.inf
        values.append(float(value))
    if not values:
        return None
    return statistics.fmean(values) if metric == "solved_fraction" else statistics.median(values)


def next_points(sweep: Sweep) -> list[Point]:
    """Optuna: the next batch of points from TPE (seeded by ``search.seed`` plus the number of points so
    far), told the objective of every point run so far (a point with a failed trial counts as failed).
    Other methods: none."""
    spec = sweep.spec
    if spec.search.method != "optuna":
        return []
    total = spec.search.num_samples or 0
    if len(sweep.points) >= total:
        return []
    try:
        import optuna
    except ImportError as error:
        raise SweepError(
            "search method 'optuna' needs Optuna: pip install optuna (or pip install \"reflect-rl[sweep]\")"
        ) from error
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = optuna_distributions(sweep.dimensions)
    study = optuna.create_study(
        direction="maximize" if spec.mode == "max" else "minimize",
        # seeded per round: a study rebuilt with the same seed would repeat its random start-up points
        sampler=optuna.samplers.TPESampler(seed=spec.search.seed + len(sweep.points)),
    )
    for point in sweep.points:
        value = point_objective(sweep, point)
        state = optuna.trial.TrialState.COMPLETE if value is not None and math.isfinite(value) else (
            optuna.trial.TrialState.FAIL
        )
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value if state == optuna.trial.TrialState.COMPLETE else None,
                params=optuna_params(sweep.dimensions, point),
                distributions=distributions,
            )
        )
    batch = spec.search.batch_size or max(1, math.ceil(spec.resources.max_concurrent / spec.trials_per_point))
    new: list[Point] = []
    for _ in range(min(batch, total - len(sweep.points))):
        asked = study.ask(fixed_distributions=distributions)
        point = point_from_optuna(len(sweep.points) + len(new), sweep.dimensions, asked.params)
        check_point(spec, point)
        new.append(point)  # left running in this throwaway study: TPE's constant liar spreads the batch
    return new


# ----------------------------------------------------------------------------------------------------
# the loop


def run_sweep(
    sweep: Sweep,
    execute: Callable[[list[Trial]], None],
    log: Callable[[str], None] = print,
) -> None:
    """Run every unfinished trial (``execute`` runs a batch and returns when all have ended), then for
    optuna keep asking for points until ``num_samples`` have run. Stops early when a batch leaves a
    trial neither finished nor failed (the sweep was interrupted)."""
    attempted: set[str] = set()
    first = True
    while True:
        waiting = [
            trial for trial in sweep.trials
            if trial.name not in attempted and sweep.status(trial) != "finished"
        ]
        if first and len(waiting) < len(sweep.trials):
            done = len(sweep.trials) - len(waiting)
            log(f"{done} trial{'s' if done != 1 else ''} already finished: skipped")
        first = False
        if waiting:
            execute(waiting)
            attempted.update(trial.name for trial in waiting)
            if any(sweep.status(trial) == "pending" for trial in waiting):
                return
        new = next_points(sweep)
        if not new:
            return
        for point in new:
            log(f"optuna point {point.id}: {point.label}")
        sweep.points.extend(new)
        sweep.save_points()
