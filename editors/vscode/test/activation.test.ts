// Loads the real entry point (src/extension.ts) with stand-ins for `vscode` and the language client, and checks
// the wiring: what activate() registers, what reaches the client, and that everything is disposed.
import { fakeVscode, recorded } from "./fakeVscode"; // first: installs the stand-ins before the extension loads them

import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { activate, deactivate } from "../src/extension";
import { SERVER_DEFAULTS } from "../src/settings";
import { EXTENSION_ROOT } from "./helpers";

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("activate wires commands, status item and client; disposing the context undoes it all", async () => {
  const context = { subscriptions: [] as { dispose(): unknown }[] };
  await activate(context as never);

  const pkg = JSON.parse(readFileSync(path.join(EXTENSION_ROOT, "package.json"), "utf8"));
  const declared = pkg.contributes.commands.map((c: { command: string }) => c.command).sort();
  assert.deepEqual([...recorded.commands.keys()].sort(), declared, "registered commands = package.json commands");

  assert.equal(recorded.clients.length, 1);
  const client = recorded.clients[0];
  assert.equal(client.started, true);
  assert.deepEqual(client.serverOptions.command, "infill");
  assert.deepEqual(client.serverOptions.args, ["serve"]);
  // With a `transport` on an Executable, vscode-languageclient appends `--stdio` (or `--pipe=`) to these args
  // (lib/node/main.js), so the server would not get the command line we built.
  assert.equal(client.serverOptions.transport, undefined, "a transport makes the library change the args");
  assert.deepEqual(client.clientOptions.initializationOptions, { ...SERVER_DEFAULTS });

  const [item] = recorded.statusItems;
  assert.equal(item.shown, true);
  assert.equal(item.command, "infill.toggle");
  client.notificationHandlers.get("infill/status")?.({ state: "ready" });
  assert.match(item.text, /sparkle/);

  // Inline completions go to the server until toggled off.
  // The server's items for `value = a + x|`: a completion at the cursor and a next-edit suggestion replacing
  // "x", which VS Code 1.99 could not show: it goes to the preview, and no ghost text competes for Tab.
  const text = "value = a + x\n";
  const at = (offset: number) => ({ offset });
  const ghost = { insertText: " + 1", range: { start: at(13), end: at(13) } };
  const suggestion = { insertText: " a + b", range: { start: at(9), end: at(13) } };
  const next = () => Promise.resolve({ items: [ghost, suggestion] });
  const document = (languageId: string) => ({
    languageId,
    uri: { toString: () => "file:///a.py" },
    version: 1,
    getText: () => text,
    offsetAt: (p: { offset: number }) => p.offset,
  });
  const provide = (languageId: string) =>
    client.clientOptions.middleware.provideInlineCompletionItems(document(languageId), at(13), {}, {}, next);
  assert.deepEqual(await provide("python"), { items: [] });
  assert.deepEqual(recorded.executed.at(-1), ["setContext", "infill.nextEditVisible", true], "the preview is shown");
  // `infill/nextEditReady` for the active document's version asks VS Code for inline items again; for an older
  // version it does nothing.
  const window = fakeVscode.window as { activeTextEditor: unknown };
  window.activeTextEditor = { document: { uri: { toString: () => "file:///a.py" }, version: 2 } };
  const ready = client.notificationHandlers.get("infill/nextEditReady");
  ready?.({ uri: "file:///a.py", version: 1 });
  assert.notDeepEqual(recorded.executed.at(-1), ["editor.action.inlineSuggest.trigger"]);
  ready?.({ uri: "file:///a.py", version: 2 });
  assert.deepEqual(recorded.executed.at(-1), ["editor.action.inlineSuggest.trigger"]);
  window.activeTextEditor = undefined;
  await recorded.commands.get("infill.toggle")?.();
  await tick();
  assert.equal(recorded.config["infill.enable"], false);
  assert.equal(await provide("python"), null);
  assert.match(item.text, /\(off\)/);

  // The server's "Fill holes" code action runs the confirming command instead of applying its edit unasked.
  const fromServer = [
    { title: "Fill holes", kind: "refactor.rewrite", data: { target: "holes", textDocument: { uri: "file:///a.py" } } },
    { title: "Rewrite selection", kind: "refactor.rewrite", data: { target: "range" } },
  ];
  const middleware = client.clientOptions.middleware;
  const actions = (await middleware.provideCodeActions({}, {}, {}, {}, async () => fromServer)) as {
    command?: { command: string };
  }[];
  assert.deepEqual(actions[0].command, { title: "Fill holes", command: "infill.fillHoles" });
  assert.equal(actions[1].command, undefined);
  const resolved: unknown[] = [];
  const resolve = (item: unknown) => resolved.push(item);
  assert.equal(middleware.resolveCodeAction(actions[0], {}, resolve), actions[0], "holes action resolved unasked");
  middleware.resolveCodeAction(actions[1], {}, resolve);
  assert.deepEqual(resolved, [actions[1]], "other actions resolve through the server");

  // A changed server setting is pushed with didChangeConfiguration.
  await fakeSettingChange("infill.maxTokens", 24);
  assert.deepEqual(client.sentNotifications.at(-1), {
    method: "workspace/didChangeConfiguration",
    params: { settings: { infill: { ...SERVER_DEFAULTS, maxTokens: 24 } } },
  });

  // infill.pythonPath restarts the server as `<python> -m infill_cli.main serve`, again without a transport.
  await fakeSettingChange("infill.pythonPath", "/venv/bin/python");
  assert.equal(recorded.clients.length, 2, "a new launch line starts a new client");
  assert.equal(client.disposed, true, "the old client is stopped");
  const restarted = recorded.clients[1];
  assert.equal(restarted.started, true);
  assert.equal(restarted.serverOptions.command, "/venv/bin/python");
  assert.deepEqual(restarted.serverOptions.args, ["-m", "infill_cli.main", "serve"]);
  assert.equal(restarted.serverOptions.transport, undefined);

  // Rewrites without an editor say so instead of failing.
  await recorded.commands.get("infill.rewriteSelection")?.();
  assert.match(recorded.messages.at(-1) ?? "", /open a file/);

  for (const subscription of context.subscriptions) {
    subscription.dispose();
  }
  await deactivate();
  await tick();
  for (const id of declared) {
    assert.ok(recorded.disposed.includes(`command:${id}`), `${id} not disposed`);
  }
  assert.ok(recorded.disposed.includes("onDidChangeConfiguration"));
  assert.ok(recorded.disposed.includes("notification:infill/status"));
  assert.ok(recorded.disposed.includes("notification:infill/nextEditReady"));
  assert.equal(recorded.disposed.filter((d) => d === "decorationType").length, 3, "preview and marks disposed");
  assert.ok(recorded.disposed.includes("onDidChangeTextDocument"));
  assert.equal(item.disposed, true);
  assert.equal(restarted.disposed, true);
});

async function fakeSettingChange(key: string, value: unknown): Promise<void> {
  recorded.config[key] = value;
  for (const listener of recorded.configListeners) {
    listener({ affectsConfiguration: (section: string) => section === "infill" });
  }
  await tick();
}
