// The rewrite commands ("Rewrite selection", "Rewrite function", "Fill holes"): send `infill/rewrite` for the
// active document and apply the returned edits, unless the document changed meanwhile (the user's newer text
// always wins). Pure over `RewriteHost` so it can be unit tested with a fake editor.

export interface Position {
  line: number; // 0-based
  character: number; // UTF-16 code units, as in both LSP and VS Code
}

export interface Range {
  start: Position;
  end: Position;
}

export type RewriteTarget = "range" | "function" | "holes";

export interface TextEdit {
  range: Range;
  newText: string;
}

/** One edit of an `infill/rewrite` result; `confidence` holds per-token confidences for display. */
export interface RewriteEdit extends TextEdit {
  confidence: { text: string; confidence: number }[];
}

export interface RewriteParams {
  textDocument: { uri: string };
  version: number;
  range?: Range;
  target: RewriteTarget;
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
}

export type RewriteOutcome = "applied" | "nothing" | "stale" | "failed" | "no-editor" | "no-selection";

export const REWRITE_METHOD = "infill/rewrite";
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
    return { range: e.range, newText: e.newText, confidence: Array.isArray(e.confidence) ? e.confidence : [] };
  });
}

function isEmptyRange(range: Range): boolean {
  return range.start.line === range.end.line && range.start.character === range.end.character;
}

export function buildRewriteParams(doc: ActiveDocument, target: RewriteTarget): RewriteParams {
  const params: RewriteParams = { textDocument: { uri: doc.uri }, version: doc.version, target };
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

const STALE_MESSAGE = "Infill: the document changed while rewriting; the result was discarded.";

export async function runRewrite(host: RewriteHost, target: RewriteTarget): Promise<RewriteOutcome> {
  const doc = host.activeDocument();
  if (doc === undefined) {
    host.showInfo("Infill: open a file to rewrite.");
    return "no-editor";
  }
  if (target === "range" && isEmptyRange(doc.selection)) {
    host.showInfo("Infill: select the code to rewrite first.");
    return "no-selection";
  }
  const params = buildRewriteParams(doc, target);
  let edits: RewriteEdit[];
  try {
    edits = parseRewriteResult(await host.sendRequest(REWRITE_METHOD, params));
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
  if (edits.length === 0) {
    host.showInfo(NOTHING_MESSAGES[target]);
    return "nothing";
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
  return "applied";
}
