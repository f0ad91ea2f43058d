// Drives the REAL server (`python -m infill_cli.main serve` on a tiny ModernBERT built for the test) over stdio
// with vscode-languageserver-protocol, the protocol library the extension's language client is built on. The
// model is tests/tiny_models.py's x model: it fills "xxxx" wherever that parses, so every request below has a
// known answer (an identifier after `value = `, nothing valid after `value = 1 `).
import { strict as assert } from "node:assert";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";

import {
  CodeAction,
  CodeActionRequest,
  CodeActionResolveRequest,
  createProtocolConnection,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  InitializeResult,
  InlineCompletionItem,
  InlineCompletionList,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ProtocolConnection,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-languageserver-protocol/node";

import { parseRewriteResult, REWRITE_METHOD } from "../src/rewrite";
import { SERVER_DEFAULTS } from "../src/settings";
import { parseStatus, StatusParams } from "../src/status";
import { python, REPO_ROOT } from "./helpers";

const READY_TIMEOUT_MS = 90_000;

let workDir: string;
let server: ChildProcess;
let connection: ProtocolConnection;
let initializeResult: InitializeResult;
const statuses: StatusParams[] = [];
let stderr = "";

function uri(name: string): string {
  return `file://${path.join(workDir, name)}`;
}

function waitFor<T>(what: string, check: () => T | undefined, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const value = check();
      if (value !== undefined) {
        resolve(value);
      } else if (Date.now() - started > timeoutMs) {
        reject(new Error(`timed out waiting for ${what}; server stderr:\n${stderr.slice(-2000)}`));
      } else {
        setTimeout(poll, 50);
      }
    };
    poll();
  });
}

function open(name: string, languageId: string, text: string, version = 1): void {
  connection.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri: uri(name), languageId, version, text },
  });
}

function inlineItems(result: InlineCompletionList | InlineCompletionItem[] | null): InlineCompletionItem[] {
  if (result === null) {
    return [];
  }
  return Array.isArray(result) ? result : result.items;
}

function insertText(item: InlineCompletionItem): string {
  return typeof item.insertText === "string" ? item.insertText : item.insertText.value;
}

before(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), "infill-vscode-"));
  // scripts/test_editors.sh builds the model once for both editors' suites; alone, build one here.
  let modelDir = process.env.INFILL_TEST_X_MODEL;
  if (modelDir === undefined) {
    modelDir = path.join(workDir, "model");
    const build = `from pathlib import Path; from tests.tiny_models import build_x_model; build_x_model(Path(${JSON.stringify(modelDir)}))`;
    execFileSync(python(), ["-c", build], { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] });
  }
  server = spawn(python(), ["-m", "infill_cli.main", "serve", "--model", modelDir, "--device", "cpu"], {
    cwd: REPO_ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  server.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  connection = createProtocolConnection(
    new StreamMessageReader(server.stdout!),
    new StreamMessageWriter(server.stdin!),
  );
  connection.onNotification("infill/status", (params: unknown) => {
    const status = parseStatus(params);
    assert.ok(status !== null, `malformed infill/status ${JSON.stringify(params)}`);
    statuses.push(status);
  });
  // Requests a server may send to a client; answered as VS Code's client would.
  connection.onRequest("window/workDoneProgress/create", () => null);
  connection.onRequest("client/registerCapability", () => null);
  connection.onRequest("workspace/configuration", (params: { items: unknown[] }) => params.items.map(() => null));
  connection.onNotification("window/showMessage", () => undefined);
  connection.onNotification("window/logMessage", () => undefined);
  connection.onNotification("$/progress", () => undefined);
  connection.listen();
  initializeResult = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: `file://${workDir}`,
    workspaceFolders: [{ uri: `file://${workDir}`, name: "w" }],
    capabilities: {
      textDocument: { inlineCompletion: { dynamicRegistration: false }, codeAction: { resolveSupport: { properties: ["edit"] } } },
      window: { workDoneProgress: true },
      general: { positionEncodings: ["utf-16"] },
    },
    initializationOptions: { ...SERVER_DEFAULTS, maxTokens: 16, debounceMs: 0 },
  });
  await connection.sendNotification(InitializedNotification.type, {});
  await waitFor("the model to be ready", () => statuses.find((s) => s.state === "ready" || s.state === "error"), READY_TIMEOUT_MS);
});

