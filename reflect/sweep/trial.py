"""One trial of a sweep, without Ray: (config point, env id, seed) trained into its own run folder.

A trial's folder ``<sweep>/trials/<name>/`` is an ordinary ``reflect train`` run folder, plus
``sweep_trial.json`` (the attempts made: where each one resumed from, and whether fault injection
fired). :func:`run_trial` starts the trial, or resumes it from the newest checkpoint in its folder when
an earlier attempt died (the CSV logs are cut back to that checkpoint first, so no row appears twice),
and reports each evaluation and the final summary to a callback (Ray Tune's ``report`` in a sweep).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflect.atomic_files import write_text_atomic
from reflect.config import to_dict
from reflect.sweep.search import Point
from reflect.sweep.spec import SweepSpec, resolve_config

__all__ = [
    "ERROR_FILE",
    "STATE_FILE",
    "Trial",
    "build_trials",
    "checkpoints_by_step",
    "finished_summary",
    "read_state",
    "run_trial",
    "trial_status",
]

STATE_FILE = "sweep_trial.json"
ERROR_FILE = "sweep_error.txt"
TRIALS_DIR = "trials"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_CHECKPOINT = re.compile(r"step_(\d+)\.pt")
SUMMARY_METRICS = (
    "total_steps",
    "solved_at_step",
    "stable_from_step",
    "final_eval_mean_return",
    "best_eval_mean_return",
    "steps_per_second",
    "wall_seconds",
)


@dataclass(frozen=True)
class Trial:
    """One (config point, env id, seed) of a sweep.

    Attributes:
        index: the trial's number in plan order (points, then envs, then seeds).
        point: the config point's index; params: its searched keys and values.
        config: the resolved agent config (plain values), budget included.
        fail_once_at_step: fault injection (``debug``), or None.
    """

    index: int
    point: int
    env_id: str
    seed: int
    params: dict[str, Any]
    config: dict[str, Any]
    fail_once_at_step: int | None = None

    @property
    def name(self) -> str:
        return f"p{self.point}__{_UNSAFE.sub('_', self.env_id)}__s{self.seed}"

    @property
    def total_steps(self) -> int:
        return int(self.config["train"]["total_steps"])

    def run_dir(self, sweep_dir: Path) -> Path:
        return Path(sweep_dir) / TRIALS_DIR / self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "point": self.point, "env_id": self.env_id, "seed": self.seed,
            "params": self.params, "config": self.config, "fail_once_at_step": self.fail_once_at_step,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Trial:
        return Trial(
            int(data["index"]), int(data["point"]), str(data["env_id"]), int(data["seed"]),
            dict(data["params"]), dict(data["config"]), data.get("fail_once_at_step"),
        )


def build_trials(spec: SweepSpec, points: Sequence[Point]) -> list[Trial]:
    """The trials of ``points`` in plan order: for each point, each env, each seed."""
    trials = []
    for point in points:
        for env_index, env_id in enumerate(spec.envs):
            config = to_dict(resolve_config(spec, env_id, point.params))
            for seed_index, seed in enumerate(spec.seeds):
                index = (point.index * len(spec.envs) + env_index) * len(spec.seeds) + seed_index
                fail = spec.debug.fail_once_at_step if index in spec.debug.fail_trials else None
                trials.append(Trial(index, point.index, env_id, seed, dict(point.params), config, fail))
    return trials


# ----------------------------------------------------------------------------------------------------
# trial folders


def finished_summary(run_dir: Path, total_steps: int) -> dict[str, Any] | None:
    """The trial's ``summary.json`` if it ran its whole budget to the end, else None."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file() or not (Path(run_dir) / "final_model.pt").is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if summary.get("interrupted") is not None or int(summary.get("total_steps") or 0) < total_steps:
        return None
    return dict(summary)


def trial_status(run_dir: Path, total_steps: int) -> str:
    """``finished``, ``failed`` (gave up after its retries; see ``sweep_error.txt``) or ``pending``."""
    if finished_summary(run_dir, total_steps) is not None:
        return "finished"
    if (Path(run_dir) / ERROR_FILE).is_file():
        return "failed"
    return "pending"


def read_state(run_dir: Path) -> dict[str, Any]:
    """``sweep_trial.json``: ``{"attempts": [{"resumed_from_step": N or None, ...}], ...}``."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return {"attempts": [], "fault_injected_at_step": None}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {"attempts": [], "fault_injected_at_step": None}


def _write_state(run_dir: Path, state: Mapping[str, Any]) -> None:
    write_text_atomic(Path(run_dir) / STATE_FILE, json.dumps(state, indent=2) + "\n")


def checkpoints_by_step(run_dir: Path) -> list[tuple[int, Path]]:
    """``checkpoints/step_<N>.pt`` files, newest (most steps) first."""
    found = []
    for path in (Path(run_dir) / "checkpoints").glob("step_*.pt"):
        match = _CHECKPOINT.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def _cut_csv(path: Path, last_step: int) -> None:
    """Keep the header and the rows up to ``last_step`` (rows a resumed run would write again)."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = lines[:1]
    for line in lines[1:]:
        head = line.split(",", 1)[0]
        if head.isdigit() and int(head) <= last_step and line.count(",") == lines[0].count(","):
            kept.append(line)
    write_text_atomic(path, "\n".join(kept) + "\n" if kept else "")


