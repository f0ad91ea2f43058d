"""The server's log lines as ``window/logMessage`` notifications, at their own level.

Editors show a server's stderr as errors (VS Code's output channel prefixes every stderr line with
``[error]``; Neovim logs it as "rpc stderr" at ERROR), so an INFO line about a finished completion looked like
a failure. Once the client has sent ``initialize``, records go to it as logMessage with the matching
MessageType, as other Python language servers do; before that (startup) and after the client went away they
go to a fallback handler (stderr, warnings and errors only), or only to the log file when ``--log-file`` is
given.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from lsp.server import InfillLanguageServer

CLIENT_FORMAT = "%(name)s: %(message)s"  # the editor adds the time and the level


def message_type(level: int) -> types.MessageType:
    if level >= logging.ERROR:
        return types.MessageType.Error
    if level >= logging.WARNING:
        return types.MessageType.Warning
    if level >= logging.INFO:
        return types.MessageType.Info
    return types.MessageType.Log


class ClientLogHandler(logging.Handler):
    def __init__(self, server: InfillLanguageServer, fallback: logging.Handler | None) -> None:
        super().__init__()
        self.server = server
        self.fallback = fallback
        self.setFormatter(logging.Formatter(CLIENT_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("pygls") and record.levelno < logging.WARNING:
            return  # pygls logs every message it sends at DEBUG, this one included: that would never end
        loop = self.server.loop
        client_gone = getattr(self.server.protocol, "client_gone", False)
        if loop is None or loop.is_closed() or client_gone:
            self._fall_back(record)
            return
        params = types.LogMessageParams(type=message_type(record.levelno), message=self.format(record))
        try:
            loop.call_soon_threadsafe(self._send, params)  # records come from any thread
        except RuntimeError:  # the loop closed just now
            self._fall_back(record)

    def _fall_back(self, record: logging.LogRecord) -> None:
        # Handler.handle does not look at the handler's level (the logger does, before emit): check it here.
        if self.fallback is not None and record.levelno >= self.fallback.level:
            self.fallback.handle(record)

    def _send(self, params: types.LogMessageParams) -> None:
        if not getattr(self.server.protocol, "client_gone", False):
            self.server.window_log_message(params)
