"""Run a sweep's trials on Ray Tune: on this machine by default, or on a running Ray cluster.

Each trial is one Tune trial of a function trainable with ``cpus_per_trial`` CPUs and one torch
thread; at most ``max_concurrent`` run at once. A trial that fails (an exception, or its worker
process dying) is retried up to ``max_failures`` times by Tune; the retry finds the trial's own
folder and resumes from its newest checkpoint (:func:`reflect.sweep.trial.run_trial`), so the trial
folders must be on storage every node can reach (Ray Tune asks the same of its own storage on a
multi-node cluster). Ray's own output is kept quiet: one line per finished, retried or failed trial.

This module imports Ray; import it only when Ray is wanted (``pip install "reflect-rl[sweep]"``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

# before Ray is imported: no per-trial result.json/progress.csv/TensorBoard files from Tune (the trial
# folders hold them), and Tune's plain progress reporter, which verbose=0 keeps silent
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray
from ray import tune

from reflect.sweep.plan import Sweep
from reflect.sweep.trial import ERROR_FILE, Trial, run_trial

__all__ = ["RAY_DIR", "RayRunner"]

RAY_DIR = "ray"
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2  # trials pass only small dicts; keep Ray's shared memory small
_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def _trainable(config: dict[str, Any]) -> None:
    """The Tune function trainable: one trial, in the trial folder named by the driver."""
    import torch

    torch.set_num_threads(1)
    job = config["job"]
    run_trial(Trial.from_json(job["trial"]), Path(job["run_dir"]), report=tune.report)


def _error_text(trial: Any) -> str:
    """The newest failure Tune recorded for ``trial`` (its driver-side error file)."""
    path = trial.error_file
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        text = ""
    return text.rsplit("Failure # ", 1)[-1]


def _short_error(text: str | None) -> str:
    """One line on a failure: a dead worker process, or the last ``SomethingError: message`` line."""
    if text and ("ActorDiedError" in text or "The actor died" in text):
        return "its worker process died"
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line if len(line) <= 160 else line[:157] + "..."
    return lines[-1][:160] if lines else "unknown error"


class _Progress(tune.Callback):
    """One line per finished, retried or failed trial; writes ``sweep_error.txt`` for a failed one."""

    def __init__(self, total: int, max_failures: int, log: Callable[[str], None]) -> None:
        self.total, self.max_failures, self.log = total, max_failures, log
        self.ended = 0

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.ended += 1
        result = trial.last_result or {}
        solved = result.get("solved_at_step")
        solved_text = "never solved" if solved is None else f"solved at {solved:,}"
        resumed = result.get("resumed_from_step")
        retried = f", resumed from step {resumed:,}" if isinstance(resumed, int) else ""
        sps = result.get("steps_per_second")
        final = result.get("final_eval_mean_return")
        self.log(
            f"[{self.ended}/{self.total}] {trial}: {solved_text}, "
            f"final eval {final if final is None else f'{final:.1f}'}, "
            f"{sps if sps is None else f'{sps:,.0f}'} steps/s{retried}"
        )

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.log(
            f"{trial}: {_short_error(_error_text(trial))}; retry {trial.num_failures}/{self.max_failures} "
            "from its newest checkpoint"
        )

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.ended += 1
        text = _error_text(trial) or "unknown error"
        run_dir = Path(trial.config["job"]["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR_FILE).write_text(str(text), encoding="utf-8")
        self.log(f"[{self.ended}/{self.total}] {trial}: failed after {trial.num_failures} attempts: "
                 f"{_short_error(text)}")


class RayRunner:
    """Executes batches of trials with Ray Tune; ``address`` None starts Ray on this machine.

    Use as a context manager (Ray is shut down at the end if this runner started it).
    """

    def __init__(
        self,
        sweep: Sweep,
        *,
        address: str | None = None,
        verbose: bool = False,
        log: Callable[[str], None] = print,
    ) -> None:
        self.sweep, self.address, self.verbose, self.log = sweep, address, verbose, log
        self.started_ray = False

    def __enter__(self) -> RayRunner:
        return self

    def _start_ray(self) -> None:
        """Start (or connect to) Ray on first use: a resumed sweep with nothing left to run never does."""
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "logging_level": logging.INFO if self.verbose else logging.ERROR,
                "log_to_driver": self.verbose,
            }
            if self.address is None:
                options.update(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
            ray.init(address=self.address, **options)
            self.started_ray = True
        if not self.verbose:
            logging.getLogger("ray").setLevel(logging.CRITICAL)  # trial errors: our one-line report

    def __exit__(self, *exc: object) -> None:
        if self.started_ray:
            ray.shutdown()

    def __call__(self, trials: list[Trial]) -> None:
        """Run ``trials`` (at most ``max_concurrent`` at once) and return when all have ended."""
        self._start_ray()
        spec = self.sweep.spec
        storage = (self.sweep.directory / RAY_DIR).resolve()
        storage.mkdir(parents=True, exist_ok=True)
        name = f"run_{sum(1 for path in storage.iterdir() if path.is_dir())}"
        jobs = [
            {
                "trial": trial.to_json(),
                "run_dir": str(self.sweep.run_dir(trial).resolve()),
                "name": trial.name,
            }
            for trial in trials
        ]
        resources = spec.resources
        self.log(
            f"running {len(trials)} trial{'s' if len(trials) != 1 else ''}, up to {resources.max_concurrent} "
            f"at a time ({resources.cpus_per_trial:g} CPU each)"
        )
        tuner = tune.Tuner(
            tune.with_resources(_trainable, {"cpu": resources.cpus_per_trial}),
            param_space={"job": tune.grid_search(jobs)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=resources.max_concurrent,
                trial_name_creator=lambda trial: str(trial.config["job"]["name"]),
                trial_dirname_creator=lambda trial: str(trial.config["job"]["name"]),
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(storage),
                verbose=2 if self.verbose else 0,
                failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                callbacks=[_Progress(len(trials), resources.max_failures, self.log)],
            ),
        )
        tuner.fit()
