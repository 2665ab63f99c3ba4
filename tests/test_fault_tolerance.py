"""Runs that survive faults: atomic checkpoints under a crash, exact resume after ``kill -9``, the NaN
guard, and full or unwritable disks (injected as real ``OSError``s at the file-opening calls)."""

from __future__ import annotations

import builtins
import errno
import functools
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from reflect.agents import Reflect
from reflect.agents.callbacks import ReflectCallback
from reflect.agents.config import load_reflect_config
from reflect.atomic_files import is_temp_file, remove_stale_temp_files
from reflect.checkpoints import (
    CheckpointError,
    checkpoint_step,
    find_non_finite,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from reflect.cli import main
from reflect.commands.train import resume_file
from reflect.runs import trainer
from reflect.runs.callbacks import WriteGuard
from reflect.runs.trainer import save_final, train

FAST = [
    "--set", "network.hidden=[16]",
    "--set", "train.eval_every=300",
    "--set", "train.eval_episodes=2",
    "--set", "train.log_every=100",
    "--set", "train.checkpoint_every=300",
    "--no-progress",
    "--quiet",
]
NAN_ENV = "ReflectTestNaNReward-v0"
if NAN_ENV not in gym.registry:
    gym.register(NAN_ENV, entry_point="tasks:NaNRewardEnv", kwargs={"nan_after": 700}, max_episode_steps=50)


def fast_config(total: int) -> Any:
    return load_reflect_config(
        "CartPole-v1",
        overrides=[
            "network.hidden=[16]",
            f"train.total_steps={total}",
            "train.eval_every=300",
            "train.eval_episodes=2",
            "train.log_every=100",
            "train.checkpoint_every=300",
        ],
    )


class FaultyDisk:
    """While ``on``, opening a file for writing anywhere under ``root`` raises ``OSError(code)``, as a
    full disk (ENOSPC), a lost permission (EACCES) or a read-only remount (EROFS) does. Covers
    ``os.open`` (atomic writes), ``open``/``io.open`` (CSV appends, TensorBoard's event file)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path, code: int) -> None:
        self.root, self.code, self.on, self.hits = os.path.abspath(root), code, False, 0
        real_os_open, real_open = os.open, builtins.open

        def check(path: Any, writing: bool) -> None:
            if self.on and writing and os.path.abspath(os.fsdecode(path)).startswith(self.root):
                self.hits += 1
                raise OSError(self.code, os.strerror(self.code), os.fsdecode(path))

        def fake_os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
            check(path, bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)))
            return real_os_open(path, flags, mode, dir_fd=dir_fd)

        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, bytes, os.PathLike)):
                check(file, any(c in mode for c in "wax+"))
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)


class FaultWindow(ReflectCallback):
    """Turns ``disk.on`` for ``start <= step < stop`` (runs before the trainer's own callbacks)."""

    def __init__(self, disk: FaultyDisk, start: int, stop: int) -> None:
        super().__init__()
        self.disk, self.start, self.stop = disk, start, stop

    def _on_step(self) -> bool:
        self.disk.on = self.start <= self.num_timesteps < self.stop
        return True


WALL_CLOCK = {"episode_seconds"}  # episode statistics' wall-clock time: never reproducible


def assert_same_tree(a: Any, b: Any, key: str = "") -> None:
    assert type(a) is type(b), key
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), key
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), key
        for k in a.keys() - WALL_CLOCK:
            assert_same_tree(a[k], b[k], f"{key}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), key
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tree(x, y, f"{key}[{i}]")
    else:
        assert a == b, key


def assert_same_state(a: Path, b: Path) -> None:
    """Two checkpoints hold the same state: every weight, trace, statistic, RNG and counter bit-equal."""
    assert_same_tree(load_checkpoint(a), load_checkpoint(b))


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if is_temp_file(p)]


