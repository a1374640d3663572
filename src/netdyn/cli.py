"""The command line: a thin layer from argv to the config dataclasses and the same API a Python user calls.

Exit status: 0 success, 1 a failure (bad data, an unreadable run folder, a place that cannot be written), 2 bad
arguments (malformed or out-of-range values, also for the run at hand; a path that names nothing, or a file where a
folder belongs), 3 a diverged run. Every error is one line on stderr, never a traceback.

Each command is a module of :mod:`netdyn.commands`; this one assembles the parser from them and runs ``main``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from netdyn.commands import COMMAND_MODULES
from netdyn.commands._options import EXIT_FAILURE, EXIT_USAGE, Parser, UsageError, add_output_options
from netdyn.errors import ConfigError, NetdynError


def build_parser() -> argparse.ArgumentParser:
    """``netdyn`` and every command of :data:`netdyn.commands.COMMAND_MODULES`."""
    parser = Parser(
        prog="netdyn",
        description="Network-dynamics analysis of deep neural networks "
        "(Lin, Zhang, Feng, Zhao, arXiv 2501.02436).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    for command in sub.choices.values():
        add_output_options(command)
    return parser


def _version() -> str:
    from netdyn._version import __version__

    return f"netdyn {__version__}"


# ---------------------------------------------------------------------------------------------- entry
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in-process; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        with warnings.catch_warnings(), _logging(args.verbose):
            warnings.showwarning = _note
            if args.quiet:
                warnings.simplefilter("ignore")
            return args.handler(args)
    except UsageError as exc:
        print(_one_line(str(exc)), file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"netdyn {_command(argv)}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except NetdynError as exc:
        print(f"netdyn {_command(argv)}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # the operating system refused something netdyn does not wrap: still one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"netdyn {_command(argv)}: error: {_one_line(str(exc.strerror or exc))}{where}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("netdyn: interrupted; completed checkpoints and tables are kept", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """With ``-v``, netdyn's log records at INFO and above as ``netdyn: ...`` lines on stderr, for this command."""
    if not verbose:
        yield
        return
    logger = logging.getLogger("netdyn")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("netdyn: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _note(message: Warning | str, category: type, filename: str, lineno: int, file: Any = None, line: Any = None):
    """A warning on the command line: one line on stderr (the sizes a basin never reached, and the like)."""
    print(f"netdyn: note: {_one_line(str(message))}", file=sys.stderr)


def _one_line(message: str) -> str:
    """An error message on one line, whatever a library wrapped into it."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def _command(argv: Sequence[str] | None) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), "")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
