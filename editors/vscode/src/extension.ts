// Entry point: wires the modules together and registers everything in context.subscriptions so VS Code
// disposes it on deactivation. No logic lives here.

import * as vscode from "vscode";

import { createLanguageClient } from "./client";
import { NextEditController, Replacement } from "./nextEdit";
import { FILL_HOLES_COMMAND, runRewrite } from "./rewrite";
import { InfillSession } from "./session";
import { StatusController } from "./status";
import {
  activeDocumentVersion,
  createStatusItem,
  lowConfidenceMarker,
  nextEditHost,
  onEditorChanges,
  onSettingsChanged,
  registerCommand,
  rewriteHost,
  sessionHost,
  triggerInlineSuggest,
} from "./vscodeApi";

let session: InfillSession | undefined;

/** Whether `infill/nextEditReady` params name this document version. */
function isReadyFor(params: unknown, doc: { uri: string; version: number } | undefined): boolean {
  const p = params as { uri?: unknown; version?: unknown } | null;
  return doc !== undefined && p?.uri === doc.uri && p?.version === doc.version;
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const item = createStatusItem();
  const status = new StatusController(item, "infill.toggle");
  const preview = nextEditHost();
  const nextEdits = new NextEditController(preview);
  const host = {
    ...sessionHost(),
    nextEdits: {
      // The server has a suggestion for this version: ask for inline items again (the middleware previews it).
      onNextEditReady: (params: unknown) => (isReadyFor(params, activeDocumentVersion()) ? triggerInlineSuggest() : undefined),
      onNextEdit: (uri: string, version: number, replacement: Replacement | undefined) =>
        replacement === undefined ? nextEdits.onDocumentChanged(uri, version) : nextEdits.offer(uri, version, replacement),
    },
  };
  const current = new InfillSession(host, status, createLanguageClient);
  session = current;
  const marker = lowConfidenceMarker(() => current.currentSettings.showLowConfidence);
  const rewrites = rewriteHost((method, params) => current.sendRequest(method, params), marker.mark);

  context.subscriptions.push(
    item,
    preview,
    marker,
    onSettingsChanged(() => void current.onSettingsChanged()),
    onEditorChanges(
      (uri, version) => nextEdits.onDocumentChanged(uri, version),
      () => nextEdits.dismiss(),
    ),
    registerCommand("infill.rewriteSelection", () => runRewrite(rewrites, "range")),
    registerCommand("infill.rewriteFunction", () => runRewrite(rewrites, "function")),
    registerCommand("infill.editSelection", () => runRewrite(rewrites, "range", "edit")),
    registerCommand("infill.editFunction", () => runRewrite(rewrites, "function", "edit")),
    registerCommand(FILL_HOLES_COMMAND, () => runRewrite(rewrites, "holes")),
    registerCommand("infill.acceptNextEdit", () => nextEdits.accept("all")),
    registerCommand("infill.acceptNextEditWord", () => nextEdits.accept("word")),
    registerCommand("infill.acceptNextEditLine", () => nextEdits.accept("line")),
    registerCommand("infill.dismissNextEdit", () => nextEdits.dismiss()),
    registerCommand("infill.toggle", () => current.toggle()),
    registerCommand("infill.restartServer", () => current.restart()),
    { dispose: () => void current.dispose() },
  );
  await current.start();
}

export async function deactivate(): Promise<void> {
  await session?.dispose();
  session = undefined;
}
