"""`reflect train / evaluate / plot`: run-folder artifacts, TensorBoard tags, signals and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reflect.agents.config import load_reflect_config
from reflect.cli import main
from reflect.runs.trainer import train

FAST = [
    "--set",
    "network.hidden=[32]",
    "--set",
    "train.eval_every=600",
    "--set",
    "train.eval_episodes=2",
    "--set",
    "train.log_every=200",
    "--set",
    "train.checkpoint_every=600",
    "--no-progress",
    "--quiet",
]
SUMMARY_KEYS = {
    "env",
    "agent",
    "seed",
    "total_steps",
    "solved_at_step",
    "final_eval_mean_return",
    "best_eval_mean_return",
    "stable_from_step",
    "wall_seconds",
    "steps_per_second",
    "version",
}
TAGS = {
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "time/fps",
    "eval/mean_reward",
    "eval/mean_ep_length",
    "train/td_error",
    "train/trace_norm",
    "train/step_size",
    "snn/spike_rate/actor.layers.0",
    "snn/spike_rate/critic.layers.0",
}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "cartpole"
    config = load_reflect_config(
        "CartPole-v1",
        overrides=[
            "network.hidden=[32]",
            "train.total_steps=1200",
            "train.eval_every=600",
            "train.eval_episodes=2",
            "train.log_every=200",
            "train.checkpoint_every=600",
        ],
    )
    run_dir.mkdir()
    train(
        "CartPole-v1",
        config,
        run_dir,
        seed=1,
        command="reflect train --env CartPole-v1",
        progress_bar=False,
        verbose=0,
    )
    return run_dir


def test_run_folder_holds_every_artifact(trained_run: Path) -> None:
    for name in (
        "config.yaml",
        "command.txt",
        "episodes.csv",
        "evaluations.csv",
        "best_model.pt",
        "final_model.pt",
        "summary.json",
        "learning_curve.png",
        "spike_raster.png",
        "hidden_state.png",
        "checkpoints/step_600.pt",
        "checkpoints/step_1200.pt",
    ):
        assert (trained_run / name).is_file(), name
    summary = json.loads((trained_run / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["env"] == "CartPole-v1" and summary["total_steps"] == 1200 and summary["seed"] == 1
    assert summary["steps_per_second"] > 0
    payload = torch.load(trained_run / "final_model.pt", weights_only=True)
    assert payload["num_timesteps"] == 1200
    assert len(payload["run"]["evaluations"]) == 2


def test_the_configured_reward_threshold_decides_what_counts_as_solved(
    trained_run: Path, tmp_path: Path
) -> None:
    registered = json.loads((trained_run / "summary.json").read_text())
    assert registered["reward_threshold"] == 475.0 and registered["solved_at_step"] is None
    config = load_reflect_config(
        "CartPole-v1",
        overrides=["network.hidden=[32]", "train.total_steps=600", "train.eval_every=300",
                   "train.eval_episodes=2", "train.checkpoint_every=0", "train.reward_threshold=5"],
    )
    run_dir = tmp_path / "low-bar"
    run_dir.mkdir()
    train("CartPole-v1", config, run_dir, seed=1, command="", progress_bar=False, verbose=0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["reward_threshold"] == 5.0
    assert summary["solved_at_step"] == 300 and summary["stable_from_step"] == 300


def test_tensorboard_event_file_holds_the_documented_tags(trained_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags >= TAGS, TAGS - tags
    rates = [e.value for e in events.Scalars("snn/spike_rate/actor.layers.0")]
    assert all(0.0 <= r <= 1.0 for r in rates) and max(rates) > 0.0


def test_cli_train_evaluate_plot_through_a_subprocess(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cli = [sys.executable, "-m", "reflect.cli"]
    done = subprocess.run(
        [*cli, "train", "--env", "CartPole-v1", "--total-steps", "600", "--run-dir", str(run_dir), *FAST],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "CartPole-v1 seed 0" in done.stdout
    assert (run_dir / "final_model.pt").is_file()
    assert "reflect train --env CartPole-v1" in (run_dir / "command.txt").read_text()
    evaluated = subprocess.run(
        [*cli, "evaluate", "--checkpoint", str(run_dir / "final_model.pt"), "--episodes", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "mean return" in evaluated.stdout
    (run_dir / "learning_curve.png").unlink()
    plotted = subprocess.run([*cli, "plot", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert plotted.returncode == 0, plotted.stderr
    assert (run_dir / "learning_curve.png").is_file()


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "long"
    cli = [sys.executable, "-m", "reflect.cli"]
    process = subprocess.Popen(
        [*cli, "train", "--env", "CartPole-v1", "--total-steps", "1000000", "--run-dir", str(run_dir), *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not (run_dir / "episodes.csv").is_file() and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] == "SIGTERM"
    checkpoint = run_dir / "checkpoints" / f"step_{summary['total_steps']}.pt"
    assert checkpoint.is_file()
    resumed = tmp_path / "resumed"
    code = main(
        [
            "train",
            "--resume",
            str(checkpoint),
            "--total-steps",
            str(summary["total_steps"] + 200),
            "--run-dir",
            str(resumed),
            "--no-progress",
            "--quiet",
            "--set",
            "train.eval_every=0",
        ]
    )
    assert code == 0
    assert json.loads((resumed / "summary.json").read_text())["total_steps"] == summary["total_steps"] + 200


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
        (["train", "--env", "popgym-BattleshipHard-v0"], "144 action combinations"),
        (["train", "--env", "Pendulum-v1", "--set", "action.squash=sigmoid"], "action.squash"),
        (["train", "--env", "CartPole-v1", "--set", "learner.gama=0.9"], "learner.gama"),
        (["train", "--env", "CartPole-v1", "--set", "learner.gamma=abc"], "learner.gamma"),
        (["train", "--env", "CartPole-v1", "--set", "learner.gamma=1.5"], "gamma must be in [0, 1]"),
        (["train", "--env", "CartPole-v1", "--set", "gamma"], "key=value"),
        (["train", "--env", "reflect/EvidenceAccumulation-v0", "--set", "env_kwargs={dely: 3}"],
         "does not take the arguments given (dely)"),
        (["train", "--env", "reflect/EvidenceAccumulation-v0", "--set", "env_kwargs={delay: -1}"],
         "delay must be an integer >= 0, got -1"),
        (["train", "--env", "CartPole-v1", "--config", "missing.yaml"], "missing.yaml"),
        (["evaluate", "--checkpoint", "nowhere.pt"], "does not exist"),
        (["train", "--env", "Pendulum-v1", "--set", "train.reward_threshold=high"],
         "'train.reward_threshold' must be a float or null, got 'high'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing was created for a run that could not start


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["evaluate", "--checkpoint", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert bad.read_bytes() == b"not a checkpoint"


def test_an_occupied_run_dir_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("precious")
    assert main(["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), *FAST]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert sorted(os.listdir(run_dir)) == ["notes.txt"] and (run_dir / "notes.txt").read_text() == "precious"


def test_render_without_a_renderer_is_a_clear_error(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        import pygame  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pygame is installed: rendering would open a window")
    checkpoint = str(trained_run / "final_model.pt")
    code = main(["evaluate", "--checkpoint", checkpoint, "--episodes", "1", "--render"])
    assert code == 2
    assert "drop --render" in capsys.readouterr().err