def _prepare_folder(run_dir: Path, resume_step: int) -> None:
    """Cut the logs back to ``resume_step`` (0: a fresh start) and drop what the earlier attempt wrote
    after it."""
    for name in ("evaluations.csv", "episodes.csv"):
        _cut_csv(run_dir / name, resume_step)
    stale = ["summary.json", "final_model.pt", ERROR_FILE] + (["best_model.pt"] if resume_step == 0 else [])
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    for step, path in checkpoints_by_step(run_dir):
        if step > resume_step:
            path.unlink(missing_ok=True)


def _evaluation_rows(path: Path) -> list[tuple[int, float, float]]:
    """Complete rows of a (possibly growing) ``evaluations.csv``: ``(step, mean, std)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.split("\n")[1:-1]:  # the part after the last newline may be half written
        parts = line.split(",")
        if len(parts) == 4:
            with contextlib.suppress(ValueError):
                rows.append((int(parts[0]), float(parts[1]), float(parts[2])))
    return rows


# ----------------------------------------------------------------------------------------------------
# running


def run_trial(
    trial: Trial,
    run_dir: Path,
    report: Callable[[dict[str, Any]], None],
    *,
    kill: Callable[[int], Any] = os._exit,
    poll_seconds: float = 0.5,
) -> dict[str, Any]:
    """Run ``trial`` in ``run_dir`` to its budget and return its summary.

    A finished trial only reports its summary again. Otherwise training starts, or continues from the
    newest loadable checkpoint in the folder. While it runs, every new evaluation is reported as
    ``{"step", "eval_return", "eval_std"}``; at the end the summary's metrics are reported with
    ``"finished": True``. With ``trial.fail_once_at_step`` set, the process is killed (``kill(1)``)
    once, soon after the first checkpoint at or past that step: the retry resumes from it.
    """
    from reflect.agents.config import ReflectConfig
    from reflect.checkpoints import CheckpointError, load_checkpoint
    from reflect.config import from_mapping
    from reflect.runs.trainer import train

    run_dir = Path(run_dir)
    summary = finished_summary(run_dir, trial.total_steps)
    state = read_state(run_dir)
    if summary is not None:
        report(_final_metrics(summary, state))
        return summary
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    payload, resume_step = None, 0
    for step, path in checkpoints_by_step(run_dir):
        try:
            payload, resume_step = load_checkpoint(path), step
            break
        except CheckpointError:
            continue
    _prepare_folder(run_dir, resume_step)
    state.setdefault("attempts", []).append(
        {"resumed_from_step": resume_step if payload is not None else None, "started": time.time()}
    )
    state["trial"] = trial.name
    _write_state(run_dir, state)

    config = from_mapping(ReflectConfig, trial.config)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = train(
                trial.env_id, config, run_dir, seed=trial.seed, resume=payload,
                command=f"reflect sweep (trial {trial.name})", progress_bar=False, verbose=0, plots=False,
            )
        except BaseException as error:  # handed to the reporting thread, which raises it
            outcome["error"] = error

    worker = threading.Thread(target=target, name=f"train-{trial.name}", daemon=True)
    worker.start()
    reported = len([row for row in _evaluation_rows(run_dir / "evaluations.csv") if row[0] <= resume_step])
    while True:
        worker.join(poll_seconds)
        rows = _evaluation_rows(run_dir / "evaluations.csv")
        for step, mean, std in rows[reported:]:
            report({"step": step, "eval_return": mean, "eval_std": std})
        reported = max(reported, len(rows))
        if not worker.is_alive():
            break
        _maybe_fail(trial, run_dir, state, kill)
    if "error" in outcome:
        raise outcome["error"]
    summary = outcome["result"].summary
    if outcome["result"].interrupted is not None:
        raise RuntimeError(f"trial {trial.name} was stopped by {outcome['result'].interrupted}")
    report(_final_metrics(summary, state))
    return dict(summary)


def _maybe_fail(trial: Trial, run_dir: Path, state: dict[str, Any], kill: Callable[[int], Any]) -> None:
    at = trial.fail_once_at_step
    if at is None or state.get("fault_injected_at_step") is not None:
        return
    reached = [step for step, _ in checkpoints_by_step(run_dir) if step >= at]
    if reached:
        state["fault_injected_at_step"] = min(reached)
        _write_state(run_dir, state)
        kill(1)


def _final_metrics(summary: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    metrics = {key: summary.get(key) for key in SUMMARY_METRICS}
    attempts = state.get("attempts", [])
    metrics["attempts"] = len(attempts)
    metrics["resumed_from_step"] = attempts[-1].get("resumed_from_step") if attempts else None
    metrics["finished"] = True
    return metrics
