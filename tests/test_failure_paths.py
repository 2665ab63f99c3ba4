"""Failure paths outside ``reflect train``: each ends in one line naming the problem and the fix, and
nothing the user had (or learned) is lost.

* writes: ``reflect export`` and ``reflect run --learn`` to a location that cannot be written (the
  user's path is named, never a temporary file; ``run`` checks before its loop, and rescues the agent
  to a fallback folder if the final save still fails);
* Ctrl-C during a long wait between ticks of ``reflect run`` stops the loop within a slice of the wait;
* ``evaluate --render`` without a display: an error before the window (MuJoCo's would abort);
* configs: non-finite floats, empty config files, networks so large that every step is slow.

A read-only folder is a ``chmod 0o500`` folder for an ordinary user; as root (whom file modes do not
stop) creating anything in it fails as on a read-only file system, by patching ``os.open`` / ``os.mkdir``.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tasks import DelayedMatchEnv

import reflect.atomic_files as atomic_files
from reflect.agents import Reflect
from reflect.agents.config import SLOW_NETWORK_WEIGHTS, NetworkConfig
from reflect.atomic_files import check_can_write, open_atomic, write_bytes_atomic
from reflect.checkpoints import load_checkpoint
from reflect.cli import main
from reflect.commands.evaluate import display_problem
from reflect.config import ConfigWarning
from reflect.runtime import ControlLoop, FakeClock, RealClock
from reflect.runtime.checkpointing import RESCUE_PREFIX, CheckpointSaveError
from reflect.runtime.loop import WAIT_SLICE_NS

SMALL = {"network": {"hidden": [16]}}
SIMULATED = os.name != "posix" or os.geteuid() == 0  # file modes do not stop root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agent") / "cartpole.pt"
    Reflect("CartPole-v1", SMALL, seed=0).learn(50).save(path)
    return path


def _inside(path: Any, folder: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(folder)
    except (TypeError, ValueError):
        return False


@pytest.fixture
def read_only_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An existing folder in which nothing can be created (see the module docstring)."""
    folder = (tmp_path / "read-only").resolve()
    folder.mkdir()
    if not SIMULATED:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    real_open, real_mkdir = os.open, os.mkdir

    def read_only(path: Any) -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _inside(path, folder):
            raise read_only(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if _inside(path, folder):
            raise read_only(path)
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    yield folder


@pytest.fixture
def fallback_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary directory, for this test (where rescued checkpoints go)."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and ".tmp" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------------------- writes
def test_atomic_writes_name_the_target_never_the_temporary_file(read_only_dir: Path, tmp_path: Path) -> None:
    target = read_only_dir / "policy.onnx"
    with pytest.raises(OSError) as info:
        write_bytes_atomic(target, b"data")
    assert info.value.filename == str(target)
    with pytest.raises(OSError) as info:
        check_can_write(read_only_dir / "sub" / "agent.pt")
    assert info.value.filename == str(read_only_dir / "sub" / "agent.pt")
    assert list(read_only_dir.iterdir()) == []
    # a write that fails midway (a full disk) names the target too, and leaves nothing behind
    other = tmp_path / "other.bin"
    with pytest.raises(OSError) as info, open_atomic(other):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(other)
    assert list(tmp_path.glob("*other*")) == []
    check_can_write(tmp_path / "new" / "folders" / "agent.pt")  # a writable place: nothing created
    assert not (tmp_path / "new").exists()


def test_export_to_a_read_only_folder_is_one_line_naming_the_path(
    checkpoint: Path, read_only_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = read_only_dir / "policy.ts.pt"
    code = main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert line.startswith(f"reflect export: error: cannot write the exported policy to '{out}': ")
    assert ("Read-only file system" if SIMULATED else "Permission denied") in line
    assert list(read_only_dir.iterdir()) == []


def test_export_failing_at_the_write_itself_names_the_path(
    checkpoint: Path, read_only_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the folder turns read-only between the check and the write: the same one line
    monkeypatch.setattr(atomic_files, "check_can_write", lambda path: None)
    out = read_only_dir / "policy.ts.pt"
    code = main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)])
    assert code == 2
    assert f"cannot write the exported policy to '{out}'" in _one_line(capsys.readouterr().err)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_export_into_proc_names_the_path_the_user_gave(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript",
                 "--out", "/proc/x.ts.pt"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert "cannot write the exported policy to '/proc/x.ts.pt'" in line and "choose another location" in line


def test_run_learn_refuses_an_unwritable_out_before_the_loop(
    checkpoint: Path, read_only_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = read_only_dir / "adapted.pt"
    code = main(["run", "--checkpoint", str(checkpoint), "--learn", "--out", str(out), "--rate-hz", "1000",
                 "--steps", "20", "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # nothing ran
    line = _one_line(captured.err)
    assert f"cannot save the learned agent to '{out}'" in line and "(--out PATH chooses the file)" in line


def test_run_learn_rescues_the_agent_when_the_final_save_fails(
    checkpoint: Path, read_only_dir: Path, fallback_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the location passes the check, then cannot be written when the loop ends
    monkeypatch.setattr(atomic_files, "check_can_write", lambda path: None)
    out = read_only_dir / "adapted.pt"
    code = main(["run", "--checkpoint", str(checkpoint), "--learn", "--out", str(out), "--rate-hz", "1000",
                 "--steps", "20", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    [rescued] = fallback_dir.glob(f"{RESCUE_PREFIX}adapted-*/adapted.pt")
    assert load_checkpoint(rescued)["num_timesteps"] == load_checkpoint(checkpoint)["num_timesteps"] + 20
    assert f"saved to '{rescued}' instead: '{out}' could not be written" in captured.out
    warning = captured.err.strip().splitlines()[-1]
    assert warning.startswith(f"reflect run: warning: saved the learned agent (70 steps) to '{rescued}' "
                              f"because '{out}' could not be written")
    assert f"continue with: reflect run --checkpoint {rescued} --learn --out PATH" in warning
    assert list(read_only_dir.iterdir()) == []


def _loop(agent: Reflect, path: Path | None, clock: Any, rate_hz: float = 100.0,
          **options: Any) -> ControlLoop:
    return ControlLoop(agent, lambda: np.zeros(3), lambda action: None, lambda *_: 0.0, rate_hz=rate_hz,
                       clock=clock, checkpoint_path=path, freeze_gc=False, **options)


def test_a_control_loop_rescues_its_final_checkpoint(read_only_dir: Path, fallback_dir: Path) -> None:
    agent = Reflect(DelayedMatchEnv(), SMALL, seed=0)
    report = _loop(agent, read_only_dir / "live.pt", FakeClock()).run(steps=5)
    assert report.checkpoint is not None and report.checkpoint.parent.parent == fallback_dir
    assert report.checkpoint.parent.name.startswith(f"{RESCUE_PREFIX}live-")
    assert report.save_error is not None and str(read_only_dir / "live.pt") in report.save_error
    assert load_checkpoint(report.checkpoint)["num_timesteps"] == 5
    assert "warning: saved to" in report.format() and report.as_dict()["save_error"] == report.save_error


def test_a_control_loop_says_so_when_the_fallback_fails_too(
    read_only_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(read_only_dir))
    agent = Reflect(DelayedMatchEnv(), SMALL, seed=0)
    with pytest.raises(CheckpointSaveError, match=r"writing '.*live\.pt' failed .* and so did the fallback"):
        _loop(agent, read_only_dir / "live.pt", FakeClock()).run(steps=5)
    assert list(read_only_dir.iterdir()) == []


# ------------------------------------------------------------------------------- Ctrl-C between ticks
class SignalWhileSleeping(FakeClock):
    """A fake clock on which SIGINT arrives at ``at_s`` while the loop sleeps: the handler runs then
    and the sleep goes on to its deadline, as ``time.sleep`` does after a handler that returns."""

    def __init__(self, at_s: float) -> None:
        super().__init__()
        self.at_ns: int | None = round(at_s * 1e9)

    def sleep_until(self, deadline_ns: int) -> None:
        if self.at_ns is not None and deadline_ns > self.at_ns >= self.time_ns:
            self.time_ns, self.at_ns = self.at_ns, None
            signal.raise_signal(signal.SIGINT)  # the loop's handler runs before this returns
        super().sleep_until(deadline_ns)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
@pytest.mark.parametrize("learn", [False, True])
def test_ctrl_c_during_a_long_wait_stops_within_a_slice(learn: bool, tmp_path: Path) -> None:
    agent = Reflect(DelayedMatchEnv(), SMALL, seed=0)
    clock = SignalWhileSleeping(at_s=1.0)
    loop = _loop(agent, tmp_path / "live.pt" if learn else None, clock, rate_hz=0.001, learn=learn)
    report = loop.run()  # until stopped; a tick every 1000 s
    assert report.stopped_by == "SIGINT"
    assert report.ticks == 1  # the first tick ran; the second (due at 1000 s) never started
    assert clock.time_ns <= 1e9 + WAIT_SLICE_NS
    if learn:
        assert report.checkpoint == tmp_path / "live.pt"
        assert load_checkpoint(report.checkpoint)["num_timesteps"] == 1


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
def test_a_real_ctrl_c_ends_a_long_wait_promptly() -> None:
    agent = Reflect(DelayedMatchEnv(), SMALL, seed=0)
    loop = _loop(agent, None, RealClock(), rate_hz=0.2, learn=False)  # a tick every 5 s
    main_thread = threading.main_thread().ident
    assert main_thread is not None
    ctrl_c = threading.Timer(0.2, signal.pthread_kill, (main_thread, signal.SIGINT))  # to the sleeping thread
    ctrl_c.start()
    started = time.monotonic()
    try:
        report = loop.run()
    finally:
        ctrl_c.cancel()
    assert report.stopped_by == "SIGINT" and report.ticks == 1  # the tick due at 5 s never ran
    assert time.monotonic() - started < 1.0


# --------------------------------------------------------------------------------- render, no display
class _FakeEnv:
    def __init__(self, cls: type) -> None:
        self.unwrapped = cls()


def _fake_class(module: str) -> type:
    return type("SomeEnv", (), {"__module__": module})


def test_display_problem_knows_which_platforms_and_envs_need_a_display() -> None:
    pygame_env = _FakeEnv(_fake_class("gymnasium.envs.classic_control.cartpole"))
    mujoco_base = _fake_class("gymnasium.envs.mujoco.mujoco_env")
    mujoco_env = _FakeEnv(type("MyRobot", (mujoco_base,), {"__module__": "my_robots"}))
    assert display_problem(mujoco_env, {}, "linux") is not None
    assert "MUJOCO_GL=egl renders off-screen only" in str(display_problem(mujoco_env, {}, "linux"))
    assert display_problem(mujoco_env, {"MUJOCO_GL": "egl"}, "linux") is not None  # a window all the same
    assert display_problem(mujoco_env, {"SDL_VIDEODRIVER": "dummy"}, "linux") is not None
    assert display_problem(pygame_env, {}, "freebsd14") is not None
    assert display_problem(pygame_env, {"SDL_VIDEODRIVER": "kmsdrm"}, "linux") is None
    for environ in ({"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}):
        assert display_problem(mujoco_env, environ, "linux") is None
    for platform in ("darwin", "win32"):
        assert display_problem(mujoco_env, {}, platform) is None


def test_evaluate_render_without_a_display_is_one_line(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--episodes", "1", "--render"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert "cannot render CartPole-v1: --render opens a window, but DISPLAY and WAYLAND_DISPLAY are not " \
           "set" in line
    assert "xvfb-run" in line and "drop --render" in line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the abort is GLFW's without X11/Wayland")
def test_evaluate_render_of_a_mujoco_env_without_a_display_does_not_abort(tmp_path: Path) -> None:
    pytest.importorskip("mujoco")
    path = Reflect("InvertedPendulum-v5", {"network": {"hidden": [8]}}, seed=0).save(tmp_path / "pendulum.pt")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    # in a subprocess: without the check, GLFW aborts the whole process (exit status 134)
    command = [sys.executable, "-m", "reflect.cli", "evaluate", "--checkpoint", str(path), "--episodes", "1",
               "--render"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert "cannot render InvertedPendulum-v5" in line and "MUJOCO_GL=egl renders off-screen only" in line


# ------------------------------------------------------------------------------------------- configs
def test_a_non_finite_learning_rate_is_refused_before_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--env", "CartPole-v1", "--set", "learner.actor_lr=1e309", "--total-steps", "50",
                 "--no-progress", "--runs-root", str(tmp_path / "runs")])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert "config key 'learner.actor_lr' must be a finite number, got inf (float)" in line
    assert not (tmp_path / "runs").exists()


def test_an_empty_config_file_is_refused_before_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "mine.yaml"
    empty.write_text("# to fill in\n", encoding="utf-8")
    code = main(["train", "--env", "Acrobot-v1", "--config", str(empty), "--total-steps", "50",
                 "--no-progress", "--runs-root", str(tmp_path / "runs")])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert f"config file '{empty}' is empty" in line
    assert not (tmp_path / "runs").exists()


def test_a_network_that_makes_every_step_slow_warns() -> None:
    big = NetworkConfig(hidden=(SLOW_NETWORK_WEIGHTS // 4,))
    with pytest.warns(ConfigWarning, match=r"network.hidden=\[250000\] makes networks of over 1,000,000 "
                                          r"weights for 4 inputs; every step updates them all"):
        big.build(4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NetworkConfig().build(4, 2)  # the tuned size: no warning
        NetworkConfig(hidden=(SLOW_NETWORK_WEIGHTS // 8,)).build(4, 2)  # 750,000 weights


def test_the_slow_network_warning_is_one_line_in_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REFLECT_BACKEND", "torch")  # numpy's kernels refuse matrices this large
    with pytest.warns(ConfigWarning):
        agent = Reflect("CartPole-v1", {"network": {"hidden": [300_000]}}, seed=0)
    path = agent.save(tmp_path / "big.pt")
    assert main(["evaluate", "--checkpoint", str(path), "--episodes", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning") == 1, err
    assert err.startswith("reflect evaluate: warning: network.hidden=[300000] makes networks of over"), err
