import { strict as assert } from "node:assert";
import { test } from "node:test";

import {
  ActiveDocument,
  APPLY_ANYWAY,
  APPLY_CHECKED,
  parseRewriteResult,
  Range,
  RewriteHost,
  RewriteParams,
  runRewrite,
  TextEdit,
} from "../src/rewrite";

const SELECTION = { start: { line: 1, character: 4 }, end: { line: 2, character: 0 } };
const CURSOR = { start: { line: 3, character: 2 }, end: { line: 3, character: 2 } };

class FakeEditor implements RewriteHost {
  sent: { method: string; params: RewriteParams }[] = [];
  applied: { uri: string; edits: TextEdit[] }[] = [];
  infos: string[] = [];
  errors: string[] = [];
  confirms: { message: string; choices: string[] }[] = [];
  marks: { uri: string; ranges: Range[] }[] = [];
  version: number;

  constructor(
    public doc: ActiveDocument | undefined,
    private readonly reply: (params: RewriteParams) => Promise<unknown>,
    private readonly accept = true,
    private readonly choose: (choices: string[]) => string | undefined = () => undefined,
  ) {
    this.version = doc?.version ?? 0;
  }
  activeDocument() {
    return this.doc;
  }
  documentVersion(uri: string) {
    return uri === this.doc?.uri ? this.version : undefined;
  }
  sendRequest(method: string, params: RewriteParams) {
    this.sent.push({ method, params });
    return this.reply(params);
  }
  async applyEdits(uri: string, edits: TextEdit[]) {
    this.applied.push({ uri, edits });
    return this.accept;
  }
  showInfo(message: string) {
    this.infos.push(message);
  }
  showError(message: string) {
    this.errors.push(message);
  }
  markLowConfidence(uri: string, ranges: Range[]) {
    this.marks.push({ uri, ranges });
  }
  async confirm(message: string, choices: string[]) {
    this.confirms.push({ message, choices });
    return this.choose(choices);
  }
}

function doc(selection = SELECTION): ActiveDocument {
  return { uri: "file:///w/a.py", version: 7, selection };
}

const ONE_EDIT = {
  edits: [{ range: SELECTION, newText: "    return a + b\n", confidence: [{ text: "return", confidence: 0.9 }] }],
};

test("rewrite selection sends the selection and version, then applies the edits", async () => {
  const editor = new FakeEditor(doc(), async () => ONE_EDIT);
  assert.equal(await runRewrite(editor, "range"), "applied");
  assert.deepEqual(editor.sent, [
    {
      method: "infill/rewrite",
      params: { textDocument: { uri: "file:///w/a.py" }, version: 7, range: SELECTION, target: "range" },
    },
  ]);
  assert.deepEqual(editor.applied, [
    { uri: "file:///w/a.py", edits: [{ range: SELECTION, newText: "    return a + b\n" }] },
  ]);
  assert.deepEqual(editor.errors, []);
  assert.deepEqual(editor.confirms, [], "checked edits need no confirmation");
});

test("rewrite function sends the cursor; fill holes sends no range", async () => {
  const editor = new FakeEditor(doc(CURSOR), async () => ({ edits: [] }));
  assert.equal(await runRewrite(editor, "function"), "nothing");
  assert.deepEqual(editor.sent[0].params.range, CURSOR);
  assert.equal(editor.sent[0].params.target, "function");
  assert.equal(await runRewrite(editor, "holes"), "nothing");
  assert.equal(editor.sent[1].params.range, undefined);
  assert.equal(editor.sent[1].params.target, "holes");
  assert.equal(editor.applied.length, 0);
  assert.match(editor.infos[1], /no holes/);
});

test("an empty result says the server's reason: no function at the cursor is not a failed check", async () => {
  const reasons = ["noFunction", "noValidEdit", "confident"];
  let next = 0;
  const editor = new FakeEditor(doc(CURSOR), async () => ({ edits: [], reason: reasons[next++] }));
  for (let i = 0; i < reasons.length; i++) {
    assert.equal(await runRewrite(editor, "function"), "nothing");
  }
  assert.equal(editor.infos.length, 3);
  assert.match(editor.infos[0], /not inside a function/);
  assert.match(editor.infos[1], /nothing the model proposed passed the syntax check/);
  assert.match(editor.infos[2], /confident/);
});

test("rewrite selection with an empty selection asks for one and sends nothing", async () => {
  const editor = new FakeEditor(doc(CURSOR), async () => ONE_EDIT);
  assert.equal(await runRewrite(editor, "range"), "no-selection");
  assert.equal(editor.sent.length, 0);
});

test("no editor: nothing is sent", async () => {
  const editor = new FakeEditor(undefined, async () => ONE_EDIT);
  assert.equal(await runRewrite(editor, "holes"), "no-editor");
  assert.equal(editor.sent.length, 0);
});

test("edits for an older version are discarded, never applied", async () => {
  const editor = new FakeEditor(doc(), async () => {
    editor.version = 8; // the user typed while the server worked
    return ONE_EDIT;
  });
  assert.equal(await runRewrite(editor, "range"), "stale");
  assert.equal(editor.applied.length, 0);
  assert.match(editor.infos[0], /changed while rewriting/);
});

