"""``reflect train``: one run of the REFLECT agent, with everything a run folder holds.

Run folder (design section 7)::

    config.yaml  command.txt  events.out.tfevents.*  episodes.csv  evaluations.csv
    checkpoints/step_<N>.pt  best_model.pt  final_model.pt  summary.json
    learning_curve.png  spike_raster.png

Ctrl-C / SIGTERM stop the run at the next step boundary and write ``checkpoints/step_<N>.pt`` (resume
with ``--resume``) and ``summary.json``; a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from reflect import __version__
from reflect.agents.config import ReflectConfig
from reflect.agents.reflect_agent import AGENT_NAME, Reflect
from reflect.atomic_files import write_text_atomic
from reflect.config import to_dict
from reflect.envs import make_single_env
from reflect.runs.callbacks import (
    CheckpointCallback,
    EpisodeCsvCallback,
    EvaluationCallback,
    StopFlagCallback,
    TensorBoardCallback,
)
from reflect.runs.evaluation import EVAL_SEED_OFFSET, EvaluationResult
from reflect.runs.summary import (
    EvaluationRecord,
    append_evaluation_csv,
    solved_at_step,
    stable_from_step,
)

SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class TrainResult:
    """What a run produced: its folder, its summary, and the signal that stopped it (if any)."""

    run_dir: Path
    summary: dict[str, Any]
    interrupted: str | None


def reward_threshold(env_id: str) -> float | None:
    """The env's registered ``reward_threshold`` (CartPole-v1: 475), or None."""
    import gymnasium as gym

    spec = gym.spec(env_id)
    return None if spec.reward_threshold is None else float(spec.reward_threshold)


@contextmanager
def _stop_on_signals(flag: StopFlagCallback) -> Iterator[None]:
    """SIGINT/SIGTERM set ``flag.reason`` (the loop then stops cleanly); a second SIGINT aborts."""

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if flag.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.reason = name
        print(f"\n{name} received: stopping after this step and saving a checkpoint ...", file=sys.stderr)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in previous:
            signal.signal(s, handler)
    except ValueError:  # not the main thread: signals stay as they are
        previous = {}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _RunRecorder:
    """Evaluation history, best model and the TensorBoard eval scalars of one run."""

    def __init__(
        self,
        agent: Reflect,
        run_dir: Path,
        writer: Any,
        threshold: float | None,
        history: list[EvaluationRecord],
        verbose: int,
    ) -> None:
        self.agent, self.run_dir, self.writer, self.threshold = agent, run_dir, writer, threshold
        self.history = history
        self.best = max((r.mean_return for r in history), default=None)
        self.verbose = verbose

    def on_evaluation(self, record: EvaluationRecord, result: EvaluationResult) -> None:
        self.history.append(record)
        self.agent.run_info["evaluations"] = [list(r) for r in self.history]  # saved with every checkpoint
        append_evaluation_csv(self.run_dir / "evaluations.csv", record)
        self.writer.add_scalar("eval/mean_reward", record.mean_return, record.step)
        self.writer.add_scalar("eval/mean_ep_length", record.mean_length, record.step)
        if self.best is None or record.mean_return > self.best:
            self.best = record.mean_return
            self.agent.save(self.run_dir / "best_model.pt")
        if self.verbose:
            tqdm.write(
                f"step {record.step:>9,}  eval return {record.mean_return:8.1f} +- {record.std_return:6.1f}"
                f"  (best {self.best:.1f})",
                file=sys.stderr,
            )


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
) -> dict[str, Any]:
    """``summary.json`` (keys of design section 7, plus ``reward_threshold`` and ``interrupted``)."""
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
    }


def train(
    env_id: str,
    config: ReflectConfig,
    run_dir: Path,
    *,
    seed: int = 0,
    resume: Mapping[str, Any] | None = None,
    command: str = "",
    progress_bar: bool = True,
    verbose: int = 1,
    plots: bool = True,
) -> TrainResult:
    """Train in ``run_dir`` (already created, empty) until ``config.train.total_steps`` steps in total.

    ``resume``: a checkpoint payload; training continues exactly where it stopped.
    """
    from torch.utils.tensorboard import SummaryWriter

    wall_start = time.perf_counter()
    run_config = {"env": env_id, "seed": seed, **to_dict(config)}
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(run_config, sort_keys=False))
    write_text_atomic(run_dir / "command.txt", command + "\n")
    agent = Reflect(env_id, config, seed=seed)
    if resume is not None:
        agent.load_state(resume)
    threshold = reward_threshold(env_id)
    history = _history_from(resume)
    writer = SummaryWriter(log_dir=str(run_dir))
    recorder = _RunRecorder(agent, run_dir, writer, threshold, history, verbose)
    schedule = config.train
    eval_env = make_single_env(env_id)
    evaluation = EvaluationCallback(
        eval_env, schedule.eval_every, schedule.eval_episodes, seed + EVAL_SEED_OFFSET, recorder.on_evaluation
    )
    checkpoints = CheckpointCallback(run_dir / "checkpoints", schedule.checkpoint_every)
    stop = StopFlagCallback()
    callbacks = [
        EpisodeCsvCallback(run_dir / "episodes.csv"),
        TensorBoardCallback(writer, schedule.log_every),
        evaluation,
        checkpoints,
        stop,
    ]
    remaining = max(schedule.total_steps - agent.num_timesteps, 0)
    start_steps = agent.num_timesteps
    learn_start = time.perf_counter()
    try:
        with _stop_on_signals(stop):
            agent.learn(remaining, callback=callbacks, progress_bar=progress_bar)
        learn_seconds = time.perf_counter() - learn_start - evaluation.seconds - checkpoints.seconds
        if stop.reason is None:
            if schedule.eval_every > 0 and (not history or history[-1].step != agent.num_timesteps):
                evaluation.num_timesteps = agent.num_timesteps
                evaluation.evaluate_now()
            agent.save(run_dir / "final_model.pt")
        else:
            path = agent.save(run_dir / "checkpoints" / f"step_{agent.num_timesteps}.pt")
            print(f"saved {path}; resume with: reflect train --resume {path}", file=sys.stderr)
    finally:
        writer.close()
        eval_env.close()
        agent.env.close()
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
    )
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if plots and stop.reason is None:
        from reflect.runs.plot_run import plot_run

        plot_run(run_dir)
    return TrainResult(run_dir, summary, stop.reason)
