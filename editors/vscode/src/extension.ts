// Entry point: wires the modules together and registers everything in context.subscriptions so VS Code
// disposes it on deactivation. No logic lives here.

import * as vscode from "vscode";

import { createLanguageClient } from "./client";
import { FILL_HOLES_COMMAND, runRewrite } from "./rewrite";
import { InfillSession } from "./session";
import { StatusController } from "./status";
import { createStatusItem, onSettingsChanged, registerCommand, rewriteHost, sessionHost } from "./vscodeApi";

let session: InfillSession | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const item = createStatusItem();
  const status = new StatusController(item, "infill.toggle");
  const current = new InfillSession(sessionHost(), status, createLanguageClient);
  session = current;
  const rewrites = rewriteHost((method, params) => current.sendRequest(method, params));

  context.subscriptions.push(
    item,
    onSettingsChanged(() => void current.onSettingsChanged()),
    registerCommand("infill.rewriteSelection", () => runRewrite(rewrites, "range")),
    registerCommand("infill.rewriteFunction", () => runRewrite(rewrites, "function")),
    registerCommand(FILL_HOLES_COMMAND, () => runRewrite(rewrites, "holes")),
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
