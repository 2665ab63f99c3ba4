"""`reflect sweep` on Ray Tune (skipped where Ray is not installed).

The fast tests run the Tune trainable and the progress callback in this process, without starting Ray.
The slow test runs a real two-trial sweep through Ray with two concurrent trials: one trial's worker
process is killed after its first checkpoint and Tune's retry resumes it from that checkpoint; then
``--resume`` reruns only a trial whose folder was cut back to a checkpoint. Starting Ray and its worker
processes alone takes 20-40 s on a busy 2-core machine, hence ``slow``.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", exc_type=ImportError)
pytest.importorskip("ray.tune", exc_type=ImportError)  # also skips a Ray without Tune's dependencies

from reflect.cli import main
from reflect.sweep import runner
from reflect.sweep.plan import open_sweep
from reflect.sweep.trial import read_state

SPEC = """\
name: ray-tiny
envs: [CartPole-v1]
seeds: [0]
total_steps: {steps}
fixed:
  network.hidden: [16]
  train.eval_every: 1000
  train.eval_episodes: 2
  train.checkpoint_every: 1000
  train.log_every: 500
search:
  method: grid
  space:
    learner.lam: [0.5, 0.9]
resources:
  max_concurrent: 2
  max_failures: 1
debug:
  fail_once_at_step: 1000
  fail_trials: [0]
"""


def test_trainable_reports_evaluations_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC.format(steps=1000).split("debug:")[0])  # no fault injection
    assert main(["sweep", str(spec_file), "--dry-run"]) == 0
    from reflect.sweep.search import grid_points
    from reflect.sweep.spec import load_sweep_spec
    from reflect.sweep.trial import build_trials

    spec, dimensions = load_sweep_spec(spec_file)
    trial = build_trials(spec, grid_points(dimensions))[1]
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(runner.tune, "report", lambda metrics, **_: reports.append(metrics))
    job = {"trial": trial.to_json(), "run_dir": str(tmp_path / trial.name), "name": trial.name}
    runner._trainable({"job": json.loads(json.dumps(job))})  # what Tune hands over: plain JSON values
    assert reports[0]["step"] == 1000 and "eval_return" in reports[0]
    final = reports[-1]
    assert final["finished"] is True and final["total_steps"] == 1000 and final["attempts"] == 1
    for key in ("solved_at_step", "stable_from_step", "final_eval_mean_return", "steps_per_second"):
        assert key in final


def test_progress_lines_and_errors(tmp_path: Path) -> None:
    lines: list[str] = []
    progress = runner._Progress(total=2, max_failures=1, log=lines.append)

    class FakeTrial:
        def __init__(self, error: str = "") -> None:
            self.last_result = {"solved_at_step": 15000, "final_eval_mean_return": 500.0,
                                "steps_per_second": 2345.6, "resumed_from_step": 10000}
            self.num_failures = 1
            self.config = {"job": {"run_dir": str(tmp_path / "t")}}
            self.error_file = None
            if error:
                self.error_file = str(tmp_path / "error.txt")
                Path(self.error_file).write_text(error)

        def __str__(self) -> str:
            return "p0__CartPole-v1__s0"

    progress.on_trial_complete(0, [], FakeTrial())
    assert lines[-1] == ("[1/2] p0__CartPole-v1__s0: solved at 15,000, final eval 500.0, 2,346 steps/s, "
                         "resumed from step 10,000")
    died = "Failure # 1 (occurred at now)\nray.exceptions.ActorDiedError: The actor died unexpectedly\n"
    progress.on_trial_recover(0, [], FakeTrial(died))
    assert lines[-1] == "p0__CartPole-v1__s0: its worker process died; retry 1/1 from its newest checkpoint"
    raised = "Failure # 1\nTraceback (most recent call last):\n  File x\nValueError: bad things\n"
    progress.on_trial_error(0, [], FakeTrial(raised))
    assert lines[-1] == "[2/2] p0__CartPole-v1__s0: failed after 1 attempts: ValueError: bad things"
    assert "ValueError: bad things" in (tmp_path / "t" / "sweep_error.txt").read_text()


@pytest.mark.slow
def test_sweep_on_ray_retries_a_killed_trial_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC.format(steps=3000))
    sweep_dir = tmp_path / "sweep"
    assert main(["sweep", str(spec_file), "--sweep-dir", str(sweep_dir)]) == 0
    captured = capsys.readouterr()
    assert "p0__CartPole-v1__s0: its worker process died; retry 1/1 from its newest" in captured.err
    assert "sweep ray-tiny: 2 trials (2 finished)" in captured.out
    for name in ("results.csv", "summary.txt", "learning_curves.png", "spec.yaml", "points.json"):
        assert (sweep_dir / name).is_file()
    with (sweep_dir / "results.csv").open() as file:
        rows = {row["trial"]: row for row in csv.DictReader(file)}
    killed, other = rows["p0__CartPole-v1__s0"], rows["p1__CartPole-v1__s0"]
    assert killed["status"] == other["status"] == "finished"
    assert killed["total_steps"] == other["total_steps"] == "3000"
    assert (killed["attempts"], other["attempts"]) == ("2", "1")
    state = read_state(sweep_dir / "trials" / "p0__CartPole-v1__s0")
    resumed_from = state["attempts"][1]["resumed_from_step"]
    assert resumed_from is not None and resumed_from >= state["fault_injected_at_step"] >= 1000
    evaluations = (sweep_dir / "trials" / "p0__CartPole-v1__s0" / "evaluations.csv").read_text()
    assert [line.split(",")[0] for line in evaluations.splitlines()[1:]] == ["1000", "2000", "3000"]

    # an interrupted sweep: trial p1 lost everything after its checkpoint at 2000; p0 is finished
    trial_dir = sweep_dir / "trials" / "p1__CartPole-v1__s0"
    for name in ("summary.json", "final_model.pt", "checkpoints/step_3000.pt"):
        (trial_dir / name).unlink(missing_ok=True)
    shutil.rmtree(sweep_dir / "trials" / "p0__CartPole-v1__s0" / "checkpoints")  # must not be needed
    assert main(["sweep", "--resume", str(sweep_dir)]) == 0
    captured = capsys.readouterr()
    assert "1 trial already finished: skipped" in captured.err and "running 1 trial" in captured.err
    assert [a["resumed_from_step"] for a in read_state(trial_dir)["attempts"]] == [None, 2000]
    assert len(read_state(sweep_dir / "trials" / "p0__CartPole-v1__s0")["attempts"]) == 2
    assert [trial.name for trial in open_sweep(sweep_dir).trials] == list(rows)
