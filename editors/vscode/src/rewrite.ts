// The rewrite commands ("Rewrite selection", "Rewrite function", "Fill holes"): send `infill/rewrite` for the
// active document and apply the returned edits, unless the document changed meanwhile (the user's newer text
// always wins). An edit the server marks `validated: false` (no candidate passed its syntax check) is never
// applied without the user's explicit confirmation. In edit mode ("Edit function/selection in place") the
// server changes only the tokens the model doubts and reports them (`lowConfidence`); the client marks them.
// Pure over `RewriteHost` so it can be unit tested.

import { marksAfterEdits, parseLowConfidence } from "./confidence";

export interface Position {
  line: number; // 0-based
  character: number; // UTF-16 code units, as in both LSP and VS Code
}

export interface Range {
  start: Position;
  end: Position;
}

export type RewriteTarget = "range" | "function" | "holes";
/** "regenerate" writes the region anew; "edit" keeps it and changes only the tokens the model doubts. */
export type RewriteMode = "regenerate" | "edit";

export interface TextEdit {
  range: Range;
  newText: string;
}

/** One edit of an `infill/rewrite` result; `confidence` holds per-token confidences for display. */
export interface RewriteEdit extends TextEdit {
  confidence: { text: string; confidence: number }[];
  /** False when no candidate passed the server's syntax check and the best raw one was sent. */
  validated: boolean;
}

export interface RewriteParams {
  textDocument: { uri: string };
  version: number;
  range?: Range;
  target: RewriteTarget;
  mode?: RewriteMode;
}

export interface ActiveDocument {
  uri: string;
  version: number;
  selection: Range;
}

export interface RewriteHost {
  activeDocument(): ActiveDocument | undefined;
  /** Current version of an open document, undefined when it was closed. */
  documentVersion(uri: string): number | undefined;
  sendRequest(method: string, params: RewriteParams): Promise<unknown>;
  /** Applies all edits as one undoable WorkspaceEdit; false when the editor refused it. */
  applyEdits(uri: string, edits: TextEdit[]): Promise<boolean>;
  showInfo(message: string): void;
  showError(message: string): void;
  /** A modal warning with these choices; resolves to the chosen one, undefined when dismissed. */
  confirm(message: string, choices: string[]): Promise<string | undefined>;
  /** Marks the low-confidence ranges in the document of `uri` (replacing its earlier marks; none clears). */
  markLowConfidence(uri: string, ranges: Range[]): void;
}

export type RewriteOutcome =
  | "applied"
  | "nothing"
  | "stale"
  | "failed"
  | "declined"
  | "no-editor"
  | "no-selection";

export const REWRITE_METHOD = "infill/rewrite";
export const FILL_HOLES_COMMAND = "infill.fillHoles";

/**
 * Whether a code action from the server is its "Fill holes" action (its `data` holds the `infill/rewrite`
 * params). Applying that action's edit would skip the confirmation of unchecked fills, so the client runs the
 * Fill holes command for it instead.
 */
export function isFillHolesAction(action: unknown): boolean {
  const data = (action as { data?: unknown } | null)?.data;
  return typeof data === "object" && data !== null && (data as { target?: unknown }).target === "holes";
}
// LSP ErrorCodes.ContentModified: the server saw a newer version than the one we sent.
const CONTENT_MODIFIED = -32801;
// LSP ErrorCodes.RequestCancelled.
const REQUEST_CANCELLED = -32800;

function isPosition(value: unknown): value is Position {
  const p = value as Position | null;
  return (
    typeof p === "object" && p !== null && Number.isInteger(p.line) && Number.isInteger(p.character)
  );
}

function isRange(value: unknown): value is Range {
  const r = value as Range | null;
  return typeof r === "object" && r !== null && isPosition(r.start) && isPosition(r.end);
}

/** Validates an `infill/rewrite` result; throws with a one-line reason when it is malformed. */
export function parseRewriteResult(result: unknown): RewriteEdit[] {
  const edits = (result as { edits?: unknown } | null)?.edits;
  if (!Array.isArray(edits)) {
    throw new Error("malformed infill/rewrite result: no edits array");
  }
  return edits.map((edit: unknown) => {
    const e = edit as Partial<RewriteEdit> | null;
    if (e === null || typeof e !== "object" || !isRange(e.range) || typeof e.newText !== "string") {
      throw new Error("malformed infill/rewrite result: edit without range/newText");
    }
    return {
      range: e.range,
      newText: e.newText,
      confidence: Array.isArray(e.confidence) ? e.confidence : [],
      // Only an explicit `false` marks an unchecked fill (range and function rewrites are always checked).
      validated: e.validated !== false,
    };
  });
}

function isEmptyRange(range: Range): boolean {
  return range.start.line === range.end.line && range.start.character === range.end.character;
}