def run_script(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ----------------------------------------------------------------------------------------------------
# atomic checkpoints


def test_failed_rename_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "step_100.pt"
    save_checkpoint({"step": 100, "w": torch.ones(8)}, path)
    before = path.read_bytes()

    def no_rename(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="Input/output error"):
        save_checkpoint({"step": 100, "w": torch.zeros(8)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 100
    assert [p.name for p in tmp_path.iterdir()] == ["step_100.pt"]


CRASH_BETWEEN_WRITE_AND_RENAME = """
    import os, signal, sys, torch
    from reflect.checkpoints import save_checkpoint
    folder = sys.argv[1]
    save_checkpoint({"step": 100, "w": torch.full((1000,), 1.0)}, folder + "/step_100.pt")
    save_checkpoint({"step": 100, "w": torch.full((1000,), 1.0)}, folder + "/latest.pt")
    os.replace = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)  # die before the rename
    save_checkpoint({"step": 200, "w": torch.full((1000,), 2.0)}, folder + "/latest.pt")
    save_checkpoint({"step": 200, "w": torch.full((1000,), 2.0)}, folder + "/step_200.pt")
"""


def test_kill_between_write_and_rename(tmp_path: Path) -> None:
    process = run_script(CRASH_BETWEEN_WRITE_AND_RENAME, str(tmp_path))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, stderr
    # the new file was complete (written, fsynced) but never renamed: the old one is intact
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 100
    (left,) = temp_files(tmp_path)
    assert left.name.startswith(".latest.pt.") and torch.load(left, weights_only=True)["step"] == 200
    assert sorted(p.name for p in tmp_path.iterdir() if not is_temp_file(p)) == ["latest.pt", "step_100.pt"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step_100.pt"
    assert remove_stale_temp_files(tmp_path) == [left]  # its writer is gone
    assert temp_files(tmp_path) == []


def test_live_writers_temp_files_are_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / f".step_5.pt.{os.getpid()}.0123abcd.tmp"
    mine.write_bytes(b"in progress")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        theirs = tmp_path / f".step_5.pt.{sleeper.pid}.89abcdef.tmp"
        theirs.write_bytes(b"in progress")
        assert remove_stale_temp_files(tmp_path) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_temp_files(tmp_path) == [theirs]
    assert mine.exists()


WRITE_FOREVER = """
    import sys, torch
    from reflect.checkpoints import save_checkpoint
    path = sys.argv[1]
    i = 0
    while True:
        save_checkpoint({"i": i, "w": torch.full((250_000,), float(i))}, path)
        print(i, flush=True)
        i += 1
"""


def test_sigkill_while_writing_checkpoints_never_leaves_a_broken_one(tmp_path: Path) -> None:
    path = tmp_path / "latest.pt"
    process = run_script(WRITE_FOREVER, str(path))
    assert process.stdout is not None
    done = -1
    while done < 3:
        done = int(process.stdout.readline())
    time.sleep(0.003)  # most of a write's time is spent writing and fsyncing: the kill lands in one
    process.kill()
    process.wait()
    payload = load_checkpoint(path)
    assert payload["i"] >= done  # the newest finished write, or the one after it
    assert torch.equal(payload["w"], torch.full((250_000,), float(payload["i"])))  # not a mix
    remove_stale_temp_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_resume_from_a_run_folder_takes_its_newest_loadable_checkpoint(tmp_path: Path) -> None:
    checkpoints = tmp_path / "run" / "checkpoints"
    save_checkpoint({"step": 300}, checkpoints / "step_300.pt")
    save_checkpoint({"step": 30}, checkpoints / "step_30.pt")
    (checkpoints / "step_600.pt").write_bytes(b"PK\x03\x04 cut short")  # damaged after it was written
    (checkpoints / ".step_900.pt.4194304.0123abcd.tmp").write_bytes(b"half")
    assert checkpoint_step(checkpoints / "step_600.pt") == 600
    assert checkpoint_step(checkpoints / ".step_900.pt.4194304.0123abcd.tmp") is None
    assert latest_checkpoint(checkpoints, verify=False) == checkpoints / "step_600.pt"
    assert resume_file(tmp_path / "run") == checkpoints / "step_300.pt"
    assert resume_file(checkpoints) == checkpoints / "step_300.pt"
    save_checkpoint({"step": 1000}, tmp_path / "run" / "final_model.pt")
    assert resume_file(tmp_path / "run") == tmp_path / "run" / "final_model.pt"
    with pytest.raises(CheckpointError, match="no loadable checkpoint in"):
        resume_file(tmp_path)


# ----------------------------------------------------------------------------------------------------
# resume after kill -9


def test_resume_after_sigkill_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "reflect.cli", "train", "--env", "CartPole-v1", "--total-steps", "1000000",
         "--run-dir", str(killed), *FAST],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step_300.pt").is_file() and process.poll() is None:
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    process.kill()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, stderr
    assert not (killed / "summary.json").exists() and not (killed / "final_model.pt").exists()
    steps = sorted(s for p in (killed / "checkpoints").iterdir() if (s := checkpoint_step(p)) is not None)
    for step in steps:  # every checkpoint the killed run left loads
        assert load_checkpoint(killed / "checkpoints" / f"step_{step}.pt")["num_timesteps"] == step
    total = steps[-1] + 600

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    (whole / "checkpoints").mkdir(parents=True)
    train("CartPole-v1", fast_config(total), whole, progress_bar=False, verbose=0, plots=False)
    argv = ["train", "--resume", str(killed), "--total-steps", str(total), "--run-dir", str(resumed), *FAST]
    assert main(argv) == 0

    assert temp_files(killed) == []  # whatever the kill left half-written is gone
    assert_same_state(whole / "final_model.pt", resumed / "final_model.pt")
    assert (whole / "evaluations.csv").read_text() == (resumed / "evaluations.csv").read_text()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (whole, resumed))
    for key in ("total_steps", "solved_at_step", "final_eval_mean_return", "best_eval_mean_return",
                "stable_from_step", "status"):
        assert a[key] == b[key], key
    assert a["status"] == "completed" and a["write_errors"] == 0


# ----------------------------------------------------------------------------------------------------
# NaN guard


def test_nan_reward_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "nan"
    argv = ["train", "--env", NAN_ENV, "--total-steps", "3000", "--run-dir", str(run_dir), *FAST]
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    good = run_dir / "checkpoints" / "step_600.pt"
    assert last.startswith("reflect train: numerical error: reward has NaN or inf"), err
    assert f"the last good checkpoint is '{good}'" in last and f"reflect train --resume {good}" in last
    assert "Traceback" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"].startswith("numerical error: reward has NaN")
    assert summary["last_checkpoint"] == str(good) and summary["total_steps"] == 699
    assert not (run_dir / "final_model.pt").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_300.pt", "step_600.pt"]
    payload = load_checkpoint(good)
    assert payload["num_timesteps"] == 600 and find_non_finite(payload) is None


def test_a_state_with_nan_is_never_written(tmp_path: Path) -> None:
    agent = Reflect("CartPole-v1", {"network": {"hidden": [8]}}, seed=0)
    good = save_final(agent, tmp_path / "final_model.pt", WriteGuard(), attempts=1, pause=0)
    before = good.read_bytes()
    with torch.no_grad():
        next(agent.actor.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"NaN or inf at 'actor\.layers\.0\.weight' after step 0"):
        save_final(agent, good, WriteGuard(), attempts=1, pause=0)
    assert good.read_bytes() == before and list(tmp_path.iterdir()) == [good]


# ----------------------------------------------------------------------------------------------------
# full disk, lost permissions, read-only file systems


def test_disk_full_mid_run_keeps_training_and_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, run_dir = tmp_path / "reference", tmp_path / "full"
    for folder in (reference, run_dir):
        (folder / "checkpoints").mkdir(parents=True)
    quiet = {"progress_bar": False, "verbose": 0, "plots": False}
    train("CartPole-v1", fast_config(1800), reference, seed=2, **quiet)  # type: ignore[arg-type]
    capsys.readouterr()
    disk = FaultyDisk(monkeypatch, run_dir, errno.ENOSPC)
    result = train(
        "CartPole-v1", fast_config(1800), run_dir, seed=2, callback=FaultWindow(disk, 350, 1250),
        **quiet,  # type: ignore[arg-type]
    )
    err = capsys.readouterr().err
    assert disk.hits > 0 and result.summary["status"] == "completed" and result.write_errors > 0
    assert result.summary["write_errors"] == result.write_errors
    # one warning per kind of file, naming the file, the reason and the fix; a note when it works again
    assert err.count("warning: cannot write the checkpoint") == 1, err
    skipped = run_dir / "checkpoints" / "step_600.pt"
    assert f"cannot write the checkpoint '{skipped}': No space left on device (ENOSPC). Training goes on " \
           "with its state in memory" in err
    assert "To fix it, free disk space on that drive." in err
    assert err.count("warning: cannot write episodes.csv") == 1
    assert f"note: writes work again (the checkpoint: '{run_dir / 'checkpoints' / 'step_1500.pt'}')" in err
    assert "note: writes work again (episodes.csv: " in err
    assert "Traceback" not in err and "Exception in thread" not in err
    # checkpoints in the window were skipped; the others are there, and nothing half-written is left
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["step_1500.pt", "step_1800.pt", "step_300.pt"]
    assert temp_files(run_dir) == []
    # the state in memory went on exactly as without the fault, and the logs caught up
    for name in ("final_model.pt", "best_model.pt", "checkpoints/step_1800.pt"):
        assert_same_state(reference / name, run_dir / name)
    for name in ("evaluations.csv", "episodes.csv"):
        assert (reference / name).read_text() == (run_dir / name).read_text(), name
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    steps = {e.step for e in events.Scalars("eval/mean_reward")}
    assert {300, 1500, 1800} <= steps


def test_a_best_model_waiting_to_be_written_never_overwrites_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A best model whose write failed waits in memory; when the next best is written at once, the
    waiting one is dropped, so a later retry cannot put the older model back."""
    states = iter([b"best at step 1200", b"best at step 1500"])
    monkeypatch.setattr(trainer, "agent_checkpoint_bytes", lambda agent: next(states))
    real_write, failures = trainer.write_bytes_atomic, [OSError(errno.ENOSPC, "No space left on device")]

    def write_once_full(path: Path, data: bytes) -> None:
        if failures:
            raise failures.pop()
        real_write(path, data)

    monkeypatch.setattr(trainer, "write_bytes_atomic", write_once_full)
    guard = WriteGuard(warn=lambda message: None)
    recorder = trainer._RunRecorder(None, tmp_path, None, None, [], 0, guard)  # type: ignore[arg-type]
    recorder.save_best()  # the disk is full: kept in memory
    assert guard.pending == [recorder.BEST] and not recorder.best_path.exists()
    recorder.save_best()  # a newer best, written at once
    assert guard.retry_pending() and guard.pending == []
    assert recorder.best_path.read_bytes() == b"best at step 1500"


def test_final_save_retries_then_uses_a_fallback_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    disk = FaultyDisk(monkeypatch, run_dir, errno.EACCES)
    window = FaultWindow(disk, 400, 10**9)  # permissions lost at step 400, for good
    monkeypatch.setattr(trainer, "train", functools.partial(trainer.train, callback=window, retry_pause=0))
    argv = ["train", "--env", "CartPole-v1", "--total-steps", "900", "--run-dir", str(run_dir), *FAST]
    assert main(argv) == 1
    err = capsys.readouterr().err
    (rescued,) = scratch.glob("reflect-rescue-*/final_model.pt")
    assert f"cannot write the final model '{run_dir / 'final_model.pt'}': Permission denied (EACCES)" in err
    assert "give yourself write permission" in err
    assert f"saved the final model to '{rescued}'" in err and f"reflect train --resume {rescued}" in err
    payload = load_checkpoint(rescued)
    assert payload["num_timesteps"] == 900 and len(payload["run"]["evaluations"]) == 3
    summary = json.loads((rescued.parent / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["last_checkpoint"] == str(rescued)
    assert not (run_dir / "final_model.pt").exists()
    assert load_checkpoint(run_dir / "checkpoints" / "step_300.pt")["num_timesteps"] == 300


def test_nothing_writable_at_the_end_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the fallback folder is just as broken
    disk = FaultyDisk(monkeypatch, tmp_path, errno.ENOSPC)
    window = FaultWindow(disk, 400, 10**9)
    monkeypatch.setattr(trainer, "train", functools.partial(trainer.train, callback=window, retry_pause=0))
    argv = ["train", "--env", "CartPole-v1", "--total-steps", "600", "--run-dir", str(run_dir), *FAST]
    assert main(argv) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("reflect train: error: cannot save the final model: writing "), last
    assert "No space left on device (ENOSPC)" in last and "nothing of the final state was written" in last
    assert f"the newest state on disk is '{run_dir / 'checkpoints' / 'step_300.pt'}'" in last
    assert not (run_dir / "final_model.pt").exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize("flag", ["--run-dir", "--runs-root"])
def test_unwritable_run_folder_is_refused_before_training(
    flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mounted"
    disk = FaultyDisk(monkeypatch, target, errno.EROFS)
    disk.on = True
    where = target / "run" if flag == "--run-dir" else target
    assert main(["train", "--env", "CartPole-v1", flag, str(where), *FAST]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "is not writable: Read-only file system (EROFS); the file system is read-only" in err
    assert [p for p in target.rglob("*")] == []  # the folders it made are gone again


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes regardless")
def test_folder_without_write_permission_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["train", "--env", "CartPole-v1", "--runs-root", str(locked), *FAST]) == 2
    finally:
        locked.chmod(0o755)
    assert "Permission denied" in capsys.readouterr().err


def test_write_guard_warns_once_and_retries_what_it_keeps(tmp_path: Path) -> None:
    messages: list[str] = []
    guard = WriteGuard(messages.append)
    target = tmp_path / "x.csv"

    def failing() -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    assert not guard.attempt("x.csv", target, failing, "Kept in memory.")
    assert not guard.attempt("x.csv", target, failing, "Kept in memory.")
    assert len(messages) == 1
    assert "(EDQUOT). Kept in memory. To fix it, free space within your disk quota." in messages[0]
    outcomes = iter([False, True])
    guard.defer("x.csv", lambda: next(outcomes))
    assert not guard.retry_pending() and guard.pending == ["x.csv"]
    assert guard.retry_pending() and guard.pending == []
    assert guard.attempt("x.csv", target, lambda: target.write_text("ok"), "")
    assert messages[-1] == f"note: writes work again (x.csv: '{target}')" and guard.failures == 2


def test_episode_rows_wait_in_memory_up_to_a_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reflect.envs import EpisodeRecord
    from reflect.runs.callbacks import EpisodeCsvCallback
    from reflect.runs.summary import read_episodes_csv

    messages: list[str] = []
    path = tmp_path / "episodes.csv"
    callback = EpisodeCsvCallback(path, WriteGuard(messages.append), max_pending=3)
    disk = FaultyDisk(monkeypatch, tmp_path, errno.ENOSPC)
    disk.on = True
    for step in range(1, 6):
        callback.num_timesteps = step
        callback.locals = {"episodes": [EpisodeRecord(0, float(step), step)]}
        callback._on_step()
    assert list(callback.pending) == [(3, 3.0, 3), (4, 4.0, 4), (5, 5.0, 5)] and callback.dropped == 2
    assert not path.exists() and "the oldest are dropped" in messages[-1]
    assert not callback.flush()
    disk.on = False
    assert callback.flush() and read_episodes_csv(path) == [(3, 3.0, 3), (4, 4.0, 4), (5, 5.0, 5)]


def test_find_non_finite_names_the_key() -> None:
    payload = {"a": [1, 2.5, torch.zeros(3)], "b": {"w": torch.tensor([1.0, float("inf")])}}
    assert find_non_finite({**payload, "n": torch.arange(3)}) == "b.w"
    assert find_non_finite({"a": [torch.ones(2), (torch.tensor([float("nan")]),)]}) == "a[1][0]"
    assert find_non_finite({"x": float("nan"), "t": torch.ones(2)}) is None  # plain floats: not state
