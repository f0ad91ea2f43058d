"""`infill doctor`: versions, devices and whether the model loads, to paste into a bug report."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from infill import __version__
from infill.errors import InfillError
from infill_cli.common import add_model_options

if TYPE_CHECKING:
    from infill.models import LoadedModel

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
# The hole `infill doctor` fills: the rest of a line that any code model completes.
FILL_PREFIX = "def add(a, b):\n    return "
FILL_SUFFIX = "\n\n\nprint(add(1, 2))\n"
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
        help="print versions, devices, the model family and special tokens, and fill one hole (bug reports)",
        description=(
            "Print versions, devices, the resolved model directory, its family, tokenizer and special "
            "tokens, and fill one short hole with it. Exits 1 when the model does not load or cannot fill."
        ),
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
    """Exit 0 when the model loads and fills a hole (or with --no-load, when the directory resolves), else 1.

    Everything it could find out is printed either way: problems are part of the report.
    """
    _row("infill", __version__)
    _row("python", f"{platform.python_version()} ({sys.executable})")
    _row("platform", platform.platform())
    for package in PACKAGES:
        _row(package, _version(package))
    for grammar in GRAMMARS:
        _row(grammar, _version(grammar))
    _report_languages()
    _report_devices(args)
    return 0 if _report_model(args) else 1


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


def _report_model(args: argparse.Namespace) -> bool:
    """Resolve, load and run one short fill; False when any of it fails."""
    from infill.models import load_model, resolve_model_dir

    try:
        model_dir = resolve_model_dir(args.model)
    except InfillError as error:
        _row("model dir", f"FAILED: {error}")
        return False
    _row("model dir", model_dir)
    if args.no_load:
        return True
    started = time.perf_counter()
    try:
        loaded = load_model(
            model_dir, device=args.device, trust_remote_code=args.trust_remote_code, quantize=args.quantize
        )
    except InfillError as error:
        _row("model loads", f"FAILED: {error}")
        return False
    _row("model loads", f"yes, in {time.perf_counter() - started:.1f} s")
    if args.quantize:
        _row("quantized", f"{args.quantize} Linear layers (torch dynamic quantization)")
    from infill.models.devices import use_threads

    _row("model cpu threads", use_threads(args.threads, loaded.model))
    _report_loaded(loaded)
    return _report_fill(loaded)


def _token(loaded: LoadedModel, token_id: int) -> str:
    return f"{token_id} {loaded.tokenizer.token_text(token_id)!r}"


def _report_loaded(loaded: LoadedModel) -> None:
    from infill.models import family_named

    special = loaded.special
    _row("model family", f"{loaded.family}: {family_named(loaded.family).title}")
    _row("tokenizer", f"{loaded.tokenizer.vocab_size} tokens, from {loaded.tokenizer_source}")
    _row("mask token", _token(loaded, special.mask_id))
    _row("end of span", _token(loaded, special.end_of_span_id))
    if special.stop_ids:
        _row("also ends a span", ", ".join(_token(loaded, i) for i in special.stop_ids))
    framing = [*(_token(loaded, i) for i in special.prefix_ids), "prefix", "masks", "suffix"]
    framing += [_token(loaded, i) for i in special.suffix_ids]
    block_size = getattr(loaded.model, "block_size", None)
    if block_size is not None:  # block diffusion: the family's prompt layout, continued block by block
        layout = special.block_prompt or ("{prefix}",)
        pieces = [p.strip("{}") if isinstance(p, str) else _token(loaded, p) for p in layout]
        framing = [*(_token(loaded, i) for i in special.prefix_ids), *pieces, f"blocks of {block_size} masks"]
        if getattr(loaded.model, "ends_blocks_at_prompt", False):  # the dllm BD3LM sampler's block grid
            framing[-1] += " (the prompt's first block a partial one, so that a block ends where it does)"
    _row("canvas", " + ".join(framing))
    if block_size is not None:  # a block model's span ends where it stops, not at a length estimate
        _row("span length", f"blocks of {block_size} until the block holding end of span, at most max tokens")
    _row("model device/dtype", f"{loaded.device} / {str(loaded.dtype).removeprefix('torch.')}")
    _row("model window", f"{loaded.max_positions} tokens")
    if loaded.generation_defaults:
        _row("decoding defaults", loaded.generation_defaults)
    from infill.engine.length import describe_length
    from infill.engine.types import DecodeConfig

    defaults = {**vars(DecodeConfig()), **loaded.generation_defaults}
    share = defaults["canvas_share"]
    share = float(share) if isinstance(share, int | float) else 1.0
    _row("fill length", describe_length(loaded, defaults["estimate_length"] is True, share))


def _report_fill(loaded: LoadedModel) -> bool:
    """One short line fill through the real engine: the whole path a completion takes."""
    from infill.engine import InfillEngine
    from infill.engine.types import FillRequest

    request = FillRequest(prefix=FILL_PREFIX, suffix=FILL_SUFFIX, max_tokens=8, mode="line")
    started = time.perf_counter()
    try:
        engine = InfillEngine(loaded)
        config = replace(engine.default_config(), steps=4, num_candidates=1)
        (result,) = engine.fill([request], config)
    except (InfillError, RuntimeError, ValueError) as error:
        _row("test fill", f"FAILED: {type(error).__name__}: {error}")
        return False
    text = result.best.text if result.best else ""
    elapsed = (time.perf_counter() - started) * 1000
    _row("test fill", f"{text!r} after {FILL_PREFIX!r} ({result.forward_passes} passes, {elapsed:.0f} ms)")
    return True
