"""``reflect train``: train the REFLECT agent online on a Gymnasium env, with a run folder of artifacts.

    reflect train --env CartPole-v1
    reflect train --env Acrobot-v1 --seed 3 --total-steps 200000 --set learner.lam=0.9
    reflect train --resume runs/<run>/checkpoints/step_25000.pt
    reflect train --resume runs/<run>                       # its newest loadable checkpoint
    reflect train --env mymodule:MyEnv-v0                   # an env that mymodule registers

Hyperparameters come from the tuned configs shipped with reflect (``configs/reflect.yaml``: a
``default`` entry plus one per env id), or from ``--config FILE`` in the same format; ``--set`` overrides
single keys. ``--env module:EnvId`` imports ``module`` (from the current directory too) and trains the
env it registers; the run keeps the whole id, so evaluate, plot and resume import the module again.

``--resume`` continues a checkpoint exactly (same config, same random streams) into a new run folder, up
to ``--total-steps`` steps in total; given a run folder, it takes the newest checkpoint in it that loads
(``final_model.pt``, else the ``checkpoints/step_<N>.pt`` with the largest N). ``--set`` and ``--config``
(its entry laid over the checkpoint's config) may change the schedule (``train.total_steps``,
``eval_every``, ``eval_episodes``, ``checkpoint_every``, ``log_every``) and the step sizes
(``learner.actor_lr``, ``critic_lr``, ``actor_kappa``, ``critic_kappa``, ``entropy_coef``,
``baseline_rate``, ``calm_*``, ``entropy_target``, ``entropy_rate``, ``actor_readout_decay``,
``readout_decay_gate``, ``action.log_std_lr_scale``) and the exploration noise (``action.noise_correlation``,
``noise_calm_target``); a line names each change. Any other setting is fixed by the checkpoint's state
(the network's shape and neuron model, gamma and lambda, normalisation, the number of streams, the env):
changing one is an error.

Exit status: 0 done; 2 bad input, a checkpoint already at --total-steps, or an unwritable run folder
(nothing started, and no run folder left behind); 1 a numerical failure
(NaN/inf; the message names the last good checkpoint) or a final state that had to be saved outside
the run folder, or could not be saved at all; 130/143 stopped by Ctrl-C/SIGTERM (checkpoint saved).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflect.commands.common import positive_int, random_seed

if TYPE_CHECKING:
    from reflect.agents.config import ReflectConfig
    from reflect.runs.trainer import TrainResult


def add_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a spiking agent online (REFLECT)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--env", metavar="ENV_ID",
        help="Gymnasium env id, e.g. CartPole-v1, or module:EnvId for an env that module registers",
    )
    train.add_argument("--config", type=Path, metavar="FILE", help="YAML hyperparameters keyed by env id")
    train.add_argument(
        "--seed", type=random_seed, default=None, help="random seed, 0 to 2**32 - 1 (default: 0)"
    )
    train.add_argument("--total-steps", type=positive_int, metavar="N", help="environment steps in total")
    train.add_argument(
        "--run-dir",
        type=Path,
        metavar="DIR",
        help="write this run's artifacts into DIR itself (must be empty or new)",
    )
    train.add_argument(
        "--runs-root",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="where run folders are created when --run-dir is not given (default: runs)",
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set learner.gamma=0.98 (repeatable)",
    )
    train.add_argument(
        "--num-threads",
        type=positive_int,
        default=1,
        metavar="N",
        help="torch CPU threads (default: 1; batch-1 online learning is fastest on one)",
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="CHECKPOINT",
        help="continue from a checkpoint, or from the newest checkpoint of a run folder",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--quiet", action="store_true", help="no per-evaluation lines")
    train.set_defaults(run=run)


@dataclass(frozen=True)
class _Plan:
    """What a ``reflect train`` call will do, checked before any folder is created."""

    env_id: str
    seed: int
    config: ReflectConfig
    resume: Mapping[str, Any] | None = None
    resume_path: Path | None = None
    notices: tuple[str, ...] = ()  # printed once the run starts

    def announce(self, run_dir: Path) -> None:
        """The lines on stderr that start a run: its notices, then its folder."""
        for line in (*self.notices, f"run folder: {run_dir}"):
            print(line, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import torch

    from reflect.agents.reflect_agent import AGENT_NAME
    from reflect.runs.run_dir import new_run_dir
    from reflect.runs.trainer import RunSaveError, train

    torch.set_num_threads(args.num_threads)
    plan = _resume_plan(args) if args.resume is not None else _new_plan(args)
    _check_env(plan)
    command = shlex.join(["reflect", *getattr(args, "argv", ["train", "--env", plan.env_id])])
    folder = new_run_dir(args.runs_root, plan.env_id, AGENT_NAME, plan.seed, explicit=args.run_dir)
    try:
        with folder as run_dir:
            result = train(
                plan.env_id,
                plan.config,
                run_dir,
                seed=plan.seed,
                resume=plan.resume,
                resume_path=plan.resume_path,
                command=command,
                progress_bar=not args.no_progress,
                verbose=0 if args.quiet else 1,
                on_start=lambda: plan.announce(run_dir),
            )
    except RunSaveError as error:
        if os.environ.get("REFLECT_DEBUG"):
            raise
        print(f"reflect train: error: {error}", file=sys.stderr)
        return 1
    return _report(result, plan)


def _new_plan(args: argparse.Namespace) -> _Plan:
    from reflect.agents.config import load_reflect_config

    if args.env is None:
        raise ValueError("--env is required, e.g. reflect train --env CartPole-v1")
    overrides = [*args.overrides, *_total_steps_override(args)]
    config = load_reflect_config(args.env, args.config, overrides)
    return _Plan(args.env, 0 if args.seed is None else args.seed, config)


def _resume_plan(args: argparse.Namespace) -> _Plan:
    """The checkpoint to resume and its config with the allowed changes (each named on stderr).

    Raises:
        ValueError: --env or --seed contradict the checkpoint, a setting the checkpoint fixes is changed
            (:mod:`reflect.runs.resume`), or the checkpoint has already reached the total steps.
    """
    from reflect.agents.config import load_reflect_config
    from reflect.checkpoints import load_checkpoint
    from reflect.config import deep_merge, load_env_config
    from reflect.runs.resume import check_resume_config

    resume_path = resume_file(args.resume)
    resume = load_checkpoint(resume_path)
    saved_env = resume.get("env_id")
    if args.env is not None and saved_env is not None and args.env != saved_env:
        raise ValueError(f"--env {args.env} does not match the checkpoint's env {saved_env}; drop --env")
    env_id = saved_env or args.env
    if env_id is None:
        raise ValueError("the checkpoint does not name its environment: pass --env ENV_ID")
    if args.seed is not None and args.seed != int(resume["seed"]):
        raise ValueError(
            f"--seed {args.seed} does not match the checkpoint's seed {resume['seed']}; drop --seed"
        )
    base = resume["config"]
    if args.config is not None:  # the file's entry for the env, laid over the checkpoint's config
        base = deep_merge(base, load_env_config(args.config, str(env_id)))
    overrides = [*args.overrides, *_total_steps_override(args)]
    config = load_reflect_config(str(env_id), base=base, overrides=overrides)
    changes = check_resume_config(resume["config"], config)
    done, total = int(resume["num_timesteps"]), config.train.total_steps
    if total <= done:
        raise ValueError(
            f"the checkpoint is already at step {done:,} and train.total_steps is {total:,}: nothing to "
            f"train; give --total-steps above {done:,} to continue it"
        )
    notices = [f"resuming from {resume_path}"]
    if changes:
        notices.append(f"resuming with changed settings: {', '.join(map(str, changes))}")
    return _Plan(str(env_id), int(resume["seed"]), config, resume, resume_path, tuple(notices))


def _total_steps_override(args: argparse.Namespace) -> list[str]:
    return [] if args.total_steps is None else [f"train.total_steps={args.total_steps}"]


def _check_env(plan: _Plan) -> None:
    """Build the env once: a bad env id, module, env_kwargs or space fails before any folder exists."""
    from reflect.agents.reflect_agent import check_env_spaces

    check_env_spaces(plan.env_id, plan.config.env_arguments)


def _report(result: TrainResult, plan: _Plan) -> int:
    """Print the run's last line (and any write failures); the exit status."""
    from reflect.stop_signals import SIGNAL_EXIT_CODES

    env_id, seed, run_dir = plan.env_id, plan.seed, result.run_dir
    summary = result.summary
    solved = summary["solved_at_step"]

    def number(value: float | None) -> str:  # 4 significant digits: 500, 0.95, -143.2
        return "none" if value is None else f"{value:.4g}"

    print(
        f"{env_id} seed {seed}: {summary['total_steps']:,} steps, {summary['steps_per_second'] or 0:,.0f} "
        f"steps/s, final eval {number(summary['final_eval_mean_return'])}, "
        f"best {number(summary['best_eval_mean_return'])}, "
        f"solved at {f'{solved:,}' if solved is not None else 'never'} -> {run_dir}"
    )
    if result.write_errors:
        print(
            f"reflect train: {result.write_errors} writes failed during the run (see the warnings above); "
            f"its final state is in {result.saved}",
            file=sys.stderr,
        )
    if result.interrupted is not None:
        return SIGNAL_EXIT_CODES.get(result.interrupted, 1)
    return 1 if result.rescued else 0


def resume_file(path: Path) -> Path:
    """``path`` itself for a file; for a folder (a run folder or its ``checkpoints/``), its newest
    checkpoint that loads: ``final_model.pt``, else the ``step_<N>.pt`` with the largest N.

    Raises:
        CheckpointError: the folder holds no loadable checkpoint.
    """
    from reflect.checkpoints import CheckpointError, latest_checkpoint, load_checkpoint
    from reflect.runs.run_dir import CHECKPOINTS_DIR

    if not path.is_dir():
        return path
    final = path / "final_model.pt"
    found: Path | None = final
    try:
        load_checkpoint(final)
    except CheckpointError:
        found = latest_checkpoint(path / CHECKPOINTS_DIR) or latest_checkpoint(path)
    if found is not None:
        return found
    raise CheckpointError(
        f"no loadable checkpoint in '{path}' (looked for final_model.pt and checkpoints/step_<N>.pt); "
        "give the path of a checkpoint file"
    )
