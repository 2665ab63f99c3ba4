"""The ``reflect`` command line.

    reflect train --env CartPole-v1 [--config FILE] [--seed N] [--total-steps N] [--set key=value ...]
    reflect evaluate --checkpoint runs/.../final_model.pt [--episodes 20] [--render]
    reflect run --checkpoint runs/.../final_model.pt --rate-hz 500 [--learn] [--duration 60]
    reflect export --checkpoint runs/.../final_model.pt --format onnx|torchscript
    reflect sweep configs/sweeps/cartpole.yaml [--address ADDR] [--resume SWEEP_DIR]
    reflect plot runs/<run folder>
    reflect verify [--neuron alif] [--steps 16] ...

Bad input (an unknown env id, a bad config key or value, a missing or corrupt checkpoint, an occupied
run directory, non-finite numbers) ends with a one-line error and exit status 2 (1 for a numerical
failure during training); set ``REFLECT_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from reflect import __version__
from reflect.commands import evaluate, export, plot, run, sweep, train, verify


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reflect", description="Spiking networks that learn online, in one lifetime.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
    )
    parser.add_argument("--version", action="version", version=f"reflect {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, evaluate, run, plot, verify, sweep, export):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.run(args))
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        if os.environ.get("REFLECT_DEBUG"):
            raise
        print(f"reflect {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        if os.environ.get("REFLECT_DEBUG"):
            raise
        print(f"reflect {args.command}: numerical error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"reflect {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
