"""``reflect plot RUN_DIR``: write the learning curve, a spike raster and the hidden state of a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from reflect.commands.common import positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser(
        "plot", help="learning-curve, spike-raster and hidden-state PNGs of a run folder", description=__doc__
    )
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a folder written by 'reflect train'")
    plot.add_argument("--raster-steps", type=positive_int, default=200,
                      help="steps of the evaluation episode shown in the raster (default: 200)")
    plot.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reflect.runs.plot_run import plot_run

    for path in plot_run(args.run_dir, raster_steps=args.raster_steps):
        print(path)
    return 0
