"""The ``uniformerv2`` command line: a thin layer over the Python API, one module per command.

Errors: a :class:`~uniformerv2.errors.UniFormerV2Error` (bad input, a missing file, a checkpoint that does not fit)
is printed as one line and exits 1; argparse's usage errors exit 2; anything else is a bug, printed as one line
that says so, with the traceback under ``--debug``. Exit 3 means finished with some videos failed
(see :mod:`uniformerv2.cli._common`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from .._version import __version__
from ..errors import UniFormerV2Error
from . import check, convert, demo, explain, export, extract, info, live, predict, serve, test, timeline, train
from . import list as list_command
from ._common import EXIT_ERROR, normalize_argv, parse_overrides

__all__ = ["main", "build_parser", "parse_overrides"]

COMMANDS = (
    list_command,
    info,
    convert,
    predict,
    timeline,
    live,
    serve,
    test,
    explain,
    check,
    extract,
    train,
    demo,
    export,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uniformerv2", description="UniFormerV2 video action recognition.")
    parser.add_argument("--version", action="version", version=f"uniformerv2 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"uniformerv2: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _warning_line  # our warnings are for users: one line, no source location
            return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except UniFormerV2Error as e:
        if args.debug:
            raise
        print(f"uniformerv2 {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:
        if args.debug:
            raise
        print(
            f"uniformerv2 {args.command}: internal error (a bug, please report it): {type(e).__name__}: {e} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