after(async () => {
  if (connection !== undefined) {
    try {
      await connection.sendRequest(ShutdownRequest.type);
      await connection.sendNotification(ExitNotification.type);
    } catch {
      // Already gone; the kill below cleans up.
    }
  }
  if (server !== undefined && server.exitCode === null) {
    await new Promise((resolve) => {
      const timer = setTimeout(() => server.kill("SIGKILL"), 5000);
      server.once("exit", () => resolve(clearTimeout(timer)));
    });
  }
  connection?.dispose();
  rmSync(workDir, { recursive: true, force: true });
});

test("initialize advertises inline completions and resolvable code actions; the model loads", () => {
  const caps = initializeResult.capabilities;
  assert.ok(caps.inlineCompletionProvider, "no inlineCompletionProvider");
  const codeActions = caps.codeActionProvider;
  assert.ok(typeof codeActions === "object" && codeActions.resolveProvider === true, "code actions not resolvable");
  assert.equal(statuses[0].state, "loading");
  assert.equal(statuses.at(-1)?.state, "ready", `model did not load: ${JSON.stringify(statuses.at(-1))}`);
});

test("inline completion: items replace a range on the cursor line; invoked gives 1 to 3", async () => {
  const text = "import os\n\nvalue = \n";
  open("complete.py", "python", text);
  const position = { line: 2, character: 8 };
  for (const triggerKind of [InlineCompletionTriggerKind.Invoked, InlineCompletionTriggerKind.Automatic]) {
    const result = await connection.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri: uri("complete.py") },
      position,
      context: { triggerKind, selectedCompletionInfo: undefined },
    });
    const items = inlineItems(result);
    assert.ok(items.length >= 1, `no completion offered (${triggerKind === 1 ? "invoked" : "automatic"})`);
    assert.ok(items.length <= (triggerKind === InlineCompletionTriggerKind.Invoked ? 3 : 1), `${items.length} items`);
    for (const item of items) {
      assert.match(insertText(item), /^x{4,}$/, "the x model's identifier");
      if (item.range !== undefined) {
        assert.equal(item.range.start.line, position.line, "range not on the cursor line");
        assert.equal(item.range.end.line, position.line, "range spans lines");
        assert.ok(item.range.start.character <= position.character, "range starts after the cursor");
      }
    }
  }
});

test("infill/rewrite holes: one edit per hole, covering the marker", async () => {
  const text = "def add(a, b):\n    return <|fill|>\n";
  open("holes.py", "python", text);
  const result = parseRewriteResult(
    await connection.sendRequest(REWRITE_METHOD, { textDocument: { uri: uri("holes.py") }, version: 1, target: "holes" }),
  );
  assert.equal(result.length, 1);
  const { range, newText } = result[0];
  // The marker sits at line 1, characters 11..19; the edit must span it so applying removes it.
  assert.ok(range.start.line === 1 && range.start.character <= 11, `edit starts after the hole: ${JSON.stringify(range)}`);
  assert.ok(range.end.line > 1 || range.end.character >= 19, `edit ends inside the hole: ${JSON.stringify(range)}`);
  assert.ok(!newText.includes("<|fill|>"), "the marker survived");
  assert.match(newText, /^x{4,}$/);
  assert.equal(result[0].validated, true, "`return xxxx` parses");
  assert.ok(result[0].confidence.length > 0, "no per-token confidences");
  for (const token of result[0].confidence) {
    assert.equal(typeof token.text, "string");
    assert.ok(token.confidence >= 0 && token.confidence <= 1, `confidence ${token.confidence}`);
  }
});

