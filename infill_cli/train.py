"""`infill train`: fine-tune a model on a git repository, or train one from scratch.

Every field of ``training.config.TrainConfig`` is an option (``--max-steps``, ``--seq-len``...); the defaults
fine-tune the bundled model on a small repository in minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import sys

# A run ended early by SIGTERM/SIGINT (checkpoint and model dir written): not a success for a script that
# goes on to the next stage.
STOPPED_EXIT_CODE = 130


def train_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from training.config import add_config_arguments

    parser = subparsers.add_parser(
        "train",
        help="fine-tune on a git repository or train a model from scratch",
        description=(
            "Fine-tune a diffusion infilling model on the files a git repository tracks (default base: the "
            "bundled model), or train one from scratch (--from-scratch; --from-python-packages for the "
            "permissively licensed installed Python packages). --objective ar-fim trains the autoregressive "
            "fill-in-the-middle peer instead. Run again, a finished run is reported up to date; --resume "
            "continues an interrupted one, --update a finished one on what changed since, --force redoes it."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-v: info, -vv: debug)"
    )
    parser.set_defaults(func=train_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    from training.config import config_from_args
    from training.finetune_report import HELDOUT_CE, REPORT_NAME, format_report
    from training.trainer import train

    config = config_from_args(args)
    if config.repo is None and not config.from_python_packages and not config.corpus_archive:
        config.repo = "."
    result = train(config)
    if result.up_to_date is not None:
        print(result.up_to_date)
        if result.report is not None:
            print(format_report(result.report))
        sys.stdout.flush()
        return 0
    print(f"model written to {result.out.resolve()}")
    print(f"steps {result.steps}, tokens {result.tokens:,}")
    if result.heldout_cross_entropy is not None:
        examples = config.eval_batches * config.batch_size
        unit = "predicted" if config.objective == "ar-fim" else "masked"
        print(
            f"{HELDOUT_CE} {result.heldout_cross_entropy:.4f} "
            f"(per {unit} token, mean over {examples} held-out examples)"
        )
    for name, numbers in (("base", result.base_eval), ("trained", result.span_eval)):
        if numbers:
            print(
                f"{name} held-out span exact match {numbers['exact_match']:.3f}, "
                f"edit similarity {numbers['edit_similarity']:.3f} ({int(numbers['rows'])} gaps)"
            )
    if result.stopped:
        print(f"stopped by a signal at step {result.steps}: add --resume to the same command to continue")
        sys.stdout.flush()
        return STOPPED_EXIT_CODE
    if result.report is not None:
        print(format_report(result.report))
        print(f"report written to {(result.out / REPORT_NAME).resolve()}")
    sys.stdout.flush()
    return 0
