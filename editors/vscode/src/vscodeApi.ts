// The one module that talks to the VS Code API for the extension's own logic: it adapts `vscode` to the
// small interfaces the pure modules (settings, status, rewrite, session) are written against.

import * as vscode from "vscode";

import { NextEditHost } from "./nextEdit";
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

export function rewriteHost(
  send: (method: string, params: RewriteParams) => Promise<unknown>,
  markLowConfidence: (uri: string, ranges: Range[]) => void,
): RewriteHost {
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
    markLowConfidence,
  };
}

/** Low-confidence marks (edit-mode rewrites): a wavy underline with a hover, unless `enabled()` is false. */
export function lowConfidenceMarker(enabled: () => boolean): { mark(uri: string, ranges: Range[]): void } & vscode.Disposable {
  const decoration = vscode.window.createTextEditorDecorationType({
    // Amber, readable on light and dark themes.
    textDecoration: "underline wavy rgba(255, 170, 0, 0.9)",
    backgroundColor: "rgba(255, 170, 0, 0.18)",
    overviewRulerColor: new vscode.ThemeColor("editorWarning.foreground"),
    overviewRulerLane: vscode.OverviewRulerLane.Right,
  });
  const hover = new vscode.MarkdownString("Infill: the model doubts this code (low confidence).");
  return {
    mark: (uri, ranges) => {
      const options = enabled() ? ranges.map((range) => ({ range: toVsRange(range), hoverMessage: hover })) : [];
      for (const editor of vscode.window.visibleTextEditors) {
        if (editor.document.uri.toString() === uri) {
          editor.setDecorations(decoration, options);
        }
      }
    },
    dispose: () => decoration.dispose(),
  };
}

export const NEXT_EDIT_CONTEXT = "infill.nextEditVisible";

/** The next-edit preview: the replaced text struck through, the new text right after it. */
export function nextEditHost(): NextEditHost & vscode.Disposable {
  const struck = vscode.window.createTextEditorDecorationType({
    textDecoration: "line-through",
    backgroundColor: new vscode.ThemeColor("diffEditor.removedTextBackground"),
  });
  const inserted = vscode.window.createTextEditorDecorationType({
    after: {
      backgroundColor: new vscode.ThemeColor("diffEditor.insertedTextBackground"),
      color: new vscode.ThemeColor("editorGhostText.foreground"),
    },
  });
  const clearAll = () => {
    for (const editor of vscode.window.visibleTextEditors) {
      editor.setDecorations(struck, []);
      editor.setDecorations(inserted, []);
    }
  };
  return {
    show: (uri, replacement) => {
      clearAll();
      void vscode.commands.executeCommand("setContext", NEXT_EDIT_CONTEXT, replacement !== undefined);
      const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === uri);
      if (replacement === undefined || editor === undefined) {
        return;
      }
      const doc = editor.document;
      const start = doc.positionAt(replacement.start);
      const end = doc.positionAt(replacement.end);
      editor.setDecorations(struck, [new vscode.Range(start, end)]);
      // Decoration text is one line: line breaks of the new text are shown as "⏎".
      const contentText = replacement.newText.replace(/\r?\n/g, "⏎");
      editor.setDecorations(inserted, [{ range: new vscode.Range(end, end), renderOptions: { after: { contentText } } }]);
    },
    apply: async (uri, version, replacement) => {
      const doc = findDocument(uri);
      if (doc === undefined || doc.version !== version) {
        return false;
      }
      const edit = new vscode.WorkspaceEdit();
      edit.replace(doc.uri, new vscode.Range(doc.positionAt(replacement.start), doc.positionAt(replacement.end)), replacement.newText);
      return vscode.workspace.applyEdit(edit);
    },
    documentVersion: (uri) => findDocument(uri)?.version,
    dispose: () => {
      struck.dispose();
      inserted.dispose();
    },
  };
}

/** The active editor's document and its version, if any. */
export function activeDocumentVersion(): { uri: string; version: number } | undefined {
  const doc = vscode.window.activeTextEditor?.document;
  return doc === undefined ? undefined : { uri: doc.uri.toString(), version: doc.version };
}

export function triggerInlineSuggest(): void {
  void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
}

/** Every change of a document (its uri and new version) and every switch of the active editor. */
export function onEditorChanges(
  changed: (uri: string, version: number) => void,
  switched: () => void,
): vscode.Disposable {
  const subscriptions = [
    vscode.workspace.onDidChangeTextDocument((event) => changed(event.document.uri.toString(), event.document.version)),
    vscode.window.onDidChangeActiveTextEditor(() => switched()),
  ];
  return { dispose: () => subscriptions.forEach((s) => s.dispose()) };
}