export function buildRewriteParams(
  doc: ActiveDocument,
  target: RewriteTarget,
  mode: RewriteMode = "regenerate",
): RewriteParams {
  const params: RewriteParams = { textDocument: { uri: doc.uri }, version: doc.version, target };
  if (mode === "edit") {
    params.mode = mode;
  }
  // "function" sends the (possibly empty) selection so the server knows where the cursor is.
  if (target !== "holes") {
    params.range = doc.selection;
  }
  return params;
}

function errorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

function errorMessage(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === "string" ? message.split("\n")[0] : String(error);
}

const NOTHING_MESSAGES: Record<RewriteTarget, string> = {
  range: "Infill: no rewrite found for the selection.",
  function: "Infill: no rewrite found for this function.",
  holes: "Infill: no holes (<|fill|> or infill:begin/infill:end) to fill.",
};

// Why the server gave no edit (its `reason` field), in the same words as the Neovim plugin and the server.
const REASON_MESSAGES: Record<string, string> = {
  noFunction: "Infill: the cursor is not inside a function.",
  noValidEdit: "Infill: nothing the model proposed passed the syntax check.",
  confident: "Infill: the model is confident in this code; nothing to change.",
};

/** The message for an empty result: the server's reason when it gave a known one, else the target's. */
export function nothingMessage(result: unknown, target: RewriteTarget): string {
  const reason = (result as { reason?: unknown } | null)?.reason;
  return (typeof reason === "string" && REASON_MESSAGES[reason]) || NOTHING_MESSAGES[target];
}

const STALE_MESSAGE = "Infill: the document changed while rewriting; the result was discarded.";

export const APPLY_ANYWAY = "Apply anyway";
export const APPLY_CHECKED = "Apply checked fills only";

function lineList(edits: RewriteEdit[]): string {
  const lines = edits.map((e) => e.range.start.line + 1);
  return lines.length === 1 ? `line ${lines[0]}` : `lines ${lines.join(", ")}`;
}

/**
 * The edits to apply when some failed the syntax check: the user picks all of them or only the checked ones
 * in a modal warning; dismissing it applies nothing.
 */
async function confirmUnchecked(host: RewriteHost, edits: RewriteEdit[]): Promise<RewriteEdit[]> {
  const unchecked = edits.filter((e) => !e.validated);
  const checked = edits.filter((e) => e.validated);
  const what = unchecked.length === 1 ? "the fill" : `${unchecked.length} fills`;
  const message =
    `Infill: ${what} at ${lineList(unchecked)} did not pass the syntax check (no candidate parsed), ` +
    "so the code may no longer parse. Apply anyway?";
  const choices = checked.length > 0 ? [APPLY_CHECKED, APPLY_ANYWAY] : [APPLY_ANYWAY];
  const choice = await host.confirm(message, choices);
  if (choice === APPLY_ANYWAY) {
    return edits;
  }
  return choice === APPLY_CHECKED ? checked : [];
}

export async function runRewrite(
  host: RewriteHost,
  target: RewriteTarget,
  mode: RewriteMode = "regenerate",
): Promise<RewriteOutcome> {
  const doc = host.activeDocument();
  if (doc === undefined) {
    host.showInfo("Infill: open a file to rewrite.");
    return "no-editor";
  }
  if (target === "range" && isEmptyRange(doc.selection)) {
    host.showInfo("Infill: select the code to rewrite first.");
    return "no-selection";
  }
  const params = buildRewriteParams(doc, target, mode);
  let edits: RewriteEdit[];
  let result: unknown;
  try {
    result = await host.sendRequest(REWRITE_METHOD, params);
    edits = parseRewriteResult(result);
  } catch (error) {
    const code = errorCode(error);
    if (code === CONTENT_MODIFIED) {
      host.showInfo(STALE_MESSAGE);
      return "stale";
    }
    if (code === REQUEST_CANCELLED) {
      return "stale";
    }
    host.showError(`Infill: rewrite failed: ${errorMessage(error)}`);
    return "failed";
  }
  // Marks of an earlier edit-mode rewrite no longer hold once the code changes.
  const marks = parseLowConfidence(result);
  if (edits.length === 0) {
    if (host.documentVersion(doc.uri) === doc.version) {
      host.markLowConfidence(doc.uri, marks);
    }
    host.showInfo(nothingMessage(result, target));
    return "nothing";
  }
  if (edits.some((e) => !e.validated)) {
    edits = await confirmUnchecked(host, edits);
    if (edits.length === 0) {
      host.showInfo("Infill: nothing was applied.");
      return "declined";
    }
  }
  // Edits are offsets into the version we sent; applying them to newer text could corrupt it.
  if (host.documentVersion(doc.uri) !== doc.version) {
    host.showInfo(STALE_MESSAGE);
    return "stale";
  }
  const applied = await host.applyEdits(
    doc.uri,
    edits.map(({ range, newText }) => ({ range, newText })),
  );
  if (!applied) {
    host.showError("Infill: the editor refused the edit (the document may have changed).");
    return "failed";
  }
  host.markLowConfidence(doc.uri, marksAfterEdits(marks, edits));
  return "applied";
}
