import { strict as assert } from "node:assert";
import { test } from "node:test";

import { ClientHooks, InfillSession, ServerClient, SessionHost } from "../src/session";
import { InfillSettings, readSettings, ServerLaunch, ServerSettings } from "../src/settings";
import { StatusController, StatusItem } from "../src/status";

class FakeClient implements ServerClient {
  started = 0;
  stopped = 0;
  pushed: ServerSettings[] = [];
  constructor(
    readonly launch: ServerLaunch,
    readonly initial: ServerSettings,
    readonly hooks: ClientHooks,
    private readonly failStart: boolean,
  ) {}
  async start() {
    this.started++;
    if (this.failStart) {
      throw new Error("spawn infill ENOENT");
    }
  }
  async stop() {
    this.stopped++;
  }
  async sendRequest(method: string, params: unknown) {
    return { method, params };
  }
  async pushSettings(settings: ServerSettings) {
    this.pushed.push(settings);
  }
}

function setup(values: Record<string, unknown> = {}, failStart = false) {
  const config: Record<string, unknown> = { ...values };
  const errors: string[] = [];
  const clients: FakeClient[] = [];
  const ref: { session?: InfillSession } = {};
  const host: SessionHost = {
    readSettings: (): InfillSettings => readSettings((key) => config[key]),
    writeEnable: async (enable) => {
      config.enable = enable;
      await ref.session?.onSettingsChanged(); // VS Code fires onDidChangeConfiguration after update()
    },
    showError: (message) => errors.push(message),
  };
  const item: StatusItem = { text: "", tooltip: undefined, command: undefined, show() {} };
  const status = new StatusController(item, "infill.toggle");
  const session = new InfillSession(host, status, (launch, initial, hooks) => {
    const client = new FakeClient(launch, initial, hooks, failStart);
    clients.push(client);
    return client;
  });
  ref.session = session;
  return { session, config, errors, clients, status, item };
}

test("start launches the configured command with the server settings as initializationOptions", async () => {
  const { session, clients } = setup({ model: "/models/tiny", pythonPath: "/venv/bin/python" });
  await session.start();
  assert.equal(clients.length, 1);
  assert.deepEqual(clients[0].launch, { command: "/venv/bin/python", args: ["-m", "infill_cli.main", "serve"] });
  assert.equal(clients[0].initial.model, "/models/tiny");
  assert.equal((clients[0].initial as unknown as Record<string, unknown>).pythonPath, undefined);
});

test("a server that cannot start gives one error message and an error status", async () => {
  const { session, errors, status } = setup({}, true);
  await session.start();
  assert.equal(errors.length, 1);
  assert.match(errors[0], /could not start the server \(`infill serve`\): spawn infill ENOENT/);
  assert.equal(status.current.state, "error");
});

test("status notifications from the client reach the status item; stale clients are ignored", async () => {
  const { session, clients, status } = setup();
  await session.start();
  clients[0].hooks.onStatus({ state: "ready" });
  assert.equal(status.current.state, "ready");
  await session.restart();
  clients[0].hooks.onStatus({ state: "error", message: "old process" });
  assert.equal(status.current.state, "starting");
  clients[1].hooks.onStatus({ state: "busy" });
  assert.equal(status.current.state, "busy");
  assert.equal(clients[0].stopped, 1);
});

test("changed server settings are pushed; a changed launch line restarts the server", async () => {
  const { session, config, clients } = setup();
  await session.start();
  config.maxTokens = 32;
  await session.onSettingsChanged();
  assert.equal(clients.length, 1);
  assert.equal(clients[0].pushed.length, 1);
  assert.equal(clients[0].pushed[0].maxTokens, 32);
  // A client-only setting that changes nothing on the wire pushes nothing.
  config.enable = false;
  await session.onSettingsChanged();
  assert.equal(clients[0].pushed.length, 1);
  config.serverCommand = "/opt/infill/bin/infill";
  await session.onSettingsChanged();
  assert.equal(clients.length, 2);
  assert.equal(clients[0].stopped, 1);
  assert.equal(clients[1].launch.command, "/opt/infill/bin/infill");
});

test("toggle flips infill.enable, gates completions and shows off in the status item", async () => {
  const { session, clients, config, item } = setup({ disabledLanguages: ["markdown"] });
  await session.start();
  const hooks = clients[0].hooks;
  assert.equal(hooks.completionsWanted("python"), true);
  assert.equal(hooks.completionsWanted("markdown"), false);
  assert.equal(await session.toggle(), false);
  assert.equal(config.enable, false);
  assert.equal(hooks.completionsWanted("python"), false);
  assert.match(item.text, /\(off\)/);
  assert.equal(await session.toggle(), true);
  assert.equal(hooks.completionsWanted("python"), true);
});

test("requests without a running server reject; dispose stops the client", async () => {
  const { session, clients } = setup();
  await assert.rejects(session.sendRequest("infill/rewrite", {}), /not running/);
  await session.start();
  assert.deepEqual(await session.sendRequest("infill/rewrite", { a: 1 }), {
    method: "infill/rewrite",
    params: { a: 1 },
  });
  await session.dispose();
  assert.equal(clients[0].stopped, 1);
  await assert.rejects(session.sendRequest("infill/rewrite", {}), /not running/);
});

test("a request made while the server restarts goes to the new server once it has started", async () => {
  const { session, clients, config } = setup();
  await session.start();
  let finishStart: () => void = () => undefined;
  const slowStart = new Promise<void>((resolve) => (finishStart = resolve));
  const realStart = FakeClient.prototype.start;
  FakeClient.prototype.start = async function (this: FakeClient) {
    await realStart.call(this);
    await slowStart;
  };
  try {
    config.pythonPath = "/venv/bin/python"; // a launch change: the session restarts the server
    const restarting = session.onSettingsChanged();
    const answer = session.sendRequest("infill/rewrite", { target: "holes" });
    let settled = false;
    void answer.then(() => (settled = true), () => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, "the request was answered before the new server had started");
    finishStart();
    await restarting;
    assert.deepEqual(await answer, { method: "infill/rewrite", params: { target: "holes" } });
    assert.equal(clients.length, 2);
    assert.equal(clients[0].stopped, 1);
  } finally {
    FakeClient.prototype.start = realStart;
  }
});

test("a request with no server still rejects, after a failed start", async () => {
  const { session } = setup({}, true);
  await session.start();
  await session.stop();
  await assert.rejects(session.sendRequest("infill/rewrite", {}), /the infill server is not running/);
});
