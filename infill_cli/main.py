"""`infill` entry point: registers one module per subcommand and turns errors into one line and an exit code.

Exit codes: 0 ok, 1 `--check` found changes, 2 an error the user can fix (bad input, model, device),
3 the model produced no checked fill (`complete` printed nothing; `rewrite` left a hole or region without one,
named on stderr with its line and why), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from infill import __version__
from infill.errors import InfillError
from infill_cli.batch import batch_command_parser
from infill_cli.complete import complete_command_parser
from infill_cli.doctor import doctor_command_parser
from infill_cli.eval import eval_command_parser
from infill_cli.rewrite import rewrite_command_parser
from infill_cli.serve import serve_command_parser
from infill_cli.train import train_command_parser

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infill",
        description="Local diffusion-based code infilling.",
    )
    parser.add_argument("--version", action="version", version=f"infill {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="<command>")
    # Each *_command_parser adds its subparser and sets func to its *_command.
    rewrite_command_parser(subparsers)
    complete_command_parser(subparsers)
    batch_command_parser(subparsers)
    doctor_command_parser(subparsers)
    serve_command_parser(subparsers)
    train_command_parser(subparsers)
    eval_command_parser(subparsers)
    return parser


def _error(message: str) -> int:
    print(f"infill: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    from infill_cli.common import configure_logging

    configure_logging(getattr(args, "verbose", 0) or 0)
    try:
        return int(args.func(args) or 0)
    except InfillError as error:
        return _error(str(error).splitlines()[0] if str(error) else type(error).__name__)
    except KeyboardInterrupt:
        print("infill: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`infill rewrite x.py | head`): not worth a message. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        return _error(f"{where}{error.strerror or error}")


if __name__ == "__main__":
    sys.exit(main())
