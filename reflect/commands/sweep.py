"""``reflect sweep``: run a hyperparameter sweep (config points x envs x seeds) on Ray Tune.

    reflect sweep configs/sweeps/cartpole.yaml             # on this machine
    reflect sweep cartpole --set total_steps=20000          # a shipped spec, one key changed
    reflect sweep my_sweep.yaml --address auto              # on the Ray cluster this node belongs to
    reflect sweep --resume sweeps/<sweep folder>            # continue; finished trials are skipped
    reflect sweep --report sweeps/<sweep folder>            # redo results.csv, summary, plot
    reflect sweep my_sweep.yaml --dry-run                   # check the spec, list the trials

The spec (YAML) names the envs, the seeds, the budget per trial, the search (grid, random or
Optuna's TPE over any config key) and the concurrency; see configs/sweeps/cartpole.yaml. Each trial is
a 'reflect train' run folder under <sweep folder>/trials/; a trial that fails is retried from its
newest checkpoint. At the end: results.csv (one row per trial), summary.txt (median and interquartile
range per config point) and learning_curves.png. Needs Ray Tune: pip install "reflect-rl[sweep]".
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

INSTALL_HINT = 'pip install "reflect-rl[sweep]"'


def add_parser(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a hyperparameter sweep on Ray Tune (local or on a cluster)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("spec", nargs="?", metavar="SPEC",
                       help="a sweep spec YAML file, or the name of a shipped spec (e.g. cartpole)")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one spec key, e.g. --set total_steps=20000 or "
                            "--set resources.max_concurrent=4 (repeatable; with --resume only resources.*)")
    sweep.add_argument("--sweep-dir", type=Path, metavar="DIR",
                       help="write the sweep into DIR itself (must be new or empty)")
    sweep.add_argument("--sweeps-root", type=Path, default=Path("sweeps"), metavar="DIR",
                       help="where sweep folders are created when --sweep-dir is not given (default: sweeps)")
    sweep.add_argument("--address", metavar="ADDR",
                       help="run on this running Ray cluster (passed to ray.init(address=...); e.g. auto "
                            "on one of its nodes); default: start Ray on this machine")
    sweep.add_argument("--resume", type=Path, metavar="SWEEP_DIR",
                       help="continue an interrupted sweep; finished trials are not run again")
    sweep.add_argument("--report", type=Path, metavar="SWEEP_DIR",
                       help="only write results.csv, summary.txt and learning_curves.png of a sweep folder")
    sweep.add_argument("--dry-run", action="store_true",
                       help="check the spec and list the trials; run nothing")
    sweep.add_argument("--verbose", action="store_true", help="show Ray's own logs and progress tables")
    sweep.set_defaults(run=run)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_installed(method: str) -> None:
    from reflect.sweep.plan import SweepError

    try:
        import ray.tune  # noqa: F401
    except ImportError as error:
        raise SweepError(
            f"reflect sweep runs its trials on Ray Tune, which cannot be imported ({error}): {INSTALL_HINT}"
        ) from error
    if method == "optuna" and importlib.util.find_spec("optuna") is None:
        raise SweepError(f"search method 'optuna' needs Optuna, which is not installed: {INSTALL_HINT}")


def run(args: argparse.Namespace) -> int:
    from reflect.sweep.plan import SweepError, create_sweep, open_sweep
    from reflect.sweep.report import write_report
    from reflect.sweep.spec import load_sweep_spec

    given = [name for name, value in (("SPEC", args.spec), ("--resume", args.resume),
                                       ("--report", args.report)) if value is not None]
    if len(given) != 1:
        raise SweepError(
            "give exactly one of SPEC, --resume SWEEP_DIR and --report SWEEP_DIR"
            + (f" (got {' and '.join(given)})" if given else ", e.g. reflect sweep cartpole")
        )
    if args.report is not None:
        if args.overrides:
            raise SweepError("--report reads a finished or interrupted sweep as it is; drop --set")
        sweep = open_sweep(args.report)
        text, files = write_report(sweep)
        print(text, end="")
        for path in files:
            print(path)
        return 0
    if args.resume is not None:
        if args.sweep_dir is not None or args.dry_run:
            raise SweepError("--resume continues the sweep in its own folder; drop --sweep-dir / --dry-run")
        sweep = open_sweep(args.resume, overrides=args.overrides)
        _log(f"resuming sweep {sweep.spec.name} in {sweep.directory}")
    else:
        spec, dimensions = load_sweep_spec(args.spec, args.overrides)
        if args.dry_run:
            return _dry_run(spec, dimensions)
        _check_installed(spec.search.method)
        sweep = create_sweep(spec, dimensions, root=args.sweeps_root, explicit=args.sweep_dir)
        _log(f"sweep folder: {sweep.directory}")
    _check_installed(sweep.spec.search.method)
    return _run(sweep, args)


def _dry_run(spec: Any, dimensions: Any) -> int:
    from reflect.sweep.plan import initial_points
    from reflect.sweep.spec import check_point
    from reflect.sweep.trial import build_trials

    points = initial_points(spec, dimensions)
    for point in points:
        check_point(spec, point)
    trials = build_trials(spec, points)
    print(f"sweep {spec.name}: {spec.search.method} search, {len(points)} config points x {len(spec.envs)} "
          f"env(s) x {len(spec.seeds)} seed(s) = {len(trials)} trials")
    if spec.search.method == "optuna":
        print(f"optuna: {spec.search.num_samples} points, asked in rounds; objective {spec.search.metric} "
              f"({spec.mode})")
    for point in points:
        print(f"  {point.id}: {point.label}")
    for trial in trials:
        fault = f"  (killed once after step {trial.fail_once_at_step})" if trial.fail_once_at_step else ""
        print(f"  trial {trial.index}: {trial.name}, {trial.total_steps:,} steps{fault}")
    return 0


def _run(sweep: Any, args: argparse.Namespace) -> int:
    from reflect.sweep.plan import run_sweep
    from reflect.sweep.report import write_report
    from reflect.sweep.runner import RayRunner

    spec = sweep.spec
    start = time.perf_counter()
    count = len(sweep.trials)
    shape = f"{len(sweep.points)} config points x {len(spec.envs)} env(s) x {len(spec.seeds)} seed(s)"
    _log(f"sweep {spec.name}: {shape} = {count} trials" if spec.search.method != "optuna" else
         f"sweep {spec.name}: optuna, {spec.search.num_samples} points x {spec.trials_per_point} trials each")
    interrupted = False
    try:
        with RayRunner(sweep, address=args.address, verbose=args.verbose, log=_log) as runner:
            run_sweep(sweep, runner, log=_log)
    except KeyboardInterrupt:
        interrupted = True
    text, files = write_report(sweep)
    print(text, end="")
    for path in files:
        print(path)
    minutes, seconds = divmod(time.perf_counter() - start, 60)
    statuses = [sweep.status(trial) for trial in sweep.trials]
    _log(f"wall time {int(minutes)} min {seconds:.0f} s")
    if interrupted or "pending" in statuses:
        _log(f"unfinished trials remain; continue with: reflect sweep --resume {sweep.directory}")
        return 130 if interrupted else 1
    return 1 if "failed" in statuses else 0
