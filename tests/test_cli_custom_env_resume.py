"""The command line on custom environments (``module:EnvId``), ``--resume`` with changed settings, seeds out
of range, and commands that fail before training: they leave no run folder behind."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

from reflect.agents.config import load_reflect_config
from reflect.cli import main
from reflect.runs.trainer import train

MODULE = "reflect_test_corridor"
ENV_ID = "ReflectTestCorridor-v0"
# an environment of the user's own: its constructor takes no render_mode
CORRIDOR = f'''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right (action 1) ``length`` times to reach the goal (reward 1)."""

    def __init__(self, length=4):
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.position = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return np.zeros(1, np.float32), {{}}

    def step(self, action):
        self.position += int(action)
        done = self.position >= self.length
        obs = np.array([self.position / self.length], np.float32)
        return obs, float(done), done, False, {{}}


gym.register("{ENV_ID}", entry_point=Corridor, max_episode_steps=30)
'''
QUIET = ["--no-progress", "--quiet"]
SMALL = [
    "--set", "network.hidden=[16]",
    "--set", "train.eval_every=200",
    "--set", "train.eval_episodes=1",
    "--set", "train.log_every=100",
    "--set", "train.checkpoint_every=200",
    *QUIET,
]


def _forget(module: str, *env_ids: str) -> None:
    """Drop ``module`` and the ids it registered, as a new process would start without them."""
    sys.modules.pop(module, None)
    for env_id in env_ids:
        gym.registry.pop(env_id, None)


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path`` as the current directory holding the user's env module; ``sys.path`` (which the
    command line may extend with the current directory) is restored afterwards."""
    (tmp_path / f"{MODULE}.py").write_text(CORRIDOR)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    _forget(MODULE, ENV_ID)
    yield tmp_path
    _forget(MODULE, ENV_ID)


def _one_line_error(err: str, *parts: str) -> None:
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


# ---------------------------------------------------------------------------------------------------
# custom environments


def test_a_custom_env_module_works_in_every_command(
    user_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = f"{MODULE}:{ENV_ID}"
    assert main(["train", "--env", env, "--total-steps", "200", "--run-dir", "run", *SMALL]) == 0
    run_dir = user_folder / "run"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env"] == env
    assert (run_dir / "final_model.pt").is_file()
    checkpoint = str(run_dir / "final_model.pt")
    for argv in (
        ["evaluate", "--checkpoint", checkpoint, "--episodes", "1"],
        ["plot", str(run_dir)],
        ["run", "--checkpoint", checkpoint, "--rate-hz", "1000", "--steps", "5", "--quiet"],
        ["export", "--checkpoint", checkpoint, "--format", "torchscript", "--out", "policy.ts.pt"],
        ["train", "--resume", str(run_dir), "--total-steps", "300", "--run-dir", "resumed", *QUIET],
    ):
        _forget(MODULE, ENV_ID)  # each command as in a new shell: the saved id imports the module again
        capsys.readouterr()
        assert main(argv) == 0, capsys.readouterr().err
    assert (user_folder / "policy.ts.pt").is_file()
    assert yaml.safe_load((user_folder / "resumed" / "config.yaml").read_text())["env"] == env


def test_an_env_without_render_mode_builds(user_folder: Path) -> None:
    from reflect.envs import make_single_env

    env = make_single_env(f"{MODULE}:{ENV_ID}", length=2)
    try:
        assert env.reset(seed=0)[0].shape == (1,)
    finally:
        env.close()


def test_a_missing_env_module_is_one_line_and_leaves_no_folder(
    user_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--env", "no_such_module_here:Thing-v0", *QUIET]) == 2
    _one_line_error(capsys.readouterr().err, "'no_such_module_here'", "PYTHONPATH")
    assert not (user_folder / "runs").exists()


def test_a_module_without_the_id_lists_what_it_registers(
    user_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--env", f"{MODULE}:Corridor-v9", *QUIET]) == 2
    _one_line_error(capsys.readouterr().err, f"'{MODULE}'", "Corridor-v9", f"'{ENV_ID}'")
    assert not (user_folder / "runs").exists()
    # imported already (nothing new registers): the ids are found by their entry points
    assert main(["train", "--env", f"{MODULE}:Corridor-v9", *QUIET]) == 2
    _one_line_error(capsys.readouterr().err, f"'{ENV_ID}'")


def test_a_module_that_fails_to_import_names_the_reason(
    user_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (user_folder / "reflect_test_broken.py").write_text("import no_such_dependency_here\n")
    try:
        assert main(["train", "--env", "reflect_test_broken:Thing-v0", *QUIET]) == 2
    finally:
        _forget("reflect_test_broken")
    _one_line_error(capsys.readouterr().err, "'reflect_test_broken'", "no_such_dependency_here")
    assert not (user_folder / "runs").exists()


# ---------------------------------------------------------------------------------------------------
# --resume with changed settings


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short CartPole run's final model (300 steps)."""
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    run_dir.mkdir()
    config = load_reflect_config("CartPole-v1", overrides=[
        "network.hidden=[16]", "train.total_steps=300", "train.eval_every=0", "train.checkpoint_every=0",
        "train.log_every=100",
    ])
    train("CartPole-v1", config, run_dir, seed=3, progress_bar=False, verbose=0, plots=False)
    return run_dir / "final_model.pt"


def _resume(checkpoint: Path, root: Path, *extra: str) -> int:
    return main(["train", "--resume", str(checkpoint), "--runs-root", str(root), *QUIET, *extra])


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("network.hidden=[64]", "network.hidden"),
        ("network.neuron=alif", "network.neuron"),
        ("learner.lam=0.5", "learner.lam"),
        ("normalize.rewards=false", "normalize.rewards"),
        ("train.num_envs=2", "train.num_envs"),
        ("env_kwargs={sutton_barto_reward: true}", "env_kwargs"),
    ],
)
def test_resume_refuses_a_setting_the_checkpoint_fixes(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, key: str
) -> None:
    assert _resume(checkpoint, tmp_path / "runs", "--total-steps", "400", "--set", setting) == 2
    _one_line_error(capsys.readouterr().err, f"'{key}'", "cannot change on resume")
    assert not (tmp_path / "runs").exists()


def test_a_refused_resume_from_a_run_folder_is_one_line(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _resume(checkpoint.parent, tmp_path / "runs", "--total-steps", "400", "--set", "learner.lam=0.5")
    assert code == 2
    _one_line_error(capsys.readouterr().err, "'learner.lam'")
    assert not (tmp_path / "runs").exists()


def test_resume_takes_a_new_step_size_and_says_so(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _resume(checkpoint, tmp_path / "runs", "--total-steps", "400", "--set", "learner.actor_lr=0.5",
                   "--set", "train.eval_every=0")
    assert code == 0
    err = capsys.readouterr().err
    assert "learner.actor_lr 1.0 -> 0.5" in err, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["learner"]["actor_lr"] == 0.5 and saved["train"]["total_steps"] == 400


def test_resume_reads_a_config_file_by_the_same_rules(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slower = tmp_path / "slower.yaml"
    slower.write_text("CartPole-v1:\n  learner:\n    critic_lr: 0.25\n  train:\n    eval_every: 0\n")
    assert _resume(checkpoint, tmp_path / "runs", "--total-steps", "400", "--config", str(slower)) == 0
    assert "learner.critic_lr 1.0 -> 0.25" in capsys.readouterr().err
    wider = tmp_path / "wider.yaml"
    wider.write_text("default:\n  network:\n    hidden: [64]\n")
    assert _resume(checkpoint, tmp_path / "other", "--total-steps", "400", "--config", str(wider)) == 2
    _one_line_error(capsys.readouterr().err, "'network.hidden'")
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("total", [["--total-steps", "200"], ["--total-steps", "300"], []])
def test_resume_with_nothing_left_to_train_is_a_clear_error(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], total: list[str]
) -> None:
    assert _resume(checkpoint, tmp_path / "runs", *total) == 2
    _one_line_error(capsys.readouterr().err, "already at step 300", "--total-steps")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------------
# seeds and failures before training


@pytest.mark.parametrize("command", [["train", "--env", "CartPole-v1"], ["evaluate", "--checkpoint", "x.pt"],
                                     ["run", "--checkpoint", "x.pt"]])
def test_a_seed_out_of_range_is_refused(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--seed", str(2**70)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--seed" in err and str(2**32 - 1) in err, err
    assert not (tmp_path / "runs").exists()


def test_the_largest_seed_trains(tmp_path: Path) -> None:
    argv = ["train", "--env", "CartPole-v1", "--seed", str(2**32 - 1), "--total-steps", "100",
            "--run-dir", str(tmp_path / "run"), "--set", "train.eval_every=0", *SMALL]
    assert main(argv) == 0


@pytest.mark.parametrize("explicit", [False, True])
def test_a_failure_before_training_removes_the_new_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], explicit: bool
) -> None:
    import reflect.runs.trainer as trainer

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("the agent cannot be built")

    monkeypatch.setattr(trainer, "Reflect", broken)
    mine = tmp_path / "mine"
    mine.mkdir()  # an empty folder of the user's: it stays, empty
    where = ["--run-dir", str(mine)] if explicit else ["--runs-root", str(tmp_path / "runs")]
    assert main(["train", "--env", "CartPole-v1", *where, *SMALL]) == 2
    _one_line_error(capsys.readouterr().err, "the agent cannot be built")
    assert mine.is_dir() and not any(mine.iterdir())
    assert not (tmp_path / "runs").exists()
