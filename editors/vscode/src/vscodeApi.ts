// The one module that talks to the VS Code API for the extension's own logic: it adapts `vscode` to the
// small interfaces the pure modules (settings, status, rewrite, session) are written against.

import * as vscode from "vscode";

import { ActiveDocument, Range, RewriteHost, RewriteParams, TextEdit } from "./rewrite";
import { InfillSettings, readSettings } from "./settings";
import { SessionHost } from "./session";
import { StatusItem } from "./status";

export const SECTION = "infill";

export function readWorkspaceSettings(): InfillSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  return readSettings((key) => config.get(key));
}

export function createStatusItem(): StatusItem & vscode.Disposable {
  // Priority 100 keeps it close to the language status on the right.
  return vscode.window.createStatusBarItem("infill.status", vscode.StatusBarAlignment.Right, 100);
}

export function onSettingsChanged(listener: () => void): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration(SECTION)) {
      listener();
    }
  });
}

export function registerCommand(id: string, run: () => unknown): vscode.Disposable {
  return vscode.commands.registerCommand(id, run);
}

export function sessionHost(): SessionHost {
  return {
    readSettings: readWorkspaceSettings,
    writeEnable: async (enable) => {
      const config = vscode.workspace.getConfiguration(SECTION);
      // Write where the effective value comes from, or a workspace value would keep overriding the toggle.
      const where = config.inspect<boolean>("enable");
      const target =
        where?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
      await config.update("enable", enable, target);
    },
    showError: (message) => void vscode.window.showErrorMessage(message),
  };
}

function toVsRange(range: Range): vscode.Range {
  return new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
}

function findDocument(uri: string): vscode.TextDocument | undefined {
  return vscode.workspace.textDocuments.find((doc) => doc.uri.toString() === uri);
}

export function rewriteHost(send: (method: string, params: RewriteParams) => Promise<unknown>): RewriteHost {
  return {
    activeDocument: (): ActiveDocument | undefined => {
      const editor = vscode.window.activeTextEditor;
      if (editor === undefined) {
        return undefined;
      }
      const { start, end } = editor.selection;
      return {
        uri: editor.document.uri.toString(),
        version: editor.document.version,
        selection: {
          start: { line: start.line, character: start.character },
          end: { line: end.line, character: end.character },
        },
      };
    },
    documentVersion: (uri) => findDocument(uri)?.version,
    sendRequest: (method, params) =>
      Promise.resolve(
        vscode.window.withProgress(
          { location: vscode.ProgressLocation.Window, title: "Infill: rewriting" },
          () => send(method, params),
        ),
      ),
    applyEdits: async (uri, edits: TextEdit[]) => {
      const edit = new vscode.WorkspaceEdit();
      const target = vscode.Uri.parse(uri);
      for (const e of edits) {
        edit.replace(target, toVsRange(e.range), e.newText);
      }
      return vscode.workspace.applyEdit(edit);
    },
    showInfo: (message) => void vscode.window.showInformationMessage(message),
    showError: (message) => void vscode.window.showErrorMessage(message),
    confirm: (message, choices) => Promise.resolve(vscode.window.showWarningMessage(message, { modal: true }, ...choices)),
  };
}
