"""The ``reflect`` command line.

    reflect train --env CartPole-v1 [--config FILE] [--seed N] [--total-steps N] [--set key=value ...]
    reflect evaluate --checkpoint runs/.../final_model.pt [--episodes 20] [--render]
    reflect run --checkpoint runs/.../final_model.pt --rate-hz 500 [--learn] [--duration 60]
    reflect export --checkpoint runs/.../final_model.pt --format onnx|torchscript|nir
    reflect import-nir policy.nir --env CartPole-v1 [--critic critic.nir] [--out policy.pt]
    reflect sweep configs/sweeps/cartpole.yaml [--address ADDR] [--resume SWEEP_DIR]
    reflect plot runs/<run folder>
    reflect verify [--neuron alif] [--steps 16] ...

Bad input (an unknown env id, a bad config key or value, a missing or corrupt checkpoint, an occupied
run directory, non-finite numbers) ends with a one-line error and exit status 2 (1 for a numerical
failure during training); set ``REFLECT_DEBUG=1`` to see the full traceback instead. A usage error (an
unknown option, a missing or malformed argument) is one line too, naming the command's ``--help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from reflect import __version__
from reflect.commands import evaluate, export, import_nir, plot, run, sweep, train, verify


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (not argparse's usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def _command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of ``command`` (``reflect train``'s for ``train``), else ``parser`` itself."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``reflect`` parser; its subcommands' parsers are of the same class (one-line usage errors)."""
    parser = _Parser(
        prog="reflect", description="Spiking networks that learn online, in one lifetime.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
    )
    parser.add_argument("--version", action="version", version=f"reflect {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, evaluate, run, plot, verify, sweep, export, import_nir):
        module.add_parser(commands)
    return parser


@contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """While inside, reflect's own warnings (:class:`~reflect.config.ConfigWarning`) print as one line,
    ``reflect CMD: warning: ...``, like its errors; other warnings as Python prints them."""
    from reflect.config import ConfigWarning

    with warnings.catch_warnings():
        show = warnings.showwarning

        def show_one_line(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, ConfigWarning):
                print(f"reflect {command}: warning: {message}", file=sys.stderr)
            else:
                show(message, category, *args, **kwargs)

        warnings.showwarning = show_one_line
        yield


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the command whose --help lists the options, not the top level
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.argv = argv
    try:
        with _one_line_warnings(args.command):
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
