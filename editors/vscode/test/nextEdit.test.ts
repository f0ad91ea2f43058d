import { strict as assert } from "node:assert";
import { test } from "node:test";

import { marksAfterEdits, parseLowConfidence } from "../src/confidence";
import {
  acceptSplit,
  minimalReplacement,
  NextEditController,
  NextEditHost,
  Replacement,
  splitItems,
} from "../src/nextEdit";

test("a replacement keeps out the text it repeats around the change", () => {
  const text = "    return a + x\n";
  // The server widens its item to the cursor (end of line): the item repeats " +" and what follows " x".
  const start = text.indexOf(" a");
  const end = text.indexOf("\n");
  assert.deepEqual(minimalReplacement(text, start, end, " a + b"), {
    start: text.indexOf("x"),
    end: text.indexOf("x") + 1,
    oldText: "x",
    newText: "b",
  });
});

test("items VS Code can show as ghost text stay; a replacement becomes the preview", () => {
  const text = "value = a + x\nprint(value)\n";
  const cursor = text.indexOf("\n");
  const { ghost, suggestion } = splitItems(text, cursor, [
    { start: cursor, end: cursor, insertText: " + 1" }, // an ordinary completion at the cursor
    undefined, // no range: VS Code's own handling
    { start: text.indexOf(" a"), end: cursor, insertText: " a + b" }, // the next-edit suggestion
  ]);
  assert.deepEqual(ghost, [], "with a suggestion to preview, Tab means it: no ghost text");
  assert.deepEqual(suggestion, { start: cursor - 1, end: cursor, oldText: "x", newText: "b" });
  assert.deepEqual(splitItems(text, cursor, [{ start: cursor, end: cursor, insertText: " + 1" }, undefined]).ghost, [0, 1]);
  // An insertion away from the cursor cannot be ghost text either.
  assert.deepEqual(splitItems(text, 0, [{ start: 5, end: 5, insertText: "_x" }]).ghost, []);
});

test("accept word and accept line take the first word or line and leave the rest as an insertion", () => {
  const suggestion: Replacement = { start: 10, end: 12, oldText: "xy", newText: " total = 1\n    return total" };
  assert.deepEqual(acceptSplit(suggestion, "word"), {
    apply: { start: 10, end: 12, oldText: "xy", newText: " total" },
    rest: { start: 16, end: 16, oldText: "", newText: " = 1\n    return total" },
  });
  assert.deepEqual(acceptSplit(suggestion, "line").rest, { start: 21, end: 21, oldText: "", newText: "    return total" });
  assert.deepEqual(acceptSplit(suggestion, "all"), { apply: suggestion, rest: undefined });
});

class FakePreview implements NextEditHost {
  shown: (Replacement | undefined)[] = [];
  applied: Replacement[] = [];
  version = 4;
  show(_uri: string, replacement: Replacement | undefined) {
    this.shown.push(replacement);
  }
  async apply(_uri: string, version: number, replacement: Replacement) {
    if (version !== this.version) {
      return false;
    }
    this.applied.push(replacement);
    this.version++;
    return true;
  }
  documentVersion() {
    return this.version;
  }
}

test("Tab applies the whole suggestion, a partial accept keeps previewing the rest, Esc clears it", async () => {
  const host = new FakePreview();
  const controller = new NextEditController(host);
  const suggestion = { start: 3, end: 4, oldText: "x", newText: "b + c" };
  controller.offer("file:///a.py", 4, suggestion);
  assert.equal(await controller.accept("word"), true);
  assert.deepEqual(host.applied, [{ ...suggestion, newText: "b" }]);
  assert.deepEqual(controller.current, {
    uri: "file:///a.py",
    version: 5,
    replacement: { start: 4, end: 4, oldText: "", newText: " + c" },
  });
  controller.dismiss();
  assert.equal(controller.current, undefined);
  assert.equal(host.shown[host.shown.length - 1], undefined);
  assert.equal(await controller.accept("all"), false); // nothing shown, nothing applied
  controller.offer("file:///a.py", 5, suggestion);
  assert.equal(await controller.accept("all"), true);
  assert.deepEqual(host.applied[1], suggestion);
  assert.equal(controller.current, undefined);
});

test("a suggestion for an older version is dropped on change and never applied", async () => {
  const host = new FakePreview();
  const controller = new NextEditController(host);
  controller.offer("file:///a.py", 4, { start: 0, end: 1, oldText: "x", newText: "y" });
  controller.onDocumentChanged("file:///b.py", 9); // another document: kept
  assert.notEqual(controller.current, undefined);
  host.version = 5;
  controller.onDocumentChanged("file:///a.py", 5);
  assert.equal(controller.current, undefined);
  controller.offer("file:///a.py", 4, { start: 0, end: 1, oldText: "x", newText: "y" });
  assert.equal(await controller.accept("all"), false);
  assert.deepEqual(host.applied, []);
});

test("low-confidence marks follow the edits: shifted after them, the new text where they overlap", () => {
  const marks = parseLowConfidence({
    lowConfidence: [
      { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 2 } }, confidence: 0.01 },
      { range: { start: { line: 1, character: 4 }, end: { line: 1, character: 6 } }, confidence: 0.02 },
      { range: { start: { line: 1, character: 9 }, end: { line: 1, character: 10 } }, confidence: 0.03 },
      { range: { start: { line: 3, character: 1 }, end: { line: 3, character: 2 } }, confidence: 0.04 },
      { confidence: 0.5 }, // malformed: left out
    ],
  });
  assert.equal(marks.length, 4);
  // Line 1 columns 4-6 become two lines "abc\nd"; nothing else changes.
  const edits = [{ range: { start: { line: 1, character: 4 }, end: { line: 1, character: 6 } }, newText: "abc\nd" }];
  assert.deepEqual(marksAfterEdits(marks, edits), [
    { start: { line: 0, character: 0 }, end: { line: 0, character: 2 } },
    { start: { line: 1, character: 4 }, end: { line: 2, character: 1 } },
    { start: { line: 2, character: 4 }, end: { line: 2, character: 5 } },
    { start: { line: 4, character: 1 }, end: { line: 4, character: 2 } },
  ]);
  assert.deepEqual(parseLowConfidence({ edits: [] }), []);
});
