"""Options shared by the subcommands that run a model, and turning them into objects.

Heavy imports (torch, transformers) happen inside functions so `infill --help` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from infill.models.quantize import QUANTIZATIONS

if TYPE_CHECKING:
    from infill.engine.types import DecodeConfig
    from infill.infiller import Infiller

N = TypeVar("N", int, float)

STRATEGIES = ("confidence", "margin", "entropy", "threshold", "blocks", "p2")
# Exit code when the model ran but produced no checked fill: `complete` printed nothing, or `rewrite` left a
# hole or region unfilled (or, with --keep-invalid, filled it with unchecked code). Documented in main.py.
EXIT_UNFILLED = 3


def _checked(convert: Callable[[str], N], accept: Callable[[N], bool], expected: str) -> Callable[[str], N]:
    """An argparse ``type=`` that converts and range-checks, with one message for both failures."""

    def parse(value: str) -> N:
        try:
            number = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not accept(number):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return number

    return parse


positive_int = _checked(int, lambda n: n >= 1, "a positive integer")
unit_float = _checked(float, lambda x: 0.0 <= x <= 1.0, "a number between 0 and 1")
non_negative_float = _checked(float, lambda x: x >= 0.0, "a non-negative number")


def add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr (-v: info, -vv: debug; default level from INFILL_LOG_LEVEL, else warning)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        metavar="DIR",
        default=None,
        help="model directory (default: $INFILL_MODEL, else the bundled model)",
    )
    group.add_argument(
        "--device",
        metavar="{auto,cpu,cuda,cuda:N}",
        default=None,
        help="where to run the model (default: $INFILL_DEVICE, else auto: cuda when available)",
    )
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow model directories that need their own Python code (only for models you trust)",
    )
    group.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,  # quantize.py imports torch only when it quantizes
        default=None,
        help="int8: the model's Linear layers in int8 (CPU only, models up to 2B parameters; faster)",
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: $OMP_NUM_THREADS, else 1 for models under 10M parameters such as "
        "the bundled one, else one per physical core; 1 is fastest on a busy machine)",
    )
    add_verbose_option(parser)


def add_decode_options(parser: argparse.ArgumentParser, *, max_tokens_help: str) -> None:
    group = parser.add_argument_group("decoding (defaults come with the model)")
    group.add_argument("--steps", type=positive_int, default=None, help="denoising steps for a full span")
    group.add_argument(
        "--strategy", choices=STRATEGIES, default=None, help="which masked positions to commit first"
    )
    group.add_argument(
        "--threshold", type=unit_float, default=None, help="confidence to commit at (strategy threshold)"
    )
    group.add_argument(
        "--temperature", type=non_negative_float, default=None, help="0 is greedy and deterministic"
    )
    group.add_argument("--seed", type=int, default=None, help="make sampling reproducible")
    group.add_argument("--max-tokens", type=positive_int, default=None, help=max_tokens_help)


def configure_logging(verbose: int) -> None:
    """Logs go to stderr only: stdout carries the command's output (diffs, completions)."""
    if verbose >= 2:
        level: int | str = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = os.environ.get("INFILL_LOG_LEVEL", "WARNING").upper()
    try:
        logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
    except ValueError:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        logging.getLogger(__name__).warning("ignoring unknown INFILL_LOG_LEVEL %r", level)


def check_model(args: argparse.Namespace) -> Path:
    """The model directory the command will load, checked (it exists, holds config.json, a tokenizer and
    safetensors weights) before anything is loaded or decoded: a bad ``--model`` fails in a blink."""
    from infill.models.locate import check_model_files, read_config, resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    read_config(model_dir)
    check_model_files(model_dir)
    return model_dir


def unknown_language_notice(path: Path) -> None:
    """One stderr line: without a grammar, only line and bracket heuristics judge the fills."""
    what = f'"{path.suffix}"' if path.suffix else "files without an extension"
    print(
        f"infill: note: {path}: no grammar for {what}: only line and bracket heuristics apply "
        "(regions by indentation, fills checked by bracket balance, markers in #, // or -- comments)",
        file=sys.stderr,
    )


def load_infiller(args: argparse.Namespace) -> Infiller:
    from infill.infiller import Infiller
    from infill.models.devices import use_threads

    infiller = Infiller.load(
        args.model, device=args.device, trust_remote_code=args.trust_remote_code, quantize=args.quantize
    )
    use_threads(args.threads, infiller.engine.loaded.model)
    return infiller


def decode_config(args: argparse.Namespace, infiller: Infiller) -> DecodeConfig:
    """The model's defaults with whatever the user set on the command line on top."""
    overrides = {
        name: getattr(args, name)
        for name in ("steps", "strategy", "threshold", "temperature", "seed")
        if getattr(args, name, None) is not None
    }
    return replace(infiller.engine.default_config(), **overrides)
