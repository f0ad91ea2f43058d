"""The infill language server: inline completions, ``infill/rewrite`` and rewrite code actions over LSP.

State lives in one ``InfillLanguageServer`` (settings, the model worker, pending requests); handlers are short
and async, and await the model worker's futures so the protocol thread never blocks on the model. Documents
always come from pygls' workspace; positions go through the document's position codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import (
    FeatureRequestError,
    JsonRpcContentModified,
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcRequestCancelled,
)
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from infill import __version__
from infill.errors import Cancelled, InfillError
from infill.worker import ModelCall, ModelWorker, SamplerOverrides, StopCheck, WorkerState
from lsp.actions import ACTION_KIND, offered_actions
from lsp.completion import completion_items, plan_completion, selected_completion
from lsp.documents import DocumentSnapshot, PendingRequest, snapshot_of
from lsp.next_edit import (
    NEXT_EDIT_EXTRA_DEBOUNCE_S,
    NEXT_EDIT_READY,
    NextEdits,
    change_end,
    next_edit_call,
    next_edit_item,
)
from lsp.protocol import InfillProtocol, plain_json_converter
from lsp.rewrite import (
    NO_EDIT_MESSAGES,
    REWRITE_METHOD,
    RewriteOutcome,
    RewriteParams,
    outcome_to_wire,
    parse_rewrite_params,
    rewrite_call,
    workspace_edit,
)
from lsp.settings import ModelSpec, ServerSettings, model_spec, parse_settings
from lsp.text_edits import LineIndex, PositionOutOfRange

if TYPE_CHECKING:
    from infill.infiller import Edit

logger = logging.getLogger(__name__)

STATUS_METHOD = "infill/status"
T = TypeVar("T")
# Hands work to the worker: (is_stale, request label) -> future of its result.
Submit = Callable[[StopCheck, str], "Future[T]"]


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but could not be done (e.g. the model failed to load)."""

    CODE = types.LSPErrorCodes.RequestFailed.value
    MESSAGE = "Request failed"


class InfillLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            name="infill",
            version=__version__,
            protocol_cls=InfillProtocol,
            converter_factory=plain_json_converter,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.settings = ServerSettings()
        # `infill serve --model/--device`: used when the client leaves model/device unset.
        self.cli_model: str | None = None
        self.cli_device: str | None = None
        self.cli_quantize: str | None = None  # `infill serve --quantize`: server-wide, not a client setting
        self.worker = ModelWorker(self._on_worker_status)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[tuple[str, str], PendingRequest] = {}
        self._indexes: dict[str, LineIndex] = {}
        self._progress_token: str | None = None
        self._shown_load_error = False
        self.shutdown_requested = False
        self.next_edits = NextEdits()
        # Inline completions handed to the worker so far: a next-edit suggestion stops when this moves.
        self.inline_submitted = 0

    # -- documents -------------------------------------------------------------------------------------------
    def snapshot(self, uri: str) -> DocumentSnapshot | None:
        """The open document at ``uri`` (None when it is not open: we never read files behind the client)."""
        document: TextDocument | None = self.workspace.text_documents.get(unquote(uri))
        if document is None or document.version is None:
            return None
        snapshot = snapshot_of(uri, document, self._indexes.get(uri))
        self._indexes[uri] = snapshot.index
        return snapshot

    def current_version(self, uri: str) -> int | None:
        """Safe from the worker thread: a dict lookup and an attribute read."""
        document = self.workspace.text_documents.get(unquote(uri))
        return None if document is None else document.version

    def forget(self, uri: str) -> None:
        self._indexes.pop(uri, None)
        self.next_edits.forget(uri)
        for (_, pending_uri), pending in self._pending.items():
            if pending_uri == uri:
                pending.superseded = True

    def is_disabled(self, snapshot: DocumentSnapshot) -> bool:
        disabled = self.settings.disabled_languages
        return snapshot.language_id in disabled or (
            snapshot.language is not None and snapshot.language in disabled
        )

    # -- settings and model ----------------------------------------------------------------------------------
    def apply_settings(self, raw: object) -> bool:
        """Take new client settings; True when the model (or its device) changed and needs a reload."""
        settings, problems = parse_settings(raw)
        if problems:
            self.show_message(types.MessageType.Warning, "infill settings: " + "; ".join(problems))
        before = self._model_spec(self.settings)
        if settings.threads != self.settings.threads:
            self.worker.set_threads(settings.threads)
        self.settings = settings
        return self._model_spec(settings) != before

    def _model_spec(self, settings: ServerSettings) -> ModelSpec:
        return model_spec(settings, self.cli_model, self.cli_device, self.cli_quantize)

    async def load_model(self) -> None:
        """Start (re)loading in the worker; reports `$/progress` when the client lets us create a token."""
        self._progress_token = None
        window = self.client_capabilities.window
        if window is not None and window.work_done_progress:
            token = f"infill-load-{uuid.uuid4().hex[:8]}"
            try:
                await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=5)
                self._progress_token = token
            except Exception as error:  # the client may refuse; progress is only a nicety
                logger.info("no progress token: %s", error)
        self._shown_load_error = False
        self.worker.load(self._model_spec(self.settings))

    def ensure_model(self) -> None:
        """A client that never sent `initialized` still gets a model on its first request."""
        if self.worker.spec is None:
            self.worker.load(self._model_spec(self.settings))

    def overrides(self) -> SamplerOverrides:
        return SamplerOverrides(steps=self.settings.steps, threshold=self.settings.threshold)

    def _on_worker_status(self, state: WorkerState, message: str | None) -> None:
        # Called on the worker thread: notify from the protocol thread, unless the server already stopped.
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed just now
                self.loop.call_soon_threadsafe(self._report_status, state, message)

    def _report_status(self, state: WorkerState, message: str | None) -> None:
        # Progress first: a client that sees "ready" may rely on the progress being over.
        token = self._progress_token
        if state == "loading" and token is not None:
            begin = types.WorkDoneProgressBegin(title="infill", message=message, cancellable=False)
            self.work_done_progress.begin(token, begin)
        elif state in ("ready", "error") and token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
            self._progress_token = None
        self.protocol.notify(STATUS_METHOD, {"state": state, **({"message": message} if message else {})})
        if state == "error" and not self._shown_load_error:
            self._shown_load_error = True
            self.show_message(types.MessageType.Error, f"infill: the model failed to load: {message}")

    def show_message(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    # -- running model work ----------------------------------------------------------------------------------
    def begin_request(self, kind: str, uri: str) -> PendingRequest:
        previous = self._pending.get((kind, uri))
        if previous is not None:
            previous.superseded = True
        pending = self._pending[(kind, uri)] = PendingRequest()
        return pending

    def end_request(self, kind: str, uri: str, pending: PendingRequest) -> None:
        if self._pending.get((kind, uri)) is pending:
            del self._pending[(kind, uri)]

    async def run_model(
        self, kind: str, snapshot: DocumentSnapshot, submit: Submit[T], debounce_s: float = 0.0
    ) -> T:
        """Run model work for a document version; Cancelled when it went stale on the way.

        ``submit(is_stale, label)`` hands the work to the worker. A newer request of the same kind for the
        same document supersedes this one; a $/cancelRequest cancels the awaiting task and with it the future.
        """
        self.ensure_model()
        pending = self.begin_request(kind, snapshot.uri)

        def is_stale() -> bool:
            return pending.superseded or self.current_version(snapshot.uri) != snapshot.version

        try:
            if debounce_s > 0:
                # Typing bursts: only the last request of a burst reaches the model.
                await asyncio.sleep(debounce_s)
                if is_stale():
                    raise Cancelled("superseded during the debounce window")
            result = await asyncio.wrap_future(submit(is_stale, str(self.protocol.msg_id)))
            if is_stale():
                raise Cancelled("the document changed before the result arrived")
            return result
        finally:
            self.end_request(kind, snapshot.uri, pending)

    async def rewrite_document(
        self, snapshot: DocumentSnapshot, call: ModelCall[T], version: int | None
    ) -> T:
        """run_model for rewrites, with the errors a client can act on (ContentModified, RequestFailed...)."""
        if version is not None and version != snapshot.version:
            raise JsonRpcContentModified(
                f"Content modified: document is at version {snapshot.version}, not {version}"
            )
        if self.worker.state == "error":
            raise RequestFailed(f"the model failed to load: {self.worker.error}")
        try:
            return await self.run_model(
                "rewrite",
                snapshot,
                lambda stale, label: self.worker.call(call, self.overrides(), stale, label),
            )
        except Cancelled as error:
            if self.current_version(snapshot.uri) != snapshot.version:
                raise JsonRpcContentModified(f"Content modified: {error}") from error
            raise JsonRpcRequestCancelled(f"Request cancelled: {error}") from error
        except InfillError as error:
            raise RequestFailed(str(error).splitlines()[0] if str(error) else type(error).__name__) from error

    async def rewrite(self, params: RewriteParams) -> tuple[DocumentSnapshot, RewriteOutcome]:
        """The outcome of an ``infill/rewrite`` request or a code action being resolved."""
        snapshot = self.require_snapshot(params.uri)
        start, end = self.offsets(snapshot, params.range) if params.range is not None else (0, 0)
        call = rewrite_call(params.target, snapshot.text, start, end, snapshot.language, params.mode)
        return snapshot, await self.rewrite_document(snapshot, call, params.version)

    async def pull_settings(self) -> object:
        """``workspace/configuration`` for clients that send didChangeConfiguration without the settings."""
        workspace = self.client_capabilities.workspace
        if workspace is None or not workspace.configuration:
            return None
        request = types.ConfigurationParams(items=[types.ConfigurationItem(section="infill")])
        try:
            values = await asyncio.wait_for(self.workspace_configuration_async(request), timeout=5)
        except Exception as error:
            logger.info("workspace/configuration failed: %s", error)
            return None
        return values[0] if values else None

    def require_snapshot(self, uri: str) -> DocumentSnapshot:
        snapshot = self.snapshot(uri)
        if snapshot is None:
            raise JsonRpcInvalidParams(f"Invalid params: document {uri} is not open")
        if "\x00" in snapshot.text:
            raise JsonRpcInvalidParams("Invalid params: the document looks binary (it contains NUL bytes)")
        return snapshot

    def offsets(self, snapshot: DocumentSnapshot, range_: types.Range) -> tuple[int, int]:
        try:
            start, end = snapshot.offset(range_.start), snapshot.offset(range_.end)
        except PositionOutOfRange as error:
            raise JsonRpcInvalidParams(f"Invalid params: {error}") from error
        return min(start, end), max(start, end)

    # -- errors outside requests -----------------------------------------------------------------------------
    def report_server_error(self, error: Exception, source: Any) -> None:
        assert isinstance(self.protocol, InfillProtocol)
        if isinstance(error, ConnectionError):  # the client went away (a TCP reset)
            if not self.protocol.client_gone:
                self.protocol.client_gone = True
                logger.info("the client closed the connection; nothing more will be sent")
        elif isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
            logger.warning("unparsable message: %s", error)
            self.protocol.send_parse_error(str(error))
        elif source is not FeatureRequestError:
            # A failed notification (e.g. didChange for a document never opened) has nobody to answer: log it
            # instead of popping an error dialog in the editor on every keystroke.
            logger.warning("error handling a notification: %s", error)


SERVER = InfillLanguageServer()


@SERVER.feature(types.INITIALIZE)
def initialize(ls: InfillLanguageServer, params: types.InitializeParams) -> None:
    ls.loop = asyncio.get_running_loop()
    ls.apply_settings(params.initialization_options)


@SERVER.feature(types.INITIALIZED)
async def initialized(ls: InfillLanguageServer, params: types.InitializedParams) -> None:
    await ls.load_model()  # in the worker: initialize has been answered already


@SERVER.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(
    ls: InfillLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    raw = params.settings
    if not (isinstance(raw, dict) and "infill" in raw):
        raw = await ls.pull_settings()
        if raw is None:
            return  # nothing to go on: keep the settings we have
    if ls.apply_settings(raw):
        await ls.load_model()


@SERVER.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: InfillLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.forget(params.text_document.uri)


@SERVER.feature(types.SHUTDOWN)
def shutdown(ls: InfillLanguageServer, params: None) -> None:
    ls.shutdown_requested = True
    ls.worker.close()


@SERVER.feature(types.EXIT)
def exit_now(ls: InfillLanguageServer, params: None) -> None:
    """Leave at once (exit code 1 without a prior shutdown, as LSP asks): a normal interpreter teardown with
    torch loaded takes seconds the editor would wait for, and there is nothing left to write."""
    logging.shutdown()
    os._exit(0 if ls.shutdown_requested else 1)


@SERVER.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: InfillLanguageServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    """Automatic trigger: one item after the debounce window; invoked: up to three, at once. Empty when the
    document is gone, disabled, binary, or changed before the answer was ready."""
    empty = types.InlineCompletionList(items=[])
    snapshot = ls.snapshot(params.text_document.uri)
    if snapshot is None or ls.is_disabled(snapshot) or ls.worker.state == "error":
        return empty
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    try:
        cursor = snapshot.offset(params.position)
        info = params.context.selected_completion_info
        selection = selected_completion(snapshot.index, cursor, info, snapshot.codec)
    except PositionOutOfRange as error:
        logger.info("inline completion %s: %s", ls.protocol.msg_id, error)
        return empty
    plan = plan_completion(
        snapshot.text,
        cursor,
        selection,
        language=snapshot.language,
        max_tokens=ls.settings.max_tokens,
        num_candidates=1 if automatic else 3,
        trigger="automatic" if automatic else "invoked",
    )
    if "\x00" in plan.job.text:
        return empty

    def submit(stale: StopCheck, label: str) -> Future[list[Edit]]:
        ls.inline_submitted += 1
        return ls.worker.complete(plan.job, ls.overrides(), stale, label)

    try:
        edits = await ls.run_model(
            "inline", snapshot, submit, debounce_s=ls.settings.debounce_ms / 1000 if automatic else 0.0
        )
    except InfillError as error:  # stale, superseded, no model, context too long: nothing to show
        logger.info("inline completion %s: %s", ls.protocol.msg_id, error)
        return empty
    except Exception:  # a bug below the protocol: the editor gets nothing rather than an error popup
        logger.exception("inline completion %s failed", ls.protocol.msg_id)
        return empty
    items = completion_items(plan, edits, snapshot.index, snapshot.codec)
    suggestion = ls.next_edits.get(snapshot.uri, snapshot.version)
    if suggestion is not None and (
        item := next_edit_item(suggestion, cursor, snapshot.index, snapshot.codec)
    ):
        items.append(item)
    return types.InlineCompletionList(items=items)


@SERVER.feature(types.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: InfillLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    """With the nextEdit setting on: a next-edit suggestion around the change (see lsp/next_edit.py)."""
    uri = params.text_document.uri
    ls.next_edits.forget(uri)
    snapshot = ls.snapshot(uri)
    if (
        not ls.settings.next_edit
        or snapshot is None
        or ls.is_disabled(snapshot)
        or ls.worker.state == "error"
    ):
        return
    offset = change_end(params, snapshot.index, snapshot.codec) if "\x00" not in snapshot.text else None
    if offset is None:
        return
    call = next_edit_call(snapshot.text, offset, snapshot.language)

    def submit(stale: StopCheck, label: str) -> Future[Edit | None]:
        submitted = ls.inline_submitted  # a completion handed to the worker after this stops the suggestion
        return ls.worker.call(
            call, ls.overrides(), lambda: stale() or ls.inline_submitted != submitted, label
        )

    try:
        edit = await ls.run_model(
            "nextEdit",
            snapshot,
            submit,
            debounce_s=ls.settings.debounce_ms / 1000 + NEXT_EDIT_EXTRA_DEBOUNCE_S,
        )
    except InfillError as error:  # superseded by the next keystroke, stopped for a completion, no model...
        logger.info("next edit for %s v%d: %s", uri, snapshot.version, error)
        return
    except Exception:
        logger.exception("next edit for %s v%d failed", uri, snapshot.version)
        return
    if edit is not None and ls.current_version(uri) == snapshot.version:
        ls.next_edits.put(uri, snapshot.version, edit)
        ls.protocol.notify(NEXT_EDIT_READY, {"uri": uri, "version": snapshot.version})


@SERVER.feature(REWRITE_METHOD)
async def rewrite(ls: InfillLanguageServer, params: Any) -> dict[str, Any]:
    parsed = parse_rewrite_params(params)
    snapshot, outcome = await ls.rewrite(parsed)
    return outcome_to_wire(outcome, parsed.mode, snapshot.index, snapshot.codec)


@SERVER.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True),
)
async def code_action(ls: InfillLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """Cheap listing (regions only, off the protocol thread); the edit comes in codeAction/resolve."""
    snapshot = ls.snapshot(params.text_document.uri)
    only = params.context.only
    if only and not any(kind == ACTION_KIND or ACTION_KIND.startswith(f"{kind}.") for kind in only):
        return []
    if snapshot is None or ls.is_disabled(snapshot) or "\x00" in snapshot.text:
        return []
    try:
        start, end = ls.offsets(snapshot, params.range)
        offered = await asyncio.to_thread(offered_actions, snapshot.text, start, end, snapshot.language)
    except (JsonRpcInvalidParams, InfillError) as error:
        logger.info("code actions %s: %s", ls.protocol.msg_id, error)
        return []
    return [
        types.CodeAction(
            title=action.title,
            kind=ACTION_KIND,
            disabled=types.CodeActionDisabled(reason=action.disabled_reason)
            if action.disabled_reason
            else None,
            data=RewriteParams(
                params.text_document.uri, action.target, snapshot.version, params.range, action.mode
            ).to_wire(),
        )
        for action in offered
    ]


@SERVER.feature(types.CODE_ACTION_RESOLVE)
async def resolve_code_action(ls: InfillLanguageServer, action: types.CodeAction) -> types.CodeAction:
    snapshot, outcome = await ls.rewrite(parse_rewrite_params(action.data))
    edits = outcome.edits
    if not edits:
        ls.show_message(types.MessageType.Info, f"infill: {action.title}: {NO_EDIT_MESSAGES[outcome.reason]}")
        return action
    workspace = ls.client_capabilities.workspace
    capabilities = workspace.workspace_edit if workspace else None
    result = workspace_edit(
        snapshot.uri,
        snapshot.version,
        edits,
        snapshot.index,
        snapshot.codec,
        versioned=bool(capabilities and capabilities.document_changes),
        annotations=bool(capabilities and capabilities.change_annotation_support),
    )
    if result.left_out:
        lines = ", ".join(str(snapshot.index.line_of(edit.start) + 1) for edit in result.left_out)
        ls.show_message(
            types.MessageType.Warning,
            f"infill: {action.title}: left out {len(result.left_out)} fill(s) that did not pass the syntax "
            f"check (line {lines}): this editor cannot ask before applying them",
        )
    action.edit = result.edit
    return action
