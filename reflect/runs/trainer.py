"""``reflect train``: one run of the REFLECT agent, with everything a run folder holds.

Run folder (the artifacts README.md lists under "Training")::

    config.yaml  command.txt  events.out.tfevents.*  episodes.csv  evaluations.csv
    checkpoints/step_<N>.pt  best_model.pt  final_model.pt  summary.json
    learning_curve.png  spike_raster.png  hidden_state.png

Faults, and what a run does about them:

* Ctrl-C / SIGTERM stop the run at the next step boundary and write ``checkpoints/step_<N>.pt`` (resume
  with ``--resume``) and ``summary.json``; a second Ctrl-C aborts at once.
* A write that fails (full disk, lost permission, read-only file system) never stops training: one
  warning names the file, the reason and the fix, and the write is retried (see
  :class:`~reflect.runs.callbacks.WriteGuard`). The final save is tried ``save_attempts`` times, then
  in a fresh folder under the system's temporary directory; if that fails too, :class:`RunSaveError`.
* NaN or inf in an update (the learner raises ``FloatingPointError`` before applying it) stops the run
  without saving anything after the last good checkpoint; ``summary.json`` gets ``status: failed``
  and the error is raised again with the checkpoint to resume from.
* A kill (``kill -9``, a power cut) leaves every written checkpoint loadable (atomic writes); resuming
  from one continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from reflect import __version__
from reflect.agents.config import ReflectConfig
from reflect.agents.reflect_agent import AGENT_NAME, Reflect
from reflect.atomic_files import remove_stale_temp_files, write_bytes_atomic, write_text_atomic
from reflect.config import to_dict
from reflect.envs import env_spec, make_single_env
from reflect.learning import compile_steps
from reflect.runs.callbacks import (
    CheckpointCallback,
    EpisodeCsvCallback,
    EvaluationCallback,
    GuardedSummaryWriter,
    StopFlagCallback,
    TensorBoardCallback,
    WriteGuard,
    agent_checkpoint_bytes,
    append_rows,
    quiet_tensorboard_threads,
)
from reflect.runs.evaluation import EVAL_SEED_OFFSET, EvaluationResult
from reflect.runs.resume import check_resume_config
from reflect.runs.run_dir import CHECKPOINTS_DIR, RunDirError, os_error_fix, os_error_reason
from reflect.runs.summary import (
    EvaluationRecord,
    append_evaluation_csv,
    solved_at_step,
    stable_from_step,
    write_evaluations_csv,
)
from reflect.stop_signals import stop_on_signals

SAVE_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 5.0
RESCUE_PREFIX = "reflect-rescue-"


class RunSaveError(RuntimeError):
    """The final state of a run could be written neither to the run folder nor to a fallback folder."""


@dataclass
class TrainResult:
    """What a run produced: its folder, its summary, the signal that stopped it (if any), the checkpoint
    holding its final state (``final_model.pt``, ``checkpoints/step_<N>.pt`` after a signal, or a file
    in a fallback folder when the run folder could not be written) and how many writes failed."""

    run_dir: Path
    summary: dict[str, Any]
    interrupted: str | None
    saved: Path | None = None
    write_errors: int = 0

    @property
    def rescued(self) -> bool:
        """The final state went to a fallback folder, not into the run folder."""
        return self.saved is not None and self.run_dir not in self.saved.parents


def reward_threshold(env_id: str, configured: float | None = None) -> float | None:
    """The mean evaluation return that counts as solved: ``configured`` (the config's
    ``train.reward_threshold``) when given, else the env's registered ``reward_threshold`` (CartPole-v1:
    475), else None (``module:EnvId`` imports the module first)."""
    if configured is not None:
        return float(configured)
    spec = env_spec(env_id)
    return None if spec.reward_threshold is None else float(spec.reward_threshold)


def _stop_flag_handler(flag: StopFlagCallback) -> Callable[[str], None]:
    """The run's reaction to SIGINT/SIGTERM: set ``flag.reason`` (the loop then stops cleanly and saves a
    checkpoint); a second SIGINT aborts at once."""

    def on_signal(name: str) -> None:
        if flag.reason is not None and name == "SIGINT":
            raise KeyboardInterrupt
        flag.reason = name
        print(f"\n{name} received: stopping after this step and saving a checkpoint ...", file=sys.stderr)

    return on_signal


class _RunRecorder:
    """Evaluation history, ``evaluations.csv``, the best model and the TensorBoard eval scalars of a run.

    A failed write of ``evaluations.csv`` marks it stale (the whole history is rewritten at the next
    chance); a best model that cannot be written is kept in memory as bytes until it can.
    """

    CSV = "evaluations.csv"
    BEST = "the best model"

    def __init__(
        self,
        agent: Reflect,
        run_dir: Path,
        writer: Any,
        threshold: float | None,
        history: list[EvaluationRecord],
        verbose: int,
        guard: WriteGuard,
    ) -> None:
        self.agent, self.run_dir, self.writer, self.threshold = agent, run_dir, writer, threshold
        self.history = history
        self.best = max((r.mean_return for r in history), default=None)
        self.verbose = verbose
        self.guard = guard
        self.csv_path = run_dir / "evaluations.csv"
        self.csv_stale = bool(history)  # a resumed run starts its file with the evaluations it carries
        self.best_path = run_dir / "best_model.pt"

    def on_evaluation(self, record: EvaluationRecord, result: EvaluationResult) -> None:
        self.history.append(record)
        self.agent.run_info["evaluations"] = [list(r) for r in self.history]  # saved with every checkpoint
        self.write_csv(record)
        self.writer.add_scalar("eval/mean_reward", record.mean_return, record.step)
        self.writer.add_scalar("eval/mean_ep_length", record.mean_length, record.step)
        if self.best is None or record.mean_return > self.best:
            self.best = record.mean_return
            self.save_best()
        self.guard.retry_pending()
        if self.verbose:
            tqdm.write(
                f"step {record.step:>9,}  eval return {record.mean_return:8.1f} +- {record.std_return:6.1f}"
                f"  (best {self.best:.1f})",
                file=sys.stderr,
            )

    def write_csv(self, record: EvaluationRecord | None = None) -> bool:
        """Append ``record`` (or rewrite the whole history when an earlier write failed)."""
        path = self.csv_path
        if self.csv_stale or record is None:
            history = list(self.history)
            write: Any = lambda: write_evaluations_csv(path, history)  # noqa: E731
        else:
            write = lambda: append_rows(path, append_evaluation_csv, [(record,)])  # noqa: E731
        then = "Training goes on; evaluations are kept in memory and the file is rewritten once it can be."
        ok = self.guard.attempt(self.CSV, path, write, then)
        self.csv_stale = not ok
        if not ok:
            self.guard.defer(self.CSV, self.write_csv)
        return ok

    def save_best(self) -> None:
        data, path = agent_checkpoint_bytes(self.agent), self.best_path

        def write() -> bool:
            then = "Training goes on; the best model is kept in memory and written at the next checkpoint."
            return self.guard.attempt(self.BEST, path, lambda: write_bytes_atomic(path, data), then)

        if not write():
            self.guard.defer(self.BEST, write)


def _history_from(payload: Mapping[str, Any] | None) -> list[EvaluationRecord]:
    if payload is None:
        return []
    rows = payload.get("run", {}).get("evaluations", [])
    return [EvaluationRecord(int(s), float(m), float(sd), float(n)) for s, m, sd, n in rows]


def build_summary(
    env_id: str,
    seed: int,
    agent: Reflect,
    history: list[EvaluationRecord],
    threshold: float | None,
    wall_seconds: float,
    learn_seconds: float,
    learned_steps: int,
    interrupted: str | None,
    *,
    status: str = "completed",
    reason: str | None = None,
    last_checkpoint: Path | None = None,
    write_errors: int = 0,
) -> dict[str, Any]:
    """``summary.json``: the keys README.md documents, plus ``reward_threshold``, ``interrupted`` (the
    signal that stopped the run), ``status`` (``completed``, ``stopped`` or ``failed``), ``reason`` (why
    it stopped or failed), ``last_checkpoint`` (the newest file to resume from) and ``write_errors``
    (writes that failed, e.g. on a full disk)."""
    return {
        "env": env_id,
        "agent": AGENT_NAME,
        "seed": seed,
        "total_steps": agent.num_timesteps,
        "solved_at_step": None if threshold is None else solved_at_step(history, threshold),
        "final_eval_mean_return": history[-1].mean_return if history else None,
        "best_eval_mean_return": max((r.mean_return for r in history), default=None),
        "stable_from_step": None if threshold is None else stable_from_step(history, threshold),
        "wall_seconds": round(wall_seconds, 3),
        "steps_per_second": round(learned_steps / learn_seconds, 1) if learn_seconds > 0 else None,
        "version": __version__,
        "reward_threshold": threshold,
        "interrupted": interrupted,
        "status": status,
        "reason": reason,
        "last_checkpoint": None if last_checkpoint is None else str(last_checkpoint),
        "write_errors": write_errors,
    }


def _clean_stale_temp_files(*paths: Path | None) -> None:
    """Remove temporary files killed writers left beside ``paths`` (a resumed checkpoint's folder and,
    for ``checkpoints/``, its run folder)."""
    folders: set[Path] = set()
    for path in paths:
        if path is None:
            continue
        folder = path if path.is_dir() else path.parent
        folders.add(folder)
        if folder.name == CHECKPOINTS_DIR:
            folders.add(folder.parent)
    for folder in folders:
        remove_stale_temp_files(folder)


def save_final(
    agent: Reflect,
    path: Path,
    guard: WriteGuard,
    *,
    what: str = "the final model",
    attempts: int = SAVE_ATTEMPTS,
    pause: float = RETRY_PAUSE_SECONDS,
    last_checkpoint: Path | None = None,
) -> Path:
    """Write ``agent``'s checkpoint to ``path``; on ``OSError`` try ``attempts`` times in all, ``pause``
    seconds apart (Ctrl-C skips the waiting), then in a new folder ``reflect-rescue-*`` under the
    system's temporary directory. Returns the path written.

    Raises:
        FloatingPointError: the state holds NaN or inf (nothing is written).
        RunSaveError: no location could be written; the message says nothing was saved and names
            ``last_checkpoint``, the newest state that was.
    """
    data = agent_checkpoint_bytes(agent)
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        then = (
            "Trying a fallback folder."
            if last
            else f"Trying again ({attempts} attempts, {pause:g} s apart), then a fallback folder."
        )
        if guard.attempt(what, path, lambda: write_bytes_atomic(path, data), then):
            return path
        if not last:
            try:
                time.sleep(pause)
            except KeyboardInterrupt:
                break
    error = guard.last_error
    reason = os_error_reason(error) if error is not None else "unknown error"
    rescue_dir: Path | None = None
    try:
        rescue_dir = Path(tempfile.mkdtemp(prefix=f"{RESCUE_PREFIX}{path.parent.name}-"))
        rescue = rescue_dir / path.name
        write_bytes_atomic(rescue, data)
    except OSError as rescue_error:
        where = f"'{rescue_dir}'" if rescue_dir is not None else f"'{tempfile.gettempdir()}'"
        previous = (
            f"the newest state on disk is '{last_checkpoint}'"
            if last_checkpoint is not None
            else "no checkpoint of this run was written"
        )
        fix = os_error_fix(error) if error is not None else "free disk space or fix the permissions"
        raise RunSaveError(
            f"cannot save {what}: writing '{path}' failed ({reason}) and so did the fallback folder "
            f"{where} ({os_error_reason(rescue_error)}); nothing of the final state was written and "
            f"{previous}; {fix}, then train again"
        ) from rescue_error
    guard.warn(
        f"warning: saved {what} to '{rescue}' because '{path}' could not be written ({reason}); "
        f"resume with: reflect train --resume {rescue}"
    )
    return rescue


def train(
    env_id: str,
    config: ReflectConfig,
    run_dir: Path,
    *,
    seed: int = 0,
    resume: Mapping[str, Any] | None = None,
    resume_path: Path | None = None,
    command: str = "",
    progress_bar: bool = True,
    verbose: int = 1,
    plots: bool = True,
    callback: Any = None,
    save_attempts: int | None = None,
    retry_pause: float | None = None,
    on_start: Callable[[], None] | None = None,
) -> TrainResult:
    """Train in ``run_dir`` (already created, empty) until ``config.train.total_steps`` steps in total.

    ``resume``: a checkpoint payload; training continues exactly where it stopped (``config`` may differ
    from the checkpoint's only in the settings :mod:`reflect.runs.resume` allows). ``resume_path``:
    the file it came from (the checkpoint to name if this run fails before writing one; temporary files
    a killed writer left beside it are removed). ``callback``: more callbacks for
    :meth:`Reflect.learn`, called before the run's own at every step. ``save_attempts`` and
    ``retry_pause``: how often and how far apart the final save is tried before the fallback folder
    (default :data:`SAVE_ATTEMPTS`, :data:`RETRY_PAUSE_SECONDS`). ``on_start``: called once the agent
    and the environments are built, before the first file is written into ``run_dir``.

    Everything that can fail on bad input (the config against the checkpoint, the agent, the
    environments) is built before anything is written, so such a failure leaves ``run_dir`` as it was.

    Raises:
        ResumeConfigError: ``config`` changes a setting the checkpoint fixes (nothing written).
        RunDirError: ``config.yaml`` or ``command.txt`` cannot be written (before training starts).
        FloatingPointError: NaN or inf stopped the run; the message names the last good checkpoint.
        RunSaveError: the final state could not be written anywhere (see :func:`save_final`).
    """
    wall_start = time.perf_counter()
    save_attempts = SAVE_ATTEMPTS if save_attempts is None else save_attempts
    retry_pause = RETRY_PAUSE_SECONDS if retry_pause is None else retry_pause
    if resume is not None:
        check_resume_config(resume["config"], config)
    agent, eval_env, threshold = _build(env_id, config, seed, resume)
    try:
        compile_steps(agent.learner, verbose)
        if on_start is not None:
            on_start()
        _write_run_files(run_dir, {"env": env_id, "seed": seed, **to_dict(config)}, command)
    except BaseException:
        eval_env.close()
        agent.env.close()
        raise
    _clean_stale_temp_files(resume_path)
    history = _history_from(resume)
    guard = WriteGuard()
    writer = GuardedSummaryWriter(run_dir, guard)
    recorder = _RunRecorder(agent, run_dir, writer, threshold, history, verbose, guard)
    if recorder.csv_stale:
        recorder.write_csv()
    schedule = config.train
    evaluation = EvaluationCallback(
        eval_env, schedule.eval_every, schedule.eval_episodes, seed + EVAL_SEED_OFFSET, recorder.on_evaluation
    )
    checkpoints = CheckpointCallback(run_dir / CHECKPOINTS_DIR, schedule.checkpoint_every, guard)
    episodes = EpisodeCsvCallback(run_dir / "episodes.csv", guard)
    stop = StopFlagCallback()
    callbacks = [
        *([] if callback is None else [callback]),
        episodes,
        TensorBoardCallback(writer, schedule.log_every),
        evaluation,
        checkpoints,
        stop,
    ]
    remaining = max(schedule.total_steps - agent.num_timesteps, 0)
    start_steps = agent.num_timesteps
    failure: FloatingPointError | None = None
    save_failure: RunSaveError | None = None
    saved: Path | None = None
    learn_seconds = 0.0
    learn_start = time.perf_counter()
    try:
        with quiet_tensorboard_threads():
            try:
                with stop_on_signals(_stop_flag_handler(stop)):
                    agent.learn(remaining, callback=callbacks, progress_bar=progress_bar)
                learn_seconds = time.perf_counter() - learn_start - evaluation.seconds - checkpoints.seconds
                if stop.reason is None:
                    if schedule.eval_every > 0 and (not history or history[-1].step != agent.num_timesteps):
                        evaluation.num_timesteps = agent.num_timesteps
                        evaluation.evaluate_now()
                    saved = save_final(
                        agent, run_dir / "final_model.pt", guard, attempts=save_attempts, pause=retry_pause,
                        last_checkpoint=checkpoints.last_saved or resume_path,
                    )
                else:
                    saved = save_final(
                        agent, run_dir / CHECKPOINTS_DIR / f"step_{agent.num_timesteps}.pt", guard,
                        what="the final checkpoint", attempts=save_attempts, pause=retry_pause,
                        last_checkpoint=checkpoints.last_saved or resume_path,
                    )
                    print(f"saved {saved}; resume with: reflect train --resume {saved}", file=sys.stderr)
            except FloatingPointError as error:
                failure = error
                learn_seconds = learn_seconds or (
                    time.perf_counter() - learn_start - evaluation.seconds - checkpoints.seconds
                )
            except RunSaveError as error:
                save_failure = error
            finally:
                episodes.flush()
                guard.retry_pending()
                writer.close()
    finally:
        eval_env.close()
        agent.env.close()
    last_good = saved or checkpoints.last_saved or resume_path
    if failure is not None:
        status, reason = "failed", f"numerical error: {failure}"
    elif save_failure is not None:
        status, reason = "failed", str(save_failure)
    elif stop.reason is not None:
        status, reason = "stopped", f"{stop.reason} received"
    else:
        status, reason = "completed", None
    summary = build_summary(
        env_id,
        seed,
        agent,
        recorder.history,
        threshold,
        time.perf_counter() - wall_start,
        learn_seconds,
        agent.num_timesteps - start_steps,
        stop.reason,
        status=status,
        reason=reason,
        last_checkpoint=last_good,
        write_errors=guard.failures,
    )
    _write_summary(summary, run_dir, saved, guard)
    if failure is not None:
        raise FloatingPointError(_failure_message(failure, agent.num_timesteps, last_good)) from failure
    if save_failure is not None:
        raise save_failure
    if plots and stop.reason is None:
        from reflect.runs.plot_run import plot_run

        guard.attempt("the plots", run_dir, lambda: plot_run(run_dir), "The checkpoints are unaffected.")
    return TrainResult(run_dir, summary, stop.reason, saved, guard.failures)


def _build(
    env_id: str, config: ReflectConfig, seed: int, resume: Mapping[str, Any] | None
) -> tuple[Reflect, Any, float | None]:
    """The run's agent (with the checkpoint's state), its evaluation env and its reward threshold;
    whatever was built is closed again when a later part fails."""
    agent = Reflect(env_id, config, seed=seed)
    try:
        if resume is not None:
            agent.load_state(resume)
        threshold = reward_threshold(env_id, config.train.reward_threshold)
        eval_env = make_single_env(env_id, **config.env_arguments)
    except BaseException:
        agent.env.close()
        raise
    return agent, eval_env, threshold


def _write_run_files(run_dir: Path, run_config: dict[str, Any], command: str) -> None:
    """``config.yaml`` and ``command.txt``; raises RunDirError when they cannot be written."""
    try:
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(run_config, sort_keys=False))
        write_text_atomic(run_dir / "command.txt", command + "\n")
    except OSError as error:
        raise RunDirError(
            f"cannot write to run directory '{run_dir}': {os_error_reason(error)}; {os_error_fix(error)}"
        ) from error


def _write_summary(summary: dict[str, Any], run_dir: Path, saved: Path | None, guard: WriteGuard) -> None:
    text = json.dumps(summary, indent=2) + "\n"
    folders = [run_dir]
    if saved is not None and run_dir not in saved.parents:
        folders.append(saved.parent)  # beside the final state in the fallback folder, too
    for folder in folders:
        path = folder / "summary.json"
        guard.attempt("summary.json", path, partial(write_text_atomic, path, text),
                      "Its main numbers are on the run's last line on the console.")


def _failure_message(error: FloatingPointError, step: int, last_good: Path | None) -> str:
    if last_good is None:
        where = "no checkpoint had been written yet"
    else:
        where = f"the last good checkpoint is '{last_good}' (resume with: reflect train --resume {last_good})"
    return (
        f"{error} (after step {step:,}); the run stopped and saved nothing after that point: {where}. "
        "Fix the environment's rewards or observations, or lower the step sizes (learner.actor_lr, "
        "learner.critic_lr), before resuming"
    )
