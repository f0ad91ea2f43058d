"""`infill serve`: the language server over stdio (default) or TCP on loopback only; `--http`: the llama.cpp,
Ollama and OpenAI completion protocols (``httpserver``).

stdout is the protocol, so nothing is printed while serving: logs go to the client (window/logMessage), to
``--log-file`` when given, and (warnings and errors only) to stderr before a client is connected.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from infill.errors import InputError
from infill.models.quantize import QUANTIZATIONS

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from lsp.settings import settings_help  # no torch: plain dataclasses

    parser = subparsers.add_parser(
        "serve",
        help="run the language server (stdio by default), or the HTTP completion server (--http)",
        description="Run the infill language server: inline completions, infill/rewrite and code actions; "
        "or, with --http, llama.cpp's, Ollama's and OpenAI's completion endpoints for existing clients.",
        epilog=(
            "settings (initializationOptions or workspace/didChangeConfiguration, all optional;\n"
            "an invalid value falls back to its default with one warning):\n" + settings_help()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--stdio",
        action="store_true",
        help="speak LSP over stdin/stdout (the default; accepted because editors' LSP clients pass it)",
    )
    parser.add_argument("--tcp", action="store_true", help="listen on TCP instead of stdio (loopback only)")
    parser.add_argument(
        "--http",
        action="store_true",
        help="serve llama.cpp's /infill, Ollama's /api/generate and OpenAI's /v1/completions over HTTP",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="host to bind; --tcp: loopback only; --http: anything but loopback needs --api-key",
    )
    parser.add_argument("--port", type=int, default=None, help="TCP port (required with --tcp; --http: 8012)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="--http: the key clients send as `Authorization: Bearer KEY` (default: INFILL_API_KEY)",
    )
    parser.add_argument(
        "--insecure-no-api-key",
        action="store_true",
        help="--http: allow a non-loopback --host without a key (anyone reaching the port gets completions)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=None,
        help="--http: requests waiting for the model before new ones get 503 with Retry-After (default: 64)",
    )
    parser.add_argument("--model", default=None, help="model directory (default: INFILL_MODEL, then bundled)")
    parser.add_argument("--device", default=None, help='"auto" (default), "cpu", "cuda" or "cuda:N"')
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default=None,
        help="int8: the model's Linear layers in int8 (CPU only, models up to 2B parameters)",
    )
    parser.add_argument(
        "--log-file",
        default=None,
        help="also write every log line here, debug included (the client gets INFILL_LOG_LEVEL and up as "
        "window/logMessage; without a log file, warnings and errors logged before a client connects go to "
        "stderr)",
    )
    parser.set_defaults(func=serve_command)
    return parser


def _check_loopback(host: str) -> None:
    """Refuse anything but loopback: the server reads and edits source code for whoever connects."""
    if not _is_loopback(host):
        raise InputError(f"--host {host} is not a loopback address; infill serve listens on loopback only")


def _log_level() -> int:
    level = logging.getLevelName(os.environ.get("INFILL_LOG_LEVEL", "INFO").upper())
    return level if isinstance(level, int) else logging.INFO


def _configure_logging(log_file: str | None) -> None:
    """Everything to ``--log-file`` when given; to the client as window/logMessage once it has initialized;
    warnings and errors to stderr while there is no client to tell (startup, a client gone) and no log
    file."""
    from lsp.client_log import ClientLogHandler
    from lsp.protocol import PYGLS_LOGGERS, ExpectedErrorsAreNotCrashes
    from lsp.server import SERVER

    level = _log_level()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(LOG_FORMAT))
    # Editors show a server's stderr as errors: only real problems go there (before a client is connected).
    stderr.setLevel(logging.WARNING)
    client = ClientLogHandler(SERVER, fallback=None if log_file else stderr)
    client.setLevel(level)
    if log_file:
        # The file gets the per-completion lines (debug) too: the client only gets INFILL_LOG_LEVEL and up.
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(file_handler)
    root.addHandler(client)
    root.setLevel(min(level, logging.DEBUG) if log_file else level)
    logging.captureWarnings(True)
    # pygls logs every message body at INFO (a 5 MB didOpen would land in the log): keep it to warnings.
    if level > logging.DEBUG:
        logging.getLogger("pygls").setLevel(logging.WARNING)
    for name in PYGLS_LOGGERS:
        logging.getLogger(name).addFilter(ExpectedErrorsAreNotCrashes())


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve_http(args: argparse.Namespace) -> int:
    """Check everything before the model loads: the address, the key, the port, the model directory."""
    from infill.worker import ModelSpec
    from infill_cli.common import check_model

    api_key = args.api_key or os.environ.get("INFILL_API_KEY") or None
    if not _is_loopback(args.host) and not api_key and not args.insecure_no_api_key:
        raise InputError(
            f"--host {args.host} is not a loopback address: pass --api-key KEY (or INFILL_API_KEY), or "
            "--insecure-no-api-key to let anyone who reaches the port use it"
        )
    port = 8012 if args.port is None else args.port
    if not 0 <= port < 65536:
        raise InputError("--port needs 0 <= N < 65536 (0: any free port, logged at startup)")
    max_queue = 64 if args.max_queue is None else args.max_queue
    if max_queue < 1:
        raise InputError("--max-queue needs N >= 1")
    model_dir = check_model(args)
    # stderr is free here (no protocol on stdout), so log lines go there unless --log-file says otherwise.
    file = args.log_file
    log_to = logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler()
    logging.basicConfig(level=_log_level(), format=LOG_FORMAT, handlers=[log_to], force=True)
    from httpserver.app import serve

    spec = ModelSpec(
        model=str(model_dir), device=args.device, trust_remote_code=False, quantize=args.quantize
    )
    serve(spec, args.host, port, api_key=api_key, model_name=model_dir.name, max_queue=max_queue)
    return 0


def serve_command(args: argparse.Namespace) -> int:
    if args.http:
        if args.tcp or args.stdio:
            raise InputError("--http excludes --stdio and --tcp")
        return _serve_http(args)
    if args.api_key or args.insecure_no_api_key or args.max_queue is not None:
        raise InputError("--api-key, --insecure-no-api-key and --max-queue are only used with --http")
    if args.tcp and args.stdio:
        raise InputError("--stdio and --tcp exclude each other")
    if args.tcp:
        _check_loopback(args.host)
        if args.port is None or not 0 < args.port < 65536:
            raise InputError("--tcp needs --port N with 0 < N < 65536")
    elif args.port is not None:
        raise InputError("--port is only used with --tcp")
    try:
        _configure_logging(args.log_file)
    except OSError as error:
        raise InputError(f"cannot open log file {args.log_file}: {error.strerror or error}") from error
    from lsp.server import SERVER

    SERVER.cli_model = args.model
    SERVER.cli_device = args.device
    SERVER.cli_quantize = args.quantize
    logging.getLogger(__name__).info("infill serve starting (%s)", "tcp" if args.tcp else "stdio")
    if args.tcp:
        SERVER.start_tcp(args.host, args.port)
    else:
        SERVER.start_io()
    return 0
