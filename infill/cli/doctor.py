"""`infill doctor`: versions, devices and whether the model loads, to paste into a bug report."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
import time

from infill import __version__
from infill.cli.common import add_model_options
from infill.errors import InfillError

PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "pygls",
    "lsprotocol",
    "tree-sitter",
)
GRAMMARS = (
    "tree-sitter-python",
    "tree-sitter-javascript",
    "tree-sitter-typescript",
    "tree-sitter-go",
    "tree-sitter-rust",
    "tree-sitter-java",
    "tree-sitter-c",
    "tree-sitter-cpp",
)


def doctor_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor",
        help="print versions, devices and whether the model loads (for bug reports)",
        description="Print versions, devices, the resolved model directory and whether it loads.",
    )
    parser.add_argument(
        "--no-load", action="store_true", help="only resolve the model directory, do not load it"
    )
    add_model_options(parser)
    parser.set_defaults(func=doctor_command)
    return parser


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _row(name: str, value: object) -> None:
    print(f"{name + ':':<24} {value}")


def doctor_command(args: argparse.Namespace) -> int:
    """Always exits 0 when it could print its report: problems are part of the report, not errors."""
    _row("infill", __version__)
    _row("python", f"{platform.python_version()} ({sys.executable})")
    _row("platform", platform.platform())
    for package in PACKAGES:
        _row(package, _version(package))
    for grammar in GRAMMARS:
        _row(grammar, _version(grammar))
    _report_languages()
    _report_devices(args)
    _report_model(args)
    return 0


def _report_languages() -> None:
    try:
        from infill import regions

        working = [lang for lang in regions.LANGUAGES if regions.parse_error_count("", lang) == 0]
        _row("grammars loading", ", ".join(working) or "none")
    except (ImportError, InfillError, ValueError, OSError) as error:
        _row("grammars loading", f"FAILED: {error}")


def _report_devices(args: argparse.Namespace) -> None:
    import torch

    cuda = torch.cuda.is_available()
    _row("cuda available", cuda)
    if cuda:
        _row("cuda version", torch.version.cuda)
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            _row(f"cuda:{index}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB")
    _row("cpu threads", torch.get_num_threads())
    from infill.models import resolve_device

    try:
        _row("device (resolved)", resolve_device(args.device))
    except InfillError as error:
        _row("device (resolved)", f"FAILED: {error}")


def _report_model(args: argparse.Namespace) -> None:
    from infill.models import load_model, resolve_model_dir

    try:
        model_dir = resolve_model_dir(args.model)
    except InfillError as error:
        _row("model dir", f"FAILED: {error}")
        return
    _row("model dir", model_dir)
    if args.no_load:
        return
    started = time.perf_counter()
    try:
        loaded = load_model(model_dir, device=args.device, trust_remote_code=args.trust_remote_code)
    except InfillError as error:
        _row("model loads", f"FAILED: {error}")
        return
    elapsed = time.perf_counter() - started
    _row("model loads", f"yes, in {elapsed:.1f} s")
    _row("model kind", loaded.kind)
    _row("model device/dtype", f"{loaded.device} / {str(loaded.dtype).removeprefix('torch.')}")
    _row("model window", f"{loaded.max_positions} tokens")
    _row("vocabulary", loaded.tokenizer.vocab_size)
    if loaded.generation_defaults:
        _row("decoding defaults", loaded.generation_defaults)