test("ContentModified from the server is reported as stale, other errors as one line", async () => {
  const stale = new FakeEditor(doc(), () => Promise.reject({ code: -32801, message: "content modified" }));
  assert.equal(await runRewrite(stale, "range"), "stale");
  assert.deepEqual(stale.errors, []);
  const broken = new FakeEditor(doc(), () =>
    Promise.reject({ code: -32603, message: "model failed to load\nTraceback ..." }),
  );
  assert.equal(await runRewrite(broken, "range"), "failed");
  assert.deepEqual(broken.errors, ["Infill: rewrite failed: model failed to load"]);
});

test("malformed results are rejected, not applied", async () => {
  for (const bad of [null, {}, { edits: [{ newText: "x" }] }, { edits: [{ range: SELECTION }] }]) {
    const editor = new FakeEditor(doc(), async () => bad);
    assert.equal(await runRewrite(editor, "range"), "failed");
    assert.equal(editor.applied.length, 0);
    assert.match(editor.errors[0], /malformed/);
  }
  assert.deepEqual(parseRewriteResult({ edits: [{ range: SELECTION, newText: "" }] })[0].confidence, []);
});

test("an edit the editor refuses is reported", async () => {
  const editor = new FakeEditor(doc(), async () => ONE_EDIT, false);
  assert.equal(await runRewrite(editor, "range"), "failed");
  assert.match(editor.errors[0], /refused/);
});

// Two holes, at lines 2 and 5 (0-based 1 and 4); the server says whether each fill passed its syntax check.
const HOLE_1 = { start: { line: 1, character: 11 }, end: { line: 1, character: 19 } };
const HOLE_2 = { start: { line: 4, character: 8 }, end: { line: 4, character: 16 } };
function holes(validated1: boolean, validated2: boolean) {
  return {
    edits: [
      { range: HOLE_1, newText: "a + b", confidence: [], validated: validated1 },
      { range: HOLE_2, newText: "xxxx )", confidence: [], validated: validated2 },
    ],
  };
}

test("an unchecked fill is not applied when the warning is dismissed", async () => {
  const editor = new FakeEditor(doc(CURSOR), async () => holes(false, false));
  assert.equal(await runRewrite(editor, "holes"), "declined");
  assert.equal(editor.applied.length, 0, "applied without confirmation");
  assert.equal(editor.confirms.length, 1);
  assert.match(editor.confirms[0].message, /2 fills at lines 2, 5 did not pass the syntax check/);
  assert.deepEqual(editor.confirms[0].choices, [APPLY_ANYWAY]);
  assert.match(editor.infos.at(-1) ?? "", /nothing was applied/);
});

test("'Apply anyway' applies unchecked fills", async () => {
  const editor = new FakeEditor(doc(CURSOR), async () => holes(true, false), true, () => APPLY_ANYWAY);
  assert.equal(await runRewrite(editor, "holes"), "applied");
  assert.match(editor.confirms[0].message, /^Infill: the fill at line 5 did not pass the syntax check/);
  assert.deepEqual(editor.confirms[0].choices, [APPLY_CHECKED, APPLY_ANYWAY]);
  assert.deepEqual(
    editor.applied[0].edits.map((e) => e.newText),
    ["a + b", "xxxx )"],
  );
});

test("'Apply checked fills only' leaves the unchecked hole as it is", async () => {
  const editor = new FakeEditor(doc(CURSOR), async () => holes(true, false), true, () => APPLY_CHECKED);
  assert.equal(await runRewrite(editor, "holes"), "applied");
  assert.deepEqual(editor.applied, [{ uri: "file:///w/a.py", edits: [{ range: HOLE_1, newText: "a + b" }] }]);
});

test("an edit without `validated` counts as checked; only an explicit false is unchecked", () => {
  const [plain, unchecked] = parseRewriteResult({
    edits: [
      { range: SELECTION, newText: "x" },
      { range: SELECTION, newText: "y", validated: false },
    ],
  });
  assert.equal(plain.validated, true);
  assert.equal(unchecked.validated, false);
});

test("edit mode sends mode edit, applies the edit and marks the doubted tokens where they are afterwards", async () => {
  // The server's answer for `return a + xy  # x`: " xy" on line 1 doubted and replaced by " b", and "#" doubted.
  const doubted = { start: { line: 1, character: 14 }, end: { line: 1, character: 17 } };
  const comment = { start: { line: 1, character: 19 }, end: { line: 1, character: 20 } };
  const result = {
    edits: [{ range: doubted, newText: " b", confidence: [], validated: true }],
    reason: "changed",
    lowConfidence: [
      { range: doubted, confidence: 0.01 },
      { range: comment, confidence: 0.05 },
    ],
  };
  const editor = new FakeEditor(doc(CURSOR), async () => result);
  assert.equal(await runRewrite(editor, "function", "edit"), "applied");
  assert.equal(editor.sent[0].params.mode, "edit");
  assert.deepEqual(editor.applied[0].edits, [{ range: doubted, newText: " b" }]);
  assert.deepEqual(editor.marks, [
    {
      uri: "file:///w/a.py",
      ranges: [
        { start: { line: 1, character: 14 }, end: { line: 1, character: 16 } },
        { start: { line: 1, character: 18 }, end: { line: 1, character: 19 } },
      ],
    },
  ]);
  // The regenerate mode sends no mode (the server's default) and its result carries no marks.
  const plain = new FakeEditor(doc(CURSOR), async () => ({ edits: [] }));
  await runRewrite(plain, "function");
  assert.equal(plain.sent[0].params.mode, undefined);
  assert.deepEqual(plain.marks, [{ uri: "file:///w/a.py", ranges: [] }]);
});