test("infill/rewrite holes: a fill no candidate could make parse comes back validated: false", async () => {
  open("unchecked.py", "python", "value = 1 <|fill|>\n");
  const result = parseRewriteResult(
    await connection.sendRequest(REWRITE_METHOD, { textDocument: { uri: uri("unchecked.py") }, version: 1, target: "holes" }),
  );
  assert.equal(result.length, 1);
  assert.equal(result[0].validated, false, `"value = 1 ${result[0].newText}" counted as valid`);
});

test("infill/rewrite for an old version fails with ContentModified", async () => {
  const text = "x = 1\n# <|fill|>\n";
  open("stale.py", "python", text);
  connection.sendNotification(DidChangeTextDocumentNotification.type, {
    textDocument: { uri: uri("stale.py"), version: 2 },
    contentChanges: [{ text: "x = 2\n# <|fill|>\n" }],
  });
  await assert.rejects(
    connection.sendRequest(REWRITE_METHOD, { textDocument: { uri: uri("stale.py") }, version: 1, target: "holes" }),
    (error: { code?: number }) => error.code === -32801,
  );
});

test("infill/rewrite range answers with edits inside the document", async () => {
  const text = "def mul(a, b):\n    result = a * b\n    return result\n";
  open("range.py", "python", text);
  const range = { start: { line: 1, character: 4 }, end: { line: 1, character: 18 } };
  const edits = parseRewriteResult(
    await connection.sendRequest(REWRITE_METHOD, { textDocument: { uri: uri("range.py") }, version: 1, range, target: "range" }),
  );
  assert.equal(edits.length, 1, "`    xxxx` parses, so the line is rewritten");
  assert.ok(edits[0].range.start.line <= 1 && edits[0].range.end.line <= 3, JSON.stringify(edits[0].range));
  assert.match(edits[0].newText, /x{4,}/);
  assert.equal(edits[0].validated, true);
});

test("infill/rewrite function with the cursor inside a function rewrites its body", async () => {
  const text = "def mul(a, b):\n    result = a * b\n    return result\n";
  open("function.py", "python", text);
  const cursor = { line: 1, character: 6 };
  const edits = parseRewriteResult(
    await connection.sendRequest(REWRITE_METHOD, {
      textDocument: { uri: uri("function.py") },
      version: 1,
      range: { start: cursor, end: cursor },
      target: "function",
    }),
  );
  assert.equal(edits.length, 1);
  // The body of mul: it starts after the signature line and ends within the document.
  assert.ok(edits[0].range.start.line >= 1 && edits[0].range.end.line <= 3, JSON.stringify(edits[0].range));
  assert.match(edits[0].newText, /x{4,}/);
});

test("code actions are listed cheaply and resolved to a workspace edit", async () => {
  const text = "def sub(a, b):\n    return <|fill|>\n";
  open("actions.py", "python", text);
  const actions = await connection.sendRequest(CodeActionRequest.type, {
    textDocument: { uri: uri("actions.py") },
    range: { start: { line: 1, character: 4 }, end: { line: 1, character: 10 } },
    context: { diagnostics: [], only: ["refactor.rewrite"] },
  });
  assert.ok(actions !== null);
  const titles = actions.map((a) => a.title);
  assert.ok(titles.includes("Fill holes"), `actions: ${titles.join(", ")}`);
  const fill = actions.find((a) => a.title === "Fill holes") as CodeAction;
  assert.equal(fill.kind, "refactor.rewrite");
  assert.equal(fill.edit, undefined, "listing computed the edit");
  const resolved = await connection.sendRequest(CodeActionResolveRequest.type, fill);
  const changes = resolved.edit?.changes?.[uri("actions.py")] ?? [];
  const documentChanges = resolved.edit?.documentChanges ?? [];
  assert.ok(changes.length + documentChanges.length > 0, `no edit in ${JSON.stringify(resolved.edit)}`);
});
