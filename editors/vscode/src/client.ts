// Builds the vscode-languageclient client that runs `infill serve` over stdio. Inline completions, code
// actions (with codeAction/resolve) and work-done progress come from the library's built-in features; this
// module only adds the enable/disabled-languages gate, the `infill/status` handler, settings pushes and
// sends the server's "Fill holes" code action through the Fill holes command (which confirms unchecked fills).

import type { CodeAction, InlineCompletionItem, InlineCompletionList, Position, TextDocument } from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from "vscode-languageclient/node";

import { OffsetItem, splitItems } from "./nextEdit";
import { FILL_HOLES_COMMAND, isFillHolesAction } from "./rewrite";
import { ClientFactory, ClientHooks, ServerClient } from "./session";

export const STATUS_NOTIFICATION = "infill/status";
export const NEXT_EDIT_READY = "infill/nextEditReady";

/**
 * Keeps the items VS Code can show as ghost text and hands the next-edit suggestion (an item that replaces
 * text or inserts away from the cursor, which VS Code 1.99 would drop) to the preview.
 */
function routeInlineItems(
  document: TextDocument,
  position: Position,
  result: InlineCompletionItem[] | InlineCompletionList | null | undefined,
  hooks: ClientHooks,
): InlineCompletionItem[] | InlineCompletionList | null | undefined {
  if (result === null || result === undefined) {
    return result;
  }
  const items = Array.isArray(result) ? result : result.items;
  const offsets = items.map((item): OffsetItem | undefined =>
    item.range !== undefined && typeof item.insertText === "string"
      ? { start: document.offsetAt(item.range.start), end: document.offsetAt(item.range.end), insertText: item.insertText }
      : undefined,
  );
  const { ghost, suggestion } = splitItems(document.getText(), document.offsetAt(position), offsets);
  hooks.onNextEdit(document.uri.toString(), document.version, suggestion);
  const kept = ghost.map((i) => items[i]);
  return Array.isArray(result) ? kept : { ...result, items: kept };
}

export const createLanguageClient: ClientFactory = (launch, initial, hooks): ServerClient => {
  // No `transport`: with TransportKind.stdio vscode-languageclient appends `--stdio` to the command line, which
  // `infill serve` did not accept. Without it the library still speaks over the process's stdin/stdout.
  const serverOptions: ServerOptions = { command: launch.command, args: launch.args };
  const clientOptions: LanguageClientOptions = {
    // Every file and unsaved buffer; the server decides what it can fill (unknown languages use line rules).
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: initial,
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) =>
        hooks.completionsWanted(document.languageId)
          ? routeInlineItems(document, position, await next(document, position, context, token), hooks)
          : null,
      // The server's "Fill holes" action runs the Fill holes command, which asks before applying a fill that
      // did not pass the syntax check (the action's own edit would apply it silently).
      provideCodeActions: async (document, range, context, token, next) => {
        const actions = await next(document, range, context, token);
        for (const action of actions ?? []) {
          // (A plain Command has a string `command`; only a CodeAction can carry a command to run.)
          if (isFillHolesAction(action) && typeof action.command !== "string") {
            (action as CodeAction).command = { title: action.title, command: FILL_HOLES_COMMAND };
          }
        }
        return actions;
      },
      resolveCodeAction: (item, token, next) => (isFillHolesAction(item) ? item : next(item, token)),
    },
  };
  const client = new LanguageClient("infill", "Infill", serverOptions, clientOptions);
  const subscriptions = [
    client.onNotification(STATUS_NOTIFICATION, (params: unknown) => hooks.onStatus(params)),
    client.onNotification(NEXT_EDIT_READY, (params: unknown) => hooks.onNextEditReady(params)),
    client.onDidChangeState((event) => {
      if (event.newState === State.Stopped) {
        hooks.onStopped();
      }
    }),
  ];
  return {
    start: () => client.start(),
    stop: async () => {
      subscriptions.forEach((s) => s.dispose());
      await client.dispose();
    },
    sendRequest: (method, params) => client.sendRequest(method, params),
    pushSettings: (settings) =>
      client.sendNotification(DidChangeConfigurationNotification.type, { settings: { infill: settings } }),
  };
};
