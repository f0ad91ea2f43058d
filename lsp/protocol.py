"""pygls' LSP protocol with answers for malformed input, so a bad message never leaves a client waiting.

pygls drops a request whose params fail to validate (the client would wait forever) and ignores valid JSON
that is not a JSON-RPC message. Here such a request gets an InvalidParams / InvalidRequest error with its id,
and a body that is not JSON gets a ParseError with id null, as JSON-RPC 2.0 asks. Requests after
``shutdown`` get InvalidRequest (LSP), where pygls would drop them. A client that went away (an editor
quit with ``:qa!``) costs one log line, not a traceback per message the server still had to send.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import cattrs
from lsprotocol import types
from lsprotocol.types import EXIT, INITIALIZE
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    LanguageServerProtocol,
    default_converter,
)
from pygls.protocol.json_rpc import RPCRequest
from pygls.protocol.language_server import lsp_method

from lsp.text_edits import apply_content_change

logger = logging.getLogger(__name__)


def plain_json_converter() -> cattrs.Converter:
    """pygls' converter, except that params of custom methods (``infill/rewrite``) stay plain JSON.

    pygls turns them into namedtuples, which renames keys that are not identifiers and is not what a
    JSON-RPC method receives anywhere else.
    """
    converter = default_converter()
    for message_type in (JsonRPCRequestMessage, JsonRPCResponseMessage, JsonRPCNotification):
        converter.register_structure_hook(message_type, lambda obj, cls: cls(**obj))
    return converter


@dataclass(frozen=True)
class RejectedRequest:
    """A request that could not be structured; answered with ``error`` instead of being dispatched."""

    id: int | str
    error: JsonRpcException


def _request_id(data: object) -> int | str | None:
    if isinstance(data, dict) and isinstance(data.get("id"), int | str) and not isinstance(data["id"], bool):
        return data["id"]
    return None


class InfillProtocol(LanguageServerProtocol):
    client_gone = False  # writing to the client failed: it went away, nothing more is sent

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            msg_id = _request_id(data)
            if msg_id is None or "method" not in data:
                raise
            error.message = f"{error.message}: bad params for {data['method']!r}"
            return RejectedRequest(msg_id, error)

    def handle_message(self, message: Any) -> None:
        if isinstance(message, RejectedRequest):
            logger.warning("rejected request %s: %s", message.id, message.error.message)
            self._send_response(message.id, error=message.error.to_response_error())
            return
        version = getattr(message, "jsonrpc", None)
        if version != self.VERSION:
            # Valid JSON but not JSON-RPC 2.0 (a list, a number, a dict without "jsonrpc", version "1.0").
            logger.warning("invalid JSON-RPC message: %.200r", message)
            error = JsonRpcInvalidRequest("Invalid Request: not a JSON-RPC 2.0 message").to_response_error()
            msg_id = _request_id(message) if isinstance(message, dict) else getattr(message, "id", None)
            is_notification = msg_id is None and (
                hasattr(message, "method") or (isinstance(message, dict) and "method" in message)
            )
            if not is_notification:  # notifications get no answer, not even an error
                self.send_error(msg_id, error.code, error.message)
            return
        method = getattr(message, "method", None)
        if self._shutdown and method != EXIT:
            # LSP: after shutdown every request but exit is an InvalidRequest; notifications are dropped.
            if isinstance(message, RPCRequest):
                self.send_error(
                    message.id, JsonRpcInvalidRequest.CODE, "Invalid Request: the server is shut down"
                )
            return
        if self._workspace is None and method not in (INITIALIZE, EXIT):
            # Before `initialize` there is no workspace: requests get ServerNotInitialized, notifications are
            # dropped (the LSP rule), instead of an internal error from deep inside a handler.
            if isinstance(message, RPCRequest):
                self.send_error(message.id, JsonRpcServerNotInitialized.CODE, "Server not initialized")
            return
        super().handle_message(message)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """Apply edits with LSP line rules. pygls splits lines with str.splitlines, which also breaks at form
        feeds and U+2028 where the client does not (an edit after one lands on the wrong line), and rebuilds
        the text line by line in Python on every keystroke."""
        uri = params.text_document.uri
        document = self.workspace.text_documents.get(unquote(uri))
        if document is None:
            logger.warning("didChange for %s, which is not open", uri)
        else:
            text = document.source
            for change in params.content_changes:
                text = apply_content_change(text, change, document.position_codec)
            item = types.TextDocumentItem(
                uri=uri,
                language_id=document.language_id or "",
                version=params.text_document.version,
                text=text,
            )
            self.workspace.put_text_document(item)
        if (user_handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield user_handler, (params,), None

    def _send_data(self, data: Any) -> None:
        if self.client_gone:
            return
        try:
            super()._send_data(data)
        except (BrokenPipeError, ConnectionResetError):
            # pygls logged it (dropped by ExpectedErrorsAreNotCrashes) and re-raised it into whatever handler
            # was answering. The client closed the connection: say so once, and send nothing more.
            self.client_gone = True
            logger.info("the client closed the connection; nothing more will be sent")

    def send_parse_error(self, detail: str) -> None:
        self.send_error(None, JsonRpcParseError.CODE, f"Parse error: {detail}")

    def send_error(self, msg_id: int | str | None, code: int, message: str) -> None:
        """An error response; a None ``msg_id`` sends ``"id": null`` (the id of an unreadable message)."""
        self._send_data({"jsonrpc": self.VERSION, "id": msg_id, "error": {"code": code, "message": message}})


class ExpectedErrorsAreNotCrashes(logging.Filter):
    """pygls logs bad client input and the JSON-RPC errors we answer on purpose (ContentModified,
    InvalidParams...) with full tracebacks at ERROR. This server already logs one line for each and answers
    the client, so unreadable messages are dropped here and expected errors become one INFO line. Internal
    errors keep their traceback. Installed on the pygls loggers that log them (``PYGLS_LOGGERS``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Unable to deserialize message"):
            return False  # InfillProtocol answers with InvalidParams and logs "rejected request"
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BrokenPipeError | ConnectionResetError):
            return False  # the client went away; InfillProtocol logs that once
        if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
            return False  # the server answers with ParseError and logs "unparsable message"
        if isinstance(error, JsonRpcException) and not isinstance(error, JsonRpcInternalError):
            message = f"{record.getMessage()}: {traceback.format_exception_only(error)[-1].strip()}"
            record.msg, record.args = message, ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


PYGLS_LOGGERS = ("pygls.server", "pygls.protocol.json_rpc")
