// Next-edit suggestions in VS Code. The server offers one as an inline completion item whose range covers the
// text it replaces; VS Code 1.99's stable API shows an inline item only as ghost text, i.e. only where the
// item inserts at the cursor (a replacement, or text before the cursor, is dropped silently; showing it as an
// "inline edit" needs the proposed `isInlineEdit` API). So the client splits the server's items: those that
// are insertions at the cursor stay inline items (VS Code's own Tab, Esc and partial accepts apply), the others
// are shown by `NextEditController` as a diff-style preview (old text struck through, new text after it) that
// Tab accepts, Esc dismisses and "accept word"/"accept line" take part of. Pure over `NextEditHost`.

/** A replacement in offsets of one document version. */
export interface Replacement {
  start: number;
  end: number;
  oldText: string;
  newText: string;
}

/**
 * The smallest replacement that turns `text[start:end]` into `insertText` (the common prefix and suffix are
 * left out), so the preview strikes only what changes.
 */
export function minimalReplacement(text: string, start: number, end: number, insertText: string): Replacement {
  const old = text.slice(start, end);
  let head = 0;
  while (head < old.length && head < insertText.length && old[head] === insertText[head]) {
    head++;
  }
  let tail = 0;
  while (
    tail < old.length - head &&
    tail < insertText.length - head &&
    old[old.length - 1 - tail] === insertText[insertText.length - 1 - tail]
  ) {
    tail++;
  }
  return {
    start: start + head,
    end: end - tail,
    oldText: old.slice(head, old.length - tail),
    newText: insertText.slice(head, insertText.length - tail),
  };
}

/** Whether VS Code can show the replacement as ghost text at `cursor`: a pure insertion there. */
export function isGhostText(replacement: Replacement, cursor: number): boolean {
  return replacement.oldText === "" && replacement.start === cursor;
}

/** An inline item as offsets into the document it was asked for. */
export interface OffsetItem {
  start: number;
  end: number;
  insertText: string;
}

/**
 * Splits the server's items at `cursor`: the indices VS Code can show as ghost text, and the next-edit
 * suggestion to preview (the last item that is not ghost text), if any; with a suggestion, no ghost text.
 */
export function splitItems(
  text: string,
  cursor: number,
  items: (OffsetItem | undefined)[],
): { ghost: number[]; suggestion: Replacement | undefined } {
  const ghost: number[] = [];
  let suggestion: Replacement | undefined;
  items.forEach((item, i) => {
    if (item === undefined) {
      ghost.push(i); // no range or a snippet: VS Code's own handling
      return;
    }
    const replacement = minimalReplacement(text, item.start, item.end, item.insertText);
    if (isGhostText(replacement, cursor)) {
      ghost.push(i);
    } else if (replacement.oldText !== "" || replacement.newText !== "") {
      suggestion = replacement;
    }
  });
  // While a suggestion is shown, Tab must mean it: the ghost text of the same request is left out.
  return { ghost: suggestion === undefined ? ghost : [], suggestion };
}

export type AcceptPart = "all" | "word" | "line";

/** The leading part of `newText` an accept takes: all of it, its first word (with the space before), or its
 * first line (with its line break). */
export function acceptedPart(newText: string, part: AcceptPart): string {
  if (part === "all") {
    return newText;
  }
  const match = part === "word" ? /^\s*(\w+|[^\w\s]+)/.exec(newText) : /^[^\n]*\n?/.exec(newText);
  return match !== null && match[0] !== "" ? match[0] : newText;
}

/**
 * Accepting `part` of a suggestion: the replacement to apply now (all of the old text goes, the accepted part
 * of the new text comes) and what is left to suggest after it (an insertion), or undefined when nothing is.
 */
export function acceptSplit(
  suggestion: Replacement,
  part: AcceptPart,
): { apply: Replacement; rest: Replacement | undefined } {
  const taken = acceptedPart(suggestion.newText, part);
  const apply = { ...suggestion, newText: taken };
  const left = suggestion.newText.slice(taken.length);
  const at = suggestion.start + taken.length;
  return { apply, rest: left === "" ? undefined : { start: at, end: at, oldText: "", newText: left } };
}

/** What the preview needs from the editor (the real one is in vscodeApi.ts). */
export interface NextEditHost {
  /** Shows the preview in the editor of `uri` (replacing any other), or clears it with undefined. */
  show(uri: string, replacement: Replacement | undefined): void;
  /** Applies the replacement if the document is still at `version`; false when it was not applied. */
  apply(uri: string, version: number, replacement: Replacement): Promise<boolean>;
  /** The version the document of `uri` is at now, undefined when it is closed. */
  documentVersion(uri: string): number | undefined;
}

interface Shown {
  uri: string;
  version: number;
  replacement: Replacement;
}

export class NextEditController {
  private shown: Shown | undefined;

  constructor(private readonly host: NextEditHost) {}

  get current(): Readonly<Shown> | undefined {
    return this.shown;
  }

  /** Shows a suggestion the server offered for this version of the document. */
  offer(uri: string, version: number, replacement: Replacement): void {
    this.shown = { uri, version, replacement };
    this.host.show(uri, replacement);
  }

  /** Hides the preview (Esc, a change of the document, another editor). */
  dismiss(): void {
    if (this.shown !== undefined) {
      const { uri } = this.shown;
      this.shown = undefined;
      this.host.show(uri, undefined);
    }
  }

  /** A change of `uri` to `version`: a preview of an older version is gone (its offsets no longer hold). */
  onDocumentChanged(uri: string, version: number): void {
    if (this.shown !== undefined && this.shown.uri === uri && this.shown.version !== version) {
      this.dismiss();
    }
  }

  /** Tab (all), accept word, accept line: applies that part and keeps previewing the rest. */
  async accept(part: AcceptPart): Promise<boolean> {
    const shown = this.shown;
    if (shown === undefined) {
      return false;
    }
    this.dismiss();
    if (this.host.documentVersion(shown.uri) !== shown.version) {
      return false;
    }
    const { apply, rest } = acceptSplit(shown.replacement, part);
    if (!(await this.host.apply(shown.uri, shown.version, apply))) {
      return false;
    }
    const version = this.host.documentVersion(shown.uri);
    if (rest !== undefined && version !== undefined) {
      this.offer(shown.uri, version, rest);
    }
    return true;
  }
}
