"""`infill serve`: the language server over stdio (default) or TCP on loopback only.

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
        help="run the language server (stdio by default)",
        description="Run the infill language server: inline completions, infill/rewrite and code actions.",
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
    parser.add_argument("--host", default="127.0.0.1", help="TCP host; must be a loopback address")
    parser.add_argument("--port", type=int, default=None, help="TCP port (required with --tcp)")
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
        help="also write every log line here (the client gets them as window/logMessage; without a log "
        "file, warnings and errors logged before a client connects go to stderr)",
    )
    parser.set_defaults(func=serve_command)
    return parser


def _check_loopback(host: str) -> None:
    """Refuse anything but loopback: the server reads and edits source code for whoever connects."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InputError(f"--host {host} is not a loopback address; infill serve listens on loopback only")


def _configure_logging(log_file: str | None) -> None:
    """Everything to ``--log-file`` when given; to the client as window/logMessage once it has initialized;
    warnings and errors to stderr while there is no client to tell (startup, a client gone) and no log
    file."""
    from lsp.client_log import ClientLogHandler
    from lsp.protocol import PYGLS_LOGGERS, ExpectedErrorsAreNotCrashes
    from lsp.server import SERVER

    level_name = os.environ.get("INFILL_LOG_LEVEL", "INFO").upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        level = logging.INFO
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(LOG_FORMAT))
    # Editors show a server's stderr as errors: only real problems go there (before a client is connected).
    stderr.setLevel(logging.WARNING)
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(file_handler)
    root.addHandler(ClientLogHandler(SERVER, fallback=None if log_file else stderr))
    root.setLevel(level)
    logging.captureWarnings(True)
    # pygls logs every message body at INFO (a 5 MB didOpen would land in the log): keep it to warnings.
    if level > logging.DEBUG:
        logging.getLogger("pygls").setLevel(logging.WARNING)
    for name in PYGLS_LOGGERS:
        logging.getLogger(name).addFilter(ExpectedErrorsAreNotCrashes())


def serve_command(args: argparse.Namespace) -> int:
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
