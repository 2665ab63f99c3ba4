"""``reflect train``: train the REFLECT agent online on a Gymnasium env, with a run folder of artifacts.

    reflect train --env CartPole-v1
    reflect train --env Acrobot-v1 --seed 3 --total-steps 200000 --set learner.lam=0.9
    reflect train --resume runs/<run>/checkpoints/step_25000.pt
    reflect train --resume runs/<run>                       # its newest loadable checkpoint

Hyperparameters come from the tuned configs shipped with reflect (``configs/reflect.yaml``: a
``default`` entry plus one per env id), or from ``--config FILE`` in the same format; ``--set`` overrides
single keys. ``--resume`` continues a checkpoint exactly (same config, same random streams) into a new
run folder, up to ``--total-steps`` steps in total; given a run folder, it takes the newest checkpoint
in it that loads (``final_model.pt``, else the ``checkpoints/step_<N>.pt`` with the largest N).

Exit status: 0 done; 2 bad input or an unwritable run folder (nothing started); 1 a numerical failure
(NaN/inf; the message names the last good checkpoint) or a final state that had to be saved outside
the run folder, or could not be saved at all; 130/143 stopped by Ctrl-C/SIGTERM (checkpoint saved).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from reflect.commands.common import non_negative_int, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a spiking agent online (REFLECT)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--env", metavar="ENV_ID", help="Gymnasium env id, e.g. CartPole-v1")
    train.add_argument("--config", type=Path, metavar="FILE", help="YAML hyperparameters keyed by env id")
    train.add_argument("--seed", type=non_negative_int, default=None, help="random seed (default: 0)")
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


def run(args: argparse.Namespace) -> int:
    import torch

    from reflect.agents.config import load_reflect_config
    from reflect.agents.reflect_agent import AGENT_NAME, SUPPORTED_ACTIONS
    from reflect.checkpoints import load_checkpoint
    from reflect.config import to_dict
    from reflect.envs import check_spaces, make_single_env
    from reflect.runs.run_dir import create_run_dir
    from reflect.runs.trainer import RunSaveError, train
    from reflect.stop_signals import SIGNAL_EXIT_CODES

    torch.set_num_threads(args.num_threads)
    resume = None
    resume_path = None
    if args.resume is not None:
        resume_path = resume_file(args.resume)
        resume = load_checkpoint(resume_path)
        saved_env = resume.get("env_id")
        if args.env is not None and args.env != saved_env:
            raise ValueError(f"--env {args.env} does not match the checkpoint's env {saved_env}; drop --env")
        if args.config is not None:
            raise ValueError(
                "--config cannot change a resumed run's hyperparameters; use --set for the schedule"
            )
        if args.seed is not None and args.seed != int(resume["seed"]):
            raise ValueError(
                f"--seed {args.seed} does not match the checkpoint's seed {resume['seed']}; drop --seed"
            )
        env_id, seed = str(saved_env), int(resume["seed"])
        config = load_reflect_config(env_id, base=resume["config"], overrides=args.overrides)
    else:
        if args.env is None:
            raise ValueError("--env is required, e.g. reflect train --env CartPole-v1")
        env_id, seed = args.env, 0 if args.seed is None else args.seed
        config = load_reflect_config(env_id, args.config, args.overrides)
    if args.total_steps is not None:
        config = load_reflect_config(
            env_id, base=to_dict(config), overrides=[f"train.total_steps={args.total_steps}"]
        )
    # fail on a bad env id, env_kwargs or space before any folder is created
    probe = make_single_env(env_id, **config.env_kwargs)
    try:
        check_spaces(probe.observation_space, probe.action_space, SUPPORTED_ACTIONS)
    finally:
        probe.close()
    run_dir = create_run_dir(args.runs_root, env_id, AGENT_NAME, seed, explicit=args.run_dir)
    command = shlex.join(["reflect", *getattr(args, "argv", ["train", "--env", env_id])])
    print(f"run folder: {run_dir}", file=sys.stderr)
    try:
        result = train(
            env_id,
            config,
            run_dir,
            seed=seed,
            resume=resume,
            resume_path=resume_path,
            command=command,
            progress_bar=not args.no_progress,
            verbose=0 if args.quiet else 1,
        )
    except RunSaveError as error:
        if os.environ.get("REFLECT_DEBUG"):
            raise
        print(f"reflect train: error: {error}", file=sys.stderr)
        return 1
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
        print(f"resuming from {found}", file=sys.stderr)
        return found
    raise CheckpointError(
        f"no loadable checkpoint in '{path}' (looked for final_model.pt and checkpoints/step_<N>.pt); "
        "give the path of a checkpoint file"
    )
