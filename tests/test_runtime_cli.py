"""``reflect run``: a CartPole checkpoint driven in real time, frozen and learning; bad input; SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reflect.agents import Reflect
from reflect.checkpoints import load_checkpoint
from reflect.cli import main

SMALL = {"network": {"hidden": [16]}}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "cartpole.pt"
    Reflect("CartPole-v1", SMALL, seed=0).learn(100).save(path)
    return path


def test_learning_run_prints_the_report_and_saves_beside_the_checkpoint(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = checkpoint.read_bytes()
    code = main(["run", "--checkpoint", str(checkpoint), "--rate-hz", "1000", "--steps", "200", "--learn"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "200 ticks at 1000 Hz (period 1,000 µs)" in out and "learning, act-first" in out
    assert "deadline misses:" in out and "act+observe" in out and "lateness" in out
    assert "episode     1  return" in out and "episodes:" in out
    saved = checkpoint.with_name("cartpole_run.pt")
    assert f"saved {saved} (300 steps learned)" in err
    assert load_checkpoint(saved)["num_timesteps"] == 300
    assert checkpoint.read_bytes() == original  # the input checkpoint is never overwritten unasked

    code = main(["run", "--checkpoint", str(checkpoint), "--rate-hz", "1000", "--steps", "10", "--learn"])
    assert code == 2 and "already exists" in capsys.readouterr().err  # nor an earlier run's output
    # resume: continue the saved run into the same file, named explicitly
    code = main(["run", "--checkpoint", str(saved), "--rate-hz", "1000", "--steps", "50", "--learn",
                 "--out", str(saved), "--quiet", "--env", "CartPole-v1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "episode " not in out.replace("episodes:", "")
    assert load_checkpoint(saved)["num_timesteps"] == 350


def test_frozen_run_saves_nothing(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--checkpoint", str(checkpoint), "--rate-hz", "2000", "--duration", "0.1",
                 "--stochastic", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "frozen" in out and "saved" not in err
    assert {p.name for p in checkpoint.parent.iterdir()} <= {"cartpole.pt", "cartpole_run.pt"}
    assert main(["run", "--checkpoint", str(checkpoint), "--steps", "3", "--quiet"]) == 0
    assert "3 ticks at 50 Hz" in capsys.readouterr().out  # by default the env's real-time rate


def test_a_checkpoint_of_several_streams_runs_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = Reflect("CartPole-v1", {**SMALL, "train": {"num_envs": 2}}, seed=0).learn(100)
    path = tmp_path / "two.pt"
    trained.save(path)
    code = main(["run", "--checkpoint", str(path), "--rate-hz", "2000", "--steps", "50", "--learn",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    saved = load_checkpoint(tmp_path / "two_run.pt")
    assert saved["num_envs"] == 1 and saved["num_timesteps"] == trained.num_timesteps + 50
    # the statistics the two streams gathered went on: 100 observations then 50 of the one stream
    assert saved["obs_normalizer"]["rms"]["count"] == 150


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rate-hz", "0"], "rate_hz must be a finite number in (0, 10,000] Hz, got 0.0"),
        (["--rate-hz", "-3"], "rate_hz must be a finite number"),
        (["--rate-hz", "nan"], "got nan"),
        (["--rate-hz", "1e6"], "got 1000000.0"),
        (["--env", "Acrobot-v1"], "--env Acrobot-v1 does not match the checkpoint's env CartPole-v1; drop"),
        (["--out", "x.pt"], "--out and --checkpoint-every need --learn"),
        (["--checkpoint-every", "5"], "need --learn"),
        (["--learn", "--stochastic", "--out", "x.pt"], "--stochastic is for frozen runs"),
        (["--realtime-priority", "100"], "real-time priority must be an integer in [1, 99]"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    checkpoint: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["run", "--checkpoint", str(checkpoint), "--steps", "5", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reflect run: error:") and message in err and "\n" not in err


def test_a_missing_or_corrupt_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["run", "--checkpoint", str(tmp_path / "bad.pt")]) == 2
    assert "corrupt or not a reflect checkpoint" in capsys.readouterr().err


def test_sigterm_stops_saves_and_exits_143(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.pt"
    process = subprocess.Popen(
        [sys.executable, "-m", "reflect.cli", "run", "--checkpoint", str(checkpoint), "--rate-hz", "500",
         "--learn", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    header = process.stderr.readline()
    assert "until Ctrl-C" in header, header
    first = process.stdout.readline()  # an episode has ended: the loop is running, the handlers are in
    assert first.startswith("episode     1"), first
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=0.3)  # still running: it stops only on a signal
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and f"saved {out}" in stderr
    assert "deadline misses:" in stdout
    assert load_checkpoint(out)["num_timesteps"] > 100


def test_spin_option_busy_waits_and_rejects_negative_values(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--checkpoint", str(checkpoint), "--rate-hz", "1000", "--steps", "50",
                 "--spin-us", "5000", "--quiet"]) == 0
    assert "50 ticks at 1000 Hz" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--checkpoint", str(checkpoint), "--spin-us", "-1"])
    assert stopped.value.code == 2
    assert "--spin-us: must be a finite number of microseconds >= 0" in capsys.readouterr().err
