// Low-confidence marks: the `lowConfidence` ranges of an edit-mode `infill/rewrite` result (tokens of the code
// as it was that the model finds unlikely), carried over the edits the client then applies so they mark the
// same code afterwards (a mark the edit replaced marks the new text: what the model changed there). Pure.

import type { Position, Range, TextEdit } from "./rewrite";

function isPosition(value: unknown): value is Position {
  const p = value as Position | null;
  return typeof p === "object" && p !== null && Number.isInteger(p.line) && Number.isInteger(p.character);
}

/** The ranges of a result's `lowConfidence` list (malformed entries are left out; none outside edit mode). */
export function parseLowConfidence(result: unknown): Range[] {
  const marks = (result as { lowConfidence?: unknown } | null)?.lowConfidence;
  if (!Array.isArray(marks)) {
    return [];
  }
  return marks
    .map((mark: unknown) => (mark as { range?: Range } | null)?.range)
    .filter((r): r is Range => r !== undefined && r !== null && isPosition(r.start) && isPosition(r.end));
}

function before(a: Position, b: Position): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character);
}

/** Where the end of `newText`, put at `start`, lands. */
function endOf(start: Position, newText: string): Position {
  const lines = newText.split("\n");
  const last = lines[lines.length - 1].length;
  return lines.length === 1
    ? { line: start.line, character: start.character + last }
    : { line: start.line + lines.length - 1, character: last };
}

/** A position at or after `edit.range.end`, in the document after the edit. */
function shift(p: Position, edit: TextEdit): Position {
  const end = edit.range.end;
  const newEnd = endOf(edit.range.start, edit.newText);
  if (p.line === end.line) {
    return { line: newEnd.line, character: newEnd.character + (p.character - end.character) };
  }
  return { line: p.line + (newEnd.line - end.line), character: p.character };
}

/** One mark through one edit: unchanged before it, shifted after it, the edit's new text where they overlap. */
function mapThrough(mark: Range, edit: TextEdit): Range {
  const { start, end } = edit.range;
  if (!before(start, mark.end)) {
    return mark; // wholly before the edit
  }
  if (!before(mark.start, end)) {
    return { start: shift(mark.start, edit), end: shift(mark.end, edit) }; // wholly after it
  }
  const newEnd = endOf(start, edit.newText);
  return {
    start: before(mark.start, start) ? mark.start : start,
    end: before(end, mark.end) ? shift(mark.end, edit) : newEnd,
  };
}

/** The marks (ranges of the document before `edits`) in the document after them; `edits` do not overlap. */
export function marksAfterEdits(marks: Range[], edits: TextEdit[]): Range[] {
  // The last edit first: each edit's range is in the original document, unmoved by the edits after it.
  const ordered = [...edits].sort((a, b) => (before(a.range.start, b.range.start) ? 1 : -1));
  return marks
    .map((mark) => ordered.reduce(mapThrough, mark))
    .filter((r) => before(r.start, r.end));
}
